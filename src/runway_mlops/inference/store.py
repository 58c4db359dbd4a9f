"""The predictions store: one row per (pipeline, entity, model version), queryable by key.

SQLite on embedded defaults, PostgreSQL in production (the platform ``database_url``).
Each scoring task replaces the rows of its (pipeline, day, role) in one transaction:
it deletes them, then inserts the new rows with an upsert keyed on
``(pipeline, entity_key, model_version)``. So

* rerunning an interval replaces its rows (a different champion version included) and
  nothing duplicates;
* writers of the same day are serialised (a PostgreSQL advisory lock per pipeline and
  day; SQLite has one writer at a time), so a scheduled run and a backfill of the same
  day leave exactly what one clean run leaves;
* a shadow write never touches a champion row: its upsert only updates shadow rows, and
  the database itself refuses a second champion row for an entity (a partial unique
  index on ``(pipeline, entity_key) WHERE role = 'champion'``).

A consumer asks for the served answer of one entity with::

    SELECT score, decision, model_version FROM runway_predictions
     WHERE pipeline = 'flights' AND entity_key = '2013|1|5|UA|1545|EWR' AND role = 'champion';

``entity_key`` is the pipeline's entity key columns joined by ``|`` in key order (for
flights: year, month, day, carrier, flight, origin).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from runway_mlops.catalog import engine_with

KEY_SEPARATOR = "|"
ROLES = ("champion", "shadow")

metadata = sa.MetaData()

predictions = sa.Table(
    "runway_predictions",
    metadata,
    sa.Column("pipeline", sa.String(128), primary_key=True),
    sa.Column("entity_key", sa.String(512), primary_key=True),
    sa.Column("model_version", sa.String(32), primary_key=True),
    sa.Column("model_name", sa.String(250), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),  # champion | shadow
    # The alias that made this version score: champion, challenger, previous_champion,
    # or "explicit" (a version named by the run's ``model`` param).
    sa.Column("alias", sa.String(32), nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("decision", sa.SmallInteger, nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("feature_version", sa.String(64), nullable=False),
    sa.Column("ds", sa.Date, nullable=False),
    sa.Column("event_time", sa.DateTime(timezone=True)),
    sa.Column("interval_start", sa.DateTime(timezone=True)),
    sa.Column("interval_end", sa.DateTime(timezone=True)),
    sa.Column("dag_id", sa.String(250)),
    sa.Column("run_id", sa.String(250)),
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_runway_predictions_day", "pipeline", "ds", "role"),
    sa.Index(
        "uq_runway_predictions_champion",
        "pipeline",
        "entity_key",
        unique=True,
        postgresql_where=sa.text("role = 'champion'"),
        sqlite_where=sa.text("role = 'champion'"),
    ),
)

#: Columns a scoring task provides for each row (``scored_at`` is added here).
ROW_COLUMNS = tuple(c.name for c in predictions.columns if c.name != "scored_at")


def _engine(url: str) -> sa.Engine:
    return engine_with(url, metadata)


def entity_key(values: Sequence[Any]) -> str:
    """The store's key of one entity: its key values joined by ``|`` in key order."""
    return KEY_SEPARATOR.join(str(v) for v in values)


def _insert(conn: sa.Connection) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(predictions)
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(predictions)
    raise ValueError(
        f"the predictions store supports SQLite and PostgreSQL, not {conn.dialect.name}"
    )


