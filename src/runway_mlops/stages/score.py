"""The scoring stage: score one interval's feature partition with the registered models.

Each function is one task of the ``<pipeline>_inference`` DAG and one ``runway run``
stage::

    wait_for_features >> score_champion >> score_shadow

* :func:`score_champion` resolves the model (see :mod:`runway_mlops.inference.models`:
  the champion alias at run time, the champion recorded for the day in a backfill, or a
  version named by the run), scores the day's feature partition through the model's own
  input preparation — the same feature rows and code path as training and the gates —
  and writes the predictions, each carrying its model name and version, the feature
  version, the interval and the run id;
* :func:`score_shadow` scores the same rows with the challenger (and, while a new
  champion is in probation, the previous champion), stored with ``role = 'shadow'``:
  recorded for monitoring, never served.

Both write a Parquet partition (``lake/predictions/<pipeline>/<role>/ds=<day>``,
published atomically) and the rows of the predictions table (replaced per day and
role: :mod:`runway_mlops.inference.store`). Rerunning a day replaces both.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runway_mlops.context import RunContext
from runway_mlops.errors import ConfigError, ScoringError
from runway_mlops.inference import models, store
from runway_mlops.lake import frame_writer, open_lake

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from runway_mlops.config import InferenceConfig, PipelineConfig, PlatformSettings


#: A scoring run's provenance is the one run context (recorded on every prediction).
ScoringContext = RunContext


@dataclass
class ScoreResult:
    ds: dt.date
    role: str
    rows: int
    path: str | None
    feature_version: str | None
    models: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        if not self.models:
            return f"{self.role} {self.ds}: no model to score with; nothing stored"
        used = ", ".join(f"v{m['version']} ({m['alias']})" for m in self.models)
        return f"{self.role} {self.ds}: {self.rows:,} predictions by {used} at {self.path}"


def _inference(pipeline: PipelineConfig) -> InferenceConfig:
    if pipeline.inference is None:
        raise ConfigError(f"pipeline {pipeline.name!r} has no 'inference' block")
    return pipeline.inference


def model_choice(pipeline: PipelineConfig, context: ScoringContext, param: str | None) -> str:
    """The run's ``model`` param, else ``recorded`` (backfills, by default) or ``champion``."""
    if param:
        return str(param).strip()
    if context.is_backfill:
        return _inference(pipeline).backfill_model
    return "champion"


def read_features(
    settings: PlatformSettings, pipeline: PipelineConfig, ds: dt.date
) -> tuple[pd.DataFrame, str | None]:
    """The day's feature partition and its feature version (MissingPartitionError if none).

    A stale partition (made from data that has changed since: see
    :mod:`runway_mlops.freshness`) is refused with :class:`~runway_mlops.freshness.StaleDataError`.
    ``frame.attrs["features_digest"]`` names what was read; the predictions record it.
    """
    from runway_mlops import freshness

    lake = open_lake(settings)
    entity = pipeline.features.entity
    manifest = lake.manifest("features", pipeline.name, entity, ds)
    freshness.require_fresh(
        settings.database_url, pipeline.name, "features", [ds], what=f"scoring {ds}"
    )
    frame = lake.read_frame("features", pipeline.name, entity, ds)
    frame.attrs["features_digest"] = manifest.get("digest")
    return frame, manifest.get("feature_version")


