"""What every Runway DAG shares: :func:`runway_dag` and the helpers of the builders.

Every DAG of a pipeline is named ``<name>_<kind>``, starts at the local midnight of the
pipeline's ``start_date``, ends after its ``end_date`` (if any), has ``catchup`` off
(history is loaded with backfills), takes owner and retries from the pipeline file and
is tagged ``runway``, its kind, the pipeline's name and the pipeline's own tags. What
differs per kind (schedule, ``max_active_runs``, params, whether it ends) each builder
passes explicitly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from runway_mlops.cadence import cron

if TYPE_CHECKING:
    from airflow.sdk import DAG, Asset

    from runway_mlops.config import PipelineConfig


#: Whether DAGs built now register with the DAG file being parsed (Airflow's default).
#: :func:`~runway_mlops.orchestration.factory.raise_pipeline_errors` builds every DAG only
#: to find the ones that fail: those must not register a second time from its own DAG
#: file (see :func:`unregistered`).
_registering = True


@contextmanager
def unregistered() -> Iterator[None]:
    """DAGs built inside do not register with the DAG file being parsed."""
    global _registering
    _registering = False
    try:
        yield
    finally:
        _registering = True


def runway_dag(
    pipeline: PipelineConfig,
    kind: str,
    *,
    description: str,
    doc_md: str,
    schedule: Any,
    max_active_runs: int,
    tags: Sequence[str],
    ends: bool = True,
    params: dict[str, Any] | None = None,
) -> DAG:
    """The DAG ``<pipeline>_<kind>`` with what every Runway DAG shares (module docstring).

    ``tags`` come after ``runway`` and before the pipeline's name and own tags;
    ``ends=False`` leaves the end date out (a stream has none); ``params`` are the
    DAG's run parameters, if any.
    """
    from airflow.sdk import DAG

    _, start, end = dag_dates(pipeline)
    return DAG(
        auto_register=_registering,
        dag_id=f"{pipeline.name}_{kind}",
        description=description,
        doc_md=doc_md,
        schedule=schedule,
        start_date=start,
        end_date=end if ends else None,
        catchup=False,
        max_active_runs=max_active_runs,
        params=params,
        default_args=default_args(pipeline),
        tags=["runway", *tags, pipeline.name, *pipeline.tags],
    )


def feature_asset(pipeline_name: str) -> Asset:
    """The Asset the feature DAG updates once per feature partition."""
    from airflow.sdk import Asset

    return Asset(
        name=f"{pipeline_name}_features",
        uri=f"runway://{pipeline_name}/features",
        group="runway-features",
    )


def dag_dates(pipeline: PipelineConfig) -> tuple[Any, Any, Any]:
    """(time zone, first interval start, end or None) of a pipeline's DAGs, local midnights."""
    import pendulum

    zone = pendulum.timezone(pipeline.timezone)
    first = pipeline.start_date
    start = pendulum.datetime(first.year, first.month, first.day, tz=zone)
    end = None
    if pipeline.end_date:
        last = pipeline.end_date + dt.timedelta(days=1)
        end = pendulum.datetime(last.year, last.month, last.day, tz=zone)
    return zone, start, end


def default_args(pipeline: PipelineConfig) -> dict[str, Any]:
    """Owner, retries and retry delay of every task, from the pipeline file."""
    return {
        "owner": pipeline.owner,
        "retries": pipeline.retries,
        "retry_delay": dt.timedelta(seconds=pipeline.retry_delay_seconds),
    }


def interval_timetable(pipeline: PipelineConfig, cadence: str | None = None) -> Any:
    """Data intervals of ``cadence`` (default: the pipeline's) in the pipeline's time zone."""
    from airflow.timetables.interval import CronDataIntervalTimetable

    zone, _, _ = dag_dates(pipeline)
    return CronDataIntervalTimetable(cron(cadence or pipeline.cadence), timezone=zone)
