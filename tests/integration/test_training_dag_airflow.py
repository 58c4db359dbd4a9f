"""The training DAG through the real scheduler, with manual promotion (human in the loop).

A second Airflow runs on a copy of the pipeline config whose promotion policy is
``manual``: the first run trains the tuning grid (mapped tasks), passes its gates,
registers the challenger, then waits in ``approve_promotion`` until the test approves it
through Airflow's REST API; the champion changes only then. A second run with a handicap
(``hyperparameters`` param) fails at ``evaluate_gates`` and leaves the champion alone.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil

import pytest

from runway_mlops import catalog
from runway_mlops.config import get_pipeline
from runway_mlops.programs.demo import wait_for_run
from runway_mlops.training import registry
from tests.conftest import CONFIG_DIR, ROOT, running_stack
from tests.synthetic import write_days

END = dt.date(2013, 4, 29)
DAG_ID = "flights_training"


@pytest.fixture(scope="module")
def manual_stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("manual-root")
    shutil.copytree(CONFIG_DIR, root / "config")
    pipeline_file = root / "config" / "pipelines" / "flights.yaml"
    text = pipeline_file.read_text()
    policy = re.search(r"^  policy: \w+", text, flags=re.MULTILINE)
    assert policy is not None
    pipeline_file.write_text(text.replace(policy.group(0), "  policy: manual"))
    for folder in ("dags", "plugins", "jobs"):
        (root / folder).symlink_to(ROOT / folder)
    with running_stack(
        tmp_path_factory.mktemp("manual-stack"), root / "config", seed_files=False
    ) as stack:
        pipeline = get_pipeline(stack.settings, "flights")
        write_days(stack.settings, pipeline, END - dt.timedelta(days=59), END, rows=300)
        yield stack, pipeline


def _champion(stack, pipeline):
    client, _ = registry.connect(stack.settings, pipeline)
    return registry.aliased_version(client, pipeline.model_name, registry.CHAMPION)


def test_manual_approval_waits_then_promotes(manual_stack) -> None:
    stack, pipeline = manual_stack
    with stack.api() as api:
        run = api.trigger(DAG_ID, {"window_end": str(END), "window_days": 60, "reason": "test"})
        run_id = run["dag_run_id"]
        wait_for_run(
            api,
            DAG_ID,
            run_id,
            stack.procs,
            timeout=900,
            until_task_state=("approve_promotion", "awaiting_input"),
        )
        states = {
            (t["task_id"], t["map_index"]): t["state"] for t in api.task_instances(DAG_ID, run_id)
        }
        # The grid (2 x 2) fanned out as four mapped task instances.
        assert sorted(i for (task, i) in states if task == "train_candidate") == [0, 1, 2, 3]
        assert states[("register_challenger", -1)] == "success"
        assert states[("promote_champion", -1)] in (None, "none", "scheduled", "queued")
        client, _ = registry.connect(stack.settings, pipeline)
        assert registry.aliased_version(client, pipeline.model_name, "challenger") == "1"
        assert _champion(stack, pipeline) is None  # waiting: nothing promoted yet

        api.respond(DAG_ID, run_id, "approve_promotion", ["Approve"])
        finished = wait_for_run(api, DAG_ID, run_id, stack.procs, timeout=300)
        assert finished["state"] == "success"
    assert _champion(stack, pipeline) == "1"
    promoted = [
        e for e in catalog.list_model_events(stack.settings.database_url) if e.event == "promoted"
    ]
    assert len(promoted) == 1 and promoted[0].actor == "admin" and promoted[0].run_id == run_id
    decisions = catalog.list_gate_decisions(stack.settings.database_url, run_id=run_id)
    assert len(decisions) == 1 and decisions[0].decision == "passed"
    assert decisions[0].dag_id == DAG_ID and decisions[0].model_version == "1"
    assert decisions[0].inputs["reason"] == "test"


def test_handicapped_model_fails_the_run_and_keeps_the_champion(manual_stack) -> None:
    stack, pipeline = manual_stack
    before = _champion(stack, pipeline)
    assert before is not None, "runs after test_manual_approval_waits_then_promotes"
    conf = {
        "window_end": str(END),
        "window_days": 60,
        "tune": False,
        "hyperparameters": {"num_leaves": 2, "num_boost_round": 2},
    }
    with stack.api() as api:
        run_id = api.trigger(DAG_ID, conf)["dag_run_id"]
        finished = wait_for_run(api, DAG_ID, run_id, stack.procs, timeout=900)
        states = {t["task_id"]: t["state"] for t in api.task_instances(DAG_ID, run_id)}
    assert finished["state"] == "failed"
    assert states["evaluate_gates"] == "failed"
    assert states["register_challenger"] == "upstream_failed"
    assert _champion(stack, pipeline) == before
    (decision,) = catalog.list_gate_decisions(stack.settings.database_url, run_id=run_id)
    assert decision.decision == "rejected" and decision.blocking
    assert "no_regression_vs_champion" in {
        c["name"] for c in decision.checks if c["verdict"] == "fail"
    }
