"""Bench: the scoring stage, Runway's path against a bare ``Booster.predict``.

    .venv/bin/python bench/scoring.py [--days 60] [--rows 900] [--repeat 5] [--cpus N]

On a private Runway home (its own SQLite catalog and MLflow store), writes synthetic
feature, label and validated partitions (``tests/synthetic.write_days``: ``--days`` days
of ``--rows`` flights up to END, then one more day per scoring run after it), trains and
promotes one champion on the window ending on END (``candidates(tune=False)[0]``, gates in
``dry_run``, as ``bench/training.py`` does), then measures, ``--repeat`` times after one
warm-up (medians reported):

1. **Throughput** on one day's feature frame (``--rows`` rows, as ``read_features`` returns
   it) and on a large frame (``--large`` rows resampled from it, with replacement): rows/s
   of Runway's scoring path ``score.predict(model, frame)`` (the model's own ``prepare`` +
   ``Booster.predict``) against a bare ``Booster.predict`` of the *same* booster object
   (``model.unwrap_python_model().booster``, so the same LightGBM threads) on the matrix
   already prepared (``pyfunc_model.prepare``, outside the timing). Also ``prepare`` alone,
   and MLflow's own pyfunc path with schema enforcement,
   ``model.predict(model_input(frame, spec))`` (``model_input`` included; alone too). A
   small frame's call is repeated until it takes ~0.25 s; the figure is per call.
2. **The task body**: ``score_champion`` for one new day (read the partition, resolve the
   model, predict, build the prediction frame, publish Parquet, write the table rows),
   with the model already loaded in the process (``load_version`` cache) — split in place
   (the stage's own functions are wrapped with timers for the call), on the home's SQLite
   database and on a throwaway PostgreSQL database (``RUNWAY_DATABASE_URL``; created and
   dropped here, as ``tests/integration/conftest.py`` does). Each scoring run uses a day
   never scored before (the daily case); a rerun of the same day (delete + upsert of its
   rows) is timed too. Also: the cold ``load_version`` (what a fresh task process pays
   once: an Airflow task runs in its own process) and a bare ``DataFrame.to_parquet``.

Writes ``bench/results/scoring.json`` and prints Markdown tables. Nothing is asserted;
the load average before and after is recorded.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: The last day of the training window; scored days follow it.
END = dt.date(2013, 6, 30)
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
#: A small frame's call is repeated until one sample takes about this long.
SAMPLE_S = 0.25
#: A frame above this many rows is timed one call per sample (warmed up on a slice).
WARM_ROWS = 100_000

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import RESULTS, ROOT, machine  # noqa: E402  (bench/benchkit.py)

sys.path.insert(0, str(ROOT))  # tests.synthetic
CONFIG_DIR = ROOT / "config"


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    out = fn()
    return time.perf_counter() - began, out


# --------------------------------------------------------------------------- throughput


class Throughput:
    """Per-call seconds of each scoring path on one frame (medians over repeats)."""

    def __init__(self, name: str, frame: Any, model: Any) -> None:
        self.name, self.rows, self.model = name, len(frame), model
        self.paths = self._paths(frame)
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.last: dict[str, Any] = {}
        # Warm-up (one call of each path) and the number of calls per sample. A large
        # frame is warmed up on a slice (the same code, without minutes of predict) and
        # timed one call per sample.
        large = self.rows > WARM_ROWS
        warm = self._paths(frame.head(WARM_ROWS // 10)) if large else self.paths
        self.loops: dict[str, int] = {}
        for key in self.paths:
            seconds, _ = _timed(warm[key])
            self.loops[key] = 1 if large else max(1, min(2000, math.ceil(SAMPLE_S / seconds)))

    def _paths(self, frame: Any) -> dict[str, Callable[[], Any]]:
        from runway_mlops.stages import score
        from runway_mlops.stages.train import model_input
        from runway_mlops.training.model import threads
        from runway_mlops.training.pyfunc_model import prepare

        model = self.model
        python_model = model.unwrap_python_model()
        booster, spec = python_model.booster, python_model.spec
        x = prepare(frame, spec)  # the bare side starts from the prepared matrix
        paths = {
            "runway": lambda: score.predict(model, frame),
            "bare": lambda: booster.predict(x),
            "prepare": lambda: prepare(frame, spec),
            "mlflow": lambda: model.predict(model_input(frame, spec)),
            "model_input": lambda: model_input(frame, spec),
        }
        if len(frame) <= WARM_ROWS:
            # Fixed costs, which only show on a small frame: LightGBM's pandas conversion
            # (a NumPy matrix skips it) and OpenMP's (one thread).
            codes = {c: x[c].cat.codes.where(x[c].cat.codes >= 0) for c in spec["categories"]}
            matrix = x.assign(**codes).to_numpy(dtype="float64")
            paths["bare_numpy"] = lambda: booster.predict(matrix)
            if threads() > 1:
                paths["bare_one_thread"] = lambda: booster.predict(x, num_threads=1)
        return paths

    def measure(self, reverse: bool) -> None:
        keys = list(self.paths)
        for key in reversed(keys) if reverse else keys:
            fn, n = self.paths[key], self.loops[key]
            began = time.perf_counter()
            for _ in range(n):
                out = fn()
            self.samples[key].append((time.perf_counter() - began) / n)
            self.last[key] = out

    def summary(self) -> dict[str, Any]:
        import numpy as np

        med = {k: _median(v) for k, v in self.samples.items()}
        bare = np.asarray(self.last["bare"])
        return {
            "frame": self.name,
            "rows": self.rows,
            "calls_per_sample": self.loops,
            "per_call_ms": {k: round(v * 1000, 3) for k, v in med.items()},
            "rows_per_s": {k: round(self.rows / v) for k, v in med.items()},
            "ratio_runway_over_bare": round(med["bare"] / med["runway"], 3),
            "ratio_mlflow_over_bare": round(med["bare"] / med["mlflow"], 3),
            "samples_ms": {k: [round(s * 1000, 3) for s in v] for k, v in self.samples.items()},
            "max_abs_diff_vs_bare": {
                k: float(np.max(np.abs(np.asarray(self.last[k]) - bare)))
                for k in ("runway", "bare_numpy", "mlflow")
                if k in self.last
            },
        }


# --------------------------------------------------------------------------- task body

#: (owner, attribute, label): the steps of ``score_champion``, timed in place.
STEPS = (
    ("score", "read_features", "read_features"),
    ("models", "resolve_model", "resolve_model"),
    ("models", "load_version", "load_version"),
    ("score", "predict", "predict"),
    ("score", "prediction_frame", "prediction_frame"),
    ("score", "_publish", "publish"),
    ("Lake", "write_frame", "parquet"),
    ("score", "_store_rows", "store_rows"),
    ("store", "replace_day", "replace_day"),
)
TOP_LEVEL = ("read_features", "resolve_model", "load_version", "predict", "prediction_frame")


@contextlib.contextmanager
def instrumented(timings: dict[str, float]) -> Iterator[None]:
    """Wrap the stage's steps with timers (seconds added to ``timings``) for the block."""
    from runway_mlops.inference import models, store
    from runway_mlops.lake import Lake
    from runway_mlops.stages import score

    owners = {"score": score, "models": models, "store": store, "Lake": Lake}
    saved = []

    def wrap(fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timings[label] = timings.get(label, 0.0) + time.perf_counter() - began

        return timed

    for owner_name, attr, label in STEPS:
        owner = owners[owner_name]
        original = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
        saved.append((owner, attr, original))
        setattr(owner, attr, wrap(getattr(owner, attr), label))
    try:
        yield
    finally:
        for owner, attr, original in reversed(saved):
            setattr(owner, attr, original)


def score_day(settings: Any, pipeline: Any, ds: dt.date, tag: str) -> dict[str, float]:
    """One ``score_champion`` call, its whole time and its steps (seconds)."""
    from runway_mlops.stages import score

    context = score.ScoringContext(
        dag_id="flights_inference",
        run_id=f"bench__{tag}__{ds}",
        run_type="manual",
        interval_start=dt.datetime.combine(ds, dt.time(), tzinfo=dt.UTC),
        interval_end=dt.datetime.combine(ds + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC),
    )
    timings: dict[str, float] = {}
    with instrumented(timings):
        seconds, result = _timed(lambda: score.score_champion(settings, pipeline, ds, context))
    out = {"whole": seconds, **{label: timings.get(label, 0.0) for *_, label in STEPS}}
    out["table"] = out["store_rows"] + out["replace_day"]
    out["rest"] = out["whole"] - sum(out[k] for k in (*TOP_LEVEL, "publish"))
    out["publish_rest"] = out["publish"] - out["parquet"] - out["table"]
    out["rows"] = result.rows
    return out


@contextlib.contextmanager
def pg_database() -> Iterator[str | None]:
    """A throwaway PostgreSQL database (None if PostgreSQL cannot be reached)."""
    try:
        import psycopg2

        admin = psycopg2.connect(PG_ADMIN, connect_timeout=5)
    except Exception as exc:  # noqa: BLE001 - reported, the SQLite figures still stand
        print(f"PostgreSQL not reachable ({exc}); SQLite only", flush=True)
        yield None
        return
    admin.autocommit = True
    name = f"runway_bench_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        from runway_mlops import catalog

        for url, engine in list(catalog._engines.items()):
            if name in url:
                engine.dispose()
        with admin.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


#: ``score_champion`` for one day in a new Python process, as an Airflow task runs it.
COLD_SNIPPET = """
import json, sys, time, warnings
began = time.perf_counter()
args = json.loads(sys.argv[1])
sys.path.insert(0, args["bench"])
warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\\.|$)")
import datetime as dt
from pathlib import Path
from runway_mlops.config import get_pipeline, load_settings
import scoring
imported = time.perf_counter()
settings = load_settings(Path(args["config_dir"]), env=args["env"])
pipeline = get_pipeline(settings, "flights")
ready = time.perf_counter()
steps = scoring.score_day(settings, pipeline, dt.date.fromisoformat(args["ds"]), "cold")
print(json.dumps({"import": imported - began, "settings": ready - imported, **steps}))
"""


def cold_process(env: dict[str, str], ds: dt.date, pycache: Path | None) -> dict[str, float]:
    """Seconds of a new interpreter that scores ``ds``: ``wall`` (from outside) and its steps.

    With ``pycache``, the interpreter keeps compiled bytecode there (PYTHONPYCACHEPREFIX, as
    a deployed worker has its .pyc files); None: this shell's own setting (e.g.
    PYTHONDONTWRITEBYTECODE=1 and a virtualenv without .pyc files: every import compiles).
    """
    import subprocess

    process_env = dict(os.environ)
    if pycache is not None:
        process_env.pop("PYTHONDONTWRITEBYTECODE", None)
        process_env["PYTHONPYCACHEPREFIX"] = str(pycache)

    args = {"bench": str(ROOT / "bench"), "config_dir": str(CONFIG_DIR), "env": env}
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", COLD_SNIPPET, json.dumps({**args, "ds": ds.isoformat()})],
        capture_output=True,
        text=True,
        check=False,
        env=process_env,
    )
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"cold scoring process failed:\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall": wall, **out}


