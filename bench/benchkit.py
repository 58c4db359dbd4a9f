"""What every bench shares: where results go and what machine they were measured on.

Benches are run as scripts (``.venv/bin/python bench/<name>.py``), so this folder is on
``sys.path`` and they import it as ``benchkit``.
"""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: Raw results of each bench (not committed; bench/README.md quotes them).
RESULTS = ROOT / "bench" / "results"

_PACKAGES = ("pyspark", "lightgbm", "mlflow", "great-expectations", "apache-airflow", "duckdb")


def write_result(path: Path, result: dict[str, Any]) -> None:
    """Write a bench's result as indented JSON (creating ``bench/results/``) and print it."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def machine() -> dict[str, object]:
    """The machine and library versions a figure was measured with, and its load at start."""
    mem = 0
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in handle if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    versions: dict[str, str] = {}
    for package in _PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "cpu": cpu,
        "memory_mib": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "java": _java_version(),
        "load_at_start": round(os.getloadavg()[0], 2),
        **versions,
    }


def _java_version() -> str:
    import subprocess

    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    except OSError:
        return "unknown"
    return (out.stderr or out.stdout).splitlines()[0] if (out.stderr or out.stdout) else "unknown"
