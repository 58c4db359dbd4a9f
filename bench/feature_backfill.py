"""Bench: the feature pipeline's backfill through the real Airflow scheduler.

    make bench            # or: .venv/bin/python bench/feature_backfill.py [--days 28]

Seeds a private Runway home, starts Airflow (LocalExecutor, SQLite), backfills
``--days`` consecutive days of ``flights_features`` through the REST API and reads
Airflow's own task-instance timings back:

* per daily run: wall time (run start → end), task work (sum of task durations) and
  Airflow overhead (the rest: queued → running, gaps between dependent tasks);
* per task: median duration, median queued → running;
* Spark session start cost: ``spark-submit`` of an empty application (what every
  ``build_features`` task pays before doing work).

Writes ``bench/results/feature_backfill.json``; the README quotes the figures. Nothing
here is asserted by a test: timings are measured, not pass/fail.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchkit import RESULTS, machine  # noqa: E402  (bench/benchkit.py)


def _ts(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2) if values else float("nan")


def spark_start_cost(repeats: int = 3) -> dict[str, float]:
    """Seconds for spark-submit of an application that only creates a session."""
    app = Path(tempfile.mkdtemp()) / "noop.py"
    app.write_text(
        "from runway_mlops.stages.features import spark_session\n"
        "s = spark_session()\ns.range(1).count()\ns.stop()\n"
    )
    submit = Path(sys.executable).parent / "spark-submit"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        subprocess.run(
            [str(submit), "--master", "local[*]", str(app)],
            env=env,
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - began)
    python = []
    for _ in range(repeats):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        python.append(time.perf_counter() - began)
    return {
        "spark_submit_session_s": _median(times),
        "python_start_s": _median(python),
    }


def analyse(runs: dict[dt.date, dict], tis: list[dict]) -> dict[str, object]:
    by_run: dict[str, list[dict]] = {}
    for ti in tis:
        by_run.setdefault(ti["dag_run_id"], []).append(ti)
    per_run = []
    queue_waits: dict[str, list[float]] = {}
    durations: dict[str, list[float]] = {}
    gaps: list[float] = []
    for day, run in sorted(runs.items()):
        start, end = _ts(run["start_date"]), _ts(run["end_date"])
        tasks = sorted(by_run.get(run["dag_run_id"], []), key=lambda t: t["start_date"] or "")
        work = sum(t["duration"] or 0 for t in tasks)
        wall = (end - start).total_seconds() if start and end else float("nan")
        per_run.append(
            {
                "day": day.isoformat(),
                "state": run["state"],
                "wall_s": round(wall, 2),
                "work_s": round(work, 2),
                "overhead_s": round(wall - work, 2),
            }
        )
        for prev, nxt in zip(tasks, tasks[1:], strict=False):
            if prev["end_date"] and nxt["start_date"]:
                gaps.append((_ts(nxt["start_date"]) - _ts(prev["end_date"])).total_seconds())
        for t in tasks:
            durations.setdefault(t["task_id"], []).append(t["duration"] or 0)
            if t["queued_when"] and t["start_date"]:
                wait = (_ts(t["start_date"]) - _ts(t["queued_when"])).total_seconds()
                queue_waits.setdefault(t["task_id"], []).append(wait)
    return {
        "runs": per_run,
        "median_run_wall_s": _median([r["wall_s"] for r in per_run]),
        "median_run_work_s": _median([r["work_s"] for r in per_run]),
        "median_run_overhead_s": _median([r["overhead_s"] for r in per_run]),
        "median_gap_between_tasks_s": _median(gaps),
        "tasks": {
            task: {
                "median_duration_s": _median(durations[task]),
                "median_queued_to_running_s": _median(queue_waits.get(task, [])),
            }
            for task in durations
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--port", type=int, default=28300)
    args = parser.parse_args(argv)

    from runway_mlops.config import get_pipeline, load_settings
    from runway_mlops.orchestration.api import AirflowAPI
    from runway_mlops.orchestration.runtime import admin_password, start
    from runway_mlops.programs.demo import follow_backfill, local_midnight, wait_for_dag
    from runway_mlops.sample.seed import seed

    home = Path(tempfile.mkdtemp(prefix="runway-bench-"))
    settings = load_settings(
        env={"RUNWAY_HOME": str(home), "RUNWAY_AIRFLOW_URL": f"http://localhost:{args.port}"}
    )
    pipeline = get_pipeline(settings, "flights")
    first = dt.date(2013, 1, 1)
    last = first + dt.timedelta(days=args.days - 1)
    days = [first + dt.timedelta(days=i) for i in range(args.days)]
    seed(settings, pipeline, "files", first, last)
    print("measuring Spark start cost ...", flush=True)
    spark = spark_start_cost()
    began = time.perf_counter()
    procs = start(settings)
    startup = time.perf_counter() - began
    try:
        with AirflowAPI(settings.airflow_url, "admin", admin_password(settings)) as api:
            wait_for_dag(api, "flights_features", procs, timeout=300)
            began = time.perf_counter()
            backfill = api.create_backfill(
                "flights_features",
                local_midnight(first, pipeline),
                local_midnight(last, pipeline),
                max_active_runs=pipeline.max_active_runs,
            )
            runs = follow_backfill(
                api, "flights_features", days, pipeline, backfill_id=backfill["id"], procs=procs
            )
            backfill_wall = time.perf_counter() - began
            run_ids = {run["dag_run_id"] for run in runs.values()}
            tis = [t for t in api.task_instances("flights_features") if t["dag_run_id"] in run_ids]
    finally:
        procs.stop()
    result = {
        "bench": "feature_backfill",
        "machine": machine(),
        "days": args.days,
        "max_active_runs": pipeline.max_active_runs,
        "airflow_startup_s": round(startup, 1),
        "backfill_wall_s": round(backfill_wall, 1),
        "backfill_s_per_day": round(backfill_wall / args.days, 2),
        **spark,
        **analyse(runs, tis),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "feature_backfill.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    summary = {k: v for k, v in result.items() if k not in {"runs"}}
    print(json.dumps(summary, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
