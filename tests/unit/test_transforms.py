"""Feature transforms: right values, and point-in-time correct by construction."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import Row

from runway_mlops.config import FeaturesConfig
from runway_mlops.features.transforms import compute_features

KEY = ["flight"]
UTC = dt.UTC

CONFIG = FeaturesConfig.model_validate(
    {
        "entity": "flights",
        "event_time": "time_hour + make_dt_interval(0, 0, minute, 0)",
        "prediction_lead_minutes": 60,
        "columns": {"dep_hour": "hour", "carrier": "carrier"},
        "lookups": [
            {
                "dataset": "planes",
                "join_on": {"tailnum": "tailnum"},
                "columns": {"plane_age": "e.year - r.year"},
            }
        ],
        "trailing": {
            "windows_days": [1, 3],
            "groups": {"carrier": ["carrier"]},
            "aggregates": {"flights": "count(*)", "delay_mean": "avg(arr_delay)"},
        },
        "asof": [
            {
                "dataset": "weather",
                "join_on": {"origin": "origin"},
                "max_age_minutes": 120,
                "columns": ["temp"],
            }
        ],
    }
)


def _flight(flight, day, hour, minute=0, carrier="AA", delay=10.0, tail="N1", origin="EWR"):
    return Row(
        flight=flight,
        year=2013,
        hour=hour,
        minute=minute,
        carrier=carrier,
        tailnum=tail,
        origin=origin,
        arr_delay=delay,
        time_hour=dt.datetime(2013, 1, day, hour, tzinfo=UTC),
        _ds=dt.date(2013, 1, day),
    )


def _wx(day, hour, temp, origin="EWR", minute=0):
    time = dt.datetime(2013, 1, day, hour, minute, tzinfo=UTC)
    return Row(origin=origin, temp=temp, time_hour=time, _ds=dt.date(2013, 1, day))


@pytest.fixture
def inputs(spark):
    entity = spark.createDataFrame(
        [_flight(1, 5, 14, 30), _flight(2, 5, 9, carrier="UA", tail="N9")]
    )
    history = spark.createDataFrame(
        [
            _flight(10, 4, 8, delay=20.0),  # 1 day before: in the 1d and 3d windows
            _flight(11, 2, 8, delay=40.0),  # 3 days before: only in the 3d window
            _flight(12, 1, 8, delay=1000.0),  # 4 days before: in no window
        ]
    )
    planes = spark.createDataFrame([Row(tailnum="N1", year=2003, _ds=dt.date(2013, 1, 1))])
    weather = spark.createDataFrame(
        [
            _wx(5, 11, 30.0),  # older than the 12:00 reading: not the latest
            _wx(5, 12, 31.0),  # latest at or before 13:30 -> this one
            _wx(5, 14, 99.0),  # after prediction time: must not be used
            _wx(5, 7, 20.0),  # for the 09:00 flight (prediction 08:00): 1h old
        ]
    )
    return entity, history, planes, weather


def _compute(entity, history, planes, weather, *, micro_batch=True, config=CONFIG):
    out = compute_features(
        entity,
        KEY,
        config,
        feature_version="v1",
        history=history,
        references={"planes": planes},
        observations={"weather": (weather, "time_hour")},
        micro_batch=micro_batch,
    )
    return {r["flight"]: r.asDict() for r in out.collect()}


def test_values(inputs) -> None:
    rows = _compute(*inputs)
    one, two = rows[1], rows[2]
    assert one["dep_hour"] == 14 and one["carrier"] == "AA"
    assert one["event_time"] == dt.datetime(2013, 1, 5, 14, 30)
    assert one["prediction_time"] == dt.datetime(2013, 1, 5, 13, 30)
    assert one["plane_age"] == 10
    assert two["plane_age"] is None  # unknown tail number: null, row kept
    assert one["carrier_flights_1d"] == 1 and one["carrier_delay_mean_1d"] == 20.0
    assert one["carrier_flights_3d"] == 2 and one["carrier_delay_mean_3d"] == 30.0
    assert two["carrier_flights_3d"] is None  # UA has no history
    assert one["weather_temp"] == 31.0
    assert two["weather_temp"] == 20.0
    assert one["feature_version"] == "v1"


def test_point_in_time(spark, inputs) -> None:
    """Data dated after a flight's prediction time cannot change its features."""
    entity, history, planes, weather = inputs
    before = _compute(entity, history, planes, weather)
    # Same-day outcomes (other flights of day 5) and weather after prediction time change.
    later_history = history.unionByName(spark.createDataFrame([_flight(20, 5, 6, delay=500.0)]))
    later_weather = weather.unionByName(spark.createDataFrame([_wx(5, 13, -50.0, minute=45)]))
    changed_entity = entity.withColumn("arr_delay", entity["arr_delay"] * 100)
    assert _compute(changed_entity, later_history, planes, later_weather) == before
    # ... while data from before the prediction time does change them (the test can fail).
    earlier_weather = weather.unionByName(spark.createDataFrame([_wx(5, 13, -50.0)]))
    assert _compute(entity, history, planes, earlier_weather)[1]["weather_temp"] == -50.0


