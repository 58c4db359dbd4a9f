"""The feature job: build feature partitions, one per day, from validated lake partitions.

``jobs/build_features.py`` (submitted by Airflow's ``SparkSubmitOperator``) and
``runway run features`` call :func:`build_feature_range` (:func:`build_feature_partition`
is the range of one day). Day ``ds`` needs: the validated partition of every events
dataset, the latest validated snapshot of every reference dataset on or before ``ds``,
and — when present — validated entity history for the trailing windows (missing history
days only shorten the window, and the manifest records which days were used).

A range of days is computed in one Spark session as one plan (one per group of days
that look up different reference data; normally the whole range is one group) and
written partitioned by day, so a year costs about as much as its data, not 365 Spark
start-ups; each day is still published as its own partition, row for row what a build of
that day alone gives.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import hashlib
import inspect
import json
import shutil
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runway_mlops import catalog, freshness
from runway_mlops.config import (
    PipelineConfig,
    PlatformSettings,
    get_pipeline,
    load_settings,
    parse_date,
)
from runway_mlops.errors import (
    ConfigError,
    FeatureBuildError,
    MissingPartitionError,
    RunwayError,
    ServiceUnavailableError,
)
from runway_mlops.lake import Lake, open_lake

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Spark settings for small daily partitions on a laptop-sized machine; the Airflow task
#: passes the same values to spark-submit.
SPARK_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.adaptive.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.parquet.int96RebaseModeInWrite": "CORRECTED",
    "spark.driver.memory": "2g",
}


#: A master of this scheme is a Spark Connect endpoint (``sc://host:port``): the session
#: is a thin client of a long-lived server, not a JVM of its own.
CONNECT_SCHEME = "sc://"
#: How a Connect client retries a server that does not answer: ~5 s in all, then the
#: stage fails with ServiceUnavailableError (Airflow retries the task). pyspark's
#: default keeps trying for 10 minutes.
CONNECT_RETRIES: dict[str, Any] = {
    "max_retries": 4,
    "initial_backoff": 250,
    "max_backoff": 2000,
    "backoff_multiplier": 2.0,
}


#: Spark Connect's own default port.
CONNECT_PORT = 15002


def is_connect(master: str | None) -> bool:
    """Whether ``master`` names a Spark Connect endpoint."""
    return bool(master) and str(master).startswith(CONNECT_SCHEME)


def connect_address(url: str) -> tuple[str, int]:
    """Host and port of a ``sc://host[:port][/;params]`` endpoint (15002 by default)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url.replace(CONNECT_SCHEME, "http://", 1))
    return parts.hostname or "127.0.0.1", parts.port or CONNECT_PORT


def connect_session(url: str) -> SparkSession:
    """A new client session of the Spark Connect server at ``url``, with Runway's settings.

    Raises ServiceUnavailableError, naming the endpoint, when the server does not answer.
    """
    from pyspark.sql import SparkSession
    from pyspark.sql.connect.client.retries import DefaultPolicy

    spark = SparkSession.builder.remote(url).create()
    spark.client.set_retry_policies([DefaultPolicy(**CONNECT_RETRIES)])
    try:
        for key, value in SPARK_CONF.items():
            if key.startswith("spark.sql."):  # the others are the server's (static)
                spark.conf.set(key, value)
    except Exception as exc:
        spark.stop()
        raise connect_unavailable(url, exc) from None
    return spark


def connect_unavailable(url: str, exc: BaseException) -> ServiceUnavailableError:
    detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    return ServiceUnavailableError(
        f"Spark Connect at {url} does not answer ({detail}); start it with "
        f"`runway spark-connect` (or `runway up`), or point spark_master elsewhere"
    )


def _connect_url(spark: Any) -> str:
    """The ``sc://host:port`` a Connect client session talks to."""
    try:
        return f"{CONNECT_SCHEME}{spark.client._builder.url.netloc}"
    except AttributeError:
        return "the Spark Connect endpoint"


