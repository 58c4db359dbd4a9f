"""Micro-batch ingestion: arrival windows, record versions by key, late data, the commit log."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from runway_mlops import catalog
from runway_mlops.errors import SourceDataError
from runway_mlops.lake import Lake
from runway_mlops.sample.producer import StreamReplay, feed_versions
from runway_mlops.sample.seed import _csv_bytes, load_raw
from runway_mlops.stages.microbatch import (
    CommitLog,
    arrival_key,
    arrival_time,
    batch_id,
    ingest_micro_batch,
    latest_versions,
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


def _sent(start: dt.datetime, end: dt.datetime, lead_minutes: int) -> pd.DataFrame:
    """The versions of DAY's flights a replay from ``start`` sends before ``end``.

    The replay's feed starts with it: only flights announced from ``start`` on.
    """
    versions, when = feed_versions(load_raw("flights"), lead_minutes)
    on_day = (versions["month"] == str(DAY.month)) & (versions["day"] == str(DAY.day))
    announced = (
        pd.to_datetime(versions["time_hour"], utc=True)
        + pd.to_timedelta(pd.to_numeric(versions["minute"]), unit="m")
        - pd.Timedelta(minutes=lead_minutes)
    )
    return versions[(when >= start) & (when < end) & on_day & (announced >= start)]


def _day(lake: Lake, key: list[str]) -> pd.DataFrame:
    return latest_versions(lake.read_frame("raw", "flights", "flights", DAY), key)


def test_each_version_lands_once_and_the_latest_wins_across_batches_and_reruns(
    settings, micro, landing
) -> None:
    replay = _replay(landing, micro)
    lake = Lake(settings.lake_dir)
    key = micro.datasets["flights"].key
    results = []
    for i in range(4):  # four one-minute windows, one hour of stream each
        wall = WALL + i * MINUTE
        replay.emit(STREAM_START + (i + 1) * dt.timedelta(hours=1), wall + dt.timedelta(seconds=5))
        results.append(ingest_micro_batch(settings, micro, wall, wall + MINUTE, run_id=f"r{i}"))
    sent = _sent(STREAM_START, STREAM_START + dt.timedelta(hours=4), 60)
    last = sent.drop_duplicates(subset=key, keep="last")
    stored = lake.read_frame("raw", "flights", "flights", DAY)
    assert len(stored) == sum(r.datasets["flights"].admitted for r in results)
    assert sum(r.datasets["flights"].updates for r in results) > 0
    day = _day(lake, key)
    assert len(day) == len(last) > 0 and len(stored) > len(day)
    # Each record holds its latest version: what departed has its delay, what landed its
    # arrival delay; nothing is known before the feed sent it.
    last = last.astype({"year": int, "month": int, "day": int, "flight": int})
    merged = day.merge(last, on=key, suffixes=("", "_sent"))
    assert len(merged) == len(day)
    landed = merged["arr_delay_sent"] != "NA"
    assert merged.loc[landed, "arr_delay"].notna().all() and landed.any()
    assert merged.loc[~landed, "arr_delay"].isna().all() and (~landed).any()
    departed = merged["dep_delay_sent"] != "NA"
    assert merged.loc[departed, "dep_delay"].notna().all()
    assert merged.loc[~departed, "dep_delay"].isna().all() and (~departed).any()
    assert results[-1].days == [DAY]
    assert len(lake.manifest("raw", "flights", "flights", DAY)["batches"]) == 4

    # Rerunning the second batch changes nothing: same files, same rows, same commit.
    log = CommitLog.of(settings, "flights")
    before = log.get(WALL + 2 * MINUTE)
    again = ingest_micro_batch(settings, micro, WALL + MINUTE, WALL + 2 * MINUTE, run_id="rerun")
    assert again.datasets["flights"].admitted == results[1].datasets["flights"].admitted
    assert len(lake.read_frame("raw", "flights", "flights", DAY)) == len(stored)
    assert _day(lake, key).equals(day)
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
    key = micro.datasets["flights"].key
    sent = _sent(STREAM_START, STREAM_START + dt.timedelta(hours=4), 60)
    assert len(_day(Lake(settings.lake_dir), key)) == sent[key].drop_duplicates().shape[0] > 0
    total = first.datasets["flights"].admitted + later.datasets["flights"].admitted
    assert len(Lake(settings.lake_dir).read_frame("raw", "flights", "flights", DAY)) == total


def test_a_resent_version_is_a_duplicate_and_a_changed_one_replaces_it(
    settings, micro, landing
) -> None:
    replay = _replay(landing, micro)
    replay.emit(STREAM_START + dt.timedelta(hours=1), WALL + dt.timedelta(seconds=1))
    first = ingest_micro_batch(settings, micro, WALL, WALL + MINUTE)
    key = micro.datasets["flights"].key
    before = _day(Lake(settings.lake_dir), key)
    resent = _sent(STREAM_START, STREAM_START + dt.timedelta(hours=1), 60).drop_duplicates(
        subset=key, keep="last"
    )
    landing.write(arrival_key("flights", WALL + MINUTE, "resend"), _csv_bytes(resent))
    second = ingest_micro_batch(settings, micro, WALL + MINUTE, WALL + 2 * MINUTE)
    assert second.datasets["flights"].duplicates == len(resent) == len(before) > 0
    assert second.datasets["flights"].admitted == second.datasets["flights"].updates == 0
    assert _day(Lake(settings.lake_dir), key).equals(before)

    changed = resent.head(5).copy()
    changed["dep_delay"] = "999"  # a correction: the later version replaces the earlier
    landing.write(arrival_key("flights", WALL + 2 * MINUTE, "fix"), _csv_bytes(changed))
    third = ingest_micro_batch(settings, micro, WALL + 2 * MINUTE, WALL + 3 * MINUTE)
    assert third.datasets["flights"].updates == third.datasets["flights"].admitted == 5
    after = _day(Lake(settings.lake_dir), key)
    # A record per key: the first batch's new keys (its other rows were their updates).
    made = first.datasets["flights"]
    assert len(after) == len(before) == made.admitted - made.updates
    assert (after["dep_delay"] == 999).sum() == 5

    # Two corrections of the same flights in one delivery: both are kept, in order, and
    # the later one is read; every row is admitted or a counted duplicate.
    again = changed.assign(dep_delay="998")
    twice = pd.concat([changed.assign(dep_delay="997"), again])
    landing.write(arrival_key("flights", WALL + 3 * MINUTE, "fix2"), _csv_bytes(twice))
    fourth = ingest_micro_batch(settings, micro, WALL + 3 * MINUTE, WALL + 4 * MINUTE)
    stats = fourth.datasets["flights"]
    assert stats.admitted == stats.updates == 10 and stats.duplicates == 0
    assert stats.rows == stats.admitted + stats.duplicates + stats.late + stats.untimed
    after = _day(Lake(settings.lake_dir), key)
    assert (after["dep_delay"] == 998).sum() == 5 and not (after["dep_delay"] == 997).any()
    stored = Lake(settings.lake_dir).read_frame("raw", "flights", "flights", DAY)
    assert (stored["dep_delay"] == 997).sum() == 5  # the superseded version is kept


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


def test_an_update_is_admitted_until_its_record_settles_then_it_is_late(
    settings, micro, landing
) -> None:
    replay = _replay(landing, micro, hours=14)
    replay.emit(STREAM_START + dt.timedelta(hours=14), WALL + dt.timedelta(seconds=1))
    first = ingest_micro_batch(settings, micro, WALL, WALL + MINUTE)
    watermark = pd.Timestamp(first.datasets["flights"].watermark)
    key = micro.datasets["flights"].key
    day = _day(Lake(settings.lake_dir), key)
    behind = watermark - day["time_hour"]
    # 4-11 h behind: beyond the 3 h lateness of a new record, within the 12 h settling.
    recent = day[(behind > pd.Timedelta(hours=4)) & (behind < pd.Timedelta(hours=11))].head(3)
    settled = day[behind > pd.Timedelta(hours=12, minutes=30)].head(3)
    assert len(recent) == len(settled) == 3
    fixes = pd.concat([recent, settled]).copy()
    fixes["dep_delay"] = 777.0
    landing.write(arrival_key("flights", WALL + MINUTE, "fix"), fixes.to_csv(index=False).encode())
    second = ingest_micro_batch(settings, micro, WALL + MINUTE, WALL + 2 * MINUTE, run_id="fix")
    assert second.datasets["flights"].updates == second.datasets["flights"].admitted == 3
    assert second.datasets["flights"].late == 3
    after = _day(Lake(settings.lake_dir), key).set_index(key)
    assert (after.loc[recent.set_index(key).index, "dep_delay"] == 777).all()
    assert (after.loc[settled.set_index(key).index, "dep_delay"] != 777).all()
    kept = Lake(settings.lake_dir).read_frame("quarantine", "flights", "flights.late", DAY)
    assert len(kept) == 3 and kept["_reasons"].str.contains("update of a record").all()


def test_the_stream_never_writes_into_a_day_ingested_whole(settings, micro, landing) -> None:
    from runway_mlops.sample.seed import seed_files
    from runway_mlops.stages.ingest import ingest

    daily = micro.model_copy(update={"cadence": "@daily"})
    seed_files(landing, daily, DAY, DAY)
    ingest(settings, daily, DAY)
    lake = Lake(settings.lake_dir)
    before = lake.read_frame("raw", "flights", "flights", DAY)
    replay = _replay(landing, micro)
    replay.emit(STREAM_START + dt.timedelta(hours=2), WALL + dt.timedelta(seconds=1))
    result = ingest_micro_batch(settings, micro, WALL, WALL + MINUTE, run_id="over")
    assert result.datasets["flights"].admitted == 0
    assert result.datasets["flights"].late == result.datasets["flights"].rows > 0
    assert lake.read_frame("raw", "flights", "flights", DAY).equals(before)
    kept = lake.read_frame("quarantine", "flights", "flights.settled", DAY)
    assert kept["_reasons"].str.contains("ingested whole").all()


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
    # March 5 (EST) ends at 05:00 UTC on March 6; the day stays open for updates for the
    # label's 12 h (longer than the 3 h lateness): the flights watermark (scheduled
    # departures) passes 17:00 UTC on March 6 in exactly one batch.
    assert [d for _, d in closed] == [DAY]
    assert result.clock is not None and result.clock > STREAM_START


def test_micro_batch_needs_a_file_source(settings, micro) -> None:
    from runway_mlops.errors import ConfigError

    postgres = micro.model_copy(
        update={"source": micro.source.model_copy(update={"kind": "postgres"})}
    )
    with pytest.raises(ConfigError, match="micro-batch ingestion reads landing files"):
        ingest_micro_batch(settings, postgres, WALL, WALL + MINUTE)