def installed_bytecode() -> bool:
    """Whether the virtualenv holds compiled MLflow bytecode (``make setup`` compiles it).

    If it does, a process under PYTHONDONTWRITEBYTECODE reads it and the run without a
    bytecode cache of our own would measure the same thing: it is skipped.
    """
    import importlib.util

    spec = importlib.util.find_spec("mlflow")
    if spec is None or spec.origin is None:
        return False
    return Path(importlib.util.cache_from_source(spec.origin)).is_file()


def ms_row(seconds: float, rows: int) -> dict[str, float]:
    return {"ms_per_day": round(seconds * 1000, 2), "us_per_row": round(seconds * 1e6 / rows, 1)}


# --------------------------------------------------------------------------- output

THROUGHPUT_FIGURES = (
    ("runway", "Runway `score.predict(model, frame)` (prepare + `Booster.predict`)"),
    ("bare", "bare `Booster.predict` on the prepared matrix"),
    ("bare_numpy", "bare `Booster.predict` on a float64 NumPy matrix (no pandas)"),
    ("bare_one_thread", "bare `Booster.predict`, prepared matrix, `num_threads=1`"),
    ("prepare", "of Runway's: `prepare(frame, spec)` alone"),
    ("mlflow", "MLflow pyfunc `model.predict(model_input(frame, spec))`"),
    ("model_input", "of MLflow's: `model_input(frame, spec)` alone"),
)

