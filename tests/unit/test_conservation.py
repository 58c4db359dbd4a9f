"""Property: every delivered row ends up exactly once, in the lake or in quarantine.

Hypothesis generates hostile versions of a real day of flights — cells replaced by
nulls, values out of range, SQL-injection strings, unicode, huge strings, ``inf``/``nan``
text, out-of-range dates, event times of the day before or after (with or without a UTC
offset) — delivered as a source would land it: split over one to three CSV files whose
extensions vary in case, sometimes beside a stray file of another format, a link to a
file outside the landing root, or a linked folder. After ingest and validation each
input row is either in the ``validated`` partition (and then inside the day) or in
quarantine (rows, or the whole day when a blocking check fails), never both, never
lost; or, when ingest refuses the delivery, every regular file of it is kept byte for
byte, and nothing a link points to is.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runway_mlops.config import load_settings
from runway_mlops.errors import DataValidationError, SourceDataError
from runway_mlops.lake import Lake
from runway_mlops.sample.seed import _csv_bytes, load_raw, seed
from runway_mlops.sources import day_interval
from runway_mlops.stages.ingest import ingest
from runway_mlops.stages.validate import validate
from tests.conftest import CONFIG_DIR

DAY = dt.date(2013, 1, 2)
KEY = ["year", "month", "day", "carrier", "flight", "origin"]
HOSTILE = [
    "",
    "NA",
    "'; DROP TABLE runway_predictions; --",
    'x" OR "1"="1',
    "Ærø✈ 東京 \u202e",
    "9" * 40,
    "inf",
    "-inf",
    "nan",
    "1e308",
    "2013-13-45",
    "A" * 10_000,
]
COLUMNS = ["dep_delay", "arr_delay", "distance", "air_time", "tailnum", "dest", "carrier"]
COLUMNS += ["time_hour", "sched_dep_time", "hour", "origin"]
#: Event times around the day 2013-01-02 (New York: [05:00Z, next day 05:00Z)).
TIMES = [
    "2013-01-03T06:00:00Z",  # the next day
    "2013-01-02T04:59:00Z",  # 23:59 the day before
    "2013-01-02T05:00:00Z",  # the day's first instant: inside
    "2013-01-03T04:59:59Z",  # its last second: inside
    "2013-01-03T05:00:00Z",  # the next day's first instant: outside
    "2013-01-02 00:00:00",  # naive: local midnight, inside
    "2013-01-03 00:30:00",  # naive: local, the next day
]
#: Where the day's rows go: up to three files, extensions in any case, one in a subfolder.
NAMES = ["flights.csv", "flights-late.CSV", "part-2.Csv", "sub/part-3.csv"]
#: Something beside the files: nothing (most often), another format, or a link.
STRAYS = [None, None, None, None, "extra.parquet", "notes.txt", "link.csv", "linked-folder"]
MARKER = "SECRET-OUTSIDE-THE-LANDING-ROOT"


@pytest.fixture(scope="module")
def world(tmp_path_factory, flights_pipeline):
    home = tmp_path_factory.mktemp("conservation")
    env = {"RUNWAY_HOME": str(home)}
    settings_ = load_settings(CONFIG_DIR, env=env)
    seed(settings_, flights_pipeline, "files", DAY, DAY)
    flights = load_raw("flights")
    clean = flights[(flights.month == "1") & (flights.day == "2")].reset_index(drop=True)
    # A file outside the landing root, valid CSV of the day's columns: never to be read.
    outside = tmp_path_factory.mktemp("outside")
    (outside / "deep").mkdir()
    (outside / "deep" / "rows.csv").write_bytes(_csv_bytes(clean.head(3).assign(tailnum=MARKER)))
    return settings_, flights_pipeline, clean, outside


def _keys(frame: pd.DataFrame) -> Counter[tuple[str, ...]]:
    return Counter(
        tuple(str(v) for v in row) for row in frame[KEY].astype(str).itertuples(index=False)
    )


moves = st.lists(
    st.tuples(st.integers(min_value=0, max_value=10_000), st.sampled_from(TIMES)), max_size=6
)
layouts = st.tuples(
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True),
    st.sampled_from(STRAYS),
)
edits = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=10_000),  # row (modulo the day's rows)
        st.sampled_from(COLUMNS),
        st.sampled_from(HOSTILE),
    ),
    min_size=1,
    max_size=40,
)


def _deliver(folder: Path, frame: pd.DataFrame, names: list[str], stray, outside) -> dict:
    """Write the day as ``names`` (rows split in order) plus ``stray``; the regular files."""
    if folder.exists():
        shutil.rmtree(folder)  # links inside are removed, never followed
    folder.mkdir(parents=True)
    files = {}
    bounds = [len(frame) * i // len(names) for i in range(len(names) + 1)]
    for name, lo, hi in zip(names, bounds, bounds[1:], strict=False):
        files[name] = _csv_bytes(frame.iloc[lo:hi])
    if stray in ("extra.parquet", "notes.txt"):
        files[stray] = _csv_bytes(frame.head(5))  # readable rows, in the wrong format
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    if stray == "link.csv":
        (folder / stray).symlink_to(outside / "deep" / "rows.csv")
    elif stray == "linked-folder":
        (folder / stray).symlink_to(outside, target_is_directory=True)
    return files


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(edits=edits, moves=moves, layout=layouts)
def test_every_row_ends_up_exactly_once(world, edits, moves, layout) -> None:
    app, pipeline, clean, outside = world
    names, stray = layout
    frame = clean.copy()
    for row, column, value in edits:
        frame.loc[row % len(frame), column] = value
    for row, value in moves:
        frame.loc[row % len(frame), "time_hour"] = value
    folder = Path(app.landing_uri) / "flights" / f"ds={DAY}"
    files = _deliver(folder, frame, names, stray, outside)
    lake = Lake(app.lake_dir)
    try:
        ingest(app, pipeline, DAY, run_id="hostile")
    except SourceDataError as exc:
        # Every file here is well-formed CSV (whatever its extension's case): only a
        # stray file or a link may refuse the delivery.
        assert stray is not None, exc
        # Then every regular file is kept whole, byte for byte, and nothing behind a
        # link is read, copied or printed.
        kept = (
            lake.partition_dir("quarantine", "flights", "flights.delivery", DAY)
            / "source-files"
            / f"flights/ds={DAY}"
        )
        copies = {
            p.relative_to(kept).as_posix(): p.read_bytes() for p in kept.rglob("*") if p.is_file()
        }
        assert copies == files
        assert MARKER not in str(exc)
        assert stray in str(exc)
        return
    assert stray is None  # a stray file or a link is never ingested
    raw = lake.read_frame("raw", "flights", "flights", DAY)
    assert len(raw) == len(frame)
    assert MARKER not in set(raw["tailnum"].dropna())
    blocked = False
    try:
        validate(app, pipeline, DAY, run_id="hostile")
    except DataValidationError:
        blocked = True
    quarantined = (
        lake.read_frame("quarantine", "flights", "flights", DAY)
        if lake.exists("quarantine", "flights", "flights", DAY)
        else pd.DataFrame(columns=KEY)
    )
    if blocked:
        assert not lake.exists("validated", "flights", "flights", DAY)
        assert _keys(quarantined) == _keys(raw)
    else:
        validated = lake.read_frame("validated", "flights", "flights", DAY)
        assert len(validated) + len(quarantined) == len(frame)
        assert _keys(validated) + _keys(quarantined) == _keys(raw)
        # Rows of another day never become part of this one.
        start, end = day_interval(DAY, pipeline.zone)
        assert validated["time_hour"].between(start, end, inclusive="left").all()
    # Whatever happened, the run's quarantine never mixes in another delivery's rows.
    assert len(quarantined) <= len(frame)
