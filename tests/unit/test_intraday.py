"""Same-day (intraday) features: only rows known before prediction time, micro-batch only."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from pyspark.sql import Row
from pyspark.sql import functions as F

from runway_mlops.config import FeaturesConfig, PipelineConfig
from runway_mlops.features.transforms import compute_features
from runway_mlops.stages.features import feature_version

KEY = ["flight"]
UTC = dt.UTC
INTRADAY = {
    "known_at": "time_hour + make_dt_interval(0, 0, minute + cast(coalesce(dep_delay, 0) as int), 0)",
    "groups": {"tail": ["tailnum"], "origin": ["origin"]},
    "aggregates": {
        "flights": "count(*)",
        "dep_delay_mean": "avg(dep_delay)",
        "cancelled": "count_if(dep_delay is null)",
    },
}
BASE = {
    "entity": "flights",
    "event_time": "time_hour + make_dt_interval(0, 0, minute, 0)",
    "prediction_lead_minutes": 60,
    "columns": {"dep_hour": "hour"},
}
CONFIG = FeaturesConfig.model_validate({**BASE, "intraday": INTRADAY})
NAMES = [
    f"{g}_{a}_today" for g in ("tail", "origin") for a in ("flights", "dep_delay_mean", "cancelled")
]


def _flight(flight, hour, minute=0, delay=0.0, tail="N1", origin="EWR", day=5):
    return Row(
        flight=flight,
        hour=hour,
        minute=minute,
        tailnum=tail,
        origin=origin,
        dep_delay=delay,
        time_hour=dt.datetime(2013, 1, day, hour, tzinfo=UTC),
        _ds=dt.date(2013, 1, day),
    )


def _compute(entity, config=CONFIG, *, micro_batch=True):
    out = compute_features(entity, KEY, config, feature_version="v1", micro_batch=micro_batch)
    return {r["flight"]: r.asDict() for r in out.collect()}


@pytest.fixture
def day(spark):
    """One day of plane N1 from EWR (times UTC; prediction time = departure - 60 min)."""
    return spark.createDataFrame(
        [
            _flight(1, 7, delay=None),  # cancelled: known at 07:00
            _flight(2, 8, delay=30.0),  # known 08:30
            _flight(3, 9, delay=90.0),  # scheduled 09:00, known 10:30
            _flight(4, 10, delay=0.0),  # prediction time 09:00
            _flight(5, 12, delay=-70.0),  # known 10:50, before its own prediction time (11:00)
            _flight(6, 8, delay=0.0, tail="N2", origin="JFK"),  # other tail, other origin
            _flight(7, 6, delay=5.0, day=4),  # the day before: never counted
        ]
    )


def test_values(day) -> None:
    rows = _compute(day)
    four = rows[4]  # sees 1 (07:00) and 2 (08:30); not 3 (known 10:30) nor itself
    assert four["tail_flights_today"] == 2
    assert four["tail_dep_delay_mean_today"] == 30.0  # the cancelled flight has no delay
    assert four["tail_cancelled_today"] == 1
    assert four["origin_flights_today"] == 2  # flight 6 is JFK
    # Known at 10:50, it is not its own history: 1, 2, 3 and 4 only.
    assert rows[5]["tail_flights_today"] == 4
    assert rows[5]["tail_dep_delay_mean_today"] == 40.0
    # Nothing known before: count 0, mean null (an average of nothing).
    first = rows[1]
    assert first["tail_flights_today"] == 0 and first["tail_cancelled_today"] == 0
    assert first["tail_dep_delay_mean_today"] is None
    assert rows[2]["tail_flights_today"] == 1  # prediction 07:00, flight 1 known 07:00
    assert rows[6]["tail_flights_today"] == 0 and rows[6]["origin_flights_today"] == 0
    assert rows[7]["tail_flights_today"] == 0  # alone on its day


def test_rows_known_later_do_not_leak(spark, day) -> None:
    """Changing what a row reveals after a prediction time leaves that prediction's features."""
    before = _compute(day)[4]
    # Flight 3 (scheduled 09:00, known 10:30) with a different delay, still known after
    # 09:00; a new flight scheduled earlier than 4 but known after its prediction time.
    changed = day.withColumn(
        "dep_delay", F.when(F.col("flight") == 3, 500.0).otherwise(F.col("dep_delay"))
    ).unionByName(spark.createDataFrame([_flight(8, 8, minute=45, delay=20.0)]))
    assert _compute(changed)[4] == before
    # ... and a row known in time does change them (the test can fail).
    earlier = day.unionByName(spark.createDataFrame([_flight(8, 8, minute=45, delay=10.0)]))
    assert _compute(earlier)[4]["tail_flights_today"] == 3


def test_a_day_so_far_gives_the_same_features_as_the_whole_day(spark) -> None:
    """What a micro-batch relies on: a run at time T with the rows known by T computes, for
    every flight predicted by T, the features the end of the day computes."""
    rng = random.Random(7)
    flights = [
        _flight(
            i,
            rng.randrange(5, 23),
            rng.randrange(60),
            delay=rng.choice([None, *range(-15, 120, 5)]),
            tail=f"N{rng.randrange(4)}",
            origin=rng.choice(["EWR", "JFK"]),
        )
        for i in range(60)
    ]
    day = spark.createDataFrame(flights)
    whole = _compute(day)
    cut = dt.datetime(2013, 1, 5, 14, 0)
    known = F.expr(INTRADAY["known_at"])
    so_far = _compute(day.where(known <= F.lit(cut)))
    predicted = [f for f, r in whole.items() if r["prediction_time"] <= cut and f in so_far]
    assert len(predicted) >= 10
    assert any(whole[f]["tail_flights_today"] for f in predicted)
    for flight in predicted:
        assert so_far[flight] == whole[flight], flight
    # The cut removed rows scheduled before it but known after it: rows a leaky
    # implementation (everything scheduled earlier in the day) would have counted.
    removed = set(whole) - set(so_far)
    assert any(whole[f]["event_time"] < cut for f in removed)


