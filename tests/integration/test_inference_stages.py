"""Scoring, monitoring and the policies against a real MLflow and a real database.

Synthetic feature/label partitions (tests/synthetic.py) in a temporary lake; models are
trained, gated and registered by the real training stages; the predictions store and the
monitoring tables run on SQLite and on the machine's PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import threading

import pandas as pd
import pytest

from runway_mlops import catalog
from runway_mlops.config import load_settings
from runway_mlops.inference import models, store
from runway_mlops.lake import Lake
from runway_mlops.monitoring import store as mstore
from runway_mlops.programs.replay import ReplaySummary, run_loop
from runway_mlops.stages import monitor, score, train
from runway_mlops.training import registry
from runway_mlops.training.model import candidates
from tests.conftest import CONFIG_DIR
from tests.synthetic import write_days

D = dt.date
END = D(2013, 4, 29)  # last day of the first model's window
FIRST = END - dt.timedelta(days=39)
HANDICAP = {"num_leaves": 2, "num_boost_round": 1, "learning_rate": 0.01}


@pytest.fixture(params=["sqlite", "postgresql"])
def db_settings(request, tmp_path):
    """Settings of a fresh home whose platform database is SQLite or PostgreSQL."""
    env = {"RUNWAY_HOME": str(tmp_path / "home")}
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_database")
        env["RUNWAY_DATABASE_URL"] = url.replace("postgresql://", "postgresql+psycopg2://")
    return load_settings(CONFIG_DIR, env=env)


def train_model(settings, pipeline, *, end=END, overrides=None, mode=None, run_id="manual__1"):
    """Train one candidate on the 40 days up to ``end``, gate and register it."""
    context = train.RunContext(dag_id="flights_training", run_id=run_id, run_type="manual")
    window = train.training_window(pipeline, end=end, days=40, validation_days=7, test_days=7)
    training_set = train.prepare_training_set(settings, pipeline, window)
    results = [
        train.train_candidate(settings, pipeline, training_set.path, c, context)
        for c in candidates(pipeline.training, overrides, tune=False)
    ]
    evaluation = train.evaluate_gates(
        settings, pipeline, train.select_best(results), context, mode=mode
    )
    return train.register_challenger(settings, pipeline, evaluation, context), context


def promote(settings, pipeline, registered):
    """Promote by hand (``runway promote``), whatever the pipeline's promotion policy."""
    context = train.RunContext(
        run_id=f"promote__{registered['model_version']}", run_type="cli-manual"
    )
    return train.promote_champion(settings, pipeline, registered, context, approved_by="test")


def scoring(ds, run_type="scheduled"):
    start = dt.datetime.combine(ds, dt.time(), tzinfo=dt.UTC)
    return score.ScoringContext(
        dag_id="flights_inference",
        run_id=f"{run_type}__{ds}",
        run_type=run_type,
        interval_start=start,
        interval_end=start + dt.timedelta(days=1),
    )


def score_day(settings, pipeline, ds, run_type="scheduled", model=None):
    champion = score.score_champion(settings, pipeline, ds, scoring(ds, run_type), model=model)
    shadow = score.score_shadow(settings, pipeline, ds, scoring(ds, run_type))
    return champion, shadow


