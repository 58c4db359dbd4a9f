"""Freshness: which derived partitions were made from data that has since changed.

Every zone records what it was made from, by content, in its catalog record:

* ``raw``: the ``fingerprint`` of the delivery (a SHA-256 over the delivered files, or
  over the rows a database returned);
* ``validated``: the ``raw_fingerprint`` it judged, and a ``validation_id`` derived from
  pipeline, dataset, day *and* that fingerprint, so two deliveries of one day have two ids;
* ``features`` (and the ``labels`` built in the same job, which stand or fall with
  them): the ``validation_id`` of every validated
  partition it read (the day itself, the trailing windows' days, the reference snapshots,
  the as-of observations) and a ``digest`` of those ids and the feature version;
* ``predictions``: the ``features_digest`` it scored.

A partition is **stale** when what it was made from is no longer what the lake holds: a
corrected re-delivery of day D makes D's validated partition stale until D is validated
again; D's features, and the features of every later day whose windows read D, are stale
until rebuilt; so are predictions made from stale or since-rebuilt features. Nothing is
marked by hand: :func:`stale_partitions` compares the records, so a mark can never be
lost, and the run that rebuilds a partition clears it by recording the new inputs.

Training refuses stale days and scoring refuses a stale day (both naming them and what
to rerun); ``runway stale list`` shows them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runway_mlops.errors import StaleDataError

if TYPE_CHECKING:
    import pandas as pd


# ------------------------------------------------------------------------ fingerprints


def fingerprint_files(files: Mapping[str, bytes]) -> str:
    """SHA-256 of a delivery: each file's name and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.rsplit("/", 1)[-1].encode("utf-8", "surrogateescape") + b"\0")
        digest.update(hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


def fingerprint_frame(frame: pd.DataFrame) -> str:
    """SHA-256 of a table's columns and rows, whatever order the rows came in."""
    import numpy as np
    import pandas as pd

    digest = hashlib.sha256(json.dumps([str(c) for c in frame.columns]).encode())
    rows = pd.util.hash_pandas_object(frame.astype("string"), index=False).to_numpy()
    digest.update(np.sort(rows.astype("uint64")).tobytes())
    return digest.hexdigest()


def validation_id(pipeline: str, dataset: str, ds: dt.date, fingerprint: str | None) -> str:
    """The id of one validation of one delivery: another delivery of the day, another id."""
    text = f"{pipeline}/{dataset}/{ds.isoformat()}/{fingerprint or 'unknown'}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def input_key(dataset: str, ds: dt.date) -> str:
    """How a feature partition's record names one validated partition it read."""
    return f"{dataset}/{ds.isoformat()}"


def features_digest(feature_version: str, inputs: Mapping[str, str | None]) -> str:
    """What a feature partition was made from: its version and its inputs' validation ids."""
    payload = json.dumps({"version": feature_version, "inputs": dict(inputs)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- staleness


@dataclass(frozen=True)
class Stale:
    """A partition made from data that has since changed, and why."""

    zone: str
    dataset: str
    ds: dt.date
    reason: str

    def describe(self) -> str:
        return f"{self.zone} {self.dataset} {self.ds}: {self.reason}"


def stale_partitions(
    url: str,
    pipeline: str,
    *,
    zones: Iterable[str] = ("validated", "features", "predictions"),
    days: Iterable[dt.date] | None = None,
) -> list[Stale]:
    """The stale partitions of ``pipeline`` (optionally of some zones and days only).

    Computed from the catalog in one query, so it is cheap enough for every training
    and scoring run.
    """
    from runway_mlops import catalog

    wanted_zones = set(zones)
    wanted_days = None if days is None else set(days)
    records = catalog.list_partitions(url, pipeline)
    by: dict[tuple[str, str, dt.date], dict[str, Any]] = {
        (r["zone"], r["dataset"], r["ds"]): r["details"] for r in records
    }

    def current_validation(dataset: str, ds: dt.date) -> str | None:
        details = by.get(("validated", dataset, ds))
        return None if details is None else details.get("validation_id")

    def validated_problem(dataset: str, ds: dt.date) -> str | None:
        details = by.get(("validated", dataset, ds))
        raw = by.get(("raw", dataset, ds))
        if details is None or raw is None:
            return None
        delivered, judged = raw.get("fingerprint"), details.get("raw_fingerprint")
        if delivered and judged and delivered != judged:
            return (
                f"{dataset} {ds} was delivered again (fingerprint {delivered[:12]}) after it "
                f"was validated (fingerprint {judged[:12]}): validate {ds} again"
            )
        return None

    def features_problem(dataset: str, ds: dt.date) -> str | None:
        details = by.get(("features", dataset, ds))
        if details is None:
            return None
        inputs: dict[str, str | None] = details.get("input_validations") or {}
        changed = []
        for name, recorded in sorted(inputs.items()):
            input_dataset, _, day = name.partition("/")
            input_day = dt.date.fromisoformat(day)
            now = current_validation(input_dataset, input_day)
            if now != recorded or validated_problem(input_dataset, input_day):
                what = "withdrawn" if now is None else "changed"
                changed.append(f"{input_dataset} {input_day} ({what})")
        for day in details.get("inputs", {}).get("history_days_missing", []):
            if current_validation(dataset, dt.date.fromisoformat(day)) is not None:
                changed.append(f"{dataset} {day} (arrived after the build)")
        if not changed:
            return None
        shown = ", ".join(changed[:5]) + (
            f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        )
        return f"built from data that has since changed: {shown}; rebuild the features of {ds}"

    out: list[Stale] = []
    for (zone, dataset, ds), details in sorted(
        by.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1])
    ):
        if zone not in wanted_zones or (wanted_days is not None and ds not in wanted_days):
            continue
        problem = None
        if zone == "validated":
            problem = validated_problem(dataset, ds)
        elif zone == "features":
            problem = features_problem(dataset, ds)
        elif zone == "predictions":
            entity = str(details.get("entity") or "")
            features = by.get(("features", entity, ds)) if entity else None
            if entity and features is None:
                problem = f"the features of {ds} were withdrawn: score {ds} again once rebuilt"
            elif features is not None:
                stale_features = features_problem(entity, ds)
                if stale_features:
                    problem = f"scored stale features ({stale_features})"
                elif details.get("features_digest") != features.get("digest"):
                    problem = f"the features of {ds} were rebuilt after scoring: score {ds} again"
        if problem:
            out.append(Stale(zone, dataset, ds, problem))
    return out


def require_fresh(
    url: str, pipeline: str, zone: str, days: Iterable[dt.date], *, what: str
) -> None:
    """Raise :class:`StaleDataError` naming every stale ``zone`` partition of ``days``."""
    found = stale_partitions(url, pipeline, zones=[zone], days=days)
    if found:
        listed = "; ".join(s.describe() for s in found[:10])
        more = f" and {len(found) - 10} more" if len(found) > 10 else ""
        raise StaleDataError(
            f"{what} refuses {len(found)} stale partition(s) of {pipeline}: {listed}{more}. "
            f"See `runway stale list --pipeline {pipeline}`; rerun those days (a backfill "
            "of the feature DAG over them rebuilds them)"
        )
