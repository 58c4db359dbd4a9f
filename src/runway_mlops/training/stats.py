"""Statistics for decisions between models: ROC AUC with intervals over days, paired.

Daily quality varies far more than two equally good models differ (in 2013 a day's ROC
AUC has a standard deviation of ~0.07; two models that differ only in their seed, ~0.013
a day), and the rows of one day are not independent (one storm delays a whole airport).
So every interval here comes from a **bootstrap over days**: each replicate draws the test
days with replacement and keeps all of a drawn day's rows, and a comparison between two
models applies the same draw to both (a paired test on the same rows).

A replicate is a vector of integer weights per row (how often its day was drawn), and the
ROC AUC of weighted rows is the Mann-Whitney statistic with ties counted half; the rows
are sorted once, so ``samples`` replicates cost one pass each over the sorted scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

#: Replicates of a bootstrap over days: a 5 % tail quantile to about +-1 percentage point.
SAMPLES = 500


@dataclass(frozen=True)
class Interval:
    """A statistic, its two-sided (1 - 2 alpha) interval, and its bootstrap draws."""

    estimate: float
    low: float
    high: float
    draws: np.ndarray

    def __str__(self) -> str:
        return f"{self.estimate:.4f} [{self.low:.4f}, {self.high:.4f}]"

    def p_at_least(self, value: float) -> float:
        """The share of draws at or above ``value`` (a one-sided bootstrap p-value for
        "the statistic is below ``value``"), never 0."""
        return float((np.sum(self.draws >= value) + 1) / (len(self.draws) + 1))

    def p_at_most(self, value: float) -> float:
        """The share of draws at or below ``value`` (a one-sided bootstrap p-value for
        "the statistic is above ``value``"), never 0."""
        return float((np.sum(self.draws <= value) + 1) / (len(self.draws) + 1))


def day_weights(
    days: Sequence[object] | np.ndarray, samples: int = SAMPLES, seed: int = 0
) -> np.ndarray:
    """(samples, rows) weights: how often each row's day was drawn in each replicate."""
    _, index = np.unique(np.asarray(days, dtype=str), return_inverse=True)
    n_days = int(index.max()) + 1 if len(index) else 0
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_days, np.full(n_days, 1.0 / n_days), size=samples)
    return counts[:, index].astype("float32")  # whole numbers: exact in float32


def weighted_auc(y: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of ``scores`` under each row of ``weights`` (shape (k, rows)); NaN when a
    replicate has one class only."""
    y = np.asarray(y).astype(bool)
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = np.asarray(scores, dtype="float64")[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    w = np.atleast_2d(weights)[:, order]
    pos = np.add.reduceat(w * y[order], starts, axis=1)
    neg = np.add.reduceat(w * ~y[order], starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg  # negatives strictly below each tie group
    wins = np.sum(pos * (below + 0.5 * neg), axis=1, dtype="float64")
    total = pos.sum(axis=1, dtype="float64") * neg.sum(axis=1, dtype="float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, wins / np.where(total > 0, total, 1), np.nan)


def _interval(estimate: float, draws: np.ndarray, alpha: float) -> Interval | None:
    draws = draws[np.isfinite(draws)]
    if not np.isfinite(estimate) or len(draws) < 10:
        return None
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return Interval(float(estimate), float(low), float(high), draws)


def auc_interval(
    y: np.ndarray,
    scores: np.ndarray,
    days: Sequence[object] | np.ndarray,
    *,
    alpha: float = 0.05,
    samples: int = SAMPLES,
    seed: int = 0,
) -> Interval | None:
    """ROC AUC with its (1 - 2 alpha) interval over days; None with one class only."""
    scores = np.asarray(scores, dtype="float64")
    estimate = weighted_auc(y, scores, np.ones((1, len(scores))))[0]
    draws = weighted_auc(y, scores, day_weights(days, samples, seed))
    return _interval(float(estimate), draws, alpha)


def paired_auc_difference(
    y: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    days: Sequence[object] | np.ndarray,
    *,
    alpha: float = 0.05,
    samples: int = SAMPLES,
    seed: int = 0,
) -> Interval | None:
    """AUC(first) - AUC(second) on the same rows, the same day draws for both."""
    first = np.asarray(first, dtype="float64")
    second = np.asarray(second, dtype="float64")
    ones = np.ones((1, len(first)))
    estimate = weighted_auc(y, first, ones)[0] - weighted_auc(y, second, ones)[0]
    weights = day_weights(days, samples, seed)
    draws = weighted_auc(y, first, weights) - weighted_auc(y, second, weights)
    return _interval(float(estimate), draws, alpha)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: family-wise error control over several tests."""
    p = np.asarray(pvalues, dtype="float64")
    m = len(p)
    order = np.argsort(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def within_day_auc(
    y: np.ndarray,
    scores: np.ndarray,
    days: Sequence[object] | np.ndarray,
    *,
    alpha: float = 0.05,
    samples: int = SAMPLES,
    seed: int = 0,
) -> Interval | None:
    """The mean over days of each day's ROC AUC, with its (1 - 2 alpha) interval over days.

    Pooled ROC AUC also rewards ranking bad days above good ones (a score constant per
    day and airport can beat a model on it); within-day AUC asks only how well a model
    ranks the flights of one day. Days with one class only are left out; None when fewer
    than two days remain.
    """
    y = np.asarray(y)
    scores = np.asarray(scores, dtype="float64")
    labels = np.asarray(days, dtype=str)
    per_day = []
    for day in np.unique(labels):
        mask = labels == day
        if len(np.unique(y[mask])) == 2:
            per_day.append(weighted_auc(y[mask], scores[mask], np.ones((1, int(mask.sum()))))[0])
    if len(per_day) < 2:
        return None
    values = np.asarray(per_day)
    rng = np.random.default_rng(seed)
    draws = values[rng.integers(0, len(values), size=(samples, len(values)))].mean(axis=1)
    return _interval(float(values.mean()), draws, alpha)


def wilson_low(successes: int, trials: int, z: float = 1.6449) -> float:
    """The lower end of a one-sided 95 % Wilson interval of a proportion (0 with no trials)."""
    if trials <= 0:
        return 0.0
    share = successes / trials
    centre = share + z * z / (2 * trials)
    spread = z * np.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials))
    return float((centre - spread) / (1 + z * z / trials))
