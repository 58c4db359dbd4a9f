"""The training set: feature and label partitions of a window, split by date, with lineage.

A training run names a window of local days (``start`` .. ``end``) cut into three
consecutive parts — train, validation (early stopping, tuning) and test (the gates) —
never shuffled across time. For each day it needs the feature partition, the label
partition and a validated partition of every events dataset (a day whose raw data was
later blocked has a stale feature partition; it counts as quarantined). A day that is
missing, quarantined or stale (its features were made from data that has changed since:
:mod:`runway_mlops.freshness`) refuses the run, or — with ``missing_partitions: skip`` —
is left out and recorded.

Rows enter only if their outcome was known by the end of the window
(``outcome_known_at`` before the local midnight after ``end``), so a model trained "as
of" a date never sees a label from after it.

The set is written once per window under ``<home>/training-sets/<pipeline>/`` as three
Parquet files plus ``lineage.json``; XCom carries that folder, never the data.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from runway_mlops import catalog, freshness
from runway_mlops.errors import ConfigError, MissingPartitionError
from runway_mlops.lake import Lake, open_lake

if TYPE_CHECKING:
    import pandas as pd

    from runway_mlops.config import PipelineConfig, PlatformSettings, WindowConfig

SPLITS = ("train", "validation", "test")
#: Columns of a feature partition that are never model inputs.
NON_FEATURES = ("event_time", "prediction_time", "feature_version", "_ds", "ds")


@dataclass(frozen=True)
class TrainingWindow:
    """Consecutive local days: train [start, validation_from), validation, test [.., end]."""

    start: dt.date
    validation_from: dt.date
    test_from: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if not self.start < self.validation_from < self.test_from <= self.end:
            raise ConfigError(
                f"training window {self.describe()} is not in order: expected "
                "start < validation_from < test_from <= end"
            )

    @classmethod
    def ending(cls, end: dt.date, config: WindowConfig) -> TrainingWindow:
        """The scheduled window: ``config.days`` days up to and including ``end``."""
        test_from = end - dt.timedelta(days=config.test_days - 1)
        validation_from = test_from - dt.timedelta(days=config.validation_days)
        start = end - dt.timedelta(days=config.days - 1)
        return cls(start, validation_from, test_from, end)

    @property
    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def split_of(self, day: dt.date) -> str:
        if day < self.validation_from:
            return "train"
        return "validation" if day < self.test_from else "test"

    def describe(self) -> str:
        return (
            f"{self.start}..{self.end} (train from {self.start}, validation from "
            f"{self.validation_from}, test from {self.test_from})"
        )

    @property
    def key(self) -> str:
        return f"{self.start}_{self.validation_from}_{self.test_from}_{self.end}"

    def as_dict(self) -> dict[str, str]:
        return {k: v.isoformat() for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> TrainingWindow:
        return cls(**{k: dt.date.fromisoformat(v) for k, v in data.items()})


@dataclass(frozen=True)
class TrainingSet:
    """A written training set: where it is and what it was made of."""

    path: Path
    window: TrainingWindow
    lineage: dict[str, Any]

    def frame(self, split: str) -> pd.DataFrame:
        import pandas as pd

        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return pd.read_parquet(self.path / f"{split}.parquet")

    @property
    def label(self) -> str:
        return str(self.lineage["label"])

    @property
    def features(self) -> list[str]:
        return list(self.lineage["features"])

    @classmethod
    def load(cls, path: Path | str) -> TrainingSet:
        path = Path(path)
        try:
            lineage = json.loads((path / "lineage.json").read_text())
        except FileNotFoundError:
            raise MissingPartitionError(
                f"no training set at {path} (lineage.json missing): rerun build_training_set"
            ) from None
        return cls(path, TrainingWindow.from_dict(lineage["window"]), lineage)


def _day_status(
    lake: Lake, pipeline: PipelineConfig, day: dt.date, quarantined: set[tuple[str, dt.date]]
) -> tuple[str | None, dict[str, str]]:
    """(problem or None, {dataset: validation id}) for one day of the window."""
    entity = pipeline.features.entity
    validation_ids: dict[str, str] = {}
    for name in pipeline.events_datasets:
        if not lake.exists("validated", pipeline.name, name, day):
            state = "quarantined" if (name, day) in quarantined else "not validated"
            return f"{name} {state}", validation_ids
        validation_ids[name] = str(
            lake.manifest("validated", pipeline.name, name, day).get("validation_id")
        )
    for zone in ("features", "labels"):
        if not lake.exists(zone, pipeline.name, entity, day):
            return f"no {zone} partition (run build_features for {day})", validation_ids
    return None, validation_ids


def build_training_set(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    window: TrainingWindow,
    *,
    missing_partitions: str | None = None,
) -> TrainingSet:
    """Assemble and write the training set of ``window``; refuse or skip unusable days."""
    import pandas as pd

    if pipeline.training is None or pipeline.label is None:
        raise ConfigError(f"pipeline {pipeline.name!r} has no 'training' and 'label' blocks")
    policy = missing_partitions or pipeline.training.missing_partitions
    lake = open_lake(settings)
    entity = pipeline.features.entity
    key = pipeline.datasets[entity].key
    label = pipeline.label.name
    quarantined = {
        (e.dataset, e.ds)
        for e in catalog.list_quarantine(settings.database_url, pipeline.name)
        if e.scope == "partition"
    }

    # Features made from data that has changed since (a corrected re-delivery of the day
    # or of a day its windows read) are unusable until rebuilt.
    stale = {
        s.ds: s.reason
        for s in freshness.stale_partitions(
            settings.database_url, pipeline.name, zones=["features"], days=window.days
        )
    }
    used: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for day in window.days:
        problem, validation_ids = _day_status(lake, pipeline, day, quarantined)
        if problem is None and day in stale:
            problem = f"stale features ({stale[day]})"
        if problem:
            skipped[day.isoformat()] = problem
            continue
        used.append(
            {
                "ds": day.isoformat(),
                "split": window.split_of(day),
                "features": lake.location("features", pipeline.name, entity, day),
                "labels": lake.location("labels", pipeline.name, entity, day),
                "feature_version": lake.manifest("features", pipeline.name, entity, day).get(
                    "feature_version"
                ),
                "validation_ids": validation_ids,
            }
        )
    if skipped and policy == "refuse":
        listed = "; ".join(f"{d}: {why}" for d, why in list(skipped.items())[:10])
        more = f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        raise MissingPartitionError(
            f"training window {window.describe()} of {pipeline.name} has {len(skipped)} "
            f"unusable day(s): {listed}{more}. Rebuild them (runway quarantine list; rerun "
            "the feature DAG for those days), choose another window, or set "
            "training.missing_partitions: skip"
        )
    versions = sorted({str(u["feature_version"]) for u in used})
    if len(versions) > 1:
        raise MissingPartitionError(
            f"training window {window.describe()} mixes feature versions {versions}: "
            "rebuild the older feature partitions (backfill the feature DAG) first"
        )
    for split in SPLITS:
        if not any(u["split"] == split for u in used):
            raise MissingPartitionError(
                f"training window {window.describe()} of {pipeline.name} has no usable day in "
                f"its {split} part (skipped: {', '.join(skipped) or 'none'})"
            )

    # Rows count only if their outcome was known by the end of the window.
    horizon = dt.datetime.combine(
        window.end + dt.timedelta(days=1), dt.time(), tzinfo=ZoneInfo(pipeline.timezone)
    )
    frames: dict[str, list[pd.DataFrame]] = {s: [] for s in SPLITS}
    dropped_unknown = 0
    for item in used:
        day = dt.date.fromisoformat(item["ds"])
        features = lake.read_frame("features", pipeline.name, entity, day)
        labels = lake.read_frame("labels", pipeline.name, entity, day)
        known = pd.to_datetime(labels["outcome_known_at"], utc=True) < horizon
        dropped_unknown += int((~known).sum())
        labels = labels.loc[known, [*key, label]]
        joined = features.merge(labels, on=key, how="inner", validate="one_to_one")
        joined["ds"] = item["ds"]
        frames[item["split"]].append(joined)

    # Key columns are identifiers, not features — unless the feature block lists them
    # (``carrier: carrier``), in which case the feature job kept them as features.
    identifiers = set(key) - set(pipeline.features.columns)
    exclude = identifiers | set(NON_FEATURES) | set(pipeline.training.exclude_features) | {label}
    sample = next(f for fs in frames.values() for f in fs)
    feature_columns = [c for c in sample.columns if c not in exclude]
    unknown_categorical = [c for c in pipeline.training.categorical if c not in feature_columns]
    if unknown_categorical:
        raise ConfigError(
            f"training.categorical names {unknown_categorical}, which are not feature columns "
            f"of {pipeline.name} (features: {', '.join(feature_columns)})"
        )

    target = settings.home / "training-sets" / pipeline.name / window.key
    staging = target.parent / f".{window.key}-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    rows: dict[str, int] = {}
    positives: dict[str, int] = {}
    try:
        for split, parts in frames.items():
            frame = pd.concat(parts, ignore_index=True) if parts else sample.iloc[0:0]
            frame.to_parquet(staging / f"{split}.parquet", index=False)
            rows[split] = len(frame)
            positives[split] = int(frame[label].sum())
        lineage = {
            "pipeline": pipeline.name,
            "entity": entity,
            "key": key,
            "label": label,
            "label_expression": pipeline.label.expression,
            "window": window.as_dict(),
            "outcome_known_before": horizon.isoformat(),
            "rows_outcome_unknown": dropped_unknown,
            "feature_version": versions[0],
            "features": feature_columns,
            "categorical": list(pipeline.training.categorical),
            "rows": rows,
            "positives": positives,
            "partitions": used,
            "skipped_days": skipped,
            "missing_partitions_policy": policy,
        }
        (staging / "lineage.json").write_text(json.dumps(lineage, indent=1, sort_keys=True))
        # Same window, same inputs, same set: replace any earlier copy in one rename.
        if target.exists():
            trash = target.parent / f".trash-{uuid.uuid4().hex}"
            os.rename(target, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return TrainingSet(target, window, lineage)


def mlflow_dataset(
    training_set: TrainingSet, pipeline_name: str, split: str, frame: pd.DataFrame
) -> Any:
    """``split`` of ``training_set`` as an MLflow dataset input (``mlflow.log_input``).

    ``mlflow.data.from_pandas`` infers the schema by converting and checking every value
    of every row: ~10 s for a 250,000-row split here, more than training the model. The
    split comes from a Parquet file, so each column holds one type: it is read off the
    column's first non-null values (:func:`frame_schema`); whether a column may be null
    is a vectorised check of the whole column. The digest, source, targets and profile
    are MLflow's own.
    """
    from functools import cached_property

    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.pandas_dataset import PandasDataset

    class _TypedPandasDataset(PandasDataset):
        @cached_property
        def schema(self) -> Any:
            # As MLflow's own: no schema when a column's type has none (e.g. Decimal).
            try:
                return frame_schema(self.df)
            except Exception:
                return None

    return _TypedPandasDataset(
        df=frame,
        source=resolve_dataset_source(str(training_set.path / f"{split}.parquet")),
        targets=training_set.label,
        name=f"{pipeline_name}-{split}-{training_set.window.key}",
    )


def frame_schema(frame: pd.DataFrame, sample_rows: int = 1000) -> Any:
    """The MLflow schema of a frame whose columns each hold one type (as Parquet's do).

    The same schema as MLflow's inference over every row (``tests/unit/test_training.py``
    compares them on a training set the pipeline built, with a null in its last row): each column's type from up to
    ``sample_rows`` of its non-null values, ``required`` when it has no null at all. A
    column with no value at all gets MLflow's inference over the whole column.
    """
    from mlflow.types.schema import Schema
    from mlflow.types.utils import _infer_schema

    specs = []
    for name in frame.columns:
        column = frame[[name]]
        present = column.dropna()
        inferred = _infer_schema(present.head(sample_rows) if len(present) else column)
        specs.append({**inferred.to_dict()[0], "required": len(present) == len(column)})
    return Schema.from_json(json.dumps(specs))
