"""Import the stages' heavy libraries once, in the Airflow process that forks the tasks.

Every Airflow task runs in a process of its own, forked (``os.fork``, no exec) by the
LocalExecutor's workers, themselves forked from the scheduler, or by a Celery worker.
A task importing Great Expectations, MLflow and LightGBM itself pays seconds before it
does any work (bench/README.md: 8 s of a 9 s ``validate_raw``); a task forked from a
process that has imported them finds them in ``sys.modules``, shared copy-on-write.

:func:`maybe_preload` runs from ``plugins/airflow_local_settings.py`` (Airflow imports
``airflow_local_settings`` at start-up in each of its processes; the plugins folder is
on its path) and imports :data:`MODULES` in the scheduler and in Celery workers only:
the API server, DAG processor and triggerer never run tasks. ``RUNWAY_PRELOAD=0`` turns
it off. Importing a module only defines things; nothing here opens a file, a
connection or a thread, so the forks start clean.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Mapping, Sequence

#: What the task bodies import (runway_mlops.orchestration.tasks imports them lazily).
MODULES = (
    "pandas",
    "pyarrow.parquet",
    "sqlalchemy",
    "great_expectations",
    "mlflow",
    "mlflow.pyfunc",
    "lightgbm",
    "sklearn.metrics",
    "runway_mlops.orchestration.tasks",
    "runway_mlops.stages.ingest",
    "runway_mlops.stages.validate",
    "runway_mlops.validation.gx",
    "runway_mlops.validation.judge",
    "runway_mlops.validation.report",
    "runway_mlops.stages.train",
    "runway_mlops.stages.score",
    "runway_mlops.stages.monitor",
)

#: Airflow commands whose process forks task processes.
FORKING_COMMANDS = (("scheduler",), ("celery", "worker"))


def wanted(argv: Sequence[str], env: Mapping[str, str]) -> bool:
    """Whether this process (``airflow <command> ...``) forks tasks and may preload."""
    if env.get("RUNWAY_PRELOAD", "1") == "0":
        return False
    args = list(argv[1:])
    return any(args[: len(command)] == list(command) for command in FORKING_COMMANDS)


def preload(modules: Sequence[str] = MODULES) -> dict[str, float]:
    """Import ``modules``; seconds each took (a module that fails to import is skipped)."""
    took: dict[str, float] = {}
    for name in modules:
        start = time.perf_counter()
        try:
            importlib.import_module(name)
        except Exception as exc:  # a missing extra must not stop the scheduler
            print(f"runway preload: skipped {name}: {exc}", file=sys.stderr)
            continue
        took[name] = time.perf_counter() - start
    return took


_done = False


def maybe_preload(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> None:
    """Preload once per process tree: a forked task (whose ``sys.argv`` is still the
    scheduler's) imports the plugins again, and finds this done."""
    global _done
    argv = sys.argv if argv is None else argv
    if _done or not wanted(argv, os.environ if env is None else env):
        return
    _done = True
    start = time.perf_counter()
    took = preload()
    print(
        f"runway preload: {len(took)} modules in {time.perf_counter() - start:.1f} s "
        "(inherited by every task this process forks)",
        file=sys.stderr,
    )