def predict(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """Positive-class probabilities of the registered model for raw feature rows.

    Calls the model's own ``predict`` (its feature spec maps the columns exactly as in
    training) without MLflow's per-call schema conversion.
    """
    import numpy as np

    if frame.empty:
        return np.empty(0, dtype="float64")
    python_model = model.unwrap_python_model()
    return np.asarray(python_model.predict(None, frame), dtype="float64")


def _check_feature_version(
    pipeline: PipelineConfig, chosen: models.ResolvedModel, ds: dt.date, version: str | None
) -> None:
    if chosen.feature_version and version and chosen.feature_version != version:
        raise ScoringError(
            f"{chosen.name} v{chosen.version} was trained on feature version "
            f"{chosen.feature_version}, but the {ds} partition of {pipeline.name} has "
            f"{version}: rebuild the day's features with the model's version, or train and "
            "promote a model on the current features"
        )


def prediction_frame(
    pipeline: PipelineConfig,
    features: pd.DataFrame,
    scores: np.ndarray,
    chosen: models.ResolvedModel,
    role: str,
    feature_version: str | None,
    context: ScoringContext,
) -> pd.DataFrame:
    """The stored shape of one model's predictions for a day's feature rows."""
    import pandas as pd

    inference = _inference(pipeline)
    key = pipeline.datasets[pipeline.features.entity].key
    out = features[key].copy()
    out["entity_key"] = [store.entity_key(values) for values in features[key].itertuples(False)]
    out["event_time"] = (
        pd.to_datetime(features["event_time"], utc=True) if "event_time" in features else pd.NaT
    )
    out["score"] = scores
    # The version's own threshold (chosen from the pipeline's costs at training), else the
    # pipeline's fixed one.
    threshold = chosen.threshold if chosen.threshold is not None else inference.threshold
    out["decision"] = (scores >= threshold).astype("int8")
    out["threshold"] = threshold
    out["model_name"] = chosen.name
    out["model_version"] = chosen.version
    out["role"] = role
    out["alias"] = chosen.alias
    out["feature_version"] = feature_version or ""
    out["interval_start"] = (
        pd.Timestamp(context.interval_start) if context.interval_start else pd.NaT
    )
    out["interval_end"] = pd.Timestamp(context.interval_end) if context.interval_end else pd.NaT
    out["dag_id"] = context.dag_id
    out["run_id"] = context.run_id
    return out


def _store_rows(pipeline: PipelineConfig, ds: dt.date, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a prediction frame as plain Python values for the database driver."""
    import pandas as pd

    def times(column: str) -> list[Any]:
        values = pd.to_datetime(frame[column], utc=True)
        return [None if pd.isna(v) else v.to_pydatetime() for v in values]

    columns = {
        "entity_key": frame["entity_key"].tolist(),
        "model_version": frame["model_version"].astype(str).tolist(),
        "model_name": frame["model_name"].tolist(),
        "role": frame["role"].tolist(),
        "alias": frame["alias"].tolist(),
        "score": frame["score"].astype("float64").tolist(),
        "decision": frame["decision"].astype("int64").tolist(),
        "threshold": frame["threshold"].astype("float64").tolist(),
        "feature_version": frame["feature_version"].astype(str).tolist(),
        "event_time": times("event_time"),
        "interval_start": times("interval_start"),
        "interval_end": times("interval_end"),
        "dag_id": frame["dag_id"].tolist(),
        "run_id": frame["run_id"].tolist(),
    }
    n = len(frame)
    return (
        [
            {"pipeline": pipeline.name, "ds": ds, **{c: values[i] for c, values in columns.items()}}
            for i in range(n)
        ]
        if n
        else []
    )


def _publish(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    ds: dt.date,
    role: str,
    frame: pd.DataFrame,
    manifest: dict[str, Any],
) -> str:
    """Write the day's Parquet partition, its catalog record, then its table rows.

    ``manifest["features_digest"]`` (what was scored) goes to the catalog record too, so
    a later rebuild of the day's features shows these predictions as stale.
    """
    from runway_mlops import catalog

    lake = open_lake(settings)
    info = {"rows": len(frame), "columns": [str(c) for c in frame.columns], **manifest}

    catalog.publish_partition(
        settings.database_url,
        lake,
        "predictions",
        pipeline.name,
        role,
        ds,
        info,
        frame_writer(frame),
        details={
            "entity": pipeline.features.entity,
            "features_digest": manifest.get("features_digest"),
            "feature_version": manifest.get("feature_version"),
        },
        run_id=manifest.get("run_id"),
    )
    path = lake.location("predictions", pipeline.name, role, ds)
    if _inference(pipeline).write_table:
        store.replace_day(
            settings.database_url, pipeline.name, ds, role, _store_rows(pipeline, ds, frame)
        )
    return str(path)


def score_champion(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    ds: dt.date,
    context: ScoringContext,
    *,
    model: str | None = None,
) -> ScoreResult:
    """Score ``ds`` with the serving model and store the answers (``role='champion'``)."""
    _inference(pipeline)
    features, feature_version = read_features(settings, pipeline, ds)
    chosen = models.resolve_model(settings, pipeline, ds, model_choice(pipeline, context, model))
    _check_feature_version(pipeline, chosen, ds, feature_version)
    scores = predict(models.load_version(settings, chosen.name, chosen.version), features)
    frame = prediction_frame(
        pipeline, features, scores, chosen, "champion", feature_version, context
    )
    used = [
        {"version": chosen.version, "alias": chosen.alias, "how": chosen.how, "rows": len(frame)}
    ]
    path = _publish(
        settings,
        pipeline,
        ds,
        "champion",
        frame,
        {
            "models": used,
            "feature_version": feature_version,
            "features_digest": features.attrs.get("features_digest"),
            "run_id": context.run_id,
        },
    )
    return ScoreResult(ds, "champion", len(frame), path, feature_version, used)


def champion_version_of(
    settings: PlatformSettings, pipeline: PipelineConfig, ds: dt.date
) -> str | None:
    """The version that scored ``ds`` as champion (from its predictions partition)."""
    lake = open_lake(settings)
    if not lake.exists("predictions", pipeline.name, "champion", ds):
        return None
    used = lake.manifest("predictions", pipeline.name, "champion", ds).get("models") or []
    return str(used[0]["version"]) if used else None


def score_shadow(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    ds: dt.date,
    context: ScoringContext,
) -> ScoreResult:
    """Score ``ds`` with the shadow models (challenger; previous champion in probation).

    Needs the day's champion predictions (the shadow models are the ones that are not
    the champion that served the day). With no shadow model the day's shadow rows are
    replaced by none, so a rerun after a promotion leaves no stale shadow rows.
    """
    import pandas as pd

    inference = _inference(pipeline)
    champion = champion_version_of(settings, pipeline, ds)
    if champion is None:
        from runway_mlops.errors import MissingPartitionError

        raise MissingPartitionError(
            f"no champion predictions of {pipeline.name} for {ds}: score_champion runs first"
        )
    features, feature_version = read_features(settings, pipeline, ds)
    chosen = models.shadow_models(settings, pipeline, ds, champion) if inference.shadow else []
    frames, used = [], []
    for shadow in chosen:
        try:
            _check_feature_version(pipeline, shadow, ds, feature_version)
        except ScoringError as exc:
            # A shadow model on other features is left out, and the manifest says why.
            used.append(
                {
                    "version": shadow.version,
                    "alias": shadow.alias,
                    "how": shadow.how,
                    "rows": 0,
                    "skipped": str(exc),
                }
            )
            continue
        scores = predict(models.load_version(settings, shadow.name, shadow.version), features)
        frames.append(
            prediction_frame(pipeline, features, scores, shadow, "shadow", feature_version, context)
        )
        used.append(
            {
                "version": shadow.version,
                "alias": shadow.alias,
                "how": shadow.how,
                "rows": len(features),
            }
        )
    if frames:
        frame = pd.concat(frames, ignore_index=True)
    else:
        empty = features.iloc[0:0]
        placeholder = models.ResolvedModel(pipeline.model_name, "", "none", "", None, None)
        import numpy as np

        frame = prediction_frame(
            pipeline, empty, np.empty(0), placeholder, "shadow", feature_version, context
        )
    path = _publish(
        settings,
        pipeline,
        ds,
        "shadow",
        frame,
        {
            "models": used,
            "champion_version": champion,
            "feature_version": feature_version,
            "features_digest": features.attrs.get("features_digest"),
            "run_id": context.run_id,
        },
    )
    return ScoreResult(
        ds, "shadow", len(frame), path, feature_version, [u for u in used if u["rows"]]
    )


def read_predictions(
    settings: PlatformSettings, pipeline: PipelineConfig, ds: dt.date, role: str
) -> pd.DataFrame:
    """A day's stored predictions of one role from the lake (MissingPartitionError if none)."""
    return open_lake(settings).read_frame("predictions", pipeline.name, role, ds)


# ------------------------------------------------------------------------ micro-batch


def score_new(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    ds: dt.date,
    clock: dt.datetime | None,
    context: ScoringContext,
) -> list[ScoreResult]:
    """Score the day's feature rows nobody scored yet, before their event (micro-batch).

    The champion (the alias at run time) scores the rows whose ``event_time`` is still
    after the stream's ``clock`` (flights not departed) and that have no champion
    prediction; the shadow models score the same rows. A row first seen after its event
    is counted as missed, never scored late. Each role's Parquet partition of the day is
    republished with the new rows added, and only the new rows go to the table, so a
    rerun adds nothing and every row keeps the time it was first stored.
    """
    import pandas as pd

    inference = _inference(pipeline)
    lake = open_lake(settings)
    features, feature_version = read_features(settings, pipeline, ds)
    key = pipeline.datasets[pipeline.features.entity].key
    keys = pd.Series(
        [store.entity_key(v) for v in features[key].itertuples(False)], index=features.index
    )
    previous = {
        role: (
            lake.read_frame("predictions", pipeline.name, role, ds)
            if lake.exists("predictions", pipeline.name, role, ds)
            else None
        )
        for role in store.ROLES
    }
    served = previous["champion"]
    done = set(served["entity_key"]) if served is not None and len(served) else set()
    events = pd.to_datetime(features["event_time"], utc=True)
    open_rows = ~keys.isin(done)
    due = open_rows & (events > pd.Timestamp(clock)) if clock is not None else open_rows
    missed = int((open_rows & ~due).sum())
    rows = features[due]
    champion = models.resolve_model(settings, pipeline, ds, "champion")
    _check_feature_version(pipeline, champion, ds, feature_version)
    chosen = [("champion", champion)]
    if inference.shadow:
        chosen += [
            ("shadow", m) for m in models.shadow_models(settings, pipeline, ds, champion.version)
        ]
    results = []
    # Shadow first: the champion rows mark an entity as done, so a run that dies between
    # the two leaves it open for the rerun, which scores both.
    for role in ("shadow", "champion"):
        frames = []
        used = []
        for _, model in [c for c in chosen if c[0] == role]:
            if role == "shadow":
                try:
                    _check_feature_version(pipeline, model, ds, feature_version)
                except ScoringError as exc:
                    used.append(
                        {
                            "version": model.version,
                            "alias": model.alias,
                            "rows": 0,
                            "skipped": str(exc),
                        }
                    )
                    continue
            scores = predict(models.load_version(settings, model.name, model.version), rows)
            frames.append(
                prediction_frame(pipeline, rows, scores, model, role, feature_version, context)
            )
            used.append({"version": model.version, "alias": model.alias, "rows": len(rows)})
        new = pd.concat(frames, ignore_index=True) if frames else None
        if new is None or new.empty:
            results.append(ScoreResult(ds, role, 0, "", feature_version, used))
            continue
        old = previous[role]
        combined = new if old is None or old.empty else pd.concat([old, new], ignore_index=True)
        combined = combined.drop_duplicates(["entity_key", "model_version"], keep="last")
        manifest = lake.manifest("predictions", pipeline.name, role, ds) if old is not None else {}
        batches = list(manifest.get("batches") or [])
        batches.append({"run_id": context.run_id, "rows": len(new), "models": used})
        lake.write_frame(
            "predictions",
            pipeline.name,
            role,
            ds,
            combined,
            {
                "models": used,
                "feature_version": feature_version,
                "run_id": context.run_id,
                "batches": batches,
                "missed": missed,
            },
        )
        if inference.write_table:
            store.add_rows(
                settings.database_url, pipeline.name, ds, role, _store_rows(pipeline, ds, new)
            )
        path = lake.location("predictions", pipeline.name, role, ds)
        results.append(ScoreResult(ds, role, len(new), path, feature_version, used))
    if missed:
        print(f"{ds}: {missed} row(s) first seen after their event: not scored (missed)")
    return results
