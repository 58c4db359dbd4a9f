"""The file source reads the landing contract strictly and names what is wrong."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runway_mlops.config import load_pipeline
from runway_mlops.errors import CorruptDeliveryError, SourceDataError, SourceUnavailableError
from runway_mlops.sources import FileSource, day_interval, parse_csv, read_file
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


# ------------------------------------------------------------ every file, or why not


def _day(store: LocalStore, name: str, data: bytes, dataset: str = "weather") -> None:
    store.write(f"{dataset}/ds=2013-01-01/{name}", data)


WEATHER = b"origin,year,month,day,hour,temp,dewp,humid,wind_dir,wind_speed,wind_gust,precip,pressure,visib,time_hour\n"
ROW = b"EWR,2013,1,1,1,39.02,26.06,59.37,270,10.35702,NA,0,1012,10,2013-01-01T06:00:00Z\n"


def test_files_of_a_day_are_read_together_in_key_order(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    _day(store, "a.csv", WEATHER + ROW)
    _day(store, "b.Csv", WEATHER + ROW.replace(b"EWR", b"JFK"))
    _day(store, "sub/c.CSV", WEATHER + ROW.replace(b"EWR", b"LGA"))
    delivery = FileSource(store, PIPELINE).read("weather", dt.date(2013, 1, 1))
    assert delivery.frame["origin"].tolist() == ["EWR", "JFK", "LGA"]
    assert [f["key"] for f in delivery.provenance["files"]] == [
        "weather/ds=2013-01-01/a.csv",
        "weather/ds=2013-01-01/b.Csv",
        "weather/ds=2013-01-01/sub/c.CSV",
    ]


def test_a_day_with_only_a_file_of_another_format_is_refused_not_missing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    _day(store, "weather.parquet", b"PAR1")
    with pytest.raises(CorruptDeliveryError, match="weather.parquet is a Parquet file") as err:
        FileSource(store, PIPELINE).read("weather", dt.date(2013, 1, 1))
    assert err.value.files == {"weather/ds=2013-01-01/weather.parquet": b"PAR1"}


def test_a_csv_file_in_a_parquet_source_is_refused(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    _day(store, "weather.csv", WEATHER + ROW)
    with pytest.raises(
        CorruptDeliveryError, match=r"weather.csv is a CSV file, but this source delivers Parquet"
    ):
        FileSource(store, PIPELINE, "parquet").read("weather", dt.date(2013, 1, 1))


def test_a_day_of_hidden_files_only_is_not_delivered_yet(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    _day(store, ".weather.csv.tmp", WEATHER)
    with pytest.raises(SourceUnavailableError, match=r"only hidden files.*\.weather\.csv\.tmp"):
        FileSource(store, PIPELINE).read("weather", dt.date(2013, 1, 1))


def test_a_linked_reference_snapshot_is_refused(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "landing")
    store.write("airlines/ds=2013-01-01/airlines.csv", b"carrier,name\nAA,Old\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "airlines.csv").write_bytes(b"carrier,name\nAA,Evil\n")
    (tmp_path / "landing" / "airlines" / "ds=2013-03-01").symlink_to(outside)
    with pytest.raises(
        CorruptDeliveryError, match=r"airlines/ds=2013-03-01 is a symbolic link"
    ) as err:
        FileSource(store, PIPELINE).read("airlines", dt.date(2013, 3, 1))
    assert err.value.files == {}
    # An earlier day still reads its own snapshot.
    assert FileSource(store, PIPELINE).read("airlines", dt.date(2013, 2, 1)).frame[
        "name"
    ].tolist() == ["Old"]


def test_parquet_files_disagreeing_on_a_type_are_refused(tmp_path: Path) -> None:
    import pandas as pd

    store = LocalStore(tmp_path)
    frame = pd.DataFrame({"carrier": ["AA"], "name": ["American"]})
    store.write("airlines/ds=2013-01-01/a.parquet", frame.to_parquet(index=False))
    store.write("airlines/ds=2013-01-01/b.parquet", frame.assign(name=[7]).to_parquet(index=False))
    with pytest.raises(
        CorruptDeliveryError, match=r"b.parquet: column name holds number values, but string"
    ):
        FileSource(store, PIPELINE, "parquet").read("airlines", dt.date(2013, 1, 1))


def test_naive_and_unparseable_times_in_two_files_stay_one_text_column(tmp_path: Path) -> None:
    """One file fully naive, one with a bad time: both stay text, for validation to judge."""
    store = LocalStore(tmp_path)
    naive = ROW.replace(b"2013-01-01T06:00:00Z", b"2013-01-01 01:00:00")
    _day(store, "a.csv", WEATHER + naive)
    _day(store, "b.csv", WEATHER + ROW.replace(b"2013-01-01T06:00:00Z", b"nan"))
    delivery = FileSource(store, PIPELINE).read("weather", dt.date(2013, 1, 1))
    assert delivery.frame["time_hour"].tolist() == ["2013-01-01T06:00Z", "nan"]
    assert delivery.provenance["naive_timestamps"]["values"] == {
        "weather/ds=2013-01-01/a.csv": {"time_hour": 1}
    }


# ------------------------------------------------------------------ parse failures


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"a,b,a\n1,2,3\n", r"malformed header: repeated column name\(s\) 'a' \(2 times\)"),
        (b"a,,b\n1,2,3\n", r"malformed header: column\(s\) #2 of 3 have no name"),
        (b"a, \n1,2\n", r"malformed header: column\(s\) #2 of 2 have no name"),
        (b"a,\xff\xfeb\n1,2\n", r"is not UTF-8 text"),
        (b"a,b\n1,2\n\xff,3\n", r"is not UTF-8 text"),
        (b"a,b\n" + b"1,2\n" * 100_000 + b"\xff,3\n", r"is not valid CSV: .*invalid UTF8"),
        (b'a,"b\n1,2\n', r"is not valid CSV|malformed header"),
        (b"\n\n", r"is empty"),
    ],
)
def test_every_csv_parse_failure_is_a_source_data_error(data: bytes, why: str) -> None:
    with pytest.raises(SourceDataError, match=why):
        parse_csv(data, "x.csv")


def test_every_csv_column_is_read_as_delivered_text() -> None:
    """Undeclared columns too: raw keeps "007" and "1.50", not what a type guess made of them."""
    frame = parse_csv(b"carrier,extra,when\nAA,007,2013-01-01\nB6,1.50,NA\n", "x.csv")
    assert frame["extra"].tolist() == ["007", "1.50"]
    assert frame["when"].tolist()[0] == "2013-01-01" and frame["when"].isna().tolist()[1]


@pytest.mark.parametrize(
    ("table", "why"),
    [
        ("duplicate", r"malformed header: repeated column name\(s\) 'a'"),
        ("garbage", r"is not a readable Parquet file: Parquet file size is 29 bytes"),
    ],
)
def test_every_parquet_parse_failure_is_a_source_data_error(table: str, why: str) -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from runway_mlops.sources import parse_parquet

    if table == "duplicate":
        buffer = io.BytesIO()
        pq.write_table(pa.table([pa.array([1]), pa.array([2])], names=["a", "a"]), buffer)
        data = buffer.getvalue()
    else:
        data = b"PAR1 this is not parquet PAR1"
    with pytest.raises(SourceDataError, match=why):
        parse_parquet(data, "x.parquet")


@settings(max_examples=150, deadline=None)
@given(
    cut=st.integers(min_value=0, max_value=len(WEATHER + ROW) - 1),
    noise=st.binary(max_size=12),
    fmt=st.sampled_from(["csv", "parquet"]),
)
def test_any_damaged_file_is_read_or_refused_never_a_traceback(
    cut: int, noise: bytes, fmt: str
) -> None:
    """Bytes spliced into a good file: a frame, or a SourceDataError naming the file."""
    data = (WEATHER + ROW)[:cut] + noise + (WEATHER + ROW)[cut:]
    if fmt == "parquet":
        good = parse_csv(WEATHER + ROW, "w.csv").to_parquet(index=False)
        data = good[:cut] + noise + good[cut + len(noise) :]
    try:
        read_file(data, "w." + fmt, fmt, PIPELINE.datasets["weather"], PIPELINE.zone)
    except SourceDataError as exc:
        assert str(exc).startswith("w." + fmt)


# ------------------------------------------------------------------ the store


def test_local_store_never_follows_a_link_in_any_segment(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    (outside / "deep" / "x.csv").write_bytes(b"secret\n")
    root = tmp_path / "root"
    store = LocalStore(root)
    store.write("d/ds=2013-01-01/real.csv", b"a\n1\n")
    (root / "d" / "ds=2013-01-01" / "file.csv").symlink_to(outside / "deep" / "x.csv")
    (root / "d" / "ds=2013-01-01" / "folder").symlink_to(outside, target_is_directory=True)
    (root / "e").symlink_to(outside, target_is_directory=True)

    listing = store.scan("d")
    assert [o.key for o in listing.objects] == ["d/ds=2013-01-01/real.csv"]
    assert [r.key for r in listing.refused] == [
        "d/ds=2013-01-01/file.csv",
        "d/ds=2013-01-01/folder",
    ]
    assert [r.key for r in store.scan("e/deep").refused] == ["e"]
    assert store.list("d") == listing.objects
    for key in ("d/ds=2013-01-01/file.csv", "d/ds=2013-01-01/folder/deep/x.csv", "e/deep/x.csv"):
        with pytest.raises(SourceDataError, match="is a symbolic link"):
            store.read(key)
    for key in ("../outside/deep/x.csv", "d/../../outside/deep/x.csv", "/etc/passwd", "d//x"):
        with pytest.raises(SourceDataError, match="outside the landing root|absolute|empty"):
            store.read(key)


def test_local_store_refuses_a_named_pipe_without_waiting_for_a_writer(tmp_path: Path) -> None:
    import os

    (tmp_path / "d").mkdir()
    os.mkfifo(tmp_path / "d" / "pipe.csv")
    store = LocalStore(tmp_path)
    assert [(r.key, r.reason) for r in store.scan("d").refused] == [
        ("d/pipe.csv", "is not a regular file (a pipe, socket or device)")
    ]
    with pytest.raises(SourceDataError, match="is not a regular file"):
        store.read("d/pipe.csv")
