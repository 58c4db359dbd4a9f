"""Cadence rules in one place: what a schedule may be, when it fires, which day a run owns.

A cadence is an Airflow preset (``@daily``) or a five-field cron string. Every run owns
the local calendar day its data interval starts on (:func:`partition_day`), never the
clock's day; a wide (backfill) run owns every local day whose midnight falls inside its
interval (:func:`interval_days`). :func:`feature_run_dates` inverts that: which run of
each feature DAG owns a day. Used by the config loader, the DAG factory and the task
adapters alike.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runway_mlops.config import PipelineConfig


PRESETS = {"@once", "@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually"}


def validate_cadence(value: str) -> str:
    """Accept an Airflow preset or a five-field cron expression; reject anything else."""
    if value in PRESETS:
        return value
    from croniter import croniter  # light, and only needed for custom cron strings

    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise ValueError(
            f"cadence {value!r} is neither a preset ({', '.join(sorted(PRESETS))}) "
            "nor a valid five-field cron expression such as '*/5 * * * *'"
        )
    try:
        croniter(value, dt.datetime(2013, 1, 1)).get_next(dt.datetime)
    except (ValueError, KeyError, OverflowError):  # croniter's CroniterBadDateError is one
        raise ValueError(
            f"cadence {value!r} never fires (no such date, e.g. 30 February): "
            "nothing would ever run"
        ) from None
    return value


def cadence_is_sub_daily(cadence: str) -> bool:
    """Whether a cadence ever fires twice within 24 hours (checked over a sample fortnight)."""
    if cadence in PRESETS:
        return cadence == "@hourly"
    from croniter import croniter

    times = croniter(cadence, dt.datetime(2013, 1, 1))
    previous = times.get_next(dt.datetime)
    for _ in range(14 * 24 * 60):
        current = times.get_next(dt.datetime)
        if current - previous < dt.timedelta(days=1):
            return True
        if current > dt.datetime(2013, 1, 15):
            return False
        previous = current
    return True


PRESET_CRON = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


def cron(cadence: str) -> str:
    """The five-field cron expression of a cadence (an Airflow preset or a cron string)."""
    if cadence == "@once":
        raise ValueError("cadence '@once' has no data intervals; use a cron cadence")
    return PRESET_CRON.get(cadence, cadence)


def partition_day(data_interval_start: Any, timezone: str) -> dt.date:
    """The local calendar day a run's data interval starts on: the partition it owns."""
    from zoneinfo import ZoneInfo

    if data_interval_start is None:
        raise ValueError("this run has no data interval: Runway DAGs need a timetable")
    if data_interval_start.tzinfo is None:
        raise ValueError(f"data interval start {data_interval_start!r} has no time zone")
    return data_interval_start.astimezone(ZoneInfo(timezone)).date()


def interval_days(pipeline: Any, start: Any, end: Any) -> list[dt.date]:
    """The local days whose midnight falls in ``[start, end)``: a wide run's partitions."""
    first = partition_day(start, pipeline.timezone)
    last = partition_day(end - dt.timedelta(microseconds=1), pipeline.timezone)
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def feature_run_dates(pipeline: PipelineConfig, day: dt.date) -> dict[str, Any]:
    """The logical date of the run of each feature DAG that owns local day ``day``."""
    import pendulum
    from croniter import croniter

    zone = pendulum.timezone(pipeline.timezone)
    # Just after the day's local midnight: the latest fire at or before it starts the run.
    after = pendulum.datetime(day.year, day.month, day.day, tz=zone).add(seconds=1)
    dags = {f"{pipeline.name}_features": pipeline.cadence}
    if pipeline.backfill_interval:
        dags[f"{pipeline.name}_features_backfill"] = pipeline.backfill_interval
    return {
        dag_id: pendulum.instance(croniter(cron(cadence), after).get_prev(dt.datetime), tz=zone)
        for dag_id, cadence in dags.items()
    }
