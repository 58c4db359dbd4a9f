"""The Airflow environment Runway starts, and how tasks map runs onto partitions."""

from __future__ import annotations

import datetime as dt
import json
import stat

import pendulum
import pytest

from runway_mlops.cadence import partition_day
from runway_mlops.orchestration.runtime import (
    admin_password,
    airflow_env,
    component_commands,
    passwords_file,
)
from tests.conftest import CONFIG_DIR


@pytest.mark.parametrize(
    ("start_utc", "day"),
    [
        ("2013-01-05T05:00:00+00:00", dt.date(2013, 1, 5)),  # EST midnight
        ("2013-03-10T05:00:00+00:00", dt.date(2013, 3, 10)),  # the day DST starts
        ("2013-03-11T04:00:00+00:00", dt.date(2013, 3, 11)),  # EDT midnight
        ("2013-11-03T04:00:00+00:00", dt.date(2013, 11, 3)),  # the day DST ends
    ],
)
def test_partition_day_is_the_local_day_the_interval_starts(start_utc: str, day: dt.date) -> None:
    start = pendulum.parse(start_utc)
    assert partition_day(start, "America/New_York") == day


def test_partition_day_refuses_naive_or_missing_interval() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        partition_day(dt.datetime(2013, 1, 5), "America/New_York")
    with pytest.raises(ValueError, match="no data interval"):
        partition_day(None, "UTC")


def test_environment_points_airflow_at_the_project(settings) -> None:
    env = airflow_env(settings, base={"PATH": "/usr/bin"})
    assert env["AIRFLOW_HOME"] == str(settings.airflow_home)
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(settings.project_root / "dags")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(settings.project_root / "plugins")
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("SimpleAuthManager")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://localhost:8080/execution/"
    assert json.loads(env["AIRFLOW_CONN_SPARK_DEFAULT"]) == {
        "conn_type": "spark",
        "host": "local[*]",
    }
    assert env["AIRFLOW_CONN_RUNWAY_SOURCE"] == settings.connections["runway_source"]
    assert env["RUNWAY_CONFIG_DIR"] == str(settings.config_dir)


def test_a_connect_master_makes_spark_default_a_spark_connect_connection(settings) -> None:
    from airflow.models.connection import Connection
    from airflow.providers.apache.spark.hooks.spark_connect import SparkConnectHook

    from runway_mlops.errors import ServiceError
    from runway_mlops.programs.services import spark_connect_command

    remote = settings.model_copy(update={"spark_master": "sc://127.0.0.1:15002"})
    conn = json.loads(airflow_env(remote, base={})["AIRFLOW_CONN_SPARK_DEFAULT"])
    assert conn == {"conn_type": "spark_connect", "host": "127.0.0.1", "port": 15002}
    # The provider's hook reads it back as the endpoint the feature task connects to.
    parsed = Connection(conn_id="spark_default", **conn)
    assert parsed.conn_type == SparkConnectHook.conn_type
    # The server command binds exactly there, on loopback.
    command = spark_connect_command("sc://127.0.0.1:15002")
    assert "org.apache.spark.sql.connect.service.SparkConnectServer" in command
    assert "spark.connect.grpc.binding.address=127.0.0.1" in command
    assert "spark.connect.grpc.binding.port=15002" in command
    with pytest.raises(ServiceError, match="sc://host:port"):
        spark_connect_command("local[*]")


def test_a_connect_server_in_front_of_a_cluster_is_what_feature_jobs_use() -> None:
    """The ``prod`` profile: ``spark_connect`` in front of the standalone cluster."""
    from runway_mlops.config import load_settings

    prod = load_settings(CONFIG_DIR, env={"RUNWAY_PROFILE": "prod"})
    assert prod.spark_master.startswith("spark://") and prod.spark_cluster
    assert prod.spark_connect_url == prod.spark_engine == "sc://127.0.0.1:15002"
    assert prod.spark_connect_master == prod.spark_master  # the server's executors
    conn = json.loads(airflow_env(prod, base={})["AIRFLOW_CONN_SPARK_DEFAULT"])
    assert conn == {"conn_type": "spark_connect", "host": "127.0.0.1", "port": 15002}
    # Without it, each feature job is a spark-submit to the cluster.
    submit = prod.model_copy(update={"spark_connect": None})
    assert submit.spark_connect_url is None and submit.spark_engine == prod.spark_master
    conn = json.loads(airflow_env(submit, base={})["AIRFLOW_CONN_SPARK_DEFAULT"])
    assert conn == {"conn_type": "spark", "host": prod.spark_master}


