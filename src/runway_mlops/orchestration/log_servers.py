"""Bind Airflow's log servers to the host ``[logging] worker_log_server_host`` names.

The scheduler (with the LocalExecutor), the triggerer and Celery workers each start a
small HTTP server that serves their task logs to the API server
(``[logging] worker_log_server_port`` / ``trigger_log_server_port``). Airflow 3.3 binds
it to every interface and has no setting for the address
(``airflow.utils.serve_logs.core.serve_logs`` passes ``host=""`` to uvicorn). Where every
component runs on one machine (Runway's LocalExecutor profiles) nothing but this machine
needs those ports, so :func:`runway_mlops.orchestration.runtime.airflow_env` sets
``AIRFLOW__LOGGING__WORKER_LOG_SERVER_HOST=127.0.0.1``; with Celery workers on other hosts
it is left unset (every interface, Airflow's own behaviour) unless the environment sets it.

:func:`bind_log_servers` runs from ``plugins/airflow_local_settings.py`` in the Airflow
commands that start a log server, before they start it (they fork it), and makes
``serve_logs`` hand uvicorn that host instead. A test on a running stack
(``tests/e2e/test_log_servers.py``) checks the listening sockets, so an Airflow upgrade
that changes how ``serve_logs`` starts uvicorn cannot silently undo this.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

#: Airflow commands that start a log server: ``airflow <command> ...``.
LOG_SERVING_COMMANDS = (("scheduler",), ("triggerer",), ("celery", "worker"))


def serves_logs(argv: Sequence[str]) -> bool:
    """Whether this process (``airflow <command> ...``) starts a log server."""
    args = list(argv[1:])
    return any(args[: len(command)] == list(command) for command in LOG_SERVING_COMMANDS)


class _UvicornOn:
    """The ``uvicorn`` module as ``serve_logs`` sees it: ``run`` binds to ``host``."""

    def __init__(self, uvicorn: Any, host: str) -> None:
        self._uvicorn = uvicorn
        self.host = host

    def __getattr__(self, name: str) -> Any:
        return getattr(self._uvicorn, name)

    def run(self, app: Any, **kwargs: Any) -> Any:
        return self._uvicorn.run(app, **{**kwargs, "host": self.host})


def bind_log_servers(argv: Sequence[str] | None = None) -> str | None:
    """Make this process's log server listen on the configured host; return that host.

    Does nothing (returns None) outside the commands that serve logs, or when
    ``[logging] worker_log_server_host`` is unset.
    """
    if not serves_logs(sys.argv if argv is None else argv):
        return None
    from airflow.configuration import conf

    host = conf.get("logging", "worker_log_server_host", fallback="").strip()
    if not host:
        return None
    from airflow.utils.serve_logs import core

    uvicorn = getattr(core.uvicorn, "_uvicorn", core.uvicorn)
    core.uvicorn = _UvicornOn(uvicorn, host)  # type: ignore[assignment]
    return host
