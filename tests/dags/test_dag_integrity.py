"""DAG integrity: every DAG file imports, does no work while parsed, and is well formed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT

DAGS_DIR = ROOT / "dags"
HEAVY = ("pandas", "pyspark", "great_expectations", "mlflow", "lightgbm", "pyarrow", "sklearn")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_every_dag_file_imports(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert "flights_features" in dagbag.dag_ids


def test_one_feature_dag_per_pipeline_file(dagbag) -> None:
    pipelines = sorted(p.stem for p in (ROOT / "config" / "pipelines").glob("*.yaml"))
    assert sorted(d for d in dagbag.dag_ids if d.endswith("_features")) == [
        f"{name}_features" for name in pipelines
    ]


def test_dags_have_tags_docs_and_retries(dagbag) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and len(dag.doc_md) > 100, f"{dag_id} does not explain itself"
        assert dag.catchup is False, f"{dag_id}: history is loaded by backfills"
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"


def test_feature_dag_shape(dagbag) -> None:
    dag = dagbag.dags["flights_features"]
    assert [t.task_id for t in dag.topological_sort()] == [
        "ingest_raw",
        "validate_raw",
        "wait_for_history",
        "build_features",
    ]
    spark = dag.get_task("build_features")
    assert spark.application == str(ROOT / "jobs" / "build_features.py")
    assert spark._conn_id == "spark_default"
    assert [o.name for o in spark.outlets] == ["flights_features"]
    timetable = dag.timetable
    assert str(timetable._timezone.name) == "America/New_York"


def test_parsing_opens_no_connection_and_imports_nothing_heavy(tmp_path: Path) -> None:
    """Parse the DAG folder in a fresh interpreter where every socket and DB connect fails."""
    script = textwrap.dedent(
        f"""
        import json, socket, sqlite3, sys, runpy
        attempts = []
        def refuse(*args, **kwargs):
            attempts.append(repr(args)[:200])
            raise OSError("network and database access are forbidden while parsing")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        sqlite3.connect = refuse
        import psycopg2
        psycopg2.connect = refuse
        for path in {sorted(str(p) for p in DAGS_DIR.glob("*.py"))!r}:
            namespace = runpy.run_path(path)
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
        print(json.dumps({{"attempts": attempts, "heavy": heavy,
                          "dags": sorted(k for k, v in namespace.items()
                                         if type(v).__name__ == "DAG")}}))
        """
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/forbidden/airflow.db",
        "RUNWAY_HOME": str(tmp_path / "runway"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["attempts"] == []
    assert report["heavy"] == []
    assert report["dags"] == [
        "flights_features",
        "flights_features_backfill",
        "flights_inference",
        "flights_monitoring",
        "flights_training",
    ]


def test_inference_dag_shape(dagbag) -> None:
    dag = dagbag.dags["flights_inference"]
    assert [t.task_id for t in dag.topological_sort()] == [
        "wait_for_features",
        "score_champion",
        "score_shadow",
    ]
    sensor = dag.get_task("wait_for_features")
    assert sensor.mode == "reschedule"  # waiting holds no worker slot
    # Same cadence and time zone as the features: each run scores its own day.
    features = dagbag.dags["flights_features"]
    assert dag.timetable.summary == features.timetable.summary
    assert str(dag.timetable._timezone.name) == "America/New_York"
    assert dag.params["model"] is None


def test_monitoring_dag_shape(dagbag) -> None:
    dag = dagbag.dags["flights_monitoring"]
    assert dag.get_task("wait_for_outcomes").downstream_task_ids == {"compute_monitoring"}
    assert dag.get_task("decide_policies").downstream_task_ids == {"write_report", "should_retrain"}
    trigger = dag.get_task("trigger_retraining")
    assert trigger.trigger_dag_id == "flights_training"
    assert trigger.skip_when_already_exists  # one training run per monitored day, at most
    assert "retrain" in trigger.trigger_run_id
    assert dag.max_active_runs == 1  # cooldown and probation read earlier days' decisions


def test_micro_batch_cadence_is_the_only_change(tmp_path: Path) -> None:
    """Same DAG ids, tasks and Spark job; only the schedule and what a run owns differ."""
    import shutil

    from runway_mlops.orchestration.factory import build_dags

    shutil.copytree(ROOT / "config", tmp_path / "config")
    for folder in ("dags", "plugins", "jobs"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    pipeline_file = tmp_path / "config" / "pipelines" / "flights.yaml"
    text = pipeline_file.read_text()
    assert 'cadence: "@daily"' in text
    pipeline_file.write_text(text.replace('cadence: "@daily"', 'cadence: "*/5 * * * *"'))
    daily = build_dags(ROOT / "config")
    micro = build_dags(tmp_path / "config")
    assert sorted(micro) == sorted(daily)

    features = micro["flights_features"]
    assert [t.task_id for t in features.topological_sort()] == [
        "ingest_raw",
        "validate_raw",
        "wait_for_history",
        "build_features",
    ]
    assert features.timetable._expression == "*/5 * * * *"
    assert features.end_date is None and features.max_active_runs == 1
    spark = features.get_task("build_features")
    assert spark.application.endswith("jobs/build_features.py")
    args = " ".join(spark.application_args)
    assert "--days" in args and "validate_raw" in args and "--ds" not in args
    assert spark.days_task == "validate_raw"  # the Asset event lists the batch's days

    inference = micro["flights_inference"]
    assert [t.task_id for t in inference.tasks] == ["score_new"]
    assert "flights_features" in str(inference.timetable.asset_condition)
    # Outcomes are still judged per day.
    assert micro["flights_monitoring"].timetable._expression == "0 0 * * *"
    assert micro["flights_training"].timetable == daily["flights_training"].timetable


def test_backfill_dag_keeps_each_day_apart(dagbag) -> None:
    dag = dagbag.dags["flights_features_backfill"]
    assert dag.timetable._expression == "0 0 1 * *"  # @monthly, local midnight
    assert str(dag.timetable._timezone.name) == "America/New_York"
    ids = {t.task_id for t in dag.tasks}
    assert ids == {
        "plan_days",
        "day.ingest_raw",
        "day.validate_raw",
        "validated_days",
        "wait_for_history",
        "build_features",
        "check_days",
    }
    assert "day.ingest_raw" in dag.get_task("day.validate_raw").upstream_task_ids
    spark = dag.get_task("build_features")
    assert "--days" in spark.application_args
    assert spark.days_task == "validated_days"
    assert [o.name for o in spark.outlets] == ["flights_features"]
    # A day that fails must fail the run (check_days is a leaf), not hide behind the
    # features of the days that passed.
    leaves = {t.task_id for t in dag.tasks if not t.downstream_task_ids}
    assert leaves == {"build_features", "check_days"}


def test_a_training_run_may_skip_quarantined_days(dagbag) -> None:
    # A year's window holds an unusable day (2013-12-31, no weather): a run may skip it (recorded in the
    # training set's lineage) instead of the pipeline's default, refusing.
    param = dagbag.dags["flights_training"].params.get_param("missing_partitions")
    assert param.value == "refuse"
    assert param.schema["enum"] == ["refuse", "skip"]