def test_scoring_is_idempotent_carries_versions_and_keeps_shadows_apart(
    db_settings, flights_pipeline
):
    settings, pipeline = db_settings, flights_pipeline
    write_days(settings, pipeline, FIRST, END + dt.timedelta(days=3), rows=250)
    registered, _ = train_model(settings, pipeline)
    promoted = promote(settings, pipeline, registered)
    assert promoted["effective_from"] == str(END + dt.timedelta(days=1))
    ds = END + dt.timedelta(days=1)

    first, shadow = score_day(settings, pipeline, ds)
    assert first.rows == 250 and first.models[0]["version"] == "1" and shadow.rows == 0
    stored = store.day_rows(settings.database_url, pipeline.name, ds)
    assert len(stored) == 250
    assert {(r["model_version"], r["role"], r["feature_version"], r["run_id"]) for r in stored} == {
        ("1", "champion", "synthetic1", f"scheduled__{ds}")
    }
    lake_rows = score.read_predictions(settings, pipeline, ds, "champion")
    assert sorted(lake_rows["entity_key"]) == sorted(r["entity_key"] for r in stored)
    assert set(lake_rows["model_version"]) == {"1"} and set(lake_rows["feature_version"]) == {
        "synthetic1"
    }
    features = Lake(settings.lake_dir).read_frame("features", pipeline.name, "flights", ds)
    assert len(lake_rows) == len(features)
    # The version's own threshold, chosen from the shipped costs (1 : 3) at training.
    client, _ = registry.connect(settings, pipeline)
    tags = client.get_model_version(pipeline.model_name, "1").tags
    chosen = float(tags["runway.decision_threshold"])
    assert chosen != pipeline.inference.threshold
    assert set(lake_rows["threshold"]) == {chosen}
    assert (lake_rows["decision"] == (lake_rows["score"] >= chosen)).all()

    # Rerun: the same rows, nothing duplicated.
    score_day(settings, pipeline, ds)
    again = store.day_rows(settings.database_url, pipeline.name, ds)
    assert [(r["entity_key"], r["score"]) for r in again] == [
        (r["entity_key"], r["score"]) for r in stored
    ]

    # A challenger (dry run: registered although it is worse) scores the same rows in shadow.
    challenger, _ = train_model(
        settings, pipeline, overrides=HANDICAP, mode="dry_run", run_id="manual__2"
    )
    assert challenger["model_version"] == "2"
    _, shadow = score_day(settings, pipeline, ds)
    assert shadow.rows == 250 and shadow.models[0]["alias"] == "challenger"
    rows = store.day_rows(settings.database_url, pipeline.name, ds)
    by_role = {role: [r for r in rows if r["role"] == role] for role in ("champion", "shadow")}
    assert len(by_role["champion"]) == len(by_role["shadow"]) == 250
    assert {r["model_version"] for r in by_role["shadow"]} == {"2"}
    assert [(r["entity_key"], r["score"]) for r in by_role["champion"]] == [
        (r["entity_key"], r["score"]) for r in stored
    ]
    key = by_role["champion"][0]["entity_key"]
    (served,) = store.lookup(settings.database_url, pipeline.name, key)
    assert served["model_version"] == "1" and served["role"] == "champion"
    assert len(store.lookup(settings.database_url, pipeline.name, key, role=None)) == 2


def test_backfill_scores_a_past_day_with_the_champion_recorded_for_it(settings, flights_pipeline):
    pipeline = flights_pipeline
    write_days(settings, pipeline, FIRST, END + dt.timedelta(days=6), rows=200)
    v1, _ = train_model(settings, pipeline)
    promote(settings, pipeline, v1)
    for i in range(1, 4):
        score_day(settings, pipeline, END + dt.timedelta(days=i))
    v2, _ = train_model(
        settings, pipeline, end=END + dt.timedelta(days=2), run_id="manual__2", mode="dry_run"
    )
    promoted = promote(settings, pipeline, v2)
    # Days up to 05-02 were served by v1: v2 serves from the next day.
    assert promoted["effective_from"] == str(END + dt.timedelta(days=4))
    history = models.champion_history(settings.database_url, pipeline.name)
    assert [(p.version, str(p.effective_from)) for p in history] == [
        ("1", str(END + dt.timedelta(days=1))),
        ("2", str(END + dt.timedelta(days=4))),
    ]
    past = END + dt.timedelta(days=2)
    recorded, _ = score_day(settings, pipeline, past, run_type="backfill")
    assert recorded.models[0]["version"] == "1" and "recorded" in recorded.models[0]["how"]
    current, _ = score_day(settings, pipeline, past, run_type="backfill", model="champion")
    assert current.models[0]["version"] == "2"
    assert {
        r["model_version"]
        for r in store.day_rows(settings.database_url, pipeline.name, past, "champion")
    } == {"2"}
    scheduled, _ = score_day(settings, pipeline, END + dt.timedelta(days=5))
    assert scheduled.models[0]["version"] == "2"
    with pytest.raises(models.NoModelError, match="model=champion"):
        score_day(settings, pipeline, FIRST, run_type="backfill")
    explicit, _ = score_day(settings, pipeline, past, model="1")
    assert explicit.models[0] == {**explicit.models[0], "version": "1", "alias": "explicit"}


def _variant(pipeline, **policies):
    monitoring = pipeline.monitoring
    merged = monitoring.policies.model_copy(update=policies)
    return pipeline.model_copy(
        update={"monitoring": monitoring.model_copy(update={"policies": merged})}
    )


def _drift_days(settings, pipeline, first, last):
    """Feature partitions whose strongest features moved: the score distribution drifts."""
    lake = Lake(settings.lake_dir)
    day = first
    while day <= last:
        frame = lake.read_frame("features", pipeline.name, "flights", day)
        frame["route_delayed_rate_7d"] = frame["route_delayed_rate_7d"] + 0.6
        frame["weather_visib"] = frame["weather_visib"] * 0.2
        lake.write_frame(
            "features", pipeline.name, "flights", day, frame, {"feature_version": "synthetic1"}
        )
        day += dt.timedelta(days=1)


