"""``runway replay`` (``make replay``): the year 2013 through the platform, in data time.

The continual-learning loop, day by day, with the same stage functions the Airflow
tasks call, the same registry, stores and policies:

1. **data** — seed the file source, ingest and validate every day, build every day's
   features in one Spark job (point-in-time correct: the same rows as daily runs);
   days already built with the current feature version are kept;
2. **first model** — train on the first window (January–March for flights) behind the
   gates, register and promote it: it serves from the day after its window;
3. **the loop**, for each day D from there on: score D with the champion (and the
   shadow models); monitor day D - ``outcome_delay_days`` (its outcomes are known now);
   evaluate the policies — roll back a bad new champion, promote a challenger that won
   in shadow, trigger a retraining — and act on them: a triggered retraining trains on
   the window up to the monitored day, goes through the gates and is promoted (or stays
   challenger, under ``promotion.policy: shadow``) as the training DAG would do;
4. **the record** — the monitoring report (``<reports>/monitoring/<pipeline>/``) and
   ``<home>/replay/<pipeline>/timeline.png``: realised quality per model version over
   the year with every promotion, retraining, rejection and rollback marked, plus
   ``summary.json``.

Why not through the Airflow scheduler: 3 DAGs x 365 daily runs at the per-task cost of
today's runs (a process, imports, a JVM for Spark) take hours on two cores; the loop is
the same code without the per-run overhead. The DAGs are tested through the real
scheduler in ``tests/integration``.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runway_mlops import catalog
from runway_mlops.errors import (
    ConfigError,
    GateRejectedError,
)
from runway_mlops.lake import open_lake

if TYPE_CHECKING:
    from runway_mlops.config import PipelineConfig, PlatformSettings


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _say(text: str) -> None:
    print(text, flush=True)


# --------------------------------------------------------------------------------- data


def prepare_data(
    settings: PlatformSettings, pipeline: PipelineConfig, first: dt.date, last: dt.date
) -> dict[str, Any]:
    """Seed, ingest, validate and build features for first..last; keep days already built.

    Returns {"built": n, "kept": n, "failed": {day: reason}}: a day that fails (e.g. one
    validation blocks) is reported and left out, as in a backfill.
    """
    from runway_mlops import flows
    from runway_mlops.sample.seed import seed
    from runway_mlops.stages.features import feature_version

    lake = open_lake(settings)
    entity = pipeline.features.entity
    version = feature_version(pipeline)
    days = _days(first, last)
    todo = [
        d
        for d in days
        if not lake.exists("features", pipeline.name, entity, d)
        or lake.manifest("features", pipeline.name, entity, d).get("feature_version") != version
    ]
    failed: dict[str, str] = {}
    if not todo:
        return {"built": 0, "kept": len(days), "failed": failed}
    began = time.perf_counter()
    _say(f"data: seeding, ingesting and validating {len(todo)} days ({todo[0]}..{todo[-1]})")
    seed(settings, pipeline, "files", todo[0], todo[-1])
    _say("data: then building the features of the days that pass in one Spark job")
    prepared = flows.prepare_days(
        settings,
        pipeline,
        todo,
        run_id=lambda ds: f"replay__{ds.isoformat()}",
        features_run_id="replay",
        echo=_say,
    )
    failed.update({ds.isoformat(): why for ds, why in prepared.failed.items()})
    buildable = [r.ds for r in prepared.built]
    _say(
        f"data: ready in {time.perf_counter() - began:.0f} s; unusable days: {sorted(failed) or 'none'}"
    )
    return {"built": len(buildable), "kept": len(days) - len(todo), "failed": failed}


# ------------------------------------------------------------------------------ reset

#: A replay home carries this file; the replay refuses to reset a home without it.
MARKER = ".runway-replay"


def claim_home(settings: PlatformSettings) -> None:
    """Make sure ``settings.home`` is a replay's own home (empty, or marked as one)."""
    home = settings.home
    marker = home / MARKER
    if home.exists() and any(home.iterdir()) and not marker.exists():
        raise ConfigError(
            f"{home} is not a replay home (no {MARKER} in it): the replay resets the model "
            "registry, predictions and decisions of its home at every start, so it runs in a "
            "folder of its own; choose an empty --home (default: <home>/replay)"
        )
    home.mkdir(parents=True, exist_ok=True)
    marker.write_text("This folder belongs to `runway replay`; it is reset at every replay.\n")


