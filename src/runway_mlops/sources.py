"""Sources: read one dataset's delivery for one interval, as the outside world made it.

File source contract (local folder or ``s3://bucket/prefix``)::

    <landing>/<dataset>/ds=YYYY-MM-DD/*.csv        events of that local day (or *.parquet)
    <landing>/<dataset>/ds=YYYY-MM-DD/*.csv        reference snapshots; a day uses the
                                                   latest snapshot on or before it

Every file of a day's folder (and of its subfolders) is accounted for: it is read, or
the delivery is refused with the file's name and why. Nothing is skipped silently:

* A delivery is all in the source's ``format``. The extension is compared without case
  (``flights.CSV`` is CSV); a file of another format (``.parquet`` in a CSV source,
  ``.txt``, ``.csv.gz``, no extension) is refused, not ignored.
* Names starting with a dot are writers' temporary files (``.flights.csv.tmp``) and are
  ignored, as are S3 "folder" markers; the provenance lists them.
* Symbolic links (to files or folders) are refused, and so are S3 keys with ``..`` or
  empty segments: nothing outside the landing root is ever read (see
  :mod:`runway_mlops.storage`).
* The files of one delivery have the same columns (and, for Parquet, the same kind of
  types), and are read as one table.
* Every event must lie in the folder's local day: validation quarantines the rows that
  do not (:mod:`runway_mlops.validation.interval`); the raw zone keeps what was delivered.

A refused delivery fails the dataset's ingest with a ``CorruptDeliveryError`` naming each
bad file; the regular files are copied, byte for byte, into quarantine (a link's target
never is), and the other datasets of the day are still ingested.

CSV files are UTF-8 with a header row of distinct, non-empty names, use ``NA`` or an
empty field for missing values, and end every line with a newline (a file whose last
line is cut off is rejected as truncated). Every column is read as text; ingest casts
the declared ones (:mod:`runway_mlops.schema`).

Timestamps: a value with a UTC offset (``2013-01-01T10:00:00Z``, ``…-05:00``, a
tz-aware Parquet timestamp) is that instant. A value without one (``2013-01-01
05:00:00``, a naive Parquet timestamp) is wall-clock time in the pipeline's
``timezone``, as a local provider writes it; the provenance counts such values per file
and column. A naive value that daylight saving time makes ambiguous (the repeated hour
in autumn) or impossible (the skipped hour in spring) names no instant: the file is
refused, asking for offsets. The PostgreSQL source reads ``timestamp without time zone``
columns the same way (its session runs in the pipeline's zone).

PostgreSQL source: one table per dataset (``table``, default the dataset name) in the
source's schema. Events are selected by a parameterised query on the dataset's
``event_time`` column over the run's data interval ``[start, end)``; reference tables
are read whole. Identifiers are quoted with ``psycopg2.sql``; values are parameters.
"""

from __future__ import annotations

import datetime as dt
import io
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from runway_mlops.config import DatasetConfig, PipelineConfig, PlatformSettings
from runway_mlops.connections import connection_uri, postgres_dsn
from runway_mlops.errors import (
    CorruptDeliveryError,
    NaiveTimeError,
    SourceDataError,
    SourceUnavailableError,
)
from runway_mlops.schema import localize_naive
from runway_mlops.storage import ObjectStore, StoredObject, open_store

if TYPE_CHECKING:
    import pandas as pd

NULL_VALUES = ["", "NA"]
#: File formats by extension (compared without case), and their names for people.
FORMATS = {"csv": "CSV", "parquet": "Parquet"}


@dataclass
class Delivery:
    """What a source handed over for one dataset and interval."""

    frame: pd.DataFrame
    provenance: dict[str, Any] = field(default_factory=dict)
    #: The raw bytes of each delivered file, kept so a corrupt file can be quarantined.
    files: dict[str, bytes] = field(default_factory=dict)


class Source(Protocol):
    def read(self, dataset: str, ds: dt.date) -> Delivery: ...

    def describe(self) -> str: ...


