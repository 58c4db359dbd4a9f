"""Which model version scores a day, and loading it once per process.

The champion history (which version serves from which day) is
:mod:`runway_mlops.training.champion`'s.

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

from runway_mlops.errors import ConfigError, NoModelError
from runway_mlops.training import registry
from runway_mlops.training.champion import (
    champion_history,
    champion_on,
    probation_start,
    trained_until,
)

if TYPE_CHECKING:
    from runway_mlops.config import PipelineConfig, PlatformSettings


@dataclass(frozen=True)
class ResolvedModel:
    """A model version chosen to score, and why."""

    name: str
    version: str
    alias: str  # champion | challenger | previous_champion | explicit
    how: str  # how it was chosen, for the log and the manifest
    feature_version: str | None
    trained_until: dt.date | None
    #: The decision threshold chosen for this version from the pipeline's costs (its
    #: ``runway.decision_threshold`` tag); None: the pipeline's ``inference.threshold``.
    threshold: float | None = None


def decision_threshold(tags: dict[str, str]) -> float | None:
    value = tags.get("runway.decision_threshold")
    return float(value) if value else None


def _version_info(
    client: Any, name: str, version: str
) -> tuple[str | None, dt.date | None, float | None]:
    mv = client.get_model_version(name, version)
    tags = dict(mv.tags or {})
    return tags.get("runway.feature_version"), trained_until(tags), decision_threshold(tags)


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
    feature_version, until, threshold = _version_info(client, name, version)
    return ResolvedModel(name, version, alias, how, feature_version, until, threshold)


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
                decision_threshold(challenger.tags),
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
                    decision_threshold(previous.tags),
                )
            )
    return found


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
