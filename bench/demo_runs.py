"""Bench: ``runway demo`` several times in a row, each from a clean home; restarts counted.

    .venv/bin/python bench/demo_runs.py [--runs 3]

The trust issue's evidence that the zero-config default does not crash: each run starts
the embedded PostgreSQL and Airflow afresh in a private home, backfills January 2013,
trains the first champion and scores the month, and prints how often its supervisor
restarted a component (``airflow scheduler restarts: N, ...``; a restart is a crash). The
supervisor's own lines (``runway: airflow scheduler exited with status ...;
restarting``) are counted too, so a run that failed still says what happened. Writes
``bench/results/demo_runs.json`` (not committed); the README's Tests section quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import RESULTS, machine  # noqa: E402

RUNWAY = Path(sys.executable).with_name("runway")
SUMMARY = re.compile(r"^airflow (.*restarts: \d+.*)$", re.MULTILINE)
RESTARTING = re.compile(r"^runway: airflow (\S+) exited with status .*; restarting", re.MULTILINE)


def one_run(index: int) -> dict[str, object]:
    """One demo in a fresh home; its exit status, wall time and restarts."""
    home = Path(tempfile.mkdtemp(prefix=f"runway-demo-{index}-"))
    log = home.parent / f"{home.name}.log"
    began = time.perf_counter()
    with log.open("w") as out:
        status = subprocess.call(
            [str(RUNWAY), "demo"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUNWAY_HOME": str(home)},
        )
    text = log.read_text(errors="replace")
    summary = SUMMARY.findall(text)
    restarts: dict[str, int] = {}
    for name in RESTARTING.findall(text):
        restarts[name] = restarts.get(name, 0) + 1
    return {
        "run": index,
        "exit_status": status,
        "wall_s": round(time.perf_counter() - began, 1),
        "restart_summary": summary[-1] if summary else None,
        "restarts": restarts,
        "log": str(log),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    runs = []
    restarts = 0
    for index in range(1, args.runs + 1):
        run = one_run(index)
        print(json.dumps(run), flush=True)
        runs.append(run)
        restarts += sum(run["restarts"].values())  # type: ignore[attr-defined]
    result = {
        "bench": "demo_runs",
        "machine": machine(),
        "runs": runs,
        "failed_runs": sum(1 for r in runs if r["exit_status"] != 0),
        "component_restarts": restarts,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "demo_runs.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")
    return 1 if result["failed_runs"] or result["component_restarts"] else 0


if __name__ == "__main__":
    sys.exit(main())
