"""The file source reads the landing contract strictly and names what is wrong."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from runway_mlops.config import load_pipeline
from runway_mlops.errors import SourceDataError, SourceUnavailableError
from runway_mlops.sources import CorruptDeliveryError, FileSource, day_interval, parse_csv
from runway_mlops.storage import LocalStore
from tests.conftest import CONFIG_DIR

PIPELINE = load_pipeline(CONFIG_DIR / "pipelines" / "flights.yaml")


def test_truncated_csv_is_rejected() -> None:
    with pytest.raises(SourceDataError, match="x.csv is truncated"):
        parse_csv(b"a,b\n1,2\n3,", "x.csv")


def test_ragged_csv_is_rejected() -> None:
    with pytest.raises(SourceDataError, match="x.csv is not valid CSV.*Expected 3 columns"):
        parse_csv(b"a,b,c\n1,2,3\n4,5\n", "x.csv")


def test_csv_columns_are_read_as_text_with_na() -> None:
    frame = parse_csv(b"a,b\n1,NA\n007,x\n", "x.csv")
    assert frame["a"].tolist() == ["1", "007"]
    assert frame["b"].isna().tolist() == [True, False]


def test_events_day_not_delivered(tmp_path: Path) -> None:
    source = FileSource(LocalStore(tmp_path), PIPELINE)
    with pytest.raises(
        SourceUnavailableError, match=r"no delivery of 'flights' for 2013-01-02.*ds=2013-01-02/"
    ):
        source.read("flights", dt.date(2013, 1, 2))


def test_reference_uses_latest_snapshot_on_or_before_day(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.write("airlines/ds=2013-01-01/airlines.csv", b"carrier,name\nAA,Old\n")
    store.write("airlines/ds=2013-03-01/airlines.csv", b"carrier,name\nAA,New\n")
    source = FileSource(store, PIPELINE)
    assert source.read("airlines", dt.date(2013, 2, 1)).frame["name"].tolist() == ["Old"]
    assert source.read("airlines", dt.date(2013, 3, 1)).frame["name"].tolist() == ["New"]
    with pytest.raises(SourceUnavailableError, match="no snapshot of reference dataset 'airlines'"):
        source.read("airlines", dt.date(2012, 12, 31))


def test_corrupt_file_carries_its_bytes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.write("weather/ds=2013-01-01/weather.csv", b"origin,temp\nEWR,3")
    with pytest.raises(CorruptDeliveryError) as err:
        FileSource(store, PIPELINE).read("weather", dt.date(2013, 1, 1))
    assert err.value.files == {"weather/ds=2013-01-01/weather.csv": b"origin,temp\nEWR,3"}


def test_day_interval_follows_daylight_saving() -> None:
    start, end = day_interval(dt.date(2013, 3, 10), PIPELINE.zone)
    assert (end - start) == dt.timedelta(hours=23)
    assert start == dt.datetime(2013, 3, 10, 5, tzinfo=dt.UTC)
