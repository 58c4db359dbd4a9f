"""Gates that tell signal from noise: intervals over days, paired non-inferiority, Holm.

The data are synthetic days with a day effect (bad days delay everyone), scored by a
"champion" and by challengers that are equal to it (a twin with its own noise), slightly
worse, or much worse.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from runway_mlops.config import GatesConfig, SliceGate
from runway_mlops.training import gates, stats

pytestmark = pytest.mark.unit


def _days(n_days: int = 14, rows: int = 900, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    ds = np.repeat([f"2013-04-{d + 1:02d}" for d in range(n_days)], rows)
    day_effect = np.repeat(rng.normal(0, 0.8, n_days), rows)
    signal = rng.normal(0, 1, len(ds))
    y = (rng.random(len(ds)) < 1 / (1 + np.exp(-(signal + day_effect - 1)))).astype(int)
    test = pd.DataFrame(
        {"ds": ds, "carrier": rng.choice([f"C{i:02d}" for i in range(20)], len(ds))}
    )
    test["signal"], test["day_effect"] = signal, day_effect
    return test, y


def _model(test: pd.DataFrame, noise: float, seed: int, weaken: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logit = (1 - weaken) * test["signal"] + test["day_effect"] + rng.normal(0, noise, len(test))
    return 1 / (1 + np.exp(-logit.to_numpy()))


def _safety() -> gates.Safety:
    return gates.Safety(np.array([0.2, 0.3]), 12.0, 1.0)


def _evaluate(config: GatesConfig, test, y, challenger, champion) -> dict[str, gates.Check]:
    decision = gates.evaluate(
        config,
        mode="enforce",
        test=test,
        y=y,
        p_challenger=challenger,
        train_positive_rate=float(y.mean()),
        safety=_safety(),
        p_champion=champion,
        champion_version="1",
    )
    return {c.name: c for c in decision.checks}


def test_weighted_auc_is_the_mann_whitney_statistic_with_ties_and_weights() -> None:
    rng = np.random.default_rng(3)
    y = rng.random(2000) < 0.3
    scores = np.round(y * 0.4 + rng.random(2000), 1)  # many ties
    weights = rng.integers(0, 4, 2000).astype("float32")
    got = stats.weighted_auc(y, scores, weights[None, :])[0]
    assert got == pytest.approx(roc_auc_score(y, scores, sample_weight=weights), abs=1e-9)
    assert np.isnan(stats.weighted_auc(np.zeros(5), np.arange(5.0), np.ones((1, 5)))[0])


def test_an_interval_over_days_is_wider_than_one_over_rows_when_days_differ() -> None:
    test, y = _days()
    p = _model(test, noise=1.0, seed=1)
    by_day = stats.auc_interval(y, p, test["ds"].to_numpy())
    by_row = stats.auc_interval(y, p, np.arange(len(y)))
    assert by_day is not None and by_row is not None
    assert by_day.low < by_day.estimate < by_day.high
    assert (by_day.high - by_day.low) > 1.5 * (by_row.high - by_row.low)


def test_holm_adjusts_step_down() -> None:
    assert stats.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])


def test_a_one_class_test_set_fails_the_primary_checks_instead_of_skipping() -> None:
    test, y = _days(n_days=3, rows=100)
    y = np.zeros_like(y)
    p = _model(test, 1.0, 1)
    checks = _evaluate(GatesConfig(min_roc_auc=0.6), test, y, p, _model(test, 1.0, 2))
    assert checks["min_roc_auc"].verdict == "fail"
    assert "cannot judge" in checks["min_roc_auc"].detail
    assert checks["no_regression_vs_champion"].verdict == "fail"


def test_an_equal_twin_passes_where_a_point_comparison_at_0_005_failed() -> None:
    """Seed-twin noise moves the point difference beyond -0.005; the paired test keeps it."""
    test, y = _days()
    champion = _model(test, noise=0.9, seed=20)
    twin = _model(test, noise=0.9, seed=21)
    auc = roc_auc_score(y, twin) - roc_auc_score(y, champion)
    assert auc < -0.005  # the old rule (point difference within 0.005) rejects this twin
    checks = _evaluate(GatesConfig(min_roc_auc=0.5), test, y, twin, champion)
    check = checks["no_regression_vs_champion"]
    assert check.verdict == "pass", check.detail
    assert check.value == pytest.approx(auc, abs=1e-9)
    assert "95% lower bound" in check.detail


def test_a_clearly_worse_challenger_fails_non_inferiority() -> None:
    test, y = _days()
    champion = _model(test, noise=0.5, seed=10)
    worse = _model(test, noise=0.5, seed=11, weaken=0.6)
    checks = _evaluate(GatesConfig(min_roc_auc=0.5), test, y, worse, champion)
    check = checks["no_regression_vs_champion"]
    assert check.verdict == "fail" and check.value is not None and check.value < -0.02


def test_many_slices_of_an_equal_twin_do_not_fail_by_chance() -> None:
    """20 carriers: uncorrected, some slice of a twin looks significantly worse."""
    test, y = _days(rows=600, seed=4)
    champion = _model(test, noise=1.2, seed=20)
    twin = _model(test, noise=1.2, seed=21)
    gate = SliceGate(column="carrier", min_rows=100, max_regression=0.0)
    config = GatesConfig(min_roc_auc=0.5, slices=[gate])
    checks = _evaluate(config, test, y, twin, champion)
    slice_checks = [c for n, c in checks.items() if n.startswith("slice_regression")]
    assert len(slice_checks) == 20
    assert all(c.verdict == "pass" for c in slice_checks), [c.detail for c in slice_checks]
    raw = []
    carriers = test["carrier"].to_numpy()
    for carrier in sorted(set(carriers)):
        mask = carriers == carrier
        delta = stats.paired_auc_difference(
            y[mask], twin[mask], champion[mask], test["ds"].to_numpy()[mask]
        )
        assert delta is not None
        raw.append(delta.p_at_least(0.0))
    assert min(raw) < 0.05  # without the correction this twin would have been rejected


def test_a_slice_that_really_regressed_still_fails_after_correction() -> None:
    test, y = _days(rows=600, seed=4)
    champion = _model(test, noise=0.5, seed=20)
    broken = champion.copy()
    c00 = (test["carrier"] == "C00").to_numpy()
    broken[c00] = np.random.default_rng(5).uniform(0, 1, c00.sum())
    config = GatesConfig(
        min_roc_auc=0.5, slices=[SliceGate(column="carrier", min_rows=100, max_regression=0.02)]
    )
    checks = _evaluate(config, test, y, broken, champion)
    assert checks["slice_regression[carrier=C00]"].verdict == "fail"
    assert checks["slice_regression[carrier=C01]"].verdict == "pass"
    assert "Holm-adjusted" in checks["slice_regression[carrier=C00]"].detail
