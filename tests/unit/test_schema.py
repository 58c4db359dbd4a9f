"""Casting to declared types is lossless: bad values stay visible to validation."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from runway_mlops.errors import NaiveTimeError
from runway_mlops.schema import cast_column, cast_to_schema, has_type, localize_naive


def test_text_numbers_become_typed() -> None:
    out = cast_to_schema(
        pd.DataFrame(
            {"a": ["1", "2", None], "b": ["1.5", None, "3"], "t": ["2013-01-01T10:00:00Z"] * 3}
        ),
        {"a": "int", "b": "float", "t": "timestamp"},
    )
    assert str(out["a"].dtype) == "Int64" and out["a"].isna().sum() == 1
    assert out["b"].dtype == np.float64
    assert str(out["t"].dtype) == "datetime64[ns, UTC]"
    assert out["t"].iloc[0] == pd.Timestamp("2013-01-01 10:00", tz="UTC")


@pytest.mark.parametrize(
    ("values", "declared"),
    [
        (["1", "two", "3"], "int"),
        (["1.5", "2", "3"], "int"),
        (["1.5", "abc"], "float"),
        (["2013-01-01", "not a date"], "timestamp"),
        (["yes", "no"], "bool"),
    ],
)
def test_values_that_do_not_fit_are_kept_as_delivered(values: list[str], declared: str) -> None:
    series = pd.Series(values, dtype=object)
    out = cast_column(series, declared)
    assert out.tolist() == values
    assert not has_type(out, declared)


def test_string_columns_become_text() -> None:
    out = cast_column(pd.Series([1, None, 3], dtype=object), "string")
    assert out.tolist() == ["1", None, "3"]
    assert has_type(out, "string")


def test_has_type_rejects_numbers_in_a_string_column() -> None:
    assert not has_type(pd.Series(["a", 3], dtype=object), "string")
    assert has_type(pd.Series([1, 2], dtype="Int64"), "float")
    assert not has_type(pd.Series([True, False]), "int")


def test_naive_timestamps_are_taken_as_utc() -> None:
    out = cast_column(pd.Series(pd.to_datetime(["2013-01-01 10:00"])), "timestamp")
    assert out.iloc[0] == pd.Timestamp("2013-01-01 10:00", tz="UTC")


NEW_YORK = ZoneInfo("America/New_York")


def test_naive_text_is_local_time_and_stays_text() -> None:
    series = pd.Series(
        ["2013-01-01 05:00:00", "2013-07-01T01:00", "2013-01-01T10:00:00Z", "x", None],
        dtype=object,
    )
    out = localize_naive(series, NEW_YORK)
    assert out.naive == 2
    # Text stays text (so the files of a delivery stay alike); "x" is for the type check.
    assert out.series.tolist() == [
        "2013-01-01T10:00Z",
        "2013-07-01T05:00Z",  # summer: UTC-4
        "2013-01-01T10:00:00Z",
        "x",
        None,
    ]


def test_naive_datetimes_are_local_time() -> None:
    series = pd.Series(pd.to_datetime(["2013-01-01 05:00", None]))
    out = localize_naive(series, NEW_YORK)
    assert out.naive == 1
    assert cast_column(out.series, "timestamp")[0] == pd.Timestamp("2013-01-01 10:00", tz="UTC")


def test_a_value_with_an_offset_is_never_touched() -> None:
    series = pd.Series(["2013-01-01T05:00:00+01:00", "2013-01-01 05:00:00 -05:00"], dtype=object)
    out = localize_naive(series, NEW_YORK)
    assert out.naive == 0 and out.series.equals(series)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("2013-11-03 01:30:00", "2013-11-03 01:30:00 occurs twice"),
        ("2013-03-10 02:30:00", "2013-03-10 02:30:00 does not exist"),
    ],
)
def test_a_naive_time_daylight_saving_makes_ambiguous_names_no_instant(value, why) -> None:
    for series in (pd.Series([value], dtype=object), pd.Series(pd.to_datetime([value]))):
        with pytest.raises(NaiveTimeError, match=why):
            localize_naive(series, NEW_YORK)
