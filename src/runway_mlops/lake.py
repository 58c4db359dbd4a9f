"""The partitioned lake: one folder per (zone, pipeline, dataset, day), published atomically.

Layout::

    <lake>/<zone>/<pipeline>/<dataset>/ds=YYYY-MM-DD/part-*.parquet
                                                    /_manifest.json

Zones: ``raw`` (what the source delivered), ``validated`` (rows that passed),
``quarantine`` (rows or whole days that failed, with their reasons), ``features``,
``labels`` (outcomes, kept apart from the features so no feature can read them) and
``predictions`` (``champion`` and ``shadow`` scores of each day, with model versions).

A partition is written into a private staging folder and then moved into place with
``rename`` while holding a per-partition lock, so a reader sees the old partition, no
partition, or the new one — never half of one. The manifest is written inside the
staging folder, so a partition without a manifest is never visible. Rewriting a day
replaces it; nothing is appended twice.

**A lake in S3** (``lake_uri: s3://bucket/prefix``): the bucket is the lake and the local
root is its staging copy, where tasks and Spark work on plain files. A partition is
published by uploading its files under a fresh ``<publish_id>/`` folder of the
partition, then its manifest (listing those files) with one PUT, which S3 makes atomic:
a reader that reads the manifest first sees the old partition or the new one, never a
mix. The files of the publication it replaced are deleted afterwards (only those: another
writer's upload in flight is never touched). Reads (:meth:`Lake.fetch`)
download a partition into the staging copy when the copy's ``publish_id`` is not the
bucket's. Existence and listings always ask the bucket.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runway_mlops.errors import MissingPartitionError, SourceDataError

if TYPE_CHECKING:
    import pandas as pd

    from runway_mlops.config import PlatformSettings
    from runway_mlops.storage import S3Store

ZONES = ("raw", "validated", "quarantine", "features", "labels", "predictions")
MANIFEST = "_manifest.json"


def open_lake(settings: PlatformSettings) -> Lake:
    """The profile's lake: local, or in S3 with ``lake_dir`` as its staging copy."""
    if settings.lake_uri:
        from runway_mlops.storage import S3Store

        return Lake(settings.lake_dir, S3Store(settings.lake_uri, settings.s3_endpoint_url))
    return Lake(settings.lake_dir)


def frame_writer(frame: pd.DataFrame) -> Callable[[Path], int]:
    """What fills a partition folder with ``frame`` (one Parquet file); returns its rows."""

    def write(folder: Path) -> int:
        frame.to_parquet(folder / "part-0.parquet", index=False)
        return len(frame)

    return write


