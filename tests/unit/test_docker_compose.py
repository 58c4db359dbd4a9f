"""docker/compose.yaml deploys the ``prod`` profile: a static check that the two agree.

No Docker engine runs here, so the deployment files are checked as files: every service
the profile needs exists and is built or pulled; the RUNWAY_* overrides load into valid
``prod`` settings that point at compose services on the ports they listen on; the
buckets and databases the profile names are created; Airflow gets what ``airflow_env``
would give the profile; and no secret is written in the file. Each check is a small
function returning a list of problems, and the last test shows that each rejects a
broken copy of the file.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shlex
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from runway_mlops.config import ENV_FIELDS, PlatformSettings, load_settings
from runway_mlops.orchestration.runtime import airflow_env
from tests.conftest import CONFIG_DIR, ROOT

pytestmark = pytest.mark.unit

DOCKER_DIR = ROOT / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
ENV_EXAMPLE = DOCKER_DIR / ".env.example"
LOCK = ROOT / "requirements" / "runtime.txt"
PROFILE = "prod"

SERVICES = (
    "postgres",
    "redis",
    "minio",
    "minio-init",
    "mlflow",
    "spark-master",
    "spark-worker-1",
    "spark-worker-2",
    "spark-connect",
    "airflow-init",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)
AIRFLOW_SERVICES = tuple(s for s in SERVICES if s.startswith("airflow-"))
HEALTHCHECKED = ("postgres", "redis", "minio", "mlflow", "airflow-api-server")
#: Where tasks run (drivers included) and where Spark executors run: they share staging.
STAGING_USERS = (
    "airflow-worker",
    "airflow-scheduler",
    "spark-worker-1",
    "spark-worker-2",
    "spark-connect",
)
MLFLOW_PACKAGES = ("mlflow", "psycopg2-binary", "boto3")
#: What airflow_env gives a profile that the compose file must give every component too.
AIRFLOW_ENV_KEYS = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__CORE__AUTH_MANAGER",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__API__PORT",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_S3_ENDPOINT_URL",
    "AIRFLOW_CONN_SPARK_DEFAULT",
)
DEFAULT_PORTS = {
    "postgresql": 5432,
    "redis": 6379,
    "http": 80,
    "https": 443,
    "spark": 7077,
    "sc": 15002,
}

SECRET_WORDS = ("PASSWORD", "SECRET", "KEY", "TOKEN")
REQUIRED_REFERENCE = re.compile(r"^\$\{[A-Za-z_]\w*:\?[^}]*\}$")
VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_]\w*)(?:(:?[-?+])([^}]*))?\}")
REQUIRED_VARIABLE = re.compile(r"\$\{([A-Za-z_]\w*):\?")
_PART = r"(?:\$\{[^}]*\}|[^:@/\s${}])"
URL_CREDENTIALS = re.compile(rf"://(?P<user>{_PART}*):(?P<password>(?:{_PART}|:)*)@")
CREATE_DATABASE = re.compile(r"CREATE\s+DATABASE\s+\"?(\w+)\"?", re.IGNORECASE)

Compose = dict[str, Any]


# ----------------------------------------------------------------------------- reading


def load_compose(path: Path = COMPOSE_FILE) -> Compose:
    data: Compose = yaml.safe_load(path.read_text())
    return data


def services(compose: Compose) -> dict[str, dict[str, Any]]:
    return compose.get("services") or {}


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment as written (list or mapping form), values as strings."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and ``$$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.groups()
        if variables.get(name):
            return variables[name]
        if op in (":-", "-"):
            return arg
        if op in (":?", "?"):
            raise AssertionError(f"required variable {name} is not set ({arg})")
        return ""

    return VARIABLE.sub(replace, value)


def dummy_variables(compose: Compose) -> dict[str, str]:
    """A URL-safe stand-in for every required variable of a compose file."""
    names = {n for text in _strings(compose) for n in REQUIRED_VARIABLE.findall(text)}
    return {name: f"dummy{name.lower()}" for name in names}


def resolved_environment(compose: Compose, service: str) -> dict[str, str]:
    variables = dummy_variables(compose)
    env = environment(services(compose)[service])
    return {k: interpolate(v, variables) for k, v in env.items()}


def settings_from(compose: Compose, service: str = "airflow-scheduler") -> PlatformSettings:
    """What ``load_settings`` gives a task running in ``service``."""
    env = resolved_environment(compose, service)
    return load_settings(config_dir=CONFIG_DIR, profile=PROFILE, env=env)


def words(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(w) for w in value] if isinstance(value, list) else shlex.split(str(value))


def option(args: list[str], name: str) -> str | None:
    """The value after ``--name`` in a command line (``--name value`` or ``--name=value``)."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def published_ports(service: Mapping[str, Any]) -> dict[int, int]:
    """Container port -> host port of a service's ``ports``."""
    out = {}
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            target = int(entry["target"])
            out[target] = int(entry.get("published", target))
            continue
        parts = str(entry).split("/")[0].split(":")
        out[int(parts[-1])] = int(parts[-2]) if len(parts) > 1 else int(parts[-1])
    return out


