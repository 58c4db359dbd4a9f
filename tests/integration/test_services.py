"""What ``runway up`` prepares before it starts anything: databases, buckets, the broker."""

from __future__ import annotations

import uuid

import boto3
import psycopg2
import pytest

from runway_mlops.config import load_settings
from runway_mlops.programs import services
from tests.conftest import CONFIG_DIR
from tests.integration.conftest import PG_ADMIN


def _prod(tmp_path, **overrides: str):
    env = {"RUNWAY_PROFILE": "prod", "RUNWAY_HOME": str(tmp_path)}
    env.update({f"RUNWAY_{k.upper()}": v for k, v in overrides.items()})
    return load_settings(CONFIG_DIR, env=env)


def _databases() -> set[str]:
    with psycopg2.connect(PG_ADMIN) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database")
        return {row[0] for row in cursor.fetchall()}


def test_missing_databases_are_created_once(tmp_path) -> None:
    names = [f"runway_svc_{uuid.uuid4().hex[:8]}" for _ in range(3)]
    base = "postgresql+psycopg2://postgres@127.0.0.1:5432/"
    settings = _prod(
        tmp_path,
        database_url=base + names[0],
        airflow_database_url=base + names[1],
        mlflow_backend_store_uri=base + names[2],
    )
    try:
        assert sorted(services.ensure_databases(settings)) == sorted(names)
        assert set(names) <= _databases()
        assert services.ensure_databases(settings) == []  # already there: nothing to do
    finally:
        admin = psycopg2.connect(PG_ADMIN)
        admin.autocommit = True
        with admin.cursor() as cursor:
            for name in names:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


def test_unreachable_postgres_names_host_and_database(tmp_path) -> None:
    settings = _prod(tmp_path, database_url="postgresql+psycopg2://postgres@127.0.0.1:9/runway")
    with pytest.raises(services.ServiceError, match=r"127\.0\.0\.1:9 .*database 'runway'"):
        services.ensure_databases(settings)


def test_missing_buckets_are_created(tmp_path, s3_endpoint) -> None:
    suffix = uuid.uuid4().hex[:8]
    settings = _prod(
        tmp_path,
        s3_endpoint_url=s3_endpoint,
        landing_uri=f"s3://land-{suffix}/flights",
        lake_uri=f"s3://lake-{suffix}",
        mlflow_artifacts_destination=f"s3://mlflow-{suffix}",
    )
    assert services.ensure_buckets(settings) == sorted(
        [f"land-{suffix}", f"lake-{suffix}", f"mlflow-{suffix}"]
    )
    existing = {
        b["Name"] for b in boto3.client("s3", endpoint_url=s3_endpoint).list_buckets()["Buckets"]
    }
    assert {f"land-{suffix}", f"lake-{suffix}", f"mlflow-{suffix}"} <= existing
    assert services.ensure_buckets(settings) == []


def test_s3_profile_without_keys_is_refused(tmp_path, s3_endpoint, monkeypatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    settings = _prod(tmp_path, s3_endpoint_url=s3_endpoint)
    with pytest.raises(services.ServiceError, match="set AWS_ACCESS_KEY_ID and AWS_SECRET"):
        services.ensure_buckets(settings)


def test_broker_down_is_named(tmp_path) -> None:
    settings = _prod(tmp_path, celery_broker_url="redis://127.0.0.1:9/0")
    with pytest.raises(services.ServiceError, match=r"broker 127\.0\.0\.1:9 does not answer"):
        services.check_broker(settings)
    services.check_broker(_prod(tmp_path))  # the machine's Redis answers


def test_s3_emulator_only_on_loopback(tmp_path) -> None:
    with pytest.raises(services.ServiceError, match="must be http://127.0.0.1:PORT"):
        services.s3_emulator_command(_prod(tmp_path, s3_endpoint_url="https://s3.example.com"))
    command = services.s3_emulator_command(_prod(tmp_path))
    assert command[-4:] == ["-H", "127.0.0.1", "-p", "9000"]


def test_a_taken_port_is_refused_naming_the_setting() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(services.ServiceError, match=f"127.0.0.1:{port}.*change spark_master"):
            services._free_address(f"spark://127.0.0.1:{port}", 7077, "spark_master")
    assert services._free_address(f"spark://127.0.0.1:{port}", 7077, "spark_master") == (
        "127.0.0.1",
        port,
    )
