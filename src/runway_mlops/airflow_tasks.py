"""What the Airflow tasks run: thin adapters from a task's context to the stage functions.

Each adapter derives the partition day from the run's data interval (never from the
clock), calls the same stage function as ``runway run``, and maps Runway errors onto
Airflow's retry semantics: a source that is not reachable yet is retried; bad data, a
bad config or a missing upstream partition fails at once (a retry cannot fix it).

Only references go to XCom (paths, row counts), never data. Heavy libraries are imported
inside the stage functions, so importing this module at DAG-parse time costs nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

from runway_mlops.errors import RunwayError, SourceUnavailableError

T = TypeVar("T")


def partition_day(data_interval_start: Any, timezone: str) -> dt.date:
    """The local calendar day a run's data interval starts on: the partition it owns."""
    from zoneinfo import ZoneInfo

    if data_interval_start is None:
        raise ValueError("this run has no data interval: Runway DAGs need a timetable")
    if data_interval_start.tzinfo is None:
        raise ValueError(f"data interval start {data_interval_start!r} has no time zone")
    return data_interval_start.astimezone(ZoneInfo(timezone)).date()


def _run_stage(call: Callable[[], T]) -> T:
    """Run a stage; errors a retry cannot fix fail the task without retrying."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        return call()
    except SourceUnavailableError:
        raise  # the delivery may still arrive: let Airflow retry
    except RunwayError as exc:
        raise AirflowFailException(f"{exc.kind}: {exc}") from exc


def _load(pipeline_name: str) -> tuple[Any, Any]:
    from runway_mlops.config import get_pipeline, load_settings

    settings = load_settings()
    return settings, get_pipeline(settings, pipeline_name)


def ingest_raw(pipeline_name: str, **context: Any) -> dict[str, Any]:
    """Copy the interval's deliveries into the raw zone (Airflow task ``ingest_raw``)."""
    from runway_mlops.stages.ingest import ingest

    settings, pipeline = _load(pipeline_name)
    ds = partition_day(context["data_interval_start"], pipeline.timezone)
    result = _run_stage(lambda: ingest(settings, pipeline, ds, run_id=context["run_id"]))
    return {"ds": ds.isoformat(), "rows": result.rows, "paths": result.paths}


def validate_raw(pipeline_name: str, **context: Any) -> dict[str, Any]:
    """Validate the interval's raw partitions (Airflow task ``validate_raw``)."""
    from runway_mlops.stages.validate import validate

    settings, pipeline = _load(pipeline_name)
    ds = partition_day(context["data_interval_start"], pipeline.timezone)
    dag_id = context["dag"].dag_id if context.get("dag") else None
    outcome = _run_stage(
        lambda: validate(settings, pipeline, ds, run_id=context["run_id"], dag_id=dag_id)
    )
    print(outcome.summary())
    return {"ds": ds.isoformat(), "report": str(outcome.report_path)}


def feature_event_extra(pipeline_name: str, data_interval_start: Any) -> dict[str, Any]:
    """What the feature Asset event carries: the day, the feature version and the path."""
    from runway_mlops.lake import Lake

    settings, pipeline = _load(pipeline_name)
    ds = partition_day(data_interval_start, pipeline.timezone)
    lake = Lake(settings.lake_dir)
    manifest = lake.manifest("features", pipeline.name, pipeline.features.entity, ds)
    return {
        "pipeline": pipeline.name,
        "ds": ds.isoformat(),
        "feature_version": manifest.get("feature_version"),
        "rows": manifest.get("rows"),
        "path": str(lake.partition_dir("features", pipeline.name, pipeline.features.entity, ds)),
    }
