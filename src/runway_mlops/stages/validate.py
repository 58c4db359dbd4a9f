"""Validate: judge one day's raw partitions with Great Expectations and route every row.

For each dataset of the pipeline (events and reference) the stage runs the suite built
from the pipeline file (:mod:`runway_mlops.validation`) on the day's raw partition, then:

* ``passed`` / ``warned``: the rows that passed become the ``validated`` partition, typed
  with an explicit Arrow schema from the declared columns (so an all-null column keeps
  its type and Spark can union the days); rows failing a ``quarantine`` check go to the
  quarantine zone with a ``_reasons`` column;
* ``blocked``: the whole raw partition is copied to the quarantine zone with the
  validation result, and any validated partition of that day is withdrawn so no later
  task can use it. After every dataset was handled the stage raises
  :class:`~runway_mlops.errors.DataValidationError` naming each failed blocking check.

Every run writes a report to ``<reports_dir>/validation/<pipeline>/ds=<day>/`` and one
catalog record per dataset. Partitions, reports and catalog rows are replaced, never
appended, and nothing depends on the clock: validating a day twice gives the same result.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runway_mlops import catalog, freshness
from runway_mlops.config import DatasetConfig, PipelineConfig, PlatformSettings
from runway_mlops.errors import DataValidationError, MissingPartitionError
from runway_mlops.lake import Lake, open_lake
from runway_mlops.validation.results import ValidationOutcome

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from runway_mlops.validation.judge import Judgement


def report_dir(settings: PlatformSettings, pipeline: str, ds: dt.date) -> Path:
    """The folder of one day's validation report."""
    return settings.reports_dir / "validation" / pipeline / f"ds={ds.isoformat()}"


def validate(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    ds: dt.date,
    *,
    run_id: str | None = None,
    dag_id: str | None = None,
) -> ValidationOutcome:
    """Validate day ``ds`` of every dataset of ``pipeline``.

    Returns the outcome when no dataset is blocked. Raises MissingPartitionError if a raw
    partition is missing (nothing is written then) and DataValidationError, after
    publishing the datasets that passed, if any dataset is blocked.
    """
    with catalog.day_lock(settings.database_url, pipeline.name, [ds], what=f"validate {ds}"):
        return _validate_locked(settings, pipeline, ds, run_id=run_id, dag_id=dag_id)


def _validate_locked(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    ds: dt.date,
    *,
    run_id: str | None,
    dag_id: str | None,
) -> ValidationOutcome:
    from runway_mlops.validation.gx import GXSession
    from runway_mlops.validation.judge import judge_dataset
    from runway_mlops.validation.report import write_report

    lake = open_lake(settings)
    fingerprints = {
        name: lake.manifest("raw", pipeline.name, name, ds).get("fingerprint")
        for name in pipeline.datasets
        if lake.exists("raw", pipeline.name, name, ds)
    }
    frames = read_raw(lake, pipeline, ds)
    # A run time derived from the day keeps the Data Docs paths stable across reruns.
    session = GXSession(
        run_name=f"{pipeline.name}-{ds.isoformat()}",
        run_time=dt.datetime.combine(ds, dt.time(), tzinfo=dt.UTC),
    )
    judgements = {
        name: judge_dataset(session, lake, pipeline, name, frames, ds) for name in pipeline.datasets
    }
    index = write_report(
        session, report_dir(settings, pipeline.name, ds), pipeline.name, ds, judgements
    )
    for name, judgement in judgements.items():
        _store(
            settings, lake, pipeline, ds, name, judgement, index, run_id, dag_id, fingerprints[name]
        )

    outcome = ValidationOutcome(
        pipeline=pipeline.name,
        ds=ds,
        datasets={name: j.result for name, j in judgements.items()},
        report_path=index,
    )
    if outcome.blocked:
        problems = ". ".join(
            f"{r.dataset} blocked: " + "; ".join(f.message for f in r.blocking)
            for r in outcome.blocked
        )
        raise DataValidationError(
            f"{pipeline.name} {ds}: {problems}. The raw partition is kept in quarantine "
            f"(`runway quarantine list --pipeline {pipeline.name} --date {ds}`); fix the "
            f"delivery, then ingest and validate the day again. Report: {index}",
            failures=[
                {"dataset": r.dataset, **f.as_dict()} for r in outcome.blocked for f in r.blocking
            ],
        )
    return outcome


