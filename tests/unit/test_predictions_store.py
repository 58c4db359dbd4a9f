"""The predictions store on SQLite: replace per day and role, never two served answers.

The same module runs on PostgreSQL in tests/integration/test_inference_stages.py.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from runway_mlops.inference import store

D = dt.date(2013, 5, 1)


def rows(version: str, role: str, n: int = 3, score: float = 0.5, ds: dt.date = D) -> list[dict]:
    return [
        {
            "pipeline": "flights",
            "entity_key": f"2013|5|1|UA|{i}|EWR",
            "model_version": version,
            "model_name": "runway_flights",
            "role": role,
            "alias": "champion" if role == "champion" else "challenger",
            "score": score,
            "decision": int(score >= 0.5),
            "threshold": 0.5,
            "feature_version": "fv1",
            "ds": ds,
            "event_time": dt.datetime(2013, 5, 1, 12, tzinfo=dt.UTC),
            "interval_start": None,
            "interval_end": None,
            "dag_id": "flights_inference",
            "run_id": "r1",
        }
        for i in range(n)
    ]


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/runway.db"


def count(url: str, **where: str) -> int:
    with store._engine(url).connect() as conn:
        query = sa.select(sa.func.count()).select_from(store.predictions)
        for column, value in where.items():
            query = query.where(store.predictions.c[column] == value)
        return int(conn.execute(query).scalar_one())


def test_rerunning_a_day_replaces_its_rows(url: str) -> None:
    assert store.replace_day(url, "flights", D, "champion", rows("1", "champion")) == 3
    store.replace_day(url, "flights", D, "champion", rows("1", "champion", score=0.7))
    assert count(url) == 3
    assert {r["score"] for r in store.day_rows(url, "flights", D)} == {0.7}
    # A rerun with another champion version replaces the old version's rows.
    store.replace_day(url, "flights", D, "champion", rows("2", "champion", n=2))
    assert count(url) == 2 and count(url, model_version="1") == 0
    (found,) = store.lookup(url, "flights", "2013|5|1|UA|0|EWR")
    assert found["model_version"] == "2" and found["feature_version"] == "fv1"


def test_shadow_rows_never_replace_champion_rows(url: str) -> None:
    store.replace_day(url, "flights", D, "champion", rows("1", "champion", score=0.9))
    # A shadow write of the same version (e.g. the challenger was promoted meanwhile):
    store.replace_day(url, "flights", D, "shadow", rows("1", "shadow", score=0.1))
    assert count(url, role="champion") == 3 and count(url, role="shadow") == 0
    assert {r["score"] for r in store.day_rows(url, "flights", D, "champion")} == {0.9}
    store.replace_day(url, "flights", D, "shadow", rows("2", "shadow", score=0.2))
    assert count(url, role="shadow") == 3
    # Rewriting shadow rows leaves the champion rows alone, and vice versa.
    store.replace_day(url, "flights", D, "shadow", [])
    assert count(url, role="shadow") == 0 and count(url, role="champion") == 3


def test_the_database_refuses_a_second_served_answer(url: str) -> None:
    store.replace_day(url, "flights", D, "champion", rows("1", "champion"))
    other_day = dt.date(2013, 5, 2)
    # Same entity keys filed under another day (a bug) would give two champion answers.
    with pytest.raises(sa.exc.IntegrityError):
        store.replace_day(
            url, "flights", other_day, "champion", rows("2", "champion", ds=other_day)
        )
    assert count(url) == 3


def test_rows_must_belong_to_the_writer(url: str) -> None:
    with pytest.raises(ValueError, match="given to the writer"):
        store.replace_day(url, "flights", D, "shadow", rows("1", "champion"))
    with pytest.raises(ValueError, match="unknown prediction role"):
        store.replace_day(url, "flights", D, "served", [])
    assert store.entity_key([2013, 1, 5, "UA", 1545, "EWR"]) == "2013|1|5|UA|1545|EWR"


def test_a_large_day_is_written_whole(url: str) -> None:
    big = rows("1", "champion", n=2507)
    assert store.replace_day(url, "flights", D, "champion", big) == len(big)
    assert count(url) == len(big)
    store.replace_day(url, "flights", D, "champion", big[:5])
    assert count(url) == 5