BODY_FIGURES = (
    ("whole", "whole `score_champion` (model already loaded)"),
    ("read_features", "read partition + manifest (`read_features`)"),
    ("resolve_model", "resolve the champion (`resolve_model`: MLflow registry)"),
    ("load_version", "`load_version` (cache hit)"),
    ("predict", "predict (`score.predict`)"),
    ("prediction_frame", "build the prediction frame (`prediction_frame`)"),
    ("parquet", "Parquet publish (`Lake.write_frame`)"),
    ("table", "table write (`_store_rows` + `store.replace_day`)"),
    ("store_rows", "  of which rows to dicts (`_store_rows`)"),
    ("replace_day", "  of which `store.replace_day` (delete + upsert, one transaction)"),
    ("rest", "rest (feature-version check, manifests, wrappers)"),
)


def throughput_markdown(results: list[dict[str, Any]]) -> str:
    heads = " | ".join(f"{r['frame']}: {r['rows']:,} rows" for r in results)
    lines = [f"| path | {heads} |", "|---|" + "---|" * len(results)]
    for key, label in THROUGHPUT_FIGURES:
        cells = []
        for r in results:
            if key not in r["per_call_ms"]:
                cells.append("—")
                continue
            ms = r["per_call_ms"][key]
            rate = r["rows_per_s"][key]
            ratio = ""
            if key in ("runway", "mlflow"):
                ratio = f" (**{r['ratio_' + key + '_over_bare']:.2f} ×** bare)"
            cells.append(f"{ms:,.2f} ms, {rate / 1e6:.2f} M rows/s{ratio}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def body_markdown(body: dict[str, Any]) -> str:
    backends = [b for b in ("sqlite", "postgresql") if b in body]
    head = " | ".join(f"{b} ms/day | {b} µs/row" for b in backends)
    lines = [f"| step | {head} |", "|---|" + "---|---|" * len(backends)]
    for key, label in BODY_FIGURES:
        cells = []
        for b in backends:
            f = body[b]["fresh_day"][key]
            cells.append(f"{f['ms_per_day']:,.1f} | {f['us_per_row']:,.1f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


COLD_FIGURES = (
    ("wall", "new process, wall (from the parent)"),
    ("startup", "interpreter + Runway imports + settings"),
    ("whole", "`score_champion`, first call"),
    ("resolve_model", "of which `resolve_model` (MLflow import, client, store)"),
    ("load_version", "of which `load_version` (pyfunc + LightGBM import, model load)"),
    ("read_features", "of which `read_features`"),
    ("predict", "of which predict"),
    ("prediction_frame", "of which `prediction_frame`"),
    ("parquet", "of which Parquet publish"),
    ("table", "of which table write"),
)


def cold_markdown(cold: dict[str, float], no_pyc: dict[str, float] | None) -> str:
    def cell(f: dict[str, float], key: str) -> str:
        value = f["wall"] - f["whole"] if key == "startup" else f[key]
        return f"{value:,.0f} ms"

    head = "| step | bytecode cached |" + (" no .pyc installed, none written |" if no_pyc else "")
    lines = [head, "|---|---|" + ("---|" if no_pyc else "")]
    for key, label in COLD_FIGURES:
        lines.append(
            f"| {label} | {cell(cold, key)} |" + (f" {cell(no_pyc, key)} |" if no_pyc else "")
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=60, help="days of the training window")
    parser.add_argument("--rows", type=int, default=900, help="flights per day")
    parser.add_argument("--repeat", type=int, default=5, help="measured repetitions")
    parser.add_argument(
        "--large", type=int, default=1_000_000, help="rows of the large frame (0: skip it)"
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--keep", action="store_true", help="keep the private home")
    parser.add_argument(
        "--cpus",
        type=int,
        default=None,
        help="pin this process to its first N usable CPUs (LightGBM then predicts with N "
        "threads); default: every usable CPU, as an Airflow task has",
    )
    args = parser.parse_args(argv)
    if args.days < 30 or args.repeat < 1 or args.rows < 10:
        parser.error("--days must be 30 or more, --repeat 1 or more, --rows 10 or more")
    if args.cpus is not None:
        usable = sorted(os.sched_getaffinity(0))
        if not 1 <= args.cpus <= len(usable):
            parser.error(f"--cpus must be between 1 and {len(usable)}")
        os.sched_setaffinity(0, usable[: args.cpus])

    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\.|$)")
    began_all = time.perf_counter()

    from runway_mlops.config import get_pipeline, load_settings
    from runway_mlops.inference import models
    from runway_mlops.stages import score, train
    from runway_mlops.training.model import candidates, threads
    from tests.synthetic import write_days

    load_before = os.getloadavg()
    home = Path(tempfile.mkdtemp(prefix="runway-bench-scoring-"))
    env = {"RUNWAY_HOME": str(home)}
    settings = load_settings(CONFIG_DIR, env=env)
    pipeline = get_pipeline(settings, "flights")
    first = END - dt.timedelta(days=args.days - 1)
    backends = 1 if args.no_postgres else 2
    # One new day per scoring run: warm-up + repeats, on each backend, then in new processes.
    count = (args.repeat + 1) * (backends + 1) + 1  # the last: a new process without .pyc
    score_days = [END + dt.timedelta(days=1 + i) for i in range(count)]
    print(
        f"writing {args.days}+{len(score_days)} synthetic days x {args.rows} rows under {home} ...",
        flush=True,
    )
    t_write, _ = _timed(
        lambda: write_days(settings, pipeline, first, score_days[-1], rows=args.rows)
    )

    # ---- one champion, as bench/training.py makes it
    context = train.RunContext(dag_id=None, run_id="bench__scoring", run_type="manual")
    window = train.training_window(pipeline, end=END, days=args.days)

    def make_champion() -> Any:
        from runway_mlops import flows

        approved = "bench" if pipeline.promotion.policy == "manual" else None
        outcome = flows.train_and_promote(
            settings,
            pipeline,
            window,
            context,
            candidates=candidates(pipeline.training, tune=False)[:1],
            gate_mode="dry_run",
            approved_by=approved,
        )
        assert outcome.promoted is not None, outcome.not_promoted
        return outcome.promoted

    print("training and promoting a champion ...", flush=True)
    t_champion, promoted = _timed(make_champion)
    version = str(promoted["champion"])
    t_load_first, model = _timed(
        lambda: models.load_version(settings, pipeline.model_name, version)
    )
    booster = model.unwrap_python_model().booster
    print(
        f"champion v{version} ({booster.num_trees()} trees) in {t_champion:.1f} s; "
        f"first load_version {t_load_first:.2f} s",
        flush=True,
    )

    # ---- 1. throughput
    day, _ = score.read_features(settings, pipeline, score_days[0])
    frames = [Throughput("one day", day, model)]
    if args.large:
        big = day.sample(n=args.large, replace=True, random_state=0).reset_index(drop=True)
        frames.append(Throughput("large", big, model))
    print(
        "throughput: calls per sample " + "; ".join(f"{t.name} {t.loops}" for t in frames),
        flush=True,
    )
    for i in range(args.repeat):
        for t in frames:
            t.measure(reverse=i % 2 == 1)
        print(f"throughput repeat {i + 1}/{args.repeat}", flush=True)
    throughput = [t.summary() for t in frames]
    del frames

    # ---- 2. the task body, on SQLite and PostgreSQL
    body: dict[str, Any] = {}
    cold_loads: list[float] = []
    bare_parquet: list[float] = []
    first_call: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        settings_by: dict[str, Any] = {"sqlite": settings}
        if not args.no_postgres:
            pg_url = stack.enter_context(pg_database())
            if pg_url:
                settings_by["postgresql"] = load_settings(
                    CONFIG_DIR, env={**env, "RUNWAY_DATABASE_URL": pg_url}
                )
        days = iter(score_days)
        samples: dict[str, dict[str, list[dict[str, float]]]] = {
            b: {"fresh_day": [], "rerun": []} for b in settings_by
        }
        # Warm-up: table creation, first connections; not in the medians.
        for backend, s in settings_by.items():
            first_call[backend] = {
                k: round(v * 1000, 1) for k, v in score_day(s, pipeline, next(days), "warm").items()
            }
        for i in range(args.repeat):
            order = list(settings_by) if i % 2 == 0 else list(reversed(settings_by))
            for backend in order:
                ds = next(days)
                s = settings_by[backend]
                samples[backend]["fresh_day"].append(score_day(s, pipeline, ds, f"r{i}"))
                samples[backend]["rerun"].append(score_day(s, pipeline, ds, f"r{i}-again"))
            # What a new task process pays once: the model load (MLflow imports are warm).
            models._cache.clear()
            cold_loads.append(
                _timed(lambda: models.load_version(settings, pipeline.model_name, version))[0]
            )
            with tempfile.TemporaryDirectory() as tmp:
                bare_parquet.append(
                    _timed(lambda tmp=tmp: day.to_parquet(Path(tmp) / "x.parquet", index=False))[0]
                )
            print(
                f"task body repeat {i + 1}/{args.repeat}: "
                + ", ".join(
                    f"{b} {samples[b]['fresh_day'][-1]['whole'] * 1000:.0f} ms" for b in order
                ),
                flush=True,
            )
        for backend, kinds in samples.items():
            body[backend] = {}
            for kind, runs in kinds.items():
                rows = int(runs[0]["rows"])
                keys = [k for k in runs[0] if k != "rows"]
                body[backend][kind] = {k: ms_row(_median([r[k] for r in runs]), rows) for k in keys}
                body[backend][kind]["rows"] = rows
            body[backend]["samples_ms"] = {
                kind: [{k: round(v * 1000, 2) for k, v in r.items() if k != "rows"} for r in runs]
                for kind, runs in kinds.items()
            }

    # ---- 3. the task body in a new process (imports, model load), SQLite
    cold_runs = []
    pycache = home / "pycache"
    for i in range(args.repeat + 1):  # the first one compiles the bytecode cache
        run = cold_process(env, next(days), pycache)
        if i:
            cold_runs.append(run)
        print(
            f"new process {i}/{args.repeat}{' (warm-up)' if not i else ''}: "
            f"{run['wall']:.2f} s (interpreter + imports {run['wall'] - run['whole']:.2f} s, "
            f"score_champion {run['whole']:.2f} s)",
            flush=True,
        )
    cold = {
        k: round(_median([r[k] for r in cold_runs]) * 1000, 1) for k in cold_runs[0] if k != "rows"
    }
    no_pyc = None
    if os.environ.get("PYTHONDONTWRITEBYTECODE") and not installed_bytecode():
        run = cold_process(env, next(days), None)
        no_pyc = {k: round(v * 1000, 1) for k, v in run.items() if k != "rows"}
        print(
            f"new process with PYTHONDONTWRITEBYTECODE as set here: {run['wall']:.2f} s",
            flush=True,
        )

    load_after = os.getloadavg()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    busy = max(load_before[0], load_after[0]) > (os.cpu_count() or 1) * 0.75
    wall = time.perf_counter() - began_all
    result = {
        "bench": "scoring",
        "machine": machine(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "busy": busy,
        "pinned_cpus": cores if args.cpus else None,
        "lightgbm_threads": {
            "booster_params_num_threads": booster.params.get("num_threads"),
            "predict": "Booster.predict default (OpenMP: the process's usable CPUs), "
            "the same booster object on every side",
            "usable_cpus": threads(),
        },
        "data": {
            "source": "synthetic: tests/synthetic.write_days (seed 0)",
            "training_window": window.as_dict(),
            "rows_per_day": args.rows,
            "scored_days": [d.isoformat() for d in score_days],
            "large_frame_rows": args.large,
        },
        "champion": {
            "version": version,
            "trees": booster.num_trees(),
            "features": model.unwrap_python_model().spec["features"],
        },
        "repeat": args.repeat,
        "setup_s": {
            "write_days": round(t_write, 2),
            "train_and_promote": round(t_champion, 2),
            "first_load_version": round(t_load_first, 2),
        },
        "throughput": throughput,
        "task_body": body,
        "task_body_first_call_ms": first_call,
        "new_process_ms": cold,
        "new_process_without_bytecode_cache_ms": no_pyc,
        "cold_load_version_ms": round(_median(cold_loads) * 1000, 1),
        "bare_to_parquet_ms": round(_median(bare_parquet) * 1000, 2),
        "wall_s": round(wall, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "scoring.json"
    out.write_text(json.dumps(result, indent=2) + "\n")

    m = result["machine"]
    print()
    print(
        f"Machine: {m['usable_cores']} usable of {m['cores']} cores ({m['cpu']}), "
        f"{m['memory_mib'] / 1024:.0f} GiB, Python {m['python']}, LightGBM {m['lightgbm']}, "
        f"MLflow {m['mlflow']}; load average {result['load_average_before'][0]} before, "
        f"{result['load_average_after'][0]} after"
        + (f"; pinned to {cores} CPU(s) with --cpus." if args.cpus else ".")
    )
    print(
        f"Champion v{version}: {booster.num_trees()} trees, "
        f"{len(result['champion']['features'])} features, trained on {args.days} synthetic "
        f"days x {args.rows} rows; {wall:.0f} s in all."
    )
    if busy:
        print(
            "WARNING: the machine was busy (1-minute load average above 3/4 of its cores): "
            "the figures may include time lost to other load. Rerun on a quiet machine."
        )
    print(f"\nThroughput, medians of {args.repeat} (per call; ratio = throughput vs bare):\n")
    print(throughput_markdown(throughput))
    for t in throughput:
        diff = t["max_abs_diff_vs_bare"]
        print(
            f"{t['frame']}: scores vs bare, max abs diff: "
            + ", ".join(f"{k} {v:.1e}" for k, v in diff.items())
        )
    rows = next(iter(body.values()))["fresh_day"]["rows"] if body else 0
    print(f"\n`score_champion`, one new day of {rows} rows, medians of {args.repeat}:\n")
    print(body_markdown(body))
    print()
    for backend, b in body.items():
        rerun = b["rerun"]
        print(
            f"{backend} rerun of the same day: whole {rerun['whole']['ms_per_day']:.1f} ms, "
            f"replace_day {rerun['replace_day']['ms_per_day']:.1f} ms; first call in the "
            f"process: whole {first_call[backend]['whole']:.0f} ms "
            f"(replace_day {first_call[backend]['replace_day']:.0f} ms)"
        )
    print(f"\n`score_champion` in a new process (SQLite), medians of {args.repeat}:\n")
    print(cold_markdown(cold, no_pyc))
    print()
    print(
        f"load_version with the imports done (cache cleared): "
        f"{result['cold_load_version_ms']:.0f} ms; "
        f"bare day.to_parquet: {result['bare_to_parquet_ms']:.1f} ms"
    )
    print(f"written to {out}")
    if args.keep:
        print(f"private home kept: {home}")
    else:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
