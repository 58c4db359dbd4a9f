"""A wide feature run through the real scheduler: one Spark job, every day kept apart.

On the shared stack (clean deliveries for 2013-01-01 .. 01-10), a run of
``flights_features_backfill`` over 2013-01-09 .. 01-11 whose last day's delivery is a
truncated file: the two good days are ingested, validated and featurised (one Spark job,
one partition each), the bad day fails alone as its own mapped task instance and is
quarantined, and the run fails naming it. The stack's ``spark_default`` is a Spark
Connect server (``tests.conftest.shared_spark_connect``): the feature task runs the job
as its thin client, with no ``spark-submit``.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from runway_mlops import catalog
from runway_mlops.lake import Lake
from runway_mlops.programs.demo import follow_backfill, range_run, wait_for_dag
from runway_mlops.storage import LocalStore

DAG_ID = "flights_features_backfill"
DAYS = [dt.date(2013, 1, 9), dt.date(2013, 1, 10), dt.date(2013, 1, 11)]


@pytest.fixture(scope="module")
def wide_run(airflow_stack, flights_pipeline):
    stack = airflow_stack
    landing = LocalStore(stack.settings.landing_uri)
    landing.write("flights/ds=2013-01-11/flights.csv", b"year,month,day\n2013,1,11,")  # cut off
    with stack.api() as api:
        wait_for_dag(api, DAG_ID, stack.procs, timeout=300)
        # Started and followed as `runway demo` does: every day maps to the one run.
        run_id = range_run(api, DAG_ID, DAYS[0], DAYS[-1], flights_pipeline)
        assert run_id is not None
        by_day = follow_backfill(
            api, DAG_ID, DAYS, flights_pipeline, run_id=run_id, procs=stack.procs, timeout=900
        )
        assert sorted(by_day) == DAYS
        assert {r["dag_run_id"] for r in by_day.values()} == {run_id}
        finished = by_day[DAYS[0]]
        tasks = api.task_instances(DAG_ID, run_id)
        log = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/build_features/logs/1")
    return stack, finished, tasks, json.dumps(log)


def test_the_good_days_get_features_from_one_job(wide_run, flights_pipeline) -> None:
    stack, run, tasks, _ = wide_run
    lake = Lake(stack.settings.lake_dir)
    for ds in DAYS[:2]:
        manifest = lake.manifest("features", "flights", "flights", ds)
        assert manifest["run_id"] == run["dag_run_id"]
        assert manifest["rows"] > 400
    assert not lake.exists("features", "flights", "flights", DAYS[2])
    spark = [t for t in tasks if t["task_id"] == "build_features"]
    assert [t["state"] for t in spark] == ["success"]


def test_each_day_is_its_own_task_instance_and_the_bad_one_fails_the_run(wide_run) -> None:
    stack, run, tasks, _ = wide_run
    ingest = {
        t.get("rendered_map_index"): t["state"] for t in tasks if t["task_id"] == "day.ingest_raw"
    }
    assert ingest == {"2013-01-09": "success", "2013-01-10": "success", "2013-01-11": "failed"}
    # A task that never ran has no rendered label: its map index is the day's place.
    validate = {t["map_index"]: t["state"] for t in tasks if t["task_id"] == "day.validate_raw"}
    assert validate == {0: "success", 1: "success", 2: "upstream_failed"}
    check = [t for t in tasks if t["task_id"] == "check_days"]
    assert [t["state"] for t in check] == ["failed"]
    assert run["state"] == "failed"
    entries = catalog.list_quarantine(stack.settings.database_url, "flights")
    assert any(e.ds == DAYS[2] and e.scope == "delivery" for e in entries)


def test_the_feature_task_is_a_thin_client_of_spark_connect(wide_run) -> None:
    stack, run, _, log = wide_run
    assert stack.settings.spark_master.startswith("sc://")
    # The client's own lines, in the task's log: the job ran in the task process.
    assert "built 2013-01-09" in log and "built 2013-01-10" in log
    assert "spark-submit" not in log


def test_the_same_range_again_reruns_its_run_and_another_range_is_refused(
    wide_run, flights_pipeline
) -> None:
    """A second `runway demo` on the same home: Airflow allows one run per logical date,
    so the range's earlier run is cleared and runs again; a different range starting on
    the same day cannot have a run of its own (None: the demo backfills daily instead)."""
    stack, first_run, _, _ = wide_run
    lake = Lake(stack.settings.lake_dir)
    before = lake.manifest("features", "flights", "flights", DAYS[0])
    with stack.api() as api:
        assert range_run(api, DAG_ID, DAYS[0], DAYS[1], flights_pipeline) is None
        run_id = range_run(api, DAG_ID, DAYS[0], DAYS[-1], flights_pipeline)
        assert run_id == first_run["dag_run_id"]
        again = follow_backfill(
            api, DAG_ID, DAYS, flights_pipeline, run_id=run_id, procs=stack.procs, timeout=900
        )
        tries = {
            t["task_id"]: t["try_number"]
            for t in api.task_instances(DAG_ID, run_id)
            if t["task_id"] == "build_features"
        }
        assert len(api.dag_runs(DAG_ID)) == 1
    assert again[DAYS[0]]["state"] == "failed"  # 2013-01-11 is still cut off
    assert tries == {"build_features": 2}  # it ran again
    after = lake.manifest("features", "flights", "flights", DAYS[0])
    assert after["run_id"] == run_id == before["run_id"]
    assert after["rows"] == before["rows"]