def test_forced_drift_triggers_retraining_exactly_once_within_the_cooldown(
    settings, flights_pipeline
):
    pipeline = _variant(
        flights_pipeline,
        retrain=flights_pipeline.monitoring.policies.retrain.model_copy(
            update={
                "threshold": None,
                "drift_psi": 0.25,
                "drift_features": ["score"],
                "drift_breaches": 2,
                "of_last": 3,
                "cooldown_days": 30,
                "window_days": 40,
            }
        ),
    )
    # The retrained model stays challenger (shadow promotion), so the champion keeps
    # drifting and the policy keeps wanting to fire: only the cooldown holds it back.
    pipeline = pipeline.model_copy(
        update={"promotion": pipeline.promotion.model_copy(update={"policy": "shadow"})}
    )
    last = END + dt.timedelta(days=9)
    write_days(settings, pipeline, FIRST, last, rows=250)
    _drift_days(settings, pipeline, END + dt.timedelta(days=3), last)
    v1, _ = train_model(settings, pipeline)
    promote(settings, pipeline, v1)
    summary = ReplaySummary(pipeline.name, "", "")
    days = [END + dt.timedelta(days=i) for i in range(1, 10)]
    run_loop(settings, pipeline, days, tune=False, summary=summary)

    decisions = mstore.list_decisions(settings.database_url, pipeline.name, policy="retrain")
    fired = [d for d in decisions if d.decision == "fire"]
    assert len(fired) == 1 and fired[0].acted, [(d.ds, d.decision) for d in decisions]
    assert "PSI above 0.25" in fired[0].reason
    after = [d for d in decisions if d.ds > fired[0].ds]
    assert after and all(d.decision == "cooldown" for d in after)
    assert (
        len(summary.trainings) == 1
        and summary.trainings[0]["run_id"] == f"retrain__flights__{fired[0].ds}"
    )
    assert summary.trainings[0]["model_version"] == "2" and not summary.trainings[0]["promoted"]
    client, _ = registry.connect(settings, pipeline)
    assert registry.aliased_version(client, pipeline.model_name, registry.CHALLENGER) == "2"
    # From the next scored day on, the challenger scores in shadow.
    shadow = score.read_predictions(settings, pipeline, last, "shadow")
    assert set(shadow["model_version"]) == {"2"} and set(shadow["alias"]) == {"challenger"}
    # The retrained model went through the gates; its decision is recorded with the reason.
    (gate,) = catalog.list_gate_decisions(
        settings.database_url, run_id=summary.trainings[0]["run_id"]
    )
    assert "PSI above" in gate.inputs["reason"]

    # Rerunning the day that fired neither fires nor acts again.
    again = monitor.decide_policies(
        settings,
        pipeline,
        fired[0].ds,
        monitor.MonitorContext(run_id="rerun", run_type="scheduled"),
    )
    assert again.decisions["retrain"].decision == "fire" and again.retrain is not None
    assert (
        again.retrain["run_id"] == summary.trainings[0]["run_id"]
    )  # the same trigger: deduplicated
    assert (
        len(
            [
                d
                for d in mstore.list_decisions(
                    settings.database_url, pipeline.name, policy="retrain"
                )
                if d.decision == "fire"
            ]
        )
        == 1
    )


def test_a_backfill_run_records_policies_but_never_acts(settings, flights_pipeline):
    pipeline = _variant(
        flights_pipeline,
        min_rows=10,
        retrain=flights_pipeline.monitoring.policies.retrain.model_copy(
            update={
                "threshold": 0.99,
                "breaches": 1,
                "of_last": 1,
                "confidence": None,  # one day: the count, not the bound
                "drift_psi": None,
                "drift_features": [],
            }
        ),
    )
    write_days(settings, pipeline, FIRST, END + dt.timedelta(days=1), rows=200)
    v1, _ = train_model(settings, pipeline)
    promote(settings, pipeline, v1)
    ds = END + dt.timedelta(days=1)
    score_day(settings, pipeline, ds, run_type="backfill", model="champion")
    context = monitor.MonitorContext(run_id="backfill__x", run_type="backfill")
    monitor.compute_monitoring(settings, pipeline, ds, context)
    outcome = monitor.decide_policies(settings, pipeline, ds, context)
    decision = outcome.decisions["retrain"]
    assert decision.decision == "fire" and not decision.acted and outcome.retrain is None
    assert "never acts" in decision.action


