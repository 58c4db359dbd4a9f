"""The PostgreSQL connection of a predictions writer dies in the middle of its upsert.

A day is stored (version A); a rewrite of that day (version B, large enough to take a
few seconds) runs in a thread; from another connection we wait until its backend is
executing the upsert and has already put rows of B into the table's pages, then end it
with ``pg_terminate_backend``. The rewrite must fail loudly and leave exactly the old
day (its delete and its partial inserts rolled back together); a retry must then store
every row of B exactly once.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time

import psycopg2
import pytest
import sqlalchemy as sa

from runway_mlops.inference import store
from tests.conftest import ROOT
from tests.integration.conftest import fresh_database

DAY = dt.date(2013, 5, 1)
OLD_ROWS = 20_000  # version A, already stored
NEW_ROWS = 100_000  # version B: 100 upsert pages, seconds of work
#: Bytes of version B's rows the table must hold (uncommitted) before the kill: the
#: upsert is well under way, a few thousand rows past its first pages.
PROGRESS_BYTES = 2 * 1024 * 1024


def rows(version: str, n: int, score: float):
    for i in range(n):
        yield {
            "pipeline": "flights",
            "entity_key": f"2013|5|1|UA|{i}|EWR",
            "model_version": version,
            "model_name": "runway_flights",
            "role": "champion",
            "alias": "champion",
            "score": score,
            "decision": int(score >= 0.5),
            "threshold": 0.5,
            "feature_version": "fv1",
            "ds": DAY,
            "event_time": dt.datetime(2013, 5, 1, 12, tzinfo=dt.UTC),
            "interval_start": None,
            "interval_end": None,
            "dag_id": "flights_inference",
            "run_id": f"run-{version}",
        }


@pytest.fixture
def pg_url():
    with fresh_database() as url:
        yield url


def stored(dsn: str) -> dict[str, object]:
    """What the table holds, read on a fresh connection (not the writer's pool)."""
    with psycopg2.connect(dsn) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT entity_key), count(DISTINCT "
            "(pipeline, entity_key, model_version)), array_agg(DISTINCT model_version), "
            "array_agg(DISTINCT score), min(ds), max(ds) FROM runway_predictions"
        )
        total, keys, pks, versions, scores, first, last = cursor.fetchone()
    return {
        "rows": total,
        "keys": keys,
        "primary_keys": pks,
        "versions": sorted(versions or []),
        "scores": sorted(scores or []),
        "days": (first, last),
    }


def test_connection_killed_mid_upsert_rolls_back_then_retry_writes_every_row_once(pg_url):
    url = pg_url.replace("postgresql://", "postgresql+psycopg2://")
    assert store.replace_day(url, "flights", DAY, "champion", rows("A", OLD_ROWS, 0.1)) == OLD_ROWS
    before = stored(pg_url)
    assert before == {
        "rows": OLD_ROWS,
        "keys": OLD_ROWS,
        "primary_keys": OLD_ROWS,
        "versions": ["A"],
        "scores": [0.1],
        "days": (DAY, DAY),
    }

    monitor = psycopg2.connect(pg_url)
    monitor.autocommit = True
    cursor = monitor.cursor()
    cursor.execute("SELECT pg_relation_size('runway_predictions')")
    (baseline,) = cursor.fetchone()

    outcome: dict[str, BaseException | int] = {}

    def rewrite() -> None:
        try:
            outcome["written"] = store.replace_day(
                url, "flights", DAY, "champion", rows("B", NEW_ROWS, 0.9)
            )
        except BaseException as exc:  # noqa: BLE001 - asserted below
            outcome["error"] = exc

    writer = threading.Thread(target=rewrite, daemon=True)
    writer.start()
    victim = None
    deadline = time.monotonic() + 45
    try:
        while time.monotonic() < deadline and writer.is_alive():
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state = 'active' "
                "AND query LIKE 'INSERT INTO \"runway_predictions\"%%'"
            )
            found = cursor.fetchall()
            if found:
                cursor.execute("SELECT pg_relation_size('runway_predictions')")
                (size,) = cursor.fetchone()
                if size - baseline >= PROGRESS_BYTES:
                    [(victim,)] = found
                    cursor.execute("SELECT pg_terminate_backend(%s)", (victim,))
                    assert cursor.fetchone() == (True,)
                    break
            time.sleep(0.01)
        # The kill must land mid-upsert: B's rows were in the table, the write unfinished.
        assert victim is not None, f"never caught the upsert in flight: {outcome}"
        writer.join(timeout=60)
        assert not writer.is_alive()
    finally:
        monitor.close()

    # The writer failed, and said why: its server connection was terminated.
    assert "written" not in outcome, "the upsert finished although its backend was killed"
    error = outcome["error"]
    assert isinstance(error, sa.exc.OperationalError | psycopg2.OperationalError), repr(error)
    assert "terminating connection due to administrator command" in str(
        error
    ) or "server closed the connection" in str(error), str(error)

    # Nothing partial: the delete of A and the pages of B rolled back together.
    assert stored(pg_url) == before
    assert {r["model_version"] for r in store.day_rows(url, "flights", DAY)} == {"A"}

    # The retry (same process, same engine: its pool must drop the dead connection).
    assert store.replace_day(url, "flights", DAY, "champion", rows("B", NEW_ROWS, 0.9)) == NEW_ROWS
    assert stored(pg_url) == {
        "rows": NEW_ROWS,
        "keys": NEW_ROWS,
        "primary_keys": NEW_ROWS,
        "versions": ["B"],
        "scores": [0.9],
        "days": (DAY, DAY),
    }
    assert store.day_counts(url, "flights") == [
        {"ds": DAY, "role": "champion", "model_version": "B", "rows": NEW_ROWS}
    ]


