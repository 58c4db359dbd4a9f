"""Training logic without services: windows, candidates, the data set and the gates."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from runway_mlops.config import GatesConfig, SliceGate
from runway_mlops.errors import ConfigError, MissingPartitionError
from runway_mlops.lake import Lake
from runway_mlops.stages.train import edge_rows, model_input, training_window
from runway_mlops.training import gates
from runway_mlops.training.dataset import TrainingWindow, build_training_set
from runway_mlops.training.model import candidates, feature_spec, prepare
from tests.synthetic import write_days

D = dt.date


def test_scheduled_window_is_consecutive_and_time_ordered(flights_pipeline) -> None:
    window = training_window(flights_pipeline, end=D(2013, 6, 30), days=60)
    assert window.end == D(2013, 6, 30)
    assert window.start == D(2013, 5, 2)
    assert window.test_from == D(2013, 6, 17)  # 14 test days
    assert window.validation_from == D(2013, 6, 3)  # 14 validation days before them
    splits = [window.split_of(d) for d in window.days]
    assert splits == sorted(splits, key=["train", "validation", "test"].index)
    assert len(window.days) == 60


def test_reference_window_is_jan_sep_then_oct_dec(flights_pipeline) -> None:
    window = training_window(flights_pipeline, reference=True)
    assert (window.start, window.test_from, window.end) == (
        D(2013, 1, 1),
        D(2013, 10, 1),
        D(2013, 12, 31),
    )
    assert window.validation_from == D(2013, 9, 1)


def test_window_too_short_is_refused(flights_pipeline) -> None:
    with pytest.raises(ConfigError, match="leaves no training days"):
        training_window(flights_pipeline, end=D(2013, 6, 30), days=20)


def test_candidates_cover_the_grid_and_overrides_win(flights_pipeline) -> None:
    grid = candidates(flights_pipeline.training)
    assert len(grid) == 4
    assert {(c.params["num_leaves"], c.params["learning_rate"]) for c in grid} == {
        (31, 0.05),
        (31, 0.1),
        (63, 0.05),
        (63, 0.1),
    }
    pinned = candidates(flights_pipeline.training, {"num_leaves": 3, "num_boost_round": 5})
    assert len(pinned) == 2  # only learning_rate is still tuned
    assert all(c.params["num_leaves"] == 3 and c.num_boost_round == 5 for c in pinned)
    assert len(candidates(flights_pipeline.training, tune=False)) == 1


def test_prepare_maps_unseen_categories_to_missing() -> None:
    train = pd.DataFrame({"carrier": ["AA", "B6"], "distance": [1, 2]})
    spec = feature_spec(train, ["carrier", "distance"], ["carrier"])
    out = prepare(pd.DataFrame({"distance": ["3"], "carrier": ["ZZ"]}), spec)
    assert list(out.columns) == ["carrier", "distance"]
    assert out["carrier"].isna().all() and list(out["carrier"].cat.categories) == ["AA", "B6"]
    assert out["distance"].dtype == "float64"


def test_edge_rows_have_all_missing_and_unseen(flights_pipeline) -> None:
    test = pd.DataFrame({"carrier": ["AA"], "distance": [100.0]})
    spec = {"features": ["carrier", "distance"], "categories": {"carrier": ["AA"]}}
    rows = model_input(edge_rows(test, spec), spec)
    assert rows.iloc[-1].isna().all()
    assert (rows["carrier"].iloc[:-1] == "__never_seen__").all()


# ----------------------------------------------------------------------------- data set


def test_training_set_splits_by_date_and_drops_unknown_outcomes(settings, flights_pipeline) -> None:
    write_days(settings, flights_pipeline, D(2013, 3, 1), D(2013, 3, 30), rows=50)
    window = training_window(flights_pipeline, end=D(2013, 3, 30), days=30)
    built = build_training_set(settings, flights_pipeline, window)
    train, valid, test = (built.frame(s) for s in ("train", "validation", "test"))
    assert train["ds"].max() < valid["ds"].min() and valid["ds"].max() < test["ds"].min()
    # Outcomes are known 12 h after departure: the last day's evening flights are unknown
    # at the end of the window, and are left out.
    assert built.lineage["rows_outcome_unknown"] > 0
    assert len(train) + len(valid) + len(test) == 30 * 50 - built.lineage["rows_outcome_unknown"]
    assert "carrier" in built.features and "flight" not in built.features
    assert "delayed" not in built.features and "event_time" not in built.features
    assert built.lineage["feature_version"] == "synthetic1"
    assert len(built.lineage["partitions"]) == 30


def test_the_logged_dataset_is_mlflows_own_without_its_full_scan(
    settings, flights_pipeline
) -> None:
    """``mlflow_dataset`` logs what ``mlflow.data.from_pandas`` logs (schema, digest,
    profile, source, targets), with the schema read off each column's first values."""
    import mlflow.data
    import pandas as pd

    from runway_mlops.training.dataset import mlflow_dataset

    write_days(settings, flights_pipeline, D(2013, 3, 1), D(2013, 3, 30), rows=50)
    window = training_window(flights_pipeline, end=D(2013, 3, 30), days=30)
    built = build_training_set(settings, flights_pipeline, window)
    frame = pd.concat([built.frame("train")] * 3, ignore_index=True)  # > 1,000 rows
    numeric = next(c for c in built.features if frame[c].dtype.kind == "f")
    text = next(c for c in frame.columns if frame[c].dtype.kind == "O")
    assert frame[numeric].notna().all() and frame[text].notna().all()
    # A null only in the last row: past any sample of first rows.
    frame.loc[len(frame) - 1, [numeric, text]] = [float("nan"), None]
    ours = mlflow_dataset(built, "flights", "train", frame)
    theirs = mlflow.data.from_pandas(
        frame,
        source=str(built.path / "train.parquet"),
        name=f"flights-train-{built.window.key}",
        targets=built.label,
    )
    assert ours.to_dict() == theirs.to_dict()
    assert not next(s for s in ours.schema.inputs if s.name == numeric).required
    # A column MLflow has no type for (Parquet decimals read as Python Decimal, as the
    # shipped rate features are): no schema, as MLflow's own, and the input still logs.
    from decimal import Decimal

    frame["rate"] = [Decimal("0.23077")] * len(frame)
    ours = mlflow_dataset(built, "flights", "train", frame)
    theirs = mlflow.data.from_pandas(
        frame,
        source=str(built.path / "train.parquet"),
        name=f"flights-train-{built.window.key}",
        targets=built.label,
    )
    assert ours.schema is None and ours.to_dict() == theirs.to_dict()


