"""Start what a profile needs besides Airflow: an MLflow server, a Spark standalone cluster.

``runway up`` brings a profile up on this machine (``make up`` the embedded one,
``make prod`` the ``prod`` profile): it checks the
services it expects to be running (PostgreSQL, Redis, S3), creates the databases and
buckets named in the profile when they are missing, starts the MLflow tracking server
(``mlflow_backend_store_uri`` set: PostgreSQL backend, artifacts proxied to S3) and a
Spark standalone master with ``spark_workers`` workers (``spark://`` master), then
Airflow with the profile's executor (Celery workers included).

Everything it started is stopped when it stops — Ctrl-C (SIGINT), SIGTERM, SIGHUP (its
terminal closed) or the death of the process that started it (checked every two
seconds) — and, should it be SIGKILLed, by each component's watchdog within seconds
(:mod:`runway_mlops.orchestration.lifecycle`). It claims the profile's home: a second ``runway up``
on the same home is refused while the first runs, and what a killed one left behind is
stopped before starting anew. Nothing it did not start is touched.

On the embedded ``local`` profile none of the extra services apply: it is Airflow and
its PostgreSQL (:mod:`runway_mlops.orchestration.embedded_postgres`).
``--s3-emulator`` runs moto's S3 server at a loopback ``s3_endpoint_url`` where MinIO
would be in a deployment (``make prod`` uses it; this machine has no MinIO).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from runway_mlops.config import PlatformSettings
from runway_mlops.errors import ServiceError
from runway_mlops.orchestration import lifecycle
from runway_mlops.orchestration import runtime as airflow_runtime
from runway_mlops.orchestration.runtime import AirflowProcesses
from runway_mlops.stages.features import SPARK_CONF, connect_address, is_connect

# --------------------------------------------------------------------- what must exist


def _postgres_urls(settings: PlatformSettings) -> list[str]:
    urls = [
        settings.database_url,
        settings.airflow_database_url,
        settings.mlflow_backend_store_uri,
    ]
    return [u for u in urls if u and u.startswith("postgresql")]


def ensure_databases(settings: PlatformSettings) -> list[str]:
    """Create the profile's PostgreSQL databases that do not exist; return their names."""
    from runway_mlops.errors import SourceUnavailableError
    from runway_mlops.sample.seed import ensure_database

    created = []
    for url in _postgres_urls(settings):
        parts = urlsplit(url.replace("postgresql+psycopg2://", "postgresql://"))
        name = parts.path.lstrip("/")
        try:
            if ensure_database(parts.geturl()):
                created.append(name)
        except SourceUnavailableError as exc:
            where = f"{parts.hostname}:{parts.port or 5432}"
            raise ServiceError(
                f"PostgreSQL at {where} is not reachable for database {name!r} ({exc}); "
                "start it, or set the profile's URL"
            ) from None
    return created


#: Secrets that ship in quick starts and examples (MinIO, moto, Airflow, PostgreSQL images).
KNOWN_DEFAULT_SECRETS = frozenset(
    {
        "",
        "admin",
        "airflow",
        "changeme",
        "minio123",
        "minioadmin",
        "password",
        "postgres",
        "secret",
        "test",
        "testing",
    }
)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _on_this_machine(url: str | None) -> bool:
    return bool(url) and urlsplit(url or "").hostname in _LOOPBACK


