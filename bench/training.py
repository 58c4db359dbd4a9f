"""Bench: the training step, Runway's stages against bare LightGBM and MLflow calls.

    .venv/bin/python bench/training.py [--days 120] [--rows 900] [--repeat 3]

On a private Runway home (its own SQLite catalog and MLflow store), writes synthetic
feature, label and validated partitions (``tests/synthetic.write_days``: ``--days`` days
of ``--rows`` flights), builds the training set of the pipeline's window ending on the
last day, then measures, ``--repeat`` times (medians reported):

* ``train_candidate`` (read the set, LightGBM with early stopping, validation metrics,
  MLflow run, data set inputs, pyfunc model logging) against a bare ``lightgbm.train``
  on the same prepared matrices (``prepare`` / ``feature_spec``), with the same
  parameters (``candidates(pipeline.training, tune=False)[0]``), the same
  ``num_threads`` and the same early stopping. The bare figure is ``lgb.Dataset`` +
  ``lgb.train`` only: reading and preparing the data is left out, on purpose;
* ``evaluate_gates`` (load and score challenger and champion, safety checks, plots,
  recording in the catalog and MLflow) against bare scoring: ``Booster.predict`` of two
  in-memory boosters on the prepared test matrix plus ROC AUC and log loss of each;
* ``register_challenger`` + ``promote_champion`` against a bare
  ``MlflowClient.create_model_version`` + ``set_registered_model_alias``.

One chain (train → gates → register → promote) runs first, untimed in the medians, to
import everything and make a champion, so every measured ``evaluate_gates`` scores a
champion as well. Gates run in ``dry_run`` mode (the same work as ``enforce``, but a
rejection cannot stop the bench). A last chain runs under cProfile to say where the time
goes (the direct callees of each stage; cProfile inflates Python-heavy code).

Writes ``bench/results/training.json`` and prints a Markdown table. Nothing here is
asserted: timings are measured, not pass/fail. LightGBM with every core is sensitive to
other load on the machine: the load average before and after is recorded.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchkit import RESULTS, ROOT, machine  # noqa: E402  (bench/benchkit.py)

#: The last day of the synthetic data (and of the training window).
END = dt.date(2013, 6, 30)


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3) if values else float("nan")


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    out = fn()
    return time.perf_counter() - began, out


def _label(func: tuple[str, int, str]) -> str:
    """``package.module:function`` for a pstats key."""
    filename, _, name = func
    if filename == "~":
        return name
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    module = filename.removesuffix(".py").replace("/", ".").lstrip(".")
    return f"{module}:{name}"


def callees(profile: cProfile.Profile, name: str, top: int = 10) -> dict[str, Any]:
    """Seconds spent in each direct callee of the function ``name`` (of stages/train.py)."""
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    target = next(
        (k for k in stats if k[2] == name and k[0].endswith("stages/train.py")),
        None,
    )
    if target is None:
        return {}
    total = stats[target][3]

    def name_of(func: tuple[str, int, str]) -> str:
        # A decorator's wrapper (MLflow's tracing, telemetry) says nothing: name what it wraps.
        if func[2] != "wrapper":
            return _label(func)
        inner = [(k, v[4][func][3]) for k, v in stats.items() if func in v[4] and k != func]
        return _label(max(inner, key=lambda e: e[1])[0]) if inner else _label(func)

    edges = []
    for func, (*_, callers) in stats.items():
        if target in callers:
            edges.append((name_of(func), callers[target][3]))
    edges.sort(key=lambda e: -e[1])
    shown = edges[:top]
    return {
        "total_s": round(total, 3),
        "callees_s": {label: round(seconds, 3) for label, seconds in shown},
        "rest_s": round(total - sum(s for _, s in shown), 3),
    }


class Bench:
    """The Runway stages and their bare references on one training set."""

    def __init__(self, settings: Any, pipeline: Any, training_set: Any) -> None:
        from mlflow import MlflowClient

        from runway_mlops.stages import train
        from runway_mlops.training.model import candidates, feature_spec, prepare, threads

        self.train = train
        self.settings, self.pipeline, self.training_set = settings, pipeline, training_set
        self.candidate = candidates(pipeline.training, tune=False)[0]
        self.num_threads = threads()  # what train_booster uses when not told otherwise
        label = training_set.label
        frames = {s: training_set.frame(s) for s in ("train", "validation", "test")}
        spec = feature_spec(
            frames["train"], training_set.features, training_set.lineage["categorical"]
        )
        self.x = {s: prepare(f, spec) for s, f in frames.items()}
        self.y = {s: f[label].to_numpy() for s, f in frames.items()}
        self.client = MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri)
        self.bare_model = f"bench_bare_{pipeline.name}"
        self.bare_champion: Any = None
        self.approved_by = "bench" if pipeline.promotion.policy == "manual" else None
        self.runs = 0

    # ------------------------------------------------------------------ Runway stages

    def runway_chain(self) -> dict[str, Any]:
        self.runs += 1
        context = self.train.RunContext(
            dag_id=None, run_id=f"bench__{self.runs}", run_type="manual", reason="bench"
        )
        s, p = self.settings, self.pipeline
        t_train, result = _timed(
            lambda: self.train.train_candidate(
                s, p, self.training_set.path, self.candidate, context
            )
        )
        best = self.train.select_best([result])
        t_gates, evaluation = _timed(
            lambda: self.train.evaluate_gates(s, p, best, context, mode="dry_run")
        )
        t_register, registered = _timed(
            lambda: self.train.register_challenger(s, p, evaluation, context)
        )
        t_promote, _ = _timed(
            lambda: self.train.promote_champion(
                s, p, registered, context, approved_by=self.approved_by
            )
        )
        run = self.client.get_run(result["mlflow_run_id"])
        return {
            "train_candidate_s": t_train,
            "train_booster_s": run.data.metrics.get("train_seconds", float("nan")),
            "evaluate_gates_s": t_gates,
            "register_promote_s": t_register + t_promote,
            "best_iteration": result["best_iteration"],
            "validation_roc_auc": result["validation"]["roc_auc"],
            "decision": evaluation["decision"],
            "champion_scored": evaluation["champion_version"] is not None,
            "model_uri": result["model_uri"],
            "mlflow_run_id": result["mlflow_run_id"],
            "model_version": registered["model_version"],
        }

    # ------------------------------------------------------------ bare references

    def bare_train(self, num_threads: int | None = None) -> tuple[float, Any]:
        import lightgbm as lgb

        c = self.candidate
        params = {**c.params, "num_threads": num_threads or self.num_threads}

        def fit() -> Any:
            train_set = lgb.Dataset(self.x["train"], label=self.y["train"], free_raw_data=True)
            valid_set = lgb.Dataset(
                self.x["validation"], label=self.y["validation"], reference=train_set
            )
            return lgb.train(
                params,
                train_set,
                num_boost_round=c.num_boost_round,
                valid_sets=[valid_set],
                valid_names=["validation"],
                callbacks=[lgb.early_stopping(c.early_stopping_rounds, verbose=False)],
            )

        return _timed(fit)

    def bare_score(self, challenger: Any) -> float:
        from sklearn.metrics import log_loss, roc_auc_score

        def score() -> None:
            for booster in (challenger, self.bare_champion):
                p = booster.predict(self.x["test"])
                roc_auc_score(self.y["test"], p)
                log_loss(self.y["test"], p, labels=[0, 1])

        return _timed(score)[0]

    def bare_register(self, model_uri: str, run_id: str) -> float:
        def register() -> None:
            mv = self.client.create_model_version(self.bare_model, model_uri, run_id=run_id)
            self.client.set_registered_model_alias(self.bare_model, "champion", mv.version)

        return _timed(register)[0]

    def bare_chain(self) -> dict[str, Any]:
        from sklearn.metrics import roc_auc_score

        t_train, booster = self.bare_train()
        t_score = self.bare_score(booster)
        self.bare_champion = booster
        return {
            "train_s": t_train,
            "score_s": t_score,
            "best_iteration": int(booster.best_iteration),
            "validation_roc_auc": float(
                roc_auc_score(self.y["validation"], booster.predict(self.x["validation"]))
            ),
        }

    def first_chain(self) -> dict[str, Any]:
        """Imports, the first champion, the bare registered model: not in the medians."""
        runway = self.runway_chain()
        t_bare, self.bare_champion = self.bare_train()
        self.client.create_registered_model(self.bare_model)
        return {
            "train_candidate_s": round(runway["train_candidate_s"], 3),
            "evaluate_gates_s": round(runway["evaluate_gates_s"], 3),
            "register_promote_s": round(runway["register_promote_s"], 3),
            "bare_train_s": round(t_bare, 3),
        }

    def profiled_chain(self) -> dict[str, Any]:
        profile = cProfile.Profile()
        profile.enable()
        try:
            self.runway_chain()
        finally:
            profile.disable()
        return {
            name: callees(profile, name)
            for name in (
                "train_candidate",
                "evaluate_gates",
                "register_challenger",
                "promote_champion",
            )
        }


def table(medians: dict[str, float]) -> list[dict[str, Any]]:
    def row(figure: str, runway: float, bare: float | None) -> dict[str, Any]:
        ratio = round(runway / bare, 1) if bare else None
        return {"figure": figure, "runway_s": runway, "bare_s": bare, "ratio": ratio}

    m = medians
    chain = m["train_candidate_s"] + m["evaluate_gates_s"] + m["register_promote_s"]
    bare_chain = m["bare_train_s"] + m["bare_score_s"] + m["bare_register_promote_s"]
    return [
        row(
            "(a) train one candidate: `train_candidate` vs `lgb.Dataset` + `lgb.train`",
            m["train_candidate_s"],
            m["bare_train_s"],
        ),
        row(
            "(a) of which `train_booster` (its `train_seconds` metric: prepare + train)",
            m["train_booster_s"],
            m["bare_train_s"],
        ),
        row(
            "(a) rest of `train_candidate` (read set, metrics, MLflow run, inputs, model)",
            m["train_candidate_rest_s"],
            None,
        ),
        row(
            "(b) `evaluate_gates` vs predict 2 boosters + ROC AUC, log loss",
            m["evaluate_gates_s"],
            m["bare_score_s"],
        ),
        row(
            "(b) `register_challenger` + `promote_champion` vs `create_model_version` + alias",
            m["register_promote_s"],
            m["bare_register_promote_s"],
        ),
        row(
            "whole chain (train → gates → register → promote)",
            round(chain, 3),
            round(bare_chain, 3),
        ),
    ]


def markdown(rows: list[dict[str, Any]]) -> str:
    def fmt(value: float | None, unit: str = " s") -> str:
        if value is None:
            return "—"
        return f"{value:.2f}{unit}" if unit == " s" else f"{value:.1f}{unit}"

    lines = ["| figure | Runway | bare reference | ratio |", "|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['figure']} | {fmt(r['runway_s'])} | {fmt(r['bare_s'])} | "
            f"{fmt(r['ratio'], ' ×')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=120, help="days of synthetic data")
    parser.add_argument("--rows", type=int, default=900, help="flights per day")
    parser.add_argument("--repeat", type=int, default=3, help="measured repetitions")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile chain")
    parser.add_argument(
        "--cpus",
        type=int,
        default=None,
        help="pin this process to its first N usable CPUs (LightGBM then uses N threads, "
        "Runway and bare alike); default: every usable CPU, as an Airflow task has",
    )
    args = parser.parse_args(argv)
    if args.days < 30 or args.repeat < 1:
        parser.error("--days must be 30 or more and --repeat 1 or more")
    if args.cpus is not None:
        usable = sorted(os.sched_getaffinity(0))
        if not 1 <= args.cpus <= len(usable):
            parser.error(f"--cpus must be between 1 and {len(usable)}")
        os.sched_setaffinity(0, usable[: args.cpus])

    sys.path.insert(0, str(ROOT))  # tests.synthetic
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\.|$)")

    from runway_mlops.config import get_pipeline, load_settings
    from runway_mlops.stages import train
    from runway_mlops.training import registry
    from tests.synthetic import write_days

    load_before = os.getloadavg()
    home = Path(tempfile.mkdtemp(prefix="runway-bench-training-"))
    settings = load_settings(env={"RUNWAY_HOME": str(home)})
    pipeline = get_pipeline(settings, "flights")
    # Every chain promotes (what is timed): the reference pipeline's shadow policy promotes
    # only the first model at once and leaves the next ones challengers.
    promotion = pipeline.promotion.model_copy(update={"policy": "auto"})
    pipeline = pipeline.model_copy(update={"promotion": promotion})
    first = END - dt.timedelta(days=args.days - 1)
    print(f"writing {args.days} synthetic days x {args.rows} rows under {home} ...", flush=True)
    t_write, _ = _timed(lambda: write_days(settings, pipeline, first, END, rows=args.rows))
    window = train.training_window(pipeline, end=END, days=args.days)
    t_set, training_set = _timed(lambda: train.prepare_training_set(settings, pipeline, window))
    t_connect, _ = _timed(lambda: registry.connect(settings, pipeline))
    bench = Bench(settings, pipeline, training_set)
    print(
        f"training set {training_set.lineage['rows']}, {len(training_set.features)} features, "
        f"num_threads {bench.num_threads}; first chain ...",
        flush=True,
    )
    first_chain = bench.first_chain()

    samples: dict[str, list[float]] = {}
    checks: list[dict[str, Any]] = []
    for i in range(args.repeat):
        # Alternate the order, so a drift in machine load does not favour one side.
        if i % 2 == 0:
            runway = bench.runway_chain()
            bare = bench.bare_chain()
        else:
            bare = bench.bare_chain()
            runway = bench.runway_chain()
        bare["register_promote_s"] = bench.bare_register(
            runway["model_uri"], runway["mlflow_run_id"]
        )
        for key in ("train_candidate_s", "train_booster_s", "evaluate_gates_s"):
            samples.setdefault(key, []).append(runway[key])
        samples.setdefault("train_candidate_rest_s", []).append(
            runway["train_candidate_s"] - runway["train_booster_s"]
        )
        samples.setdefault("register_promote_s", []).append(runway["register_promote_s"])
        samples.setdefault("bare_train_s", []).append(bare["train_s"])
        samples.setdefault("bare_score_s", []).append(bare["score_s"])
        samples.setdefault("bare_register_promote_s", []).append(bare["register_promote_s"])
        checks.append(
            {
                "best_iteration": {
                    "runway": runway["best_iteration"],
                    "bare": bare["best_iteration"],
                },
                "validation_roc_auc": {
                    "runway": runway["validation_roc_auc"],
                    "bare": bare["validation_roc_auc"],
                },
                "decision": runway["decision"],
                "champion_scored": runway["champion_scored"],
            }
        )
        print(
            f"repeat {i + 1}/{args.repeat}: train_candidate {runway['train_candidate_s']:.2f} s, "
            f"bare {bare['train_s']:.2f} s, evaluate_gates {runway['evaluate_gates_s']:.2f} s, "
            f"register+promote {runway['register_promote_s']:.2f} s",
            flush=True,
        )
    medians = {k: _median(v) for k, v in samples.items()}
    single, _ = bench.bare_train(num_threads=1)
    profile = {} if args.no_profile else bench.profiled_chain()
    load_after = os.getloadavg()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    busy = max(load_before[0], load_after[0]) > (os.cpu_count() or 1) * 0.75

    rows = table(medians)
    same = all(
        c["best_iteration"]["runway"] == c["best_iteration"]["bare"]
        and abs(c["validation_roc_auc"]["runway"] - c["validation_roc_auc"]["bare"]) < 1e-9
        for c in checks
    )
    result = {
        "bench": "training",
        "machine": machine(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "busy": busy,
        "pinned_cpus": cores if args.cpus else None,
        "data": {
            "source": "synthetic: tests/synthetic.write_days (seed 0)",
            "days": args.days,
            "rows_per_day": args.rows,
            "window": window.as_dict(),
            "rows": training_set.lineage["rows"],
            "features": training_set.features,
        },
        "candidate": bench.candidate.as_dict(),
        "num_threads": bench.num_threads,
        "repeat": args.repeat,
        "setup": {
            "write_days_s": round(t_write, 2),
            "build_training_set_s": round(t_set, 2),
            "mlflow_first_connect_s": round(t_connect, 2),
            "first_chain": first_chain,
        },
        "same_model": same,
        "checks": checks,
        "samples_s": {k: [round(x, 3) for x in v] for k, v in samples.items()},
        "medians_s": medians,
        "bare_train_one_thread_s": round(single, 3),
        "table": rows,
        "profile": profile,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "training.json"
    out.write_text(json.dumps(result, indent=2) + "\n")

    m = result["machine"]
    rows_ = training_set.lineage["rows"]
    print()
    print(
        f"Machine: {m['usable_cores']} usable of {m['cores']} cores ({m['cpu']}), "
        f"{m['memory_mib'] / 1024:.0f} GiB, Python {m['python']}, LightGBM {m['lightgbm']}, "
        f"MLflow {m['mlflow']}; load average {result['load_average_before'][0]} before, "
        f"{result['load_average_after'][0]} after"
        + (f"; pinned to {cores} CPU(s) with --cpus." if args.cpus else ".")
    )
    print(
        f"Data: synthetic partitions (tests/synthetic.write_days), {args.days} days x "
        f"{args.rows} rows; train/validation/test rows {rows_['train']:,}/"
        f"{rows_['validation']:,}/{rows_['test']:,}, {len(training_set.features)} features."
    )
    print(
        f"Candidate 0 of the flights grid (tune=False), num_threads {bench.num_threads}, "
        f"early stopping {bench.candidate.early_stopping_rounds} of "
        f"{bench.candidate.num_boost_round} rounds; best iteration "
        f"{checks[0]['best_iteration']['runway']} (Runway) / "
        f"{checks[0]['best_iteration']['bare']} (bare); same model: {same}."
    )
    if busy and cores and cores > 1:
        print(
            "WARNING: the machine was busy (1-minute load average above 3/4 of its cores): "
            "LightGBM's threads wait on each other when a core is taken, so the training "
            "figures are not representative. Rerun on a quiet machine (or with --cpus 1)."
        )
    elif busy:
        print(
            "Note: the machine was busy (1-minute load average above 3/4 of its cores); "
            "pinned to one CPU, LightGBM runs one thread and is not slowed by the others "
            "the way it is with several, but every figure may include time lost to them."
        )
    print(f"Medians of {args.repeat} runs, after one untimed chain:\n")
    print(markdown(rows))
    print()
    print(
        f"First chain in the process (imports, first champion): train_candidate "
        f"{first_chain['train_candidate_s']:.2f} s, evaluate_gates "
        f"{first_chain['evaluate_gates_s']:.2f} s. MLflow first connect (new SQLite store): "
        f"{t_connect:.2f} s. Bare lgb.train with num_threads=1: {single:.2f} s."
    )
    for stage, found in profile.items():
        if found:
            top = ", ".join(f"{k} {v:.2f}" for k, v in list(found["callees_s"].items())[:5])
            print(f"cProfile {stage} ({found['total_s']:.2f} s): {top}")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