def day_interval(ds: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The local calendar day ``ds`` as a half-open UTC interval (DST-aware)."""
    start = dt.datetime.combine(ds, dt.time(), tzinfo=zone)
    end = dt.datetime.combine(ds + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


# ----------------------------------------------------------------------------- files


def check_header(names: list[str], where: str) -> None:
    """Refuse a header with an empty or repeated column name (which column is which?)."""
    empty = [str(i) for i, name in enumerate(names, start=1) if not str(name).strip()]
    if empty:
        raise SourceDataError(
            f"{where} has a malformed header: column(s) #{', #'.join(empty)} of "
            f"{len(names)} have no name"
        )
    repeated = [f"{name!r} ({n} times)" for name, n in Counter(names).items() if n > 1]
    if repeated:
        raise SourceDataError(
            f"{where} has a malformed header: repeated column name(s) {', '.join(repeated)}"
        )


def csv_header(data: bytes, where: str) -> list[str]:
    """The column names of a CSV file's header row."""
    import csv

    stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    try:
        return next(csv.reader(stream))
    except StopIteration:
        raise SourceDataError(f"{where} is empty: not even a header row") from None
    except UnicodeDecodeError as exc:
        raise SourceDataError(f"{where} is not UTF-8 text: {exc}") from None
    except csv.Error as exc:
        raise SourceDataError(f"{where} has a malformed header row: {exc}") from None


def parse_csv(data: bytes, where: str) -> pd.DataFrame:
    """Parse CSV bytes strictly: every column read as text, ragged rows rejected."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    if data and not data.endswith(b"\n"):
        raise SourceDataError(f"{where} is truncated: its last line has no line ending")
    if not data.strip():
        raise SourceDataError(f"{where} is empty: not even a header row")
    names = csv_header(data, where)
    check_header(names, where)
    try:
        table = pcsv.read_csv(
            io.BytesIO(data),
            convert_options=pcsv.ConvertOptions(
                column_types={c: pa.string() for c in names},
                null_values=NULL_VALUES,
                strings_can_be_null=True,
            ),
        )
        return table.to_pandas()
    except pa.ArrowException as exc:  # parse errors, invalid UTF-8 past the header
        raise SourceDataError(f"{where} is not valid CSV: {exc}") from None


def parse_parquet(data: bytes, where: str) -> pd.DataFrame:
    """Parse Parquet bytes; a malformed schema or an unreadable file is refused."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
        check_header(list(parquet.schema_arrow.names), where)
        return parquet.read().to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise SourceDataError(f"{where} is not a readable Parquet file: {exc}") from None


def localize_columns(
    frame: pd.DataFrame, config: DatasetConfig, zone: ZoneInfo, where: str
) -> dict[str, int]:
    """Read the declared timestamp columns' naive values in ``zone`` (in place).

    Returns the number of naive values per column; raises SourceDataError naming the
    file and column when a naive value names no single instant (module docstring).
    """
    counts: dict[str, int] = {}
    for column, kind in config.columns.items():
        if kind != "timestamp" or column not in frame.columns:
            continue
        try:
            localized = localize_naive(frame[column], zone)
        except NaiveTimeError as exc:
            raise SourceDataError(
                f"{where}: column {column} has timestamps without a UTC offset that name no "
                f"single instant in {zone.key} ({exc}); deliver them with an offset "
                f"(e.g. 2013-11-03T01:30:00-04:00) or in UTC"
            ) from None
        frame[column] = localized.series
        if localized.naive:
            counts[column] = localized.naive
    return counts


def read_file(
    data: bytes, where: str, fmt: str, config: DatasetConfig, zone: ZoneInfo
) -> tuple[pd.DataFrame, dict[str, int]]:
    """One delivered file as a frame, and its naive timestamps per column (contract)."""
    frame = parse_csv(data, where) if fmt == "csv" else parse_parquet(data, where)
    return frame, localize_columns(frame, config, zone, where)


def format_problem(key: str, fmt: str) -> str | None:
    """Why ``key`` is not a file of format ``fmt``, or None if it is (case-insensitive)."""
    name = key.rsplit("/", 1)[-1]
    extension = name.rsplit(".", 1)[1] if "." in name else ""
    if extension.lower() == fmt:
        return None
    expected = f"this source delivers {FORMATS[fmt]} (source.format: {fmt})"
    if extension.lower() in FORMATS:
        return f"is a {FORMATS[extension.lower()]} file, but {expected}"
    if not extension:
        return f"has no file extension; {expected}, as *.{fmt} files"
    return f"is not a .{fmt} file (.{extension}); {expected}"


def _value_kind(series: pd.Series) -> str | None:
    """A column's kind for comparing files: number, text, timestamp … (None: all null)."""
    import pandas as pd

    if not series.notna().any():
        return None
    if isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(series):
        return "timestamp"
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_numeric_dtype(series):
        return "number"
    return pd.api.types.infer_dtype(series, skipna=True)


def mismatched_files(frames: dict[str, pd.DataFrame], describe: Any) -> list[str]:
    """Why the files of one delivery cannot be read as one table (empty: they can)."""
    if len(frames) < 2:
        return []
    (first, base), *others = frames.items()
    problems = []
    for key, frame in others:
        missing = [c for c in base.columns if c not in frame.columns]
        extra = [c for c in frame.columns if c not in base.columns]
        if missing or extra:
            what = "; ".join(
                part
                for part in (
                    f"lacks {', '.join(map(str, missing))}" if missing else "",
                    f"adds {', '.join(map(str, extra))}" if extra else "",
                )
                if part
            )
            problems.append(
                f"{describe(key)} has other columns than {describe(first)} ({what}): "
                "the files of a delivery must have the same columns"
            )
            continue
        for column in base.columns:
            mine, theirs = _value_kind(frame[column]), _value_kind(base[column])
            if mine and theirs and mine != theirs:
                problems.append(
                    f"{describe(key)}: column {column} holds {mine} values, but {theirs} "
                    f"in {describe(first)}: the files of a delivery must agree on types"
                )
    return problems


class FileSource:
    """Files under a landing root, per the contract in the module docstring."""

    def __init__(self, store: ObjectStore, pipeline: PipelineConfig, fmt: str = "csv") -> None:
        self.store = store
        self.pipeline = pipeline
        self.fmt = fmt

    def describe(self) -> str:
        return f"files at {self.store.uri} ({self.fmt})"

    def _snapshot_folder(self, dataset: str, ds: dt.date) -> str:
        listing = self.store.scan(dataset)
        for refused in listing.refused:
            if refused.key == dataset:
                raise CorruptDeliveryError(
                    f"{self.store.describe(dataset)} {refused.reason}", files={}
                )
        days = set()
        for key in [o.key for o in listing.objects] + [r.key for r in listing.refused]:
            part = key.split("/")
            if len(part) >= 2 and part[1].startswith("ds="):
                try:
                    days.add(dt.date.fromisoformat(part[1][3:]))
                except ValueError:
                    continue
        eligible = sorted(d for d in days if d <= ds)
        if not eligible:
            raise SourceUnavailableError(
                f"no snapshot of reference dataset {dataset!r} on or before {ds} under "
                f"{self.store.describe(dataset)}/ (expected ds=YYYY-MM-DD folders)"
            )
        return f"{dataset}/ds={eligible[-1].isoformat()}"

    def read(self, dataset: str, ds: dt.date) -> Delivery:
        import pandas as pd

        config = self.pipeline.datasets[dataset]
        zone = self.pipeline.zone
        if config.kind == "events":
            folder = f"{dataset}/ds={ds.isoformat()}"
        else:
            folder = self._snapshot_folder(dataset, ds)
        listing = self.store.scan(folder)
        describe = self.store.describe
        problems = [f"{describe(r.key)} {r.reason}" for r in listing.refused]
        data: list[StoredObject] = []
        for obj in listing.objects:
            problem = format_problem(obj.key, self.fmt)
            if problem is None:
                data.append(obj)
            else:
                problems.append(f"{describe(obj.key)} {problem}")
        if not listing.objects and not listing.refused:
            hidden = (
                f" (only hidden files, e.g. a delivery still being written: "
                f"{', '.join(listing.hidden[:3])})"
                if listing.hidden
                else ""
            )
            raise SourceUnavailableError(
                f"no delivery of {dataset!r} for {ds}: no *.{self.fmt} files under "
                f"{describe(folder)}/{hidden}"
            )
        # Every regular file is kept (for quarantine), whatever its format; links never.
        files: dict[str, bytes] = {}
        for obj in listing.objects:
            try:
                files[obj.key] = self.store.read(obj.key)
            except SourceDataError as exc:  # replaced by a link since the listing
                problems.append(str(exc))
        frames: dict[str, pd.DataFrame] = {}
        naive: dict[str, dict[str, int]] = {}
        for obj in data:
            if obj.key not in files:
                continue
            try:
                frame, counts = read_file(files[obj.key], describe(obj.key), self.fmt, config, zone)
            except SourceDataError as exc:
                problems.append(str(exc))
                continue
            frames[obj.key] = frame
            if counts:
                naive[obj.key] = counts
        problems += mismatched_files(frames, describe)
        if problems:
            files_note = f"{len(problems)} problem(s) in the delivery of {dataset!r} for {ds}"
            message = problems[0] if len(problems) == 1 else f"{files_note}: " + "; ".join(problems)
            raise CorruptDeliveryError(message, files)
        frame = (
            pd.concat(frames.values(), ignore_index=True)
            if len(frames) > 1
            else frames[data[0].key]
        )
        provenance: dict[str, Any] = {
            "source": "files",
            "folder": describe(folder),
            "format": self.fmt,
            "files": [{"key": o.key, "bytes": o.size, "rows": len(frames[o.key])} for o in data],
        }
        if listing.hidden:
            provenance["ignored_hidden"] = listing.hidden
        if naive:
            provenance["naive_timestamps"] = {"read_in": zone.key, "values": naive}
        return Delivery(frame=frame, provenance=provenance, files=files)


# -------------------------------------------------------------------------- postgres


class PostgresSource:
    """Tables in a PostgreSQL database, selected by the run's data interval."""

    def __init__(self, dsn: str, pipeline: PipelineConfig, db_schema: str = "public") -> None:
        self.dsn = dsn
        self.pipeline = pipeline
        self.db_schema = db_schema

    def describe(self) -> str:
        from psycopg2.extensions import parse_dsn

        parts = parse_dsn(self.dsn)
        return f"postgres {parts.get('host', 'localhost')}/{parts.get('dbname', '')} schema {self.db_schema}"

    def query(self, dataset: str) -> Any:
        """The SQL for one dataset; events take %(start)s and %(end)s parameters."""
        from psycopg2 import sql

        config = self.pipeline.datasets[dataset]
        table = sql.Identifier(self.db_schema, config.table or dataset)
        if config.kind == "events":
            assert config.event_time is not None
            return sql.SQL("SELECT * FROM {} WHERE {} >= %(start)s AND {} < %(end)s").format(
                table, sql.Identifier(config.event_time), sql.Identifier(config.event_time)
            )
        return sql.SQL("SELECT * FROM {}").format(table)

    def read(self, dataset: str, ds: dt.date) -> Delivery:
        import pandas as pd
        import psycopg2
        from psycopg2 import errors as pg_errors

        config = self.pipeline.datasets[dataset]
        zone = self.pipeline.zone
        start, end = day_interval(ds, zone)
        params = {"start": start, "end": end}
        table = f"{self.db_schema}.{config.table or dataset}"
        try:
            conn = psycopg2.connect(self.dsn, connect_timeout=10)
        except psycopg2.OperationalError as exc:
            raise SourceUnavailableError(
                f"cannot connect to the PostgreSQL source ({self.describe()}): {exc}".strip()
            ) from None
        try:
            with conn, conn.cursor() as cursor:
                # Naive (timestamp without time zone) columns compare and read as local
                # time, per the contract; timestamptz values come back with their offset.
                cursor.execute("SELECT set_config('TimeZone', %s, false)", (zone.key,))
                cursor.execute(self.query(dataset), params)
                names = [d.name for d in cursor.description]
                rows = cursor.fetchall()
        except pg_errors.UndefinedTable:
            raise SourceUnavailableError(
                f"table {table} does not exist in {self.describe()}"
            ) from None
        except pg_errors.UndefinedColumn as exc:
            raise SourceDataError(
                f"table {table}: {exc.pgerror.splitlines()[0] if exc.pgerror else exc}"
            ) from None
        except psycopg2.OperationalError as exc:
            raise SourceUnavailableError(f"PostgreSQL source failed mid-query: {exc}") from None
        finally:
            conn.close()
        frame = pd.DataFrame.from_records(rows, columns=names)
        naive = localize_columns(frame, config, zone, f"table {table}")
        if config.kind == "events" and frame.empty:
            raise SourceUnavailableError(
                f"no rows of {table} for {ds} ({config.event_time} in [{start:%Y-%m-%d %H:%M}, "
                f"{end:%Y-%m-%d %H:%M}) UTC)"
            )
        provenance: dict[str, Any] = {
            "source": "postgres",
            "table": table,
            "interval_utc": [start.isoformat(), end.isoformat()]
            if config.kind == "events"
            else None,
        }
        if naive:
            provenance["naive_timestamps"] = {"read_in": zone.key, "values": naive}
        return Delivery(frame=frame, provenance=provenance)


def open_source(settings: PlatformSettings, pipeline: PipelineConfig) -> Source:
    source = pipeline.source
    if source.kind == "files":
        store = open_store(source.uri or settings.landing_uri, settings.s3_endpoint_url)
        return FileSource(store, pipeline, source.format)
    dsn = postgres_dsn(connection_uri(source.conn_id, settings))
    return PostgresSource(dsn, pipeline, source.db_schema)
