"""Synthetic lake partitions for training tests: feature, label and validated days.

Written with the lake's own publish(), shaped like the feature job's output (key, times,
features, feature_version), with a label that depends on the features, so a model can
learn it and a handicapped model measurably cannot.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from runway_mlops.lake import Lake

CARRIERS = ["AA", "B6", "DL", "EV", "UA"]
ORIGINS = ["EWR", "JFK", "LGA"]


def day_frames(
    day: dt.date, rows: int, seed: int, *, shift: float = 0.0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    hour = rng.integers(5, 23, rows)
    minute = rng.integers(0, 60, rows)
    carrier = rng.choice(CARRIERS, rows)
    origin = rng.choice(ORIGINS, rows)
    visib = rng.uniform(0, 10, rows)
    rate = rng.uniform(0, 0.6, rows)
    distance = rng.uniform(100, 2500, rows)
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) + dt.timedelta(hours=5)
    event = [
        start + dt.timedelta(hours=int(h) - 5, minutes=int(m))
        for h, m in zip(hour, minute, strict=True)
    ]
    carrier_effect = (
        pd.Series(carrier).map({"AA": -0.4, "B6": 0.3, "DL": -0.6, "EV": 0.8, "UA": 0.0}).to_numpy()
    )
    logit = (
        2.0 * (-1.6 + 0.12 * (hour - 12) + 3.0 * rate - 0.25 * (visib - 5) + carrier_effect) + shift
    )
    label = (rng.uniform(0, 1, rows) < 1 / (1 + np.exp(-logit))).astype("int32")
    key = pd.DataFrame(
        {
            "year": day.year,
            "month": day.month,
            "day": day.day,
            "carrier": carrier,
            "flight": np.arange(rows, dtype="int64") + 1,
            "origin": origin,
        }
    )
    features = key.assign(
        event_time=pd.to_datetime(event, utc=True),
        prediction_time=pd.to_datetime(event, utc=True) - pd.Timedelta(minutes=60),
        dep_hour=hour.astype("int32"),
        distance=distance,
        dest=rng.choice(["ATL", "ORD", "LAX", "BOS"], rows),
        route_delayed_rate_7d=rate,
        weather_visib=visib,
        feature_version="synthetic1",
    )
    features.loc[rng.uniform(0, 1, rows) < 0.05, "weather_visib"] = np.nan
    labels = key.assign(
        event_time=features["event_time"],
        delayed=label,
        outcome_known_at=features["event_time"] + pd.Timedelta(minutes=720),
    )
    return features, labels


def write_days(
    settings: Any,
    pipeline: Any,
    first: dt.date,
    last: dt.date,
    *,
    rows: int = 400,
    seed: int = 0,
    shift: float = 0.0,
) -> list[dt.date]:
    """Publish feature, label and validated partitions for first..last; return the days."""
    lake = Lake(settings.lake_dir)
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    for i, day in enumerate(days):
        features, labels = day_frames(day, rows, seed * 10_000 + i, shift=shift)
        lake.write_frame(
            "features", pipeline.name, "flights", day, features, {"feature_version": "synthetic1"}
        )
        lake.write_frame("labels", pipeline.name, "flights", day, labels, {"label": "delayed"})
        for dataset in pipeline.events_datasets:
            lake.write_frame(
                "validated",
                pipeline.name,
                dataset,
                day,
                pd.DataFrame({"x": [1]}),
                {"validation_id": f"v-{dataset}-{day}", "outcome": "passed"},
            )
    return days
