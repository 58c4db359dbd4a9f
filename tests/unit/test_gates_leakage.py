"""The leakage screen, the baseline floor and within-day ROC AUC in the gates.

Synthetic flights shaped like the real case: cancelled flights (label 1) lose their
tail number, so their plane features are null; a model that reads the missingness
"predicts" cancellations. A departure-hour lookup table is the baseline a model must beat.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from runway_mlops.config import BaselineGate, GatesConfig, LeakageScreen
from runway_mlops.training import gates, stats

pytestmark = pytest.mark.unit


def _flights(rows: int = 8000, seed: int = 0, leak: bool = True) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    ds = np.repeat([f"2013-04-{d + 1:02d}" for d in range(rows // 500)], 500)[:rows]
    hour = rng.integers(5, 23, rows)
    weather = rng.normal(0, 1, rows)
    logit = -1.3 + 0.08 * (hour - 14) + 0.6 * weather
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    cancelled = (y == 1) & (rng.random(rows) < 0.05)
    plane_age = rng.integers(1, 30, rows).astype("float64")
    if leak:
        plane_age[cancelled] = np.nan  # the feed erased the tail of a cancelled flight
    else:
        plane_age[rng.random(rows) < 0.02] = np.nan  # unknown build year, any label
    frame = pd.DataFrame(
        {
            "ds": ds,
            "dep_hour": hour,
            "weather": weather,
            "plane_age": plane_age,
            "origin": rng.choice(["EWR", "JFK", "LGA"], rows),
        }
    )
    return frame, y


def test_missingness_that_gives_the_label_away_blocks_and_is_named() -> None:
    train, y = _flights(leak=True)
    checks = {
        c.name: c
        for c in gates.leakage_checks(
            LeakageScreen(), train, y, ["dep_hour", "weather", "plane_age"]
        )
    }
    missing = checks["leakage_missingness"]
    assert missing.verdict == gates.FAIL
    assert "plane_age" in missing.detail and "label 1" in missing.detail
    assert checks["leakage_single_feature"].verdict == gates.PASS


def test_missing_values_unrelated_to_the_label_pass() -> None:
    train, y = _flights(leak=False)
    checks = {
        c.name: c
        for c in gates.leakage_checks(
            LeakageScreen(), train, y, ["dep_hour", "weather", "plane_age"]
        )
    }
    assert checks["leakage_missingness"].verdict == gates.PASS, checks["leakage_missingness"].detail
    assert checks["leakage_single_feature"].verdict == gates.PASS


def test_a_feature_that_alone_ranks_the_label_blocks() -> None:
    train, y = _flights(leak=False)
    train["arrival_delay_copy"] = y * 30.0 + np.random.default_rng(1).normal(0, 5, len(y))
    checks = {
        c.name: c
        for c in gates.leakage_checks(LeakageScreen(), train, y, ["weather", "arrival_delay_copy"])
    }
    single = checks["leakage_single_feature"]
    assert single.verdict == gates.FAIL
    assert "arrival_delay_copy" in single.detail and "weather" not in single.detail
    assert single.value is not None and single.value > 0.99


def test_a_rare_label_does_not_make_every_missing_value_look_pure() -> None:
    """Positives 3 %: the missing rows are ~97 % negative, like all the others."""
    rng = np.random.default_rng(2)
    y = (rng.random(20000) < 0.03).astype(int)
    train = pd.DataFrame({"gust": np.where(rng.random(20000) < 0.5, np.nan, rng.random(20000))})
    [missing] = [
        c
        for c in gates.leakage_checks(LeakageScreen(), train, y, ["gust"])
        if c.name == "leakage_missingness"
    ]
    assert missing.verdict == gates.PASS, missing.detail


def _decide(config: GatesConfig, train, y_train, test, y_test, p) -> dict[str, gates.Check]:
    decision = gates.evaluate(
        config,
        mode="enforce",
        test=test,
        y=y_test,
        p_challenger=p,
        train_positive_rate=float(y_train.mean()),
        safety=gates.Safety(np.array([0.2]), 1.0, 1.0),
        train=train,
        y_train=y_train,
        features=["dep_hour", "weather"],
    )
    return {c.name: c for c in decision.checks}


def test_a_lookup_table_on_the_hour_does_not_beat_the_baseline_but_a_real_model_does() -> None:
    train, y_train = _flights(seed=3, leak=False)
    test, y_test = _flights(seed=4, leak=False)
    config = GatesConfig(min_roc_auc=0.55, baseline=BaselineGate(columns=["dep_hour"]))
    hour_table = gates.group_rate_scores(train, y_train, test, config.baseline)
    lookup = _decide(config, train, y_train, test, y_test, hour_table)
    assert lookup["min_roc_auc"].verdict == gates.PASS  # the floor alone lets it through
    assert lookup["beats_baseline"].verdict == gates.FAIL
    model = 1 / (1 + np.exp(-(-1.3 + 0.08 * (test["dep_hour"] - 14) + 0.6 * test["weather"])))
    real = _decide(config, train, y_train, test, y_test, model.to_numpy())
    assert real["beats_baseline"].verdict == gates.PASS, real["beats_baseline"].detail
    assert "dep_hour" in real["beats_baseline"].detail


def test_group_rates_are_shrunk_and_unseen_groups_get_the_overall_rate() -> None:
    train = pd.DataFrame({"g": ["a"] * 2 + ["b"] * 98})
    y = np.array([1, 1] + [0] * 98)
    test = pd.DataFrame({"g": ["a", "b", "zzz"]})
    scores = gates.group_rate_scores(train, y, test, BaselineGate(columns=["g"], smoothing=2.0))
    overall = 0.02
    assert scores[0] == pytest.approx((2 + 2 * overall) / (2 + 2))
    assert scores[1] == pytest.approx((0 + 2 * overall) / (98 + 2))
    assert scores[2] == pytest.approx(overall)


def test_within_day_auc_ignores_the_ranking_of_days() -> None:
    """A score constant per day ranks bad days above good ones: pooled AUC > 0.5,
    within-day AUC exactly 0.5."""
    rng = np.random.default_rng(5)
    days = np.repeat(np.arange(20), 300)
    day_rate = np.repeat(rng.uniform(0.1, 0.6, 20), 300)
    y = (rng.random(len(days)) < day_rate).astype(int)
    pooled = stats.auc_interval(y, day_rate, days)
    within = stats.within_day_auc(y, day_rate, days)
    assert pooled is not None and within is not None
    assert pooled.estimate > 0.6
    assert within.estimate == pytest.approx(0.5)
    assert within.low <= 0.5 <= within.high


def test_the_decision_records_within_day_auc_with_its_interval() -> None:
    train, y_train = _flights(seed=6, leak=False)
    test, y_test = _flights(seed=7, leak=False)
    p = 1 / (1 + np.exp(-(0.6 * test["weather"]).to_numpy()))
    decision = gates.evaluate(
        GatesConfig(),
        mode="enforce",
        test=test,
        y=y_test,
        p_challenger=p,
        train_positive_rate=float(y_train.mean()),
        safety=gates.Safety(np.array([0.2]), 1.0, 1.0),
    )
    ours = decision.metrics["challenger"]
    assert (
        ours["roc_auc_within_day_low"]
        < ours["roc_auc_within_day"]
        < ours["roc_auc_within_day_high"]
    )
    assert ours["roc_auc_low"] < ours["roc_auc"] < ours["roc_auc_high"]


def test_platt_scaling_fixes_the_level_and_keeps_the_ranking() -> None:
    """Scores that under-predict (as January's model did in April: 0.25 against 0.35)
    are brought back to the realised rate on held-out days; ROC AUC is unchanged."""
    from runway_mlops.training.metrics import calibration_error, roc_auc
    from runway_mlops.training.model import fit_calibration
    from runway_mlops.training.pyfunc_model import calibrate

    rng = np.random.default_rng(8)
    logit = rng.normal(-0.6, 1.0, 20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-logit))).astype(int)
    raw = 1 / (1 + np.exp(-(0.7 * logit - 0.8)))  # too low, too flat
    spec = {"calibration": fit_calibration(y[:10000], raw[:10000])}
    fixed = calibrate(raw[10000:], spec)
    held_out = y[10000:]
    assert calibration_error(held_out, raw[10000:]) > 0.08
    assert calibration_error(held_out, fixed) < 0.02
    assert abs(fixed.mean() - held_out.mean()) < 0.02
    assert roc_auc(held_out, fixed) == pytest.approx(roc_auc(held_out, raw[10000:]))
    assert np.array_equal(calibrate(raw, {}), raw)  # no calibration: the booster's own


def test_a_miscalibrated_model_fails_the_calibration_gate() -> None:
    test, y = _flights(seed=9, leak=False)
    truth = 1 / (1 + np.exp(-(-1.3 + 0.08 * (test["dep_hour"] - 14) + 0.6 * test["weather"])))
    config = GatesConfig(min_roc_auc=0.55, max_calibration_error=0.05)

    def decide(p: np.ndarray) -> gates.Check:
        decision = gates.evaluate(
            config,
            mode="enforce",
            test=test,
            y=y,
            p_challenger=p,
            train_positive_rate=float(y.mean()),
            safety=gates.Safety(np.array([0.2]), 1.0, 1.0),
        )
        return {c.name: c for c in decision.checks}["max_calibration_error"]

    assert decide(truth.to_numpy()).verdict == gates.PASS
    low = decide((truth * 0.6).to_numpy())
    assert low.verdict == gates.FAIL and "vs realised rate" in low.detail


def test_the_threshold_from_costs_minimises_the_cost_and_follows_their_ratio() -> None:
    from runway_mlops.training.metrics import cost_threshold

    rng = np.random.default_rng(10)
    p = rng.uniform(0, 1, 40000)
    y = (rng.random(40000) < p).astype(int)  # calibrated scores
    for fp_cost, fn_cost in ((1.0, 1.0), (1.0, 3.0), (4.0, 1.0)):
        threshold, per_row = cost_threshold(y, p, fp_cost, fn_cost)
        assert threshold == pytest.approx(fp_cost / (fp_cost + fn_cost), abs=0.03)

        def cost(t: float, fp: float = fp_cost, fn: float = fn_cost) -> float:
            flag = p >= t
            return (fp * np.sum(flag & (y == 0)) + fn * np.sum(~flag & (y == 1))) / len(y)

        assert per_row == pytest.approx(cost(threshold))
        assert all(per_row <= cost(t) + 1e-12 for t in np.linspace(0, 1, 101))
    # No flight is ever late: flagging nothing is free, so the threshold is above every score.
    threshold, per_row = cost_threshold(np.zeros_like(y), p, 1.0, 3.0)
    assert threshold > p.max() and per_row == 0.0
