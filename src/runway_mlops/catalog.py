"""The platform database: what each stage wrote, validation results, quarantine, gate
decisions and model events (registration, promotion, approval).

SQLite on embedded defaults, PostgreSQL in production (``database_url`` in the platform
settings). Each write replaces the rows of its (pipeline, dataset, day) in one
transaction, so rerunning a stage for a day leaves the same rows as running it once.

Timestamps recorded here (``recorded_at``) are audit information only; no stage logic
reads them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from collections.abc import Callable

    from runway_mlops.lake import Lake

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

gate_decisions = sa.Table(
    "runway_gate_decisions",
    metadata,
    sa.Column("decision_id", sa.String(64), primary_key=True),
    sa.Column("pipeline", sa.String(128), nullable=False, index=True),
    sa.Column("model_name", sa.String(250), nullable=False),
    sa.Column("model_version", sa.String(32)),  # set once a passing model is registered
    sa.Column("mlflow_run_id", sa.String(64), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),  # enforce | dry_run
    sa.Column("decision", sa.String(16), nullable=False),  # passed | rejected
    sa.Column("blocking", sa.Boolean, nullable=False),
    sa.Column("checks", sa.Text, nullable=False),  # JSON list: name, value, threshold, verdict
    sa.Column("inputs", sa.Text, nullable=False),  # JSON: window, rows, champion, params
    sa.Column("dag_id", sa.String(250)),
    sa.Column("run_id", sa.String(250)),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)

model_events = sa.Table(
    "runway_model_events",
    metadata,
    sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("pipeline", sa.String(128), nullable=False, index=True),
    sa.Column("model_name", sa.String(250), nullable=False),
    sa.Column("model_version", sa.String(32)),
    # registered | challenger | promoted | approval_requested | approved | rejected |
    # promotion_refused | rolled_back
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(250)),  # "policy:auto", a user name, "policy:rollback"
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=False),  # JSON
    sa.Column("dag_id", sa.String(250)),
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
                # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3, which Runway does
                # not install: use the psycopg2 driver it ships with.
                driver_url = (
                    "postgresql+psycopg2://" + url.removeprefix("postgresql://")
                    if url.startswith("postgresql://")
                    else url
                )
                eng = sa.create_engine(driver_url, pool_pre_ping=True)
            create_tables(metadata, eng)
            _engines[url] = eng
        return _engines[url]


def create_tables(tables: sa.MetaData, eng: sa.Engine, attempts: int = 5) -> None:
    """Create the missing tables; another process creating them at the same moment is fine.

    Two tasks starting on a new database both see a table missing; the one that loses
    the race gets "table already exists" (SQLite) or a duplicate ``pg_type`` row
    (PostgreSQL) and simply looks again.
    """
    for attempt in range(attempts):
        try:
            tables.create_all(eng, checkfirst=True)
            return
        except sa.exc.DBAPIError as exc:
            text = str(exc.orig)
            lost_the_race = "already exists" in text or "pg_type_typname_nsp_index" in text
            if not lost_the_race or attempt == attempts - 1:
                raise  # any other error (no server, bad password) at once
            time.sleep(0.2 * (attempt + 1))


_with_tables: set[tuple[str, int]] = set()


def engine_with(url: str, tables: sa.MetaData) -> sa.Engine:
    """:func:`engine`, with the tables of another module's ``MetaData`` created too (once
    per URL and process): the predictions store and the monitoring tables live in the
    platform database beside the catalog."""
    eng = engine(url)
    with _engines_lock:
        if (url, id(tables)) not in _with_tables:
            create_tables(tables, eng)
            _with_tables.add((url, id(tables)))
    return eng


# ------------------------------------------------------------------------- day locks

#: Days this process holds, by (url, pipeline, day): a stage called inside another that
#: holds its day (a micro-batch validating its days) goes on, instead of waiting for itself.
_held: dict[tuple[str, str, dt.date], int] = {}
_held_lock = threading.Lock()


def _lock_key(pipeline: str) -> int:
    """A stable signed 32-bit number for a pipeline (PostgreSQL advisory lock key)."""
    return int.from_bytes(hashlib.sha256(pipeline.encode()).digest()[:4], "big", signed=True)


@contextlib.contextmanager
def day_lock(
    url: str, pipeline: str, days: Iterable[dt.date], *, timeout: float = 900, what: str = ""
) -> Iterator[None]:
    """Hold days of a pipeline so ingest, validation and features of a day never interleave.

    One lock per (pipeline, day), taken in day order (no deadlock between two ranges).
    On PostgreSQL they are session advisory locks of the platform database, which every
    worker machine shares; on SQLite, ``flock`` on files beside the database (one
    machine, as SQLite is). Waits up to ``timeout`` seconds, then raises
    :class:`~runway_mlops.errors.BusyError` (retried by Airflow). Re-entrant within a
    process.
    """
    from runway_mlops.errors import BusyError

    wanted = sorted(set(days))
    with _held_lock:
        mine = [d for d in wanted if (url, pipeline, d) not in _held]
        for d in wanted:
            if (url, pipeline, d) in _held:
                _held[url, pipeline, d] += 1
    deadline = time.monotonic() + timeout
    taken: list[dt.date] = []
    release: list[Any] = []

    def busy(ds: dt.date) -> BusyError:
        return BusyError(
            f"{what or 'this task'} waited {timeout:.0f} s for {pipeline} {ds}, which another "
            "task (ingest, validation or features of that day) still holds; retry later"
        )

    try:
        if mine and url.startswith("postgresql"):
            conn = engine(url).connect()
            release.append(conn)
            key = _lock_key(pipeline)
            for ds in mine:
                query = sa.select(sa.func.pg_try_advisory_lock(key, ds.toordinal()))
                while not conn.execute(query).scalar():
                    if time.monotonic() > deadline:
                        raise busy(ds)
                    time.sleep(0.25)
                conn.commit()
                taken.append(ds)
        elif mine:
            import fcntl

            folder = Path(url.removeprefix("sqlite:///")).parent / "locks" / pipeline
            folder.mkdir(parents=True, exist_ok=True)
            for ds in mine:
                handle = open(folder / f"{ds.isoformat()}.lock", "w")  # noqa: SIM115
                release.append(handle)
                while True:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise busy(ds) from None
                        time.sleep(0.25)
                taken.append(ds)
        with _held_lock:
            for d in mine:
                _held[url, pipeline, d] = 1
        yield
    finally:
        with _held_lock:
            for d in wanted:
                count = _held.get((url, pipeline, d), 0)
                if d in mine and d not in taken:
                    continue
                if count <= 1:
                    _held.pop((url, pipeline, d), None)
                else:
                    _held[url, pipeline, d] = count - 1
        for item in release:
            if isinstance(item, sa.Connection):
                try:
                    key = _lock_key(pipeline)
                    for ds in taken:
                        item.execute(sa.select(sa.func.pg_advisory_unlock(key, ds.toordinal())))
                    item.commit()
                    item.close()
                except sa.exc.DBAPIError:
                    item.invalidate()  # a closed session releases its locks
            else:
                item.close()  # closing the file releases its flock


def _now() -> dt.datetime:
    # Audit timestamp only (when the row was recorded); never used by stage logic.
    return dt.datetime.now(dt.UTC)


def publish_partition(
    url: str,
    lake: Lake,
    zone: str,
    pipeline: str,
    dataset: str,
    ds: dt.date,
    manifest: dict[str, Any],
    write: Callable[[Path], int],
    *,
    details: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> int:
    """Publish a partition, then record it here: the one way a stage makes a partition.

    ``write(folder)`` fills the lake's private staging folder and returns its rows (also
    written to the manifest); the folder replaces the partition atomically (readers see
    the old partition or the new one, never half), and only then is it recorded with its
    path, ``details`` and ``run_id``. If ``write`` raises, nothing is published or recorded.
    """
    with lake.publish(zone, pipeline, dataset, ds, manifest) as folder:
        rows = int(write(folder))
        manifest["rows"] = rows  # publish() writes the manifest after this
    record_partition(
        url,
        pipeline=pipeline,
        dataset=dataset,
        zone=zone,
        ds=ds,
        rows=rows,
        path=str(lake.location(zone, pipeline, dataset, ds)),
        details=details,
        run_id=run_id,
    )
    return rows


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


# ---------------------------------------------------------------- gates and model events


@dataclass(frozen=True)
class GateDecisionRecord:
    decision_id: str
    pipeline: str
    model_name: str
    model_version: str | None
    mlflow_run_id: str
    mode: str
    decision: str
    blocking: bool
    checks: list[dict[str, Any]]
    inputs: dict[str, Any]
    dag_id: str | None
    run_id: str | None


def record_gate_decision(url: str, record: GateDecisionRecord) -> None:
    """Store one gate decision, replacing an earlier record with the same id (a rerun)."""
    with engine(url).begin() as conn:
        conn.execute(
            sa.delete(gate_decisions).where(gate_decisions.c.decision_id == record.decision_id)
        )
        conn.execute(
            sa.insert(gate_decisions).values(
                decision_id=record.decision_id,
                pipeline=record.pipeline,
                model_name=record.model_name,
                model_version=record.model_version,
                mlflow_run_id=record.mlflow_run_id,
                mode=record.mode,
                decision=record.decision,
                blocking=record.blocking,
                checks=json.dumps(record.checks, sort_keys=True, default=str),
                inputs=json.dumps(record.inputs, sort_keys=True, default=str),
                dag_id=record.dag_id,
                run_id=record.run_id,
                recorded_at=_now(),
            )
        )


def set_decision_version(url: str, decision_id: str, model_version: str) -> None:
    with engine(url).begin() as conn:
        conn.execute(
            sa.update(gate_decisions)
            .where(gate_decisions.c.decision_id == decision_id)
            .values(model_version=model_version)
        )


def _to_decision(r: Any) -> GateDecisionRecord:
    return GateDecisionRecord(
        decision_id=r["decision_id"],
        pipeline=r["pipeline"],
        model_name=r["model_name"],
        model_version=r["model_version"],
        mlflow_run_id=r["mlflow_run_id"],
        mode=r["mode"],
        decision=r["decision"],
        blocking=bool(r["blocking"]),
        checks=json.loads(r["checks"]),
        inputs=json.loads(r["inputs"]),
        dag_id=r["dag_id"],
        run_id=r["run_id"],
    )


def get_gate_decision(url: str, decision_id: str) -> GateDecisionRecord | None:
    query = sa.select(gate_decisions).where(gate_decisions.c.decision_id == decision_id)
    with engine(url).connect() as conn:
        row = conn.execute(query).mappings().first()
    return _to_decision(row) if row else None


def list_gate_decisions(
    url: str,
    pipeline: str | None = None,
    *,
    run_id: str | None = None,
    dag_id: str | None = None,
) -> list[GateDecisionRecord]:
    """Gate decisions, newest first."""
    query = sa.select(gate_decisions).order_by(
        gate_decisions.c.recorded_at.desc(), gate_decisions.c.decision_id
    )
    if pipeline:
        query = query.where(gate_decisions.c.pipeline == pipeline)
    if run_id:
        query = query.where(gate_decisions.c.run_id == run_id)
    if dag_id:
        query = query.where(gate_decisions.c.dag_id == dag_id)
    with engine(url).connect() as conn:
        return [_to_decision(r) for r in conn.execute(query).mappings().all()]


@dataclass(frozen=True)
class ModelEvent:
    pipeline: str
    model_name: str
    model_version: str | None
    event: str
    actor: str | None
    reason: str
    details: dict[str, Any]
    dag_id: str | None = None
    run_id: str | None = None


def record_model_event(url: str, event: ModelEvent) -> None:
    """Append one model event (events are history: never replaced)."""
    with engine(url).begin() as conn:
        conn.execute(
            sa.insert(model_events).values(
                pipeline=event.pipeline,
                model_name=event.model_name,
                model_version=event.model_version,
                event=event.event,
                actor=event.actor,
                reason=event.reason,
                details=json.dumps(event.details, sort_keys=True, default=str),
                dag_id=event.dag_id,
                run_id=event.run_id,
                recorded_at=_now(),
            )
        )


def list_model_events(url: str, pipeline: str | None = None) -> list[ModelEvent]:
    """Model events, oldest first."""
    query = sa.select(model_events).order_by(model_events.c.event_id)
    if pipeline:
        query = query.where(model_events.c.pipeline == pipeline)
    with engine(url).connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        ModelEvent(
            pipeline=r["pipeline"],
            model_name=r["model_name"],
            model_version=r["model_version"],
            event=r["event"],
            actor=r["actor"],
            reason=r["reason"],
            details=json.loads(r["details"]),
            dag_id=r["dag_id"],
            run_id=r["run_id"],
        )
        for r in rows
    ]
