"""Judge one dataset's day: run its suites and route every row.

:func:`judge_dataset` runs the schema and rule checks on the day's raw rows, takes the
rows failing ``quarantine`` checks out (each with its reasons), runs the drift checks on
the rows that remain, and decides the outcome:

* ``blocked`` if any ``block`` check failed, or more rows than ``max_quarantine_fraction``
  were quarantined;
* ``warned`` if any ``warn`` check failed;
* ``passed`` otherwise (quarantined rows alone do not change the outcome).

It writes nothing: the stage publishes what it returns.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runway_mlops.config import PipelineConfig
from runway_mlops.validation.drift import plan_drift
from runway_mlops.validation.gx import GXSession, result_json
from runway_mlops.validation.interval import interval_checks
from runway_mlops.validation.results import DatasetResult, Failure
from runway_mlops.validation.suite import interpret, plan_checks

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd

    from runway_mlops.lake import Lake

#: Column of quarantined rows naming why each row was taken out.
REASONS_COLUMN = "_reasons"


@dataclass
class Judgement:
    """The verdict on one dataset and its rows, split for publishing."""

    result: DatasetResult
    #: Rows to publish as the validated partition (all rows but the quarantined ones).
    kept: pd.DataFrame
    #: Quarantined rows, with a ``_reasons`` column.
    rejected: pd.DataFrame
    #: Suite name -> GX validation result as JSON.
    gx_results: dict[str, Any] = field(default_factory=dict)


def drift_suite(dataset: str) -> str:
    """The name of a dataset's drift suite (a hyphen cannot clash with a dataset name)."""
    return f"{dataset}-drift"


def judge_dataset(
    session: GXSession,
    lake: Lake,
    pipeline: PipelineConfig,
    dataset: str,
    frames: Mapping[str, pd.DataFrame],
    ds: dt.date,
) -> Judgement:
    """Validate day ``ds`` of ``dataset`` (``frames[dataset]``, indexed 0..n-1)."""
    config = pipeline.datasets[dataset]
    frame = frames[dataset]
    result = DatasetResult(dataset=dataset, rows=len(frame))
    plan = plan_checks(config, frame, frames)
    plan.checks.extend(interval_checks(pipeline, config, ds, plan.usable))
    result.failures.extend(plan.failures)
    result.notes.extend(plan.notes)

    outcomes, suite_result = session.run(
        dataset, dataset, frame, [c.expectation for c in plan.checks]
    )
    gx_results = {dataset: result_json(suite_result)}
    reasons: dict[int, list[str]] = {}
    for check, outcome in zip(plan.checks, outcomes, strict=True):
        failures, positions = interpret(check, outcome, frame)
        result.failures.extend(failures)
        for position in positions:
            reasons.setdefault(position, []).append(check.reason)

    positions = sorted(reasons)
    kept = frame.drop(index=positions).reset_index(drop=True)
    rejected = frame.loc[positions].reset_index(drop=True)
    rejected[REASONS_COLUMN] = ["; ".join(reasons[p]) for p in positions]
    for names in reasons.values():
        for name in names:
            result.quarantine_reasons[name] = result.quarantine_reasons.get(name, 0) + 1

    drift_checks, drift_notes = plan_drift(
        lake, pipeline.name, dataset, config, ds, plan.usable, kept
    )
    result.notes.extend(drift_notes)
    if drift_checks:
        name = drift_suite(dataset)
        outcomes, suite_result = session.run(
            name, dataset, kept, [c.expectation for c in drift_checks]
        )
        gx_results[name] = result_json(suite_result)
        for check, outcome in zip(drift_checks, outcomes, strict=True):
            result.failures.extend(interpret(check, outcome, kept)[0])

    limit = config.max_quarantine_fraction
    if len(frame) and len(rejected) / len(frame) > limit:
        fraction = len(rejected) / len(frame)
        result.failures.append(
            Failure(
                reason="too many quarantined rows",
                message=f"{len(rejected):,} of {len(frame):,} rows quarantined "
                f"({fraction:.1%}) > max_quarantine_fraction {limit:g} ("
                + ", ".join(f"{r}: {n:,}" for r, n in result.quarantine_reasons.items())
                + ")",
                expectation="max_quarantine_fraction",
                severity="block",
                observed=round(fraction, 4),
                threshold=limit,
                rows=len(rejected),
            )
        )

    severities = {f.severity for f in result.failures}
    if "block" in severities:
        result.outcome = "blocked"
        result.rows_validated, result.rows_quarantined = 0, len(frame)
    else:
        result.outcome = "warned" if "warn" in severities else "passed"
        result.rows_validated, result.rows_quarantined = len(kept), len(rejected)
    return Judgement(result=result, kept=kept, rejected=rejected, gx_results=gx_results)
