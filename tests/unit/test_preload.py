"""The scheduler and Celery workers preload the task libraries; other processes do not."""

from __future__ import annotations

import sys

from runway_mlops.orchestration.preload import MODULES, preload, wanted


def test_only_processes_that_fork_tasks_preload() -> None:
    assert wanted(["airflow", "scheduler"], {})
    assert wanted(["/venv/bin/airflow", "celery", "worker", "-q", "default"], {})
    for command in (["api-server"], ["dag-processor"], ["triggerer"], ["celery", "flower"]):
        assert not wanted(["airflow", *command], {}), command
    assert not wanted(["airflow"], {})
    assert not wanted(["airflow", "scheduler"], {"RUNWAY_PRELOAD": "0"})


def test_preload_imports_and_skips_what_is_missing(capsys) -> None:
    sys.modules.pop("colorsys", None)
    took = preload(["colorsys", "runway_no_such_module"])
    assert list(took) == ["colorsys"] and "colorsys" in sys.modules
    assert "skipped runway_no_such_module" in capsys.readouterr().err


def test_every_preloaded_module_exists() -> None:
    import importlib.util

    missing = [m for m in MODULES if importlib.util.find_spec(m) is None]
    assert missing == []
