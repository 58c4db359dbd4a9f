"""Evaluation plots logged as MLflow artifacts: ROC, precision-recall, calibration, importance."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import lightgbm as lgb
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def _figure() -> tuple[Figure, Axes]:
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(5.5, 4.5), dpi=100)


def _save(fig: Figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def evaluation_plots(
    out: Path,
    y: np.ndarray,
    scores: dict[str, np.ndarray],
    booster: lgb.Booster,
) -> list[Path]:
    """Write the four plots for the test set into ``out``; ``scores`` maps label -> p."""
    import numpy as np
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve, roc_curve

    out.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, ax = _figure()
    for name, p in scores.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test)")
    ax.legend(loc="lower right")
    paths.append(_save(fig, out / "roc.png"))

    fig, ax = _figure()
    for name, p in scores.items():
        precision, recall, _ = precision_recall_curve(y, p)
        ax.plot(recall, precision, label=name)
    ax.axhline(float(np.mean(y)), linestyle=":", color="grey", label="base rate")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (test)")
    ax.legend(loc="upper right")
    paths.append(_save(fig, out / "precision_recall.png"))

    fig, ax = _figure()
    for name, p in scores.items():
        observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
        ax.plot(predicted, observed, marker="o", label=name)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect")
    ax.set(xlabel="predicted probability", ylabel="observed rate", title="Calibration (test)")
    ax.legend(loc="upper left")
    paths.append(_save(fig, out / "calibration.png"))

    gains = booster.feature_importance(importance_type="gain")
    names = booster.feature_name()
    order = np.argsort(gains)[-20:]
    fig, ax = _figure()
    ax.barh([names[i] for i in order], [gains[i] for i in order])
    ax.set(xlabel="total gain", title="Feature importance (top 20)")
    paths.append(_save(fig, out / "feature_importance.png"))
    return paths
