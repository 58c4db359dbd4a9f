"""The scheduler dies in the middle of an 8-day backfill and is started again.

A private Airflow (embedded defaults, feature tasks as clients of the tests' shared Spark
Connect server) backfills ``flights_features`` over 8 days of clean deliveries, two runs
at a time. Once a few days are done and others are running,
the scheduler's whole process group (the scheduler, its executor's workers and the task
processes they run) is SIGKILLed: a crash, with no graceful shutdown. The supervisor
(``AirflowProcesses.check_alive``, what ``runway up`` runs) starts a new scheduler on
the same metadata database. The backfill must finish with every day exactly once: one
successful run per day, one features partition per day written by that day's run, one
raw and one validated catalog record per dataset and day.

Tasks that were running when the scheduler died are detected by the new scheduler (no
heartbeat: ``task_instance_heartbeat_timeout``, 120 s in Runway's runtime, 60 s here to
keep the test short; an operator's value in the environment is kept) and retried
under the pipeline's retry policy; tasks it had queued are orphans the new scheduler
resets (Runway checks for them every 60 s, Airflow's default is 300 s); a day whose task was killed half-way through a
partition publishes it whole on the retry (``tests/reliability/test_kill_mid_write.py``).

Protection: the supervisor's restart (and the heartbeat timeout that frees the
killed tasks). Not run as a mutation: with no scheduler nothing schedules the remaining
days, so the test would time out; with Airflow's 300 s timeout it passed, slower.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import signal
import time

from runway_mlops import catalog
from runway_mlops.lake import Lake
from runway_mlops.programs.demo import follow_backfill, local_midnight
from runway_mlops.sample.seed import seed
from tests.conftest import running_stack

DAG_ID = "flights_features"
FIRST, LAST = dt.date(2013, 1, 11), dt.date(2013, 1, 18)  # no quarantined day in it
DAYS = [FIRST + dt.timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
#: Kill once this many days are done (and others are under way).
KILL_AFTER_DAYS = 3


def test_backfill_survives_a_scheduler_crash_with_every_day_once(
    tmp_path_factory, flights_pipeline, monkeypatch
) -> None:
    pipeline = flights_pipeline
    monkeypatch.setenv("AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT", "60")
    with running_stack(tmp_path_factory.mktemp("restart"), seed_files=False) as stack:
        settings = stack.settings
        seed(settings, pipeline, "files", FIRST - dt.timedelta(days=7), LAST)
        with stack.api() as api:
            backfill = api.create_backfill(
                DAG_ID,
                local_midnight(FIRST, pipeline),
                local_midnight(LAST, pipeline),
                max_active_runs=2,
            )
            deadline = time.monotonic() + 900
            while True:
                stack.procs.check_alive()
                runs = api.dag_runs(DAG_ID, run_type="backfill")
                states = collections.Counter(r["state"] for r in runs)
                if states["success"] >= KILL_AFTER_DAYS and states["running"] >= 1:
                    break
                assert time.monotonic() < deadline, f"backfill stuck before the crash: {states}"
                time.sleep(2)
            scheduler = stack.procs.processes["scheduler"]
            os.killpg(scheduler.pid, signal.SIGKILL)
            scheduler.wait(timeout=30)
            restarts_before = stack.procs.restarts.get("scheduler", 0)

            finished = follow_backfill(
                api,
                DAG_ID,
                DAYS,
                pipeline,
                backfill_id=backfill["id"],
                procs=stack.procs,
                timeout=1500,
            )
            all_runs = api.dag_runs(DAG_ID, run_type="backfill")

        assert stack.procs.restarts.get("scheduler", 0) == restarts_before + 1
        # One run per day, each successful.
        assert sorted(finished) == DAYS
        assert {day: run["state"] for day, run in finished.items()} == dict.fromkeys(
            DAYS, "success"
        )
        assert len(all_runs) == len(DAYS)
        # Each day's features were written once, by that day's run.
        lake = Lake(settings.lake_dir)
        for day, run in finished.items():
            manifest = lake.manifest("features", pipeline.name, "flights", day)
            assert manifest["run_id"] == run["dag_run_id"], day
            assert manifest["rows"] > 400, day
        # ... and recorded once per dataset and zone.
        records = collections.Counter(
            (p["zone"], p["dataset"], p["ds"])
            for p in catalog.list_partitions(settings.database_url, pipeline.name)
            if p["ds"] in DAYS
        )
        assert records and max(records.values()) == 1
        for zone in ("raw", "validated"):
            for day in DAYS:
                assert records[(zone, "flights", day)] == 1, (zone, day)