def read_raw(lake: Lake, pipeline: PipelineConfig, ds: dt.date) -> dict[str, pd.DataFrame]:
    """The day's raw frame of every dataset, as ingest typed it (rows indexed 0..n-1).

    A day written by micro-batches holds versions of its records; each key's latest is read.
    """
    from runway_mlops.schema import cast_to_schema

    missing = [
        name for name in pipeline.datasets if not lake.exists("raw", pipeline.name, name, ds)
    ]
    if missing:
        where = lake.dataset_dir("raw", pipeline.name, missing[0]).parent
        raise MissingPartitionError(
            f"cannot validate {pipeline.name} for {ds}: no raw partition of "
            f"{', '.join(missing)} (looked under {where}); run ingest first: "
            f"`runway run ingest --pipeline {pipeline.name} --date {ds}`"
        )
    from runway_mlops.stages.microbatch import latest_versions

    frames = {}
    for name, config in pipeline.datasets.items():
        frame = lake.read_frame("raw", pipeline.name, name, ds)
        if config.key and "batches" in lake.manifest("raw", pipeline.name, name, ds):
            frame = latest_versions(frame, config.key)  # a micro-batch day: one row per record
        # The same lossless cast as ingest: a no-op on what ingest wrote, and a column
        # that cannot take its declared type stays as it is, for the type check to fail.
        frames[name] = cast_to_schema(frame, config.columns).reset_index(drop=True)
    return frames


# -------------------------------------------------------------------------- publishing


def arrow_schema(config: DatasetConfig) -> pa.Schema:
    """The Parquet schema of a validated partition: the declared columns, in order."""
    import pyarrow as pa

    types = {
        "int": pa.int64(),
        "float": pa.float64(),
        "string": pa.string(),
        "timestamp": pa.timestamp("us", tz="UTC"),  # Spark cannot read nanoseconds
        "bool": pa.bool_(),
    }
    return pa.schema([pa.field(name, types[kind]) for name, kind in config.columns.items()])


def _typed_table(frame: pd.DataFrame, config: DatasetConfig, *, reasons: bool = False) -> pa.Table:
    import pyarrow as pa

    schema = arrow_schema(config)
    columns = list(config.columns)
    out = frame[columns].copy()
    for name, kind in config.columns.items():
        if kind == "timestamp":
            out[name] = out[name].dt.floor("us")
        elif kind == "float":
            out[name] = out[name].astype("float64")
    if reasons:
        from runway_mlops.validation.judge import REASONS_COLUMN

        out[REASONS_COLUMN] = frame[REASONS_COLUMN]
        schema = schema.append(pa.field(REASONS_COLUMN, pa.string()))
    return pa.Table.from_pandas(out, schema=schema, preserve_index=False)


