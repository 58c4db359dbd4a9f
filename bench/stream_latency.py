"""Latency of the micro-batch path: a record landing -> its prediction queryable.

    .venv/bin/python bench/stream_latency.py [--hours 3] [--speed 30] [--cadence '* * * * *']

Runs ``runway stream-demo`` (runway_mlops.programs.stream_demo): a config copy whose only change
is the cadence, three weeks of history and a first champion, then Airflow (real
scheduler, LocalExecutor, SQLite) with the replay producer landing 2013-03-01 from 05:00
at ``--speed`` times real time. For every flight: wall-clock time from the arrival of the
file that carried it to the ``scored_at`` of its champion prediction. Writes
``bench/results/stream_latency.json`` (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

from runway_mlops.config import load_settings
from runway_mlops.programs.stream_demo import stream_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--speed", type=float, default=30.0)
    parser.add_argument("--cadence", default="* * * * *")
    parser.add_argument("--history-days", type=int, default=21)
    args = parser.parse_args()
    run = stream_demo(
        load_settings(),
        cadence=args.cadence,
        hours=args.hours,
        speed=args.speed,
        history_days=args.history_days,
    )
    figures = {
        "machine": {
            "cores": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
            "python": platform.python_version(),
        },
        "cadence": args.cadence,
        "speed": args.speed,
        "stream_hours": args.hours,
        **run.figures(),
    }
    out = Path(__file__).parent / "results" / "stream_latency.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, indent=2, default=str))
    print(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