def listen_ports(service: Mapping[str, Any]) -> set[int]:
    exposed = {int(str(p).split("/")[0]) for p in service.get("expose") or []}
    return exposed | set(published_ports(service))


def mounts(service: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each volume of a service; short or long syntax."""
    out = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            out.append((str(entry.get("source", "")), str(entry["target"])))
        else:
            parts = str(entry).split(":")
            out.append((parts[0], parts[1]) if len(parts) > 1 else ("", parts[0]))
    return out


def is_bind(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def lock_versions(path: Path = LOCK) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", path.read_text(), re.MULTILINE)
    return {name.lower(): version for name, version in pins}


def dockerfile_path(compose_dir: Path, build: Any) -> Path:
    if isinstance(build, str):
        return compose_dir / build / "Dockerfile"
    return compose_dir / build.get("context", ".") / build.get("dockerfile", "Dockerfile")


def init_sql(compose: Compose, compose_dir: Path = DOCKER_DIR) -> str:
    """The text of the scripts mounted into postgres's /docker-entrypoint-initdb.d."""
    scripts = [
        compose_dir / source
        for source, target in mounts(services(compose).get("postgres", {}))
        if is_bind(source) and target.startswith("/docker-entrypoint-initdb.d")
    ]
    return "\n".join(p.read_text() for p in scripts if p.is_file())


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


# ------------------------------------------------------------------------------ checks


def check_services(compose: Compose) -> list[str]:
    problems = [
        f"service {name!r} is missing" for name in SERVICES if name not in services(compose)
    ]
    if "version" in compose:
        problems.append("top-level 'version' is obsolete in the Compose specification")
    return problems


def check_images(compose: Compose, compose_dir: Path = DOCKER_DIR) -> list[str]:
    problems = []
    for name, service in services(compose).items():
        build = service.get("build")
        if not service.get("image") and not build:
            problems.append(f"{name}: neither 'image' nor 'build'")
        if not build:
            continue
        dockerfile = dockerfile_path(compose_dir, build)
        if not dockerfile.is_file():
            problems.append(f"{name}: Dockerfile {dockerfile} does not exist")
        extra = (build.get("additional_contexts") or {}) if isinstance(build, dict) else {}
        for context in extra.values():
            ref = str(context).removeprefix("service:")
            if str(context).startswith("service:") and ref not in services(compose):
                problems.append(f"{name}: build context {context!r} names no service")
    return problems


def check_runway_env(compose: Compose, profiles: set[str]) -> list[str]:
    """RUNWAY_* keys are real overrides; every Airflow service runs one existing profile."""
    known = {"RUNWAY_PROFILE", "RUNWAY_CONFIG_DIR"} | {f"RUNWAY_{f.upper()}" for f in ENV_FIELDS}
    problems = []
    runway_envs = {}
    for name, service in services(compose).items():
        env = environment(service)
        ours = {k: v for k, v in env.items() if k.startswith("RUNWAY_")}
        problems += [f"{name}: {k} is not a Runway setting" for k in sorted(set(ours) - known)]
        if ours and ours.get("RUNWAY_PROFILE") != PROFILE:
            problems.append(f"{name}: RUNWAY_PROFILE is {ours.get('RUNWAY_PROFILE')!r}")
        if ours.get("RUNWAY_PROFILE") and ours["RUNWAY_PROFILE"] not in profiles:
            problems.append(f"{name}: profile {ours['RUNWAY_PROFILE']!r} not in platform.yaml")
        if name in AIRFLOW_SERVICES:
            runway_envs[name] = ours
    reference = runway_envs.get("airflow-scheduler")
    for name, ours in runway_envs.items():
        if ours != reference:
            problems.append(f"{name}: RUNWAY_* settings differ from airflow-scheduler's")
    return problems


def _endpoint(compose: Compose, what: str, url: str | None) -> list[str]:
    """``url`` names a compose service and a port that service listens on."""
    if not url:
        return [f"{what} is not set"]
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0]
    port = parts.port or DEFAULT_PORTS.get(scheme)
    service = services(compose).get(parts.hostname or "")
    if service is None:
        return [f"{what} {url!r}: host {parts.hostname!r} is not a compose service"]
    if port not in listen_ports(service):
        ports = sorted(listen_ports(service))
        return [f"{what} {url!r}: {parts.hostname} listens on {ports}, not {port}"]
    return []


