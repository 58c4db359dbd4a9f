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
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runway_mlops.errors import MissingPartitionError, SourceDataError

if TYPE_CHECKING:
    import pandas as pd

ZONES = ("raw", "validated", "quarantine", "features", "labels", "predictions")
MANIFEST = "_manifest.json"


class Lake:
    """Partition paths and atomic reads/writes under one local root."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ------------------------------------------------------------------ paths
    def dataset_dir(self, zone: str, pipeline: str, dataset: str) -> Path:
        if zone not in ZONES:
            raise ValueError(f"unknown lake zone {zone!r}; expected one of {ZONES}")
        return self.root / zone / pipeline / dataset

    def partition_dir(self, zone: str, pipeline: str, dataset: str, ds: dt.date) -> Path:
        return self.dataset_dir(zone, pipeline, dataset) / f"ds={ds.isoformat()}"

    def work_dir(self, kind: str) -> Path:
        """A private folder of the lake (``staging``, ``trash``, ``locks``) on its file system."""
        path = self.root / f"_{kind}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    # ------------------------------------------------------------------ state
    def exists(self, zone: str, pipeline: str, dataset: str, ds: dt.date) -> bool:
        return (self.partition_dir(zone, pipeline, dataset, ds) / MANIFEST).is_file()

    def manifest(self, zone: str, pipeline: str, dataset: str, ds: dt.date) -> dict[str, Any]:
        path = self.partition_dir(zone, pipeline, dataset, ds) / MANIFEST
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise MissingPartitionError(
                f"no {zone} partition of {pipeline}/{dataset} for {ds} (looked in {path.parent})"
            ) from None

    def partitions(self, zone: str, pipeline: str, dataset: str) -> list[dt.date]:
        """Published days of a dataset, oldest first."""
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
            _write_json(staging / MANIFEST, body)
            self._swap_in(staging, target)
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
            frame.to_parquet(folder / "part-0.parquet", index=False)
        return self.partition_dir(zone, pipeline, dataset, ds)

    def remove(self, zone: str, pipeline: str, dataset: str, ds: dt.date) -> bool:
        """Withdraw a partition (atomically); True if there was one."""
        target = self.partition_dir(zone, pipeline, dataset, ds)
        with self._lock(target):
            if not target.exists():
                return False
            trash = self.work_dir("trash") / f"{target.name}-{uuid.uuid4().hex}"
            os.rename(target, trash)
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def _swap_in(self, staging: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        trash = None
        with self._lock(target):
            if target.exists():
                trash = self.work_dir("trash") / f"{target.name}-{uuid.uuid4().hex}"
                os.rename(target, trash)
            os.rename(staging, target)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)

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

        folder = self.partition_dir(zone, pipeline, dataset, ds)
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
