"""Sources: read one dataset's delivery for one interval, as the outside world made it.

File source contract (local folder or ``s3://bucket/prefix``)::

    <landing>/<dataset>/ds=YYYY-MM-DD/*.csv        events of that local day (or *.parquet)
    <landing>/<dataset>/ds=YYYY-MM-DD/*.csv        reference snapshots; a day uses the
                                                   latest snapshot on or before it

CSV files have a header row, use ``NA`` or an empty field for missing values, and end
every line with a newline (a file whose last line is cut off is rejected as truncated).

PostgreSQL source: one table per dataset (``table``, default the dataset name) in the
source's schema. Events are selected by a parameterised query on the dataset's
``event_time`` column over the run's data interval ``[start, end)``; reference tables
are read whole. Identifiers are quoted with ``psycopg2.sql``; values are parameters.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from runway_mlops.config import PipelineConfig, PlatformSettings
from runway_mlops.connections import connection_uri, postgres_dsn
from runway_mlops.errors import SourceDataError, SourceUnavailableError
from runway_mlops.storage import ObjectStore, StoredObject, open_store

if TYPE_CHECKING:
    import pandas as pd

NULL_VALUES = ["", "NA"]


@dataclass
class Delivery:
    """What a source handed over for one dataset and interval."""

    frame: pd.DataFrame
    provenance: dict[str, Any] = field(default_factory=dict)
    #: The raw bytes of each delivered file, kept so a corrupt file can be quarantined.
    files: dict[str, bytes] = field(default_factory=dict)


class CorruptDeliveryError(SourceDataError):
    """A delivered file cannot be parsed; carries the files for quarantine."""

    def __init__(self, message: str, files: dict[str, bytes]) -> None:
        super().__init__(message)
        self.files = files


class Source(Protocol):
    def read(self, dataset: str, ds: dt.date) -> Delivery: ...

    def describe(self) -> str: ...


def day_interval(ds: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The local calendar day ``ds`` as a half-open UTC interval (DST-aware)."""
    start = dt.datetime.combine(ds, dt.time(), tzinfo=zone)
    end = dt.datetime.combine(ds + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


# ----------------------------------------------------------------------------- files


def parse_csv(data: bytes, where: str, declared: list[str]) -> pd.DataFrame:
    """Parse CSV bytes strictly: every declared column read as text, ragged rows rejected."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    if data and not data.endswith(b"\n"):
        raise SourceDataError(f"{where} is truncated: its last line has no line ending")
    if not data.strip():
        raise SourceDataError(f"{where} is empty: not even a header row")
    try:
        table = pcsv.read_csv(
            io.BytesIO(data),
            convert_options=pcsv.ConvertOptions(
                column_types={c: pa.string() for c in declared},
                null_values=NULL_VALUES,
                strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise SourceDataError(f"{where} is not valid CSV: {exc}") from None
    return table.to_pandas()


def parse_parquet(data: bytes, where: str) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(io.BytesIO(data)).to_pandas()
    except (pa.ArrowInvalid, OSError) as exc:
        raise SourceDataError(f"{where} is not a readable Parquet file: {exc}") from None


class FileSource:
    """Files under a landing root, per the contract in the module docstring."""

    def __init__(self, store: ObjectStore, pipeline: PipelineConfig, fmt: str = "csv") -> None:
        self.store = store
        self.pipeline = pipeline
        self.fmt = fmt

    def describe(self) -> str:
        return f"files at {self.store.uri} ({self.fmt})"

    def _files(self, folder: str) -> list[StoredObject]:
        return [o for o in self.store.list(folder) if o.key.endswith(f".{self.fmt}")]

    def _snapshot_folder(self, dataset: str, ds: dt.date) -> str | None:
        days = set()
        for obj in self.store.list(dataset):
            part = obj.key.split("/")
            if len(part) >= 3 and part[1].startswith("ds="):
                try:
                    days.add(dt.date.fromisoformat(part[1][3:]))
                except ValueError:
                    continue
        eligible = sorted(d for d in days if d <= ds)
        return f"{dataset}/ds={eligible[-1].isoformat()}" if eligible else None

    def read(self, dataset: str, ds: dt.date) -> Delivery:
        import pandas as pd

        config = self.pipeline.datasets[dataset]
        if config.kind == "events":
            folder = f"{dataset}/ds={ds.isoformat()}"
        else:
            found = self._snapshot_folder(dataset, ds)
            if found is None:
                raise SourceUnavailableError(
                    f"no snapshot of reference dataset {dataset!r} on or before {ds} under "
                    f"{self.store.describe(dataset)}/ (expected ds=YYYY-MM-DD folders)"
                )
            folder = found
        objects = self._files(folder)
        if not objects:
            raise SourceUnavailableError(
                f"no delivery of {dataset!r} for {ds}: no *.{self.fmt} files under "
                f"{self.store.describe(folder)}/"
            )
        files = {o.key: self.store.read(o.key) for o in objects}
        frames = []
        try:
            for key, data in files.items():
                where = self.store.describe(key)
                if self.fmt == "csv":
                    frames.append(parse_csv(data, where, list(config.columns)))
                else:
                    frames.append(parse_parquet(data, where))
        except SourceDataError as exc:
            raise CorruptDeliveryError(str(exc), files) from None
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        provenance = {
            "source": "files",
            "folder": self.store.describe(folder),
            "files": [{"key": o.key, "bytes": o.size} for o in objects],
        }
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
        start, end = day_interval(ds, self.pipeline.zone)
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
                cursor.execute("SET TIME ZONE 'UTC'")
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
        if config.kind == "events" and frame.empty:
            raise SourceUnavailableError(
                f"no rows of {table} for {ds} ({config.event_time} in [{start:%Y-%m-%d %H:%M}, "
                f"{end:%Y-%m-%d %H:%M}) UTC)"
            )
        provenance = {
            "source": "postgres",
            "table": table,
            "interval_utc": [start.isoformat(), end.isoformat()]
            if config.kind == "events"
            else None,
        }
        return Delivery(frame=frame, provenance=provenance)


def open_source(settings: PlatformSettings, pipeline: PipelineConfig) -> Source:
    source = pipeline.source
    if source.kind == "files":
        store = open_store(source.uri or settings.landing_uri, settings.s3_endpoint_url)
        return FileSource(store, pipeline, source.format)
    dsn = postgres_dsn(connection_uri(source.conn_id, settings))
    return PostgresSource(dsn, pipeline, source.db_schema)