def _lock_day(conn: sa.Connection, pipeline: str, ds: dt.date) -> None:
    """Serialise writers of one (pipeline, day) until the transaction ends (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"runway_predictions/{pipeline}/{ds.isoformat()}"},
        )


def replace_day(
    url: str, pipeline: str, ds: dt.date, role: str, rows: Iterable[dict[str, Any]]
) -> int:
    """Replace the ``role`` rows of (pipeline, ds) with ``rows`` in one transaction.

    Returns the number of rows written. Every row must carry :data:`ROW_COLUMNS`, with
    this ``pipeline``, ``ds`` and ``role``.
    """
    if role not in ROLES:
        raise ValueError(f"unknown prediction role {role!r}; expected one of {ROLES}")
    now = dt.datetime.now(dt.UTC)  # audit only: when the row was written
    batch = []
    for row in rows:
        if row["pipeline"] != pipeline or row["ds"] != ds or row["role"] != role:
            raise ValueError(
                f"row for {row['pipeline']}/{row['ds']}/{row['role']} given to the writer of "
                f"{pipeline}/{ds}/{role}"
            )
        batch.append({**{c: row[c] for c in ROW_COLUMNS}, "scored_at": now})
    with _engine(url).begin() as conn:
        _lock_day(conn, pipeline, ds)
        conn.execute(
            sa.delete(predictions).where(
                (predictions.c.pipeline == pipeline)
                & (predictions.c.ds == ds)
                & (predictions.c.role == role)
            )
        )
        if batch and conn.dialect.name == "postgresql":
            _upsert_postgres(conn, role, batch)
        elif batch:
            stmt = _insert(conn)
            updates = {c: stmt.excluded[c] for c in ROW_COLUMNS if c not in _PK} | {
                "scored_at": stmt.excluded.scored_at
            }
            if role == "champion":
                # The version is the served answer now: it takes over a shadow row of the
                # same version and entity (same model, same features, same score).
                stmt = stmt.on_conflict_do_update(index_elements=list(_PK), set_=updates)
            else:
                # Shadow rows never replace a champion row.
                stmt = stmt.on_conflict_do_update(
                    index_elements=list(_PK), set_=updates, where=predictions.c.role == "shadow"
                )
            conn.execute(stmt, batch)
    return len(batch)


def add_rows(
    url: str, pipeline: str, ds: dt.date, role: str, rows: Iterable[dict[str, Any]]
) -> int:
    """Insert rows not stored yet (the micro-batch path); an existing row is left alone.

    ``scored_at`` records when each row was first written, so a rerun of a micro-batch
    neither duplicates nor re-dates anything. Returns the number of rows offered.
    """
    if role not in ROLES:
        raise ValueError(f"unknown prediction role {role!r}; expected one of {ROLES}")
    now = dt.datetime.now(dt.UTC)  # audit only: when the row was written
    batch = [{**{c: row[c] for c in ROW_COLUMNS}, "scored_at": now} for row in rows]
    for row in batch:
        if row["pipeline"] != pipeline or row["ds"] != ds or row["role"] != role:
            raise ValueError(
                f"row for {row['pipeline']}/{row['ds']}/{row['role']} given to the writer of "
                f"{pipeline}/{ds}/{role}"
            )
    if not batch:
        return 0
    with _engine(url).begin() as conn:
        _lock_day(conn, pipeline, ds)
        stmt = _insert(conn).on_conflict_do_nothing()
        conn.execute(stmt, batch)
    return len(batch)


_PK = ("pipeline", "entity_key", "model_version")
_COLUMNS = (*ROW_COLUMNS, "scored_at")


def _upsert_postgres(conn: sa.Connection, role: str, batch: list[dict[str, Any]]) -> None:
    """The upsert with psycopg2's ``execute_values``: pages of 1,000 rows per statement.

    SQLAlchemy runs an ``ON CONFLICT`` upsert as an executemany, which psycopg2 sends one
    row at a time: 0.7 s for a day of flights. Same statement, same rules as the SQLite
    path: a champion write takes over a shadow row of its version, a shadow write never
    updates a champion row. Identifiers are quoted by ``psycopg2.sql``; values are bound.
    """
    import psycopg2
    from psycopg2 import sql
    from psycopg2.extras import execute_values

    table = sql.Identifier(predictions.name)
    updates = sql.SQL(", ").join(
        sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
        for c in _COLUMNS
        if c not in _PK
    )
    statement = sql.SQL(
        "INSERT INTO {table} ({columns}) VALUES %s ON CONFLICT ({key}) DO UPDATE SET {updates}"
    ).format(
        table=table,
        columns=sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)),
        key=sql.SQL(", ").join(map(sql.Identifier, _PK)),
        updates=updates,
    )
    if role != "champion":
        statement += sql.SQL(" WHERE {table}.{role} = 'shadow'").format(
            table=table, role=sql.Identifier("role")
        )
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        execute_values(
            cursor,
            statement.as_string(raw),
            [tuple(row[c] for c in _COLUMNS) for row in batch],
            page_size=1000,
        )
    except psycopg2.Error:
        if raw.closed:
            # The session died (server ended it, network dropped). SQLAlchemy did not see
            # this raw cursor's error: tell it, or its rollback on the dead socket raises
            # "connection already closed" in place of the real cause.
            conn.invalidate()
        raise
    finally:
        cursor.close()


def lookup(
    url: str, pipeline: str, key: str, *, role: str | None = "champion"
) -> list[dict[str, Any]]:
    """The stored predictions of one entity (the served one: ``role='champion'``)."""
    query = sa.select(predictions).where(
        (predictions.c.pipeline == pipeline) & (predictions.c.entity_key == key)
    )
    if role:
        query = query.where(predictions.c.role == role)
    query = query.order_by(predictions.c.role, predictions.c.model_version)
    with _engine(url).connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings().all()]


def day_rows(url: str, pipeline: str, ds: dt.date, role: str | None = None) -> list[dict[str, Any]]:
    """Every stored prediction of one day (optionally of one role), by entity key."""
    query = sa.select(predictions).where(
        (predictions.c.pipeline == pipeline) & (predictions.c.ds == ds)
    )
    if role:
        query = query.where(predictions.c.role == role)
    query = query.order_by(predictions.c.entity_key, predictions.c.model_version)
    with _engine(url).connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings().all()]


def day_counts(url: str, pipeline: str) -> list[dict[str, Any]]:
    """Rows per (day, role, model version): what has been scored, oldest day first."""
    query = (
        sa.select(
            predictions.c.ds,
            predictions.c.role,
            predictions.c.model_version,
            sa.func.count().label("rows"),
        )
        .where(predictions.c.pipeline == pipeline)
        .group_by(predictions.c.ds, predictions.c.role, predictions.c.model_version)
        .order_by(predictions.c.ds, predictions.c.role, predictions.c.model_version)
    )
    with _engine(url).connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings().all()]
