"""Binary-classification metrics used by training, the gates and (later) monitoring."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

#: Probabilities are clipped this far from 0 and 1 before log loss.
EPS = 1e-7


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    import numpy as np

    p = np.clip(np.asarray(p, dtype="float64"), EPS, 1 - EPS)
    y = np.asarray(y, dtype="float64")
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def roc_auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """ROC AUC, or None when undefined: one class only, or scores that are not finite
    (the gates' finite-probability check reports those)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y)
    p = np.asarray(p, dtype="float64")
    if len(np.unique(y)) < 2 or not np.isfinite(p).all():
        return None
    return float(roc_auc_score(y, p))


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float | None:
    """Expected calibration error: the rows sorted by score in ``bins`` equal-count bins,
    the mean |mean score - realised rate| weighted by rows. None without rows."""
    import numpy as np

    y = np.asarray(y, dtype="float64")
    p = np.asarray(p, dtype="float64")
    if not len(y) or not np.isfinite(p).all():
        return None
    order = np.argsort(p, kind="stable")
    chunks = [c for c in np.array_split(order, min(bins, len(y))) if len(c)]
    return float(sum(abs(y[c].mean() - p[c].mean()) * len(c) for c in chunks) / len(y))


def single_feature_auc(values: Any, y: np.ndarray) -> float | None:
    """One feature as a score: ROC AUC either way (max of AUC and 1 - AUC), missing values
    at the median; None when the feature has no number or the AUC is undefined."""
    import pandas as pd

    numeric = pd.to_numeric(values, errors="coerce")
    if not numeric.notna().any():
        return None
    auc = roc_auc(y, numeric.fillna(numeric.median()).to_numpy())
    return None if auc is None else max(auc, 1 - auc)


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    """ROC AUC, log loss, Brier score, PR AUC (average precision), the positive rate and
    the expected calibration error."""
    import numpy as np
    from sklearn.metrics import average_precision_score

    y = np.asarray(y)
    p = np.asarray(p, dtype="float64")
    two_classes = len(np.unique(y)) == 2
    return {
        "roc_auc": roc_auc(y, p),
        "log_loss": log_loss(y, p),
        "brier": float(np.mean((p - y) ** 2)),
        "pr_auc": (
            float(average_precision_score(y, p)) if two_classes and np.isfinite(p).all() else None
        ),
        "positive_rate": float(np.mean(y)) if len(y) else None,
        "calibration_error": calibration_error(y, p),
        "rows": float(len(y)),
    }


def base_rate_metrics(y_test: np.ndarray, train_rate: float) -> dict[str, float | None]:
    """The naive model: every row gets the training set's positive rate."""
    import numpy as np

    return binary_metrics(y_test, np.full(len(y_test), train_rate, dtype="float64"))


def cost_threshold(
    y: np.ndarray, p: np.ndarray, false_positive: float, false_negative: float
) -> tuple[float, float]:
    """The score threshold with the least total cost on ``y``, and that cost per row.

    Every distinct score is a candidate (decision = score >= threshold); ties go to the
    higher threshold (fewer flags). With calibrated scores the answer is near
    ``false_positive / (false_positive + false_negative)``.
    """
    import numpy as np

    y = np.asarray(y, dtype="float64")
    p = np.asarray(p, dtype="float64")
    if not len(y):
        raise ValueError("no rows to choose a threshold on")
    order = np.argsort(-p, kind="stable")
    scores, labels = p[order], y[order]
    # Flag the top k rows, k = 0..n: false positives and false negatives of each cut.
    fp = np.concatenate([[0.0], np.cumsum(1 - labels)])
    fn = labels.sum() - np.concatenate([[0.0], np.cumsum(labels)])
    cost = false_positive * fp + false_negative * fn
    # A cut may only fall between different scores (or at the ends).
    valid = np.concatenate([[True], scores[:-1] != scores[1:], [True]])
    cost = np.where(valid, cost, np.inf)
    k = int(np.argmin(cost))
    # k = 0 (flag nothing): just above the highest score.
    threshold = float(np.nextafter(scores[0], np.inf)) if k == 0 else float(scores[k - 1])
    return threshold, float(cost[k] / len(y))
