"""Evaluation gates: the checks a candidate must pass, and the one decision they make.

Pure functions over scores already computed (no MLflow, no Airflow), so each rule is
unit-tested on its own. :func:`evaluate` returns a :class:`GateDecision` with every check
(name, value, threshold, verdict, detail):

* absolute thresholds: minimum ROC AUC, maximum log loss, beat the naive base-rate model;
* no regression against the current champion, both scored now on the same test rows:
  non-inferiority, the one-sided lower bound of the ROC AUC difference (paired
  bootstrap over test days, :mod:`runway_mlops.training.stats`) above minus the margin
  — skipped, and said so, for the first model of a pipeline;
* per slice (e.g. each carrier, each origin) with enough test rows: a floor and a maximum
  regression against the champion on that slice, failing only when significant after
  Holm's correction over every slice test;
* a primary check that cannot be judged (one class only in the test set) fails;
* a floor that means something: the candidate must beat, on the same test rows (paired
  bootstrap over days), a baseline that scores each row with its group's label rate in
  the training rows (e.g. per route and departure hour);
* a leakage screen of the training rows: a feature that alone ranks the label too well,
  or whose missing values hold (almost) one label, blocks the model and is named;
* safety: finite probabilities in [0, 1] on the test set and on edge rows (all features
  missing, unseen categories); scoring latency per 1,000 rows and model size in budget.

``enforce`` blocks on any failed check; ``dry_run`` records the same decision and never
blocks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from runway_mlops.training.metrics import base_rate_metrics, binary_metrics

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import pandas as pd

    from runway_mlops.config import BaselineGate, GatesConfig, LeakageScreen

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


def _at_least(
    name: str, value: float | None, floor: float, what: str, interval: object = None
) -> Check:
    """A primary floor: undefined (one class only) fails, it cannot be judged."""
    if value is None:
        return Check(name, None, floor, FAIL, f"{what} undefined (one class only): cannot judge")
    ok = value >= floor
    shown = str(interval) if interval is not None else f"{value:.4f}"
    return Check(name, value, floor, PASS if ok else FAIL, f"{what} {shown} vs floor {floor:.4f}")


def _units(test: pd.DataFrame) -> np.ndarray:
    """What the bootstrap draws: the test days, or each row when there is no ``ds``."""
    import numpy as np

    if "ds" in test.columns:
        return test["ds"].astype(str).to_numpy()
    return np.arange(len(test)).astype(str)


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


def group_rate_scores(
    train: pd.DataFrame, y_train: np.ndarray, test: pd.DataFrame, baseline: BaselineGate
) -> np.ndarray:
    """The baseline's scores of the test rows: the training label rate of each row's group.

    Shrunk toward the overall rate by ``baseline.smoothing`` pseudo-rows, so a group seen
    a few times does not get a rate of 0 or 1; a group never seen gets the overall rate.
    """
    import numpy as np

    columns = baseline.columns
    y_train = np.asarray(y_train, dtype="float64")
    overall = float(y_train.mean()) if len(y_train) else 0.5

    def keys(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[columns].astype("string").fillna("<missing>").reset_index(drop=True)

    grouped = keys(train).assign(_y=y_train).groupby(columns, dropna=False)["_y"]
    sums, counts = grouped.sum(), grouped.count()
    rates = ((sums + baseline.smoothing * overall) / (counts + baseline.smoothing)).rename("_r")
    scored = keys(test).merge(rates.reset_index(), on=columns, how="left")["_r"]
    return scored.fillna(overall).to_numpy(dtype="float64")


def _baseline_check(
    baseline: BaselineGate,
    train: pd.DataFrame,
    y_train: np.ndarray,
    test: pd.DataFrame,
    y: np.ndarray,
    p_challenger: np.ndarray,
    units: np.ndarray,
    alpha: float,
) -> tuple[Check, dict[str, float | None]]:
    from runway_mlops.training import stats

    p_baseline = group_rate_scores(train, y_train, test, baseline)
    metrics = binary_metrics(y, p_baseline)
    what = f"the label rate per {' x '.join(baseline.columns)} in the training rows"
    delta = stats.paired_auc_difference(y, p_challenger, p_baseline, units, alpha=alpha)
    if delta is None:
        check = Check(
            "beats_baseline",
            None,
            baseline.min_gain,
            FAIL,
            "one class only in the test set: the comparison with the baseline cannot be judged",
        )
        return check, metrics
    by_estimate = baseline.require == "estimate"
    ok = (delta.estimate if by_estimate else delta.low) > baseline.min_gain
    judged = "the estimate" if by_estimate else "the lower bound"
    check = Check(
        "beats_baseline",
        delta.estimate,
        baseline.min_gain,
        PASS if ok else FAIL,
        f"ROC AUC gain over the baseline ({what}, ROC AUC {metrics['roc_auc']:.4f}) on the "
        f"same test rows: {delta.estimate:+.4f}, {1 - alpha:.0%} lower bound {delta.low:+.4f}; "
        f"{judged} vs {baseline.min_gain:+.4f}",
    )
    return check, metrics


def leakage_checks(
    screen: LeakageScreen,
    train: pd.DataFrame,
    y_train: np.ndarray,
    features: Sequence[str],
    categorical: Sequence[str] = (),
) -> list[Check]:
    """Features that give the label away in the training rows; see :class:`LeakageScreen`.

    Two checks, each naming every feature over its bound (or the closest one when none
    is): the best single numeric feature as a score (missing values at the median), and
    the purest set of rows where a feature is missing.
    """
    import numpy as np

    from runway_mlops.training import stats
    from runway_mlops.training.metrics import roc_auc, single_feature_auc

    y = np.asarray(y_train).astype("int64")
    singles: list[tuple[float, str]] = []
    nulls: list[tuple[float, str]] = []
    for column in features:
        values = train[column]
        missing = values.isna().to_numpy()
        n_null = int(missing.sum())
        if screen.max_null_purity is not None and screen.min_null_rows <= n_null < len(y):
            positives = int(y[missing].sum())
            label = 1 if 2 * positives >= n_null else 0
            count = positives if label else n_null - positives
            low = stats.wilson_low(count, n_null)
            rest = float(np.mean(y[~missing] == label))
            indicator = roc_auc(y, missing.astype("float64"))
            text = (
                f"{column}: the {n_null} rows where it is missing are {count / n_null:.1%} "
                f"label {label} (95 % lower bound {low:.1%}) against {rest:.1%} of the others"
                + (f", null-indicator ROC AUC {indicator:.3f}" if indicator is not None else "")
            )
            # Purer than the rest, and pure: missingness caused by the outcome.
            nulls.append((low if rest < screen.max_null_purity else 0.0, text))
        if screen.max_single_feature_auc is not None and column not in categorical:
            auc = single_feature_auc(values, y)
            if auc is not None:
                singles.append((auc, f"{column}: ROC AUC {auc:.3f} alone"))
    checks: list[Check] = []
    for name, found, bound, what in (
        ("leakage_single_feature", singles, screen.max_single_feature_auc, "ranks the label"),
        ("leakage_missingness", nulls, screen.max_null_purity, "its missing rows hold one label"),
    ):
        if bound is None:
            continue
        if not found:
            checks.append(Check(name, None, bound, SKIP, "no feature to screen"))
            continue
        over = sorted((f for f in found if f[0] >= bound), reverse=True)
        worst = max(found)
        if over:
            detail = f"{len(over)} feature(s) give the label away ({what} beyond {bound}): " + (
                "; ".join(text for _, text in over)
            )
        else:
            detail = f"none beyond {bound}; closest {worst[1]}"
        checks.append(Check(name, worst[0], bound, FAIL if over else PASS, detail))
    return checks


def _slice_checks(
    config: GatesConfig,
    test: pd.DataFrame,
    y: np.ndarray,
    p_challenger: np.ndarray,
    p_champion: np.ndarray | None,
) -> list[Check]:
    """Per-slice floors and regressions, failing only on evidence (Holm over all).

    Each slice gets a one-sided bootstrap p-value (over days) for "below the floor" and
    for "worse than the champion by more than the margin"; Holm's adjustment over every
    such test of every slice gate keeps the chance of failing an equal model below
    ``1 - confidence``, however many slices there are.
    """
    from runway_mlops.training import stats

    alpha = 1.0 - config.confidence
    units = _units(test)
    checks: list[Check] = []
    # (name, estimate, threshold, p, description) of each test, decided after Holm.
    tests: list[tuple[str, float, float, float, str]] = []
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
            if gate.min_roc_auc is not None:
                auc = stats.auc_interval(y[mask], p_challenger[mask], units[mask], alpha=alpha)
                if auc is None:
                    checks.append(
                        Check(f"slice_roc_auc[{label}]", None, None, SKIP, "one class only")
                    )
                else:
                    tests.append(
                        (
                            f"slice_roc_auc[{label}]",
                            auc.estimate,
                            gate.min_roc_auc,
                            auc.p_at_least(gate.min_roc_auc),
                            f"ROC AUC {auc} on {rows} rows vs floor {gate.min_roc_auc:.4f}",
                        )
                    )
            if gate.max_regression is not None and p_champion is not None:
                delta = stats.paired_auc_difference(
                    y[mask], p_challenger[mask], p_champion[mask], units[mask], alpha=alpha
                )
                if delta is None:
                    checks.append(
                        Check(f"slice_regression[{label}]", None, None, SKIP, "one class only")
                    )
                    continue
                tests.append(
                    (
                        f"slice_regression[{label}]",
                        delta.estimate,
                        -gate.max_regression,
                        delta.p_at_least(-gate.max_regression),
                        f"ROC AUC change vs champion {delta} on {rows} rows, margin "
                        f"-{gate.max_regression}",
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
    adjusted = stats.holm([t[3] for t in tests]) if tests else []
    for (name, estimate, threshold, p, text), q in zip(tests, adjusted, strict=True):
        failed = q < alpha
        checks.append(
            Check(
                name,
                estimate,
                threshold,
                FAIL if failed else PASS,
                f"{text}: p = {p:.3f}, Holm-adjusted {q:.3f} over {len(tests)} slice tests "
                f"({'significant' if failed else 'not significant'} at {alpha:g})",
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
    train: pd.DataFrame | None = None,
    y_train: np.ndarray | None = None,
    features: Sequence[str] = (),
    categorical: Sequence[str] = (),
) -> GateDecision:
    """Run every check and return the decision (nothing is written here).

    ``train``/``y_train`` (the training rows and their labels) feed the leakage screen
    over ``features`` and the baseline; without them those checks are not run.
    """
    import numpy as np

    y = np.asarray(y)
    p_challenger = np.asarray(p_challenger, dtype="float64")
    challenger = binary_metrics(y, p_challenger)
    base = base_rate_metrics(y, train_positive_rate)
    metrics: dict[str, dict[str, float | None]] = {"challenger": challenger, "base_rate": base}
    checks: list[Check] = [_finite("finite_probabilities[test]", p_challenger, "test-set")]

    from runway_mlops.training import stats

    alpha = 1.0 - config.confidence
    units = _units(test)
    within = stats.within_day_auc(y, p_challenger, units, alpha=alpha)
    if within is not None:
        challenger["roc_auc_within_day"] = within.estimate
        challenger["roc_auc_within_day_low"] = within.low
        challenger["roc_auc_within_day_high"] = within.high
    if config.min_roc_auc is not None:
        interval = stats.auc_interval(y, p_challenger, units, alpha=alpha)
        if interval is not None:
            challenger["roc_auc_low"], challenger["roc_auc_high"] = interval.low, interval.high
        checks.append(
            _at_least("min_roc_auc", challenger["roc_auc"], config.min_roc_auc, "ROC AUC", interval)
        )
    if config.max_calibration_error is not None:
        error = challenger["calibration_error"]
        ok = error is not None and error <= config.max_calibration_error
        shown = "undefined" if error is None else f"{error:.4f}"
        checks.append(
            Check(
                "max_calibration_error",
                error,
                config.max_calibration_error,
                PASS if ok else FAIL,
                f"expected calibration error {shown} (mean score {float(p_challenger.mean()):.3f}"
                f" vs realised rate {float(y.mean()):.3f}) vs ceiling "
                f"{config.max_calibration_error:.4f}",
            )
        )
    if train is not None and y_train is not None:
        if config.baseline is not None:
            baseline_alpha = 1.0 - (config.baseline.confidence or config.confidence)
            check, metrics["baseline"] = _baseline_check(
                config.baseline, train, y_train, test, y, p_challenger, units, baseline_alpha
            )
            checks.append(check)
        checks += leakage_checks(config.leakage, train, y_train, features, categorical)
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
        delta = stats.paired_auc_difference(y, p_challenger, p_champion, units, alpha=alpha)
        if ours is None or theirs is None or delta is None:
            checks.append(
                Check(
                    "no_regression_vs_champion",
                    None,
                    -config.max_regression,
                    FAIL,
                    "one class only in the test set: the comparison cannot be judged",
                )
            )
        else:
            # Non-inferiority: the one-sided lower bound above minus the margin.
            ok = delta.low > -config.max_regression
            checks.append(
                Check(
                    "no_regression_vs_champion",
                    delta.estimate,
                    -config.max_regression,
                    PASS if ok else FAIL,
                    f"ROC AUC {ours:.4f} vs champion v{champion_version} {theirs:.4f} on the "
                    f"same {len(y)} test rows ({len(set(units))} bootstrap units): change "
                    f"{delta.estimate:+.4f}, {config.confidence:.0%} lower bound "
                    f"{delta.low:+.4f} vs margin -{config.max_regression}",
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
