"""Drift: compare one day with the trailing window of earlier validated days.

The reference window is every day in the ``reference_days`` calendar days before the day
being validated that has a ``validated`` partition (so earlier blocked days never become
the norm). With fewer than ``min_reference_days`` such days the drift checks are skipped
and a note says so. Every measure is a GX expectation, so it shows in Data Docs, and each
can be set at two levels (:meth:`DriftColumn.levels`): a warn level and a block level.

Numeric columns:

* mean band (``mean_sigmas`` = k): the day's mean must lie within the mean of the daily
  means ± k × their standard deviation (``expect_column_mean_to_be_between``);
* KL divergence (``kl_max``): the day's histogram against the window's, on bins at the
  window's deciles (``expect_column_kl_divergence_to_be_less_than`` with a
  ``partition_object``; a 1 % tail holdout keeps values beyond the window's range from
  making it infinite).

Categorical (string) columns:

* new values (``new_share_max``): at most this share of the day's rows hold a value the
  window never saw (``expect_column_values_to_be_in_set`` with ``mostly``);
* vanished values (``vanished_share_min``): every value that held at least this share of
  the window appears (``expect_column_distinct_values_to_contain_set``);
* shares shifted (``kl_max``): KL divergence of the day's shares from the window's, the
  window's shares smoothed by 1 % over the values of both, so a new value is finite.

All are computed on the rows that survived the row-level checks, like the validated
partitions of the window, so a day is compared like with like.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from runway_mlops.config import DatasetConfig, DriftConfig
from runway_mlops.errors import MissingPartitionError
from runway_mlops.validation.gx import expectations
from runway_mlops.validation.suite import PlannedCheck, num

if TYPE_CHECKING:
    import pandas as pd

    from runway_mlops.lake import Lake

#: Histogram bins for the KL divergence: the window's deciles.
KL_BINS = 10
#: Probability mass GX reserves for values beyond the window's range.
KL_TAIL_HOLDOUT = 0.01
#: Share of a categorical window's mass spread over every value, so a value the window
#: never saw has a finite KL divergence.
CATEGORY_SMOOTHING = 0.01


@dataclass(frozen=True)
class ReferenceWindow:
    """What the earlier validated days of a dataset looked like."""

    days: list[dt.date]
    #: column -> the mean of each day in ``days`` (days without a value left out).
    daily_means: dict[str, list[float]]
    #: column -> every non-null value of the window (numeric columns).
    values: dict[str, np.ndarray]
    #: column -> rows of the window per value (categorical columns).
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def load_window(
    lake: Lake,
    pipeline: str,
    dataset: str,
    ds: dt.date,
    drift: DriftConfig,
    columns: list[str],
    categorical: frozenset[str] = frozenset(),
) -> ReferenceWindow:
    """Read ``columns`` of the validated days in the ``reference_days`` before ``ds``.

    ``categorical`` columns are counted per value instead of collected as numbers.
    """
    import pyarrow.parquet as pq

    first = ds - dt.timedelta(days=drift.reference_days)
    days = [d for d in lake.partitions("validated", pipeline, dataset) if first <= d < ds]
    means: dict[str, list[float]] = {c: [] for c in columns if c not in categorical}
    parts: dict[str, list[np.ndarray]] = {c: [] for c in means}
    counts: dict[str, dict[str, int]] = {c: {} for c in columns if c in categorical}
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
        for column, tally in counts.items():
            for item in table.column(column).drop_null().value_counts().to_pylist():
                value = str(item["values"])
                tally[value] = tally.get(value, 0) + int(item["counts"])
        for column in means:
            values = table.column(column).drop_null().to_numpy().astype("float64")
            if len(values):
                means[column].append(float(values.mean()))
                parts[column].append(values)
    pooled = {c: np.concatenate(v) if v else np.array([]) for c, v in parts.items()}
    return ReferenceWindow(days=used, daily_means=means, values=pooled, counts=counts)


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


def category_partition(counts: Mapping[str, int], today: list[str]) -> dict[str, list[Any]] | None:
    """A GX categorical partition (values, weights): the window's shares over the values
    of the window and of ``today``, smoothed so every one has some weight."""
    total = sum(counts.values())
    if total == 0:
        return None
    values = sorted(set(counts) | set(today))
    spread = CATEGORY_SMOOTHING / len(values)
    weights = [(1 - CATEGORY_SMOOTHING) * counts.get(v, 0) / total + spread for v in values]
    return {"values": values, "weights": weights}


def plan_drift(
    lake: Lake,
    pipeline: str,
    dataset: str,
    config: DatasetConfig,
    ds: dt.date,
    usable: set[str],
    frame: pd.DataFrame | None = None,
) -> tuple[list[PlannedCheck], list[str]]:
    """The drift expectations of one dataset for day ``ds``, and notes on what was skipped.

    ``frame`` is the day's rows (for the values a categorical partition must cover).
    """
    drift = config.drift
    if drift is None or not drift.columns:
        return [], []
    notes: list[str] = []
    specs = []
    for spec in drift.columns:
        if spec.column not in usable:
            notes.append(f"drift of {spec.column} not checked: the column is missing or mistyped")
        else:
            specs.append(spec)
    if not specs:
        return [], notes
    categorical = frozenset(s.column for s in specs if config.columns[s.column] == "string")
    columns = [s.column for s in specs]
    window = load_window(lake, pipeline, dataset, ds, drift, columns, categorical)
    if len(window.days) < drift.min_reference_days:
        notes.append(
            f"drift checks skipped: {len(window.days)} earlier validated day(s) in the "
            f"{drift.reference_days} days before {ds}, {drift.min_reference_days} needed"
        )
        return [], notes

    span = f"{len(window.days)} earlier validated days, {window.days[0]}..{window.days[-1]}"
    checks: list[PlannedCheck] = []
    for spec in specs:
        today: list[str] = []
        if spec.column in categorical and frame is not None:
            today = frame[spec.column].dropna().astype(str).unique().tolist()
        for severity, measures in spec.levels():
            if spec.column in categorical:
                planned = _categorical(spec.column, severity, measures, window, today, span)
            else:
                planned = _numeric(spec.column, severity, measures, window, span)
            for item in planned:
                if isinstance(item, str):
                    if item not in notes:
                        notes.append(item)
                else:
                    checks.append(item)
    return checks, notes


def _numeric(
    column: str,
    severity: str,
    measures: dict[str, float],
    window: ReferenceWindow,
    span: str,
) -> list[PlannedCheck | str]:
    gxe = expectations()
    planned: list[PlannedCheck | str] = []
    if "mean_sigmas" in measures:
        sigmas = measures["mean_sigmas"]
        band = mean_band(window.daily_means[column], sigmas)
        if band is None:
            planned.append(f"mean drift of {column} not checked: fewer than two days with values")
        else:
            low, high = band
            planned.append(
                PlannedCheck(
                    gxe.ExpectColumnMeanToBeBetween(column=column, min_value=low, max_value=high),
                    "mean",
                    severity,
                    f"mean of {column} in [{num(low)}, {num(high)}]",
                    f"mean of {column} drifted",
                    column=column,
                    threshold=[round(low, 6), round(high, 6)],
                    context=f"{num(sigmas)} sd of the daily means of {span}",
                )
            )
    if "kl_max" in measures:
        partition = decile_partition(window.values[column])
        if partition is None:
            planned.append(f"KL divergence of {column} not checked: too few distinct values")
        else:
            planned.append(
                PlannedCheck(
                    gxe.ExpectColumnKLDivergenceToBeLessThan(
                        column=column,
                        partition_object=partition,
                        threshold=measures["kl_max"],
                        tail_weight_holdout=KL_TAIL_HOLDOUT,
                        internal_weight_holdout=0.0,
                    ),
                    "kl",
                    severity,
                    f"KL divergence of {column} <= {num(measures['kl_max'])}",
                    f"distribution of {column} drifted",
                    column=column,
                    threshold=measures["kl_max"],
                    context=f"bins at the deciles of {span}",
                )
            )
    return planned


def _categorical(
    column: str,
    severity: str,
    measures: dict[str, float],
    window: ReferenceWindow,
    today: list[str],
    span: str,
) -> list[PlannedCheck | str]:
    gxe = expectations()
    counts = window.counts[column]
    total = sum(counts.values())
    if total == 0:
        return [f"drift of {column} not checked: the window has no values"]
    planned: list[PlannedCheck | str] = []
    if "new_share_max" in measures:
        limit = measures["new_share_max"]
        planned.append(
            PlannedCheck(
                gxe.ExpectColumnValuesToBeInSet(
                    column=column,
                    value_set=sorted(counts),
                    mostly=1.0 - limit,
                    notes=f"The set: the values of {column} seen in {span}.",
                ),
                "new_values",
                severity,
                f"at most {limit:.1%} of {column} values new to the window",
                f"new values of {column}",
                column=column,
                threshold=limit,
                context=span,
            )
        )
    if "vanished_share_min" in measures:
        limit = measures["vanished_share_min"]
        major = sorted(v for v, n in counts.items() if n / total >= limit)
        if major:
            planned.append(
                PlannedCheck(
                    gxe.ExpectColumnDistinctValuesToContainSet(column=column, value_set=major),
                    "vanished",
                    severity,
                    f"every value of {column} with >= {limit:.1%} of the window present",
                    f"values of {column} vanished",
                    column=column,
                    threshold=limit,
                    context=span,
                )
            )
    if "kl_max" in measures:
        partition = category_partition(counts, today)
        if partition is not None:
            planned.append(
                PlannedCheck(
                    gxe.ExpectColumnKLDivergenceToBeLessThan(
                        column=column, partition_object=partition, threshold=measures["kl_max"]
                    ),
                    "kl",
                    severity,
                    f"KL divergence of {column}'s shares <= {num(measures['kl_max'])}",
                    f"shares of {column} drifted",
                    column=column,
                    threshold=measures["kl_max"],
                    context=f"the shares of {span}",
                )
            )
    return planned
