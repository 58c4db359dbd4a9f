"""Ingest accounts for every file of a day's delivery and every row of it.

Each file is read or the delivery is refused with the file's name and why (the contract
in :mod:`runway_mlops.sources`); nothing outside the landing root is read or copied;
naive timestamps are local time; rows of another day never reach the day's validated
partition; a malformed file never ends in a traceback.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runway_mlops import catalog
from runway_mlops.errors import DataValidationError, SourceDataError
from runway_mlops.lake import Lake
from runway_mlops.sample.seed import seed
from runway_mlops.sources import day_interval
from runway_mlops.stages.ingest import ingest
from runway_mlops.stages.validate import validate

DAY = dt.date(2013, 1, 2)


def _day_folder(settings, dataset: str = "flights") -> Path:
    return Path(settings.landing_uri) / dataset / f"ds={DAY}"


def _split(path: Path) -> tuple[bytes, list[bytes]]:
    """The header line and the data lines of a seeded CSV file."""
    header, *lines = path.read_bytes().splitlines(keepends=True)
    return header, lines


def _kept(settings, dataset: str = "flights") -> Path:
    return (
        Lake(settings.lake_dir).partition_dir("quarantine", "flights", f"{dataset}.delivery", DAY)
        / "source-files"
    )


def _files_holding(root: Path, marker: bytes) -> list[Path]:
    """Regular files under ``root`` (links not followed) whose bytes contain ``marker``."""
    return [
        p
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and marker in p.read_bytes()
    ]


@pytest.fixture
def day(settings, flights_pipeline):
    seed(settings, flights_pipeline, "files", DAY, DAY)
    return settings


# ------------------------------------------------------------------ every file


def test_a_day_in_two_files_is_ingested_whole_whatever_the_extension_case(
    day, flights_pipeline
) -> None:
    folder = _day_folder(day)
    header, lines = _split(folder / "flights.csv")
    half = len(lines) // 2
    (folder / "flights.csv").write_bytes(header + b"".join(lines[:half]))
    (folder / "flights-late.CSV").write_bytes(header + b"".join(lines[half:]))

    result = ingest(day, flights_pipeline, DAY, run_id="t")

    assert result.rows["flights"] == len(lines)
    lake = Lake(day.lake_dir)
    assert len(lake.read_frame("raw", "flights", "flights", DAY)) == len(lines)
    files = lake.manifest("raw", "flights", "flights", DAY)["source"]["files"]
    assert [(f["key"].rsplit("/", 1)[-1], f["rows"]) for f in files] == [
        ("flights-late.CSV", len(lines) - half),
        ("flights.csv", half),
    ]


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("extra.parquet", r"extra.parquet is a Parquet file, but this source delivers CSV"),
        ("notes.txt", r"notes.txt is not a .csv file \(.txt\)"),
        ("README", r"README has no file extension"),
        ("flights.csv.gz", r"flights.csv.gz is not a .csv file \(.gz\)"),
    ],
)
def test_a_file_of_another_format_refuses_the_delivery_and_is_kept(
    day, flights_pipeline, name, why
) -> None:
    folder = _day_folder(day)
    other = b"PAR1 not really, but kept byte for byte\n"
    (folder / name).write_bytes(other)
    csv = (folder / "flights.csv").read_bytes()

    with pytest.raises(SourceDataError, match=why):
        ingest(day, flights_pipeline, DAY, run_id="t")

    lake = Lake(day.lake_dir)
    assert not lake.exists("raw", "flights", "flights", DAY)
    assert lake.exists("raw", "flights", "weather", DAY)  # the other datasets carry on
    kept = _kept(day) / "flights" / f"ds={DAY}"
    assert (kept / name).read_bytes() == other
    assert (kept / "flights.csv").read_bytes() == csv
    [entry] = catalog.list_quarantine(day.database_url, "flights")
    assert entry.scope == "delivery" and name in next(iter(entry.reasons))


def test_hidden_files_are_ignored_and_named_in_the_provenance(day, flights_pipeline) -> None:
    folder = _day_folder(day)
    (folder / ".flights.csv.1234.tmp").write_bytes(b"year,month\n2013,")  # a writer in flight
    ingest(day, flights_pipeline, DAY, run_id="t")
    source = Lake(day.lake_dir).manifest("raw", "flights", "flights", DAY)["source"]
    assert source["ignored_hidden"] == [f"flights/ds={DAY}/.flights.csv.1234.tmp"]


# ------------------------------------------------------------------------ links


def test_a_link_to_a_file_outside_the_landing_root_is_refused_never_read(
    day, flights_pipeline, tmp_path
) -> None:
    folder = _day_folder(day)
    secret = tmp_path / "outside" / "more.csv"
    secret.parent.mkdir()
    marker = b"SECRET-OUTSIDE-THE-LANDING-ROOT"
    # A valid CSV of the right columns: the old code ingested it as part of the day.
    frame = pd.read_csv(folder / "flights.csv", dtype=str, keep_default_na=False).head(3)
    frame["tailnum"] = marker.decode()
    secret.write_text(frame.to_csv(index=False, lineterminator="\n"))
    (folder / "more.csv").symlink_to(secret)

    with pytest.raises(SourceDataError) as err:
        ingest(day, flights_pipeline, DAY, run_id="t")

    message = str(err.value)
    assert f"flights/ds={DAY}/more.csv is a symbolic link" in message
    assert marker.decode() not in message and str(secret) not in message
    assert not Lake(day.lake_dir).exists("raw", "flights", "flights", DAY)
    assert _files_holding(Path(day.lake_dir), marker) == []
    kept = _kept(day) / "flights" / f"ds={DAY}"
    assert sorted(p.name for p in kept.iterdir()) == ["flights.csv"]  # the real file only


def test_a_link_to_a_system_file_is_never_copied_or_printed(day, flights_pipeline, capsys) -> None:
    passwd = Path("/etc/passwd")
    first_line = passwd.read_bytes().splitlines()[0]
    (_day_folder(day) / "users.csv").symlink_to(passwd)

    with pytest.raises(SourceDataError, match=r"users.csv is a symbolic link") as err:
        ingest(day, flights_pipeline, DAY, run_id="t")

    assert first_line.decode() not in str(err.value)
    assert first_line.decode() not in capsys.readouterr().out
    assert _files_holding(Path(day.lake_dir), first_line) == []


def test_a_linked_day_folder_is_refused(day, flights_pipeline, tmp_path) -> None:
    folder = _day_folder(day)
    elsewhere = tmp_path / "elsewhere"
    folder.rename(elsewhere)
    folder.symlink_to(elsewhere, target_is_directory=True)

    with pytest.raises(SourceDataError, match=rf"flights/ds={DAY} is a symbolic link"):
        ingest(day, flights_pipeline, DAY, run_id="t")
    assert not Lake(day.lake_dir).exists("raw", "flights", "flights", DAY)
    assert not _kept(day).exists() or not any(_kept(day).rglob("*.csv"))


def test_a_linked_folder_inside_the_day_is_refused(day, flights_pipeline, tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "flights.csv").write_bytes((_day_folder(day) / "flights.csv").read_bytes())
    (_day_folder(day) / "more").symlink_to(outside, target_is_directory=True)
    with pytest.raises(SourceDataError, match=rf"flights/ds={DAY}/more is a symbolic link"):
        ingest(day, flights_pipeline, DAY, run_id="t")


# ---------------------------------------------------------------- malformed files


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (lambda h: h.replace(b",tailnum,", b",carrier,"), r"repeated column name\(s\) 'carrier'"),
        (lambda h: h.replace(b",tailnum,", b",,"), r"column\(s\) #12 of 19 have no name"),
    ],
    ids=["repeated", "empty"],
)
def test_a_malformed_header_is_quarantined_with_its_reason(
    day, flights_pipeline, header, why
) -> None:
    path = _day_folder(day) / "flights.csv"
    first, lines = _split(path)
    broken = header(first) + b"".join(lines)
    assert broken != first + b"".join(lines)
    path.write_bytes(broken)

    with pytest.raises(SourceDataError, match=rf"flights.csv has a malformed header: .*{why}"):
        ingest(day, flights_pipeline, DAY, run_id="t")

    assert (_kept(day) / "flights" / f"ds={DAY}" / "flights.csv").read_bytes() == broken
    assert Lake(day.lake_dir).exists("raw", "flights", "weather", DAY)


def test_files_of_one_delivery_with_different_columns_are_refused(day, flights_pipeline) -> None:
    folder = _day_folder(day)
    header, lines = _split(folder / "flights.csv")
    (folder / "flights.csv").write_bytes(header + b"".join(lines[:10]))
    frame = pd.read_csv(io.BytesIO(header + b"".join(lines[10:])), dtype=str)
    late = frame.drop(columns=["tailnum"]).to_csv(index=False, lineterminator="\n").encode()
    (folder / "late.csv").write_bytes(late)

    with pytest.raises(SourceDataError, match=r"late.csv has other columns .*lacks tailnum"):
        ingest(day, flights_pipeline, DAY, run_id="t")


def test_a_parquet_value_the_lake_cannot_hold_is_quarantined(settings, flights_pipeline) -> None:
    """A map column reads into pandas but cannot be written back: no traceback."""
    parquet = flights_pipeline.model_copy(
        update={"source": flights_pipeline.source.model_copy(update={"format": "parquet"})}
    )
    seed(settings, parquet, "files", DAY, DAY)
    path = _day_folder(settings) / "flights.parquet"
    table = pq.read_table(path)
    meta = pa.array([[("k", 1)]] * table.num_rows, pa.map_(pa.string(), pa.int64()))
    pq.write_table(table.append_column("meta", meta), path)

    with pytest.raises(SourceDataError, match=r"'flights' for 2013-01-02 .*cannot be stored"):
        ingest(settings, parquet, DAY, run_id="t")
    kept = _kept(settings) / "flights" / f"ds={DAY}" / "flights.parquet"
    assert kept.read_bytes() == path.read_bytes()
    assert not Lake(settings.lake_dir).exists("raw", "flights", "flights", DAY)


# ------------------------------------------------------------------ timestamps


def test_naive_parquet_timestamps_are_local_time(settings, flights_pipeline) -> None:
    parquet = flights_pipeline.model_copy(
        update={"source": flights_pipeline.source.model_copy(update={"format": "parquet"})}
    )
    seed(settings, parquet, "files", DAY, DAY)
    path = _day_folder(settings) / "flights.parquet"
    frame = pd.read_parquet(path)
    utc = frame["time_hour"].copy()
    # A local provider: wall-clock New York time, no offset.
    frame["time_hour"] = utc.dt.tz_convert("America/New_York").dt.tz_localize(None)
    frame.to_parquet(path, index=False)
    assert pq.read_schema(path).field("time_hour").type.tz is None

    ingest(settings, parquet, DAY, run_id="t")

    lake = Lake(settings.lake_dir)
    raw = lake.read_frame("raw", "flights", "flights", DAY)
    pd.testing.assert_series_equal(raw["time_hour"], utc, check_names=False)
    naive = lake.manifest("raw", "flights", "flights", DAY)["source"]["naive_timestamps"]
    assert naive == {
        "read_in": "America/New_York",
        "values": {f"flights/ds={DAY}/flights.parquet": {"time_hour": len(frame)}},
    }


def test_naive_csv_timestamps_are_local_time(day, flights_pipeline) -> None:
    path = _day_folder(day) / "flights.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    utc = pd.to_datetime(frame["time_hour"], utc=True)
    frame["time_hour"] = utc.dt.tz_convert("America/New_York").dt.strftime("%Y-%m-%d %H:%M:%S")
    path.write_text(frame.to_csv(index=False, lineterminator="\n"))

    ingest(day, flights_pipeline, DAY, run_id="t")

    raw = Lake(day.lake_dir).read_frame("raw", "flights", "flights", DAY)
    assert raw["time_hour"].tolist() == utc.tolist()


def test_a_naive_time_daylight_saving_makes_ambiguous_is_refused(
    settings, flights_pipeline
) -> None:
    fall_back = dt.date(2013, 11, 3)  # 01:00-02:00 happens twice in New York
    seed(settings, flights_pipeline, "files", fall_back, fall_back)
    path = Path(settings.landing_uri) / "weather" / f"ds={fall_back}" / "weather.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    local = pd.to_datetime(frame["time_hour"], utc=True).dt.tz_convert("America/New_York")
    frame["time_hour"] = local.dt.strftime("%Y-%m-%d %H:%M:%S")
    path.write_text(frame.to_csv(index=False, lineterminator="\n"))

    with pytest.raises(
        SourceDataError,
        match=r"weather.csv: column time_hour has timestamps without a UTC offset that name "
        r"no single instant in America/New_York \(2013-11-03 01:00:00 occurs twice\)",
    ):
        ingest(settings, flights_pipeline, fall_back, run_id="t")
    assert (_kept_day(settings, "weather", fall_back) / "weather.csv").exists()


def _kept_day(settings, dataset: str, ds: dt.date) -> Path:
    return (
        Lake(settings.lake_dir).partition_dir("quarantine", "flights", f"{dataset}.delivery", ds)
        / "source-files"
        / dataset
        / f"ds={ds}"
    )


# ------------------------------------------------------------------- interval


def test_rows_of_another_day_are_quarantined_not_validated(day, flights_pipeline) -> None:
    seed(day, flights_pipeline, "files", DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=1))
    path = _day_folder(day) / "flights.csv"
    _, lines = _split(path)
    _, next_day = _split(
        Path(day.landing_uri) / "flights" / f"ds={DAY + dt.timedelta(days=1)}" / "flights.csv"
    )
    path.write_bytes(path.read_bytes() + b"".join(next_day[:20]))

    ingest(day, flights_pipeline, DAY, run_id="t")
    lake = Lake(day.lake_dir)
    assert len(lake.read_frame("raw", "flights", "flights", DAY)) == len(lines) + 20
    outcome = validate(day, flights_pipeline, DAY, run_id="t")

    start, end = day_interval(DAY, flights_pipeline.zone)
    validated = lake.read_frame("validated", "flights", "flights", DAY)
    assert validated["time_hour"].between(start, end, inclusive="left").all()
    quarantined = lake.read_frame("quarantine", "flights", "flights", DAY)
    reason = (
        "time_hour outside the delivered day 2013-01-02 "
        "(America/New_York: 2013-01-02 05:00 to 2013-01-03 05:00 UTC)"
    )
    outside = quarantined[quarantined["_reasons"].str.contains(reason, regex=False)]
    assert len(outside) == 20
    assert not outside["time_hour"].between(start, end, inclusive="left").any()
    assert outcome.datasets["flights"].quarantine_reasons[reason] == 20


def test_a_delivery_of_the_wrong_day_is_blocked_by_the_quarantine_limit(
    day, flights_pipeline
) -> None:
    """Another day's whole file: every row is outside, over max_quarantine_fraction."""
    other = DAY + dt.timedelta(days=1)
    seed(day, flights_pipeline, "files", other, other)
    source = Path(day.landing_uri) / "weather" / f"ds={other}" / "weather.csv"
    (_day_folder(day, "weather") / "weather.csv").write_bytes(source.read_bytes())
    ingest(day, flights_pipeline, DAY, run_id="t")

    with pytest.raises(
        DataValidationError,
        match=r"weather blocked: .*rows quarantined .*"
        r"time_hour outside the delivered day 2013-01-02",
    ):
        validate(day, flights_pipeline, DAY, run_id="t")
    assert not Lake(day.lake_dir).exists("validated", "flights", "weather", DAY)


def test_the_landing_link_check_does_not_follow_a_root_that_is_a_link(
    settings, flights_pipeline, tmp_path
) -> None:
    """The landing root itself may be a link (a mounted volume): only below it counts."""
    real = tmp_path / "real-landing"
    real.mkdir()
    landing = Path(settings.landing_uri)
    landing.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(real, landing, target_is_directory=True)
    seed(settings, flights_pipeline, "files", DAY, DAY)
    assert ingest(settings, flights_pipeline, DAY, run_id="t").rows["flights"] > 0
