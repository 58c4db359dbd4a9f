"""Population stability index (PSI) of features and scores against a training reference.

The reference is made once, when a model is trained (:func:`build_reference`, logged as
the MLflow artifact ``monitoring_reference.json``): for each numeric feature the edges of
``bins`` quantile bins of its training values and the share of training rows in each;
for each categorical feature the share of its most common training categories (the rest
pooled as ``__other__``); for the model's score the same bins over its validation
scores. Missing values are a bin of their own everywhere, so a feature that starts
arriving empty drifts too.

``PSI = sum((actual - expected) * ln(actual / expected))`` over the bins, with shares
floored at :data:`FLOOR` so an empty bin is finite. The usual reading: below 0.1
stable, 0.1-0.25 a moderate shift, above 0.25 a major one (thresholds are config).

One day against a whole training period alarms by itself: a day is not a sample of the
period (its weather, its weekday, its delays), and a feature constant within a day
(weekday, month) is a point mass. So (:func:`calibrate`) the reference also holds, per
column, the largest PSI of the *validation* days, pooled over ``pooled_days`` (a week),
which monitoring pools the same way: a column alerts only beyond ``margin`` times what
days the model was validated on already showed (:func:`limits`), and a column whose
values vary mostly between days, not within them (``day_level_share`` of its variance),
is left out of the alerts (its PSI is still recorded).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: Smallest share a bin counts with (empty bins would make PSI infinite).
FLOOR = 1e-4
#: Categorical features keep this many categories; the rest is "__other__".
MAX_CATEGORIES = 30
MISSING, OTHER = "__missing__", "__other__"
SCORE = "score"


def _shares(counts: list[int]) -> list[float]:
    total = sum(counts)
    if total == 0:
        return [0.0] * len(counts)
    return [c / total for c in counts]


def numeric_bins(values: np.ndarray, bins: int) -> dict[str, Any]:
    """Quantile-bin edges of ``values`` (NaN = missing) and the share of each bin."""
    import numpy as np

    values = np.asarray(values, dtype="float64")
    present = values[np.isfinite(values)]
    if len(present):
        edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))
    else:
        edges = np.empty(0)
    entry: dict[str, Any] = {"kind": "numeric", "edges": [float(e) for e in edges]}
    entry["shares"] = _shares(numeric_counts(entry, values))
    entry["rows"] = int(len(values))
    return entry


def numeric_counts(entry: dict[str, Any], values: np.ndarray) -> list[int]:
    """Counts per bin of ``entry`` (its edges), the last bin being missing values."""
    import numpy as np

    values = np.asarray(values, dtype="float64")
    finite = np.isfinite(values)
    # Bin i holds edges[i-1] < v <= edges[i]; values above the last edge go to the last bin.
    index = np.searchsorted(
        np.asarray(entry["edges"], dtype="float64"), values[finite], side="left"
    )
    counts = np.bincount(index, minlength=len(entry["edges"]) + 1).tolist()
    return [int(c) for c in counts] + [int((~finite).sum())]


def categorical_bins(values: pd.Series) -> dict[str, Any]:
    """Shares of the most common categories of ``values``, ``__other__`` and missing."""
    text = values.astype("string")
    counts = text.value_counts(dropna=True)
    categories = [str(c) for c in counts.index[:MAX_CATEGORIES]]
    entry: dict[str, Any] = {"kind": "categorical", "categories": categories}
    entry["shares"] = _shares(categorical_counts(entry, values))
    entry["rows"] = int(len(values))
    return entry


def categorical_counts(entry: dict[str, Any], values: pd.Series) -> list[int]:
    """Counts per category of ``entry``, then ``__other__``, then missing."""
    text = values.astype("string")
    missing = int(text.isna().sum())
    counts = text.dropna().value_counts()
    known = [int(counts.get(c, 0)) for c in entry["categories"]]
    other = int(counts.sum()) - sum(known)
    return [*known, other, missing]


def build_reference(
    frame: pd.DataFrame,
    features: list[str],
    categorical: list[str],
    scores: np.ndarray,
    *,
    bins: int = 10,
) -> dict[str, Any]:
    """The drift reference of a model: its training feature distributions and scores."""
    import pandas as pd

    reference: dict[str, Any] = {"bins": bins, "features": {}}
    for column in features:
        if column in categorical:
            reference["features"][column] = categorical_bins(frame[column])
        else:
            values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype="float64")
            reference["features"][column] = numeric_bins(values, bins)
    reference[SCORE] = numeric_bins(scores, bins)
    return reference


def psi_from_counts(expected: list[float], counts: list[int]) -> float | None:
    """PSI of observed ``counts`` against ``expected`` shares (None without observations)."""
    total = sum(counts)
    if total == 0:
        return None
    value = 0.0
    for share, count in zip(expected, counts, strict=True):
        e = max(share, FLOOR)
        a = max(count / total, FLOOR)
        value += (a - e) * math.log(a / e)
    return value


def psi(entry: dict[str, Any], values: Any) -> float | None:
    """PSI of ``values`` (array or Series) against one reference ``entry``."""
    import pandas as pd

    if entry["kind"] == "categorical":
        counts = categorical_counts(entry, pd.Series(values))
    else:
        numeric = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype="float64")
        counts = numeric_counts(entry, numeric)
    return psi_from_counts(entry["shares"], counts)


#: The status of a day-level column's PSI: recorded, never an alert (the status column of
#: ``runway_monitoring`` holds 8 characters).
BY_DAY = "by_day"


def status(value: float | None, warn: float, alert: float) -> str:
    """``ok`` / ``warn`` / ``alert`` for a PSI (``n/a`` when there were no rows)."""
    if value is None:
        return "n/a"
    if value > alert:
        return "alert"
    return "warn" if value > warn else "ok"


def day_level_columns(
    frame: pd.DataFrame, columns: list[str], days: pd.Series, *, share: float
) -> list[str]:
    """Numeric columns whose variance lies at least ``share`` between days (e.g. weekday).

    Between-day share = variance of the daily means (row-weighted) / total variance. A
    constant column is not day-level (it cannot drift within its reference anyway).
    """
    import numpy as np
    import pandas as pd

    found = []
    for column in columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            continue
        values = frame[column]
        present = values.notna()
        if present.sum() < 2:
            continue
        v = values[present].astype("float64")
        total = float(v.var(ddof=0))
        if not np.isfinite(total) or total <= 0:
            continue
        means = v.groupby(days[present]).transform("mean")
        between = float(((means - v.mean()) ** 2).mean())
        if between / total >= share:
            found.append(column)
    return found


def calibrate(
    reference: dict[str, Any],
    validation: pd.DataFrame,
    scores: np.ndarray,
    days: pd.Series,
    *,
    pooled_days: int,
) -> dict[str, Any]:
    """The largest pooled PSI of the validation days, per feature of ``reference`` and score.

    The windows are every run of ``pooled_days`` consecutive validation days (fewer days:
    one window of them all), as monitoring pools a scored day with the days before it.
    """
    import numpy as np

    order = sorted(set(days))
    size = min(pooled_days, len(order))
    windows = [order[i - size + 1 : i + 1] for i in range(size - 1, len(order))]
    scores = np.asarray(scores, dtype="float64")
    largest: dict[str, float] = {}
    for window in windows:
        rows = days.isin(window).to_numpy()
        observed = {SCORE: psi(reference[SCORE], scores[rows])}
        for column, entry in reference["features"].items():
            if column in validation.columns:
                observed[column] = psi(entry, validation.loc[rows, column])
        for column, value in observed.items():
            if value is not None:
                largest[column] = max(largest.get(column, 0.0), float(value))
    return {
        "pooled_days": pooled_days,
        "windows": len(windows),
        "validation_days": [str(d) for d in order],
        "max_psi": {k: round(v, 6) for k, v in sorted(largest.items())},
    }


def limits(
    reference: dict[str, Any], column: str, warn: float, alert: float, margin: float | None
) -> tuple[float, float]:
    """(warn, alert) PSI thresholds of a column: the configured ones, raised to ``margin``
    times the column's largest pooled validation PSI when the reference has one; never
    reached (``inf``) for a day-level column."""
    if column in reference.get("day_level", []):
        return math.inf, math.inf
    seen = (reference.get("calibration") or {}).get("max_psi", {}).get(column)
    if margin is None or seen is None:
        return warn, alert
    return max(warn, margin * seen), max(alert, margin * seen)


def judge(
    reference: dict[str, Any],
    column: str,
    value: float | None,
    warn: float,
    alert: float,
    margin: float | None,
) -> str:
    """The status of a column's PSI against its :func:`limits` (:data:`BY_DAY` for a
    day-level column)."""
    if column in reference.get("day_level", []):
        return BY_DAY
    return status(value, *limits(reference, column, warn, alert, margin))