def check_settings(settings: PlatformSettings, compose: Compose) -> list[str]:
    problems = []
    if settings.executor != "CeleryExecutor":
        problems.append(f"executor is {settings.executor}, not CeleryExecutor")
    for what in ("lake_uri", "landing_uri"):
        if not str(getattr(settings, what) or "").startswith("s3://"):
            problems.append(f"{what} {getattr(settings, what)!r} is not in S3")
    if not settings.spark_master.startswith("spark://"):
        problems.append(f"spark_master {settings.spark_master!r} is not a spark:// cluster")
    if not settings.spark_connect:
        problems.append("spark_connect is not set: feature jobs would spark-submit")
    for what in (
        "spark_master",
        "spark_connect",
        "mlflow_tracking_uri",
        "database_url",
        "airflow_database_url",
        "mlflow_backend_store_uri",
        "celery_broker_url",
        "s3_endpoint_url",
        "airflow_url",
    ):
        problems += _endpoint(compose, what, getattr(settings, what))
    return problems


def check_airflow_env(compose: Compose, settings: PlatformSettings, home: Path) -> list[str]:
    """Every Airflow service has the values ``airflow_env`` gives the same settings."""
    expected = airflow_env(settings.model_copy(update={"airflow_home": home}), base={})
    problems = []
    for name in AIRFLOW_SERVICES:
        if name not in services(compose):
            continue
        env = resolved_environment(compose, name)
        for key in AIRFLOW_ENV_KEYS:
            got, want = env.get(key), expected.get(key)
            if key.startswith("AIRFLOW_CONN_") and got:
                got, want = json.loads(got), json.loads(str(want))
            if got != want:
                problems.append(f"{name}: {key} is {got!r}; airflow_env gives {want!r}")
        for key in (
            "AIRFLOW__CORE__FERNET_KEY",
            "AIRFLOW__API__SECRET_KEY",
            "AIRFLOW__API_AUTH__JWT_SECRET",
        ):
            if not env.get(key):
                problems.append(f"{name}: {key} is not set (components must share it)")
    return problems


def _bucket(uri: str | None) -> str | None:
    return urlsplit(uri).netloc if uri and uri.startswith("s3://") else None


def check_buckets(settings: PlatformSettings, compose: Compose) -> list[str]:
    args = words(services(compose).get("minio-init", {}).get("command"))
    made = (
        {a.split("/")[1] for a in args[args.index("mb") + 1 :] if "/" in a}
        if "mb" in args
        else set()
    )
    problems = []
    for what in ("landing_uri", "lake_uri", "mlflow_artifacts_destination"):
        bucket = _bucket(getattr(settings, what))
        if bucket and bucket not in made:
            problems.append(f"bucket {bucket!r} of {what} is not created by minio-init")
    return problems