def test_the_feed_so_far_gives_the_same_features_as_the_settled_day(spark) -> None:
    """The shipped intraday rule on a real day sent as the replay's feed sends it.

    At a cut, the lake holds each flight's latest version sent by then (schedule only,
    departed, or landed); the features of every flight predicted by the cut must equal
    those computed once the day has settled (every record whole): no skew between the
    live micro-batch and the recomputed day.
    """
    import pandas as pd

    from runway_mlops.config import load_pipelines
    from runway_mlops.sample.producer import feed_versions
    from runway_mlops.sample.seed import load_raw
    from tests.conftest import CONFIG_DIR

    shipped = load_pipelines(CONFIG_DIR)["flights"].features
    config = FeaturesConfig.model_validate(
        {**BASE, "intraday": shipped.intraday.model_dump(mode="json")}
    )
    flights = load_raw("flights")
    flights = flights[(flights["month"] == "1") & (flights["day"] == "10")]
    versions, when = feed_versions(flights, shipped.prediction_lead_minutes)

    def frame(rows: pd.DataFrame):
        out = pd.DataFrame(
            {
                "flight": rows.index.astype(int),
                "hour": pd.to_numeric(rows["hour"]),
                "minute": pd.to_numeric(rows["minute"]),
                "tailnum": rows["tailnum"].replace("NA", None),
                "origin": rows["origin"],
                "carrier": rows["carrier"],
                "dep_delay": pd.to_numeric(rows["dep_delay"], errors="coerce"),
                "time_hour": pd.to_datetime(rows["time_hour"], utc=True),
            }
        )
        out["_ds"] = dt.date(2013, 1, 10)
        return spark.createDataFrame(out)

    # feed_versions keeps no index: key each version by its flight's columns.
    key = ["carrier", "flight", "origin", "time_hour"]
    ids = flights.reset_index()[["index", *key]].rename(columns={"index": "_id"})
    keyed = versions.merge(ids, on=key, how="left", validate="many_to_one")
    assert keyed["_id"].notna().all()
    whole = _compute(frame(flights), config)
    for cut in (dt.datetime(2013, 1, 10, 15, 0), dt.datetime(2013, 1, 10, 21, 30)):
        sent = keyed[(when <= pd.Timestamp(cut, tz="UTC")).to_numpy()]
        latest = sent.drop_duplicates("_id", keep="last").set_index("_id")
        so_far = _compute(frame(latest), config)
        predicted = [f for f in so_far if so_far[f]["prediction_time"] <= cut]
        assert len(predicted) > 100
        # Flights past their scheduled departure but not gone yet were in the lake.
        waiting = latest[latest["dep_time"] == "NA"]
        assert (pd.to_datetime(waiting["time_hour"], utc=True) < pd.Timestamp(cut, tz="UTC")).any()
        assert any(whole[f]["origin_flights_today"] for f in predicted)
        for flight in predicted:
            assert so_far[flight] == whole[flight], (cut, flight)


def test_daily_cadence_has_no_intraday_columns(day) -> None:
    without_block = FeaturesConfig.model_validate(BASE)
    daily = _compute(day, micro_batch=False)
    plain = _compute(day, without_block, micro_batch=False)
    assert daily == plain
    micro = _compute(day)
    assert set(micro[4]) - set(daily[4]) == set(NAMES)
    # The same row but for when it is predicted: an hour ahead, or at the day's start.
    assert micro[4]["prediction_time"] == dt.datetime(2013, 1, 5, 9, 0)
    assert daily[4]["prediction_time"] == dt.datetime(2013, 1, 5, 0, 0)
    same = {k for k in daily[4] if k != "prediction_time"}
    assert {k: micro[4][k] for k in same} == {k: daily[4][k] for k in same}


def test_feature_version_depends_on_the_cadence(flights_pipeline) -> None:
    assert flights_pipeline.micro_batch is False and flights_pipeline.features.intraday
    data = flights_pipeline.model_dump(mode="json")
    micro = PipelineConfig.model_validate({**data, "cadence": "*/5 * * * *"})
    assert micro.micro_batch
    assert feature_version(micro) != feature_version(flights_pipeline)
    # A daily pipeline's version ignores the block it does not compute.
    features = {**data["features"], "intraday": None}
    daily_without = PipelineConfig.model_validate({**data, "features": features})
    assert feature_version(daily_without) == feature_version(flights_pipeline)
    micro_without = PipelineConfig.model_validate(
        {**data, "features": features, "cadence": "*/5 * * * *"}
    )
    # Even without it, micro-batch rows are predicted an hour ahead, daily ones at midnight.
    assert feature_version(micro_without) != feature_version(daily_without)
    as_of = PipelineConfig.model_validate(
        {**data, "features": {**features, "daily_prediction": "as_of"}}
    )
    assert feature_version(micro_without) == feature_version(as_of)
