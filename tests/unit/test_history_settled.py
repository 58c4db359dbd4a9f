"""A day's features wait for the earlier days they read while a running run validates them.

Without the wait, a backfill with several active runs built 2013-01-02 before 2013-01-01
was validated, and the 7-day windows of that build differed from a rerun's (CI saw
``carrier_flights_7d`` all null in one build and filled in the next).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from runway_mlops.cadence import feature_run_dates
from runway_mlops.config import load_settings
from runway_mlops.sample.seed import seed
from runway_mlops.stages.features import unsettled_history
from runway_mlops.stages.ingest import ingest
from runway_mlops.stages.validate import validate
from tests.conftest import CONFIG_DIR

D = {n: dt.date(2013, 1, n) for n in range(1, 6)}


@pytest.fixture(scope="module")
def home(tmp_path_factory, flights_pipeline):
    """Days 1..5 delivered; 1 and 3 validated; 2 and 4 not processed yet; 5 corrupt."""
    settings = load_settings(
        CONFIG_DIR, env={"RUNWAY_HOME": str(tmp_path_factory.mktemp("history") / "home")}
    )
    seed(settings, flights_pipeline, "files", D[1], D[5])
    for n in (1, 3):
        ingest(settings, flights_pipeline, D[n])
        validate(settings, flights_pipeline, D[n])
    corrupt = Path(settings.landing_uri) / "flights" / "ds=2013-01-05" / "flights.csv"
    corrupt.write_bytes(corrupt.read_bytes()[: corrupt.stat().st_size // 2])  # truncated
    with pytest.raises(Exception, match="2013-01-05"):
        ingest(settings, flights_pipeline, D[5])
    return settings


def test_a_day_waits_for_unvalidated_earlier_days(home, flights_pipeline) -> None:
    pending = unsettled_history(home, flights_pipeline, [D[4]])
    # The 7-day flights window reads days 1..3 (2 is not settled); the weather as-of
    # lookback reads day 3 (validated).
    assert pending == {D[4]: {"flights": [D[2]]}}


def test_days_before_the_start_date_and_the_runs_own_days_are_not_waited_for(
    home, flights_pipeline
) -> None:
    assert unsettled_history(home, flights_pipeline, [D[1]]) == {}
    assert unsettled_history(home, flights_pipeline, [D[3], D[4]], settled=[D[2]]) == {}
    # A daily build predicts at midnight and reads no weather; an hour-ahead one reads
    # the day before's too (its first flights' latest observation).
    assert unsettled_history(home, flights_pipeline, [D[3]]) == {D[3]: {"flights": [D[2]]}}
    micro = flights_pipeline.model_copy(update={"cadence": "*/5 * * * *"})
    assert unsettled_history(home, micro, [D[3]]) == {D[3]: {"flights": [D[2]], "weather": [D[2]]}}


def test_a_quarantined_or_failed_day_counts_as_settled(home, flights_pipeline) -> None:
    # Day 5's flights delivery was corrupt and is kept in quarantine: day 6 does not wait
    # for it (nor for day 5's weather, which that day's failed run never validated).
    pending = unsettled_history(home, flights_pipeline, [dt.date(2013, 1, 6)])
    assert pending == {dt.date(2013, 1, 6): {"flights": [D[2], D[4]]}}


def test_the_run_owning_an_earlier_day_is_found_by_its_logical_date(flights_pipeline) -> None:
    # Local midnights (America/New_York), across the DST change of 2013-03-10.
    dates = feature_run_dates(flights_pipeline, dt.date(2013, 3, 11))
    assert {k: v.in_timezone("UTC").isoformat() for k, v in dates.items()} == {
        "flights_features": "2013-03-11T04:00:00+00:00",
        "flights_features_backfill": "2013-03-01T05:00:00+00:00",
    }
