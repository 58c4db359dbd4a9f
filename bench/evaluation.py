"""The reference evaluation: figures that do not flatter, on the real 2013 data.

    .venv/bin/python bench/evaluation.py

On the feature table of ``bench/plain_year.py`` (the shipped feature rules in pandas:
outcomes known by the day's start, weather an hour after its stamp, erased tails
borrowed) and LightGBM with the pipeline's parameters (early stopping on validation ROC
AUC alone), for two splits — the reference (train Jan–Aug, validate Sep, test Oct–Dec)
and a month (the demo's January: train 1–17, validate 18–24, test 25–31) — it reports,
each with a 90 % interval from a bootstrap over test days (``runway_mlops.training.stats``):

* pooled and mean within-day ROC AUC of the model, and of the baseline the gates use
  (the training rows' delay rate per origin and departure hour), and the paired gain;
* the spread over seeds (``--seeds``, default 3) of pooled and within-day ROC AUC;
* calibration: expected calibration error of the model's scores, and after Platt
  scaling on the validation days;
* the decision threshold from the shipped costs and its recall and flag rate, against
  the fixed 0.5;
* the leakage screen of the gates on the training rows, and what the tail-number fix
  is worth: the reference split again without borrowing erased tails.

Both prediction times, before the fact (``features.daily_prediction``):

* ``daily``: every flight predicted at the local start of its day, what the shipped
  daily run knows at midnight (no same-day weather);
* ``hour_ahead``: each flight an hour before departure, with the weather then known:
  the micro-batch rule without its same-day block (the daily ``as_of`` evaluation).

Writes ``bench/results/evaluation.json`` (not committed); ~8 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plain_year  # noqa: E402
from benchkit import RESULTS, machine  # noqa: E402

SPLITS = {
    "reference": ("2013-01-01", "2013-09-01", "2013-10-01", "2014-01-01"),
    "month": ("2013-01-01", "2013-01-18", "2013-01-25", "2013-02-01"),
}
CATEGORICAL = ["carrier", "origin", "dest"]


def _interval(value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    return {
        "estimate": round(value.estimate, 4),
        "low": round(value.low, 4),
        "high": round(value.high, 4),
    }


def evaluate_split(
    table: pd.DataFrame, split: tuple[str, str, str, str], seeds: int
) -> dict[str, Any]:
    import lightgbm as lgb

    from runway_mlops.config import BaselineGate, LeakageScreen, get_pipeline, load_settings
    from runway_mlops.training import gates, stats
    from runway_mlops.training.metrics import binary_metrics, calibration_error, cost_threshold
    from runway_mlops.training.model import candidates, fit_calibration
    from runway_mlops.training.pyfunc_model import calibrate

    pipeline = get_pipeline(load_settings(), "flights")
    assert pipeline.training is not None and pipeline.inference is not None
    first, valid_from, test_from, end = split
    days = table["_day"]
    train = table[(days >= first) & (days < valid_from)]
    valid = table[(days >= valid_from) & (days < test_from)]
    test = table[(days >= test_from) & (days < end)]
    features = [c for c in table.columns if not c.startswith("_")]
    y_train, y_valid, y_test = (t["_label"].to_numpy() for t in (train, valid, test))
    units = test["_day"].to_numpy()

    runs = []
    for seed in range(seeds):
        [candidate] = candidates(pipeline.training, {"seed": 42 + seed}, tune=False)
        params = {**candidate.params, "num_threads": 2}
        booster = lgb.train(
            params,
            lgb.Dataset(train[features], y_train),
            num_boost_round=candidate.num_boost_round,
            valid_sets=[lgb.Dataset(valid[features], y_valid)],
            callbacks=[
                lgb.early_stopping(
                    candidate.early_stopping_rounds, first_metric_only=True, verbose=False
                )
            ],
        )
        runs.append(
            (
                booster.predict(valid[features], num_iteration=booster.best_iteration),
                booster.predict(test[features], num_iteration=booster.best_iteration),
            )
        )
    p_valid, p_test = runs[0]
    baseline = BaselineGate(columns=["origin", "dep_hour"])
    p_base = gates.group_rate_scores(train, y_train, test, baseline)
    calibration = fit_calibration(y_valid, p_valid)
    costs = pipeline.inference.costs
    assert costs is not None
    threshold, _ = cost_threshold(y_valid, p_valid, costs.false_positive, costs.false_negative)

    def decisions(cut: float) -> dict[str, float]:
        flag = p_test >= cut
        return {
            "threshold": round(cut, 4),
            "flagged": round(float(flag.mean()), 4),
            "recall": round(float(flag[y_test == 1].mean()), 4),
            "precision": round(float(y_test[flag].mean()), 4) if flag.any() else None,
        }

    seeds_pooled = [stats.auc_interval(y_test, p, units).estimate for _, p in runs]
    seeds_within = [stats.within_day_auc(y_test, p, units).estimate for _, p in runs]
    screen = gates.leakage_checks(LeakageScreen(), train, y_train, features, CATEGORICAL)
    return {
        "rows": {"train": len(train), "validation": len(valid), "test": len(test)},
        "test_days": int(len(set(units))),
        "positive_rate_test": round(float(y_test.mean()), 4),
        "model": {
            "roc_auc": _interval(stats.auc_interval(y_test, p_test, units)),
            "roc_auc_within_day": _interval(stats.within_day_auc(y_test, p_test, units)),
            "log_loss": round(binary_metrics(y_test, p_test)["log_loss"], 4),
        },
        "baseline_origin_hour": {
            "roc_auc": _interval(stats.auc_interval(y_test, p_base, units)),
            "roc_auc_within_day": _interval(stats.within_day_auc(y_test, p_base, units)),
            "gain": _interval(stats.paired_auc_difference(y_test, p_test, p_base, units)),
        },
        "seeds": {
            "n": seeds,
            "roc_auc": [round(v, 4) for v in seeds_pooled],
            "roc_auc_within_day": [round(v, 4) for v in seeds_within],
            "spread_roc_auc": round(max(seeds_pooled) - min(seeds_pooled), 4),
        },
        "calibration": {
            "mean_score": round(float(p_test.mean()), 4),
            "ece": round(calibration_error(y_test, p_test), 4),
            "ece_after_platt_on_validation": round(
                calibration_error(y_test, calibrate(p_test, {"calibration": calibration})), 4
            ),
        },
        "decisions": {"from_costs": decisions(threshold), "fixed_0.5": decisions(0.5)},
        "leakage_screen": {c.name: {"verdict": c.verdict, "detail": c.detail} for c in screen},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    flights, weather, planes = plain_year.load()
    result: dict[str, Any] = {"bench": "evaluation", "machine": machine(), "cadences": {}}
    for cadence, prediction in (("daily", "day_start"), ("hour_ahead", "lead")):
        table = plain_year.features(flights, weather, planes, prediction=prediction)
        table["_day"] = table["_day"].astype(str)
        splits = result["cadences"][cadence] = {}
        for name, split in SPLITS.items():
            splits[name] = evaluate_split(table, split, args.seeds)
        leaky = plain_year.features(flights, weather, planes, borrow=False, prediction=prediction)
        leaky["_day"] = leaky["_day"].astype(str)
        splits["reference_without_tail_fix"] = evaluate_split(leaky, SPLITS["reference"], 1)
    result["seconds"] = round(time.perf_counter() - began, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "evaluation.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["cadences"], indent=1))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
