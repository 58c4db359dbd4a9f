"""Micro-batch ingestion: arrivals, watermarks, late data and a commit log.

When a pipeline's ``cadence`` fires more than once a day (``PipelineConfig.micro_batch``)
the feature pipeline runs on *arrivals* instead of whole days. Its source contract for
events datasets::

    <landing>/<dataset>/arrivals/<UTC day>/<HHMMSSffffff>-<id>.csv

one file per delivery, named by when it landed (UTC), written atomically (a local file
renamed into place, or one S3 PUT). Reference datasets keep their ``ds=`` snapshots.

A micro-batch run takes what arrived since the last watermark: the arrival window from
the end of the previous committed batch to the end of its data interval (the first batch
starts at its data interval's start). It takes exactly the files whose arrival time falls
inside, so every file belongs to one batch, an interval the scheduler skipped is covered
by the next batch, and a rerun reads the same files (its window comes from the commits
before it, which do not change). Rows are routed to the raw partition of their *event* day
(the pipeline's time zone). Per dataset, the **watermark** is the latest event time
admitted so far:

* a record comes in **versions** (a flight's schedule, then its departure, then its
  arrival): a row whose key an earlier batch, or an earlier row of the batch, admitted
  to that day is an **update** and replaces that version; an update equal to the
  version it would replace is a **duplicate**: dropped and counted;
* a new key more than ``stream.allowed_lateness_minutes`` behind the watermark before
  the batch is **late**, and so is an update more than the settling time behind it
  (:func:`settling`: the lateness, or the label's ``available_after_minutes`` if
  longer): it goes to quarantine (``<dataset>.late``) with its reason;
* a row without an event time cannot be routed: quarantined (``<dataset>.untimed``).

Each batch is a file ``batch-<id>.parquet`` of its day's raw partition (its versions in
arrival order: none is dropped but an exact repeat), which is republished atomically with the batch listed in its
manifest; rerunning the batch replaces its own file and nothing else. Readers take each
key's version from the latest batch that holds it (:func:`latest_versions`, used by
validation), so the validated partition has one row per record. The batch is then
**committed**: one JSON object per batch in the lake's commit log
(``_stream/<pipeline>/commits/<UTC day>/<id>.json``) holding the watermarks after it, the
days it touched and its counts. The next batch
starts from the latest commit before it, so the watermark advances only with the data it
covers: a batch that died before its commit is redone by its rerun, which rewrites the
same files (everything is derived from the arrival window and earlier commits).

A day is **closed** when the entity dataset's watermark passes the end of the day plus
the settling time (its records are final then); the batch that closes it reports it,
and validation then runs the day's aggregate checks (row counts, null fractions, drift)
on the complete day.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runway_mlops import freshness
from runway_mlops.config import DatasetConfig, PipelineConfig, PlatformSettings
from runway_mlops.errors import ConfigError, SourceDataError
from runway_mlops.storage import LocalStore, ObjectStore, StoredObject, open_store

if TYPE_CHECKING:
    import pandas as pd

    from runway_mlops.lake import Lake

ARRIVALS = "arrivals"
_ARRIVAL_NAME = re.compile(r"^(\d{6})(\d{6})-[A-Za-z0-9_.-]+$")
#: How far back the commit log is searched for the batch before a given one.
COMMIT_LOOKBACK_DAYS = 31


def _utc(at: dt.datetime) -> dt.datetime:
    if at.tzinfo is None:
        raise ValueError(f"{at!r} has no time zone")
    return at.astimezone(dt.UTC)


def batch_id(end: dt.datetime) -> str:
    """A micro-batch's id: the UTC end of its arrival window (``20261130T001500000000Z``)."""
    return _utc(end).strftime("%Y%m%dT%H%M%S%fZ")  # fixed width: text order is time order