def reset_model_state(settings: PlatformSettings, pipeline: PipelineConfig) -> None:
    """Forget every model, prediction, monitored value and decision of an earlier replay
    (the data partitions stay): a replay always starts from the same state."""
    import sqlalchemy as sa

    from runway_mlops.inference import store
    from runway_mlops.monitoring import store as mstore

    uri = settings.mlflow_tracking_uri
    path = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
    if path is None or not path.resolve().is_relative_to(settings.home.resolve()):
        raise ConfigError(
            f"the replay resets its MLflow store, so it needs one of its own under {settings.home} "
            f"(got {uri})"
        )
    path.unlink(missing_ok=True)
    artifacts = Path(settings.mlflow_artifact_uri)
    if artifacts.resolve().is_relative_to(settings.home.resolve()):
        shutil.rmtree(artifacts, ignore_errors=True)
    lake = open_lake(settings)
    for role in ("champion", "shadow"):
        shutil.rmtree(lake.dataset_dir("predictions", pipeline.name, role), ignore_errors=True)
    shutil.rmtree(settings.reports_dir / "monitoring" / pipeline.name, ignore_errors=True)
    tables = [
        store.predictions,
        mstore.monitoring,
        mstore.policy_decisions,
        catalog.model_events,
        catalog.gate_decisions,
    ]
    store.day_counts(settings.database_url, pipeline.name)  # creates the tables if needed
    mstore.list_decisions(settings.database_url, pipeline.name)
    with catalog.engine(settings.database_url).begin() as conn:
        for table in tables:
            conn.execute(sa.delete(table).where(table.c.pipeline == pipeline.name))
    from runway_mlops.inference import models
    from runway_mlops.stages import monitor

    models._cache.clear()
    monitor._references.clear()


# ----------------------------------------------------------------------------- training


@dataclass
class TrainingOutcome:
    """What one training chain ended in."""

    run_id: str
    window_end: str
    decision: str  # passed | rejected
    summary: str
    model_version: str | None = None
    promoted: bool = False
    effective_from: str | None = None
    note: str = ""


def train_and_promote(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    *,
    window_end: dt.date,
    days: int | None,
    run_id: str,
    reason: str,
    tune: bool = True,
    validation_days: int | None = None,
    test_days: int | None = None,
) -> TrainingOutcome:
    """The training chain (:func:`runway_mlops.flows.train_and_promote`) for the replay.

    Unusable days in the window are skipped and recorded (the replay's year has two).
    A rejection by the gates is an outcome, not an error.
    """
    from runway_mlops import flows
    from runway_mlops.stages import train
    from runway_mlops.training.model import candidates

    assert pipeline.training is not None
    context = train.RunContext(run_id=run_id, run_type="replay", reason=reason)
    window = train.training_window(
        pipeline, end=window_end, days=days, validation_days=validation_days, test_days=test_days
    )
    return _outcome(
        flows.train_and_promote(
            settings,
            pipeline,
            window,
            context,
            candidates=candidates(pipeline.training, tune=tune),
            missing_partitions="skip",
        )
    )


def _outcome(result: Any) -> TrainingOutcome:
    """A chain's outcome as the replay's summary line."""
    outcome = TrainingOutcome(
        str(result.context.run_id),
        result.window.end.isoformat(),
        result.decision,
        result.summary,
        model_version=result.registered.model_version if result.registered else None,
    )
    if result.promoted is not None:
        outcome.promoted = True
        outcome.effective_from = result.promoted.effective_from
    elif result.not_promoted:
        outcome.note = result.not_promoted
    return outcome


# ----------------------------------------------------------------------------- baseline


