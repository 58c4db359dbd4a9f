"""Drift: compare one day with the trailing window of earlier validated days.

The reference window is every day in the ``reference_days`` calendar days before the day
being validated that has a ``validated`` partition (so earlier blocked days never become
the norm). With fewer than ``min_reference_days`` such days the drift checks are skipped
and a note says so. Two measures per configured column, both GX expectations so they show
in Data Docs:

* mean band (``mean_sigmas`` = k): the day's mean must lie within the mean of the daily
  means ± k × their standard deviation (``expect_column_mean_to_be_between``);
* KL divergence (``kl_max``): the day's histogram against the window's, on bins at the
  window's deciles (``expect_column_kl_divergence_to_be_less_than`` with a
  ``partition_object``; a 1 % tail holdout keeps values beyond the window's range from
  making it infinite).

Both are computed on the rows that survived the row-level checks, like the validated
partitions of the window, so a day is compared like with like.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from runway_mlops.config import DatasetConfig, DriftConfig
from runway_mlops.errors import MissingPartitionError
from runway_mlops.validation.gx import expectations
from runway_mlops.validation.suite import PlannedCheck, num

if TYPE_CHECKING:
    from runway_mlops.lake import Lake

#: Histogram bins for the KL divergence: the window's deciles.
KL_BINS = 10
#: Probability mass GX reserves for values beyond the window's range.
KL_TAIL_HOLDOUT = 0.01


@dataclass(frozen=True)
class ReferenceWindow:
    """What the earlier validated days of a dataset looked like."""

    days: list[dt.date]
    #: column -> the mean of each day in ``days`` (days without a value left out).
    daily_means: dict[str, list[float]]
    #: column -> every non-null value of the window.
    values: dict[str, np.ndarray]


def load_window(
    lake: Lake, pipeline: str, dataset: str, ds: dt.date, drift: DriftConfig, columns: list[str]
) -> ReferenceWindow:
    """Read ``columns`` of the validated days in the ``reference_days`` before ``ds``."""
    import pyarrow.parquet as pq

    first = ds - dt.timedelta(days=drift.reference_days)
    days = [d for d in lake.partitions("validated", pipeline, dataset) if first <= d < ds]
    means: dict[str, list[float]] = {c: [] for c in columns}
    parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    used = []
    for day in days:
        try:
            folder = lake.fetch("validated", pipeline, dataset, day)
            files = sorted(folder.glob("*.parquet"))
            if not files:
                raise FileNotFoundError(folder)
            table = pq.read_table(files, columns=columns)
        except (FileNotFoundError, MissingPartitionError):
            continue  # withdrawn or replaced while we read it: not part of the window
        used.append(day)
        for column in columns:
            values = table.column(column).drop_null().to_numpy().astype("float64")
            if len(values):
                means[column].append(float(values.mean()))
                parts[column].append(values)
    pooled = {c: np.concatenate(v) if v else np.array([]) for c, v in parts.items()}
    return ReferenceWindow(days=used, daily_means=means, values=pooled)


def mean_band(daily_means: list[float], sigmas: float) -> tuple[float, float] | None:
    """``mean ± sigmas × sd`` of the daily means; None with fewer than two days."""
    if len(daily_means) < 2:
        return None
    centre = float(np.mean(daily_means))
    spread = float(np.std(daily_means, ddof=1))
    # Identical daily means would give a zero-width band that any rounding fails.
    spread = max(spread, 1e-9 * max(1.0, abs(centre)))
    return centre - sigmas * spread, centre + sigmas * spread


def decile_partition(values: np.ndarray) -> dict[str, list[float]] | None:
    """A GX partition object (bins, weights) at the deciles of ``values``."""
    if len(values) == 0:
        return None
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, KL_BINS + 1)))
    if len(edges) < 3:
        return None  # (almost) constant: a histogram says nothing
    counts, _ = np.histogram(values, bins=edges)
    return {"bins": edges.tolist(), "weights": (counts / counts.sum()).tolist()}


def plan_drift(
    lake: Lake,
    pipeline: str,
    dataset: str,
    config: DatasetConfig,
    ds: dt.date,
    usable: set[str],
) -> tuple[list[PlannedCheck], list[str]]:
    """The drift expectations of one dataset for day ``ds``, and notes on what was skipped."""
    drift = config.drift
    if drift is None or not drift.columns:
        return [], []
    notes: list[str] = []
    specs = []
    for spec in drift.columns:
        if config.columns[spec.column] not in ("int", "float"):
            notes.append(f"drift of {spec.column} not checked: only numeric columns can drift")
        elif spec.column not in usable:
            notes.append(f"drift of {spec.column} not checked: the column is missing or mistyped")
        else:
            specs.append(spec)
    if not specs:
        return [], notes
    window = load_window(lake, pipeline, dataset, ds, drift, [s.column for s in specs])
    if len(window.days) < drift.min_reference_days:
        notes.append(
            f"drift checks skipped: {len(window.days)} earlier validated day(s) in the "
            f"{drift.reference_days} days before {ds}, {drift.min_reference_days} needed"
        )
        return [], notes

    gxe = expectations()
    span = f"{len(window.days)} earlier validated days, {window.days[0]}..{window.days[-1]}"
    checks: list[PlannedCheck] = []
    for spec in specs:
        column = spec.column
        if spec.mean_sigmas is not None:
            band = mean_band(window.daily_means[column], spec.mean_sigmas)
            if band is None:
                notes.append(f"mean drift of {column} not checked: fewer than two days with values")
            else:
                low, high = band
                checks.append(
                    PlannedCheck(
                        gxe.ExpectColumnMeanToBeBetween(
                            column=column, min_value=low, max_value=high
                        ),
                        "mean",
                        spec.severity,
                        f"mean of {column} in [{num(low)}, {num(high)}]",
                        f"mean of {column} drifted",
                        column=column,
                        threshold=[round(low, 6), round(high, 6)],
                        context=f"{num(spec.mean_sigmas)} sd of the daily means of {span}",
                    )
                )
        if spec.kl_max is not None:
            partition = decile_partition(window.values[column])
            if partition is None:
                notes.append(f"KL divergence of {column} not checked: too few distinct values")
            else:
                checks.append(
                    PlannedCheck(
                        gxe.ExpectColumnKLDivergenceToBeLessThan(
                            column=column,
                            partition_object=partition,
                            threshold=spec.kl_max,
                            tail_weight_holdout=KL_TAIL_HOLDOUT,
                            internal_weight_holdout=0.0,
                        ),
                        "kl",
                        spec.severity,
                        f"KL divergence of {column} <= {num(spec.kl_max)}",
                        f"distribution of {column} drifted",
                        column=column,
                        threshold=spec.kl_max,
                        context=f"bins at the deciles of {span}",
                    )
                )
    return checks, notes