def arrival_key(dataset: str, at: dt.datetime, token: str, fmt: str = "csv") -> str:
    """The landing key of a delivery of ``dataset`` that arrived at ``at``."""
    at = _utc(at)
    return f"{dataset}/{ARRIVALS}/{at:%Y-%m-%d}/{at:%H%M%S%f}-{token}.{fmt}"


def arrival_time(key: str) -> dt.datetime | None:
    """When a landing file arrived, from its key; None if the key is not an arrival."""
    parts = key.split("/")
    if len(parts) < 4 or parts[-3] != ARRIVALS:
        return None
    stem = parts[-1].rsplit(".", 1)[0]
    match = _ARRIVAL_NAME.match(stem)
    if not match:
        return None
    try:
        day = dt.date.fromisoformat(parts[-2])
        clock = dt.datetime.strptime(match.group(1) + match.group(2), "%H%M%S%f").time()
    except ValueError:
        return None
    return dt.datetime.combine(day, clock, tzinfo=dt.UTC)


def list_arrivals(
    store: ObjectStore, dataset: str, start: dt.datetime, end: dt.datetime, fmt: str
) -> list[tuple[dt.datetime, StoredObject]]:
    """The files of ``dataset`` that arrived in ``[start, end)``, in arrival order."""
    start, end = _utc(start), _utc(end)
    found = []
    day = start.date()
    while day <= (end - dt.timedelta(microseconds=1)).date():
        for obj in store.list(f"{dataset}/{ARRIVALS}/{day.isoformat()}"):
            at = arrival_time(obj.key)
            if at is not None and start <= at < end and obj.key.endswith(f".{fmt}"):
                found.append((at, obj))
        day += dt.timedelta(days=1)
    return sorted(found, key=lambda item: (item[0], item[1].key))


# ----------------------------------------------------------------------- commit log


class CommitLog:
    """One JSON object per committed micro-batch, next to the lake (or in its bucket)."""

    def __init__(self, store: ObjectStore, pipeline: str) -> None:
        self.store = store
        self.pipeline = pipeline

    @classmethod
    def of(cls, settings: PlatformSettings, pipeline: str) -> CommitLog:
        if settings.lake_uri:
            store = open_store(settings.lake_uri.rstrip("/") + "/_stream", settings.s3_endpoint_url)
        else:
            store = LocalStore(settings.lake_dir / "_stream")
        return cls(store, pipeline)

    def _key(self, end: dt.datetime) -> str:
        end = _utc(end)
        return f"{self.pipeline}/commits/{end:%Y-%m-%d}/{batch_id(end)}.json"

    def get(self, end: dt.datetime) -> dict[str, Any] | None:
        """The commit of the batch whose window ends at ``end``, if it committed."""
        data = self.store.read_optional(self._key(end))
        return None if data is None else json.loads(data)

    def write(self, end: dt.datetime, body: dict[str, Any]) -> None:
        self.store.write(self._key(end), json.dumps(body, indent=2, default=str).encode())

    def before(self, end: dt.datetime) -> dict[str, Any] | None:
        """The latest commit of a batch that ended before ``end`` (within the lookback)."""
        end = _utc(end)
        mine = batch_id(end)
        for back in range(COMMIT_LOOKBACK_DAYS + 1):
            day = end.date() - dt.timedelta(days=back)
            keys = [
                o.key
                for o in self.store.list(f"{self.pipeline}/commits/{day.isoformat()}")
                if o.key.endswith(".json") and o.key.rsplit("/", 1)[-1][:-5] < mine
            ]
            if keys:
                return json.loads(self.store.read(max(keys)))
        return None


# ------------------------------------------------------------------------- batches


@dataclass
class DatasetBatch:
    """What one micro-batch did with one events dataset."""

    files: int = 0
    rows: int = 0
    admitted: int = 0
    updates: int = 0  # rows that replaced an earlier version of their record
    duplicates: int = 0  # rows equal to the version they would replace: dropped
    late: int = 0
    untimed: int = 0
    days: list[str] = field(default_factory=list)
    watermark: str | None = None  # after the batch (ISO, UTC)