def test_a_daily_run_predicts_the_whole_day_at_its_start(spark, inputs) -> None:
    """Daily cadence: every flight of the day is predicted at the day's local start (here
    UTC), so the weather is the latest row before midnight, and nothing of the day."""
    entity, history, planes, weather = inputs
    night = weather.unionByName(spark.createDataFrame([_wx(4, 23, 5.0)]))
    daily = _compute(entity, history, planes, night, micro_batch=False)
    assert {r["prediction_time"] for r in daily.values()} == {dt.datetime(2013, 1, 5)}
    assert daily[1]["weather_temp"] == daily[2]["weather_temp"] == 5.0
    hourly = _compute(entity, history, planes, night)
    assert hourly[1]["weather_temp"] == 31.0  # the micro-batch rule: an hour ahead
    # The windows do not depend on the prediction time: whole days before the day.
    assert daily[1]["carrier_flights_3d"] == hourly[1]["carrier_flights_3d"] == 2
    # A block marked micro-batch only is left out of the daily features.
    only = CONFIG.model_copy(
        update={"asof": [CONFIG.asof[0].model_copy(update={"skip_at_day_start": True})]}
    )
    skipped = _compute(entity, history, planes, night, micro_batch=False, config=only)
    assert "weather_temp" not in skipped[1] and "plane_age" in skipped[1]
    assert "weather_temp" in _compute(entity, history, planes, night, config=only)[1]


def test_labels_carry_the_outcome_and_when_it_became_known(inputs) -> None:
    from runway_mlops.config import LabelConfig
    from runway_mlops.features.transforms import label_rows

    entity = inputs[0]
    label = LabelConfig(
        name="delayed",
        expression="case when arr_delay >= 15 or arr_delay is null then 1 else 0 end",
        available_after_minutes=720,
    )
    rows = {r["flight"]: r.asDict() for r in label_rows(entity, KEY, CONFIG, label).collect()}
    by_flight = {r["flight"]: r["arr_delay"] for r in entity.collect()}
    for flight, row in rows.items():
        delay = by_flight[flight]
        assert row["delayed"] == (1 if delay is None or delay >= 15 else 0)
        assert row["outcome_known_at"] - row["event_time"] == dt.timedelta(hours=12)
    assert set(rows) == set(by_flight)


