"""The micro-batch path live: ``runway stream-demo`` (``make stream``) and its latency bench.

1. A private project under ``<home>/stream``: a copy of ``config/`` whose pipeline file
   differs from the original in one line, ``cadence`` (``* * * * *`` by default), with
   ``dags/``, ``plugins/`` and ``jobs/`` linked to the real ones.
2. History the daily way (seed, ingest, validate, one Spark job for the features) and a
   first champion trained on it by the training stages, so the stream has something to
   score with. The features are the micro-batch ones (with the same-day block).
3. Airflow on that project; the replay producer emits the day from ``--start`` into the
   landing ``arrivals/`` at ``--speed`` times real time. Every minute the feature DAG
   takes a micro-batch; each feature update triggers the inference DAG.
4. Latency of each flight: from the arrival time of the file that carried it to the
   ``scored_at`` of its champion prediction, both on the wall clock.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runway_mlops.config import PipelineConfig, PlatformSettings, get_pipeline, load_settings


def stream_project(settings: PlatformSettings, folder: Path, cadence: str) -> Path:
    """A project copy whose pipeline files differ from the originals only in ``cadence``."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config"
    if config.exists():
        shutil.rmtree(config)
    shutil.copytree(settings.config_dir, config)
    for path in (config / "pipelines").glob("*.yaml"):
        text = path.read_text()
        changed, count = re.subn(
            r"^cadence:\s*\S+", f'cadence: "{cadence}"', text, count=1, flags=re.MULTILINE
        )
        if count == 0:
            changed = f'cadence: "{cadence}"\n' + text
        path.write_text(changed)
    for name in ("dags", "plugins", "jobs"):
        link = folder / name
        if not link.exists():
            link.symlink_to(settings.project_root / name)
    return config


def bootstrap(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    history: list[dt.date],
    *,
    spark: Any = None,
    echo: Any = print,
) -> Any:
    """Load ``history`` the daily way, build its features, train and promote a champion;
    return the registered version (:class:`runway_mlops.stages.train.Registered`)."""
    from runway_mlops import flows
    from runway_mlops.errors import PromotionRefusedError, SourceDataError
    from runway_mlops.sample.seed import seed
    from runway_mlops.stages import train
    from runway_mlops.training.model import candidates

    seed(settings, pipeline, "files", history[0], history[-1])
    prepared = flows.prepare_days(
        settings,
        pipeline,
        history,
        run_id=lambda ds: "history",
        features_run_id="history",
        spark=spark,
    )
    if prepared.failed:
        raise SourceDataError(
            "the stream demo's history must load whole: "
            + "; ".join(f"{ds}: {why}" for ds, why in sorted(prepared.failed.items()))
        )
    echo(f"history {history[0]} .. {history[-1]}: ingested, validated, features built")
    context = train.RunContext(
        dag_id=f"{pipeline.name}_training", run_id="stream__bootstrap", run_type="manual"
    )
    assert pipeline.training is not None
    window = train.training_window(
        pipeline, end=history[-1], days=len(history), validation_days=3, test_days=3
    )
    # A few weeks of history cannot meet the year's floors: the gates are recorded only.
    outcome = flows.train_and_promote(
        settings,
        pipeline,
        window,
        context,
        candidates=candidates(pipeline.training, None, tune=False)[:1],
        gate_mode="dry_run",
        approved_by="stream-demo",
    )
    if outcome.promoted is None:
        raise PromotionRefusedError(str(outcome.not_promoted))
    echo(f"champion: {pipeline.model_name} v{outcome.promoted.model_version}")
    return outcome.registered