WRITE_B = """
import sys
from runway_mlops.inference import store
from tests.reliability.test_predictions_store_faults import NEW_ROWS, rows

store.replace_day(sys.argv[1], "flights", store_day(), "champion", rows("B", NEW_ROWS, 0.9))
"""


def test_writer_process_killed_mid_upsert_leaves_the_old_day(pg_url):
    """The scoring task's process SIGKILLed while its upsert runs (no rollback sent).

    PostgreSQL sees the client gone and aborts the transaction: the day stays version A
    to the row; the rerun stores B once. Checked to fail if the upsert commits per page.
    """
    url = pg_url.replace("postgresql://", "postgresql+psycopg2://")
    store.replace_day(url, "flights", DAY, "champion", rows("A", OLD_ROWS, 0.1))
    before = stored(pg_url)
    script = WRITE_B.replace("store_day()", f"__import__('datetime').date.fromisoformat('{DAY}')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    monitor = psycopg2.connect(pg_url)
    monitor.autocommit = True
    cursor = monitor.cursor()
    cursor.execute("SELECT pg_relation_size('runway_predictions')")
    (baseline,) = cursor.fetchone()
    writer = subprocess.Popen(
        [sys.executable, "-c", script, url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    killed = False
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and writer.poll() is None:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state = 'active' "
                "AND query LIKE 'INSERT INTO \"runway_predictions\"%%'"
            )
            if cursor.fetchall():
                cursor.execute("SELECT pg_relation_size('runway_predictions')")
                (size,) = cursor.fetchone()
                if size - baseline >= PROGRESS_BYTES:
                    os.kill(writer.pid, signal.SIGKILL)
                    killed = True
                    break
            time.sleep(0.01)
        out, _ = writer.communicate(timeout=30)
        assert killed, f"never caught the upsert in flight: {out.decode(errors='replace')[-2000:]}"
        assert writer.returncode == -signal.SIGKILL
        # The server ends the orphaned backend's transaction (rolled back, never committed).
        deadline = time.monotonic() + 60
        while True:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state <> 'idle'"
            )
            if cursor.fetchone() == (0,) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        if writer.poll() is None:
            writer.kill()
        monitor.close()

    assert stored(pg_url) == before
    assert store.replace_day(url, "flights", DAY, "champion", rows("B", NEW_ROWS, 0.9)) == NEW_ROWS
    after = stored(pg_url)
    assert (after["rows"], after["primary_keys"], after["versions"]) == (NEW_ROWS, NEW_ROWS, ["B"])
