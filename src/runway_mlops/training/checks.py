"""What the gates measure besides quality: edge rows, latency, size, a naive baseline.

:func:`safety` is what :class:`runway_mlops.training.gates.Safety` holds for a candidate
(scores of rows it must still handle, median latency per 1,000 rows, the logged model's
size); :func:`single_feature_baselines` is the best single numeric feature used as a score,
the naive model a candidate must beat to be worth serving.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runway_mlops.training.packaging import model_input

if TYPE_CHECKING:
    import pandas as pd

    from runway_mlops.training.dataset import TrainingSet
    from runway_mlops.training.gates import Safety


def edge_rows(test: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """Rows a model must still score: every feature missing, and unseen categories."""
    import pandas as pd

    features = spec["features"]
    first = test[features].iloc[0].to_dict() if len(test) else dict.fromkeys(features)
    unseen = {c: ("__never_seen__" if c in spec["categories"] else first[c]) for c in features}
    extreme = {c: (unseen[c] if c in spec["categories"] else 1e12) for c in features}
    missing = dict.fromkeys(features)  # every feature missing
    return pd.DataFrame.from_records([unseen, extreme, missing], columns=features).astype(object)


def latency_ms_per_1000(model: Any, test: pd.DataFrame, spec: dict[str, Any]) -> float:
    """Median milliseconds the model takes to score 1,000 test rows (5 tries)."""
    rows = model_input(test.head(1000), spec)
    rows = rows if len(rows) == 1000 else rows.sample(1000, replace=True, random_state=0)
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        model.predict(rows)
        timings.append((time.perf_counter() - started) * 1000)
    return float(statistics.median(timings))


def model_mb(model_uri: str) -> float:
    """Size of the logged model's files in MB."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="runway-size-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=tmp))
        return sum(f.stat().st_size for f in local.rglob("*") if f.is_file()) / 1e6


def safety(model: Any, test: pd.DataFrame, spec: dict[str, Any], model_uri: str) -> Safety:
    """The safety measurements of a loaded candidate, for the gates."""
    from runway_mlops.training.gates import Safety

    return Safety(
        edge_scores=model.predict(model_input(edge_rows(test, spec), spec)),
        latency_ms_per_1000_rows=latency_ms_per_1000(model, test, spec),
        model_mb=model_mb(model_uri),
    )


def single_feature_baselines(training_set: TrainingSet, test: pd.DataFrame) -> dict[str, Any]:
    """The best single numeric feature as a ranking score on the test days (a naive model)."""
    from runway_mlops.training.metrics import single_feature_auc

    y = test[training_set.label].to_numpy()
    categorical = set(training_set.lineage["categorical"])
    best: dict[str, Any] = {"feature": None, "roc_auc": None}
    for column in training_set.features:
        if column in categorical:
            continue
        # None: e.g. a 28-day window with no history yet
        auc = single_feature_auc(test[column], y)
        if auc is None:
            continue
        if best["roc_auc"] is None or auc > best["roc_auc"]:
            best = {"feature": column, "roc_auc": auc}
    return best