class Lake:
    """Partition paths and atomic reads/writes under one local root (and maybe a bucket)."""

    def __init__(self, root: Path, remote: S3Store | None = None) -> None:
        self.root = Path(root)
        self.remote = remote

    # ------------------------------------------------------------------ paths
    def dataset_dir(self, zone: str, pipeline: str, dataset: str) -> Path:
        if zone not in ZONES:
            raise ValueError(f"unknown lake zone {zone!r}; expected one of {ZONES}")
        return self.root / zone / pipeline / dataset

    def partition_dir(self, zone: str, pipeline: str, dataset: str, ds: dt.date) -> Path:
        return self.dataset_dir(zone, pipeline, dataset) / f"ds={ds.isoformat()}"

    def _key(self, zone: str, pipeline: str, dataset: str, ds: dt.date | None = None) -> str:
        self.dataset_dir(zone, pipeline, dataset)  # validates the zone
        key = f"{zone}/{pipeline}/{dataset}"
        return key if ds is None else f"{key}/ds={ds.isoformat()}"

    def location(self, zone: str, pipeline: str, dataset: str, ds: dt.date) -> str:
        """Where the partition lives: its S3 URI, or its folder on a local lake."""
        if self.remote is not None:
            return self.remote.describe(self._key(zone, pipeline, dataset, ds))
        return str(self.partition_dir(zone, pipeline, dataset, ds))

    def work_dir(self, kind: str) -> Path:
        """A private folder of the lake (``staging``, ``trash``, ``locks``) on its file system."""
        path = self.root / f"_{kind}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # ------------------------------------------------------------------ state
    def exists(self, zone: str, pipeline: str, dataset: str, ds: dt.date) -> bool:
        if self.remote is not None:
            return self._remote_manifest(zone, pipeline, dataset, ds) is not None
        return (self.partition_dir(zone, pipeline, dataset, ds) / MANIFEST).is_file()

    def manifest(self, zone: str, pipeline: str, dataset: str, ds: dt.date) -> dict[str, Any]:
        if self.remote is not None:
            body = self._remote_manifest(zone, pipeline, dataset, ds)
            if body is None:
                raise MissingPartitionError(
                    f"no {zone} partition of {pipeline}/{dataset} for {ds} (looked in "
                    f"{self.location(zone, pipeline, dataset, ds)})"
                )
            return body
        path = self.partition_dir(zone, pipeline, dataset, ds) / MANIFEST
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise MissingPartitionError(
                f"no {zone} partition of {pipeline}/{dataset} for {ds} (looked in {path.parent})"
            ) from None

    def partitions(self, zone: str, pipeline: str, dataset: str) -> list[dt.date]:
        """Published days of a dataset, oldest first."""
        if self.remote is not None:
            return self._remote_partitions(zone, pipeline, dataset)
        base = self.dataset_dir(zone, pipeline, dataset)
        if not base.is_dir():
            return []
        days = []
        for child in base.iterdir():
            if child.name.startswith("ds=") and (child / MANIFEST).is_file():
                with contextlib.suppress(ValueError):
                    days.append(dt.date.fromisoformat(child.name[3:]))
        return sorted(days)

    # ------------------------------------------------------------------ writes
    @contextlib.contextmanager
    def publish(
        self, zone: str, pipeline: str, dataset: str, ds: dt.date, manifest: dict[str, Any]
    ) -> Iterator[Path]:
        """Yield a private folder to fill; on success it replaces the partition atomically.

        If the body raises, the staging folder is deleted and the old partition stays.
        """
        target = self.partition_dir(zone, pipeline, dataset, ds)
        staging = self.work_dir("staging") / f"{zone}-{pipeline}-{dataset}-{ds}-{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        try:
            yield staging
            body = {"zone": zone, "pipeline": pipeline, "dataset": dataset, "ds": ds.isoformat()}
            body.update(manifest)
            if self.remote is None:
                _write_json(staging / MANIFEST, body)
                self._swap_in(staging, target)
            else:
                with self._lock(target):
                    self._push(staging, zone, pipeline, dataset, ds, body)
                    self._swap_in(staging, target, locked=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def write_frame(
        self,
        zone: str,
        pipeline: str,
        dataset: str,
        ds: dt.date,
        frame: pd.DataFrame,
        manifest: dict[str, Any] | None = None,
    ) -> Path:
        """Publish one DataFrame as the partition (a single Parquet file)."""
        info = {"rows": len(frame), "columns": [str(c) for c in frame.columns]}
        info.update(manifest or {})
        with self.publish(zone, pipeline, dataset, ds, info) as folder:
            frame_writer(frame)(folder)
        return self.partition_dir(zone, pipeline, dataset, ds)

    def remove(self, zone: str, pipeline: str, dataset: str, ds: dt.date) -> bool:
        """Withdraw a partition (atomically); True if there was one."""
        target = self.partition_dir(zone, pipeline, dataset, ds)
        with self._lock(target):
            had = False
            if self.remote is not None:
                had = self._remote_remove(zone, pipeline, dataset, ds)
            if not target.exists():
                return had
            trash = self.work_dir("trash") / f"{target.name}-{uuid.uuid4().hex}"
            os.rename(target, trash)
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def _swap_in(self, staging: Path, target: Path, *, locked: bool = False) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        trash = None
        with contextlib.nullcontext() if locked else self._lock(target):
            if target.exists():
                trash = self.work_dir("trash") / f"{target.name}-{uuid.uuid4().hex}"
                os.rename(target, trash)
            os.rename(staging, target)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)

    # ------------------------------------------------------------------ the bucket
    def _remote_manifest(
        self, zone: str, pipeline: str, dataset: str, ds: dt.date
    ) -> dict[str, Any] | None:
        assert self.remote is not None
        data = self.remote.read_optional(f"{self._key(zone, pipeline, dataset, ds)}/{MANIFEST}")
        return None if data is None else json.loads(data)

    def _remote_partitions(self, zone: str, pipeline: str, dataset: str) -> list[dt.date]:
        assert self.remote is not None
        base = self._key(zone, pipeline, dataset)
        days = []
        for obj in self.remote.list(base):
            rest = obj.key.removeprefix(f"{base}/").split("/")
            if len(rest) == 2 and rest[1] == MANIFEST and rest[0].startswith("ds="):
                with contextlib.suppress(ValueError):
                    days.append(dt.date.fromisoformat(rest[0][3:]))
        return sorted(days)

    def _push(
        self,
        staging: Path,
        zone: str,
        pipeline: str,
        dataset: str,
        ds: dt.date,
        body: dict[str, Any],
    ) -> None:
        """Upload a staged partition: its files, then the manifest that makes them visible."""
        assert self.remote is not None
        key = self._key(zone, pipeline, dataset, ds)
        publish_id = uuid.uuid4().hex
        files = sorted(
            str(p.relative_to(staging)).replace(os.sep, "/")
            for p in staging.rglob("*")
            if p.is_file() and p.name != MANIFEST
        )
        try:
            for name in files:
                self.remote.write_file(f"{key}/{publish_id}/{name}", staging / name)
        except BaseException:
            with contextlib.suppress(Exception):  # best effort: never visible anyway
                self._remote_clean(key, only=publish_id)
            raise
        previous = self._remote_manifest(zone, pipeline, dataset, ds)
        body = {**body, "publish_id": publish_id, "files": files}
        _write_json(staging / MANIFEST, body)
        self.remote.write(f"{key}/{MANIFEST}", (staging / MANIFEST).read_bytes())
        # Delete only the publication this one replaced: files another writer may be
        # uploading at this moment (under its own publish id) are never touched.
        if previous and previous.get("publish_id"):
            self._remote_clean(key, only=str(previous["publish_id"]))

    def _remote_clean(self, key: str, only: str | None = None) -> None:
        """Delete the data files of a partition: all of them, or one publication's."""
        assert self.remote is not None
        prefix = f"{key}/{only}/" if only else f"{key}/"
        stale = [
            o.key
            for o in self.remote.list(key)
            if o.key != f"{key}/{MANIFEST}" and o.key.startswith(prefix)
        ]
        self.remote.delete(stale)

    def _remote_remove(self, zone: str, pipeline: str, dataset: str, ds: dt.date) -> bool:
        assert self.remote is not None
        key = self._key(zone, pipeline, dataset, ds)
        had = self._remote_manifest(zone, pipeline, dataset, ds) is not None
        self.remote.delete([f"{key}/{MANIFEST}"])  # invisible first, then the files
        self._remote_clean(key)
        return had

    def fetch(self, zone: str, pipeline: str, dataset: str, ds: dt.date) -> Path:
        """The partition's local folder, downloaded from the bucket first if it is stale.

        On a local lake this is :meth:`partition_dir`. Raises ``MissingPartitionError``
        when the partition is not published.
        """
        target = self.partition_dir(zone, pipeline, dataset, ds)
        if self.remote is None:
            return target
        for attempt in range(3):
            body = self.manifest(zone, pipeline, dataset, ds)
            local = target / MANIFEST
            if local.is_file() and json.loads(local.read_text()).get("publish_id") == body.get(
                "publish_id"
            ):
                return target
            try:
                self._download(body, zone, pipeline, dataset, ds)
                return target
            except MissingPartitionError:
                if attempt == 2:
                    raise
        return target

    def _download(
        self, body: dict[str, Any], zone: str, pipeline: str, dataset: str, ds: dt.date
    ) -> None:
        assert self.remote is not None
        key = self._key(zone, pipeline, dataset, ds)
        target = self.partition_dir(zone, pipeline, dataset, ds)
        staging = self.work_dir("staging") / f"fetch-{zone}-{dataset}-{ds}-{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        try:
            for name in body.get("files", []):
                path = staging / name
                path.parent.mkdir(parents=True, exist_ok=True)
                if not self.remote.download(f"{key}/{body['publish_id']}/{name}", path):
                    # Replaced while we read it: the caller reads the new manifest again.
                    raise MissingPartitionError(
                        f"{self.location(zone, pipeline, dataset, ds)} changed while reading"
                    )
            _write_json(staging / MANIFEST, body)
            self._swap_in(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @contextlib.contextmanager
    def _lock(self, target: Path) -> Iterator[None]:
        locks = self.work_dir("locks")
        name = str(target.relative_to(self.root)).replace(os.sep, "__")
        with open(locks / f"{name}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ reads
    def read_frame(self, zone: str, pipeline: str, dataset: str, ds: dt.date) -> pd.DataFrame:
        """Read a published partition; a corrupt file is named in the error."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder = self.fetch(zone, pipeline, dataset, ds)
        if not (folder / MANIFEST).is_file():
            raise MissingPartitionError(
                f"no {zone} partition of {pipeline}/{dataset} for {ds} (looked in {folder})"
            )
        files = sorted(folder.glob("*.parquet"))
        tables = []
        for file in files:
            try:
                tables.append(pq.read_table(file))
            except (pa.ArrowInvalid, OSError) as exc:
                raise SourceDataError(
                    f"corrupt Parquet file in the lake: {file} ({exc}); rerun the stage that "
                    f"wrote {zone}/{dataset} for {ds} to rebuild it"
                ) from None
        if not tables:
            import pandas as pd

            return pd.DataFrame()
        return pa.concat_tables(tables).to_pandas()


def _write_json(path: Path, body: dict[str, Any]) -> None:
    path.write_text(json.dumps(body, indent=2, sort_keys=True, default=str))
