"""Feature jobs as thin clients of a long-lived Spark Connect server (issue 17).

A real server (pyspark's own Connect jar, `runway spark-connect`'s command line) runs on
a loopback port: the one the test session shares (``tests.conftest.shared_spark_connect``),
which every Airflow stack of the tests also uses as ``spark_default``, so the feature task
as a thin client through the real scheduler is proven by
``test_backfill_dag_airflow.py``. A profile whose ``spark_master`` is ``sc://host:port``
builds its feature partitions through it: the same partitions, row for row, as a
classic in-process session builds. A server that does not answer fails the build in
seconds with a retryable error naming the endpoint, and publishes nothing.

The client runs as the feature job does (``jobs/build_features.py``) in a process of its
own: pyspark switches a whole process to Connect mode, so a Connect client and this test
session's classic Spark cannot share one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from runway_mlops import flows
from runway_mlops.config import load_settings
from runway_mlops.lake import Lake
from runway_mlops.sample.seed import seed
from runway_mlops.stages.ingest import ingest
from runway_mlops.stages.validate import validate
from tests.conftest import CONFIG_DIR, ROOT, _free_port

FIRST, LAST = dt.date(2013, 1, 1), dt.date(2013, 1, 5)
DAYS = [dt.date(2013, 1, d) for d in (3, 4, 5)]
KEY = ["year", "month", "day", "carrier", "flight", "origin"]


@pytest.fixture(scope="module")
def world(tmp_path_factory, flights_pipeline):
    """A Runway home with five real days validated; features not built yet."""
    settings = load_settings(
        CONFIG_DIR, env={"RUNWAY_HOME": str(tmp_path_factory.mktemp("world") / "home")}
    )
    seed(settings, flights_pipeline, "files", FIRST, LAST)
    for i in range((LAST - FIRST).days + 1):
        ingest(settings, flights_pipeline, FIRST + dt.timedelta(days=i))
        validate(settings, flights_pipeline, FIRST + dt.timedelta(days=i))
    return settings


def _features(settings) -> dict[dt.date, pd.DataFrame]:
    lake = Lake(settings.lake_dir)
    return {
        ds: lake.read_frame("features", "flights", "flights", ds)
        .sort_values(KEY)
        .reset_index(drop=True)
        for ds in DAYS
    }


def _job(settings, master: str) -> subprocess.CompletedProcess[str]:
    """``jobs/build_features.py`` over DAYS in a process of its own, on ``master``."""
    env = {
        **os.environ,
        "RUNWAY_HOME": str(settings.home),
        "RUNWAY_CONFIG_DIR": str(CONFIG_DIR),
        "RUNWAY_SPARK_MASTER": master,
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "jobs" / "build_features.py"), "--pipeline", "flights"]
        + ["--from", DAYS[0].isoformat(), "--to", DAYS[-1].isoformat(), "--run-id", "connect"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_connect_master_builds_the_same_partitions_as_a_local_session(
    spark, world, flights_pipeline, connect_url
) -> None:
    job = _job(world, connect_url)
    assert job.returncode == 0, job.stderr[-3000:]
    results = [
        json.loads(line.removeprefix("RUNWAY_RESULT "))
        for line in job.stdout.splitlines()
        if line.startswith("RUNWAY_RESULT ")
    ]
    assert [r["ds"] for r in results] == [d.isoformat() for d in DAYS]
    through_connect = _features(world)

    local = flows.build_features(world, flights_pipeline, DAYS, run_id="local", spark=spark)
    assert {r.feature_version for r in local.built} == {r["feature_version"] for r in results}
    in_process = _features(world)
    for ds in DAYS:
        assert len(through_connect[ds]) > 500
        pd.testing.assert_frame_equal(through_connect[ds], in_process[ds], check_dtype=False)


def test_a_server_that_does_not_answer_fails_fast_retryably_and_publishes_nothing(
    world,
) -> None:
    url = f"sc://127.0.0.1:{_free_port()}"  # nothing listens there
    lake_before = sorted(str(p) for p in (world.lake_dir / "features").rglob("*"))
    started = time.monotonic()
    job = _job(world, url)
    assert time.monotonic() - started < 90  # pyspark's own default retries for 10 min
    assert job.returncode == 1
    assert f"service unavailable: Spark Connect at {url} does not answer" in job.stderr
    assert sorted(str(p) for p in (world.lake_dir / "features").rglob("*")) == lake_before


def test_runway_up_starts_the_server_and_restarts_it_when_it_dies(tmp_path) -> None:
    """``start_services`` (what ``runway up`` runs) starts the server of a Connect profile
    on loopback, and its supervisor starts it again when it dies."""
    from runway_mlops.orchestration.runtime import airflow_env
    from runway_mlops.programs.services import listening, start_services

    port = _free_port()
    settings = load_settings(
        CONFIG_DIR,
        env={
            "RUNWAY_HOME": str(tmp_path / "home"),
            "RUNWAY_SPARK_MASTER": f"sc://127.0.0.1:{port}",
        },
    )
    procs = start_services(settings, airflow_env(settings))
    try:
        assert listening("127.0.0.1", port)
        first = procs.processes["spark-connect"]
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        procs.check_alive()  # the supervisor's loop: a dead server is started again
        assert procs.restarts == {"spark-connect": 1}
        deadline = time.monotonic() + 120
        while not listening("127.0.0.1", port):
            assert time.monotonic() < deadline, procs.logs["spark-connect"].read_text()[-2000:]
            time.sleep(0.5)
        assert procs.processes["spark-connect"].pid != first.pid
    finally:
        procs.stop()
    deadline = time.monotonic() + 60  # the JVM closes its port on the way out
    while listening("127.0.0.1", port):
        assert time.monotonic() < deadline, "the server outlived runway's stop"
        time.sleep(0.5)
