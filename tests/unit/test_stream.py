"""Micro-batch ingestion: arrival windows, exactly-once by key, late data, the commit log."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from runway_mlops import catalog
from runway_mlops.errors import SourceDataError
from runway_mlops.lake import Lake
from runway_mlops.sample.producer import StreamReplay
from runway_mlops.sample.seed import _csv_bytes, load_raw
from runway_mlops.stages.microbatch import (
    CommitLog,
    arrival_key,
    arrival_time,
    batch_id,
    ingest_micro_batch,
    list_arrivals,
)
from runway_mlops.storage import LocalStore

UTC = dt.UTC
# 2013-03-05 06:00 in New York (EST) is 11:00 UTC; the stream runs on 2026 wall time.
STREAM_START = dt.datetime(2013, 3, 5, 11, 0, tzinfo=UTC)
WALL = dt.datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
MINUTE = dt.timedelta(minutes=1)
DAY = dt.date(2013, 3, 5)


@pytest.fixture
def micro(flights_pipeline):
    return flights_pipeline.model_copy(update={"cadence": "* * * * *"})


@pytest.fixture
def landing(settings):
    return LocalStore(settings.landing_uri)


def _replay(landing, pipeline, hours: float = 6) -> StreamReplay:
    replay = StreamReplay(landing, pipeline, STREAM_START, STREAM_START + dt.timedelta(hours=hours))
    replay.ensure_references()
    return replay


def _flights_between(start: dt.datetime, end: dt.datetime, lead_minutes: int) -> pd.DataFrame:
    flights = load_raw("flights")
    when = (
        pd.to_datetime(flights["time_hour"], utc=True)
        + pd.to_timedelta(pd.to_numeric(flights["minute"]), unit="m")
        - pd.Timedelta(minutes=lead_minutes)
    )
    return flights[(when >= start) & (when < end)]


def test_arrival_keys_round_trip_and_windows_select_by_arrival(landing) -> None:
    at = dt.datetime(2026, 11, 30, 23, 59, 59, 123456, tzinfo=UTC)
    key = arrival_key("flights", at, "x-1")
    assert key == "flights/arrivals/2026-11-30/235959123456-x-1.csv"
    assert arrival_time(key) == at
    assert arrival_time("flights/ds=2013-01-01/flights.csv") is None
    landing.write(key, b"a\n1\n")
    landing.write(arrival_key("flights", at + dt.timedelta(seconds=1), "y"), b"a\n2\n")
    found = list_arrivals(landing, "flights", at - MINUTE, at + dt.timedelta(seconds=1), "csv")
    assert [o.key for _, o in found] == [key]  # the window is half-open and spans midnight
    assert batch_id(at) < batch_id(at + dt.timedelta(microseconds=1))


def test_each_row_lands_once_across_batches_and_reruns(settings, micro, landing) -> None:
    replay = _replay(landing, micro)
    lake = Lake(settings.lake_dir)
    results = []
    for i in range(4):  # four one-minute windows, one hour of stream each
        wall = WALL + i * MINUTE
        replay.emit(STREAM_START + (i + 1) * dt.timedelta(hours=1), wall + dt.timedelta(seconds=5))
        results.append(ingest_micro_batch(settings, micro, wall, wall + MINUTE, run_id=f"r{i}"))
    expected = _flights_between(
        STREAM_START, STREAM_START + dt.timedelta(hours=4), micro.features.prediction_lead_minutes
    )
    raw = lake.read_frame("raw", "flights", "flights", DAY)
    assert len(raw) == len(expected) > 0
    assert not raw.duplicated(subset=micro.datasets["flights"].key).any()
    assert sum(r.datasets["flights"].admitted for r in results) == len(expected)
    assert results[-1].days == [DAY]
    assert len(lake.manifest("raw", "flights", "flights", DAY)["batches"]) == 4

    # Rerunning the second batch changes nothing: same files, same rows, same commit.
    log = CommitLog.of(settings, "flights")
    before = log.get(WALL + 2 * MINUTE)
    again = ingest_micro_batch(settings, micro, WALL + MINUTE, WALL + 2 * MINUTE, run_id="rerun")
    assert again.datasets["flights"].admitted == results[1].datasets["flights"].admitted
    assert len(lake.read_frame("raw", "flights", "flights", DAY)) == len(expected)
    after = log.get(WALL + 2 * MINUTE)
    assert after is not None and before is not None
    assert after["watermarks"] == before["watermarks"]
    # The reference snapshots came along for the day.
    assert lake.exists("raw", "flights", "planes", DAY)


def test_an_interval_the_scheduler_skipped_is_covered_by_the_next_batch(
    settings, micro, landing
) -> None:
    replay = _replay(landing, micro)
    replay.emit(STREAM_START + dt.timedelta(hours=1), WALL + dt.timedelta(seconds=5))
    first = ingest_micro_batch(settings, micro, WALL, WALL + MINUTE)
    # Deliveries land during the next three minutes, but only the third minute's run
    # happens (catch-up off, a slow run, a paused DAG ...).
    for i in (1, 2, 3):
        replay.emit(
            STREAM_START + (i + 1) * dt.timedelta(hours=1),
            WALL + i * MINUTE + dt.timedelta(seconds=5),
        )
    later = ingest_micro_batch(settings, micro, WALL + 3 * MINUTE, WALL + 4 * MINUTE)
    assert later.start == WALL + MINUTE  # from where the last commit ended
    expected = _flights_between(
        STREAM_START, STREAM_START + dt.timedelta(hours=4), micro.features.prediction_lead_minutes
    )
    total = first.datasets["flights"].admitted + later.datasets["flights"].admitted
    assert total == len(expected)
    assert len(Lake(settings.lake_dir).read_frame("raw", "flights", "flights", DAY)) == total


def test_duplicates_are_dropped_and_counted_first_copy_wins(settings, micro, landing) -> None:
    replay = _replay(landing, micro)
    replay.emit(STREAM_START + dt.timedelta(hours=1), WALL + dt.timedelta(seconds=1))
    first = ingest_micro_batch(settings, micro, WALL, WALL + MINUTE)
    resent = _flights_between(
        STREAM_START,
        STREAM_START + dt.timedelta(minutes=30),
        micro.features.prediction_lead_minutes,
    )
    changed = resent.copy()
    changed["dep_delay"] = "999"  # a re-sent record never overwrites the first copy
    landing.write(arrival_key("flights", WALL + MINUTE, "resend"), _csv_bytes(changed))
    second = ingest_micro_batch(settings, micro, WALL + MINUTE, WALL + 2 * MINUTE)
    assert second.datasets["flights"].duplicates == len(resent) > 0
    assert second.datasets["flights"].admitted == 0
    raw = Lake(settings.lake_dir).read_frame("raw", "flights", "flights", DAY)
    assert len(raw) == first.datasets["flights"].admitted
    assert (raw["dep_delay"] != 999).all()


def test_late_rows_go_to_quarantine_with_their_reason(settings, micro, landing) -> None:
    replay = _replay(landing, micro)
    replay.emit(STREAM_START + dt.timedelta(hours=6), WALL + dt.timedelta(seconds=1))
    ingest_micro_batch(settings, micro, WALL, WALL + MINUTE)
    # Flights of the early morning re-sent with new keys, 5 h behind the watermark (> 3 h).
    late = _flights_between(
        STREAM_START,
        STREAM_START + dt.timedelta(minutes=20),
        micro.features.prediction_lead_minutes,
    ).copy()
    late["flight"] = (pd.to_numeric(late["flight"]) + 10000).astype(str)
    landing.write(arrival_key("flights", WALL + MINUTE, "late"), _csv_bytes(late))
    result = ingest_micro_batch(settings, micro, WALL + MINUTE, WALL + 2 * MINUTE, run_id="late")
    assert result.datasets["flights"].late == len(late) > 0
    lake = Lake(settings.lake_dir)
    kept = lake.read_frame("quarantine", "flights", "flights.late", DAY)
    assert len(kept) == len(late)
    assert kept["_reasons"].str.contains("more than 180 minutes behind the watermark").all()
    entries = catalog.list_quarantine(settings.database_url, "flights")
    assert any(e.rows == len(late) and e.run_id == "late" for e in entries)
    raw = lake.read_frame("raw", "flights", "flights", DAY)
    assert not raw["flight"].isin(pd.to_numeric(late["flight"])).any()


def test_corrupt_arrival_is_kept_and_the_rest_of_the_batch_commits(
    settings, micro, landing
) -> None:
    replay = _replay(landing, micro)
    replay.emit(STREAM_START + dt.timedelta(hours=1), WALL + dt.timedelta(seconds=1))
    bad = arrival_key("weather", WALL + dt.timedelta(seconds=2), "cut")
    landing.write(bad, b"origin,year,month\nEWR,2013")  # no final newline: truncated
    with pytest.raises(SourceDataError, match=r"1 landing file\(s\) could not be parsed"):
        ingest_micro_batch(settings, micro, WALL, WALL + MINUTE)
    lake = Lake(settings.lake_dir)
    assert lake.exists("raw", "flights", "flights", DAY)
    kept = lake.partition_dir("quarantine", "flights", "weather.delivery", WALL.date())
    assert (kept / "source-files" / bad).read_bytes() == b"origin,year,month\nEWR,2013"
    assert CommitLog.of(settings, "flights").get(WALL + MINUTE) is not None


def test_a_day_closes_once_the_watermark_passes_its_end_plus_lateness(
    settings, micro, landing
) -> None:
    replay = _replay(landing, micro, hours=30)
    closed = []
    for i in range(30):
        wall = WALL + i * MINUTE
        replay.emit(STREAM_START + (i + 1) * dt.timedelta(hours=1), wall + dt.timedelta(seconds=1))
        result = ingest_micro_batch(settings, micro, wall, wall + MINUTE)
        closed += [(i, d) for d in result.closed]
    # March 5 (EST) ends at 05:00 UTC on March 6; with 3 h lateness the flights watermark
    # (scheduled departures) passes 08:00 UTC on March 6 in exactly one batch.
    assert [d for _, d in closed] == [DAY]
    assert result.clock is not None and result.clock > STREAM_START


def test_micro_batch_needs_a_file_source(settings, micro) -> None:
    from runway_mlops.errors import ConfigError

    postgres = micro.model_copy(
        update={"source": micro.source.model_copy(update={"kind": "postgres"})}
    )
    with pytest.raises(ConfigError, match="micro-batch ingestion reads landing files"):
        ingest_micro_batch(settings, postgres, WALL, WALL + MINUTE)
