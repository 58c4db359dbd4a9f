"""Ingest: copy one interval of every dataset from the source into the lake's raw zone.

Each dataset's delivery becomes one raw Parquet partition, published atomically and
replacing any earlier copy of that day. Columns are cast to their declared types where
that loses nothing (see :mod:`runway_mlops.schema`); judging the data is validation's job.

A delivery that cannot be parsed or is refused (a truncated or corrupt file, a malformed
header, a file of another format, a symbolic link: the contract in
:mod:`runway_mlops.sources`) is copied, byte for byte, into the quarantine zone with its
reason before the stage fails, so nothing is lost and the other datasets of the day are
still ingested. Only regular files inside the landing root are ever copied. A delivery
that parses but cannot be stored (values Parquet cannot hold) is quarantined the same way.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runway_mlops import catalog, freshness
from runway_mlops.config import PipelineConfig, PlatformSettings
from runway_mlops.errors import (
    CorruptDeliveryError,
    RunwayError,
    SourceDataError,
    SourceUnavailableError,
)
from runway_mlops.lake import Lake, frame_writer, open_lake
from runway_mlops.schema import cast_to_schema
from runway_mlops.sources import Delivery, open_source

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class IngestResult:
    ds: dt.date
    rows: dict[str, int] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)


def delivery_folder(dataset: str) -> str:
    """The quarantine folder name of a corrupt delivery of ``dataset``.

    Kept apart from the folder validation quarantines rows or days into, so a later
    good delivery and its validation never overwrite the corrupt bytes.
    """
    return f"{dataset}.delivery"


def _quarantine_delivery(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    dataset: str,
    ds: dt.date,
    error: CorruptDeliveryError,
    run_id: str | None,
) -> None:
    lake = open_lake(settings)
    reason = str(error)
    manifest: dict[str, Any] = {"scope": "delivery", "reason": reason, "run_id": run_id}
    folder_name = delivery_folder(dataset)
    with lake.publish("quarantine", pipeline.name, folder_name, ds, manifest) as folder:
        # Keys of files a store read: relative, no '..' (storage.unsafe_key), no links.
        for key, data in error.files.items():
            target = folder / "source-files" / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        (folder / "reason.json").write_text(json.dumps({"reason": reason}, indent=2))
    catalog.record_quarantine(
        settings.database_url,
        catalog.QuarantineEntry(
            pipeline=pipeline.name,
            dataset=dataset,
            ds=ds,
            scope="delivery",
            rows=0,
            reasons={reason: 0},
            path=lake.location("quarantine", pipeline.name, folder_name, ds),
            validation_id=None,
            run_id=run_id,
        ),
    )


def _store_raw(
    settings: PlatformSettings,
    lake: Lake,
    pipeline: PipelineConfig,
    dataset: str,
    ds: dt.date,
    delivery: Delivery,
    run_id: str | None,
    fingerprint: str,
) -> pd.DataFrame:
    """Cast, publish and record one delivery as its raw partition; the frame as written."""
    import pyarrow as pa

    try:
        frame = cast_to_schema(delivery.frame, pipeline.datasets[dataset].columns)
        manifest = {
            "columns": [str(c) for c in frame.columns],
            "source": delivery.provenance,
            "fingerprint": fingerprint,
            "run_id": run_id,
        }

        catalog.publish_partition(
            settings.database_url,
            lake,
            "raw",
            pipeline.name,
            dataset,
            ds,
            manifest,
            frame_writer(frame),
            details={"source": delivery.provenance, "fingerprint": fingerprint},
            run_id=run_id,
        )
    except (pa.ArrowException, ValueError, TypeError) as exc:
        # Values pandas holds but Parquet cannot (e.g. a database column mixing numbers
        # and text): the delivery is refused like an unreadable file, never half-written.
        where = delivery.provenance.get("folder") or delivery.provenance.get("table")
        raise CorruptDeliveryError(
            f"the delivery of {dataset!r} for {ds} ({where}) cannot be stored in the raw "
            f"zone: {exc}",
            delivery.files,
        ) from None
    return frame


def ingest(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    ds: dt.date,
    *,
    run_id: str | None = None,
    datasets: list[str] | None = None,
) -> IngestResult:
    """Copy day ``ds`` of every dataset (or of ``datasets``) into ``raw``; raise if any failed.

    Holds the day (:func:`catalog.day_lock`): validation and features of the day wait.
    """
    with catalog.day_lock(settings.database_url, pipeline.name, [ds], what=f"ingest {ds}"):
        return _ingest_locked(settings, pipeline, ds, run_id=run_id, datasets=datasets)


def _ingest_locked(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    ds: dt.date,
    *,
    run_id: str | None,
    datasets: list[str] | None,
) -> IngestResult:
    source = open_source(settings, pipeline)
    lake = open_lake(settings)
    result = IngestResult(ds=ds)
    problems: list[RunwayError] = []
    for dataset in pipeline.datasets:
        if datasets is not None and dataset not in datasets:
            continue
        try:
            delivery = source.read(dataset, ds)
        except CorruptDeliveryError as exc:
            _quarantine_delivery(settings, pipeline, dataset, ds, exc, run_id)
            problems.append(exc)
            continue
        except (SourceUnavailableError, SourceDataError) as exc:
            problems.append(exc)
            continue
        # What was delivered, by content: validation and everything after it record it,
        # so a changed re-delivery shows which derived partitions are stale.
        fingerprint = (
            freshness.fingerprint_files(delivery.files)
            if delivery.files
            else freshness.fingerprint_frame(delivery.frame)
        )
        try:
            frame = _store_raw(settings, lake, pipeline, dataset, ds, delivery, run_id, fingerprint)
        except CorruptDeliveryError as exc:
            _quarantine_delivery(settings, pipeline, dataset, ds, exc, run_id)
            problems.append(exc)
            continue
        path = lake.location("raw", pipeline.name, dataset, ds)
        result.rows[dataset] = len(frame)
        result.paths[dataset] = str(path)
    if problems:
        corrupt = [p for p in problems if isinstance(p, SourceDataError)]
        kind = SourceDataError if corrupt else SourceUnavailableError
        lines = "\n  ".join(str(p) for p in problems)
        note = " (corrupt files kept in quarantine; `runway quarantine list`)" if corrupt else ""
        raise kind(
            f"ingest of {pipeline.name} for {ds} failed for {len(problems)} dataset(s){note}:\n  {lines}"
        )
    return result
