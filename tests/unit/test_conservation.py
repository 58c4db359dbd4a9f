"""Property: every delivered row ends up exactly once, in the lake or in quarantine.

Hypothesis generates hostile versions of a real day of flights — cells replaced by
nulls, values out of range, SQL-injection strings, unicode, huge strings, ``inf``/``nan``
text, out-of-range dates — delivered as the CSV a source would land. After ingest and
validation each input row is either in the ``validated`` partition or in quarantine
(rows, or the whole day when a blocking check fails), never both, never lost; or, when
ingest cannot parse the file at all, the file is kept byte for byte.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runway_mlops.config import load_settings
from runway_mlops.errors import DataValidationError, SourceDataError
from runway_mlops.lake import Lake
from runway_mlops.seed import _csv_bytes, load_raw, seed
from runway_mlops.stages.ingest import ingest
from runway_mlops.stages.validate import validate
from runway_mlops.storage import LocalStore
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


@pytest.fixture(scope="module")
def world(tmp_path_factory, flights_pipeline):
    home = tmp_path_factory.mktemp("conservation")
    env = {"RUNWAY_HOME": str(home)}
    settings_ = load_settings(CONFIG_DIR, env=env)
    seed(settings_, flights_pipeline, "files", DAY, DAY)
    flights = load_raw("flights")
    clean = flights[(flights.month == "1") & (flights.day == "2")].reset_index(drop=True)
    return settings_, flights_pipeline, clean


def _keys(frame: pd.DataFrame) -> Counter[tuple[str, ...]]:
    return Counter(
        tuple(str(v) for v in row) for row in frame[KEY].astype(str).itertuples(index=False)
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


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(edits=edits)
def test_every_row_ends_up_exactly_once(world, edits) -> None:
    app, pipeline, clean = world
    frame = clean.copy()
    for row, column, value in edits:
        frame.loc[row % len(frame), column] = value
    data = _csv_bytes(frame)
    LocalStore(app.landing_uri).write(f"flights/ds={DAY}/flights.csv", data)
    lake = Lake(app.lake_dir)
    try:
        ingest(app, pipeline, DAY, run_id="hostile")
    except SourceDataError:
        kept = (
            lake.partition_dir("quarantine", "flights", "flights.delivery", DAY)
            / "source-files"
            / f"flights/ds={DAY}/flights.csv"
        )
        assert kept.read_bytes() == data  # unparseable: kept whole, byte for byte
        return
    raw = lake.read_frame("raw", "flights", "flights", DAY)
    assert len(raw) == len(frame)
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
    # Whatever happened, the run's quarantine never mixes in another delivery's rows.
    assert len(quarantined) <= len(frame)
