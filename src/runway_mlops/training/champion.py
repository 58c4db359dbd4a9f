"""The champion: every move of the serving model, each recorded as a model event.

**Moves.** :func:`promote` (by training, by a shadow win, by a person's approval or
``runway promote``) and :func:`rollback` (by the monitoring policy) move MLflow's
``champion`` alias (primitives in :mod:`runway_mlops.training.registry`) and record a
model event in the platform database with who acted and why; :func:`record_event` records
the other events of a version's life (registered, challenger, refused, in shadow).
Promotion refuses a backfill run, and a manual or shadow policy without approval.

**The history.** Every alias move of ``champion`` (a promotion by training, by
shadow scoring or by hand, and a rollback) is a model event in the platform database
with ``effective_from``: the first day it serves. That is the day after the newest day
already scored by a champion, and after the last day of the model's training window,
whichever is later — so a promotion never rewrites days already served, and a model
never serves a day it was trained on. :func:`champion_on` reads the history back.
:func:`probation_start` is when the current champion last became champion by promotion.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runway_mlops import catalog
from runway_mlops.context import RunContext
from runway_mlops.errors import PromotionRefusedError
from runway_mlops.lake import open_lake
from runway_mlops.training import registry

if TYPE_CHECKING:
    from runway_mlops.config import PipelineConfig, PlatformSettings


#: Model events that move the ``champion`` alias.
CHAMPION_MOVES = ("promoted", "rolled_back")


@dataclass(frozen=True)
class ChampionPeriod:
    """One entry of the champion history: ``version`` serves from ``effective_from``."""

    version: str
    effective_from: dt.date
    event: str
    event_order: int


def champion_history(url: str, pipeline: str) -> list[ChampionPeriod]:
    """Every alias move of ``champion``, in the order they take effect."""
    periods = []
    for order, event in enumerate(catalog.list_model_events(url, pipeline)):
        if event.event not in CHAMPION_MOVES or not event.model_version:
            continue
        raw = event.details.get("effective_from")
        effective = dt.date.fromisoformat(raw) if raw else dt.date.min
        periods.append(ChampionPeriod(event.model_version, effective, event.event, order))
    return sorted(periods, key=lambda p: (p.effective_from, p.event_order))


def champion_on(url: str, pipeline: str, ds: dt.date) -> ChampionPeriod | None:
    """The champion in effect on ``ds`` (the latest move effective on or before it)."""
    current = None
    for period in champion_history(url, pipeline):
        if period.effective_from <= ds:
            current = period
    return current


def last_scored_day(settings: PlatformSettings, pipeline: PipelineConfig) -> dt.date | None:
    """The newest day with a published champion predictions partition."""
    days = open_lake(settings).partitions("predictions", pipeline.name, "champion")
    return days[-1] if days else None


def effective_from(
    settings: PlatformSettings, pipeline: PipelineConfig, trained_until: dt.date | None
) -> dt.date | None:
    """The first day a champion moved now serves (see the module docstring)."""
    candidates = [
        d + dt.timedelta(days=1) for d in (trained_until, last_scored_day(settings, pipeline)) if d
    ]
    return max(candidates) if candidates else None


def trained_until(tags: dict[str, str]) -> dt.date | None:
    """The last day of a version's training window, from its ``runway.data_window`` tag."""
    window = tags.get("runway.data_window", "")
    if ".." not in window:
        return None
    try:
        return dt.date.fromisoformat(window.split("..")[1])
    except ValueError:
        return None


def probation_start(
    settings: PlatformSettings, pipeline: PipelineConfig, champion_version: str
) -> dt.date | None:
    """When ``champion_version`` last became champion by promotion (not by a rollback)."""
    start = None
    for period in champion_history(settings.database_url, pipeline.name):
        if period.version == champion_version and period.event == "promoted":
            start = period.effective_from
    return start if start != dt.date.min else None


# ------------------------------------------------------------------------------ moves


def record_event(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    version: str,
    event: str,
    *,
    actor: str,
    reason: str,
    context: RunContext,
    details: dict[str, Any] | None = None,
) -> None:
    """Record one event of ``version``'s life in the platform database."""
    catalog.record_model_event(
        settings.database_url,
        catalog.ModelEvent(
            pipeline=pipeline.name,
            model_name=pipeline.model_name,
            model_version=version,
            event=event,
            actor=actor,
            reason=reason,
            details=details or {},
            dag_id=context.dag_id,
            run_id=context.run_id,
        ),
    )


