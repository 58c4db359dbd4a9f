"""The inference and monitoring DAGs through the real scheduler, on PostgreSQL.

A private Airflow whose platform database (catalog, predictions, monitoring, decisions)
is a fresh PostgreSQL database. The lake holds synthetic feature/label partitions, the
last days drifted; a first champion is trained by the real training stages. Then:

* a backfill of ``flights_inference`` with four active runs stores every day's
  predictions exactly once; a second backfill over the same days replaces them;
* a backfill of ``flights_monitoring`` records its policy decisions and never acts;
* a manual monitoring run fires the retraining policy: ``trigger_retraining`` starts
  ``flights_training`` with the window end and the reason, which train behind the gates
  and record the reason; clearing the monitoring run starts no second training run.
"""

from __future__ import annotations

import datetime as dt
import shutil

import pytest
import yaml

from runway_mlops import catalog
from runway_mlops.config import get_pipeline
from runway_mlops.inference import store
from runway_mlops.monitoring import store as mstore
from runway_mlops.monitoring.report import report_dir
from runway_mlops.programs.demo import local_midnight, wait_for_run
from tests.conftest import CONFIG_DIR, ROOT, running_stack
from tests.integration.test_inference_stages import END, FIRST, _drift_days, promote, train_model
from tests.synthetic import write_days

LAST = END + dt.timedelta(days=8)
DRIFT_FROM = END + dt.timedelta(days=6)
ROWS = 250


@pytest.fixture(scope="module")
def stack(tmp_path_factory, request):
    root = tmp_path_factory.mktemp("inference-root")
    shutil.copytree(CONFIG_DIR, root / "config")
    path = root / "config" / "pipelines" / "flights.yaml"
    config = yaml.safe_load(path.read_text())
    # Retrain on score drift of 2 of the last 3 days, with a window the synthetic lake has.
    config["monitoring"]["policies"]["retrain"].update(
        {"breaches": 3, "of_last": 3, "drift_breaches": 2, "window_days": 40}
    )
    # Three drifted days: judged one day at a time (a week pooled would dilute them; the
    # pooled rule is tested in test_inference_stages.py).
    config["monitoring"]["drift"]["pooled_days"] = 1
    config["training"]["tuning"]["grid"] = {"num_leaves": [15, 31]}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    for folder in ("dags", "plugins", "jobs"):
        (root / folder).symlink_to(ROOT / folder)
    database = request.getfixturevalue("pg_module_database")
    url = database.replace("postgresql://", "postgresql+psycopg2://")
    with running_stack(
        tmp_path_factory.mktemp("inference-stack"),
        root / "config",
        seed_files=False,
        env={"RUNWAY_DATABASE_URL": url},
    ) as running:
        pipeline = get_pipeline(running.settings, "flights")
        write_days(running.settings, pipeline, FIRST, LAST + dt.timedelta(days=1), rows=ROWS)
        _drift_days(running.settings, pipeline, DRIFT_FROM, LAST)
        registered, _ = train_model(running.settings, pipeline)
        promote(running.settings, pipeline, registered)
        yield running, pipeline


def _days(first, last):
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def test_backfill_with_several_active_runs_stores_every_prediction_once(stack) -> None:
    running, pipeline = stack
    url = running.settings.database_url
    first = END + dt.timedelta(days=1)
    runs = running.backfill("flights_inference", first, LAST, pipeline, max_active_runs=4)
    assert {day: run["state"] for day, run in runs.items()} == dict.fromkeys(
        _days(first, LAST), "success"
    )
    counts = store.day_counts(url, pipeline.name)
    assert [(c["ds"], c["role"], c["model_version"], c["rows"]) for c in counts] == [
        (day, "champion", "1", ROWS) for day in _days(first, LAST)
    ]
    before = {
        r["entity_key"]: (r["score"], r["run_id"]) for r in store.day_rows(url, pipeline.name, LAST)
    }
    assert all(run_id.startswith("backfill__") for _, run_id in before.values())

    # The same days again: every run reprocessed, nothing duplicated, the same answers.
    running.backfill("flights_inference", first, LAST, pipeline, max_active_runs=4)
    assert store.day_counts(url, pipeline.name) == counts
    after = {
        r["entity_key"]: (r["score"], r["run_id"]) for r in store.day_rows(url, pipeline.name, LAST)
    }
    assert after == before


def test_monitoring_triggers_retraining_once_with_its_reason(stack) -> None:
    running, pipeline = stack
    url = running.settings.database_url
    scored = {c["ds"] for c in store.day_counts(url, pipeline.name)}
    assert set(_days(DRIFT_FROM, LAST)) <= scored, "runs after the inference backfill test"
    # Backfill: outcomes of DRIFT_FROM and the day after; decisions recorded, never acted on.
    monitoring_days = [DRIFT_FROM + dt.timedelta(days=1), DRIFT_FROM + dt.timedelta(days=2)]
    runs = running.backfill(
        "flights_monitoring", monitoring_days[0], monitoring_days[-1], pipeline, max_active_runs=1
    )
    assert {run["state"] for run in runs.values()} == {"success"}
    backfilled = mstore.list_decisions(url, pipeline.name, policy="retrain")
    assert [d.ds for d in backfilled] == [DRIFT_FROM, DRIFT_FROM + dt.timedelta(days=1)]
    assert not any(d.acted for d in backfilled)
    assert (report_dir(running.settings, pipeline.name) / "quality.png").is_file()

    # A live (manual) run of the next interval (LAST + 1, monitoring LAST) fires and acts.
    # A manual run's data interval is the one that ends at its logical date.
    with running.api() as api:
        run = api.trigger(
            "flights_monitoring", logical_date=local_midnight(LAST + dt.timedelta(days=2), pipeline)
        )
        finished = wait_for_run(
            api, "flights_monitoring", run["dag_run_id"], running.procs, timeout=600
        )
        states = {
            t["task_id"]: t["state"]
            for t in api.task_instances("flights_monitoring", run["dag_run_id"])
        }
        assert finished["state"] == "success", states
        assert states["trigger_retraining"] == "success"
        training_id = f"retrain__flights__{LAST}"
        training = api.dag_run("flights_training", training_id)
        assert training["conf"]["window_end"] == str(LAST)
        assert "PSI above" in training["conf"]["reason"]
        training = wait_for_run(api, "flights_training", training_id, running.procs, timeout=900)

        # Rerun the whole monitoring run: the recorded decision stands, no second trigger.
        api.request(
            "POST",
            "/dags/flights_monitoring/clearTaskInstances",
            json={"dag_run_id": run["dag_run_id"], "dry_run": False, "only_failed": False},
        )
        wait_for_run(api, "flights_monitoring", run["dag_run_id"], running.procs, timeout=600)
        states = {
            t["task_id"]: t["state"]
            for t in api.task_instances("flights_monitoring", run["dag_run_id"])
        }
        assert states["trigger_retraining"] == "skipped", states
        runs = [r["dag_run_id"] for r in api.dag_runs("flights_training")]
        assert runs == [training_id]
    (live,) = mstore.list_decisions(url, pipeline.name, policy="retrain", ds=LAST)
    assert live.decision == "fire" and live.acted and live.run_id == run["dag_run_id"]
    # The training run recorded why it ran: its gate decision carries the monitoring reason.
    (gate,) = catalog.list_gate_decisions(url, run_id=training_id)
    assert "monitoring" in gate.inputs["reason"] and "PSI above" in gate.inputs["reason"]
    assert training["state"] in ("success", "failed")  # the gates may keep the champion
