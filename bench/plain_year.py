"""The reference for the year: a plain pandas + LightGBM script, no orchestration.

    .venv/bin/python bench/plain_year.py

What a data scientist would write by hand for the reference pipeline, with the same
feature definitions as ``config/pipelines/flights.yaml`` (daily cadence): schedule
columns, the plane lookup, 7- and 28-day trailing delay statistics per carrier, origin,
destination, route and tail number from whole days before the flight's day, counting a
flight once its outcome is known by the start of the day (landed + 60 minutes, else
departure + 12 hours), every flight predicted at the local start of its day (the daily
rule, so no same-day weather); a cancelled flight's erased tail number borrowed from a
flight of the same day, carrier and origin for the plane lookup and the tail windows;
label = arrived 15+ minutes late or not at all. ``features(..., prediction="lead")``
adds the micro-batch rule: the latest weather at the origin published at least 60
minutes before departure (a row is published 60 minutes after its stamp; at most 180
minutes old). Then LightGBM with the pipeline's
parameters on January–September (the last 30 days for early stopping), scored on
October–December. No validation, no lake, no tracking, no registry. Times each part and
writes ``bench/results/plain_year.json`` (not committed).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
LEAD = pd.Timedelta(minutes=60)
TIMEZONE = "America/New_York"
MAX_AGE = pd.Timedelta(minutes=180)
PUBLISHED_AFTER = pd.Timedelta(minutes=60)  # a weather row, after its stamp
GROUPS = {
    "carrier": ["carrier"],
    "origin": ["origin"],
    "dest": ["dest"],
    "route": ["origin", "dest"],
    "tail": ["tailnum"],
}
WEATHER = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip"]
WEATHER += ["pressure", "visib"]


def load() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    from runway_mlops.sample.seed import data_dir

    folder = data_dir()
    flights = pd.read_csv(folder / "flights.csv.zip", na_values=["NA"])
    weather = pd.read_csv(folder / "weather.csv", na_values=["NA"])
    planes = pd.read_csv(folder / "planes.csv", na_values=["NA"])
    return flights, weather, planes


def features(
    flights: pd.DataFrame,
    weather: pd.DataFrame,
    planes: pd.DataFrame,
    *,
    borrow: bool = True,
    prediction: str = "day_start",
) -> pd.DataFrame:
    """The feature table (``borrow=False``: erased tails stay missing, the leak kept).

    ``prediction``: when each flight is predicted — ``day_start``, the shipped daily
    rule (the local start of the flight's day, or an hour before departure if earlier:
    the weather is left out, as ``skip_at_day_start`` says), or ``lead`` (an hour
    before departure with the weather then known: the micro-batch rule, here without
    the same-day outcomes that path adds; on a daily cadence, ``daily_prediction: as_of``).
    """
    f = flights.copy()
    f["day_date"] = pd.to_datetime(dict(year=f.year, month=f.month, day=f.day))
    f["event_time"] = pd.to_datetime(f.time_hour, utc=True) + pd.to_timedelta(f.minute, "m")
    f["prediction_time"] = f.event_time - LEAD
    if prediction == "day_start":
        start = f.day_date.dt.tz_localize(TIMEZONE).dt.tz_convert("UTC")
        f["prediction_time"] = f.prediction_time.where(f.prediction_time < start, start)
    elif prediction != "lead":
        raise ValueError(f"prediction must be day_start or lead, not {prediction!r}")
    f["delayed"] = ((f.arr_delay >= 15) | f.arr_delay.isna()).astype(int)
    out = pd.DataFrame(
        {
            "dep_hour": f.hour,
            "weekday": (f.day_date.dt.dayofweek + 1) % 7 + 1,  # Spark: 1 = Sunday
            "month": f.month,
            "sched_arr_hour": np.floor(f.sched_arr_time / 100),
            "distance": f.distance,
            "carrier": f.carrier,
            "origin": f.origin,
            "dest": f.dest,
        }
    )
    # A cancelled flight's erased tail: the tail of a flight of the same day, carrier and
    # origin (the feature job picks by a hash of the key; any stable pick will do here).
    tails = f[["year", "month", "day", "carrier", "origin", "tailnum"]].dropna()
    donors = (
        tails.drop_duplicates()
        .sort_values("tailnum")
        .groupby(["year", "month", "day", "carrier", "origin"])["tailnum"]
        .agg(list)
    )
    keyed = f.join(donors.rename("_donors"), on=["year", "month", "day", "carrier", "origin"])
    pick = [
        d[hash((fl, m)) % len(d)] if isinstance(d, list) else None
        for d, fl, m in zip(keyed._donors, keyed.flight, keyed.sched_dep_time, strict=True)
    ]
    f["tail_key"] = f.tailnum.where(f.tailnum.notna(), pd.Series(pick, index=f.index))
    if not borrow:
        f["tail_key"] = f.tailnum
    plane = (
        f[["tail_key", "year"]]
        .rename(columns={"tail_key": "tailnum"})
        .merge(
            planes[["tailnum", "year", "seats", "engines"]],
            on="tailnum",
            how="left",
            suffixes=("", "_p"),
        )
    )
    out["plane_age"] = (plane.year - plane.year_p).to_numpy()
    out["plane_seats"] = plane.seats.to_numpy()
    out["plane_engines"] = plane.engines.to_numpy()

    days = pd.date_range(f.day_date.min(), f.day_date.max(), freq="D")
    f["has_arr"] = f.arr_delay.notna().astype(int)
    f["arr_sum"] = f.arr_delay.fillna(0.0)
    # When its outcome is known: landed + 60 minutes, else departure + 12 hours. A flight
    # known by the start of the next (local) day counts from that day; a later one (known
    # during the next day: all are known within 12 h) from the day after.
    landed = f.arr_delay.notna()
    after = np.where(landed, f.dep_delay.fillna(0) + f.air_time.fillna(0) + 60, 720)
    known_at = f.event_time + pd.to_timedelta(after, unit="m")
    next_start = (f.day_date + pd.Timedelta(days=1)).dt.tz_localize("America/New_York")
    f["late"] = (known_at > next_start.dt.tz_convert("UTC")).to_numpy()
    row_day = days.get_indexer(f.day_date)
    for group, cols in GROUPS.items():
        lookup = ["tail_key" if c == "tailnum" else c for c in cols]
        missing = f[lookup].isna().any(axis=1).to_numpy()  # Spark joins no null keys
        key = f[cols].astype(str).agg("|".join, axis=1)
        row_key = f[lookup].astype(str).agg("|".join, axis=1)

        def wide(rows: pd.Series, key: pd.Series = key) -> dict[str, pd.DataFrame]:
            daily = (
                f[rows]
                .assign(_g=key[rows])
                .groupby(["day_date", "_g"])
                .agg(
                    n=("delayed", "size"),
                    d=("delayed", "sum"),
                    a=("arr_sum", "sum"),
                    h=("has_arr", "sum"),
                )
            )
            return {m: daily[m].unstack("_g").reindex(days).fillna(0.0) for m in "ndah"}

        on_time, late = wide(~f.late), wide(f.late)
        columns = on_time["n"].columns.union(late["n"].columns)
        row_group = columns.get_indexer(row_key)
        for window in (7, 28):
            # Whole days strictly before the flight's day: a rolling sum, shifted a day;
            # the late rows of the day before are not known yet: shifted two days.
            sums = {}
            for m in "ndah":
                early_sum = on_time[m].reindex(columns=columns, fill_value=0.0)
                late_sum = late[m].reindex(columns=columns, fill_value=0.0)
                known = early_sum.rolling(window, min_periods=1).sum().shift(1)
                landed_late = late_sum.rolling(window - 1, min_periods=1).sum().shift(2)
                total = known + landed_late.fillna(0.0)
                values = total.to_numpy()[row_day, np.maximum(row_group, 0)]
                sums[m] = np.where(row_group >= 0, values, 0.0)
            n = np.where(sums["n"] > 0, sums["n"], np.nan)
            h = np.where(sums["h"] > 0, sums["h"], np.nan)
            for name, values in (
                ("flights", n),
                ("arr_delay_mean", sums["a"] / h),
                ("delayed_rate", sums["d"] / n),
            ):
                out[f"{group}_{name}_{window}d"] = np.where(missing, np.nan, values)

    if prediction == "day_start":
        return _finish(out, f)
    w = weather.copy()
    w["obs_time"] = pd.to_datetime(w.time_hour, utc=True)
    w = w.sort_values("obs_time")
    w["known_time"] = w.obs_time + PUBLISHED_AFTER
    left = f[["origin", "prediction_time"]].reset_index().sort_values("prediction_time")
    joined = pd.merge_asof(
        left, w[["origin", "known_time", *WEATHER]], left_on="prediction_time",
        right_on="known_time", by="origin", direction="backward",
        tolerance=MAX_AGE - PUBLISHED_AFTER,  # at most 180 minutes after its stamp
    ).set_index("index").sort_index()  # fmt: skip
    for c in WEATHER:
        out[f"weather_{c}"] = joined[c].to_numpy()
    return _finish(out, f)


def _finish(out: pd.DataFrame, f: pd.DataFrame) -> pd.DataFrame:
    for c in ("carrier", "origin", "dest"):
        out[c] = out[c].astype("category")
    out["_day"] = f.day_date.to_numpy()
    out["_label"] = f.delayed.to_numpy()
    return out


def train_and_score(table: pd.DataFrame) -> dict[str, float]:
    import lightgbm as lgb
    from sklearn.metrics import log_loss, roc_auc_score

    from runway_mlops.config import get_pipeline, load_settings

    pipeline = get_pipeline(load_settings(), "flights")
    assert pipeline.training is not None
    params = {**pipeline.training.params, "verbose": -1, "num_threads": 2}
    x = table.drop(columns=["_day", "_label"])
    train = table._day < "2013-09-01"
    valid = (table._day >= "2013-09-01") & (table._day < "2013-10-01")
    test = table._day >= "2013-10-01"
    started = time.perf_counter()
    booster = lgb.train(
        params,
        lgb.Dataset(x[train], table._label[train]),
        num_boost_round=pipeline.training.num_boost_round,
        valid_sets=[lgb.Dataset(x[valid], table._label[valid])],
        callbacks=[lgb.early_stopping(pipeline.training.early_stopping_rounds, verbose=False)],
    )
    trained = time.perf_counter() - started
    started = time.perf_counter()
    scores = booster.predict(x[test], num_iteration=booster.best_iteration)
    scored = time.perf_counter() - started
    return {
        "train_s": round(trained, 2),
        "score_s": round(scored, 3),
        "rounds": booster.best_iteration,
        "test_rows": int(test.sum()),
        "roc_auc": round(float(roc_auc_score(table._label[test], scores)), 4),
        "log_loss": round(float(log_loss(table._label[test], scores)), 4),
    }


def main() -> None:
    began = time.perf_counter()
    flights, weather, planes = load()
    loaded = time.perf_counter()
    table = features(flights, weather, planes)
    built = time.perf_counter()
    model = train_and_score(table)
    result = {
        "bench": "plain_year",
        "rows": len(table),
        "load_s": round(loaded - began, 2),
        "features_s": round(built - loaded, 2),
        **model,
        "total_s": round(time.perf_counter() - began, 2),
    }
    out = ROOT / "bench" / "results" / "plain_year.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
