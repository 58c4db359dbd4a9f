"""Run Airflow for Runway on this machine: environment, secrets, processes.

``runway up`` (``make up``) and ``runway demo`` start the real Airflow components —
api-server (UI, REST and execution API), scheduler, dag-processor and triggerer — with
the LocalExecutor. On the ``local`` profile (``airflow_database_url: embedded``) their
metadata database is PostgreSQL on a private server in the profile's home
(:mod:`runway_mlops.orchestration.embedded_postgres`), started first and stopped last;
``airflow_database_url: sqlite:///...`` goes back to SQLite (one writer at a time: for
small experiments only), and a ``postgresql://`` URL names a server of your own.

Each component runs in a session of its own under a watchdog
(:mod:`runway_mlops.orchestration.lifecycle`): stopping it, or its exit, ends everything it started
(log servers, executor workers, task runners), and so does the death of the process
that started it, even by SIGKILL. That process claims the home while it runs: a second
one is refused, and what a dead one left behind is stopped before starting anew.

Login is required: the simple auth manager with one ``admin`` user whose random password
is generated once into ``<airflow_home>/passwords.json`` (mode 0600). The JWT and session
secrets are generated the same way, so every component (and every task) agrees on them
and nothing secret is in the repository. Connections come from the environment:
``AIRFLOW_CONN_SPARK_DEFAULT`` from the profile's ``spark_master`` and one
``AIRFLOW_CONN_<ID>`` per credential-free connection in the profile, unless the caller's
environment already defines it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from runway_mlops.config import ENV_FIELDS, PlatformSettings
from runway_mlops.errors import AirflowStartError
from runway_mlops.orchestration import embedded_postgres, lifecycle

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: The embedded PostgreSQL's holder (local profile): started first, stopped last.
POSTGRES = "postgres"
ADMIN_USER = "admin"


def _secret_file(path: Path, make: str) -> str:
    """Read a secret, creating it (mode 0600) the first time."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(make)
    return path.read_text().strip()


def admin_password(settings: PlatformSettings) -> str:
    """The generated password of the ``admin`` user (created on first use)."""
    path = passwords_file(settings)
    _secret_file(path, json.dumps({ADMIN_USER: secrets.token_urlsafe(12)}) + "\n")
    return str(json.loads(path.read_text())[ADMIN_USER])


def passwords_file(settings: PlatformSettings) -> Path:
    return settings.airflow_home / "passwords.json"


