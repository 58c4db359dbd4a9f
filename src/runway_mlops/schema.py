"""Column types: the canonical pandas dtype of each declared type, and lossless casting.

Sources deliver text (CSV) or typed columns (Parquet, PostgreSQL). Ingest casts each
declared column to its canonical dtype *only when nothing is lost*; a column whose values
do not fit its type is kept as delivered, so validation reports it as mistyped instead
of the bad values silently turning into nulls.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

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
