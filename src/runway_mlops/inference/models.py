"""Which model version scores a day, and loading it once per process.

**The champion history.** Every alias move of ``champion`` (a promotion by training, by
shadow scoring or by hand, and a rollback) is a model event in the platform database
with ``effective_from``: the first day it serves. That is the day after the newest day
already scored by a champion, and after the last day of the model's training window,
whichever is later — so a promotion never rewrites days already served, and a model
never serves a day it was trained on. :func:`champion_on` reads the history back.

**Which model scores a day** (:func:`resolve_model`, the ``model`` param of a run):

* ``champion`` — the version behind the ``champion`` alias when the task runs
  (scheduled and manual runs);
* ``recorded`` — the champion in effect on that day by the history (the default for a
  backfill, ``inference.backfill_model``); a day before the first champion is refused,
  naming the first champion and the param that scores it anyway;
* a version number — exactly that version (``explicit``).
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runway_mlops import catalog
from runway_mlops.errors import ConfigError, NoModelError
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


@dataclass(frozen=True)
class ResolvedModel:
    """A model version chosen to score, and why."""

    name: str
    version: str
    alias: str  # champion | challenger | previous_champion | explicit
    how: str  # how it was chosen, for the log and the manifest
    feature_version: str | None
    trained_until: dt.date | None


def _version_info(client: Any, name: str, version: str) -> tuple[str | None, dt.date | None]:
    mv = client.get_model_version(name, version)
    tags = dict(mv.tags or {})
    return tags.get("runway.feature_version"), trained_until(tags)


def resolve_model(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    ds: dt.date,
    choice: str,
) -> ResolvedModel:
    """The version that scores ``ds`` as champion: ``choice`` is champion|recorded|<version>."""
    client, _ = registry.connect(settings, pipeline)
    name = pipeline.model_name
    if choice == "champion":
        found = registry.aliased(client, name, registry.CHAMPION)
        if found is None:
            raise NoModelError(
                f"{name} has no champion yet: train one (the {pipeline.name}_training DAG or "
                f"`runway train --pipeline {pipeline.name}`) before scoring {ds}"
            )
        version, alias, how = found.version, "champion", "the champion alias at run time"
    elif choice == "recorded":
        period = champion_on(settings.database_url, pipeline.name, ds)
        if period is None:
            history = champion_history(settings.database_url, pipeline.name)
            first = (
                f"the first champion, v{history[0].version}, serves from {history[0].effective_from}"
                if history
                else "no champion has been promoted yet"
            )
            raise NoModelError(
                f"no champion of {name} was in effect on {ds} ({first}); to score this day "
                "with today's champion anyway, run it with the param model=champion"
            )
        version, alias = period.version, "champion"
        how = f"the champion recorded for {ds} ({period.event}, effective {period.effective_from})"
    elif choice.isdigit():
        registry.require_version(client, name, choice)
        version, alias, how = choice, "explicit", f"version {choice} named by the run"
    else:
        raise ConfigError(
            f"unknown model choice {choice!r}: expected 'champion', 'recorded' or a version number"
        )
    feature_version, until = _version_info(client, name, version)
    return ResolvedModel(name, version, alias, how, feature_version, until)


def shadow_models(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    ds: dt.date,
    champion_version: str,
) -> list[ResolvedModel]:
    """The versions that score ``ds`` in shadow: the challenger, and the previous champion
    while the current one is in probation (``monitoring.policies.rollback``)."""
    client, _ = registry.connect(settings, pipeline)
    name = pipeline.model_name
    found: list[ResolvedModel] = []
    challenger = registry.aliased(client, name, registry.CHALLENGER)
    if challenger is not None and challenger.version != champion_version:
        found.append(
            ResolvedModel(
                name,
                challenger.version,
                "challenger",
                "the challenger alias",
                challenger.tags.get("runway.feature_version"),
                trained_until(challenger.tags),
            )
        )
    previous = registry.aliased(client, name, registry.PREVIOUS)
    if (
        pipeline.monitoring is not None
        and pipeline.monitoring.policies.rollback.enabled
        and previous is not None
        and previous.version != champion_version
        and all(m.version != previous.version for m in found)
    ):
        start = probation_start(settings, pipeline, champion_version)
        days = pipeline.monitoring.policies.rollback.probation_days
        if start is not None and start <= ds < start + dt.timedelta(days=days):
            found.append(
                ResolvedModel(
                    name,
                    previous.version,
                    "previous_champion",
                    f"the previous champion, during v{champion_version}'s probation from {start}",
                    previous.tags.get("runway.feature_version"),
                    trained_until(previous.tags),
                )
            )
    return found


def probation_start(
    settings: PlatformSettings, pipeline: PipelineConfig, champion_version: str
) -> dt.date | None:
    """When ``champion_version`` last became champion by promotion (not by a rollback)."""
    start = None
    for period in champion_history(settings.database_url, pipeline.name):
        if period.version == champion_version and period.event == "promoted":
            start = period.effective_from
    return start if start != dt.date.min else None


_cache: dict[tuple[str, str, str], Any] = {}
_cache_lock = threading.Lock()


def load_version(settings: PlatformSettings, name: str, version: str) -> Any:
    """The registered pyfunc model ``name`` v``version``, loaded once per process."""
    import mlflow

    key = (settings.mlflow_tracking_uri, name, version)
    with _cache_lock:
        if key not in _cache:
            mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
            mlflow.set_registry_uri(settings.mlflow_tracking_uri)
            _cache[key] = registry.load_model(f"models:/{name}/{version}")
        return _cache[key]