def _store(
    settings: PlatformSettings,
    lake: Lake,
    pipeline: PipelineConfig,
    ds: dt.date,
    name: str,
    judgement: Judgement,
    index: Path,
    run_id: str | None,
    dag_id: str | None,
    fingerprint: str | None,
) -> None:
    """Publish one dataset's verdict: lake partitions first, then the catalog."""
    import pyarrow.parquet as pq

    result = judgement.result
    config = pipeline.datasets[name]
    # Another delivery of the day is another validation: the id carries the raw fingerprint.
    validation_id = freshness.validation_id(pipeline.name, name, ds, fingerprint)
    quarantine_dir = lake.location("quarantine", pipeline.name, name, ds)
    details: dict[str, Any] = {
        "validation_id": validation_id,
        "raw_fingerprint": fingerprint,
        "outcome": result.outcome,
        "report": str(index),
        "run_id": run_id,
    }
    entries: list[catalog.QuarantineEntry] = []

    if result.outcome == "blocked":
        reasons = {f.message: result.rows for f in result.blocking}
        body = {**result.as_dict(), "great_expectations": judgement.gx_results}
        manifest = {"scope": "partition", "rows": result.rows, "reasons": list(reasons), **details}
        with lake.publish("quarantine", pipeline.name, name, ds, manifest) as folder:
            raw = lake.fetch("raw", pipeline.name, name, ds)
            for part in sorted(raw.glob("*.parquet")):
                shutil.copyfile(part, folder / part.name)
            (folder / "validation.json").write_text(
                json.dumps(body, indent=1, sort_keys=True, default=str)
            )
        entries.append(
            catalog.QuarantineEntry(
                pipeline=pipeline.name,
                dataset=name,
                ds=ds,
                scope="partition",
                rows=result.rows,
                reasons=reasons,
                path=quarantine_dir,
                validation_id=validation_id,
                run_id=run_id,
            )
        )
        lake.remove("validated", pipeline.name, name, ds)
        catalog.forget_partition(
            settings.database_url, pipeline=pipeline.name, dataset=name, zone="validated", ds=ds
        )
    else:
        table = _typed_table(judgement.kept, config)
        manifest = {"rows": table.num_rows, "columns": list(config.columns), **details}

        def write(folder: Path) -> int:
            pq.write_table(table, folder / "part-0.parquet")
            return int(table.num_rows)

        catalog.publish_partition(
            settings.database_url,
            lake,
            "validated",
            pipeline.name,
            name,
            ds,
            manifest,
            write,
            details={
                "validation_id": validation_id,
                "raw_fingerprint": fingerprint,
                "outcome": result.outcome,
            },
            run_id=run_id,
        )
        if len(judgement.rejected):
            reasons = dict(result.quarantine_reasons)
            rejected = _typed_table(judgement.rejected, config, reasons=True)
            manifest = {"scope": "rows", "rows": rejected.num_rows, "reasons": reasons, **details}
            with lake.publish("quarantine", pipeline.name, name, ds, manifest) as folder:
                pq.write_table(rejected, folder / "part-0.parquet")
            entries.append(
                catalog.QuarantineEntry(
                    pipeline=pipeline.name,
                    dataset=name,
                    ds=ds,
                    scope="rows",
                    rows=rejected.num_rows,
                    reasons=reasons,
                    path=quarantine_dir,
                    validation_id=validation_id,
                    run_id=run_id,
                )
            )
        elif lake.exists("quarantine", pipeline.name, name, ds):
            # What an earlier validation of this day quarantined no longer applies.
            scope = lake.manifest("quarantine", pipeline.name, name, ds).get("scope")
            if scope in ("rows", "partition"):
                lake.remove("quarantine", pipeline.name, name, ds)

    catalog.record_validation(
        settings.database_url,
        catalog.ValidationRecord(
            validation_id=validation_id,
            pipeline=pipeline.name,
            dataset=name,
            ds=ds,
            outcome=result.outcome,
            rows=result.rows,
            rows_quarantined=result.rows_quarantined,
            failures=[f.as_dict() for f in result.failures],
            report_path=str(index),
            dag_id=dag_id,
            run_id=run_id,
        ),
        entries,
    )


# ------------------------------------------------------------------------ micro-batch

#: Checks over a whole day: they wait until the day closes on the micro-batch path.
DAY_CHECKS = ("row_count", "null_fraction")


def partial_day(pipeline: PipelineConfig) -> PipelineConfig:
    """The pipeline with only the checks that hold for part of a day (row-level ones)."""
    datasets = {
        name: config.model_copy(
            update={
                "checks": [c for c in config.checks if c.check not in DAY_CHECKS],
                "drift": None,
            }
        )
        for name, config in pipeline.datasets.items()
    }
    return pipeline.model_copy(update={"datasets": datasets})


def validate_micro_batch(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    days: list[dt.date],
    closed: list[dt.date],
    *,
    run_id: str | None = None,
    dag_id: str | None = None,
) -> list[dt.date]:
    """Validate what a micro-batch changed; return the days whose features may be built.

    A day still open is validated so far with its row-level checks (rows failing them go
    to quarantine as on the daily path); the day-wide checks (row counts, null fractions,
    drift) wait until the batch that closes the day, which validates it whole. A day that
    has no raw partition of every events dataset yet (its first minutes) waits for a later
    batch. A closed day that fails is quarantined and its features are withdrawn, so no
    training run uses it; the error names it after the other days were handled.
    """
    lake = open_lake(settings)
    ready = [
        d
        for d in days
        if all(lake.exists("raw", pipeline.name, n, d) for n in pipeline.events_datasets)
    ]
    partial = partial_day(pipeline)
    problems: list[str] = []
    failed: set[dt.date] = set()
    for ds in sorted(set(ready) | set(closed)):
        whole = ds in closed
        try:
            validate(settings, pipeline if whole else partial, ds, run_id=run_id, dag_id=dag_id)
        except (DataValidationError, MissingPartitionError) as exc:
            failed.add(ds)
            problems.append(f"{ds} ({'closed day' if whole else 'so far'}): {exc}")
            if whole:
                lake.remove("features", pipeline.name, pipeline.features.entity, ds)
    if problems:
        raise DataValidationError(
            f"{pipeline.name} micro-batch: {len(problems)} day(s) failed validation:\n  "
            + "\n  ".join(problems)
        )
    return [d for d in ready if d not in failed]
