"""LightGBM on a training set: feature spec, training with early stopping, scoring.

The feature spec (feature columns in order, and the categories of each categorical column
seen in training) travels with the model, so the registered model maps raw feature rows
exactly as training did (see :mod:`.pyfunc_model`, whose ``prepare`` is used here too).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runway_mlops.errors import ConfigError
from runway_mlops.training.pyfunc_model import calibrate, prepare

if TYPE_CHECKING:
    import lightgbm as lgb
    import numpy as np
    import pandas as pd

    from runway_mlops.config import TrainingConfig

__all__ = [
    "Candidate",
    "candidates",
    "feature_spec",
    "fit_calibration",
    "prepare",
    "predict",
    "train_booster",
]


def feature_spec(
    train: pd.DataFrame, features: list[str], categorical: list[str]
) -> dict[str, Any]:
    """Columns in order plus the sorted categories of each categorical column in ``train``."""
    categories = {
        column: sorted(str(v) for v in train[column].dropna().unique()) for column in categorical
    }
    return {"features": list(features), "categories": categories}


def threads() -> int:
    """LightGBM threads: every core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class Candidate:
    """One point of the tuning grid: LightGBM parameters and the boosting budget."""

    index: int
    params: dict[str, Any]
    num_boost_round: int
    early_stopping_rounds: int
    overrides: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "params": self.params,
            "num_boost_round": self.num_boost_round,
            "early_stopping_rounds": self.early_stopping_rounds,
            "overrides": self.overrides,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        return cls(**data)


def candidates(
    config: TrainingConfig, overrides: dict[str, Any] | None = None, *, tune: bool = True
) -> list[Candidate]:
    """The candidates of a run: the grid over the base parameters, then ``overrides``.

    ``overrides`` (a run's ``hyperparameters`` param) win over both the base parameters
    and the grid, so a person can pin a value for every candidate.
    """
    overrides = dict(overrides or {})
    base = {
        "objective": "binary",
        "metric": ["auc", "binary_logloss"],
        "verbosity": -1,
        "seed": config.seed,
        "deterministic": True,
        "force_col_wise": True,
        **config.params,
    }
    rounds = int(overrides.pop("num_boost_round", config.num_boost_round))
    patience = int(overrides.pop("early_stopping_rounds", config.early_stopping_rounds))
    if rounds < 1 or patience < 1:
        raise ConfigError("num_boost_round and early_stopping_rounds must be 1 or more")
    grid = config.tuning.grid if (config.tuning and tune) else {}
    names = [n for n in grid if n not in overrides]
    points = [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*[grid[n] for n in names])
    ]
    if config.tuning and len(points) > config.tuning.max_candidates:
        raise ConfigError(
            f"training.tuning.grid has {len(points)} points, more than max_candidates "
            f"({config.tuning.max_candidates}): shrink the grid or raise the limit"
        )
    return [
        Candidate(
            index=i,
            params={**base, **point, **overrides},
            num_boost_round=rounds,
            early_stopping_rounds=patience,
            overrides=overrides,
        )
        for i, point in enumerate(points or [{}])
    ]


def train_booster(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    spec: dict[str, Any],
    label: str,
    candidate: Candidate,
    *,
    num_threads: int | None = None,
) -> tuple[lgb.Booster, dict[str, Any]]:
    """Train with early stopping on ``validation`` (its ROC AUC alone); return the booster
    and its history."""
    import lightgbm as lgb

    params = {**candidate.params, "num_threads": num_threads or threads()}
    train_set = lgb.Dataset(prepare(train, spec), label=train[label], free_raw_data=True)
    valid_set = lgb.Dataset(prepare(validation, spec), label=validation[label], reference=train_set)
    history: dict[str, Any] = {}
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=candidate.num_boost_round,
        valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=[
            # One metric stops the boosting: the first, ROC AUC, by which candidates are
            # chosen; log loss is recorded, never watched (with both, the first to stall
            # stopped the run at its own best iteration).
            lgb.early_stopping(
                candidate.early_stopping_rounds, first_metric_only=True, verbose=False
            ),
            lgb.record_evaluation(history),
        ],
    )
    return booster, {
        "best_iteration": int(booster.best_iteration or candidate.num_boost_round),
        "history": history.get("validation", {}),
    }


def predict(booster: lgb.Booster, frame: pd.DataFrame, spec: dict[str, Any]) -> np.ndarray:
    """Positive-class probabilities for raw feature rows (calibrated, as the registered
    model gives them, when ``spec`` holds a calibration)."""
    import numpy as np

    scores = booster.predict(prepare(frame, spec), num_iteration=booster.best_iteration or None)
    return np.asarray(calibrate(scores, spec), dtype="float64")


def fit_calibration(y: np.ndarray, raw: np.ndarray) -> dict[str, Any] | None:
    """Platt scaling of the booster's validation probabilities: ``sigmoid(a logit(p) + b)``.

    Early stopping on ROC AUC leaves the probabilities' level to chance (January's model
    under-predicted April's rate by 0.10); two parameters fitted on the validation days,
    the newest before the test, bring it back without changing any ranking. None with
    one class only (nothing to fit).
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return None
    clipped = np.clip(np.asarray(raw, dtype="float64"), 1e-7, 1 - 1e-7)
    logit = np.log(clipped / (1 - clipped)).reshape(-1, 1)
    fit = LogisticRegression(C=1e6, max_iter=1000).fit(logit, y)
    return {"method": "platt", "a": float(fit.coef_[0][0]), "b": float(fit.intercept_[0])}
