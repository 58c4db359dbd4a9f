"""The prod profile refuses to start with empty or default secrets beyond this machine."""

from __future__ import annotations

import pytest

from runway_mlops.config import load_settings
from runway_mlops.errors import ServiceError
from runway_mlops.programs.services import check_secrets
from tests.conftest import CONFIG_DIR

REAL_KEYS = {"AWS_ACCESS_KEY_ID": "AKIA5EXAMPLE7", "AWS_SECRET_ACCESS_KEY": "k" * 40}


def _prod(**overrides: str):
    env = {"RUNWAY_PROFILE": "prod", **{f"RUNWAY_{k.upper()}": v for k, v in overrides.items()}}
    return load_settings(CONFIG_DIR, env=env)


def test_this_machines_prod_profile_starts() -> None:
    # Loopback PostgreSQL with trust auth, Redis, the S3 emulator with moto's keys: allowed.
    check_secrets(_prod(), {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})


@pytest.mark.parametrize("password", ["", ":postgres", ":airflow"])
def test_a_remote_database_without_a_real_password_is_refused(password: str) -> None:
    url = f"postgresql+psycopg2://runway{password}@db.internal:5432/runway"
    with pytest.raises(ServiceError, match=r"database_url: a service on db\.internal") as err:
        check_secrets(_prod(database_url=url), REAL_KEYS)
    assert url not in str(err.value)  # the setting is named, its value never shown


def test_a_remote_database_with_a_real_password_starts() -> None:
    url = "postgresql+psycopg2://runway:Xq7-long-generated-pass@db.internal:5432/runway"
    check_secrets(_prod(database_url=url), REAL_KEYS)


@pytest.mark.parametrize(
    "keys", [{}, {"AWS_ACCESS_KEY_ID": "minioadmin", "AWS_SECRET_ACCESS_KEY": "minioadmin"}]
)
def test_default_s3_keys_for_a_remote_endpoint_are_refused(keys) -> None:
    settings = _prod(s3_endpoint_url="https://minio.internal:9000")
    with pytest.raises(ServiceError, match="AWS_SECRET_ACCESS_KEY: empty or a default"):
        check_secrets(settings, keys)
    check_secrets(settings, REAL_KEYS)


def test_an_empty_fernet_key_is_refused() -> None:
    with pytest.raises(ServiceError, match="AIRFLOW__CORE__FERNET_KEY: set but empty"):
        check_secrets(_prod(), {**REAL_KEYS, "AIRFLOW__CORE__FERNET_KEY": " "})
