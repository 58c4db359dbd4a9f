"""Bench: feature backfills through the real scheduler, day-wide runs against month-wide.

    .venv/bin/python bench/year_backfill.py --dag flights_features_backfill --from 2013-01-01 --to 2013-12-31
    .venv/bin/python bench/year_backfill.py --dag flights_features --from 2013-01-01 --to 2013-01-31

Seeds the days into a private Runway home, starts Airflow (LocalExecutor, on the local
profile's embedded PostgreSQL), creates
one backfill of ``--dag`` over the days through the REST API (``max_active_runs`` of the
pipeline) and times it from creation to the last run finished; then reads Airflow's own
task-instance timings (per task: median duration and queued -> running). The daily DAG
has a run per day; ``flights_features_backfill`` (``backfill_interval: "@monthly"``) a
run per month with a task instance per day for ingest and validation and one Spark job.
Writes ``bench/results/backfill_<dag>_<from>_<to>.json`` (not committed).

``--end-to-end`` (figure 1 of ``make bench``) then runs the rest of the year as
``bench/plain_year.py`` does it, through Airflow: one ``flights_training`` run on
January–September (``TRAINING_CONF``: one candidate, quarantined days skipped) and a backfill of
``flights_inference`` over October–December scored by the new champion. The wall time
of each part is recorded beside the feature backfill's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import RESULTS, machine  # noqa: E402
from feature_backfill import analyse  # noqa: E402

#: Training on January–September as plain_year.py does (it keeps the last 30 days for
#: early stopping and scores Oct–Dec): Runway's gates also need test days inside the
#: window, the last 14 of September.
TRAINING_CONF = {
    "window_end": "2013-09-30",
    "window_days": 273,
    "validation_days": 30,
    "test_days": 14,
    "tune": False,
    "gate_mode": "dry_run",
    "missing_partitions": "skip",
    "reason": "bench/year_backfill.py --end-to-end",
}
# 2013-12-31 has no weather delivery, hence no features: its inference run would wait for
# them (the sensor's timeout is hours). plain_year.py scores it with null weather.
SCORE_FROM, SCORE_TO = dt.date(2013, 10, 1), dt.date(2013, 12, 30)


def train_and_score(api, settings, pipeline, procs) -> dict[str, object]:
    """The training run and the Oct–Dec inference backfill, timed from Airflow's side."""
    from runway_mlops.inference import store
    from runway_mlops.programs.demo import (
        follow_backfill,
        local_midnight,
        wait_for_dag,
        wait_for_run,
    )

    wait_for_dag(api, "flights_training", procs, timeout=300)
    began = time.perf_counter()
    run = api.trigger("flights_training", TRAINING_CONF)
    run = wait_for_run(api, "flights_training", run["dag_run_id"], procs, timeout=3600)
    trained = time.perf_counter() - began
    days = [SCORE_FROM + dt.timedelta(days=i) for i in range((SCORE_TO - SCORE_FROM).days + 1)]
    wait_for_dag(api, "flights_inference", procs, timeout=300)
    began = time.perf_counter()
    backfill = api.create_backfill(
        "flights_inference",
        local_midnight(days[0], pipeline),
        local_midnight(days[-1], pipeline),
        max_active_runs=pipeline.max_active_runs,
        conf={"model": "champion"},
    )
    runs = follow_backfill(
        api, "flights_inference", days, pipeline, backfill_id=backfill["id"], procs=procs,
        timeout=3 * 3600,
    )  # fmt: skip
    scored = time.perf_counter() - began
    counts = store.day_counts(settings.database_url, pipeline.name)
    return {
        "training_state": run["state"],
        "training_s": round(trained, 1),
        "scoring_days": len(days),
        "scoring_failed_runs": sum(1 for r in runs.values() if r["state"] != "success"),
        "scoring_s": round(scored, 1),
        "scoring_s_per_day": round(scored / len(days), 2),
        "predictions": sum(c["rows"] for c in counts if c["role"] == "champion"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dag", default="flights_features_backfill")
    parser.add_argument("--from", dest="first", default="2013-01-01")
    parser.add_argument("--to", dest="last", default="2013-12-31")
    parser.add_argument("--port", type=int, default=28400)
    parser.add_argument(
        "--end-to-end",
        action="store_true",
        help="then train on Jan-Sep and score Oct-Dec through Airflow (figure 1)",
    )
    args = parser.parse_args(argv)

    from runway_mlops.config import get_pipeline, load_settings
    from runway_mlops.orchestration.api import AirflowAPI
    from runway_mlops.orchestration.runtime import admin_password, start
    from runway_mlops.programs.demo import follow_backfill, local_midnight, wait_for_dag
    from runway_mlops.sample.seed import seed

    home = Path(tempfile.mkdtemp(prefix="runway-bench-year-"))
    settings = load_settings(
        env={"RUNWAY_HOME": str(home), "RUNWAY_AIRFLOW_URL": f"http://localhost:{args.port}"}
    )
    pipeline = get_pipeline(settings, "flights")
    first, last = dt.date.fromisoformat(args.first), dt.date.fromisoformat(args.last)
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    wide = args.dag.endswith("_backfill")
    # A run per logical date: each day, or each first of a month.
    starts = [d for d in days if d.day == 1] if wide else days
    seed(settings, pipeline, "files", first, last)
    procs = start(settings)
    try:
        with AirflowAPI(settings.airflow_url, "admin", admin_password(settings)) as api:
            wait_for_dag(api, args.dag, procs, timeout=300)
            began = time.perf_counter()
            backfill = api.create_backfill(
                args.dag,
                local_midnight(starts[0], pipeline),
                local_midnight(starts[-1], pipeline),
                max_active_runs=pipeline.max_active_runs,
            )
            runs = follow_backfill(
                api, args.dag, starts, pipeline, backfill_id=backfill["id"], procs=procs,
                timeout=6 * 3600,
            )  # fmt: skip
            wall = time.perf_counter() - began
            # Per run: the API pages at 100 task instances, a month-wide run has ~66.
            tis = [
                t for run in runs.values() for t in api.task_instances(args.dag, run["dag_run_id"])
            ]
            rest = train_and_score(api, settings, pipeline, procs) if args.end_to_end else {}
    finally:
        restarts = dict(procs.restarts)
        print(f"airflow {procs.restart_summary()}", flush=True)
        procs.stop()
    lake_days = sum(
        1 for d in days if (settings.lake_dir / "features/flights/flights" / f"ds={d}").is_dir()
    )
    result = {
        "bench": "year_backfill",
        "dag": args.dag,
        "machine": machine(),
        "days": len(days),
        "runs": len(runs),
        "failed_runs": sum(1 for r in runs.values() if r["state"] != "success"),
        "feature_partitions": lake_days,
        "max_active_runs": pipeline.max_active_runs,
        # A supervisor restarts a component that died (airflow_runtime.RESTARTABLE): any
        # restart here is a crash to explain, not noise.
        "component_restarts": restarts,
        "backfill_wall_s": round(wall, 1),
        "backfill_s_per_day": round(wall / len(days), 2),
        **analyse(runs, tis),
    }
    if rest:
        result["end_to_end"] = {
            **rest,
            "total_s": round(wall + float(rest["training_s"]) + float(rest["scoring_s"]), 1),
        }
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "_end_to_end" if args.end_to_end else ""
    out = RESULTS / f"backfill_{args.dag}_{first}_{last}{suffix}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