def check_databases(settings: PlatformSettings, sql: str) -> list[str]:
    created = set(CREATE_DATABASE.findall(sql))
    problems = []
    for what in ("database_url", "airflow_database_url", "mlflow_backend_store_uri"):
        url = getattr(settings, what)
        name = urlsplit(url).path.lstrip("/") if url else None
        if name and name not in created:
            problems.append(f"database {name!r} of {what} is not created by the postgres init")
    return problems


def check_mlflow(settings: PlatformSettings, compose: Compose) -> list[str]:
    """The MLflow service runs the server the profile describes."""
    service = services(compose).get("mlflow", {})
    args = words(service.get("command"))
    env = resolved_environment(compose, "mlflow") if service else {}
    backend = option(args, "--backend-store-uri") or env.get("MLFLOW_BACKEND_STORE_URI")
    destination = option(args, "--artifacts-destination") or env.get("MLFLOW_ARTIFACTS_DESTINATION")
    problems = []
    if backend != settings.mlflow_backend_store_uri:
        problems.append(f"mlflow backend store {backend!r} is not the profile's")
    if destination != settings.mlflow_artifacts_destination:
        problems.append(f"mlflow artifacts destination {destination!r} is not the profile's")
    port = option(args, "--port")
    if port is None or int(port) != urlsplit(settings.mlflow_tracking_uri).port:
        problems.append(f"mlflow listens on {port}, the profile's tracking URI says otherwise")
    host = f"{urlsplit(settings.mlflow_tracking_uri).netloc}"
    allowed = (option(args, "--allowed-hosts") or "").split(",")
    if option(args, "--allowed-hosts") and host not in allowed:
        problems.append(f"mlflow --allowed-hosts does not allow {host!r}")
    return problems


def check_command_ports(compose: Compose) -> list[str]:
    """A port a command listens on (--port, --address :N) is the one the service exposes."""
    problems = []
    for name, service in services(compose).items():
        args = words(service.get("command"))
        for flag in ("--port", "--address"):
            value = option(args, flag)
            if value and int(value.rsplit(":", 1)[-1]) not in listen_ports(service):
                problems.append(f"{name}: listens on {value} but exposes {listen_ports(service)}")
    return problems


def check_spark(settings: PlatformSettings, compose: Compose) -> list[str]:
    workers = sorted(n for n in services(compose) if re.fullmatch(r"spark-worker-\d+", n))
    problems = []
    if len(workers) != settings.spark_workers:
        problems.append(
            f"{len(workers)} Spark workers; the profile asks for {settings.spark_workers}"
        )
    for name in workers:
        args = words(services(compose)[name].get("command"))
        if settings.spark_master not in args:
            problems.append(f"{name}: does not join {settings.spark_master}")
        if option(args, "--cores") != str(settings.spark_worker_cores):
            problems.append(f"{name}: --cores is not spark_worker_cores")
        if option(args, "--memory") != settings.spark_worker_memory:
            problems.append(f"{name}: --memory is not spark_worker_memory")
    master = urlsplit(settings.spark_master)
    args = words(services(compose).get(master.hostname or "", {}).get("command"))
    if option(args, "--host") != master.hostname or option(args, "--port") != str(master.port):
        problems.append(f"the Spark master does not listen as {settings.spark_master}")
    connect = urlsplit(settings.spark_connect or "")
    args = words(services(compose).get(connect.hostname or "", {}).get("command"))
    confs = dict(a.split("=", 1) for a in args if "=" in a)
    if "org.apache.spark.sql.connect.service.SparkConnectServer" not in args:
        problems.append(f"{connect.hostname}: is not a Spark Connect server")
    if option(args, "--master") != settings.spark_master:
        problems.append(f"{connect.hostname}: its executors are not {settings.spark_master}'s")
    if confs.get("spark.connect.grpc.binding.port") != str(connect.port):
        problems.append(f"the Spark Connect server does not listen as {settings.spark_connect}")
    return problems