@dataclass
class StreamRun:
    emitted: dict[str, int] = field(default_factory=dict)
    #: Wall-clock arrival time of each entity key the producer landed.
    arrivals: dict[str, dt.datetime] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    batches: int = 0
    failed_runs: int = 0

    def figures(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return lat[min(len(lat) - 1, int(round(p * (len(lat) - 1))))] if lat else None

        return {
            "flights_landed": len(self.arrivals),
            "flights_scored": len(lat),
            "latency_median_s": statistics.median(lat) if lat else None,
            "latency_p95_s": pct(0.95),
            "latency_max_s": lat[-1] if lat else None,
            "feature_runs": self.batches,
            "failed_runs": self.failed_runs,
            "emitted": self.emitted,
        }


def _producer(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    start: dt.datetime,
    end: dt.datetime,
    speed: float,
    tick: float,
    run: StreamRun,
    stop: threading.Event,
) -> None:
    from runway_mlops.inference.store import entity_key
    from runway_mlops.sample.producer import StreamReplay
    from runway_mlops.storage import open_store

    store = open_store(pipeline.source.uri or settings.landing_uri, settings.s3_endpoint_url)
    replay = StreamReplay(store, pipeline, start, end)
    replay.ensure_references()
    key = pipeline.datasets[pipeline.features.entity].key
    frame, when = replay.due[pipeline.features.entity]
    wall0, stream0 = time.monotonic(), replay.cursor
    while not replay.finished and not stop.is_set():
        time.sleep(tick)
        upto = stream0 + dt.timedelta(seconds=(time.monotonic() - wall0) * speed)
        before = replay.cursor
        arrival = dt.datetime.now(dt.UTC)
        written = replay.emit(upto, arrival)
        if pipeline.features.entity in written:
            landed = frame[(when >= before) & (when < replay.cursor)]
            for values in landed[key].itertuples(index=False):
                # The first version (the schedule) is when the flight became known.
                run.arrivals.setdefault(entity_key(values), arrival)  # e.g. 2013|3|1|UA|1545|EWR
        for name, rows in written.items():
            run.emitted[name] = run.emitted.get(name, 0) + rows


def run_stream(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    start: dt.datetime,
    hours: float,
    *,
    speed: float,
    tick: float = 5.0,
    drain_minutes: float = 4.0,
    echo: Any = print,
) -> StreamRun:
    """Airflow plus the producer until the replay ends and its flights are scored."""
    from runway_mlops.inference import store
    from runway_mlops.orchestration.api import AirflowAPI
    from runway_mlops.orchestration.runtime import admin_password, running_airflow
    from runway_mlops.programs.demo import wait_for_dag

    run = StreamRun()
    stop = threading.Event()
    end = start + dt.timedelta(hours=hours)
    with running_airflow(settings) as procs:
        with AirflowAPI(settings.airflow_url, "admin", admin_password(settings)) as api:
            wait_for_dag(api, f"{pipeline.name}_features", procs, timeout=300)
            wait_for_dag(api, f"{pipeline.name}_inference", procs, timeout=300)
            echo(f"Airflow up at {settings.airflow_url}; replaying {hours:g} h at {speed:g}x")
            producer = threading.Thread(
                target=_producer,
                args=(settings, pipeline, start, end, speed, tick, run, stop),
                daemon=True,
            )
            producer.start()
            seen: set[str] = set()
            deadline = None
            try:
                while True:
                    time.sleep(10)
                    procs.check_alive()
                    scored = _scored(store, settings, pipeline)
                    for key, at in scored.items():
                        if key in seen or key not in run.arrivals:
                            continue
                        seen.add(key)
                        run.latencies.append((at - run.arrivals[key]).total_seconds())
                    lat = sorted(run.latencies)
                    echo(
                        f"{dt.datetime.now(dt.UTC):%H:%M:%S} landed {len(run.arrivals):,} flights, "
                        f"scored {len(seen):,}"
                        + (f", median latency {statistics.median(lat):.0f} s" if lat else "")
                    )
                    if not producer.is_alive():
                        deadline = deadline or time.monotonic() + drain_minutes * 60
                        if len(seen) >= len(run.arrivals) or time.monotonic() > deadline:
                            break
            finally:
                stop.set()
                producer.join(timeout=30)
            runs = api.dag_runs(f"{pipeline.name}_features", limit=1000)
            run.batches = sum(1 for r in runs if r.get("state") == "success")
            run.failed_runs = sum(1 for r in runs if r.get("state") == "failed")
    return run


def _scored(store: Any, settings: PlatformSettings, pipeline: PipelineConfig) -> dict[str, Any]:
    import sqlalchemy as sa

    table = store.predictions
    query = sa.select(table.c.entity_key, table.c.scored_at).where(
        (table.c.pipeline == pipeline.name) & (table.c.role == "champion")
    )
    with store._engine(settings.database_url).connect() as conn:
        rows = conn.execute(query).all()
    out = {}
    for key, at in rows:
        out[key] = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    return out


def stream_demo(
    base: PlatformSettings,
    *,
    cadence: str = "* * * * *",
    start: str = "2013-03-01T05:00",
    hours: float = 6.0,
    speed: float = 60.0,
    history_days: int = 21,
    pipeline_name: str = "flights",
    echo: Any = print,
) -> StreamRun:
    """Everything ``runway stream-demo`` does (module docstring); returns the figures."""
    import os

    folder = base.home / "stream"
    if folder.exists():
        shutil.rmtree(folder)
    config = stream_project(base, folder, cadence)
    env = dict(os.environ)
    env.update({"RUNWAY_CONFIG_DIR": str(config), "RUNWAY_HOME": str(folder / "home")})
    settings = load_settings(config, env=env)
    pipeline = get_pipeline(settings, pipeline_name)
    if not pipeline.micro_batch:
        raise ValueError(f"cadence {cadence!r} is not shorter than a day")
    local = dt.datetime.fromisoformat(start)
    if local.tzinfo is None:
        local = local.replace(tzinfo=pipeline.zone)
    first_stream_day = local.astimezone(pipeline.zone).date()
    history = [first_stream_day - dt.timedelta(days=history_days - i) for i in range(history_days)]
    echo(f"stream project: {folder} (cadence {cadence!r}; everything else as in {base.config_dir})")
    bootstrap(settings, pipeline, history, echo=echo)
    return run_stream(settings, pipeline, local, hours, speed=speed, echo=echo)