def test_a_key_erased_after_the_fact_is_borrowed_for_lookups_and_windows_only(spark) -> None:
    """A cancelled flight without a tail number gets the plane and tail history of a
    flight of the same day, carrier and origin: its features no longer say "cancelled"."""
    config = FeaturesConfig.model_validate(
        {
            **CONFIG.model_dump(),
            "trailing": {
                "windows_days": [3],
                "groups": {"tail": ["tailnum"]},
                "aggregates": {"flights": "count(*)"},
            },
            "missing_keys": [{"column": "tailnum", "borrow_within": ["carrier", "origin"]}],
        }
    )
    entity = spark.createDataFrame(
        [
            _flight(1, 5, 9, tail="N1"),
            _flight(2, 5, 10, tail=None),  # cancelled: the feed erased its tail
            _flight(3, 5, 11, carrier="UA", tail=None),  # no UA tail that day: stays null
        ]
    )
    history = spark.createDataFrame(
        [_flight(10, 4, 8, tail="N1"), _flight(11, 4, 9, tail=None), _flight(12, 3, 9, tail=None)]
    )
    planes = spark.createDataFrame([Row(tailnum="N1", year=2003, _ds=dt.date(2013, 1, 1))])
    weather = spark.createDataFrame([_wx(5, 7, 20.0)])

    def run(cfg: FeaturesConfig) -> dict:
        out = compute_features(
            entity,
            KEY,
            cfg,
            feature_version="v1",
            history=history,
            references={"planes": planes},
            observations={"weather": (weather, "time_hour")},
            micro_batch=True,
        )
        return {r["flight"]: r.asDict() for r in out.collect()}

    rows = run(config)
    assert rows[2]["plane_age"] == rows[1]["plane_age"] == 10
    # The history keeps the feed's values: the tail-less history rows count for no tail.
    assert rows[2]["tail_flights_3d"] == rows[1]["tail_flights_3d"] == 1
    assert rows[3]["plane_age"] is None and rows[3]["tail_flights_3d"] is None
    assert run(config) == rows  # a stable choice: a rerun borrows the same tail
    unfilled = run(config.model_copy(update={"missing_keys": []}))
    assert unfilled[2]["plane_age"] is None and unfilled[2]["tail_flights_3d"] is None


def test_only_what_is_known_by_prediction_time_counts(spark, inputs) -> None:
    """A weather row is known an hour after its stamp; a flight's outcome 12 hours after
    its departure: a day's windows take only the flights known by the day's start."""
    entity, history, planes, weather = inputs
    config = FeaturesConfig.model_validate(
        {
            **CONFIG.model_dump(),
            "trailing": {
                **CONFIG.trailing.model_dump(),
                "known_at": "time_hour + make_dt_interval(0, 0, minute + 720, 0)",
            },
            "asof": [{**CONFIG.asof[0].model_dump(), "known_after_minutes": 60}],
        }
    )
    # Day 4, 20:00: lands after midnight, known at day 5, 08:00 (after the day's start).
    late = history.unionByName(spark.createDataFrame([_flight(13, 4, 20, delay=500.0)]))

    def run(cfg: FeaturesConfig, hist) -> dict:
        out = compute_features(
            entity,
            KEY,
            cfg,
            feature_version="v1",
            history=hist,
            references={"planes": planes},
            observations={"weather": (weather, "time_hour")},
            micro_batch=True,
        )
        return {r["flight"]: r.asDict() for r in out.collect()}

    known = run(config, late)
    # Flight 1 predicts at 13:30: the 12:00 row (31.0) is known only at 13:00 -> still
    # usable; flight 2 predicts at 08:00: the 07:00 row is known at 08:00 -> usable.
    assert known[1]["weather_temp"] == 31.0 and known[2]["weather_temp"] == 20.0
    assert known[1]["carrier_flights_1d"] == 1 and known[1]["carrier_delay_mean_1d"] == 20.0
    # Without the rules, the late flight's outcome and a row not yet published leak in.
    stamped = run(CONFIG, late)
    assert stamped[1]["carrier_flights_1d"] == 2 and stamped[1]["carrier_delay_mean_1d"] == 260.0
    later = {"known_after_minutes": 100, "max_age_minutes": 180}
    strict = config.model_copy(update={"asof": [config.asof[0].model_copy(update=later)]})
    # Known 100 minutes after its stamp, the 12:00 row is not yet known at 13:30: the 11:00 one.
    assert run(strict, late)[1]["weather_temp"] == 30.0
