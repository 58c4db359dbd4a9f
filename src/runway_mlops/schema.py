"""Column types: the canonical pandas dtype of each declared type, and lossless casting.

Sources deliver text (CSV) or typed columns (Parquet, PostgreSQL). Ingest casts each
declared column to its canonical dtype *only when nothing is lost*; a column whose values
do not fit its type is kept as delivered, so validation reports it as mistyped instead
of the bad values silently turning into nulls.

A timestamp delivered without a UTC offset (a naive Parquet or pandas timestamp, or text
such as ``2013-01-01 05:00:00``) is wall-clock time in the pipeline's time zone: sources
pass such columns through :func:`localize_naive` before casting, which rewrites each
such value as the UTC instant it names, and refuses the values daylight saving time makes
ambiguous (the repeated hour in autumn) or impossible (the skipped hour in spring).
:func:`cast_column` itself reads a value without an offset as UTC; it is only ever given
what a source localised.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from runway_mlops.errors import NaiveTimeError

#: Declared type -> canonical pandas dtype name in the lake.
CANONICAL_DTYPE = {
    "int": "Int64",
    "float": "float64",
    "string": "object",
    "timestamp": "datetime64[ns, UTC]",
    "bool": "boolean",
}


def cast_column(series: pd.Series, declared: str) -> pd.Series:
    """Return ``series`` as the declared type, or unchanged if that would lose values."""
    present = series.notna()
    try:
        if declared in ("int", "float"):
            if pd.api.types.is_bool_dtype(series):
                return series
            numeric = pd.to_numeric(series, errors="coerce")
            if (numeric.notna() != present).any():
                return series  # some non-null value is not a number
            if declared == "float":
                return numeric.astype("float64")
            finite = numeric[numeric.notna()]
            if not np.all(np.isfinite(finite)) or not np.all(np.equal(np.mod(finite, 1), 0)):
                return series  # fractional or infinite values in an int column
            return numeric.astype("Int64")
        if declared == "string":
            if pd.api.types.is_object_dtype(series) and not present.any():
                return series.astype(object)
            out = series.astype(object)
            return out.where(present, None).map(lambda v: v if v is None else str(v))
        if declared == "timestamp":
            if isinstance(series.dtype, pd.DatetimeTZDtype):
                return series.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
            if pd.api.types.is_datetime64_dtype(series):
                return series.dt.tz_localize("UTC").astype("datetime64[ns, UTC]")
            parsed = pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")
            if (parsed.notna() != present).any():
                return series
            return parsed.astype("datetime64[ns, UTC]")
        if declared == "bool":
            if pd.api.types.is_bool_dtype(series):
                return series.astype("boolean")
            mapping = {"true": True, "false": False, "1": True, "0": False, "t": True, "f": False}
            lowered = series.map(
                lambda v: mapping.get(str(v).strip().lower()) if pd.notna(v) else None
            )
            if (lowered.notna() != present).any():
                return series
            return lowered.astype("boolean")
    except (TypeError, ValueError, OverflowError):
        return series
    raise ValueError(f"unknown column type {declared!r}")


def cast_to_schema(frame: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    """Cast every declared column that is present; leave the rest for validation to judge."""
    out = frame.copy()
    for name, declared in columns.items():
        if name in out.columns:
            out[name] = cast_column(out[name], declared)
    return out


def has_type(series: pd.Series, declared: str) -> bool:
    """Whether a column already holds values of its declared type."""
    dtype = series.dtype
    if declared == "int":
        return pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if declared == "float":
        return pd.api.types.is_float_dtype(dtype) or (
            pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
        )
    if declared == "string":
        if not (pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)):
            return False
        values = series.dropna()
        return bool(values.map(lambda v: isinstance(v, str)).all())
    if declared == "timestamp":
        return isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype)
    if declared == "bool":
        return pd.api.types.is_bool_dtype(dtype)
    raise ValueError(f"unknown column type {declared!r}")


@dataclass(frozen=True)
class Localized:
    """A timestamp column with every offset explicit, and how many values lacked one."""

    series: pd.Series
    naive: int


def _describe_unplaceable(values: list[pd.Timestamp], zone: ZoneInfo) -> str:
    shown = []
    for value in values[:3]:
        later = value.tz_localize(zone.key, ambiguous=True, nonexistent="NaT")
        why = "does not exist (clocks skip it)" if later is pd.NaT else "occurs twice"
        shown.append(f"{value} {why}")
    return "; ".join(shown)


#: The end of ISO 8601 text that carries a UTC offset: a time, then ``Z`` or ``±hh[:mm]``.
_OFFSET = r"[T ]\d{2}(?::?\d{2}(?::?\d{2}(?:[.,]\d+)?)?)?\s*(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"


def _naive_one(value: object) -> pd.Timestamp | None:
    try:
        if isinstance(value, str):
            stamp = pd.to_datetime(value, format="ISO8601")
        elif isinstance(value, dt.datetime):
            stamp = pd.Timestamp(value)
        else:
            return None
    except (TypeError, ValueError, OverflowError):
        return None  # not a timestamp: the type check names it
    return stamp if stamp is not pd.NaT and stamp.tzinfo is None else None


def _localize_objects(series: pd.Series, zone: ZoneInfo) -> Localized:
    """The general case, one distinct value at a time (datetimes from a database, mixed)."""
    naive = {
        value: stamp
        for value in pd.unique(series.dropna())
        if (stamp := _naive_one(value)) is not None
    }
    if not naive:
        return Localized(series, 0)
    local = pd.DatetimeIndex(list(naive.values())).tz_localize(
        zone.key, ambiguous="NaT", nonexistent="NaT"
    )
    lost = [stamp for stamp, placed in zip(naive.values(), local, strict=True) if placed is pd.NaT]
    if lost:
        raise NaiveTimeError(_describe_unplaceable(sorted(lost), zone))
    mapping: dict[object, object] = {
        value: placed.isoformat() if isinstance(value, str) else placed
        for value, placed in zip(naive, local, strict=True)
    }
    count = int(series.isin(list(naive)).sum())
    return Localized(series.map(lambda v: mapping.get(v, v)), count)


def localize_naive(series: pd.Series, zone: ZoneInfo) -> Localized:
    """Read the values of a timestamp column that carry no UTC offset in ``zone``.

    Naive datetimes become tz-aware; naive ISO 8601 text becomes the same instant as UTC
    text (``2013-01-01 05:00:00`` in New York: ``2013-01-01T10:00Z``), so text stays text
    and the files of one delivery stay alike. Values with an offset, nulls and text that
    is no timestamp are left as delivered (validation names the latter). Raises
    :class:`NaiveTimeError` when a naive value falls in a daylight-saving gap or repeated
    hour: which instant it means cannot be known.
    """
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return Localized(series, 0)
    if pd.api.types.is_datetime64_dtype(series):
        # The zone's name, not the ZoneInfo: pandas localises a named zone vectorised.
        local = series.dt.tz_localize(zone.key, ambiguous="NaT", nonexistent="NaT")
        lost = local.isna() & series.notna()
        if lost.any():
            raise NaiveTimeError(_describe_unplaceable(sorted(series[lost].unique()), zone))
        return Localized(local, int(series.notna().sum()))
    kind = pd.api.types.infer_dtype(series, skipna=True)
    if kind == "empty" or not (
        pd.api.types.is_object_dtype(series) or pd.api.types.is_string_dtype(series)
    ):
        return Localized(series, 0)
    if kind != "string":
        return _localize_objects(series, zone)
    import pyarrow as pa
    import pyarrow.compute as pc

    text = series.astype(object)
    present = text.notna()
    offset = pc.match_substring_regex(pa.array(text, type=pa.string()), _OFFSET)
    naive_rows = present & ~pd.Series(offset.fill_null(False), index=text.index, dtype=bool)
    if not naive_rows.any():
        return Localized(series, 0)
    try:
        parsed = pd.to_datetime(text[naive_rows], format="ISO8601", errors="coerce")
    except (TypeError, ValueError, OverflowError):
        return _localize_objects(series, zone)
    if not pd.api.types.is_datetime64_dtype(parsed):  # an offset the pattern missed
        return _localize_objects(series, zone)
    placed = parsed.dt.tz_localize(zone.key, ambiguous="NaT", nonexistent="NaT")
    lost = placed.isna() & parsed.notna()
    if lost.any():
        raise NaiveTimeError(_describe_unplaceable(sorted(parsed[lost].unique()), zone))
    good = parsed.notna()
    out = text.copy()
    utc = placed[good].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    out[good[good].index] = np.datetime_as_string(utc, unit="auto", timezone="UTC")
    return Localized(out, int(good.sum()))
