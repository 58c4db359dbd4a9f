"""The micro-batch path end to end through the stage functions the Airflow tasks call.

A pipeline whose only change is ``cadence: "* * * * *"``: ten days of history loaded the
daily way, a champion trained on their (micro-batch) features by the real training
stages, then a live-style replay of the morning of 2013-03-01 in one-minute arrival
windows: ingest, validate, Spark features and scoring of the new rows, batch by batch.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from runway_mlops.config import load_settings
from runway_mlops.inference import store
from runway_mlops.lake import Lake
from runway_mlops.programs.stream_demo import bootstrap
from runway_mlops.sample.producer import StreamReplay
from runway_mlops.stages import score
from runway_mlops.stages.features import build_feature_range
from runway_mlops.stages.microbatch import ingest_micro_batch
from runway_mlops.stages.validate import validate_micro_batch
from runway_mlops.storage import LocalStore
from tests.conftest import CONFIG_DIR

HISTORY = [dt.date(2013, 2, 19) + dt.timedelta(days=i) for i in range(10)]  # Feb 19-28
DAY = dt.date(2013, 3, 1)
STREAM_START = dt.datetime(2013, 3, 1, 10, 0, tzinfo=dt.UTC)  # 05:00 in New York
WALL = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture(scope="module")
def stream_setup(tmp_path_factory, spark):
    settings = load_settings(
        CONFIG_DIR, env={"RUNWAY_HOME": str(tmp_path_factory.mktemp("stream") / "home")}
    )
    from runway_mlops.config import get_pipeline

    pipeline = get_pipeline(settings, "flights").model_copy(update={"cadence": "* * * * *"})
    assert pipeline.micro_batch
    registered = bootstrap(settings, pipeline, HISTORY, spark=spark)
    return settings, pipeline, registered


def _batch(spark, settings, pipeline, replay, i: int) -> tuple:
    """One minute of wall time carrying 40 minutes of stream; the four stages of a run."""
    wall = WALL + i * MINUTE
    replay.emit(STREAM_START + (i + 1) * dt.timedelta(minutes=40), wall + dt.timedelta(seconds=2))
    result = ingest_micro_batch(settings, pipeline, wall, wall + MINUTE, run_id=f"mb{i}")
    ready = validate_micro_batch(settings, pipeline, result.days, result.closed, run_id=f"mb{i}")
    if ready:
        build_feature_range(spark, settings, pipeline, ready, run_id=f"mb{i}")
    context = score.ScoringContext(
        dag_id="flights_inference", run_id=f"mb{i}", run_type="asset_triggered"
    )
    scored = [
        r for ds in ready for r in score.score_new(settings, pipeline, ds, result.clock, context)
    ]
    return result, ready, scored


def test_micro_batches_score_each_flight_once_before_departure(spark, stream_setup) -> None:
    settings, pipeline, registered = stream_setup
    replay = StreamReplay(
        LocalStore(settings.landing_uri), pipeline, STREAM_START, STREAM_START + 4 * MINUTE * 60
    )
    replay.ensure_references()
    clocks = []
    champion_rows = 0
    for i in range(3):
        result, ready, scored = _batch(spark, settings, pipeline, replay, i)
        assert ready == [DAY]
        clocks.append(result.clock)
        champion_rows += sum(r.rows for r in scored if r.role == "champion")
    assert clocks == sorted(clocks)

    rows = store.day_rows(settings.database_url, pipeline.name, DAY, role="champion")
    features = Lake(settings.lake_dir).read_frame("features", pipeline.name, "flights", DAY)
    assert len(rows) == champion_rows == len(features) > 50
    assert len({r["entity_key"] for r in rows}) == len(rows)
    assert {r["model_version"] for r in rows} == {str(registered["model_version"])}
    # Every prediction was made before its flight's scheduled departure (stream time):
    # the batch that scored it had a clock earlier than the event.
    by_run = {f"mb{i}": c for i, c in enumerate(clocks)}
    for row in rows:
        event = (
            pd.Timestamp(row["event_time"]).tz_localize("UTC")
            if pd.Timestamp(row["event_time"]).tzinfo is None
            else pd.Timestamp(row["event_time"])
        )
        assert event > pd.Timestamp(by_run[row["run_id"]])

    # A rerun of the last batch adds nothing and keeps the first write time of each row.
    before = {r["entity_key"]: r["scored_at"] for r in rows}
    _, _, again = _batch(spark, settings, pipeline, replay, 2)
    assert sum(r.rows for r in again) == 0
    after = store.day_rows(settings.database_url, pipeline.name, DAY, role="champion")
    assert {r["entity_key"]: r["scored_at"] for r in after} == before


def test_a_flight_first_seen_after_departure_is_missed_not_scored(spark, stream_setup) -> None:
    settings, pipeline, _ = stream_setup
    from runway_mlops.sample.seed import _csv_bytes, load_raw
    from runway_mlops.stages.microbatch import CommitLog, arrival_key

    clock = pd.Timestamp(CommitLog.of(settings, pipeline.name).before(WALL + 10 * MINUTE)["clock"])
    flights = load_raw("flights")
    departs = pd.to_datetime(flights["time_hour"], utc=True) + pd.to_timedelta(
        pd.to_numeric(flights["minute"]), unit="m"
    )
    # A flight that left 30 minutes before the stream's clock (within the allowed
    # lateness, so admitted), under a key never seen.
    gone = (
        flights[
            (departs > clock - pd.Timedelta(minutes=40))
            & (departs <= clock - pd.Timedelta(minutes=30))
        ]
        .head(1)
        .copy()
    )
    assert len(gone) == 1
    gone["flight"] = str(int(gone["flight"].iloc[0]) + 10000)
    wall = WALL + 3 * MINUTE
    LocalStore(settings.landing_uri).write(
        arrival_key("flights", wall + dt.timedelta(seconds=1), "straggler"), _csv_bytes(gone)
    )
    result = ingest_micro_batch(settings, pipeline, wall, wall + MINUTE, run_id="mb3")
    assert result.datasets["flights"].admitted == 1 and result.datasets["flights"].late == 0
    ready = validate_micro_batch(settings, pipeline, result.days, result.closed, run_id="mb3")
    build_feature_range(spark, settings, pipeline, ready, run_id="mb3")
    context = score.ScoringContext(dag_id="flights_inference", run_id="mb3")
    scored = score.score_new(settings, pipeline, DAY, result.clock, context)
    assert sum(r.rows for r in scored) == 0
    key = store.entity_key(gone[pipeline.datasets["flights"].key].iloc[0].tolist())
    assert store.lookup(settings.database_url, pipeline.name, key) == []
    features = Lake(settings.lake_dir).read_frame("features", pipeline.name, "flights", DAY)
    rows = store.day_rows(settings.database_url, pipeline.name, DAY, role="champion")
    assert len(features) - len(rows) == 1