def test_quarantined_day_refuses_or_is_skipped_and_recorded(settings, flights_pipeline) -> None:
    from runway_mlops import catalog

    write_days(settings, flights_pipeline, D(2013, 3, 1), D(2013, 3, 30), rows=20)
    Lake(settings.lake_dir).remove("validated", "flights", "flights", D(2013, 3, 10))
    catalog.record_quarantine(
        settings.database_url,
        catalog.QuarantineEntry(
            "flights", "flights", D(2013, 3, 10), "partition", 20, {"x": 20}, "p", None, None
        ),
    )
    window = training_window(flights_pipeline, end=D(2013, 3, 30), days=30)
    with pytest.raises(MissingPartitionError, match=r"2013-03-10: flights quarantined"):
        build_training_set(settings, flights_pipeline, window)
    built = build_training_set(settings, flights_pipeline, window, missing_partitions="skip")
    assert built.lineage["skipped_days"] == {"2013-03-10": "flights quarantined"}
    assert "2013-03-10" not in set(built.frame("train")["ds"])


def test_missing_feature_partition_is_named(settings, flights_pipeline) -> None:
    write_days(settings, flights_pipeline, D(2013, 3, 1), D(2013, 3, 30), rows=20)
    Lake(settings.lake_dir).remove("features", "flights", "flights", D(2013, 3, 20))
    window = TrainingWindow(D(2013, 3, 1), D(2013, 3, 15), D(2013, 3, 25), D(2013, 3, 30))
    with pytest.raises(MissingPartitionError, match=r"2013-03-20: no features partition"):
        build_training_set(settings, flights_pipeline, window)


# -------------------------------------------------------------------------------- gates