def _connect_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says a Spark Connect server went away (not that a query failed)."""
    from pyspark.errors import PySparkException

    if not isinstance(exc, PySparkException):
        return False
    text = f"{type(exc).__name__} {exc}"
    return "RetriesExceeded" in text or "UNAVAILABLE" in text or "Connection refused" in text


def spark_session(master: str | None = None, app_name: str = "runway") -> SparkSession:
    """A session with Runway's settings; ``master`` is left to spark-submit when None.

    An ``sc://host:port`` master gives a Spark Connect client (:func:`connect_session`).
    """
    from pyspark.sql import SparkSession

    if master and is_connect(master):
        return connect_session(master)
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    for key, value in SPARK_CONF.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def feature_version(pipeline: PipelineConfig) -> str:
    """A hash of the feature definitions: the config block, the entity schema and the code.

    The cadence counts: the daily and the micro-batch features of one pipeline are
    different versions (another prediction time, the ``intraday`` block, the as-of
    blocks skipped at the day's start), and a daily pipeline's version does not change
    with a block it does not compute.
    """
    from runway_mlops.features import transforms

    entity = pipeline.datasets[pipeline.features.entity]
    features = pipeline.features.model_dump(mode="json")
    if not (pipeline.micro_batch and pipeline.features.intraday):
        del features["intraday"]
    features["asof"] = [
        a.model_dump(mode="json")
        for a in pipeline.features.asof_blocks(micro_batch=pipeline.micro_batch)
    ]
    day_start = pipeline.features.at_day_start(micro_batch=pipeline.micro_batch)
    features["daily_prediction"] = "day_start" if day_start else "as_of"
    payload = json.dumps(
        {
            "features": features,
            "key": entity.key,
            "columns": entity.columns,
            "timezone": pipeline.timezone,  # where a day starts: trailing windows' cut-off
        },
        sort_keys=True,
    )
    digest = hashlib.sha256((payload + inspect.getsource(transforms)).encode())
    return digest.hexdigest()[:12]


@dataclass
class FeatureResult:
    ds: dt.date
    rows: int
    path: str
    feature_version: str
    inputs: dict[str, Any] = field(default_factory=dict)


def _read_days(
    spark: SparkSession, lake: Lake, pipeline: str, dataset: str, days: list[dt.date]
) -> DataFrame:
    from pyspark.sql import functions as F

    base = lake.dataset_dir("validated", pipeline, dataset)
    paths = [str(lake.fetch("validated", pipeline, dataset, d)) for d in days]
    frame = spark.read.option("basePath", str(base)).parquet(*paths)
    return frame.withColumn("_ds", F.to_date(F.col("ds").cast("string"))).drop("ds")


@dataclass
class _DayInputs:
    """The partitions one day's features are computed from; its manifest's ``inputs``."""

    ds: dt.date
    history: list[dt.date] | None = None  # None: the pipeline has no trailing features
    history_missing: list[dt.date] = field(default_factory=list)
    snapshots: dict[str, dt.date] = field(default_factory=dict)
    observations: dict[str, list[dt.date]] = field(default_factory=dict)

    def read(self, entity: str) -> list[tuple[str, dt.date]]:
        """Every validated partition the day's features read, as (dataset, day)."""
        read = [(entity, self.ds), *((entity, d) for d in self.history or [])]
        read += [(dataset, day) for dataset, day in self.snapshots.items()]
        read += [(dataset, d) for dataset, days in self.observations.items() for d in days]
        return read

    def manifest(self) -> dict[str, Any]:
        inputs: dict[str, Any] = {"entity": [self.ds.isoformat()]}
        if self.history is not None:
            inputs["history_days"] = [d.isoformat() for d in self.history]
            inputs["history_days_missing"] = [d.isoformat() for d in self.history_missing]
        for dataset, snapshot in self.snapshots.items():
            inputs[f"reference:{dataset}"] = snapshot.isoformat()
        for dataset, days in self.observations.items():
            inputs[f"observations:{dataset}"] = [d.isoformat() for d in days]
        return inputs


def _lookup_datasets(pipeline: PipelineConfig) -> list[str]:
    return list(dict.fromkeys(lookup.dataset for lookup in pipeline.features.lookups))


def missing_feature_inputs(
    settings: PlatformSettings, pipeline: PipelineConfig, days: list[dt.date]
) -> dict[dt.date, list[str]]:
    """Why each day of ``days`` cannot be built yet, oldest first; buildable days are left out.

    A day needs the validated partition of every events dataset and a validated snapshot
    of every looked-up reference dataset on or before it. Missing history days are not a
    problem: they only shorten the trailing windows (and the manifest says so).
    """
    lake = open_lake(settings)
    days = sorted(set(days))
    problems: dict[dt.date, list[str]] = {}
    for ds in days:
        missing = [
            name
            for name in pipeline.events_datasets
            if not lake.exists("validated", pipeline.name, name, ds)
        ]
        if missing:
            quarantined = {
                e.dataset for e in catalog.list_quarantine(settings.database_url, pipeline.name, ds)
            }
            why = [
                f"{m} ({'quarantined' if m in quarantined else 'not validated yet'})"
                for m in missing
            ]
            problems.setdefault(ds, []).append(f"no validated partition of {', '.join(why)}")
    for dataset in _lookup_datasets(pipeline):
        snapshots = lake.partitions("validated", pipeline.name, dataset)
        for ds in days:
            if not snapshots or ds < snapshots[0]:
                problems.setdefault(ds, []).append(
                    f"no validated snapshot of reference dataset {dataset!r} on or before {ds}"
                )
    return dict(sorted(problems.items()))


def _earlier_days_read(pipeline: PipelineConfig, ds: dt.date) -> dict[str, list[dt.date]]:
    """Earlier days (per dataset) the features of ``ds`` read: trailing windows, as-of reach.

    Days before the pipeline's ``start_date`` are left out: they are not expected.
    """
    features = pipeline.features
    read: dict[str, set[dt.date]] = {}
    if features.trailing:
        longest = max(features.trailing.windows_days)
        read.setdefault(features.entity, set()).update(
            ds - dt.timedelta(days=i) for i in range(1, longest + 1)
        )
    for asof in features.asof_blocks(micro_batch=pipeline.micro_batch):
        reach = dt.timedelta(minutes=asof.max_age_minutes + features.prediction_lead_minutes)
        read.setdefault(asof.dataset, set()).update(
            ds - dt.timedelta(days=i) for i in range(1, reach.days + 2)
        )
    return {
        dataset: sorted(d for d in days if d >= pipeline.start_date)
        for dataset, days in read.items()
    }


def unsettled_history(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    days: list[dt.date],
    *,
    settled: Iterable[dt.date] = (),
) -> dict[dt.date, dict[str, list[dt.date]]]:
    """Earlier days the features of ``days`` read that have not been through validation yet.

    The features of a day read earlier days (trailing windows, the as-of lookback). A
    build before those days have settled would quietly use shorter windows, and a day's
    features would depend on the order in which concurrent runs happened to finish (a
    backfill with several active runs). A day is settled for a dataset once it has a
    validated partition or a validation result (a failed day stays out of the windows,
    as the manifest records), and for every dataset once something of it is quarantined
    (a corrupt delivery). Days in ``settled`` (the run's own days, decided by the run)
    and days before ``start_date`` are left out. Returns, per day of ``days``, the
    unsettled earlier days per dataset (the ``wait_for_history`` sensor waits for those
    a running DAG run is processing; the others never came, and only shorten windows).
    """
    lake = open_lake(settings)
    wanted = {ds: _earlier_days_read(pipeline, ds) for ds in sorted(set(days))}
    datasets = {name for per_day in wanted.values() for name in per_day}
    done: dict[str, set[dt.date]] = {
        name: set(lake.partitions("validated", pipeline.name, name)) for name in datasets
    }
    for record in catalog.list_validations(settings.database_url, pipeline.name):
        done.setdefault(record.dataset, set()).add(record.ds)
    # A quarantine entry settles its whole day: a corrupt delivery of one dataset stops
    # the day's validation, so the day's other datasets will not be validated either.
    own = set(settled) | {
        e.ds for e in catalog.list_quarantine(settings.database_url, pipeline.name)
    }
    pending: dict[dt.date, dict[str, list[dt.date]]] = {}
    for ds, per_day in wanted.items():
        for name, earlier in per_day.items():
            waiting = [d for d in earlier if d not in done.get(name, set()) and d not in own]
            if waiting:
                pending.setdefault(ds, {})[name] = waiting
    return pending


def _missing_message(pipeline: str, days: list[dt.date], problems: dict[dt.date, list[str]]) -> str:
    hint = "see `runway quarantine list` and the validation report"
    if len(days) == 1:
        ((ds, reasons),) = problems.items()
        return f"cannot build features of {pipeline} for {ds}: {' and '.join(reasons)}; {hint}"
    listed = "; ".join(f"{ds}: {' and '.join(reasons)}" for ds, reasons in problems.items())
    return (
        f"cannot build features of {pipeline} for {len(problems)} of {len(days)} days "
        f"({days[0]}..{days[-1]}): {listed}; {hint}. Nothing was built."
    )


def _plan_inputs(lake: Lake, pipeline: PipelineConfig, days: list[dt.date]) -> list[_DayInputs]:
    """Resolve each day's inputs exactly as a build of that day alone would."""
    features = pipeline.features
    name = pipeline.name
    entity_days = set(lake.partitions("validated", name, features.entity))
    snapshots = {d: lake.partitions("validated", name, d) for d in _lookup_datasets(pipeline)}
    asofs = features.asof_blocks(micro_batch=pipeline.micro_batch)
    observed = {a.dataset: lake.partitions("validated", name, a.dataset) for a in asofs}
    plans = []
    for ds in days:
        plan = _DayInputs(ds)
        if features.trailing:
            longest = max(features.trailing.windows_days)
            wanted = {ds - dt.timedelta(days=i) for i in range(1, longest + 1)}
            plan.history = sorted(wanted & entity_days)
            plan.history_missing = sorted(wanted - entity_days)
        for dataset, available in snapshots.items():
            # The latest validated snapshot on or before the day (missing_feature_inputs
            # has made sure there is one).
            plan.snapshots[dataset] = available[bisect.bisect_right(available, ds) - 1]
        for asof in asofs:
            reach = dt.timedelta(minutes=asof.max_age_minutes + features.prediction_lead_minutes)
            first = ds - dt.timedelta(days=reach.days + 1)
            plan.observations[asof.dataset] = [
                d for d in observed[asof.dataset] if first <= d <= ds
            ]
        plans.append(plan)
    return plans


def _snapshot_groups(
    lake: Lake, pipeline: PipelineConfig, plans: list[_DayInputs]
) -> list[list[_DayInputs]]:
    """Split the days into groups that look up the same reference data.

    Ingest copies the latest delivered snapshot into every day, so consecutive days hold
    byte-identical snapshot files under different dates: those are one snapshot, and a
    range normally needs one computation. Files that differ in any byte start a new group.
    """
    digests: dict[tuple[str, dt.date], str] = {}

    def digest(dataset: str, snapshot: dt.date) -> str:
        if (dataset, snapshot) not in digests:
            folder = lake.fetch("validated", pipeline.name, dataset, snapshot)
            files = [
                hashlib.sha256(part.read_bytes()).hexdigest()
                for part in sorted(folder.glob("*.parquet"))
            ]
            digests[dataset, snapshot] = hashlib.sha256(" ".join(files).encode()).hexdigest()
        return digests[dataset, snapshot]

    groups: dict[tuple[str, ...], list[_DayInputs]] = {}
    for plan in plans:
        same = tuple(digest(dataset, snapshot) for dataset, snapshot in plan.snapshots.items())
        groups.setdefault(same, []).append(plan)
    return list(groups.values())


def _compute_group(
    spark: SparkSession,
    lake: Lake,
    pipeline: PipelineConfig,
    plans: list[_DayInputs],
    version: str,
) -> DataFrame:
    """Features of a group of days that share their reference data, with ``_ds``."""
    from runway_mlops.features.transforms import compute_features

    features = pipeline.features
    name = pipeline.name

    def union(days: Iterable[dt.date]) -> list[dt.date]:
        return sorted(set(days))

    entity = _read_days(spark, lake, name, features.entity, [p.ds for p in plans])
    history = None
    if features.trailing:
        # Each entity day joins only its own window (see transforms.trailing_features), so
        # reading the union of the days' windows gives every day what it alone would see.
        days = union(d for p in plans for d in p.history or [])
        history = _read_days(spark, lake, name, features.entity, days) if days else entity.limit(0)
    # Every day of the group has the same snapshot content: read the first day's.
    references = {
        dataset: _read_days(spark, lake, name, dataset, [snapshot])
        for dataset, snapshot in plans[0].snapshots.items()
    }
    observations = {}
    for asof in features.asof_blocks(micro_batch=pipeline.micro_batch):
        time_column = pipeline.datasets[asof.dataset].event_time
        assert time_column is not None
        days = union(d for p in plans for d in p.observations[asof.dataset])
        observations[asof.dataset] = (
            _read_days(spark, lake, name, asof.dataset, days),
            time_column,
        )
    return compute_features(
        entity,
        pipeline.datasets[features.entity].key,
        features,
        feature_version=version,
        history=history,
        references=references,
        observations=observations,
        micro_batch=pipeline.micro_batch,
        timezone=pipeline.timezone,
    )


def build_feature_partition(
    spark: SparkSession,
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    ds: dt.date,
    *,
    run_id: str | None = None,
) -> FeatureResult:
    """Compute and atomically publish ``features/<pipeline>/<entity>/ds=<ds>`` (and labels).

    The range build for one day: see :func:`build_feature_range`.
    """
    (result,) = build_feature_range(spark, settings, pipeline, [ds], run_id=run_id)
    return result


def build_feature_range(
    spark: SparkSession,
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    days: list[dt.date],
    *,
    run_id: str | None = None,
) -> list[FeatureResult]:
    """Compute the feature partitions of ``days`` together and publish each day.

    Every day gets its own partition in ``features`` (and ``labels``), manifest and
    catalog record, the same as a build of that day alone gives, row for row and in the
    same order: each day reads its own trailing window, reference snapshot and
    observations, and the result is written partitioned by day, one file per day sorted
    by the entity key.

    Days are computed together when they look up the same reference data (see
    :func:`_snapshot_groups`). The entity key must tell rows of different days apart (a
    key repeated across days shows up as a row-count error).

    Raises:
        MissingPartitionError: naming every day whose inputs are missing (see
            :func:`missing_feature_inputs`), before anything is computed.
        FeatureBuildError: naming every day whose feature rows do not match its entity
            rows, before any day is published.
    """
    days = sorted(set(days))
    if not days:
        return []
    with catalog.day_lock(
        settings.database_url, pipeline.name, days, what=f"build_features {days[0]}..{days[-1]}"
    ):
        try:
            return _build_locked(spark, settings, pipeline, days, run_id=run_id)
        except Exception as exc:
            # A Connect server that died mid-job: nothing was published (each day is
            # staged, then swapped in whole); a retry on a live server redoes the days.
            if _connect_lost(exc):
                raise connect_unavailable(_connect_url(spark), exc) from None
            raise


def _build_locked(
    spark: SparkSession,
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    days: list[dt.date],
    *,
    run_id: str | None,
) -> list[FeatureResult]:
    from runway_mlops.features.transforms import DS, label_rows

    problems = missing_feature_inputs(settings, pipeline, days)
    if problems:
        raise MissingPartitionError(_missing_message(pipeline.name, days, problems))
    # A day's own validated partitions must judge its current delivery.
    freshness.require_fresh(
        settings.database_url,
        pipeline.name,
        "validated",
        days,
        what=f"build_features of {days[0]}..{days[-1]}",
    )
    validations = {
        (r["dataset"], r["ds"]): r["details"].get("validation_id")
        for r in catalog.list_partitions(settings.database_url, pipeline.name, zone="validated")
    }
    lake = open_lake(settings)
    features = pipeline.features
    entity_name = features.entity
    key = pipeline.datasets[entity_name].key
    version = feature_version(pipeline)
    plans = _plan_inputs(lake, pipeline, days)
    entity = _read_days(spark, lake, pipeline.name, entity_name, days)
    expected = {row[DS]: row["count"] for row in entity.groupBy(DS).count().collect()}

    # Spark's output goes to a private folder first: nothing is published until every
    # day is written and its row count checked.
    staging = Path(
        tempfile.mkdtemp(prefix=f"features-{pipeline.name}-", dir=lake.work_dir("staging"))
    )
    try:
        # One computation and write per group of days with the same reference data (one
        # group, unless a snapshot changed within the range); no union, so no group can
        # widen another's column types.
        frame_of = {}
        for group in _snapshot_groups(lake, pipeline, plans):
            frame = _compute_group(spark, lake, pipeline, group, version)
            _write_by_day(frame, key, staging / "features")
            frame_of.update(dict.fromkeys((plan.ds for plan in group), frame))
        written = {ds: _count_rows(_day_dir(staging / "features", ds)) for ds in days}
        wrong = [ds for ds in days if written[ds] != expected.get(ds, 0)]
        if wrong:
            counts = "; ".join(
                f"feature partition for {ds} has {written[ds]} rows but the entity has "
                f"{expected.get(ds, 0)}"
                for ds in wrong
            )
            raise FeatureBuildError(
                f"{counts}: a join duplicated or lost rows (is a reference key unique?)"
            )
        labels = None
        if pipeline.label is not None:
            labels = label_rows(entity, [*key, DS], features, pipeline.label)
            _write_by_day(labels, key, staging / "labels")

        results = []
        for plan in plans:
            ds, inputs = plan.ds, plan.manifest()
            # What the day was made from, by content: freshness compares these ids with
            # the validations the lake holds later (a re-delivery makes the day stale).
            input_validations = {
                freshness.input_key(dataset, day): validations.get((dataset, day))
                for dataset, day in plan.read(entity_name)
            }
            digest = freshness.features_digest(version, input_validations)
            manifest: dict[str, Any] = {
                "feature_version": version,
                "inputs": inputs,
                "input_validations": input_validations,
                "digest": digest,
                "run_id": run_id,
            }
            if pipeline.label is not None:
                assert labels is not None
                label_manifest: dict[str, Any] = {"label": pipeline.label.name, "run_id": run_id}
                _publish_day(
                    lake, "labels", pipeline.name, entity_name, ds, label_manifest, staging, labels
                )
            rows = catalog.publish_partition(
                settings.database_url,
                lake,
                "features",
                pipeline.name,
                entity_name,
                ds,
                manifest,
                partial(_fill_day, staging / "features", ds, frame_of[ds]),
                details={
                    "feature_version": version,
                    "inputs": inputs,
                    "input_validations": input_validations,
                    "digest": digest,
                },
                run_id=run_id,
            )
            path = lake.location("features", pipeline.name, entity_name, ds)
            results.append(
                FeatureResult(
                    ds=ds, rows=rows, path=str(path), feature_version=version, inputs=inputs
                )
            )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return results


def _day_dir(folder: Path, ds: dt.date) -> Path:
    """Where Spark's ``partitionBy("_ds")`` put day ``ds`` under ``folder``."""
    from runway_mlops.features.transforms import DS

    return folder / f"{DS}={ds.isoformat()}"


def _write_by_day(frame: DataFrame, key: list[str], folder: Path) -> None:
    """Write ``frame`` as ``folder/_ds=<day>/``: one file per day, rows sorted by ``key``.

    Repartitioning by day puts all of a day's rows in one task, hence one file; sorting
    by key makes the file the same whichever days were built with it.
    """
    from runway_mlops.features.transforms import DS

    (
        frame.repartition(DS)
        .sortWithinPartitions(DS, *key)
        .write.mode("append")  # groups of days add their own day folders
        .partitionBy(DS)
        .parquet(str(folder))
    )


def _publish_day(
    lake: Lake,
    zone: str,
    pipeline: str,
    dataset: str,
    ds: dt.date,
    manifest: dict[str, Any],
    staging: Path,
    frame: DataFrame,
) -> int:
    """Publish day ``ds`` of ``staging/<zone>`` as its partition; returns its rows."""
    with lake.publish(zone, pipeline, dataset, ds, manifest) as folder:
        manifest["rows"] = _fill_day(staging / zone, ds, frame, folder)
    return int(manifest["rows"])


def _fill_day(staged: Path, ds: dt.date, frame: DataFrame, folder: Path) -> int:
    """Move day ``ds`` of Spark's output ``staged`` into ``folder``; returns its rows."""
    from runway_mlops.features.transforms import DS

    files = sorted(_day_dir(staged, ds).glob("part-*.parquet"))
    if files:
        _place_parquet(files, folder)
    else:
        # A day without rows gets no folder from Spark: write the schema alone, as a
        # build of that day alone would.
        _write_parquet(frame.drop(DS).limit(0), folder)
    return _count_rows(folder)


def _write_parquet(frame: DataFrame, folder: Path) -> None:
    """Write ``frame`` as one Parquet file with a stable name into ``folder``."""
    spark_out = folder / "_spark"
    frame.coalesce(1).write.mode("overwrite").parquet(str(spark_out))
    _place_parquet(sorted(spark_out.glob("part-*.parquet")), folder)
    shutil.rmtree(spark_out)


def _place_parquet(files: list[Path], folder: Path) -> None:
    # Spark names files with a random UUID; stable names make a rerun byte-for-byte
    # the same partition.
    for i, part in enumerate(files):
        shutil.move(str(part), folder / f"part-{i:05d}.parquet")


def _count_rows(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in folder.glob("*.parquet"))


def _job_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="build_features", description=__doc__)
    parser.add_argument("--pipeline", required=True)
    when = parser.add_mutually_exclusive_group(required=True)
    when.add_argument("--ds", help="the local day to build, YYYY-MM-DD")
    when.add_argument(
        "--from",
        dest="date_from",
        metavar="YYYY-MM-DD",
        help="first day of a range to build in one Spark job (with --to)",
    )
    when.add_argument(
        "--days", metavar="D1,D2,...", help="comma-separated days to build in one Spark job"
    )
    parser.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="last day of the range")
    parser.add_argument("--run-id", default=None)
    return parser


