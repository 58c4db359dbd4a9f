"""What a registered model is made of: the LightGBM booster as an MLflow pyfunc.

A model version carries its booster, its feature spec, a signature (every feature
optional; strings for categoricals, doubles for the rest), pinned requirements, its
lineage (``lineage.json``) and the reference monitoring compares scored days with
(:data:`MONITORING_REFERENCE`). :func:`log_model` writes all of it into the active MLflow
run; :func:`model_input` turns feature rows into what the signature takes.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from runway_mlops.config import PipelineConfig
    from runway_mlops.training.dataset import TrainingSet

#: Requirements written into every logged model (no slow inference of requirements).
MODEL_REQUIREMENTS = ("lightgbm", "pandas", "numpy", "mlflow", "scikit-learn")

#: The artifact with a model's drift reference (training distributions and scores).
MONITORING_REFERENCE = "monitoring_reference.json"


def monitoring_reference(
    pipeline: PipelineConfig,
    train: pd.DataFrame,
    spec: dict[str, Any],
    scores: np.ndarray,
    validation: pd.DataFrame,
) -> dict[str, Any]:
    """What monitoring compares a scored day with: the training rows' feature distributions
    and the validation scores, and, from the validation days (column ``ds``), how far
    pooled days of an unchanged world already move them (see
    :mod:`runway_mlops.monitoring.psi`)."""
    from runway_mlops.config import DriftMonitorConfig
    from runway_mlops.monitoring import psi

    drift = pipeline.monitoring.drift if pipeline.monitoring else DriftMonitorConfig()
    categories = list(spec["categories"])
    reference = psi.build_reference(train, spec["features"], categories, scores, bins=drift.bins)
    reference["calibration"] = psi.calibrate(
        reference, validation, scores, validation["ds"], pooled_days=drift.pooled_days
    )
    if drift.day_level_share is not None:
        numeric = [c for c in spec["features"] if c not in categories]
        reference["day_level"] = psi.day_level_columns(
            train, numeric, train["ds"], share=drift.day_level_share
        )
    return reference


def model_signature(spec: dict[str, Any]) -> Any:
    """Input: every feature, optional (a feature may be missing); strings for categoricals
    and doubles for the rest. Output: the positive-class probability."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema(
        [
            ColSpec("string" if name in spec["categories"] else "double", name, required=False)
            for name in spec["features"]
        ]
    )
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("double", "probability")]))


def model_input(frame: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """Feature rows as the registered model's signature takes them (numbers as doubles)."""
    import pandas as pd

    out = frame[spec["features"]].copy()
    for name in spec["features"]:
        if name not in spec["categories"]:
            out[name] = pd.to_numeric(out[name], errors="coerce").astype("float64")
        else:
            out[name] = out[name].astype("object").where(out[name].notna(), None)
    return out


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in MODEL_REQUIREMENTS]


def spec_of(model: Any) -> dict[str, Any]:
    """The feature spec a loaded model version was trained with."""
    return dict(model.unwrap_python_model().spec)


def log_model(
    pipeline: PipelineConfig,
    training_set: TrainingSet,
    booster: Any,
    best_iteration: int,
    spec: dict[str, Any],
    validation: pd.DataFrame,
    valid_scores: np.ndarray,
) -> Any:
    """Log the booster as the ``model`` pyfunc of the active MLflow run, with its lineage
    and monitoring reference; return MLflow's ``ModelInfo``."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="runway-model-") as tmp:
        folder = Path(tmp)
        booster.save_model(str(folder / "booster.txt"), num_iteration=best_iteration)
        (folder / "feature_spec.json").write_text(json.dumps(spec, indent=1))
        model_info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("pyfunc_model.py")),
            artifacts={
                "booster": str(folder / "booster.txt"),
                "feature_spec": str(folder / "feature_spec.json"),
            },
            signature=model_signature(spec),
            input_example=model_input(validation.head(5), spec),
            pip_requirements=_requirements(),
        )
        (folder / "lineage.json").write_text(
            json.dumps(training_set.lineage, indent=1, sort_keys=True)
        )
        mlflow.log_artifact(str(folder / "lineage.json"))
        mlflow.log_dict(
            monitoring_reference(
                pipeline, training_set.frame("train"), spec, valid_scores, validation
            ),
            MONITORING_REFERENCE,
        )
    return model_info