def _fernet_key() -> str:
    import base64

    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def airflow_env(
    settings: PlatformSettings, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment every Airflow component and task of this profile runs with."""
    env = dict(os.environ if base is None else base)
    home = settings.airflow_home
    home.mkdir(parents=True, exist_ok=True)
    url = settings.airflow_url.rstrip("/")
    parts = urlsplit(url)
    admin_password(settings)
    secret_dir = home / "secrets"
    venv_bin = str(Path(sys.executable).parent)
    ours = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.project_root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(settings.project_root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": settings.executor,
        "AIRFLOW__CORE__PARALLELISM": str(max(2, 2 * (os.cpu_count() or 1))),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__FERNET_KEY": _secret_file(secret_dir / "fernet_key", _fernet_key()),
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file(settings)),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_database_url(settings),
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API__HOST": parts.hostname or "localhost",
        "AIRFLOW__API__PORT": str(parts.port or 8080),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__EXPOSE_CONFIG": "False",
        "AIRFLOW__API__SECRET_KEY": _secret_file(
            secret_dir / "api_secret_key", secrets.token_urlsafe(32)
        ),
        "AIRFLOW__API_AUTH__JWT_SECRET": _secret_file(
            secret_dir / "jwt_secret", secrets.token_urlsafe(48)
        ),
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        # A task whose process died with its scheduler (or its machine) stops sending
        # heartbeats; the scheduler fails it after this many seconds and the retry
        # policy takes over. Airflow's 300 s default stalls a backfill for 5 minutes;
        # a live task's supervisor beats every few seconds, even on a loaded machine.
        # An operator's own value (in the environment) is kept.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": env.get(
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT", "120"
        ),
        # After a scheduler crash its queued tasks are orphans the next scheduler resets
        # once the dead one misses its health check (30 s): Airflow looks for them every
        # 300 s by default, so a crash held a day back ~5 minutes; every 60 s here.
        "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": env.get(
            "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL", "60"
        ),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        # Log servers next to the API port, so two Runway homes can run side by side, and
        # on loopback when every component runs here (see runway_mlops.orchestration.log_servers).
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str((parts.port or 8080) + 1),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str((parts.port or 8080) + 2),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_HOST": env.get(
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_HOST",
            "127.0.0.1" if settings.executor == "LocalExecutor" else "",
        ),
        "RUNWAY_CONFIG_DIR": str(settings.config_dir),
        "RUNWAY_PROFILE": settings.profile,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "GX_ANALYTICS_ENABLED": "False",
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "NO_PROXY": "localhost,127.0.0.1",
        "PATH": venv_bin + os.pathsep + env.get("PATH", ""),
    }
    if settings.executor == "CeleryExecutor":
        ours.update(celery_env(settings))
    if settings.s3_endpoint_url:
        ours["MLFLOW_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    ours["SPARK_LOCAL_IP"] = env.get("SPARK_LOCAL_IP", "127.0.0.1")
    env.update(ours)
    # Tasks call load_settings() in their own processes: hand them this exact profile.
    for name in ENV_FIELDS:
        value = settings.home if name == "home" else getattr(settings, name)
        if value is not None:
            env[f"RUNWAY_{name.upper()}"] = str(value)
    env.setdefault("AIRFLOW_CONN_SPARK_DEFAULT", json.dumps(spark_connection(settings)))
    for conn_id, uri in settings.connections.items():
        env.setdefault(f"AIRFLOW_CONN_{conn_id.upper()}", uri)
    return env


def spark_connection(settings: PlatformSettings) -> dict[str, Any]:
    """``spark_default`` for the profile.

    A profile with a Spark Connect endpoint (``spark_connect``, or an ``sc://host:port``
    master) gets a Spark Connect connection (the feature task is a thin client of that
    server); any other a ``spark`` one for ``spark_master`` (spark-submit).
    """
    from runway_mlops.stages.features import connect_address

    if settings.spark_connect_url:
        host, port = connect_address(settings.spark_connect_url)
        return {"conn_type": "spark_connect", "host": host, "port": port}
    return {"conn_type": "spark", "host": settings.spark_master}


def airflow_database_url(settings: PlatformSettings) -> str:
    """The profile's Airflow metadata database.

    ``embedded``: the database ``airflow`` on the home's own PostgreSQL (its Unix
    socket); unset: SQLite in ``airflow_home``; else the URL as given.
    """
    if embedded_postgres.is_embedded(settings):
        return embedded_postgres.url(embedded_postgres.data_dir(settings))
    return settings.airflow_database_url or f"sqlite:///{settings.airflow_home / 'airflow.db'}"


def celery_env(settings: PlatformSettings) -> dict[str, str]:
    """CeleryExecutor settings: Redis broker, results in the Airflow database.

    Each Runway home sends its tasks to its own queue, so two homes sharing one broker
    never take each other's tasks.
    """
    assert settings.celery_broker_url, "validated by the profile"
    return {
        "AIRFLOW__CELERY__BROKER_URL": settings.celery_broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{airflow_database_url(settings)}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(max(2, os.cpu_count() or 1)),
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": celery_queue(settings),
    }


def celery_queue(settings: PlatformSettings) -> str:
    import hashlib

    digest = hashlib.sha256(str(settings.airflow_home).encode()).hexdigest()[:8]
    return f"runway-{settings.profile}-{digest}"


def airflow_bin() -> str:
    """The ``airflow`` executable of this environment."""
    return str(Path(sys.executable).parent / "airflow")


def migrate(settings: PlatformSettings, env: Mapping[str, str]) -> None:
    """Create or upgrade the Airflow metadata database (idempotent)."""
    log = settings.airflow_home / "logs" / "db-migrate.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        done = subprocess.run(
            [airflow_bin(), "db", "migrate"],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode:
        tail = log.read_text()[-2000:]
        raise AirflowStartError(f"`airflow db migrate` failed (log: {log}):\n{tail}")


#: Components a supervisor restarts when they exit; and how often before giving up.
RESTARTABLE = ("scheduler", "dag-processor", "triggerer", "celery-worker", "spark-connect")
MAX_RESTARTS = 3


@dataclass
class AirflowProcesses:
    """The Airflow components this process started; stop them with :meth:`stop`."""

    settings: PlatformSettings
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    commands: dict[str, list[str]] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.settings.airflow_url.rstrip("/")

    def spawn(self, name: str, command: list[str]) -> None:
        """Start one component with its output appended to ``logs/<name>.log``.

        It runs in a new session under a watchdog that ends the session when the
        component exits or this process dies; the home's claim records the session.
        """
        claim = lifecycle.claim_home(self.settings.home)
        log = self.settings.airflow_home / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        self.logs[name] = log
        self.commands[name] = command
        argv, fd = lifecycle.guarded(command)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                pass_fds=(fd,),
            )
        self.processes[name] = proc
        claim.record(name, proc.pid)

    def check_alive(self) -> None:
        """Restart a background component that exited, as a process supervisor would.

        The scheduler exits on some database errors by design and relies on a
        supervisor to start it again; its state is in the database, so a restart loses
        nothing. On SQLite that happened in most long backfills (``ObjectDeletedError``
        when Airflow deleted a backfill's runs after a ``database is locked``, see
        :mod:`runway_mlops.orchestration.embedded_postgres`); on PostgreSQL it should not, and
        :meth:`restart_summary` says how often it did. The API server and the embedded
        PostgreSQL are not restarted: their exit is an error. After ``MAX_RESTARTS``
        restarts of one component, its exit is an error.
        """
        for name, proc in list(self.processes.items()):
            if proc.poll() is None:
                continue
            tail = self.logs[name].read_text(errors="replace")[-3000:]
            restarts = self.restarts.get(name, 0)
            if name in RESTARTABLE and restarts < MAX_RESTARTS:
                self.restarts[name] = restarts + 1
                lifecycle.claim_home(self.settings.home).forget(name, proc.pid)
                print(
                    f"runway: airflow {name} exited with status {proc.returncode}; restarting "
                    f"({restarts + 1}/{MAX_RESTARTS}, log: {self.logs[name]})",
                    flush=True,
                )
                self.spawn(name, self.commands[name])
                continue
            raise AirflowStartError(
                f"airflow {name} exited with status {proc.returncode} "
                f"(log: {self.logs[name]}):\n{tail}"
            )

    def log_tails(self, names: tuple[str, ...], chars: int) -> str:
        """The last ``chars`` characters of some components' logs, for error messages."""
        parts = []
        for name in names:
            log = self.logs.get(name)
            if log is not None and log.exists():
                text = log.read_text(errors="replace")[-chars:]
                parts.append(f"--- {name} ({log}):\n{text}")
        return "\n".join(parts)

    def restart_summary(self) -> str:
        """``scheduler restarts: N`` for each restartable component this process ran."""
        names = [n for n in RESTARTABLE if n in self.commands]
        return ", ".join(f"{n} restarts: {self.restarts.get(n, 0)}" for n in names)

    def stop(self, timeout: float = 60) -> None:
        """Stop every component (the embedded PostgreSQL last); nothing is left running.

        Each watchdog gets SIGTERM, passes it to its component's process group, and
        ends the rest of its session once the component has exited. Whoever is still
        there after ``timeout`` is killed, session and all.
        """
        first = {n: p for n, p in self.processes.items() if n != POSTGRES}
        last = {n: p for n, p in self.processes.items() if n == POSTGRES}
        for group in (first, last):
            self._stop(group, timeout)
        self.processes.clear()

    def _stop(self, procs: dict[str, subprocess.Popen[bytes]], timeout: float) -> None:
        for proc in procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name, proc in procs.items():
            remaining = max(0.1, deadline - time.monotonic())
            try:
                proc.wait(remaining)
            except subprocess.TimeoutExpired:
                lifecycle.signal_session(proc.pid, signal.SIGKILL)
                proc.wait(5)
            # The watchdog has ended its session; a killed one may have left some of it.
            lifecycle.end_session(proc.pid, grace=5)
            lifecycle.claim_home(self.settings.home).forget(name, proc.pid)