@dataclass(frozen=True)
class Promotion:
    """A champion move: the new champion, the one it replaced, who, and from when."""

    champion: str
    previous_champion: str | None
    promoted_by: str
    effective_from: str | None


def promote(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    version: str,
    context: RunContext,
    *,
    approved_by: str | None = None,
    decision_id: str | None = None,
) -> Promotion:
    """Move ``champion`` to ``version``; refuse from a backfill, and without approval where
    the pipeline's policy asks for one (``approved_by``, or the shadow policy's own win).

    Raises :class:`PromotionRefusedError` (recorded as an event where policy refused).
    """
    version = str(version)
    by_policy = context.actor if context.actor and context.actor.startswith("policy:") else None
    if context.is_backfill:
        reason = (
            "promotion is never done from a backfill: a model trained on past dates stays "
            "challenger; promote it with a manual run or `runway promote`"
        )
        record_event(
            settings,
            pipeline,
            version,
            "promotion_refused",
            actor="policy",
            reason=reason,
            context=context,
        )
        raise PromotionRefusedError(reason)
    if pipeline.promotion.policy == "manual" and approved_by is None:
        raise PromotionRefusedError(
            f"{pipeline.name} promotes by manual approval: approve the run's approve_promotion "
            f"task in the Airflow UI, or run `runway promote --pipeline {pipeline.name} --version {version}`"
        )
    client, _ = registry.connect(settings, pipeline)
    if (
        pipeline.promotion.policy == "shadow"
        and approved_by is None
        and by_policy != "policy:shadow"
        and registry.aliased(client, pipeline.model_name, registry.CHAMPION) is not None
    ):
        reason = (
            f"{pipeline.name} promotes in shadow: v{version} stays challenger, is scored beside "
            "the champion, and the monitoring pipeline promotes it once it wins there "
            f"(monitoring.policies.shadow_promotion); or `runway promote --pipeline "
            f"{pipeline.name} --version {version}`"
        )
        record_event(
            settings,
            pipeline,
            version,
            "in_shadow",
            actor="policy:shadow",
            reason=reason,
            context=context,
        )
        raise PromotionRefusedError(reason)
    registry.require_version(client, pipeline.model_name, version)
    previous = registry.promote(client, pipeline.model_name, version)
    actor = approved_by or by_policy or "policy:auto"
    client.set_model_version_tag(pipeline.model_name, version, "runway.promoted_by", actor)
    if previous:
        client.set_model_version_tag(
            pipeline.model_name, version, "runway.previous_champion", previous
        )
    tags = dict(client.get_model_version(pipeline.model_name, version).tags or {})
    starts = effective_from(settings, pipeline, trained_until(tags))
    record_event(
        settings,
        pipeline,
        version,
        "promoted",
        actor=actor,
        reason=(
            f"approved by {approved_by}"
            if approved_by
            else (context.reason or f"promotion policy {pipeline.promotion.policy}")
        )
        + (f"; previous champion v{previous}" if previous else "; first champion")
        + (f"; serves from {starts}" if starts else ""),
        context=context,
        details={
            "previous_champion": previous,
            "decision_id": decision_id,
            "effective_from": starts.isoformat() if starts else None,
        },
    )
    return Promotion(
        champion=version,
        previous_champion=previous,
        promoted_by=actor,
        effective_from=starts.isoformat() if starts else None,
    )


def rollback(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    reason: str,
    context: RunContext,
    *,
    monitored_day: dt.date,
    figures: dict[str, Any],
) -> tuple[str, str, dt.date]:
    """Put the previous champion back; return (rolled-back version, restored version, the
    first day the restored one serves)."""
    client, _ = registry.connect(settings, pipeline)
    bad, restored = registry.rollback(client, pipeline.model_name, reason)
    serves = effective_from(settings, pipeline, None) or monitored_day + dt.timedelta(days=1)
    record_event(
        settings,
        pipeline,
        restored,
        "rolled_back",
        actor="policy:rollback",
        reason=f"v{bad} rolled back to v{restored}: {reason}",
        context=context,
        details={
            "rolled_back": bad,
            "restored": restored,
            "monitored_day": monitored_day.isoformat(),
            "effective_from": serves.isoformat(),
            "figures": figures,
        },
    )
    return bad, restored, serves
