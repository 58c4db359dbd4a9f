"""Seeding a landing folder and ingesting a day copies it exactly, once."""

from __future__ import annotations

import datetime as dt

import pytest

from runway_mlops import catalog
from runway_mlops.errors import SourceDataError, SourceUnavailableError
from runway_mlops.lake import Lake
from runway_mlops.sample.seed import load_raw, seed
from runway_mlops.stages.ingest import ingest

DAY = dt.date(2013, 1, 2)


def test_seed_then_ingest_copies_the_day(settings, flights_pipeline) -> None:
    summary = seed(settings, flights_pipeline, "files", dt.date(2013, 1, 1), dt.date(2013, 1, 3))
    assert summary.days == 3
    result = ingest(settings, flights_pipeline, DAY, run_id="test")
    flights = load_raw("flights")
    expected = ((flights.month == "1") & (flights.day == "2")).sum()
    assert result.rows["flights"] == expected
    lake = Lake(settings.lake_dir)
    raw = lake.read_frame("raw", "flights", "flights", DAY)
    assert len(raw) == expected
    assert str(raw["dep_delay"].dtype) == "float64"
    assert str(raw["time_hour"].dtype) == "datetime64[ns, UTC]"
    assert result.rows["planes"] == len(load_raw("planes"))

    # Rerunning the day replaces it: same rows, nothing appended twice.
    ingest(settings, flights_pipeline, DAY, run_id="again")
    assert len(lake.read_frame("raw", "flights", "flights", DAY)) == expected
    rows = catalog.list_partitions(settings.database_url, "flights", zone="raw", dataset="flights")
    assert [(r["ds"], r["rows"], r["run_id"]) for r in rows] == [(DAY, expected, "again")]


def test_missing_day_names_dataset_and_folder(settings, flights_pipeline) -> None:
    seed(settings, flights_pipeline, "files", dt.date(2013, 1, 1), dt.date(2013, 1, 1))
    with pytest.raises(SourceUnavailableError, match=r"no delivery of 'flights' for 2013-01-02"):
        ingest(settings, flights_pipeline, DAY)


def test_truncated_file_goes_to_quarantine_and_other_datasets_proceed(
    settings, flights_pipeline
) -> None:
    seed(settings, flights_pipeline, "files", DAY, DAY)
    landing = settings.landing_uri
    path = f"{landing}/weather/ds={DAY}/weather.csv"
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(SourceDataError, match=r"weather.csv is (truncated|not valid CSV)"):
        ingest(settings, flights_pipeline, DAY, run_id="r1")
    lake = Lake(settings.lake_dir)
    assert lake.exists("raw", "flights", "flights", DAY)
    assert not lake.exists("raw", "flights", "weather", DAY)
    kept = (
        lake.partition_dir("quarantine", "flights", "weather.delivery", DAY)
        / "source-files"
        / "weather"
        / f"ds={DAY}"
        / "weather.csv"
    )
    assert kept.read_bytes() == data[: len(data) // 2]
    [entry] = catalog.list_quarantine(settings.database_url, "flights")
    assert (entry.dataset, entry.scope, entry.ds) == ("weather", "delivery", DAY)


def test_good_redelivery_keeps_the_corrupt_one_in_quarantine(settings, flights_pipeline) -> None:
    """Validating the re-delivered day records its own quarantine beside the old one."""
    from runway_mlops.stages.validate import validate

    seed(settings, flights_pipeline, "files", DAY, DAY)
    path = f"{settings.landing_uri}/weather/ds={DAY}/weather.csv"
    good = open(path, "rb").read()
    open(path, "wb").write(good[: len(good) // 2])
    with pytest.raises(SourceDataError):
        ingest(settings, flights_pipeline, DAY, run_id="r1")
    open(path, "wb").write(good)
    ingest(settings, flights_pipeline, DAY, run_id="r2")
    validate(settings, flights_pipeline, DAY, run_id="r2")
    entries = {
        (e.dataset, e.scope) for e in catalog.list_quarantine(settings.database_url, "flights", DAY)
    }
    assert ("weather", "delivery") in entries  # validation did not erase it
    assert ("flights", "rows") in entries  # unknown airports, from validation
    kept = Lake(settings.lake_dir).partition_dir("quarantine", "flights", "weather.delivery", DAY)
    assert (kept / "reason.json").exists()


def test_an_empty_day_is_blocked_by_validation_with_its_reason(settings, flights_pipeline) -> None:
    """A delivery with the header and no rows is ingested as what it is (0 rows), then
    validation blocks the day, quarantines it with the reason, and the other datasets of
    the day are validated."""
    from runway_mlops.errors import DataValidationError
    from runway_mlops.stages.validate import validate

    seed(settings, flights_pipeline, "files", DAY, DAY)
    path = f"{settings.landing_uri}/flights/ds={DAY}/flights.csv"
    header = open(path, "rb").read().split(b"\n", 1)[0] + b"\n"
    open(path, "wb").write(header)
    result = ingest(settings, flights_pipeline, DAY, run_id="r1")
    assert result.rows["flights"] == 0
    with pytest.raises(DataValidationError, match=r"flights 2013-01-02: flights blocked: .*row"):
        validate(settings, flights_pipeline, DAY, run_id="r1")
    lake = Lake(settings.lake_dir)
    assert not lake.exists("validated", "flights", "flights", DAY)
    assert lake.exists("validated", "flights", "weather", DAY)
    entries = catalog.list_quarantine(settings.database_url, "flights")
    [blocked] = [e for e in entries if e.dataset == "flights"]
    assert blocked.scope == "partition" and blocked.ds == DAY
    assert any("row" in reason for reason in blocked.reasons)


def test_an_empty_file_is_corrupt_and_kept(settings, flights_pipeline) -> None:
    seed(settings, flights_pipeline, "files", DAY, DAY)
    open(f"{settings.landing_uri}/weather/ds={DAY}/weather.csv", "wb").close()
    with pytest.raises(SourceDataError, match=r"weather.csv is empty: not even a header row"):
        ingest(settings, flights_pipeline, DAY, run_id="r1")
    lake = Lake(settings.lake_dir)
    assert lake.exists("raw", "flights", "flights", DAY)
    assert lake.exists("quarantine", "flights", "weather.delivery", DAY)