def component_commands(settings: PlatformSettings) -> dict[str, list[str]]:
    """How each Airflow component starts; a Celery worker listens on the home's queue."""
    commands = {name: [airflow_bin(), name] for name in COMPONENTS}
    commands["celery-worker"] = [
        airflow_bin(),
        "celery",
        "worker",
        "--queues",
        celery_queue(settings),
        "--concurrency",
        str(max(2, os.cpu_count() or 1)),
        "--celery-hostname",
        f"{celery_queue(settings)}@%h",
    ]
    return commands


def port_in_use(url: str) -> bool:
    import socket

    parts = urlsplit(url)
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((parts.hostname or "localhost", parts.port or 80)) == 0


def start(
    settings: PlatformSettings,
    components: Sequence[str] = COMPONENTS,
    *,
    wait_seconds: float = 180,
) -> AirflowProcesses:
    """Start the embedded PostgreSQL (if the profile uses it), migrate the database, start
    the components and wait until the API answers.

    Claims the profile's home first (:func:`runway_mlops.orchestration.lifecycle.claim_home`).
    """
    lifecycle.claim_home(settings.home)
    if port_in_use(settings.airflow_url):
        raise AirflowStartError(
            f"something already listens on {settings.airflow_url}: stop it (is `make up` "
            "running?) or choose another address with RUNWAY_AIRFLOW_URL"
        )
    running = AirflowProcesses(settings=settings, env=dict(os.environ))
    commands = component_commands(settings)
    if settings.executor == "CeleryExecutor" and "scheduler" in components:
        components = [*components, "celery-worker"]
    try:
        if embedded_postgres.is_embedded(settings):
            start_postgres(running)
        running.env = airflow_env(settings)
        migrate(settings, running.env)
        for name in components:
            running.spawn(name, commands[name])
        if "api-server" in components:
            _wait_healthy(running, wait_seconds)
    except BaseException:
        running.stop()
        raise
    return running


