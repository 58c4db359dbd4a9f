"""The Spark feature job SIGKILLed, with its JVM, while it writes a range of days.

Four days are ingested, validated and featurised once (run ``first``). A rebuild of the
same range (run ``second``) runs ``jobs/build_features.py`` in its own process group;
as soon as Spark has started writing the days' Parquet files into the job's private
staging folder, the whole group (Python driver and JVM) is SIGKILLed. Every day must
still be the complete ``first`` partition — manifest, rows, catalog record — and the
killed job's files must be nowhere a reader looks. A rerun (run ``third``) publishes
every day again, row for row the same as the first build.

What protects the days is the job's private staging folder: nothing is published until
every day is written and its rows counted, then each day is swapped in whole
(``Lake.publish``). The test checks the kill landed mid-write (the killed job's files are
left in its staging folder) and that no reader sees them; the swap itself is proven to
fail without ``Lake.publish``'s staging by ``test_kill_mid_write.py``. Not checked by
removing the staging folder (no small change of the job does that).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from runway_mlops import catalog
from runway_mlops.config import load_settings
from runway_mlops.lake import Lake
from runway_mlops.sample.seed import seed
from runway_mlops.stages.ingest import ingest
from runway_mlops.stages.validate import validate
from tests.conftest import CONFIG_DIR, ROOT

FIRST, LAST = dt.date(2013, 1, 2), dt.date(2013, 1, 5)
DAYS = [FIRST + dt.timedelta(days=i) for i in range((LAST - FIRST).days + 1)]


def run_job(settings, run_id: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWAY_")}
    env.update(
        PYTHONPATH=str(ROOT / "src"),
        RUNWAY_HOME=str(settings.home),
        RUNWAY_CONFIG_DIR=str(CONFIG_DIR),
        PYSPARK_PYTHON=sys.executable,
    )
    return subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "jobs" / "build_features.py"),
            "--pipeline",
            "flights",
            "--from",
            FIRST.isoformat(),
            "--to",
            LAST.isoformat(),
            "--run-id",
            run_id,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    return text


def features(lake: Lake) -> dict[dt.date, tuple[str, int, pd.DataFrame]]:
    """Each day's (manifest run id, manifest rows, the rows read back)."""
    out = {}
    for ds in DAYS:
        manifest = lake.manifest("features", "flights", "flights", ds)
        frame = lake.read_frame("features", "flights", "flights", ds)
        out[ds] = (manifest["run_id"], manifest["rows"], frame)
    return out


def spark_is_writing(staging: Path) -> bool:
    return any(staging.glob("features-flights-*/features/_ds=*/*.parquet")) or any(
        staging.glob("features-flights-*/features/_temporary/**/*.parquet")
    )


def test_feature_job_killed_mid_write_leaves_every_day_whole(tmp_path, flights_pipeline) -> None:
    pipeline = flights_pipeline
    settings = load_settings(CONFIG_DIR, env={"RUNWAY_HOME": str(tmp_path / "home")})
    seed(settings, pipeline, "files", FIRST - dt.timedelta(days=1), LAST)
    for ds in [FIRST - dt.timedelta(days=1), *DAYS]:
        ingest(settings, pipeline, ds, run_id="setup")
        validate(settings, pipeline, ds, run_id="setup")
    lake = Lake(settings.lake_dir)
    finish(run_job(settings, "first"))
    first = features(lake)
    assert {run for run, _, _ in first.values()} == {"first"}
    records = {
        p["ds"]: (p["rows"], p["run_id"])
        for p in catalog.list_partitions(settings.database_url, "flights", zone="features")
    }

    staging = lake.work_dir("staging")
    job = run_job(settings, "second")
    deadline = time.monotonic() + 300
    while not spark_is_writing(staging):
        assert job.poll() is None, job.communicate()[0].decode(errors="replace")[-3000:]
        assert time.monotonic() < deadline, "Spark never started writing"
        time.sleep(0.02)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait(timeout=60)
    assert job.returncode == -signal.SIGKILL

    # Every day is still the first build, whole: the manifest and the files agree.
    after_kill = features(lake)
    for ds, (run, rows, frame) in after_kill.items():
        assert run == "first", ds
        assert rows == len(frame) == first[ds][1], ds
        pd.testing.assert_frame_equal(frame, first[ds][2], obj=str(ds))
    assert {
        p["ds"]: (p["rows"], p["run_id"])
        for p in catalog.list_partitions(settings.database_url, "flights", zone="features")
    } == records
    # The killed job's files stay in its staging folder, which no reader lists.
    assert any(staging.glob("features-flights-*"))
    assert lake.partitions("features", "flights", "flights") == DAYS

    finish(run_job(settings, "third"))
    rerun = features(lake)
    for ds, (run, rows, frame) in rerun.items():
        assert run == "third"
        assert rows == first[ds][1]
        pd.testing.assert_frame_equal(frame, first[ds][2], obj=str(ds))
