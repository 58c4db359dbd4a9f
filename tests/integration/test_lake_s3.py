"""A lake in S3 (moto's server over HTTP): partitions appear whole, replace, and travel.

Two ``Lake`` objects on one bucket with different local roots stand for two machines:
what one publishes, the other reads, downloading it into its own staging copy.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import boto3
import pandas as pd
import pytest

from runway_mlops.errors import MissingPartitionError, SourceUnavailableError
from runway_mlops.lake import MANIFEST, Lake, open_lake
from runway_mlops.storage import S3Store

DAY = dt.date(2013, 1, 5)


@pytest.fixture
def bucket_uri(s3_bucket: str) -> str:
    return f"s3://{s3_bucket}/lake"


def _lake(root: Path, uri: str, endpoint: str) -> Lake:
    return Lake(root, S3Store(uri, endpoint))


def _keys(endpoint: str, bucket: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=endpoint)
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_publish_on_one_machine_read_on_another(tmp_path, s3_endpoint, s3_bucket, bucket_uri):
    writer = _lake(tmp_path / "a", bucket_uri, s3_endpoint)
    reader = _lake(tmp_path / "b", bucket_uri, s3_endpoint)
    writer.write_frame("raw", "p", "d", DAY, pd.DataFrame({"x": [1, 2, 3]}))

    assert reader.exists("raw", "p", "d", DAY)
    assert reader.partitions("raw", "p", "d") == [DAY]
    assert reader.manifest("raw", "p", "d", DAY)["rows"] == 3
    assert not reader.partition_dir("raw", "p", "d", DAY).exists()  # nothing local yet
    assert reader.read_frame("raw", "p", "d", DAY)["x"].tolist() == [1, 2, 3]
    assert (reader.partition_dir("raw", "p", "d", DAY) / "part-0.parquet").is_file()
    assert reader.location("raw", "p", "d", DAY) == f"{bucket_uri}/raw/p/d/ds={DAY}"

    # A republication elsewhere makes the reader's copy stale: it fetches the new one.
    writer.write_frame("raw", "p", "d", DAY, pd.DataFrame({"x": [4, 5]}))
    assert reader.read_frame("raw", "p", "d", DAY)["x"].tolist() == [4, 5]
    # ... and the bucket keeps only the files of the current publication.
    publish_id = writer.manifest("raw", "p", "d", DAY)["publish_id"]
    assert set(_keys(s3_endpoint, s3_bucket)) == {
        f"lake/raw/p/d/ds={DAY}/{MANIFEST}",
        f"lake/raw/p/d/ds={DAY}/{publish_id}/part-0.parquet",
    }


def test_failed_publish_leaves_the_bucket_as_it_was(tmp_path, s3_endpoint, s3_bucket, bucket_uri):
    lake = _lake(tmp_path / "a", bucket_uri, s3_endpoint)
    lake.write_frame("raw", "p", "d", DAY, pd.DataFrame({"x": [1]}))
    before = _keys(s3_endpoint, s3_bucket)
    with pytest.raises(RuntimeError), lake.publish("raw", "p", "d", DAY, {}) as folder:
        (folder / "part-0.parquet").write_bytes(b"half a file")
        raise RuntimeError("crash mid-write")
    assert _keys(s3_endpoint, s3_bucket) == before
    fresh = _lake(tmp_path / "b", bucket_uri, s3_endpoint)
    assert fresh.read_frame("raw", "p", "d", DAY)["x"].tolist() == [1]


def test_remove_withdraws_from_the_bucket(tmp_path, s3_endpoint, s3_bucket, bucket_uri):
    lake = _lake(tmp_path / "a", bucket_uri, s3_endpoint)
    lake.write_frame("validated", "p", "d", DAY, pd.DataFrame({"x": [1]}))
    assert lake.remove("validated", "p", "d", DAY)
    other = _lake(tmp_path / "b", bucket_uri, s3_endpoint)
    assert not other.exists("validated", "p", "d", DAY)
    assert other.partitions("validated", "p", "d") == []
    assert _keys(s3_endpoint, s3_bucket) == []
    with pytest.raises(MissingPartitionError, match=r"s3://.*/validated/p/d/ds=2013-01-05"):
        other.read_frame("validated", "p", "d", DAY)
    assert not lake.remove("validated", "p", "d", DAY)


def test_a_local_copy_never_outlives_the_bucket(tmp_path, s3_endpoint, bucket_uri):
    """A partition withdrawn by another machine is gone here too, local copy or not."""
    here = _lake(tmp_path / "a", bucket_uri, s3_endpoint)
    there = _lake(tmp_path / "b", bucket_uri, s3_endpoint)
    here.write_frame("features", "p", "d", DAY, pd.DataFrame({"x": [1]}))
    there.read_frame("features", "p", "d", DAY)
    here.remove("features", "p", "d", DAY)
    assert not there.exists("features", "p", "d", DAY)
    with pytest.raises(MissingPartitionError):
        there.fetch("features", "p", "d", DAY)


def test_open_lake_follows_the_profile(tmp_path, s3_endpoint, bucket_uri):
    from runway_mlops.config import load_settings
    from tests.conftest import CONFIG_DIR

    settings = load_settings(
        CONFIG_DIR,
        env={
            "RUNWAY_HOME": str(tmp_path),
            "RUNWAY_LAKE_URI": bucket_uri,
            "RUNWAY_S3_ENDPOINT_URL": s3_endpoint,
        },
    )
    lake = open_lake(settings)
    assert lake.remote is not None and lake.root == settings.lake_dir
    lake.write_frame("raw", "p", "d", DAY, pd.DataFrame({"x": [7]}))
    assert _lake(tmp_path / "elsewhere", bucket_uri, s3_endpoint).read_frame("raw", "p", "d", DAY)[
        "x"
    ].tolist() == [7]
    local = load_settings(CONFIG_DIR, env={"RUNWAY_HOME": str(tmp_path)})
    assert open_lake(local).remote is None


def test_unreachable_bucket_is_a_clear_error(tmp_path) -> None:
    lake = _lake(tmp_path, "s3://nowhere/lake", "http://127.0.0.1:9")
    with pytest.raises(SourceUnavailableError, match="cannot reach http://127.0.0.1:9"):
        lake.exists("raw", "p", "d", DAY)


def test_republishing_never_deletes_another_writers_upload(
    tmp_path, s3_endpoint, s3_bucket, bucket_uri
):
    """Two machines publish the same day: the one that loses never breaks the winner."""
    here = _lake(tmp_path / "a", bucket_uri, s3_endpoint)
    here.write_frame("raw", "p", "d", DAY, pd.DataFrame({"x": [1]}))
    # Another writer has uploaded its files and not yet written its manifest.
    in_flight = f"lake/raw/p/d/ds={DAY}/0123456789abcdef/part-0.parquet"
    boto3.client("s3", endpoint_url=s3_endpoint).put_object(
        Bucket=s3_bucket, Key=in_flight, Body=b"its data"
    )
    here.write_frame("raw", "p", "d", DAY, pd.DataFrame({"x": [2]}))
    keys = _keys(s3_endpoint, s3_bucket)
    assert in_flight in keys
    current = here.manifest("raw", "p", "d", DAY)["publish_id"]
    assert sorted(k for k in keys if "/ds=" in k and k != in_flight) == sorted(
        [f"lake/raw/p/d/ds={DAY}/{MANIFEST}", f"lake/raw/p/d/ds={DAY}/{current}/part-0.parquet"]
    )


def test_a_failed_upload_removes_its_own_files(
    tmp_path, s3_endpoint, s3_bucket, bucket_uri, monkeypatch
):
    lake = _lake(tmp_path / "a", bucket_uri, s3_endpoint)
    lake.write_frame("raw", "p", "d", DAY, pd.DataFrame({"x": [1]}))
    before = _keys(s3_endpoint, s3_bucket)
    real_write = S3Store.write_file
    calls = []

    def fail_second(self, key, path):
        calls.append(key)
        if len(calls) == 2:
            raise SourceUnavailableError("S3 went away mid-upload")
        real_write(self, key, path)

    monkeypatch.setattr(S3Store, "write_file", fail_second)
    with pytest.raises(SourceUnavailableError), lake.publish("raw", "p", "d", DAY, {}) as folder:
        pd.DataFrame({"x": [2]}).to_parquet(folder / "part-0.parquet")
        pd.DataFrame({"x": [3]}).to_parquet(folder / "part-1.parquet")
    assert len(calls) == 2
    assert _keys(s3_endpoint, s3_bucket) == before  # the first file was removed again
    assert lake.read_frame("raw", "p", "d", DAY)["x"].tolist() == [1]
