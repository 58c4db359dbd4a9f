"""What a warm Spark Connect server saves a feature job: cold JVM vs thin client (issue 17).

    .venv/bin/python bench/spark_connect.py [--days 5] [--repeats 3]

On a fresh Runway home with ``--days`` real days ingested and validated (2013-01-01 on),
it measures, each ``--repeats`` times, from a fresh process:

* ``client_session_s``: a Spark Connect client session opened and one trivial query
  answered (``spark.range(1).count()``) against a running server;
* ``classic_session_s``: the same with a classic local session (a new JVM: what
  spark-submit pays per task);
* ``job_connect_s`` / ``job_classic_s``: ``jobs/build_features.py`` for the last day,
  the whole process, through the server vs a JVM of its own (``local[2]``);

and the server's own start (``server_start_s``, paid once per service). Writes
``bench/results/spark_connect.json`` (not committed) and prints it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import RESULTS, ROOT, machine, write_result  # noqa: E402  (bench/benchkit.py)

PROBE = """
import sys, time
t = time.perf_counter()
from pyspark.sql import SparkSession
if sys.argv[1].startswith("sc://"):
    spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
else:
    spark = SparkSession.builder.master(sys.argv[1]).getOrCreate()
spark.range(1).count()
print(time.perf_counter() - t)
spark.stop()
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started, done.stdout


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "spark_connect.json")
    args = parser.parse_args(argv)

    from runway_mlops.config import get_pipeline, load_settings
    from runway_mlops.programs.services import spark_connect_command
    from runway_mlops.sample.seed import seed
    from runway_mlops.stages.ingest import ingest
    from runway_mlops.stages.validate import validate

    info = machine()
    home = Path(tempfile.mkdtemp(prefix="runway-connect-bench-"))
    env = {**os.environ, "RUNWAY_HOME": str(home), "RUNWAY_CONFIG_DIR": str(ROOT / "config")}
    settings = load_settings(ROOT / "config", env={"RUNWAY_HOME": str(home)})
    pipeline = get_pipeline(settings, "flights")
    first = dt.date(2013, 1, 1)
    last = first + dt.timedelta(days=args.days - 1)
    seed(settings, pipeline, "files", first, last)
    for i in range(args.days):
        ingest(settings, pipeline, first + dt.timedelta(days=i))
        validate(settings, pipeline, first + dt.timedelta(days=i))

    port = _free_port()
    url = f"sc://127.0.0.1:{port}"
    started = time.perf_counter()
    server = subprocess.Popen(
        spark_connect_command(url, master="local[2]"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if server.poll() is not None:
                raise RuntimeError("the Spark Connect server did not start")
            time.sleep(0.2)
        server_start = time.perf_counter() - started
        job = [sys.executable, str(ROOT / "jobs" / "build_features.py"), "--pipeline", "flights"]
        job += ["--ds", last.isoformat()]
        figures: dict[str, list[float]] = {
            "client_session_s": [],
            "classic_session_s": [],
            "job_connect_s": [],
            "job_classic_s": [],
        }
        for _ in range(args.repeats):
            probe = [sys.executable, "-c", PROBE]
            figures["client_session_s"].append(float(_timed([*probe, url], env)[1]))
            figures["classic_session_s"].append(float(_timed([*probe, "local[2]"], env)[1]))
            seconds, _ = _timed(job, {**env, "RUNWAY_SPARK_MASTER": url})
            figures["job_connect_s"].append(seconds)
            # Without spark-submit the job's session is a classic local one: its own JVM.
            seconds, _ = _timed(job, {**env, "RUNWAY_SPARK_MASTER": "local[2]"})
            figures["job_classic_s"].append(seconds)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)

    result: dict[str, object] = {
        "bench": "spark_connect",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": info,
        "days_in_lake": args.days,
        "job_day": last.isoformat(),
        "server_start_s": round(server_start, 1),
        "median": {name: round(statistics.median(v), 2) for name, v in figures.items()},
        "runs": {name: [round(x, 2) for x in v] for name, v in figures.items()},
    }
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
