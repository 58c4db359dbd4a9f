"""The built-in interval check: an events row belongs to the day it was delivered for.

A day's delivery (``<dataset>/ds=YYYY-MM-DD/``, or the rows a micro-batch routed to the
day) holds the events of that local day in the pipeline's time zone
(:func:`runway_mlops.sources.day_interval`). A row whose ``event_time`` lies outside it
(another day's rows appended to a file, a provider shifting its clock) would put the
same event into two days' partitions, so it goes to quarantine with the day, zone and
UTC bounds as its reason. It is a ``quarantine`` check like any other: the rows count
toward ``max_quarantine_fraction`` and the check appears in the validation report.

Rows without an event time are left to the dataset's ``not_null`` checks; a mistyped
event-time column is already blocked by its type check, so the interval is not checked
then. Reference datasets have no event time and no interval.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from runway_mlops.config import DatasetConfig, PipelineConfig
from runway_mlops.sources import day_interval
from runway_mlops.validation.gx import expectations
from runway_mlops.validation.suite import PlannedCheck


def interval_reason(pipeline: PipelineConfig, column: str, ds: dt.date) -> str:
    """The quarantine reason of rows outside day ``ds`` (no counts: it names the rule)."""
    start, end = day_interval(ds, pipeline.zone)
    return (
        f"{column} outside the delivered day {ds} ({pipeline.zone.key}: "
        f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC)"
    )


def interval_checks(
    pipeline: PipelineConfig, config: DatasetConfig, ds: dt.date, usable: Collection[str]
) -> list[PlannedCheck]:
    """The interval check of one dataset's day (none for reference datasets).

    ``usable`` names the columns present with their declared type (``Plan.usable``).
    """
    column = config.event_time
    if config.kind != "events" or column is None or column not in usable:
        return []
    start, end = day_interval(ds, pipeline.zone)
    gxe = expectations()
    return [
        PlannedCheck(
            gxe.ExpectColumnValuesToBeBetween(
                column=column,
                min_value=start,
                max_value=end,
                strict_max=True,  # the day is half-open: [start, end)
                notes=f"Built in: events of day {ds} in {pipeline.zone.key} lie in "
                f"[{start.isoformat()}, {end.isoformat()}).",
            ),
            "rows",
            "quarantine",
            f"{column} in the delivered day {ds} ({pipeline.zone.key})",
            interval_reason(pipeline, column, ds),
            column=column,
            threshold=[start.isoformat(), end.isoformat()],
        )
    ]