@dataclass
class MicroBatchResult:
    batch: str
    start: dt.datetime
    end: dt.datetime
    datasets: dict[str, DatasetBatch]
    #: Event days of the entity dataset that received rows: their features change.
    days: list[dt.date]
    #: Days this batch closed (their aggregate checks can run now).
    closed: list[dt.date]
    #: The stream's clock after the batch: entities departing at or before it are past.
    clock: dt.datetime | None

    def summary(self) -> str:
        parts = [
            f"{name}: {d.files} file(s), {d.rows} rows -> {d.admitted} admitted "
            f"({d.updates} update(s)), {d.duplicates} duplicate(s), {d.late} late, "
            f"{d.untimed} without event time"
            for name, d in self.datasets.items()
        ]
        days = ", ".join(d.isoformat() for d in self.days) or "none"
        closed = ", ".join(d.isoformat() for d in self.closed) or "none"
        return (
            f"micro-batch {self.batch} [{self.start:%Y-%m-%d %H:%M:%S}, "
            f"{self.end:%H:%M:%S}) UTC; " + "; ".join(parts) + f"; days: {days}; closed: {closed}"
        )

    def to_xcom(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "days": [d.isoformat() for d in self.days],
            "closed": [d.isoformat() for d in self.closed],
            "clock": self.clock.isoformat() if self.clock else None,
            "datasets": {name: asdict(d) for name, d in self.datasets.items()},
        }


def _parse(
    store: ObjectStore, obj: StoredObject, fmt: str, pipeline: PipelineConfig, dataset: str
) -> tuple[pd.DataFrame | None, str | None]:
    from runway_mlops.sources import read_file

    config = pipeline.datasets[dataset]
    where = store.describe(obj.key)
    try:
        data = store.read(obj.key)
        frame, _ = read_file(data, where, fmt, config, pipeline.zone)
    except SourceDataError as exc:
        return None, str(exc)
    return frame, None


def _event_times(frame: pd.DataFrame, column: str) -> pd.Series:
    import pandas as pd

    return pd.to_datetime(frame[column], utc=True, errors="coerce")


def _append_batch(
    lake: Lake,
    zone: str,
    pipeline: str,
    dataset: str,
    ds: dt.date,
    batch: str,
    frame: pd.DataFrame,
    info: dict[str, Any],
) -> None:
    """Republish a day's partition with this batch's file added (or replaced)."""
    from runway_mlops.lake import MANIFEST

    batches: dict[str, Any] = {}
    current = None
    if lake.exists(zone, pipeline, dataset, ds):
        batches = dict(lake.manifest(zone, pipeline, dataset, ds).get("batches") or {})
        current = lake.fetch(zone, pipeline, dataset, ds)
    batches[batch] = {"rows": len(frame), "fingerprint": freshness.fingerprint_frame(frame), **info}
    total = sum(int(b["rows"]) for b in batches.values())
    # The day's content so far: one fingerprint over its batches' (see runway_mlops.freshness).
    fingerprint = hashlib.sha256(
        json.dumps(
            sorted((name, str(b.get("fingerprint"))) for name, b in batches.items())
        ).encode()
    ).hexdigest()
    manifest = {
        "rows": total,
        "columns": [str(c) for c in frame.columns],
        "batches": batches,
        "fingerprint": fingerprint,
    }
    with lake.publish(zone, pipeline, dataset, ds, manifest) as folder:
        if current is not None:
            for file in current.glob("batch-*.parquet"):
                if file.name != f"batch-{batch}.parquet":
                    _link_or_copy(file, folder / file.name)
        frame.to_parquet(folder / f"batch-{batch}.parquet", index=False)
        assert not (folder / MANIFEST).exists()