def test_a_forced_bad_champion_is_rolled_back(db_settings, flights_pipeline):
    settings = db_settings
    pipeline = _variant(
        flights_pipeline,
        min_rows=50,
        rollback=flights_pipeline.monitoring.policies.rollback.model_copy(
            update={"probation_days": 5, "min_intervals": 2, "margin": 0.02}
        ),
    )
    write_days(settings, pipeline, FIRST, END + dt.timedelta(days=8), rows=300)
    v1, _ = train_model(settings, pipeline)
    promote(settings, pipeline, v1)
    score_day(settings, pipeline, END + dt.timedelta(days=1))
    # A bad model, forced through by hand (dry-run gates, manual promotion).
    bad, _ = train_model(
        settings, pipeline, overrides=HANDICAP, mode="dry_run", run_id="manual__bad"
    )
    promoted = promote(settings, pipeline, bad)
    start = dt.date.fromisoformat(promoted["effective_from"])
    assert start == END + dt.timedelta(days=2)

    client, _ = registry.connect(settings, pipeline)
    summary = ReplaySummary(pipeline.name, "", "")
    run_loop(
        settings,
        pipeline,
        [start + dt.timedelta(days=i) for i in range(5)],
        tune=False,
        summary=summary,
    )

    decisions = mstore.list_decisions(settings.database_url, pipeline.name, policy="rollback")
    rolled = [d for d in decisions if d.decision == "rollback"]
    assert len(rolled) == 1 and rolled[0].acted, [(d.ds, d.decision, d.reason) for d in decisions]
    assert rolled[0].figures["gain"] < -0.02
    assert registry.aliased_version(client, pipeline.model_name, registry.CHAMPION) == "1"
    assert registry.aliased_version(client, pipeline.model_name, registry.PREVIOUS) is None
    assert "runway.rolled_back" in client.get_model_version(pipeline.model_name, "2").tags
    events = catalog.list_model_events(settings.database_url, pipeline.name)
    (event,) = [e for e in events if e.event == "rolled_back"]
    assert event.model_version == "1" and event.details["rolled_back"] == "2"
    serves = dt.date.fromisoformat(event.details["effective_from"])
    assert models.champion_on(settings.database_url, pipeline.name, serves).version == "1"
    assert models.champion_on(settings.database_url, pipeline.name, start).version == "2"
    # During probation the previous champion was scored in shadow, on the same rows.
    shadow = score.read_predictions(settings, pipeline, start, "shadow")
    assert set(shadow["alias"]) == {"previous_champion"} and set(shadow["model_version"]) == {"1"}
    # Days after the rollback are served by v1 again.
    after = [
        d
        for d in Lake(settings.lake_dir).partitions("predictions", pipeline.name, "champion")
        if d >= serves
    ]
    assert after and all(score.champion_version_of(settings, pipeline, d) == "1" for d in after)


def test_postgres_store_under_concurrent_writers_loses_and_duplicates_nothing(pg_database):
    url = pg_database.replace("postgresql://", "postgresql+psycopg2://")
    days = [D(2013, 6, 1) + dt.timedelta(days=i) for i in range(6)]

    def rows(ds, version, score_):
        return [
            {
                "pipeline": "flights",
                "entity_key": f"{ds}|{i}",
                "model_version": version,
                "model_name": "runway_flights",
                "role": "champion",
                "alias": "champion",
                "score": score_,
                "decision": 0,
                "threshold": 0.5,
                "feature_version": "fv",
                "ds": ds,
                "event_time": None,
                "interval_start": None,
                "interval_end": None,
                "dag_id": "flights_inference",
                "run_id": f"{version}",
            }
            for i in range(400)
        ]

    errors: list[BaseException] = []

    def writer(ds, version, score_):
        try:
            for _ in range(3):
                store.replace_day(url, "flights", ds, "champion", rows(ds, version, score_))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    # Each day written at once by a "scheduled run" (v1) and a "backfill" (v2).
    threads = [
        threading.Thread(target=writer, args=(ds, version, s))
        for ds in days
        for version, s in (("1", 0.1), ("2", 0.2))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    counts = pd.DataFrame(store.day_counts(url, "flights"))
    assert len(counts) == len(days), counts  # one (day, version) group per day: never a mix
    assert (counts["rows"] == 400).all()


def test_postgres_store_writes_a_day_of_several_pages_and_keeps_the_rules(pg_database):
    from tests.unit.test_predictions_store import rows

    url = pg_database.replace("postgresql://", "postgresql+psycopg2://")
    day = dt.date(2013, 5, 1)
    big = rows("1", "champion", n=2507, score=0.9)  # three pages of execute_values
    assert store.replace_day(url, "flights", day, "champion", big) == 2507
    # A shadow write of the same version never replaces the champion rows ...
    store.replace_day(url, "flights", day, "shadow", rows("1", "shadow", n=2507, score=0.1))
    champion = store.day_rows(url, "flights", day, "champion")
    assert len(champion) == 2507 and {r["score"] for r in champion} == {0.9}
    assert store.day_rows(url, "flights", day, "shadow") == []
    # ... another version's shadow rows go in beside them; a rerun replaces, never adds.
    for _ in range(2):
        store.replace_day(url, "flights", day, "shadow", rows("2", "shadow", n=2507, score=0.2))
    assert len(store.day_rows(url, "flights", day, "shadow")) == 2507
    store.replace_day(url, "flights", day, "champion", big[:10])
    assert len(store.day_rows(url, "flights", day, "champion")) == 10