def check_staging(settings: PlatformSettings, compose: Compose) -> list[str]:
    """Drivers and executors see lake staging at the same path on one shared volume."""

    def volume_holding(service: str, path: Path) -> str | None:
        for source, target in mounts(services(compose).get(service, {})):
            if not is_bind(source) and PurePosixPath(path).is_relative_to(target):
                return source
        return None

    problems = []
    sources = {name: volume_holding(name, settings.lake_dir) for name in STAGING_USERS}
    for name, source in sources.items():
        if source is None:
            problems.append(f"{name}: lake_dir {settings.lake_dir} is not on a named volume")
    if len({s for s in sources.values() if s}) > 1:
        problems.append(f"lake_dir is on different volumes: {sources}")
    if volume_holding("airflow-api-server", settings.reports_dir) is None:
        problems.append(f"airflow-api-server: reports_dir {settings.reports_dir} not mounted")
    return problems


def check_secrets(compose: Compose) -> list[str]:
    """Secrets are required variables, never literals: in environments and in URLs."""
    problems = []
    for name, service in services(compose).items():
        for key, value in environment(service).items():
            secret = any(w in key.upper() for w in SECRET_WORDS) and not key.endswith("_FILE")
            if secret and not REQUIRED_REFERENCE.match(value):
                problems.append(f"{name}: {key} is not a ${{VAR:?...}} reference")
    for text in _strings(compose):
        for match in URL_CREDENTIALS.finditer(text):
            if not REQUIRED_REFERENCE.match(match["password"]):
                problems.append(f"a URL carries a literal password: {text!r}")
    return problems


def check_env_example(compose: Compose, example: str) -> list[str]:
    """.env.example lists every required variable, with no value."""
    listed = dict(re.findall(r"^([A-Za-z_]\w*)=(.*)$", example, re.MULTILINE))
    problems = [
        f"{name} is required by compose.yaml but not in .env.example"
        for name in sorted(dummy_variables(compose))
        if name not in listed
    ]
    problems += [f".env.example gives {k} a value" for k, v in listed.items() if v.strip()]
    return problems


def check_volumes(compose: Compose, compose_dir: Path = DOCKER_DIR) -> list[str]:
    declared = set(compose.get("volumes") or {})
    problems = []
    for name, service in services(compose).items():
        for source, _ in mounts(service):
            if is_bind(source) and not (compose_dir / source).exists():
                problems.append(f"{name}: bind mount {source} does not exist")
            elif source and not is_bind(source) and source not in declared:
                problems.append(f"{name}: volume {source!r} is not declared")
    return problems


def check_depends_on(compose: Compose) -> list[str]:
    problems = []
    for name, service in services(compose).items():
        deps = service.get("depends_on") or {}
        deps = dict.fromkeys(deps, {}) if isinstance(deps, list) else deps
        for dep, spec in deps.items():
            target = services(compose).get(dep)
            condition = (spec or {}).get("condition", "service_started")
            if target is None:
                problems.append(f"{name}: depends on {dep!r}, which is not a service")
            elif condition == "service_healthy" and not target.get("healthcheck"):
                problems.append(f"{name}: waits for {dep} to be healthy; it has no healthcheck")
            elif condition == "service_completed_successfully" and target.get("restart") not in (
                None,
                "no",
            ):
                problems.append(f"{name}: waits for {dep} to complete; it restarts")
    return problems


def check_healthchecks(compose: Compose) -> list[str]:
    return [
        f"{name}: no healthcheck"
        for name in HEALTHCHECKED
        if not (services(compose).get(name, {}).get("healthcheck") or {}).get("test")
    ]


def check_api_port(compose: Compose, profile_airflow_url: str) -> list[str]:
    service = services(compose).get("airflow-api-server", {})
    want = urlsplit(profile_airflow_url).port
    listen = int(environment(service).get("AIRFLOW__API__PORT", "8080"))
    published = published_ports(service)
    if published.get(listen) != want:
        return [f"airflow-api-server publishes {published}, not port {want} of airflow_url"]
    return []


