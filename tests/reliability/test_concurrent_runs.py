"""Two runs of the same day at the same time (a scheduled run and a backfill, say).

Two processes, each with its own run id, ingest and validate 2013-01-02 of every dataset
at the same moment, twice over, against one lake and one catalog (SQLite, and the
PostgreSQL catalog of the ``prod`` profile). The result must equal one clean run of that
day in another home: the same raw, validated and quarantined partitions, one catalog
record per zone / dataset / day, one validation per dataset and day, the same quarantine
entries, none doubled. A run may lose the race (its write serialised after the other's,
or refused), but never half-apply it: a refused run fails with the database's error and
its rerun succeeds.

How the protection was checked: this test found that two runs starting on a new catalog
both created its tables and one failed ("table runway_partitions already exists");
``catalog.create_tables`` now looks again. Without it the SQLite case fails. Replacing a
day's validation and quarantine entries happens in one transaction
(``catalog.record_validation``), which keeps them from doubling.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import subprocess
import sys
import time

import pandas as pd
import pytest

from runway_mlops import catalog
from runway_mlops.config import load_settings
from runway_mlops.lake import Lake
from runway_mlops.sample.seed import seed
from runway_mlops.stages.ingest import ingest
from runway_mlops.stages.validate import validate
from tests.conftest import CONFIG_DIR, ROOT
from tests.integration.conftest import fresh_database

DAY = dt.date(2013, 1, 2)
ROUNDS = 2

RUN_DAY = """
import datetime as dt, sys, time
from runway_mlops.config import get_pipeline, load_settings
from runway_mlops.stages.ingest import ingest
from runway_mlops.stages.validate import validate

config_dir, home, database_url, day, run_id, start_at = sys.argv[1:]
env = {"RUNWAY_HOME": home}
if database_url != "-":
    env["RUNWAY_DATABASE_URL"] = database_url
settings = load_settings(config_dir, env=env)
pipeline = get_pipeline(settings, "flights")
ds = dt.date.fromisoformat(day)
time.sleep(max(0.0, float(start_at) - time.time()))
ingest(settings, pipeline, ds, run_id=run_id)
validate(settings, pipeline, ds, run_id=run_id, dag_id="flights_features")
"""


def start_day(settings, database_url: str | None, run_id: str, start_at: float):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWAY_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            RUN_DAY,
            str(CONFIG_DIR),
            str(settings.home),
            database_url or "-",
            DAY.isoformat(),
            run_id,
            str(start_at),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def lake_state(settings, pipeline) -> dict[tuple[str, str], pd.DataFrame]:
    lake = Lake(settings.lake_dir)
    state = {}
    for zone in ("raw", "validated", "quarantine"):
        for dataset in pipeline.datasets:
            if lake.exists(zone, pipeline.name, dataset, DAY):
                frame = lake.read_frame(zone, pipeline.name, dataset, DAY)
                frame = frame.drop(columns=[c for c in frame.columns if "run_id" in c])
                state[(zone, dataset)] = frame.sort_values(list(frame.columns)).reset_index(
                    drop=True
                )
    return state


def catalog_state(settings, pipeline) -> dict[str, object]:
    url = settings.database_url
    partitions = collections.Counter(
        (p["zone"], p["dataset"], p["ds"], p["rows"])
        for p in catalog.list_partitions(url, pipeline.name)
    )
    validations = collections.Counter(
        (v.dataset, v.ds, v.outcome, v.rows, v.rows_quarantined)
        for v in catalog.list_validations(url, pipeline.name)
    )
    quarantine = collections.Counter(
        (q.dataset, q.ds, q.scope, q.rows, tuple(sorted(q.reasons.items())))
        for q in catalog.list_quarantine(url, pipeline.name)
    )
    return {"partitions": partitions, "validations": validations, "quarantine": quarantine}


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request):
    if request.param == "sqlite":
        yield None
    else:
        with fresh_database() as url:
            yield url.replace("postgresql://", "postgresql+psycopg2://")


def test_two_runs_of_one_day_at_once_equal_one_clean_run(
    tmp_path, flights_pipeline, catalog_url
) -> None:
    pipeline = flights_pipeline
    clean = load_settings(CONFIG_DIR, env={"RUNWAY_HOME": str(tmp_path / "clean")})
    seed(clean, pipeline, "files", DAY, DAY)
    ingest(clean, pipeline, DAY, run_id="clean")
    validate(clean, pipeline, DAY, run_id="clean", dag_id="flights_features")

    env = {"RUNWAY_HOME": str(tmp_path / "raced")}
    if catalog_url:
        env["RUNWAY_DATABASE_URL"] = catalog_url
    raced = load_settings(CONFIG_DIR, env=env)
    seed(raced, pipeline, "files", DAY, DAY)
    refused = []
    for round_ in range(ROUNDS):
        start_at = time.time() + 8  # both processes are importing by then
        procs = {
            name: start_day(raced, catalog_url, f"{name}__{round_}", start_at)
            for name in ("scheduled", "backfill")
        }
        for name, proc in procs.items():
            out, _ = proc.communicate(timeout=600)
            if proc.returncode != 0:
                refused.append((name, round_, out.decode(errors="replace")[-1500:]))
    for name, round_, out in refused:
        # A run that lost the race was refused by the database, not half-applied...
        assert "IntegrityError" in out or "UniqueViolation" in out or "locked" in out, out
        # ... and its rerun succeeds.
        ingest(raced, pipeline, DAY, run_id=f"{name}__{round_}__rerun")
        validate(raced, pipeline, DAY, run_id=f"{name}__{round_}__rerun", dag_id="flights_features")

    clean_lake, raced_lake = lake_state(clean, pipeline), lake_state(raced, pipeline)
    assert sorted(raced_lake) == sorted(clean_lake)
    for key, frame in clean_lake.items():
        pd.testing.assert_frame_equal(raced_lake[key], frame, obj=str(key))
    clean_catalog, raced_catalog = catalog_state(clean, pipeline), catalog_state(raced, pipeline)
    for table in ("partitions", "validations", "quarantine"):
        assert raced_catalog[table] == clean_catalog[table], table
        assert max(raced_catalog[table].values()) == 1, table
    assert clean_catalog["quarantine"], "the day has quarantined rows to double"