def _scores(seed: int = 0, n: int = 4000):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    good = np.clip(0.5 + (y - 0.5) * 0.5 + rng.normal(0, 0.25, n), 0.01, 0.99)
    bad = np.clip(0.5 + (y - 0.5) * 0.1 + rng.normal(0, 0.25, n), 0.01, 0.99)
    slices = pd.DataFrame({"carrier": rng.choice(["AA", "B6"], n)})
    return y, good, bad, slices


def _safety(ok: bool = True) -> gates.Safety:
    return gates.Safety(np.array([0.2, 0.3] if ok else [np.nan, 0.3]), 12.0, 1.0)


def _by_name(decision: gates.GateDecision) -> dict[str, gates.Check]:
    return {c.name: c for c in decision.checks}


def test_first_model_skips_the_champion_comparison_and_says_so() -> None:
    y, good, _, slices = _scores()
    decision = gates.evaluate(
        GatesConfig(min_roc_auc=0.6),
        mode="enforce",
        test=slices,
        y=y,
        p_challenger=good,
        train_positive_rate=0.5,
        safety=_safety(),
    )
    check = _by_name(decision)["no_regression_vs_champion"]
    assert check.verdict == "skip" and "first model" in check.detail
    assert decision.passed and not decision.blocking


def test_worse_than_champion_is_rejected_and_named() -> None:
    y, good, bad, slices = _scores()
    decision = gates.evaluate(
        GatesConfig(min_roc_auc=0.5),
        mode="enforce",
        test=slices,
        y=y,
        p_challenger=bad,
        train_positive_rate=0.5,
        safety=_safety(),
        p_champion=good,
        champion_version="3",
    )
    check = _by_name(decision)["no_regression_vs_champion"]
    assert check.verdict == "fail" and "champion v3" in check.detail
    assert decision.decision == "rejected" and decision.blocking
    assert "no_regression_vs_champion" in decision.summary()


def test_a_slice_regression_blocks_even_when_overall_is_fine() -> None:
    y, good, _, slices = _scores()
    worse_on_b6 = good.copy()
    b6 = (slices["carrier"] == "B6").to_numpy()
    worse_on_b6[b6] = np.random.default_rng(1).uniform(0, 1, b6.sum())
    config = GatesConfig(
        min_roc_auc=0.5,
        max_regression=0.5,
        slices=[SliceGate(column="carrier", min_rows=100, max_regression=0.02)],
    )
    decision = gates.evaluate(
        config,
        mode="enforce",
        test=slices,
        y=y,
        p_challenger=worse_on_b6,
        train_positive_rate=0.5,
        safety=_safety(),
        p_champion=good,
        champion_version="1",
    )
    checks = _by_name(decision)
    assert checks["no_regression_vs_champion"].verdict == "pass"
    assert checks["slice_regression[carrier=B6]"].verdict == "fail"
    assert checks["slice_regression[carrier=AA]"].verdict == "pass"
    assert decision.blocking


def test_dry_run_records_the_same_failures_without_blocking() -> None:
    y, good, bad, slices = _scores()
    kwargs = dict(
        test=slices,
        y=y,
        p_challenger=bad,
        train_positive_rate=0.5,
        safety=_safety(),
        p_champion=good,
        champion_version="1",
    )
    enforce = gates.evaluate(GatesConfig(), mode="enforce", **kwargs)
    dry = gates.evaluate(GatesConfig(), mode="dry_run", **kwargs)
    assert [c.as_dict() for c in dry.checks] == [c.as_dict() for c in enforce.checks]
    assert dry.decision == "rejected" and not dry.blocking and enforce.blocking
    assert "dry run, not blocking" in dry.summary()


def test_thresholds_base_rate_and_safety_checks() -> None:
    y, good, _, slices = _scores()
    constant = np.full(len(y), 0.5)
    decision = gates.evaluate(
        GatesConfig(
            min_roc_auc=0.99, max_log_loss=0.1, max_model_mb=0.5, max_latency_ms_per_1000_rows=5
        ),
        mode="enforce",
        test=slices,
        y=y,
        p_challenger=constant,
        train_positive_rate=float(y.mean()),
        safety=_safety(ok=False),
    )
    failed = {c.name for c in decision.failed}
    assert {
        "min_roc_auc",
        "max_log_loss",
        "beats_base_rate",
        "finite_probabilities[edge_rows]",
        "latency_ms_per_1000_rows",
        "model_size_mb",
    } <= failed
    assert "finite_probabilities[test]" not in failed