def left_alone(
    settings: PlatformSettings, pipeline: PipelineConfig, version: str, days: list[dt.date]
) -> list[tuple[dt.date, float | None]]:
    """The daily realised metric ``version`` would have had, never replaced: the same
    scoring and monitoring code on every day, nothing stored. What the loop is measured
    against."""
    import pandas as pd

    from runway_mlops.inference import models
    from runway_mlops.stages import monitor, score
    from runway_mlops.training.metrics import binary_metrics

    assert pipeline.monitoring is not None and pipeline.label is not None
    lake = open_lake(settings)
    entity = pipeline.features.entity
    key = pipeline.datasets[entity].key
    label = pipeline.label.name
    model = models.load_version(settings, pipeline.model_name, version)
    metric = pipeline.monitoring.policies.metric
    out: list[tuple[dt.date, float | None]] = []
    for ds in days:
        if not lake.exists("features", pipeline.name, entity, ds):
            continue
        features = lake.read_frame("features", pipeline.name, entity, ds)
        labels = lake.read_frame("labels", pipeline.name, entity, ds)
        horizon = monitor.outcome_horizon(pipeline, ds)
        known = pd.to_datetime(labels["outcome_known_at"], utc=True) < horizon
        joined = features.assign(score=score.predict(model, features)).merge(
            labels.loc[known, [*key, label]], on=key
        )
        if len(joined) < pipeline.monitoring.policies.min_rows:
            continue
        value = binary_metrics(joined[label].to_numpy(), joined["score"].to_numpy())[metric]
        out.append((ds, value))
    return out


def _compare(
    metric: str,
    loop: list[Any],
    alone: list[tuple[dt.date, float | None]],
    first_version: str,
) -> dict[str, Any]:
    """Mean daily realised metric per month: the served champions vs the first model."""
    import statistics
    from collections import defaultdict

    served: dict[int, list[float]] = defaultdict(list)
    kept: dict[int, list[float]] = defaultdict(list)
    days = {r.ds for r in loop if r.value is not None} & {d for d, v in alone if v is not None}
    for r in loop:
        if r.ds in days:
            served[r.ds.month].append(r.value)
    for d, v in alone:
        if d in days and v is not None:
            kept[d.month].append(v)
    months = sorted(served)
    every_served = [v for m in months for v in served[m]]
    every_kept = [v for m in months for v in kept[m]]
    return {
        "metric": metric,
        "first_model": first_version,
        "days": len(days),
        "by_month": {
            m: {"served": statistics.fmean(served[m]), "first_model": statistics.fmean(kept[m])}
            for m in months
        },
        "served_mean": statistics.fmean(every_served) if every_served else None,
        "first_model_mean": statistics.fmean(every_kept) if every_kept else None,
    }


# --------------------------------------------------------------------------------- loop


@dataclass
class ReplaySummary:
    pipeline: str
    first_train: str
    scored: str
    days_scored: int = 0
    days_skipped: dict[str, str] = field(default_factory=dict)
    trainings: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    timeline: str | None = None
    report: str | None = None
    comparison: dict[str, Any] = field(default_factory=dict)