def run_job(argv: list[str], *, master: str | None = None) -> list[FeatureResult]:
    """The feature job's work for its arguments (see :func:`main`), in this process.

    ``master``: a Spark Connect endpoint to be a client of (the Airflow task on a
    ``spark_connect`` connection); None: the profile's Connect master, else the master
    spark-submit gave this process. Raises RunwayError (ServiceUnavailableError when the
    Connect server does not answer).
    """
    parser = _job_parser()
    args = parser.parse_args(argv)
    if bool(args.date_from) != bool(args.date_to):
        parser.error("--from and --to go together")
    settings = load_settings()
    pipeline = get_pipeline(settings, args.pipeline)
    if args.ds:
        days = [parse_date(args.ds)]
    elif args.days:
        days = [parse_date(d.strip(), "--days date") for d in args.days.split(",") if d.strip()]
        if not days:
            raise ConfigError("--days lists no day")
    else:
        first = parse_date(args.date_from, "--from date")
        last = parse_date(args.date_to, "--to date")
        if last < first:
            raise ConfigError(f"--to {last} is before --from {first}")
        days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    if master is None and settings.spark_connect_url:
        master = settings.spark_connect_url
    # Under spark-submit (no master) the master is spark-submit's.
    spark = spark_session(master)
    try:
        return build_feature_range(spark, settings, pipeline, days, run_id=args.run_id)
    finally:
        spark.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point for spark-submit.

    ``build_features.py --pipeline NAME (--ds D | --from D --to D | --days D1,D2,...)``;
    prints one ``RUNWAY_RESULT <json>`` line per day built.
    """
    try:
        results = run_job(sys.argv[1:] if argv is None else argv)
    except RunwayError as exc:
        print(f"build_features: {exc.kind}: {exc}", file=sys.stderr)
        return 1
    for result in results:
        print("RUNWAY_RESULT " + json.dumps(asdict(result), default=str))
    return 0