def check_secrets(settings: PlatformSettings, env: dict[str, str] | None = None) -> None:
    """Refuse to start services reachable beyond this machine with empty or default secrets.

    Every service URL of the profile (databases, broker, MLflow backend) on another host
    needs a password that is not a known default; S3 keys must not be defaults unless the
    endpoint is on this machine (MinIO or the emulator for a single-machine setup); an
    Airflow Fernet key given in the environment must not be empty. Services on loopback
    without a password are this machine's trust-auth PostgreSQL and Redis: allowed.
    Raises naming each offending setting (never its value).
    """
    env = dict(os.environ if env is None else env)
    problems = []
    urls = {
        "database_url": settings.database_url,
        "airflow_database_url": settings.airflow_database_url,
        "mlflow_backend_store_uri": settings.mlflow_backend_store_uri,
        "celery_broker_url": settings.celery_broker_url,
        **{f"connections.{k}": v for k, v in settings.connections.items()},
    }
    for name, url in urls.items():
        if not url or "://" not in url or url.startswith("sqlite") or _on_this_machine(url):
            continue
        if (urlsplit(url).password or "") in KNOWN_DEFAULT_SECRETS:
            problems.append(
                f"{name}: a service on {urlsplit(url).hostname} with an empty or default password"
            )
    if _buckets(settings) and not _on_this_machine(settings.s3_endpoint_url):
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            if env.get(key, "") in KNOWN_DEFAULT_SECRETS:
                problems.append(f"{key}: empty or a default, for S3 beyond this machine")
    if "AIRFLOW__CORE__FERNET_KEY" in env and not env["AIRFLOW__CORE__FERNET_KEY"].strip():
        problems.append("AIRFLOW__CORE__FERNET_KEY: set but empty (unset it to generate one)")
    if problems:
        raise ServiceError(
            f"profile {settings.profile!r} refused to start with weak secrets: "
            + "; ".join(problems)
            + ". Set real credentials in the environment or Airflow connections."
        )


def _buckets(settings: PlatformSettings) -> list[str]:
    uris = [settings.landing_uri, settings.lake_uri, settings.mlflow_artifacts_destination]
    names = [u.removeprefix("s3://").split("/", 1)[0] for u in uris if u and u.startswith("s3://")]
    return sorted(set(names))


def ensure_buckets(settings: PlatformSettings) -> list[str]:
    """Create the profile's S3 buckets that do not exist; return their names."""
    names = _buckets(settings)
    if not names:
        return []
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    if not (os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")):
        raise ServiceError(
            f"profile {settings.profile!r} keeps data in S3 ({', '.join(names)}): set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"
        )
    client = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    )
    created = []
    try:
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for name in names:
            if name not in existing:
                client.create_bucket(Bucket=name)
                created.append(name)
    except (BotoCoreError, ClientError) as exc:
        where = settings.s3_endpoint_url or "AWS"
        raise ServiceError(f"S3 at {where} is not usable: {exc}") from None
    return created


def check_broker(settings: PlatformSettings) -> None:
    if settings.executor != "CeleryExecutor" or not settings.celery_broker_url:
        return
    parts = urlsplit(settings.celery_broker_url)
    if not listening(parts.hostname or "127.0.0.1", parts.port or 6379):
        raise ServiceError(
            f"the Celery broker {parts.hostname}:{parts.port or 6379} does not answer "
            "(CeleryExecutor needs Redis running)"
        )


def listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


# --------------------------------------------------------------------- what we start


