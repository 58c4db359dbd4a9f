"""The model Runway registers: a LightGBM booster behind MLflow's pyfunc interface.

Logged as MLflow "model from code": MLflow copies this file into the model artifact, so
``mlflow.pyfunc.load_model("models:/runway_flights@champion").predict(frame)`` works
anywhere LightGBM and pandas are installed, without Runway. Keep it self-contained: no
import of ``runway_mlops`` here.

The input is the feature frame as the feature job writes it (strings for categorical
columns); the output is the probability of the positive class, through the calibration
fitted on the validation days when the spec has one. Categorical columns are
mapped onto the categories seen in training, so an unseen value becomes missing rather
than an error, and column order never matters.
"""

from __future__ import annotations

import json
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


def prepare(frame: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """The model's input matrix: the spec's columns, in order, with fixed dtypes."""
    missing = [c for c in spec["features"] if c not in frame.columns]
    if missing:
        raise KeyError(f"feature columns missing from the input: {', '.join(missing)}")
    out = pd.DataFrame(index=frame.index)
    categories = spec["categories"]
    for column in spec["features"]:
        if column in categories:
            values = frame[column].astype("string")
            out[column] = pd.Categorical(values, categories=categories[column])
        else:
            out[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return out


def calibrate(raw: Any, spec: dict[str, Any]) -> Any:
    """The booster's probabilities through the spec's calibration, if it has one.

    ``{"method": "platt", "a": a, "b": b}``: ``sigmoid(a * logit(p) + b)``, fitted on the
    validation days. Monotonic, so rankings (ROC AUC) are unchanged.
    """
    import numpy as np

    calibration = spec.get("calibration")
    p = np.asarray(raw, dtype="float64")
    if not calibration:
        return p
    clipped = np.clip(p, 1e-7, 1 - 1e-7)
    logit = np.log(clipped / (1 - clipped))
    return 1 / (1 + np.exp(-(calibration["a"] * logit + calibration["b"])))


class BoosterModel(PythonModel):
    """Probability of the positive class from a LightGBM booster and its feature spec."""

    def load_context(self, context: Any) -> None:
        import lightgbm as lgb

        self.booster = lgb.Booster(model_file=context.artifacts["booster"])
        with open(context.artifacts["feature_spec"], encoding="utf-8") as handle:
            self.spec = json.load(handle)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return calibrate(self.booster.predict(prepare(model_input, self.spec)), self.spec)


mlflow.models.set_model(BoosterModel())
