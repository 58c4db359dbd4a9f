"""Airflow's log server bound to ``[logging] worker_log_server_host``: the environment each
profile gets, and Airflow's real ``serve_logs`` started with the binding in place."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from runway_mlops.config import load_settings
from runway_mlops.orchestration.log_servers import serves_logs
from runway_mlops.orchestration.runtime import airflow_env
from tests.conftest import CONFIG_DIR
from tests.e2e.test_log_servers import _listening

HOST = "AIRFLOW__LOGGING__WORKER_LOG_SERVER_HOST"


@pytest.mark.parametrize(
    ("profile", "base", "expected"),
    [
        ("local", {}, "127.0.0.1"),  # LocalExecutor: every component on this machine
        ("prod", {}, ""),  # Celery workers may be elsewhere: Airflow's every interface
        ("prod", {HOST: "10.0.0.5"}, "10.0.0.5"),  # an operator's choice wins
        ("local", {HOST: "0.0.0.0"}, "0.0.0.0"),
    ],
)
def test_each_profile_gets_its_log_server_host(tmp_path, profile, base, expected) -> None:
    settings = load_settings(
        CONFIG_DIR, env={"RUNWAY_PROFILE": profile, "RUNWAY_HOME": str(tmp_path / "home")}
    )
    assert airflow_env(settings, base={"PATH": "/usr/bin", **base})[HOST] == expected


def test_only_the_commands_that_serve_logs_are_bound() -> None:
    assert serves_logs(["airflow", "scheduler"]) and serves_logs(["airflow", "triggerer"])
    assert serves_logs(["airflow", "celery", "worker", "--queues", "q"])
    for other in (["airflow", "api-server"], ["airflow", "dag-processor"], ["airflow"], []):
        assert not serves_logs(other), other


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(("host", "expected"), [("127.0.0.1", {"127.0.0.1"}), ("", None)])
def test_airflows_serve_logs_listens_where_it_is_told(tmp_path, host, expected) -> None:
    """Airflow's own log server, started as the triggerer starts it, after the hook ran."""
    port = _free_port()
    code = (
        "import sys; sys.argv = ['airflow', 'triggerer']\n"
        "from runway_mlops.orchestration.log_servers import bind_log_servers\n"
        "bind_log_servers()\n"
        "from airflow.utils.serve_logs import serve_logs\n"
        f"serve_logs(port={port})\n"
    )
    env = {"AIRFLOW_HOME": str(tmp_path), HOST: host, "PATH": "/usr/bin"}
    server = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.monotonic() + 60
        while not (bound := {a for a, p in _listening().values() if p == port}):
            assert server.poll() is None, "the log server exited"
            assert time.monotonic() < deadline, "the log server did not start"
            time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(10)
    # Unset: Airflow's own behaviour, every interface (0.0.0.0, or :: with IPv4 mapped).
    assert bound == expected if expected else bound <= {"0.0.0.0", "::"}