def start_postgres(running: AirflowProcesses) -> None:
    """Start the home's PostgreSQL under ``running`` (or reuse it) and wait until ready."""
    pgdata = embedded_postgres.data_dir(running.settings)
    log = running.settings.airflow_home / "logs" / f"{POSTGRES}.log"
    offset = log.stat().st_size if log.exists() else 0
    running.spawn(POSTGRES, embedded_postgres.holder_command(pgdata))
    deadline = time.monotonic() + embedded_postgres.START_SECONDS
    while True:
        running.check_alive()
        with log.open("rb") as handle:
            handle.seek(offset)
            if embedded_postgres.READY.encode() in handle.read():
                return
        if time.monotonic() > deadline:
            raise AirflowStartError(
                f"the embedded PostgreSQL in {pgdata} was not ready within "
                f"{embedded_postgres.START_SECONDS}s (logs: {log}, {pgdata / 'log'})"
            )
        time.sleep(0.2)


def _wait_healthy(running: AirflowProcesses, wait_seconds: float) -> None:
    import httpx

    deadline = time.monotonic() + wait_seconds
    health = f"{running.url}/api/v2/monitor/health"
    while True:
        running.check_alive()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(health, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise AirflowStartError(
                f"the Airflow API did not answer at {health} within {wait_seconds:.0f}s "
                f"(logs in {running.settings.airflow_home / 'logs'})"
            )
        time.sleep(1)


@contextlib.contextmanager
def running_airflow(settings: PlatformSettings) -> Iterator[AirflowProcesses]:
    """Start every component for the duration of a ``with`` block."""
    procs = start(settings)
    try:
        yield procs
    finally:
        procs.stop()
