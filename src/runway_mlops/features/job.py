"""The feature job: build one day's feature partition from validated lake partitions.

``jobs/build_features.py`` (submitted by Airflow's ``SparkSubmitOperator``) and
``runway run features`` both call :func:`build_feature_partition`. It needs, for day
``ds``: the validated partition of every events dataset, the latest validated snapshot
of every reference dataset on or before ``ds``, and — when present — validated entity
history for the trailing windows (missing history days only shorten the window, and the
manifest records which days were used).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import inspect
import json
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runway_mlops import catalog
from runway_mlops.config import (
    PipelineConfig,
    PlatformSettings,
    get_pipeline,
    load_settings,
    parse_date,
)
from runway_mlops.errors import FeatureBuildError, MissingPartitionError, RunwayError
from runway_mlops.lake import Lake

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


def spark_session(master: str | None = None, app_name: str = "runway") -> SparkSession:
    """A session with Runway's settings; ``master`` is left to spark-submit when None."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    for key, value in SPARK_CONF.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def feature_version(pipeline: PipelineConfig) -> str:
    """A hash of the feature definitions: the config block, the entity schema and the code."""
    from runway_mlops.features import transforms

    entity = pipeline.datasets[pipeline.features.entity]
    payload = json.dumps(
        {
            "features": pipeline.features.model_dump(mode="json"),
            "key": entity.key,
            "columns": entity.columns,
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
    paths = [str(lake.partition_dir("validated", pipeline, dataset, d)) for d in days]
    frame = spark.read.option("basePath", str(base)).parquet(*paths)
    return frame.withColumn("_ds", F.to_date(F.col("ds").cast("string"))).drop("ds")


def _latest_snapshot(lake: Lake, pipeline: str, dataset: str, ds: dt.date) -> dt.date:
    days = [d for d in lake.partitions("validated", pipeline, dataset) if d <= ds]
    if not days:
        raise MissingPartitionError(
            f"no validated snapshot of reference dataset {dataset!r} on or before {ds}: "
            "run ingest and validate for that day first"
        )
    return days[-1]


def build_feature_partition(
    spark: SparkSession,
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    ds: dt.date,
    *,
    run_id: str | None = None,
) -> FeatureResult:
    """Compute and atomically publish ``features/<pipeline>/<entity>/ds=<ds>``."""
    from runway_mlops.features.transforms import compute_features, label_rows

    lake = Lake(settings.lake_dir)
    features = pipeline.features
    entity_name = features.entity
    entity_config = pipeline.datasets[entity_name]
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
            f"{m} ({'quarantined' if m in quarantined else 'not validated yet'})" for m in missing
        ]
        raise MissingPartitionError(
            f"cannot build features of {pipeline.name} for {ds}: no validated partition of "
            f"{', '.join(why)}; see `runway quarantine list` and the validation report"
        )
    version = feature_version(pipeline)
    inputs: dict[str, Any] = {"entity": [ds.isoformat()]}
    entity = _read_days(spark, lake, pipeline.name, entity_name, [ds])

    history = None
    if features.trailing:
        longest = max(features.trailing.windows_days)
        wanted = {ds - dt.timedelta(days=i) for i in range(1, longest + 1)}
        days = sorted(
            d for d in lake.partitions("validated", pipeline.name, entity_name) if d in wanted
        )
        history = (
            _read_days(spark, lake, pipeline.name, entity_name, days) if days else entity.limit(0)
        )
        inputs["history_days"] = [d.isoformat() for d in days]
        inputs["history_days_missing"] = sorted(d.isoformat() for d in wanted - set(days))

    references = {}
    for lookup in features.lookups:
        snapshot = _latest_snapshot(lake, pipeline.name, lookup.dataset, ds)
        references[lookup.dataset] = _read_days(
            spark, lake, pipeline.name, lookup.dataset, [snapshot]
        )
        inputs[f"reference:{lookup.dataset}"] = snapshot.isoformat()

    observations = {}
    for asof in features.asof:
        reach = dt.timedelta(minutes=asof.max_age_minutes + features.prediction_lead_minutes)
        first = ds - dt.timedelta(days=reach.days + 1)
        days = [
            d for d in lake.partitions("validated", pipeline.name, asof.dataset) if first <= d <= ds
        ]
        time_column = pipeline.datasets[asof.dataset].event_time
        assert time_column is not None
        observations[asof.dataset] = (
            _read_days(spark, lake, pipeline.name, asof.dataset, days),
            time_column,
        )
        inputs[f"observations:{asof.dataset}"] = [d.isoformat() for d in days]

    frame = compute_features(
        entity,
        entity_config.key,
        features,
        feature_version=version,
        history=history,
        references=references,
        observations=observations,
    ).drop("_ds")

    expected = entity.count()
    manifest: dict[str, Any] = {"feature_version": version, "inputs": inputs, "run_id": run_id}
    with lake.publish("features", pipeline.name, entity_name, ds, manifest) as folder:
        _write_parquet(frame, folder)
        written = _count_rows(folder)
        if written != expected:
            raise FeatureBuildError(
                f"feature partition for {ds} has {written} rows but the entity has {expected}: "
                "a join duplicated or lost rows (is a reference key unique?)"
            )
        manifest["rows"] = written  # publish() writes the manifest after this block
    if pipeline.label is not None:
        labels = label_rows(entity, entity_config.key, features, pipeline.label)
        label_manifest: dict[str, Any] = {"label": pipeline.label.name, "run_id": run_id}
        with lake.publish("labels", pipeline.name, entity_name, ds, label_manifest) as folder:
            _write_parquet(labels, folder)
            label_manifest["rows"] = _count_rows(folder)
    path = lake.partition_dir("features", pipeline.name, entity_name, ds)
    catalog.record_partition(
        settings.database_url,
        pipeline=pipeline.name,
        dataset=entity_name,
        zone="features",
        ds=ds,
        rows=written,
        path=str(path),
        details={"feature_version": version, "inputs": inputs},
        run_id=run_id,
    )
    return FeatureResult(
        ds=ds, rows=written, path=str(path), feature_version=version, inputs=inputs
    )


def _write_parquet(frame: DataFrame, folder: Path) -> None:
    """Write ``frame`` as one Parquet file with a stable name into ``folder``."""
    spark_out = folder / "_spark"
    frame.coalesce(1).write.mode("overwrite").parquet(str(spark_out))
    # Spark names files with a random UUID; stable names make a rerun byte-for-byte
    # the same partition.
    for i, part in enumerate(sorted(spark_out.glob("part-*.parquet"))):
        shutil.move(str(part), folder / f"part-{i:05d}.parquet")
    shutil.rmtree(spark_out)


def _count_rows(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in folder.glob("*.parquet"))


def main(argv: list[str] | None = None) -> int:
    """Entry point for spark-submit: ``build_features.py --pipeline NAME --ds YYYY-MM-DD``."""
    parser = argparse.ArgumentParser(prog="build_features", description=__doc__)
    parser.add_argument("--pipeline", required=True)
    parser.add_argument("--ds", required=True, help="the local day to build, YYYY-MM-DD")
    parser.add_argument("--run-id", default=None)
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        pipeline = get_pipeline(settings, args.pipeline)
        ds = parse_date(args.ds)
        spark = spark_session()
        try:
            result = build_feature_partition(spark, settings, pipeline, ds, run_id=args.run_id)
        finally:
            spark.stop()
    except RunwayError as exc:
        print(f"build_features: {exc.kind}: {exc}", file=sys.stderr)
        return 1
    print("RUNWAY_RESULT " + json.dumps(asdict(result), default=str))
    return 0
