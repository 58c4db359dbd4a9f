"""The platform database: what each stage wrote, validation results and quarantine.

SQLite on embedded defaults, PostgreSQL in production (``database_url`` in the platform
settings). Each write replaces the rows of its (pipeline, dataset, day) in one
transaction, so rerunning a stage for a day leaves the same rows as running it once.

Timestamps recorded here (``recorded_at``) are audit information only; no stage logic
reads them.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()

partitions = sa.Table(
    "runway_partitions",
    metadata,
    sa.Column("pipeline", sa.String(128), primary_key=True),
    sa.Column("dataset", sa.String(128), primary_key=True),
    sa.Column("zone", sa.String(32), primary_key=True),
    sa.Column("ds", sa.Date, primary_key=True),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=False, default="{}"),
    sa.Column("run_id", sa.String(250)),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)

validations = sa.Table(
    "runway_validations",
    metadata,
    sa.Column("validation_id", sa.String(64), primary_key=True),
    sa.Column("pipeline", sa.String(128), nullable=False, index=True),
    sa.Column("dataset", sa.String(128), nullable=False),
    sa.Column("ds", sa.Date, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),  # passed | warned | blocked
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("rows_quarantined", sa.BigInteger, nullable=False),
    sa.Column("failures", sa.Text, nullable=False),  # JSON list of failed checks
    sa.Column("report_path", sa.Text),
    sa.Column("dag_id", sa.String(250)),
    sa.Column("run_id", sa.String(250)),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("pipeline", "dataset", "ds", name="uq_runway_validation_day"),
)

quarantine = sa.Table(
    "runway_quarantine",
    metadata,
    sa.Column("pipeline", sa.String(128), primary_key=True),
    sa.Column("dataset", sa.String(128), primary_key=True),
    sa.Column("ds", sa.Date, primary_key=True),
    sa.Column("scope", sa.String(16), primary_key=True),  # partition | rows
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),  # JSON: reason -> row count
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("validation_id", sa.String(64)),
    sa.Column("run_id", sa.String(250)),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)

_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()


def engine(url: str) -> sa.Engine:
    """One engine per URL per process, with the tables created on first use."""
    with _engines_lock:
        if url not in _engines:
            if url.startswith("sqlite:///"):
                from pathlib import Path

                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
                eng = sa.create_engine(url, connect_args={"timeout": 60})

                @sa.event.listens_for(eng, "connect")
                def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
                    cursor = dbapi_conn.cursor()
                    cursor.execute("PRAGMA journal_mode=WAL")
                    cursor.execute("PRAGMA busy_timeout=60000")
                    cursor.close()

            else:
                eng = sa.create_engine(url, pool_pre_ping=True)
            metadata.create_all(eng, checkfirst=True)
            _engines[url] = eng
        return _engines[url]


def _now() -> dt.datetime:
    # Audit timestamp only (when the row was recorded); never used by stage logic.
    return dt.datetime.now(dt.UTC)


def record_partition(
    url: str,
    *,
    pipeline: str,
    dataset: str,
    zone: str,
    ds: dt.date,
    rows: int,
    path: str,
    details: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> None:
    key = (
        (partitions.c.pipeline == pipeline)
        & (partitions.c.dataset == dataset)
        & (partitions.c.zone == zone)
        & (partitions.c.ds == ds)
    )
    with engine(url).begin() as conn:
        conn.execute(sa.delete(partitions).where(key))
        conn.execute(
            sa.insert(partitions).values(
                pipeline=pipeline,
                dataset=dataset,
                zone=zone,
                ds=ds,
                rows=rows,
                path=path,
                details=json.dumps(details or {}, sort_keys=True, default=str),
                run_id=run_id,
                recorded_at=_now(),
            )
        )


def forget_partition(url: str, *, pipeline: str, dataset: str, zone: str, ds: dt.date) -> None:
    with engine(url).begin() as conn:
        conn.execute(
            sa.delete(partitions).where(
                (partitions.c.pipeline == pipeline)
                & (partitions.c.dataset == dataset)
                & (partitions.c.zone == zone)
                & (partitions.c.ds == ds)
            )
        )


@dataclass(frozen=True)
class QuarantineEntry:
    pipeline: str
    dataset: str
    ds: dt.date
    scope: str
    rows: int
    reasons: dict[str, int]
    path: str
    validation_id: str | None
    run_id: str | None


@dataclass(frozen=True)
class ValidationRecord:
    validation_id: str
    pipeline: str
    dataset: str
    ds: dt.date
    outcome: str
    rows: int
    rows_quarantined: int
    failures: list[dict[str, Any]]
    report_path: str | None
    dag_id: str | None
    run_id: str | None


#: Quarantine scopes written by validation (ingest writes "delivery").
VALIDATION_SCOPES = ("rows", "partition")


def record_validation(
    url: str, record: ValidationRecord, quarantined: list[QuarantineEntry]
) -> None:
    """Store one day's validation result and its quarantine entries, replacing earlier ones."""
    with engine(url).begin() as conn:
        day = (
            (validations.c.pipeline == record.pipeline)
            & (validations.c.dataset == record.dataset)
            & (validations.c.ds == record.ds)
        )
        conn.execute(sa.delete(validations).where(day))
        # Validation owns the "rows" and "partition" scopes; a "delivery" entry written
        # by ingest (corrupt files kept byte for byte) is not validation's to erase.
        conn.execute(
            sa.delete(quarantine).where(
                (quarantine.c.pipeline == record.pipeline)
                & (quarantine.c.dataset == record.dataset)
                & (quarantine.c.ds == record.ds)
                & quarantine.c.scope.in_(VALIDATION_SCOPES)
            )
        )
        conn.execute(
            sa.insert(validations).values(
                validation_id=record.validation_id,
                pipeline=record.pipeline,
                dataset=record.dataset,
                ds=record.ds,
                outcome=record.outcome,
                rows=record.rows,
                rows_quarantined=record.rows_quarantined,
                failures=json.dumps(record.failures, sort_keys=True, default=str),
                report_path=record.report_path,
                dag_id=record.dag_id,
                run_id=record.run_id,
                recorded_at=_now(),
            )
        )
        for entry in quarantined:
            _insert_quarantine(conn, entry)