def check_mlflow_dockerfile(dockerfile: str, lock: Mapping[str, str]) -> list[str]:
    """MLflow's server packages are installed at the lock's versions (pinned or -c lock)."""
    text = dockerfile.replace("\\\n", " ")
    args = [a for line in text.splitlines() if "pip install" in line for a in shlex.split(line)]
    copies = re.findall(r"^COPY\s+requirements/runtime\.txt\s+(\S+)", text, re.MULTILINE)
    constrained = option(args, "-c") in copies
    problems = []
    for package in MLFLOW_PACKAGES:
        pins = [a for a in args if re.split(r"[=<>~!]", a)[0].lower() == package]
        if not pins:
            problems.append(f"{package} is not installed")
        elif "==" in pins[0] and pins[0].split("==")[1] != lock.get(package):
            problems.append(f"{pins[0]} is not the lock's {package}=={lock.get(package)}")
        elif "==" not in pins[0] and not constrained:
            problems.append(f"{package} is neither pinned nor constrained by the lock")
    return problems


def check_spark_dockerfile(dockerfile: str, compose: Compose, jars: Path | None) -> list[str]:
    """The Spark image is the Runway image, with hadoop-aws for pyspark's Hadoop."""
    problems = []
    base = re.search(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    for name, service in services(compose).items():
        build = service.get("build")
        if not isinstance(build, dict) or build.get("dockerfile") != "docker/spark.Dockerfile":
            continue
        context = (build.get("additional_contexts") or {}).get(base[1] if base else "")
        source = services(compose).get(str(context).removeprefix("service:"), {})
        if (source.get("build") or {}).get("dockerfile") != "docker/Dockerfile":
            problems.append(f"{name}: FROM {base[1] if base else None} is not the Runway image")
    hadoop = re.search(r"^ARG HADOOP_VERSION=(\S+)", dockerfile, re.MULTILINE)
    bundled = sorted(jars.glob("hadoop-client-api-*.jar")) if jars else []
    version = bundled[0].stem.removeprefix("hadoop-client-api-") if bundled else None
    if not hadoop or hadoop[1] != version:
        problems.append(
            f"hadoop-aws {hadoop[1] if hadoop else None} but pyspark has Hadoop {version}"
        )
    return problems


# ------------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def compose() -> Compose:
    return load_compose()


@pytest.fixture(scope="module")
def platform() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CONFIG_DIR / "platform.yaml").read_text())
    return data


@pytest.fixture(scope="module")
def settings(compose: Compose) -> PlatformSettings:
    return settings_from(compose)


def _pyspark_jars() -> Path | None:
    spec = importlib.util.find_spec("pyspark")
    return Path(spec.origin).parent / "jars" if spec and spec.origin else None


def test_compose_has_every_service_and_each_is_built_or_pulled(compose: Compose) -> None:
    assert check_services(compose) == []
    assert check_images(compose) == []


def test_runway_overrides_are_settings_of_the_prod_profile(
    compose: Compose, platform: dict[str, Any]
) -> None:
    assert PROFILE in platform["profiles"]
    assert check_runway_env(compose, set(platform["profiles"])) == []


def test_settings_of_a_task_point_at_compose_services(
    compose: Compose, settings: PlatformSettings
) -> None:
    assert settings.profile == PROFILE
    assert check_settings(settings, compose) == []
    assert check_command_ports(compose) == []


def test_airflow_gets_what_airflow_env_gives_the_profile(
    compose: Compose, settings: PlatformSettings, tmp_path: Path
) -> None:
    assert check_airflow_env(compose, settings, tmp_path) == []


def test_buckets_and_databases_of_the_profile_are_created(
    compose: Compose, settings: PlatformSettings
) -> None:
    assert check_buckets(settings, compose) == []
    assert check_databases(settings, init_sql(compose)) == []


def test_mlflow_and_spark_services_run_what_the_profile_describes(
    compose: Compose, settings: PlatformSettings
) -> None:
    assert check_mlflow(settings, compose) == []
    assert check_spark(settings, compose) == []
    assert check_staging(settings, compose) == []