def test_unscorable_champion_fails_the_comparison() -> None:
    y, good, _, slices = _scores()
    decision = gates.evaluate(
        GatesConfig(min_roc_auc=0.5),
        mode="enforce",
        test=slices,
        y=y,
        p_challenger=good,
        train_positive_rate=0.5,
        safety=_safety(),
        champion_version="2",
        champion_error="feature columns missing from the input: old_feature",
    )
    check = _by_name(decision)["no_regression_vs_champion"]
    assert check.verdict == "fail" and "old_feature" in check.detail


def test_demo_trains_on_its_own_days(flights_pipeline) -> None:
    from runway_mlops.programs.demo import demo_training_conf

    days = [D(2013, 1, 1) + dt.timedelta(days=i) for i in range(31)]
    conf = demo_training_conf(days)
    window = training_window(
        flights_pipeline,
        end=D.fromisoformat(conf["window_end"]),
        days=conf["window_days"],
        validation_days=conf["validation_days"],
        test_days=conf["test_days"],
    )
    assert (window.start, window.end) == (D(2013, 1, 1), D(2013, 1, 31))
    assert window.test_from == D(2013, 1, 25) and window.validation_from == D(2013, 1, 18)


def test_non_finite_scores_fail_the_gates_instead_of_crashing() -> None:
    y, good, _, slices = _scores()
    broken = good.copy()
    broken[:10] = np.nan
    decision = gates.evaluate(
        GatesConfig(min_roc_auc=0.5),
        mode="enforce",
        test=slices,
        y=y,
        p_challenger=broken,
        train_positive_rate=0.5,
        safety=_safety(),
    )
    assert _by_name(decision)["finite_probabilities[test]"].verdict == "fail"
    assert decision.blocking


def test_an_all_missing_feature_is_no_baseline(tmp_path) -> None:
    from runway_mlops.stages.train import single_feature_baselines
    from runway_mlops.training.dataset import TrainingSet

    test = pd.DataFrame({"delayed": [0, 1, 0, 1], "empty": [np.nan] * 4, "x": [0.1, 0.9, 0.2, 0.8]})
    lineage = {"label": "delayed", "features": ["empty", "x"], "categorical": []}
    window = TrainingWindow(D(2013, 1, 1), D(2013, 1, 2), D(2013, 1, 3), D(2013, 1, 4))
    best = single_feature_baselines(TrainingSet(tmp_path, window, lineage), test)
    assert best == {"feature": "x", "roc_auc": 1.0}


def test_early_stopping_watches_one_metric_the_one_candidates_are_chosen_by(
    flights_pipeline,
) -> None:
    """Validation ROC AUC picks the candidate, so it alone stops the boosting: the best
    iteration is where validation AUC peaked, not where log loss (recorded too) did."""
    from runway_mlops.training.model import train_booster

    rng = np.random.default_rng(0)

    def frame(rows: int) -> pd.DataFrame:
        x = rng.normal(size=(rows, 6))
        y = (rng.random(rows) < 1 / (1 + np.exp(-(x[:, 0] + 0.5 * x[:, 1])))).astype(int)
        return pd.DataFrame(x, columns=[f"f{i}" for i in range(6)]).assign(label=y)

    train, validation = frame(3000), frame(3000)
    spec = feature_spec(train, [f"f{i}" for i in range(6)], [])
    # Fast, deep trees overfit: log loss turns up long before AUC stops improving.
    [candidate] = candidates(
        flights_pipeline.training,
        {
            "learning_rate": 0.3,
            "num_leaves": 63,
            "min_data_in_leaf": 5,
            "num_boost_round": 400,
            "early_stopping_rounds": 20,
        },
        tune=False,
    )
    _, info = train_booster(train, validation, spec, "label", candidate, num_threads=1)
    auc = info["history"]["auc"]
    loss = info["history"]["binary_logloss"]
    assert info["best_iteration"] == int(np.argmax(auc)) + 1
    assert int(np.argmin(loss)) + 1 != info["best_iteration"]  # the two really disagree here