def _insert_quarantine(conn: sa.Connection, entry: QuarantineEntry) -> None:
    conn.execute(
        sa.insert(quarantine).values(
            pipeline=entry.pipeline,
            dataset=entry.dataset,
            ds=entry.ds,
            scope=entry.scope,
            rows=entry.rows,
            reasons=json.dumps(entry.reasons, sort_keys=True),
            path=entry.path,
            validation_id=entry.validation_id,
            run_id=entry.run_id,
            recorded_at=_now(),
        )
    )


def record_quarantine(url: str, entry: QuarantineEntry) -> None:
    """Store one quarantine entry, replacing an earlier one of the same scope and day."""
    with engine(url).begin() as conn:
        conn.execute(
            sa.delete(quarantine).where(
                (quarantine.c.pipeline == entry.pipeline)
                & (quarantine.c.dataset == entry.dataset)
                & (quarantine.c.ds == entry.ds)
                & (quarantine.c.scope == entry.scope)
            )
        )
        _insert_quarantine(conn, entry)


def list_quarantine(
    url: str, pipeline: str | None = None, ds: dt.date | None = None
) -> list[QuarantineEntry]:
    query = sa.select(quarantine).order_by(
        quarantine.c.pipeline, quarantine.c.ds, quarantine.c.dataset, quarantine.c.scope
    )
    if pipeline:
        query = query.where(quarantine.c.pipeline == pipeline)
    if ds:
        query = query.where(quarantine.c.ds == ds)
    with engine(url).connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        QuarantineEntry(
            pipeline=r["pipeline"],
            dataset=r["dataset"],
            ds=r["ds"],
            scope=r["scope"],
            rows=r["rows"],
            reasons=json.loads(r["reasons"]),
            path=r["path"],
            validation_id=r["validation_id"],
            run_id=r["run_id"],
        )
        for r in rows
    ]


def _to_validation(r: Any) -> ValidationRecord:
    return ValidationRecord(
        validation_id=r["validation_id"],
        pipeline=r["pipeline"],
        dataset=r["dataset"],
        ds=r["ds"],
        outcome=r["outcome"],
        rows=r["rows"],
        rows_quarantined=r["rows_quarantined"],
        failures=json.loads(r["failures"]),
        report_path=r["report_path"],
        dag_id=r["dag_id"],
        run_id=r["run_id"],
    )


def list_validations(
    url: str,
    pipeline: str | None = None,
    *,
    ds: dt.date | None = None,
    run_id: str | None = None,
) -> list[ValidationRecord]:
    query = sa.select(validations).order_by(validations.c.ds, validations.c.dataset)
    if pipeline:
        query = query.where(validations.c.pipeline == pipeline)
    if ds:
        query = query.where(validations.c.ds == ds)
    if run_id:
        query = query.where(validations.c.run_id == run_id)
    with engine(url).connect() as conn:
        return [_to_validation(r) for r in conn.execute(query).mappings().all()]


def list_partitions(
    url: str, pipeline: str, zone: str | None = None, dataset: str | None = None
) -> list[dict[str, Any]]:
    query = sa.select(partitions).where(partitions.c.pipeline == pipeline)
    if zone:
        query = query.where(partitions.c.zone == zone)
    if dataset:
        query = query.where(partitions.c.dataset == dataset)
    query = query.order_by(partitions.c.ds, partitions.c.dataset, partitions.c.zone)
    with engine(url).connect() as conn:
        out = []
        for r in conn.execute(query).mappings().all():
            row = dict(r)
            row["details"] = json.loads(row["details"])
            out.append(row)
        return out