def _link_or_copy(source: Path, target: Path) -> None:
    """Carry an unchanged file into a new publication (a hard link where possible)."""
    import shutil

    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def settling(pipeline: PipelineConfig) -> dt.timedelta:
    """How long after its event a record may still be updated, and a day stays open.

    The allowed lateness, or the label's ``available_after_minutes`` if longer: by the
    pipeline's own contract a record's outcome is known by then.
    """
    minutes = pipeline.stream.allowed_lateness_minutes
    if pipeline.label is not None:
        minutes = max(minutes, pipeline.label.available_after_minutes)
    return dt.timedelta(minutes=minutes)


def latest_versions(frame: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """Each key's last row: a micro-batch partition read in batch order, one row per record."""
    return frame[~frame.duplicated(subset=key, keep="last")].reset_index(drop=True)


def _ingested_whole(lake: Lake, pipeline: str, dataset: str, ds: dt.date) -> bool:
    """Whether a day's raw partition was written by daily ingestion, not by micro-batches."""
    return lake.exists("raw", pipeline, dataset, ds) and "batches" not in lake.manifest(
        "raw", pipeline, dataset, ds
    )


def _key_tuples(frame: pd.DataFrame, key: list[str]) -> list[tuple[str, ...]]:
    return [tuple(str(v) for v in row) for row in frame[key].itertuples(index=False)]


def _local_days(times: pd.Series, pipeline: PipelineConfig, *, fallback: dt.datetime) -> pd.Series:
    default = fallback.astimezone(pipeline.zone).date()
    return times.dt.tz_convert(pipeline.zone).dt.date.where(times.notna(), default)


def _digests(frame: pd.DataFrame, config: DatasetConfig) -> pd.Series:
    """One digest per row over the declared columns, equal for equal values (any dtype)."""
    import pandas as pd

    def text(value: Any) -> str:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return "\0"
        if isinstance(value, pd.Timestamp):
            return value.tz_convert("UTC").isoformat() if value.tzinfo else value.isoformat()
        if isinstance(value, int | float) and not isinstance(value, bool):
            return repr(float(value))
        return str(value)

    columns = [c for c in config.columns if c in frame.columns]
    cells = frame[columns].astype(object).map(text)
    return pd.util.hash_pandas_object(cells, index=False)


def _earlier_versions(
    lake: Lake, pipeline: str, dataset: str, ds: dt.date, batch: str, config: DatasetConfig
) -> dict[tuple[str, ...], int]:
    """The digest of each key's latest version admitted to a day by batches before ``batch``."""
    import pandas as pd
    import pyarrow.parquet as pq

    if not lake.exists("raw", pipeline, dataset, ds):
        return {}
    folder = lake.fetch("raw", pipeline, dataset, ds)
    frames = [
        pq.read_table(file).to_pandas()
        for file in sorted(folder.glob("batch-*.parquet"))
        if file.name[len("batch-") : -len(".parquet")] < batch
    ]
    if not frames:
        return {}
    frame = pd.concat(frames, ignore_index=True)  # batch order: later versions come later
    return dict(zip(_key_tuples(frame, config.key), _digests(frame, config), strict=True))


def _new_versions(
    part: pd.DataFrame, earlier: dict[tuple[str, ...], int], config: DatasetConfig
) -> tuple[pd.DataFrame, int, int]:
    """What a batch admits to a day: every row, in order, except one that repeats the
    version it would replace.

    Returns the rows to admit, how many of them replace an earlier version of their key
    (in an earlier batch or earlier in this one) with other values, and how many rows
    repeat the version they would replace (dropped as duplicates). Every row of ``part``
    is one or the other: admitted or a counted duplicate.
    """
    digests = _digests(part, config).to_numpy()
    keys = _key_tuples(part, config.key)
    known = dict(earlier)
    keep = []
    replaced = duplicates = 0
    for position, (key, digest) in enumerate(zip(keys, digests, strict=True)):
        if key in known:
            if known[key] == digest:
                duplicates += 1
                continue
            replaced += 1
        known[key] = digest
        keep.append(position)
    return part.iloc[keep], replaced, duplicates


def ingest_micro_batch(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    start: dt.datetime,
    end: dt.datetime,
    *,
    run_id: str | None = None,
) -> MicroBatchResult:
    """Ingest what arrived up to ``end`` since the previous batch (module docstring).

    ``start`` (the run's data interval start) is the window's start only for the first
    batch of a stream, or after a pause longer than the commit log's lookback.
    """
    import pandas as pd

    from runway_mlops import catalog
    from runway_mlops.lake import open_lake
    from runway_mlops.schema import cast_to_schema
    from runway_mlops.stages.ingest import ingest

    if pipeline.source.kind != "files":
        raise ConfigError(
            f"pipeline {pipeline.name}: micro-batch ingestion reads landing files "
            f"(source.kind: files), not {pipeline.source.kind!r}; use a daily cadence"
        )
    start, end = _utc(start), _utc(end)
    store = open_store(pipeline.source.uri or settings.landing_uri, settings.s3_endpoint_url)
    lake = open_lake(settings)
    log = CommitLog.of(settings, pipeline.name)
    previous = log.before(end) or {}
    if previous.get("end"):
        start = dt.datetime.fromisoformat(previous["end"])
    if end <= start:
        raise ValueError(f"empty arrival window [{start}, {end})")
    before_marks: dict[str, str | None] = previous.get("watermarks") or {}
    lateness = dt.timedelta(minutes=pipeline.stream.allowed_lateness_minutes)
    settle = settling(pipeline)
    batch = batch_id(end)
    fmt = pipeline.source.format
    results: dict[str, DatasetBatch] = {}
    corrupt: list[str] = []
    for name in pipeline.events_datasets:
        config = pipeline.datasets[name]
        assert config.event_time is not None
        stats = DatasetBatch()
        results[name] = stats
        mark = before_marks.get(name)
        watermark = pd.Timestamp(mark) if mark else None
        stats.watermark = mark
        frames = []
        for _, obj in list_arrivals(store, name, start, end, fmt):
            stats.files += 1
            frame, problem = _parse(store, obj, fmt, pipeline, name)
            if frame is None:
                reason = problem or f"{obj.key} cannot be parsed"
                corrupt.append(reason)
                path = _quarantine_file(
                    lake, pipeline.name, name, start, store, obj, reason, run_id
                )
                catalog.record_quarantine(
                    settings.database_url,
                    catalog.QuarantineEntry(
                        pipeline=pipeline.name,
                        dataset=name,
                        ds=start.date(),
                        scope="delivery",
                        rows=0,
                        reasons={reason: 0},
                        path=path,
                        validation_id=None,
                        run_id=run_id,
                    ),
                )
                continue
            frame["_arrival_file"] = obj.key
            frames.append(frame)
        if not frames:
            continue
        rows = pd.concat(frames, ignore_index=True)
        stats.rows = len(rows)
        rows = cast_to_schema(rows, config.columns)
        times = _event_times(rows, config.event_time)
        untimed = times.isna()
        days = _local_days(times, pipeline, fallback=start)
        keys = pd.Series(_key_tuples(rows, config.key), index=rows.index)
        earlier = {
            ds: _earlier_versions(lake, pipeline.name, name, ds, batch, config)
            for ds in sorted(set(days[~untimed]))
        }
        # A row updates its key when an earlier batch, or an earlier row of this batch,
        # admitted the key to its day; the first row of a key is new.
        update = (
            pd.Series(
                [k in earlier.get(d, {}) for k, d in zip(keys, days, strict=True)], index=rows.index
            )
            | pd.DataFrame({"k": keys, "d": days}).duplicated()
        )
        update &= ~untimed
        late = pd.Series(False, index=rows.index)
        if watermark is not None:
            late = ~untimed & ~update & (times < watermark - lateness)
            late |= ~untimed & update & (times < watermark - settle)
        # A day ingested whole (the daily way) is final: the stream does not write into it.
        whole = {d for d in earlier if _ingested_whole(lake, pipeline.name, name, d)}
        settled = ~untimed & days.isin(whole) & ~late
        routed = {
            f"{name}.untimed": (untimed, f"no {config.event_time}: cannot be routed to a day"),
            f"{name}.late": (
                late,
                f"late: {config.event_time} more than {pipeline.stream.allowed_lateness_minutes} "
                f"minutes behind the watermark {watermark} (an update of a record: more than "
                f"{int(settle.total_seconds() // 60)} minutes)",
            ),
            f"{name}.settled": (
                settled,
                "its day was ingested whole (the daily way): its records are final",
            ),
        }
        for folder, (mask, reason) in routed.items():
            if mask.any():
                bad = rows[mask].copy()
                bad["_reasons"] = reason
                for ds, part in _by_day(bad, times[mask], pipeline, fallback=start):
                    _append_batch(
                        lake, "quarantine", pipeline.name, folder, ds, batch, part,
                        {"reason": reason, "run_id": run_id},
                    )  # fmt: skip
                    catalog.record_quarantine(
                        settings.database_url,
                        catalog.QuarantineEntry(
                            pipeline=pipeline.name,
                            dataset=name,
                            ds=ds,
                            scope=f"batch {batch}",
                            rows=len(part),
                            reasons={reason: len(part)},
                            path=lake.location("quarantine", pipeline.name, folder, ds),
                            validation_id=None,
                            run_id=run_id,
                        ),
                    )
        stats.untimed = int(untimed.sum())
        stats.late = int(late.sum() + settled.sum())
        keep = ~untimed & ~late & ~settled
        rows, times = rows[keep], times[keep]
        for ds, part in _by_day(rows, times, pipeline, fallback=start):
            admitted, replaced, duplicates = _new_versions(part, earlier[ds], config)
            stats.updates += replaced
            stats.duplicates += duplicates
            if admitted.empty:
                continue
            admitted = admitted.drop(columns=["_arrival_file"])
            with catalog.day_lock(settings.database_url, pipeline.name, [ds], what="micro-batch"):
                _append_batch(
                    lake, "raw", pipeline.name, name, ds, batch, admitted,
                    {"start": start.isoformat(), "end": end.isoformat(), "run_id": run_id},
                )  # fmt: skip
                written = lake.manifest("raw", pipeline.name, name, ds)
                catalog.record_partition(
                    settings.database_url,
                    pipeline=pipeline.name,
                    dataset=name,
                    zone="raw",
                    ds=ds,
                    rows=int(written["rows"]),
                    path=lake.location("raw", pipeline.name, name, ds),
                    details={"batch": batch, "fingerprint": written.get("fingerprint")},
                    run_id=run_id,
                )
            stats.admitted += len(admitted)
            stats.days.append(ds.isoformat())
            newest = pd.to_datetime(admitted[config.event_time], utc=True).max()
            if watermark is None or newest > watermark:
                watermark = newest
        stats.watermark = watermark.isoformat() if watermark is not None else None

    entity = pipeline.features.entity
    days = sorted({dt.date.fromisoformat(d) for d in results[entity].days})
    # Reference snapshots of the touched days (whole, as in daily ingestion).
    for ds in days:
        missing = [
            name
            for name in pipeline.reference_datasets
            if not lake.exists("raw", pipeline.name, name, ds)
        ]
        if missing:
            ingest(settings, pipeline, ds, run_id=run_id, datasets=missing)
    clock = _clock(pipeline, results)
    closed = [
        ds
        for ds in _closed_days(pipeline, before_marks.get(entity), results[entity].watermark)
        if lake.exists("raw", pipeline.name, entity, ds)
        and not _ingested_whole(lake, pipeline.name, entity, ds)
    ]  # days the stream wrote
    log.write(
        end,
        {
            "batch": batch,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "run_id": run_id,
            "watermarks": {
                name: stats.watermark or before_marks.get(name) for name, stats in results.items()
            },
            "clock": clock.isoformat() if clock else None,
            "datasets": {name: asdict(stats) for name, stats in results.items()},
            "closed": [d.isoformat() for d in closed],
        },
    )
    result = MicroBatchResult(batch, start, end, results, days, closed, clock)
    if corrupt:
        lines = "\n  ".join(corrupt)
        raise SourceDataError(
            f"micro-batch {batch} of {pipeline.name}: {len(corrupt)} landing file(s) could not "
            f"be parsed (kept in quarantine; the rest of the batch is committed):\n  {lines}"
        )
    return result


def _by_day(
    frame: pd.DataFrame, times: pd.Series, pipeline: PipelineConfig, *, fallback: dt.datetime
) -> list[tuple[dt.date, pd.DataFrame]]:
    """Split rows by the local day of their event time (no time: the batch's day)."""
    days = _local_days(times, pipeline, fallback=fallback)
    return [(day, frame[days == day]) for day in sorted(set(days))]


def _clock(pipeline: PipelineConfig, results: dict[str, DatasetBatch]) -> dt.datetime | None:
    """The stream's clock: the latest time the source has demonstrably reached.

    Entities are announced ``prediction_lead_minutes`` before their event, so the
    entity watermark minus the lead; other events datasets' watermarks as they are.
    """
    lead = dt.timedelta(minutes=pipeline.features.prediction_lead_minutes)
    candidates = []
    for name, stats in results.items():
        if stats.watermark:
            mark = dt.datetime.fromisoformat(stats.watermark)
            candidates.append(mark - lead if name == pipeline.features.entity else mark)
    return max(candidates) if candidates else None


def _closed_days(pipeline: PipelineConfig, before: str | None, after: str | None) -> list[dt.date]:
    """Days whose end plus the settling time the entity watermark passed in this batch.

    A closed day takes no more rows or updates (:func:`settling`): its records are final.
    """
    if after is None:
        return []
    lateness = settling(pipeline)
    upto = (dt.datetime.fromisoformat(after) - lateness).astimezone(pipeline.zone)
    last_closed = upto.date() - dt.timedelta(days=1)  # days ending at or before ``upto``
    if before is None:
        return []  # the first batch: earlier days were never open in this stream
    was = (dt.datetime.fromisoformat(before) - lateness).astimezone(pipeline.zone)
    first = was.date()  # the day that was still open before this batch
    return [first + dt.timedelta(days=i) for i in range((last_closed - first).days + 1)]


def _quarantine_file(
    lake: Lake,
    pipeline: str,
    dataset: str,
    start: dt.datetime,
    store: ObjectStore,
    obj: StoredObject,
    problem: str | None,
    run_id: str | None,
) -> str:
    """Keep a landing file that cannot be parsed, byte for byte, with its reason."""
    import shutil

    from runway_mlops.stages.ingest import delivery_folder

    ds = start.date()
    folder_name = delivery_folder(dataset)
    files: dict[str, Any] = {}
    current = None
    if lake.exists("quarantine", pipeline, folder_name, ds):
        files = dict(lake.manifest("quarantine", pipeline, folder_name, ds).get("files") or {})
        current = lake.fetch("quarantine", pipeline, folder_name, ds)
    files[obj.key] = {"reason": problem, "run_id": run_id}
    manifest = {"scope": "delivery", "reason": problem, "files": files, "run_id": run_id}
    with lake.publish("quarantine", pipeline, folder_name, ds, manifest) as folder:
        if current is not None:
            source = current / "source-files"
            if source.is_dir():
                shutil.copytree(source, folder / "source-files")
        target = folder / "source-files" / obj.key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.read(obj.key))
    return lake.location("quarantine", pipeline, folder_name, ds)