def test_no_secret_is_written_in_the_deployment_files(compose: Compose) -> None:
    assert check_secrets(compose) == []
    assert check_env_example(compose, ENV_EXAMPLE.read_text()) == []


def test_volumes_dependencies_and_healthchecks_are_declared(compose: Compose) -> None:
    assert check_volumes(compose) == []
    assert check_depends_on(compose) == []
    assert check_healthchecks(compose) == []


def test_api_server_publishes_the_port_of_the_profile_airflow_url(
    compose: Compose, platform: dict[str, Any]
) -> None:
    assert check_api_port(compose, platform["profiles"][PROFILE]["airflow_url"]) == []


def test_images_install_the_locked_versions(compose: Compose) -> None:
    mlflow = (DOCKER_DIR / "mlflow.Dockerfile").read_text()
    assert check_mlflow_dockerfile(mlflow, lock_versions()) == []
    spark = (DOCKER_DIR / "spark.Dockerfile").read_text()
    assert check_spark_dockerfile(spark, compose, _pyspark_jars()) == []


# --------------------------------------------------- each check rejects a broken copy


def _set_env(service: str, key: str, value: str) -> Callable[[Compose], None]:
    def mutate(c: Compose) -> None:
        env = dict(c["services"][service]["environment"])
        env[key] = value
        c["services"][service]["environment"] = env

    return mutate


def _settings_check(check: Callable[[PlatformSettings, Compose], list[str]]):
    return lambda c, _home: check(settings_from(c), c)


_MUTATIONS: list[tuple[str, Callable[[Compose], None], Callable[[Compose, Path], list[str]]]] = [
    (
        "service without image or build",
        lambda c: c["services"]["redis"].pop("image"),
        lambda c, _: check_images(c),
    ),
    (
        "build with a missing Dockerfile",
        lambda c: c["services"]["mlflow"]["build"].update(dockerfile="docker/nope.Dockerfile"),
        lambda c, _: check_images(c),
    ),
    (
        "missing service",
        lambda c: c["services"].pop("spark-worker-2"),
        lambda c, _: check_services(c),
    ),
    ("obsolete version key", lambda c: c.update(version="3.8"), lambda c, _: check_services(c)),
    (
        "misspelt RUNWAY_ override",
        _set_env("airflow-worker", "RUNWAY_LAKE_DIRR", "/data"),
        lambda c, _: check_runway_env(c, {"prod"}),
    ),
    (
        "unknown profile",
        _set_env("airflow-worker", "RUNWAY_PROFILE", "staging"),
        lambda c, _: check_runway_env(c, {"prod"}),
    ),
    (
        "Airflow service without the Runway settings",
        lambda c: c["services"]["airflow-triggerer"].update(environment={}),
        lambda c, _: check_runway_env(c, {"prod"}),
    ),
    (
        "MLflow without a healthcheck",
        lambda c: c["services"]["mlflow"].pop("healthcheck"),
        lambda c, _: check_healthchecks(c),
    ),
    (
        "a command listening on a port the service does not expose",
        lambda c: c["services"]["mlflow"].update(
            command=[("5051" if a == "5050" else a) for a in c["services"]["mlflow"]["command"]]
        ),
        lambda c, _: check_command_ports(c),
    ),
    (
        "Spark worker with other cores than the profile",
        lambda c: c["services"].update(
            {
                "spark-worker-1": {
                    **c["services"]["spark-worker-1"],
                    "command": [
                        ("2" if a == "1" else a) for a in c["services"]["spark-worker-1"]["command"]
                    ],
                }
            }
        ),
        _settings_check(check_spark),
    ),
    (
        "Spark Connect server on another port than the profile's",
        lambda c: c["services"]["spark-connect"].update(
            command=[
                a.replace("port=15002", "port=15003")
                for a in c["services"]["spark-connect"]["command"]
            ]
        ),
        _settings_check(check_spark),
    ),
    (
        "literal password in an environment",
        _set_env("postgres", "POSTGRES_PASSWORD", "hunter2"),
        lambda c, _: check_secrets(c),
    ),
    (
        "literal password in a URL",
        _set_env(
            "airflow-worker",
            "RUNWAY_DATABASE_URL",
            "postgresql+psycopg2://runway:hunter2@postgres:5432/runway",
        ),
        lambda c, _: check_secrets(c),
    ),
    (
        "undeclared volume",
        lambda c: c["volumes"].pop("minio-data"),
        lambda c, _: check_volumes(c),
    ),
    (
        "dependency on a missing service",
        lambda c: c["services"]["airflow-worker"]["depends_on"].update(
            rabbitmq={"condition": "service_started"}
        ),
        lambda c, _: check_depends_on(c),
    ),
    (
        "waiting for health without a healthcheck",
        lambda c: c["services"]["redis"].pop("healthcheck"),
        lambda c, _: check_depends_on(c),
    ),
    (
        "api server on another port",
        lambda c: c["services"]["airflow-api-server"].update(ports=["8080:8090"]),
        lambda c, _: check_api_port(c, "http://localhost:8090"),
    ),
    (
        "bucket not created",
        lambda c: c["services"]["minio-init"]["command"].remove("runway/runway-lake"),
        _settings_check(check_buckets),
    ),
    (
        "Spark master outside compose",
        _set_env("airflow-scheduler", "RUNWAY_SPARK_MASTER", "spark://127.0.0.1:7077"),
        _settings_check(check_settings),
    ),
    (
        "MLflow tracking URI on a port MLflow does not listen on",
        _set_env("airflow-scheduler", "RUNWAY_MLFLOW_TRACKING_URI", "http://mlflow:5000"),
        _settings_check(check_settings),
    ),
    (
        "LocalExecutor for Airflow",
        _set_env("airflow-worker", "AIRFLOW__CORE__EXECUTOR", "LocalExecutor"),
        lambda c, home: check_airflow_env(c, settings_from(c), home),
    ),
    (
        "staging not shared with a Spark worker",
        lambda c: c["services"].update({"spark-worker-2": {"image": "runway-spark"}}),
        _settings_check(check_staging),
    ),
    (
        "MLflow artifacts in another bucket",
        lambda c: c["services"]["mlflow"].update(
            command=["server", "--artifacts-destination", "s3://other", "--port", "5050"]
        ),
        _settings_check(check_mlflow),
    ),
]