def _wait_port(procs: AirflowProcesses, name: str, host: str, port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not listening(host, port):
        procs.check_alive()
        if time.monotonic() > deadline:
            raise ServiceError(
                f"{name} did not listen on {host}:{port} within {seconds:.0f}s "
                f"(log: {procs.logs.get(name)})"
            )
        time.sleep(0.5)


def _free_address(url: str, default_port: int, setting: str) -> tuple[str, int]:
    """Host and port of ``url``, where a service of ours is about to listen; refuse if taken."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    if listening(host, port):
        raise ServiceError(
            f"something already listens on {host}:{port}, where this profile's {setting} "
            f"points: stop it or change {setting}"
        )
    return host, port


def mlflow_server_command(settings: PlatformSettings) -> list[str]:
    parts = urlsplit(settings.mlflow_tracking_uri)
    binary = str(Path(airflow_runtime.airflow_bin()).with_name("mlflow"))
    assert settings.mlflow_backend_store_uri and settings.mlflow_artifacts_destination
    return [
        binary,
        "server",
        "--backend-store-uri",
        settings.mlflow_backend_store_uri,
        "--artifacts-destination",
        settings.mlflow_artifacts_destination,
        "--serve-artifacts",
        "--host",
        parts.hostname or "127.0.0.1",
        "--port",
        str(parts.port or 5000),
        "--workers",
        "1",
    ]


def spark_commands(settings: PlatformSettings) -> dict[str, list[str]]:
    """``spark-class`` command lines of the master and each worker (no web UI ports fixed)."""
    import pyspark

    spark_class = str(Path(pyspark.__file__).parent / "bin" / "spark-class")
    parts = urlsplit(settings.spark_master)
    host, port = parts.hostname or "127.0.0.1", parts.port or 7077
    commands = {
        "spark-master": [
            spark_class,
            "org.apache.spark.deploy.master.Master",
            "--host",
            host,
            "--port",
            str(port),
            "--webui-port",
            "0",
        ]
    }
    for n in range(1, settings.spark_workers + 1):
        commands[f"spark-worker-{n}"] = [
            spark_class,
            "org.apache.spark.deploy.worker.Worker",
            "--cores",
            str(settings.spark_worker_cores),
            "--memory",
            settings.spark_worker_memory,
            "--webui-port",
            "0",
            "--work-dir",
            str(settings.home / "spark-work" / f"worker-{n}"),
            settings.spark_master,
        ]
    return commands


def spark_connect_command(url: str, master: str = "local[*]") -> list[str]:
    """The command line of a Spark Connect server listening at ``url`` (``sc://host:port``).

    pyspark ships the server (``spark-connect_*.jar``); it runs ``master``'s executors
    (``local[*]`` here, a ``spark://`` cluster on ``prod``) in one long-lived JVM, so a
    feature job is a thin client that opens in well under a second.
    """
    import pyspark

    if not is_connect(url):
        raise ServiceError(f"a Spark Connect endpoint is sc://host:port (got {url!r})")
    host, port = connect_address(url)
    conf = {
        **SPARK_CONF,
        "spark.connect.grpc.binding.address": host,
        "spark.connect.grpc.binding.port": str(port),
    }
    command = [
        str(Path(pyspark.__file__).parent / "bin" / "spark-submit"),
        "--master",
        master,
        "--class",
        "org.apache.spark.sql.connect.service.SparkConnectServer",
        "--name",
        "runway-spark-connect",
    ]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    return [*command, "spark-internal"]


def s3_emulator_command(settings: PlatformSettings) -> list[str]:
    """moto's S3 server at the profile's (loopback) endpoint: a stand-in for MinIO."""
    import sys

    parts = urlsplit(settings.s3_endpoint_url or "")
    if parts.hostname not in ("127.0.0.1", "localhost") or not parts.port:
        raise ServiceError(
            f"--s3-emulator runs S3 on this machine only: s3_endpoint_url must be "
            f"http://127.0.0.1:PORT (got {settings.s3_endpoint_url!r})"
        )
    return [sys.executable, "-m", "moto.server", "-H", parts.hostname, "-p", str(parts.port)]


def start_services(
    settings: PlatformSettings, env: dict[str, str], *, s3_emulator: bool = False
) -> AirflowProcesses:
    """Start the MLflow server and the Spark cluster the profile asks for.

    With ``s3_emulator``, moto's S3 server is started at the profile's loopback
    ``s3_endpoint_url`` first, unless something already answers there.
    """
    procs = AirflowProcesses(settings=settings, env=env)
    try:
        if s3_emulator:
            command = s3_emulator_command(settings)
            host, port = command[-3], int(command[-1])
            if not listening(host, port):
                procs.spawn("s3-emulator", command)
                _wait_port(procs, "s3-emulator", host, port, 60)
        ensure_buckets(settings)
        if settings.mlflow_backend_store_uri:
            host, port = _free_address(settings.mlflow_tracking_uri, 5000, "mlflow_tracking_uri")
            procs.spawn("mlflow-server", mlflow_server_command(settings))
            _wait_port(procs, "mlflow-server", host, port, 120)
        if settings.spark_cluster:
            host, port = _free_address(settings.spark_master, 7077, "spark_master")
            commands = spark_commands(settings)
            procs.spawn("spark-master", commands.pop("spark-master"))
            _wait_port(procs, "spark-master", host, port, 120)
            for name, command in commands.items():
                Path(command[command.index("--work-dir") + 1]).mkdir(parents=True, exist_ok=True)
                procs.spawn(name, command)
            _wait_workers(procs, settings)
        if settings.spark_connect_url:
            start_spark_connect(procs, settings)
    except BaseException:
        procs.stop()
        raise
    return procs


def start_spark_connect(
    procs: AirflowProcesses, settings: PlatformSettings, *, wait: bool = True
) -> bool:
    """Start the profile's Spark Connect server under ``procs``, if it is on this machine
    and nothing answers there yet; ``wait``: until it listens. True if started here.

    Its server (in front of the profile's cluster, or ``local[*]``) is then one of the
    profile's services, supervised (restarted when it dies) like Airflow's components.
    """
    url = settings.spark_connect_url
    if not url:
        return False
    host, port = connect_address(url)
    if host not in _LOOPBACK or listening(host, port):
        return False
    procs.spawn("spark-connect", spark_connect_command(url, settings.spark_connect_master))
    if wait:
        wait_spark_connect(procs, settings)
    return True


def wait_spark_connect(procs: AirflowProcesses, settings: PlatformSettings) -> None:
    """Wait until the profile's Spark Connect server listens (a dead one is restarted)."""
    host, port = connect_address(settings.spark_connect_url or "")
    _wait_port(procs, "spark-connect", host, port, 120)


def _wait_workers(
    procs: AirflowProcesses, settings: PlatformSettings, seconds: float = 120
) -> None:
    """Wait until every worker has registered with the master (its log says so)."""
    deadline = time.monotonic() + seconds
    names = [n for n in procs.logs if n.startswith("spark-worker-")]
    while True:
        procs.check_alive()
        pending = [
            n
            for n in names
            if "Successfully registered with master"
            not in procs.logs[n].read_text(errors="replace")
        ]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise ServiceError(
                f"Spark workers {', '.join(pending)} did not register with "
                f"{settings.spark_master} within {seconds:.0f}s (logs: {procs.logs[pending[0]]})"
            )
        time.sleep(0.5)


@dataclass
class Platform:
    """What ``running_platform`` started: Airflow's components and the services."""

    airflow: AirflowProcesses
    services: AirflowProcesses

    def process_groups(self) -> dict[str, int]:
        """Name -> process group id of everything started (each runs in its own group)."""
        procs = {**self.services.processes, **self.airflow.processes}
        return {name: proc.pid for name, proc in procs.items()}

    def check_alive(self) -> None:
        self.services.check_alive()
        self.airflow.check_alive()


@contextlib.contextmanager
def running_platform(
    settings: PlatformSettings, *, s3_emulator: bool = False
) -> Iterator[Platform]:
    """The profile's services and Airflow for the duration of a ``with`` block.

    The services are stopped after Airflow on the way out. The home is claimed first:
    refused if another Runway process runs it, cleaned of what a dead one left.
    """
    lifecycle.claim_home(settings.home, "`runway up`")
    check_secrets(settings)
    check_broker(settings)
    ensure_databases(settings)
    env = airflow_runtime.airflow_env(settings)
    services = start_services(settings, env, s3_emulator=s3_emulator)
    try:
        with airflow_runtime.running_airflow(settings) as airflow:
            yield Platform(airflow=airflow, services=services)
    finally:
        services.stop()


class _Stop(BaseException):
    """``runway up`` was asked to stop by a signal (a BaseException, like Ctrl-C's)."""


def _stop_on(signum: int, frame: object) -> None:
    # From here on a second Ctrl-C or SIGTERM must not cut the cleanup short.
    _ignore_stop_signals()
    raise _Stop(f"{signal.Signals(signum).name} received")


def _ignore_stop_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)


def serve(settings: PlatformSettings, *, s3_emulator: bool = False) -> int:
    """``runway up``: start the profile's services and Airflow until asked to stop.

    SIGINT (Ctrl-C), SIGTERM and SIGHUP stop everything started here, and so does the
    death of the process that started this one (e.g. ``make``, a test harness).
    """
    parent = os.getppid()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_on)
    extra = []
    if s3_emulator:
        extra.append("S3 emulator")
    if settings.mlflow_backend_store_uri:
        extra.append("MLflow server")
    if settings.spark_cluster:
        extra.append(f"Spark master + {settings.spark_workers} workers")
    if settings.spark_connect_url:
        extra.append(f"Spark Connect server at {settings.spark_connect_url}")
    print(
        f"Starting profile {settings.profile!r}: "
        + ", ".join([*extra, f"Airflow ({settings.executor})"])
        + f" in {settings.home} ...",
        flush=True,
    )
    try:
        with running_platform(settings, s3_emulator=s3_emulator) as platform:
            print(describe(settings, platform.airflow), flush=True)
            try:
                while os.getppid() == parent:
                    platform.check_alive()
                    time.sleep(2)
                why = "the process that started `runway up` is gone"
            except _Stop as stop:
                why = str(stop)
            _ignore_stop_signals()
            print(f"\nrunway: {why}; stopping everything started in {settings.home} ...")
    except _Stop as stop:
        print(f"\nrunway: {stop} while starting; stopped what was started", flush=True)
        return 0
    print(f"runway: stopped everything started in {settings.home}", flush=True)
    return 0


def _metadata_where(settings: PlatformSettings) -> str:
    from runway_mlops.orchestration import embedded_postgres

    if embedded_postgres.is_embedded(settings):
        pgdata = embedded_postgres.data_dir(settings)
        return f"PostgreSQL in {pgdata} (log {pgdata / 'log'})"
    url = airflow_runtime.airflow_database_url(settings)
    return url if url.startswith("sqlite") else urlsplit(url)._replace(netloc="").geturl()


def describe(settings: PlatformSettings, airflow: AirflowProcesses) -> str:
    lines = [
        f"\nProfile {settings.profile!r} is up:",
        f"  Airflow:  {airflow.url}  ({settings.executor}; login {airflow_runtime.ADMIN_USER} / "
        f"{airflow_runtime.admin_password(settings)}, kept in "
        f"{airflow_runtime.passwords_file(settings)})",
        f"  MLflow:   {settings.mlflow_tracking_uri}",
        f"  Spark:    {settings.spark_master}"
        + (f" ({settings.spark_workers} workers)" if settings.spark_cluster else "")
        + (
            f", jobs through Spark Connect at {settings.spark_connect_url}"
            if settings.spark_connect_url and settings.spark_connect_url != settings.spark_master
            else ""
        ),
        f"  lake:     {settings.lake_uri or settings.lake_dir}",
        f"  landing:  {settings.landing_uri}",
        f"  validation reports: {airflow.url}/runway/reports/ (also under Browse in the UI)",
        f"  model monitoring:   {airflow.url}/runway/monitoring/ (Browse → Model monitoring)",
        f"  logs:     {settings.airflow_home / 'logs'}",
        f"  Airflow metadata: {_metadata_where(settings)}",
        "Press Ctrl-C to stop everything started here (SIGTERM and SIGHUP do the same).",
    ]
    return "\n".join(lines)
