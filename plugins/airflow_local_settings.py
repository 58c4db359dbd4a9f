"""Airflow's local settings hook: preload the task libraries in processes that fork tasks,
and bind the log servers to their configured host.

Airflow imports ``airflow_local_settings`` at start-up in each of its processes (the
plugins folder is on its path). In the scheduler and in Celery workers this imports the
libraries Runway's tasks use, so each forked task finds them loaded; elsewhere it does
nothing. See :mod:`runway_mlops.orchestration.preload`. In the processes that start a log server
(scheduler, triggerer, Celery worker) it binds that server to
``[logging] worker_log_server_host`` (:mod:`runway_mlops.orchestration.log_servers`). The plugins
manager also imports this file as a (plugin-less) module: the second import is free.
"""

from __future__ import annotations

from runway_mlops.orchestration.log_servers import bind_log_servers
from runway_mlops.orchestration.preload import maybe_preload

__all__: list[str] = []  # Airflow copies this module's public names into airflow.settings

maybe_preload()
bind_log_servers()
