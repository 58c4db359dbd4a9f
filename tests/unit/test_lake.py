"""Partitions appear whole or not at all, and rewriting a day replaces it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from runway_mlops.errors import MissingPartitionError, SourceDataError
from runway_mlops.lake import Lake

DAY = dt.date(2013, 1, 5)


def test_write_read_and_replace(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    lake.write_frame("raw", "p", "d", DAY, pd.DataFrame({"x": [1, 2, 3]}))
    lake.write_frame("raw", "p", "d", DAY, pd.DataFrame({"x": [4, 5]}))
    assert lake.read_frame("raw", "p", "d", DAY)["x"].tolist() == [4, 5]
    assert lake.manifest("raw", "p", "d", DAY)["rows"] == 2
    assert lake.partitions("raw", "p", "d") == [DAY]
    assert len(list(lake.partition_dir("raw", "p", "d", DAY).glob("*.parquet"))) == 1


def test_failed_write_leaves_old_partition(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    lake.write_frame("raw", "p", "d", DAY, pd.DataFrame({"x": [1]}))
    with pytest.raises(RuntimeError), lake.publish("raw", "p", "d", DAY, {}) as folder:
        (folder / "part-0.parquet").write_bytes(b"half a file")
        raise RuntimeError("crash mid-write")
    assert lake.read_frame("raw", "p", "d", DAY)["x"].tolist() == [1]
    assert not any((tmp_path / "_staging").iterdir())


def test_partition_without_manifest_is_invisible(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    folder = lake.partition_dir("raw", "p", "d", DAY)
    folder.mkdir(parents=True)
    pd.DataFrame({"x": [1]}).to_parquet(folder / "part-0.parquet")
    assert lake.partitions("raw", "p", "d") == []
    with pytest.raises(MissingPartitionError, match="no raw partition of p/d for 2013-01-05"):
        lake.read_frame("raw", "p", "d", DAY)


def test_corrupt_parquet_is_named(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    path = lake.write_frame("raw", "p", "d", DAY, pd.DataFrame({"x": [1]}))
    (path / "part-0.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(
        SourceDataError, match=r"corrupt Parquet file in the lake: .*part-0.parquet"
    ):
        lake.read_frame("raw", "p", "d", DAY)


def test_remove(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    lake.write_frame("validated", "p", "d", DAY, pd.DataFrame({"x": [1]}))
    assert lake.remove("validated", "p", "d", DAY)
    assert not lake.exists("validated", "p", "d", DAY)
    assert not lake.remove("validated", "p", "d", DAY)