def run_loop(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    days: list[dt.date],
    *,
    tune: bool = True,
    summary: ReplaySummary,
) -> None:
    """Score, monitor and apply the policies day by day (see the module docstring)."""
    from runway_mlops.stages import monitor, score

    assert pipeline.monitoring is not None
    lake = open_lake(settings)
    entity = pipeline.features.entity
    delay = pipeline.monitoring.outcome_delay_days
    began = time.perf_counter()
    last_progress = began
    for i, ds in enumerate(days, 1):
        if not lake.exists("features", pipeline.name, entity, ds):
            summary.days_skipped[ds.isoformat()] = "no feature partition (quarantined or missing)"
        else:
            context = score.ScoringContext.for_day(
                pipeline, ds, run_id=f"replay__{ds.isoformat()}", run_type="replay", dag_id="replay"
            )
            score.score_champion(settings, pipeline, ds, context)
            score.score_shadow(settings, pipeline, ds, context)
            summary.days_scored += 1
        monitored = ds - dt.timedelta(days=delay)
        if monitored < days[0] or monitor.missing_inputs(settings, pipeline, monitored):
            continue
        mcontext = monitor.MonitorContext(
            dag_id="replay", run_id=f"replay__{ds.isoformat()}", run_type="replay"
        )
        monitor.compute_monitoring(settings, pipeline, monitored, mcontext)
        outcome = monitor.decide_policies(settings, pipeline, monitored, mcontext)
        for decision in outcome.decisions.values():
            if decision.acted and decision.policy != "retrain":
                _say(f"{monitored}  {decision.policy}: {decision.action} — {decision.reason}")
        if outcome.retrain:
            _say(f"{monitored}  retrain fired: {outcome.retrain['reason']}")
            t0 = time.perf_counter()
            result = train_and_promote(
                settings,
                pipeline,
                window_end=monitored,
                days=outcome.retrain.get("window_days"),
                run_id=outcome.retrain["run_id"],
                reason=outcome.retrain["reason"],
                tune=tune,
            )
            what = (
                f"v{result.model_version} promoted, serving from {result.effective_from}"
                if result.promoted
                else (
                    f"v{result.model_version} registered, not promoted: {result.note}"
                    if result.model_version
                    else "rejected by the gates"
                )
            )
            _say(f"{monitored}  retrained in {time.perf_counter() - t0:.0f} s: {what}")
            summary.trainings.append(
                {**asdict(result), "seconds": round(time.perf_counter() - t0, 1)}
            )
        now = time.perf_counter()
        if now - last_progress > 30 or i == len(days):
            last_progress = now
            _say(f"  [{i}/{len(days)}] {ds}: {now - began:.0f} s")


def run_replay(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    *,
    first: dt.date,
    train_until: dt.date,
    last: dt.date,
    tune: bool = True,
    prepare: bool = True,
) -> ReplaySummary:
    """Data, first model, the loop and the record, for ``first``..``last`` (see module doc)."""
    from runway_mlops.monitoring import store as mstore
    from runway_mlops.monitoring.report import markers, quality_plot, write_report
    from runway_mlops.training import registry

    if pipeline.monitoring is None or pipeline.training is None:
        raise ConfigError(f"pipeline {pipeline.name} has no training and monitoring blocks")
    if not first < train_until < last:
        raise ConfigError(f"expected --from {first} < --train-until {train_until} < --to {last}")
    summary = ReplaySummary(
        pipeline.name, f"{first}..{train_until}", f"{train_until + dt.timedelta(days=1)}..{last}"
    )
    began = time.perf_counter()
    claim_home(settings)
    reset_model_state(settings, pipeline)
    if prepare:
        data = prepare_data(settings, pipeline, first, last)
        summary.days_skipped.update({d: f"data: {why}" for d, why in data["failed"].items()})
    summary.seconds["data"] = round(time.perf_counter() - began, 1)

    t0 = time.perf_counter()
    window_days = (train_until - first).days + 1
    _say(f"first model: training on {first}..{train_until} ({window_days} days)")
    result = train_and_promote(
        settings,
        pipeline,
        window_end=train_until,
        days=window_days,
        run_id=f"replay__initial__{train_until}",
        reason="replay: the first model",
        tune=tune,
    )
    summary.trainings.append({**asdict(result), "seconds": round(time.perf_counter() - t0, 1)})
    if not result.promoted:
        client, _ = registry.connect(settings, pipeline)
        if registry.aliased(client, pipeline.model_name, registry.CHAMPION) is None:
            raise GateRejectedError(
                f"the first model was not promoted: {result.summary} {result.note}"
            )
    _say(f"first model: v{result.model_version}, {result.summary}")
    summary.seconds["first_model"] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    run_loop(
        settings,
        pipeline,
        _days(train_until + dt.timedelta(days=1), last),
        tune=tune,
        summary=summary,
    )
    summary.seconds["loop"] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    client, _ = registry.connect(settings, pipeline)
    aliases = {
        a: registry.aliased_version(client, pipeline.model_name, a)
        for a in (registry.CHAMPION, registry.CHALLENGER, registry.PREVIOUS)
    }
    report = write_report(settings, pipeline, aliases=aliases)
    out = settings.home / "replay" / pipeline.name
    out.mkdir(parents=True, exist_ok=True)
    metric = pipeline.monitoring.policies.metric
    rows = mstore.metric_rows(
        settings.database_url, pipeline.name, kind="quality", name="overall", metric=metric
    )
    first_version = next((t["model_version"] for t in summary.trainings if t["promoted"]), None)
    baseline = None
    if first_version:
        scored = _days(train_until + dt.timedelta(days=1), last)
        alone = left_alone(settings, pipeline, first_version, scored)
        baseline = (f"v{first_version} never retrained", alone)
        min_rows = pipeline.monitoring.policies.min_rows
        loop = [r for r in rows if r.role == "champion" and r.rows >= min_rows]
        summary.comparison = _compare(metric, loop, alone, first_version)
    quality_plot(
        out / "timeline.png",
        rows,
        markers(settings, pipeline),
        baseline=baseline,
        metric=metric,
        title=f"{pipeline.name} {first.year}: realised {metric} per model version, with the platform's decisions",
        threshold=pipeline.monitoring.policies.retrain.threshold,
    )
    summary.timeline = str(out / "timeline.png")
    summary.report = str(report)
    summary.events = [
        {
            "version": e.model_version,
            "event": e.event,
            "actor": e.actor,
            "reason": e.reason,
            "effective_from": e.details.get("effective_from"),
            "run_id": e.run_id,
        }
        for e in catalog.list_model_events(settings.database_url, pipeline.name)
    ]
    summary.seconds["record"] = round(time.perf_counter() - t0, 1)
    summary.seconds["total"] = round(time.perf_counter() - began, 1)
    (out / "summary.json").write_text(json.dumps(asdict(summary), indent=1, default=str))
    shutil.copyfile(out / "timeline.png", report.parent / "timeline.png")
    return summary


