"""The training stages against a real MLflow (SQLite and PostgreSQL backends).

Data: synthetic feature/label partitions in a temporary lake (tests/synthetic.py), so
the gates, the registry and the lineage are exercised in seconds; the Airflow DAG test
runs the same stages through the scheduler.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from runway_mlops import catalog
from runway_mlops.config import load_settings
from runway_mlops.errors import GateRejectedError, PromotionRefusedError
from runway_mlops.stages import train
from runway_mlops.training import registry
from runway_mlops.training.model import candidates
from tests.conftest import CONFIG_DIR
from tests.synthetic import write_days

D = dt.date
END = D(2013, 4, 29)


@pytest.fixture(params=["sqlite", "postgresql"])
def mlflow_settings(request, tmp_path):
    env = {"RUNWAY_HOME": str(tmp_path / "home")}
    if request.param == "postgresql":
        # SQLAlchemy 2.1 defaults postgresql:// to psycopg 3; Runway ships psycopg2.
        url = request.getfixturevalue("pg_database")
        env["RUNWAY_MLFLOW_TRACKING_URI"] = url.replace("postgresql://", "postgresql+psycopg2://")
    return load_settings(CONFIG_DIR, env=env)


def _train(settings, pipeline, context, overrides=None, *, mode=None):
    window = train.training_window(pipeline, end=END, days=60)
    training_set = train.prepare_training_set(settings, pipeline, window)
    results = [
        train.train_candidate(settings, pipeline, training_set.path, c, context)
        for c in candidates(pipeline.training, overrides, tune=False)
    ]
    return train.evaluate_gates(settings, pipeline, train.select_best(results), context, mode=mode)


def _champion(settings, pipeline):
    client, _ = registry.connect(settings, pipeline)
    return registry.aliased_version(client, pipeline.model_name, registry.CHAMPION)


def test_first_champion_then_a_worse_model_is_rejected(mlflow_settings, flights_pipeline):
    settings, pipeline = mlflow_settings, flights_pipeline
    write_days(settings, pipeline, END - dt.timedelta(days=59), END, rows=300)
    context = train.RunContext(dag_id="flights_training", run_id="manual__1", run_type="manual")

    first = _train(settings, pipeline, context)
    assert first["decision"] == "passed" and first["champion_version"] is None
    registered = train.register_challenger(settings, pipeline, first, context)
    promoted = train.promote_champion(settings, pipeline, registered, context)
    assert promoted["champion"] == registered["model_version"] == "1"
    assert _champion(settings, pipeline) == "1"
    decision = catalog.get_gate_decision(settings.database_url, first["decision_id"])
    assert decision is not None and decision.model_version == "1"
    recorded = {c["name"]: c for c in decision.checks}
    skipped = recorded["no_regression_vs_champion"]
    assert skipped["verdict"] == "skip" and "first model" in skipped["detail"]
    # The floor and the screen ran on the real training rows of the shipped config.
    assert recorded["beats_baseline"]["verdict"] == "pass"
    assert "origin x dep_hour" in recorded["beats_baseline"]["detail"]
    assert {recorded[n]["verdict"] for n in ("leakage_single_feature", "leakage_missingness")} == {
        "pass"
    }
    assert decision.inputs["metrics"]["challenger"]["roc_auc_within_day"] is not None

    # The handicapped model: two trees of two leaves.
    handicap = {"num_leaves": 2, "num_boost_round": 2, "learning_rate": 0.01}
    with pytest.raises(GateRejectedError, match="no_regression_vs_champion") as rejected:
        _train(
            settings,
            pipeline,
            train.RunContext("flights_training", "manual__2", "manual"),
            handicap,
        )
    assert "champion unchanged (v1)" in str(rejected.value)
    assert _champion(settings, pipeline) == "1"
    client, _ = registry.connect(settings, pipeline)
    assert [
        str(v.version) for v in client.search_model_versions(f"name = '{pipeline.model_name}'")
    ] == ["1"]
    worst = catalog.list_gate_decisions(settings.database_url, pipeline.name, run_id="manual__2")
    assert len(worst) == 1 and worst[0].decision == "rejected" and worst[0].model_version is None
    assert worst[0].inputs["champion_version"] == "1"

    # The same handicapped model in dry run: recorded as rejected, but not blocking.
    dry = _train(
        settings,
        pipeline,
        train.RunContext("flights_training", "manual__3", "manual"),
        handicap,
        mode="dry_run",
    )
    assert dry["decision"] == "rejected" and not dry["blocking"]
    assert train.register_challenger(settings, pipeline, dry, context)["model_version"] == "2"
    assert registry.aliased_version(client, pipeline.model_name, registry.CHALLENGER) == "2"


def test_lineage_tags_point_at_real_partitions(settings, flights_pipeline):
    pipeline = flights_pipeline
    write_days(settings, pipeline, END - dt.timedelta(days=59), END, rows=200)
    context = train.RunContext(
        dag_id="flights_training", run_id="scheduled__x", run_type="scheduled"
    )
    evaluation = _train(settings, pipeline, context)
    registered = train.register_challenger(settings, pipeline, evaluation, context)
    client, _ = registry.connect(settings, pipeline)
    version = client.get_model_version(pipeline.model_name, registered["model_version"])
    tags = version.tags
    for key in (
        "runway.pipeline",
        "runway.feature_version",
        "runway.data_window",
        "runway.partitions",
        "runway.validation_ids",
        "runway.airflow_dag_id",
        "runway.airflow_run_id",
        "runway.git_commit",
        "runway.gate.summary",
        "runway.training_set",
    ):
        assert tags.get(key), f"model version lacks lineage tag {key}"
    assert tags["runway.airflow_run_id"] == "scheduled__x"
    assert tags["runway.feature_version"] == "synthetic1"
    assert tags["runway.data_window"] == f"{END - dt.timedelta(days=59)}..{END}"
    assert tags["runway.partitions"] == f"{END - dt.timedelta(days=59)}..{END}"
    # Every validation id in the tag is the one in the validated partition's manifest.
    from runway_mlops.lake import Lake

    lake = Lake(settings.lake_dir)
    for item in tags["runway.validation_ids"].split(","):
        day, dataset, validation_id = item.split(":")
        manifest = lake.manifest("validated", pipeline.name, dataset, D.fromisoformat(day))
        assert manifest["validation_id"] == validation_id
    run = client.get_run(version.run_id)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"lineage.json", "gate_decision.json", "plots"} <= artifacts
    plots = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"roc.png", "precision_recall.png", "calibration.png", "feature_importance.png"}
    inputs = {i.tags[0].value for i in run.inputs.dataset_inputs}
    assert inputs == {"train", "validation", "test"}
    assert (
        "validation_roc_auc" in run.data.metrics and "test_challenger_roc_auc" in run.data.metrics
    )
    # The registered model scores raw feature rows on its own (pyfunc, no Runway import).
    model = registry.load_model(f"models:/{pipeline.model_name}@challenger")
    scores = model.predict(train.model_input(*_test_and_spec(model, evaluation)))
    assert ((scores > 0) & (scores < 1)).all()


def _test_and_spec(model, evaluation):
    from runway_mlops.training.dataset import TrainingSet

    return TrainingSet.load(evaluation["training_set"]).frame(
        "test"
    ), model.unwrap_python_model().spec


def test_promotion_is_refused_from_a_backfill_and_recorded(settings, flights_pipeline):
    pipeline = flights_pipeline
    write_days(settings, pipeline, END - dt.timedelta(days=59), END, rows=200)
    context = train.RunContext(dag_id="flights_training", run_id="backfill__1", run_type="backfill")
    registered = train.register_challenger(
        settings, pipeline, _train(settings, pipeline, context), context
    )
    with pytest.raises(PromotionRefusedError, match="never done from a backfill"):
        train.promote_champion(settings, pipeline, registered, context)
    assert _champion(settings, pipeline) is None
    events = [e.event for e in catalog.list_model_events(settings.database_url, pipeline.name)]
    assert events == ["registered", "challenger", "promotion_refused"]
