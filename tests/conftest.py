"""Shared fixtures. Each tier lives in its own folder and carries its marker."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "config"

# Airflow reads its configuration once, at first import: point it at a private home
# before any test imports it, so tests never touch ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="runway-tests-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

_TIERS = {"unit": "unit", "dags": "dags", "integration": "integration", "e2e": "e2e"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with its tier, from the folder it lives in."""
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts and parts[0] in _TIERS:
            item.add_marker(getattr(pytest.mark, _TIERS[parts[0]]))


@pytest.fixture
def settings(tmp_path: Path):
    """Platform settings whose every storage root lives in a fresh temporary folder."""
    from runway_mlops.config import load_settings

    return load_settings(CONFIG_DIR, env={"RUNWAY_HOME": str(tmp_path / "home")})


@pytest.fixture(scope="session")
def flights_pipeline():
    from runway_mlops.config import load_pipeline

    return load_pipeline(CONFIG_DIR / "pipelines" / "flights.yaml")


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for every test that needs it."""
    from runway_mlops.features.job import spark_session

    session = spark_session("local[2]", app_name="runway-tests")
    yield session
    session.stop()