def test_the_demo_brings_a_connect_server_to_a_local_profile(settings) -> None:
    """``runway demo`` on embedded defaults: its feature tasks are clients of a server of
    its own on a free loopback port; a profile with an endpoint or a cluster keeps it."""
    from runway_mlops.programs.demo import with_spark_connect

    assert settings.spark_master.startswith("local") and settings.spark_connect_url is None
    demo = with_spark_connect(settings)
    assert demo.spark_connect_url is not None
    assert demo.spark_connect_url.startswith("sc://127.0.0.1:")
    assert demo.spark_connect_master == settings.spark_master  # local[*] executors
    env = airflow_env(demo, base={})
    assert env["RUNWAY_SPARK_CONNECT"] == demo.spark_connect_url  # what tasks load
    assert json.loads(env["AIRFLOW_CONN_SPARK_DEFAULT"])["conn_type"] == "spark_connect"
    assert with_spark_connect(demo) is demo
    cluster = settings.model_copy(update={"spark_master": "spark://127.0.0.1:7077"})
    assert with_spark_connect(cluster) is cluster


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RUNWAY_SPARK_CONNECT": "spark://127.0.0.1:7077"}, "spark_connect must be sc://"),
        (
            {"RUNWAY_SPARK_MASTER": "sc://127.0.0.1:1", "RUNWAY_SPARK_CONNECT": "sc://h:2"},
            "spark_master is already a Spark Connect endpoint",
        ),
    ],
)
def test_a_bad_spark_connect_setting_is_named(tmp_path, env, message) -> None:
    from runway_mlops.config import load_settings
    from runway_mlops.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_settings(CONFIG_DIR, env={"RUNWAY_HOME": str(tmp_path), **env})


def test_caller_environment_wins_for_connections(settings) -> None:
    env = airflow_env(settings, base={"AIRFLOW_CONN_SPARK_DEFAULT": "spark://cluster:7077"})
    assert env["AIRFLOW_CONN_SPARK_DEFAULT"] == "spark://cluster:7077"


def test_secrets_are_generated_once_private_and_stable(settings) -> None:
    first = airflow_env(settings, base={})
    second = airflow_env(settings, base={})
    for key in (
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
        "AIRFLOW__CORE__FERNET_KEY",
    ):
        assert first[key] == second[key]
        assert len(first[key]) >= 32
    password = admin_password(settings)
    assert len(password) >= 12 and password == admin_password(settings)
    mode = stat.S_IMODE(passwords_file(settings).stat().st_mode)
    assert mode == 0o600
    assert str(settings.airflow_home).startswith(str(settings.home))


def test_another_home_gets_other_secrets(settings, tmp_path) -> None:
    from runway_mlops.config import load_settings
    from tests.conftest import CONFIG_DIR

    other = load_settings(CONFIG_DIR, env={"RUNWAY_HOME": str(tmp_path / "other")})
    assert admin_password(other) != admin_password(settings)


def test_tasks_inherit_the_exact_profile(settings) -> None:
    """A task process calling load_settings() with this environment sees the same settings."""
    from runway_mlops.config import load_settings

    env = airflow_env(settings, base={})
    runway_env = {k: v for k, v in env.items() if k.startswith("RUNWAY_")}
    assert load_settings(env=runway_env) == settings


def test_a_crashed_scheduler_is_restarted_then_given_up(settings) -> None:
    """A supervisor restarts the scheduler (state lives in the database); not forever."""
    from runway_mlops.errors import AirflowStartError
    from runway_mlops.orchestration.runtime import MAX_RESTARTS, AirflowProcesses

    running = AirflowProcesses(settings=settings, env={"PATH": "/usr/bin:/bin"})
    try:
        running.spawn("scheduler", ["sleep", "60"])
        running.spawn("api-server", ["sleep", "60"])
        for attempt in range(1, MAX_RESTARTS + 1):
            first = running.processes["scheduler"]
            first.kill()
            first.wait()
            running.check_alive()
            assert running.processes["scheduler"].pid != first.pid
            assert running.processes["scheduler"].poll() is None
            assert running.restarts["scheduler"] == attempt
        running.processes["scheduler"].kill()
        running.processes["scheduler"].wait()
        with pytest.raises(AirflowStartError, match="scheduler exited"):
            running.check_alive()
        # The API server is never restarted behind our back.
        running.spawn("scheduler", ["sleep", "60"])
        running.processes["api-server"].kill()
        running.processes["api-server"].wait()
        with pytest.raises(AirflowStartError, match="api-server exited"):
            running.check_alive()
    finally:
        running.stop()


def test_celery_profile_runs_its_own_queue(tmp_path) -> None:
    from runway_mlops.config import load_settings
    from tests.conftest import CONFIG_DIR

    def settings_at(home):
        return load_settings(
            CONFIG_DIR, env={"RUNWAY_PROFILE": "prod", "RUNWAY_HOME": str(tmp_path / home)}
        )

    prod = settings_at("a")
    env = airflow_env(prod, base={"PATH": "/usr/bin"})
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == prod.airflow_database_url
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:6379/0"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == f"db+{prod.airflow_database_url}"
    assert env["MLFLOW_S3_ENDPOINT_URL"] == prod.s3_endpoint_url
    queue = env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]
    worker = component_commands(prod)["celery-worker"]
    assert worker[worker.index("--queues") + 1] == queue
    # Two homes on one broker never share a queue.
    other = airflow_env(settings_at("b"), base={})
    assert other["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] != queue
    assert "AIRFLOW__CELERY__BROKER_URL" not in airflow_env(
        load_settings(CONFIG_DIR, env={"RUNWAY_HOME": str(tmp_path / "c")}), base={}
    )