def describe(summary: ReplaySummary) -> str:
    """The end-of-replay text: trainings, events, where the record is, how long it took."""
    lines = [
        f"replay of {summary.pipeline}: first model on {summary.first_train}, scored "
        f"{summary.days_scored} days of {summary.scored}",
    ]
    if summary.days_skipped:
        lines.append(
            "days left out: "
            + "; ".join(f"{d} ({why[:80]})" for d, why in sorted(summary.days_skipped.items()))
        )
    lines.append("\ntrainings:")
    for t in summary.trainings:
        state = (
            f"v{t['model_version']} promoted (serves from {t['effective_from']})"
            if t["promoted"]
            else f"v{t['model_version']} not promoted: {t['note'][:120]}"
            if t["model_version"]
            else "rejected by the gates"
        )
        lines.append(
            f"  {t['run_id']:<34} window end {t['window_end']}: {state} [{t['seconds']} s]"
        )
    lines.append("\nmodel events:")
    for e in summary.events:
        lines.append(
            f"  v{e['version']:<3} {e['event']:<18} {str(e['effective_from'] or ''):<11} {e['actor']}: {e['reason'][:150]}"
        )
    comparison = summary.comparison
    if comparison.get("served_mean") is not None:
        lines.append(
            f"\nmean daily realised {comparison['metric']} over {comparison['days']} days: "
            f"served champions {comparison['served_mean']:.4f} vs v{comparison['first_model']} "
            f"never retrained {comparison['first_model_mean']:.4f}"
        )
        lines.append(
            "  by month: "
            + ", ".join(
                f"{m}: {v['served']:.3f} vs {v['first_model']:.3f}"
                for m, v in comparison["by_month"].items()
            )
        )
    lines.append(f"\ntimeline plot: {summary.timeline}")
    lines.append(f"monitoring report: {summary.report} (Airflow UI: Browse → Model monitoring)")
    lines.append("time: " + ", ".join(f"{k} {v:.0f} s" for k, v in summary.seconds.items()))
    return "\n".join(lines)
