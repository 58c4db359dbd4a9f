"""Evaluation gates: the checks a candidate must pass, and the one decision they make.

Pure functions over scores already computed (no MLflow, no Airflow), so each rule is
unit-tested on its own. :func:`evaluate` returns a :class:`GateDecision` with every check
(name, value, threshold, verdict, detail):

* absolute thresholds: minimum ROC AUC, maximum log loss, beat the naive base-rate model;
* no regression against the current champion, both scored now on the same test rows —
  skipped, and said so, for the first model of a pipeline;
* per slice (e.g. each carrier, each origin) with enough test rows: a floor and a maximum
  regression against the champion on that slice;
* safety: finite probabilities in [0, 1] on the test set and on edge rows (all features
  missing, unseen categories); scoring latency per 1,000 rows and model size in budget.

``enforce`` blocks on any failed check; ``dry_run`` records the same decision and never
blocks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from runway_mlops.training.metrics import base_rate_metrics, binary_metrics, roc_auc

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from runway_mlops.config import GatesConfig

PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None
    threshold: float | None
    verdict: str  # pass | fail | skip
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateDecision:
    mode: str
    checks: list[Check]
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == FAIL]

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def decision(self) -> str:
        return "passed" if self.passed else "rejected"

    @property
    def blocking(self) -> bool:
        return not self.passed and self.mode == "enforce"

    def summary(self) -> str:
        if self.passed:
            n = sum(c.verdict == PASS for c in self.checks)
            skipped = [c.name for c in self.checks if c.verdict == SKIP]
            extra = f"; skipped: {', '.join(skipped)}" if skipped else ""
            return f"passed all {n} checks{extra}"
        names = "; ".join(f"{c.name}: {c.detail}" for c in self.failed)
        how = "blocked" if self.blocking else "dry run, not blocking"
        return f"rejected ({how}), {len(self.failed)} failed check(s): {names}"


@dataclass(frozen=True)
class Safety:
    """Measured by the caller on the real model: edge-row scores, latency and size."""

    edge_scores: np.ndarray
    latency_ms_per_1000_rows: float
    model_mb: float


def _at_least(name: str, value: float | None, floor: float, what: str) -> Check:
    if value is None:
        return Check(name, None, floor, SKIP, f"{what} undefined (one class only)")
    ok = value >= floor
    return Check(
        name, value, floor, PASS if ok else FAIL, f"{what} {value:.4f} vs floor {floor:.4f}"
    )


def _finite(name: str, scores: np.ndarray, where: str) -> Check:
    import numpy as np

    scores = np.asarray(scores, dtype="float64")
    bad = int((~np.isfinite(scores) | (scores < 0) | (scores > 1)).sum())
    return Check(
        name,
        float(bad),
        0.0,
        PASS if bad == 0 and len(scores) else FAIL,
        f"{bad} of {len(scores)} {where} outputs are not finite probabilities in [0, 1]",
    )


def _slice_checks(
    config: GatesConfig,
    test: pd.DataFrame,
    y: np.ndarray,
    p_challenger: np.ndarray,
    p_champion: np.ndarray | None,
) -> list[Check]:
    checks: list[Check] = []
    for gate in config.slices:
        if gate.column not in test.columns:
            checks.append(
                Check(
                    f"slices[{gate.column}]",
                    None,
                    None,
                    FAIL,
                    f"no column {gate.column!r} in the test set",
                )
            )
            continue
        values = test[gate.column].astype("string").fillna("<missing>").to_numpy()
        small = []
        for value in sorted(set(values)):
            mask = values == value
            rows = int(mask.sum())
            if rows < gate.min_rows:
                small.append(f"{value} ({rows})")
                continue
            label = f"{gate.column}={value}"
            auc = roc_auc(y[mask], p_challenger[mask])
            if gate.min_roc_auc is not None:
                checks.append(
                    _at_least(
                        f"slice_roc_auc[{label}]", auc, gate.min_roc_auc, f"ROC AUC on {rows} rows"
                    )
                )
            if gate.max_regression is not None and p_champion is not None:
                champion_auc = roc_auc(y[mask], p_champion[mask])
                if auc is None or champion_auc is None:
                    checks.append(
                        Check(f"slice_regression[{label}]", None, None, SKIP, "one class only")
                    )
                    continue
                delta = auc - champion_auc
                checks.append(
                    Check(
                        f"slice_regression[{label}]",
                        delta,
                        -gate.max_regression,
                        PASS if delta >= -gate.max_regression else FAIL,
                        f"ROC AUC {auc:.4f} vs champion {champion_auc:.4f} on {rows} rows "
                        f"(change {delta:+.4f}, allowed -{gate.max_regression})",
                    )
                )
        if small:
            checks.append(
                Check(
                    f"slices[{gate.column}].not_checked",
                    float(len(small)),
                    float(gate.min_rows),
                    SKIP,
                    f"fewer than {gate.min_rows} test rows: {', '.join(small)}",
                )
            )
    return checks


def evaluate(
    config: GatesConfig,
    *,
    mode: str,
    test: pd.DataFrame,
    y: np.ndarray,
    p_challenger: np.ndarray,
    train_positive_rate: float,
    safety: Safety,
    p_champion: np.ndarray | None = None,
    champion_version: str | None = None,
    champion_error: str | None = None,
) -> GateDecision:
    """Run every check and return the decision (nothing is written here)."""
    import numpy as np

    y = np.asarray(y)
    p_challenger = np.asarray(p_challenger, dtype="float64")
    challenger = binary_metrics(y, p_challenger)
    base = base_rate_metrics(y, train_positive_rate)
    metrics: dict[str, dict[str, float | None]] = {"challenger": challenger, "base_rate": base}
    checks: list[Check] = [_finite("finite_probabilities[test]", p_challenger, "test-set")]

    if config.min_roc_auc is not None:
        checks.append(
            _at_least("min_roc_auc", challenger["roc_auc"], config.min_roc_auc, "ROC AUC")
        )
    loss = challenger["log_loss"]
    assert loss is not None
    if config.max_log_loss is not None:
        ok = loss <= config.max_log_loss
        checks.append(
            Check(
                "max_log_loss",
                loss,
                config.max_log_loss,
                PASS if ok else FAIL,
                f"log loss {loss:.4f} vs ceiling {config.max_log_loss:.4f}",
            )
        )
    if config.beat_base_rate:
        naive = base["log_loss"]
        assert naive is not None
        checks.append(
            Check(
                "beats_base_rate",
                loss,
                naive,
                PASS if loss < naive else FAIL,
                f"log loss {loss:.4f} vs {naive:.4f} for the base rate {train_positive_rate:.3f}",
            )
        )

    if champion_error is not None:
        checks.append(
            Check(
                "no_regression_vs_champion",
                None,
                -config.max_regression,
                FAIL,
                f"champion v{champion_version} could not be scored on this test set: "
                f"{champion_error}; compare by hand and promote with approval",
            )
        )
    elif p_champion is None:
        checks.append(
            Check(
                "no_regression_vs_champion",
                None,
                -config.max_regression,
                SKIP,
                "first model of this pipeline: no champion to compare with",
            )
        )
    else:
        p_champion = np.asarray(p_champion, dtype="float64")
        champion = binary_metrics(y, p_champion)
        metrics["champion"] = champion
        ours, theirs = challenger["roc_auc"], champion["roc_auc"]
        if ours is None or theirs is None:
            checks.append(
                Check("no_regression_vs_champion", None, None, SKIP, "one class only in test")
            )
        else:
            delta = ours - theirs
            checks.append(
                Check(
                    "no_regression_vs_champion",
                    delta,
                    -config.max_regression,
                    PASS if delta >= -config.max_regression else FAIL,
                    f"ROC AUC {ours:.4f} vs champion v{champion_version} {theirs:.4f} on the "
                    f"same {len(y)} test rows (change {delta:+.4f}, allowed "
                    f"-{config.max_regression})",
                )
            )

    checks += _slice_checks(config, test, y, p_challenger, p_champion)

    checks.append(_finite("finite_probabilities[edge_rows]", safety.edge_scores, "edge-row"))
    latency = safety.latency_ms_per_1000_rows
    budget = config.max_latency_ms_per_1000_rows
    checks.append(
        Check(
            "latency_ms_per_1000_rows",
            latency,
            budget,
            PASS if latency <= budget else FAIL,
            f"{latency:.1f} ms per 1,000 rows vs budget {budget:.0f} ms",
        )
    )
    size, limit = safety.model_mb, config.max_model_mb
    checks.append(
        Check(
            "model_size_mb",
            size,
            limit,
            PASS if size <= limit else FAIL,
            f"{size:.2f} MB vs budget {limit:.0f} MB",
        )
    )
    return GateDecision(mode=mode, checks=checks, metrics=metrics)