@pytest.mark.parametrize(
    ("mutate", "check"), [m[1:] for m in _MUTATIONS], ids=[m[0] for m in _MUTATIONS]
)
def test_checks_reject_a_broken_compose_file(
    compose: Compose,
    mutate: Callable[[Compose], None],
    check: Callable[[Compose, Path], list[str]],
    tmp_path: Path,
) -> None:
    broken = copy.deepcopy(compose)
    assert check(broken, tmp_path) == []
    mutate(broken)
    assert check(broken, tmp_path) != []


def test_file_checks_reject_broken_files(compose: Compose, settings: PlatformSettings) -> None:
    sql = init_sql(compose).replace("CREATE DATABASE runway_mlflow;", "")
    assert check_databases(settings, sql) != []
    example = ENV_EXAMPLE.read_text().replace("AIRFLOW_JWT_SECRET=\n", "AIRFLOW_JWT_SECRET=abc\n")
    assert check_env_example(compose, example) != []
    assert check_env_example(compose, "") != []
    lock = {**lock_versions(), "mlflow": "0.0.1"}
    pinned = "RUN pip install mlflow==3.17.2 psycopg2-binary==2.9.13 boto3==1.44.5\n"
    assert check_mlflow_dockerfile(pinned, lock) != []
    assert check_mlflow_dockerfile("RUN pip install mlflow psycopg2-binary boto3\n", lock) != []
    spark = (DOCKER_DIR / "spark.Dockerfile").read_text()
    assert check_spark_dockerfile(spark.replace("=3.5.0", "=3.3.4"), compose, _pyspark_jars())
    assert check_spark_dockerfile(
        spark.replace("FROM runway-airflow", "FROM python"), compose, _pyspark_jars()
    )
