"""What the Airflow tasks run: thin adapters from a task's context to the stage functions.

Each adapter derives the partition day from the run's data interval (never from the
clock), calls the same stage function as ``runway run``, and maps Runway errors onto
Airflow's retry semantics: a source that is not reachable yet is retried; bad data, a
bad config or a missing upstream partition fails at once (a retry cannot fix it).

Only references go to XCom (paths, row counts), never data. Heavy libraries are imported
inside the stage functions, so importing this module at DAG-parse time costs nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

from runway_mlops.cadence import feature_run_dates, interval_days, partition_day
from runway_mlops.errors import (
    RETRYABLE,
    RunwayError,
)

T = TypeVar("T")


def _run_stage(call: Callable[[], T]) -> T:
    """Run a stage; errors a retry cannot fix fail the task without retrying.

    A delivery that has not arrived, a service that does not answer (S3, the MLflow
    tracking server), or a day another task holds (:func:`catalog.day_lock`) is retried
    by Airflow per the pipeline's retry policy.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from runway_mlops.errors import unreachable

    try:
        return call()
    except RETRYABLE:
        # The delivery may still arrive, the service come back, the other task holding
        # the day finish: let Airflow retry.
        raise
    except RunwayError as exc:
        raise AirflowFailException(f"{exc.kind}: {exc}") from exc
    except Exception as exc:
        down = unreachable(exc)
        if down is None:
            raise
        raise down from exc


def _load(pipeline_name: str) -> tuple[Any, Any]:
    from runway_mlops.config import get_pipeline, load_settings

    settings = load_settings()
    return settings, get_pipeline(settings, pipeline_name)


def ingest_raw(pipeline_name: str, **context: Any) -> dict[str, Any]:
    """Copy the interval's deliveries into the raw zone (Airflow task ``ingest_raw``)."""
    from runway_mlops.stages.ingest import ingest

    settings, pipeline = _load(pipeline_name)
    if pipeline.micro_batch:
        return _ingest_micro_batch(settings, pipeline, context)
    ds = partition_day(context["data_interval_start"], pipeline.timezone)
    result = _run_stage(lambda: ingest(settings, pipeline, ds, run_id=context["run_id"]))
    return {"ds": ds.isoformat(), "rows": result.rows, "paths": result.paths}


# ------------------------------------------------------------------ range (backfill)


def plan_days(pipeline_name: str, **context: Any) -> list[str]:
    """The days of the run's data interval, one mapped ``day`` task group each."""
    _, pipeline = _load(pipeline_name)
    days = interval_days(pipeline, context["data_interval_start"], context["data_interval_end"])
    return [d.isoformat() for d in days]


def ingest_day(pipeline_name: str, ds: str, **context: Any) -> dict[str, Any]:
    """``day.ingest_raw`` of a wide run: one day, the same stage as the daily DAG's task."""
    from runway_mlops.stages.ingest import ingest

    settings, pipeline = _load(pipeline_name)
    day = dt.date.fromisoformat(ds)
    result = _run_stage(lambda: ingest(settings, pipeline, day, run_id=context["run_id"]))
    return {"ds": ds, "rows": result.rows, "paths": result.paths}


def validate_day(pipeline_name: str, ds: str, **context: Any) -> dict[str, Any]:
    """``day.validate_raw`` of a wide run: one day, the same stage as the daily DAG's task."""
    from runway_mlops.stages.validate import validate

    settings, pipeline = _load(pipeline_name)
    day = dt.date.fromisoformat(ds)
    dag_id = context["dag"].dag_id if context.get("dag") else None
    outcome = _run_stage(
        lambda: validate(settings, pipeline, day, run_id=context["run_id"], dag_id=dag_id)
    )
    print(outcome.summary())
    return {"ds": ds, "report": str(outcome.report_path)}


def _validated(context: dict[str, Any]) -> list[str]:
    pulled = context["ti"].xcom_pull(task_ids="day.validate_raw") or []
    if isinstance(pulled, dict):
        pulled = [pulled]
    return sorted(str(v["ds"]) for v in pulled if v)


def validated_days(**context: Any) -> dict[str, list[str]]:
    """The days whose validation passed, for the one Spark job (skips if there is none)."""
    from airflow.sdk.exceptions import AirflowSkipException

    days = _validated(context)
    if not days:
        raise AirflowSkipException("no day of this run passed validation: no features to build")
    return {"days": days}


def check_days(pipeline_name: str, **context: Any) -> list[str]:
    """Fail the run, naming them, if some of its days did not pass ingest and validation.

    The features of the days that passed are built anyway; each failed day is a task
    instance of its own (``day.ingest_raw`` / ``day.validate_raw`` with the day as its
    map index label), cleared and rerun alone once its delivery is fixed.
    """
    from airflow.sdk.exceptions import AirflowFailException

    planned = context["ti"].xcom_pull(task_ids="plan_days") or []
    done = set(_validated(context))
    failed = [d for d in planned if d not in done]
    if failed:
        raise AirflowFailException(
            f"{len(failed)} of {len(planned)} day(s) did not pass ingest and validation: "
            f"{', '.join(failed)}; see their day.* task instances, fix the deliveries and "
            "clear those days"
        )
    return list(planned)


def _ingest_micro_batch(settings: Any, pipeline: Any, context: dict[str, Any]) -> dict[str, Any]:
    """The micro-batch path: the files that arrived in the run's data interval."""
    from runway_mlops.stages.microbatch import ingest_micro_batch

    start, end = context["data_interval_start"], context["data_interval_end"]
    result = _run_stage(
        lambda: ingest_micro_batch(settings, pipeline, start, end, run_id=context["run_id"])
    )
    print(result.summary())
    return result.to_xcom()


def validate_raw(pipeline_name: str, **context: Any) -> dict[str, Any]:
    """Validate the interval's raw partitions (Airflow task ``validate_raw``)."""
    from runway_mlops.stages.validate import validate

    settings, pipeline = _load(pipeline_name)
    dag_id = context["dag"].dag_id if context.get("dag") else None
    if pipeline.micro_batch:
        return _validate_micro_batch(settings, pipeline, dag_id, context)
    ds = partition_day(context["data_interval_start"], pipeline.timezone)
    outcome = _run_stage(
        lambda: validate(settings, pipeline, ds, run_id=context["run_id"], dag_id=dag_id)
    )
    print(outcome.summary())
    return {"ds": ds.isoformat(), "report": str(outcome.report_path)}


def _validate_micro_batch(
    settings: Any, pipeline: Any, dag_id: str | None, context: dict[str, Any]
) -> dict[str, Any]:
    """Validate the days a micro-batch changed; skip the rest of the run if none is ready."""
    from airflow.sdk.exceptions import AirflowSkipException

    from runway_mlops.stages.validate import validate_micro_batch

    batch = context["ti"].xcom_pull(task_ids="ingest_raw") or {}
    days = [dt.date.fromisoformat(d) for d in batch.get("days") or []]
    closed = [dt.date.fromisoformat(d) for d in batch.get("closed") or []]
    ready = _run_stage(
        lambda: validate_micro_batch(
            settings, pipeline, days, closed, run_id=context["run_id"], dag_id=dag_id
        )
    )
    if not ready:
        raise AirflowSkipException(
            f"micro-batch {batch.get('batch')}: no day with new entity rows is ready for features"
        )
    return {
        "batch": batch.get("batch"),
        "days": [d.isoformat() for d in ready],
        "clock": batch.get("clock"),
    }


def _built_days(pipeline: Any, context: dict[str, Any], days_task: str | None) -> list[dt.date]:
    """The days ``build_features`` builds: ``days_task``'s XCom, or the interval's day."""
    if days_task:
        built = context["ti"].xcom_pull(task_ids=days_task) or {}
        return [dt.date.fromisoformat(d) for d in built.get("days") or []]
    return [partition_day(context["data_interval_start"], pipeline.timezone)]


def history_settled(pipeline_name: str, days_task: str | None = None, **context: Any) -> bool:
    """Sensor ``wait_for_history``: the earlier days the build reads are not in flight.

    Without it a backfill with several active runs builds a day before the day before it
    has been validated: shorter windows, features that depend on the order runs finished
    in. It waits while an earlier day the features read (see
    :func:`runway_mlops.stages.features.unsettled_history`) is neither validated nor
    quarantined *and* a running run of the pipeline's feature DAGs owns it; a day no run
    is processing never came (or is queued behind this one) and only shortens the windows,
    as the partition's manifest records. The run's own days are decided by the run.
    """
    from runway_mlops.stages.features import unsettled_history

    settings, pipeline = _load(pipeline_name)
    if pipeline.micro_batch:
        return True  # one batch at a time: earlier batches have committed their days
    days = _built_days(pipeline, context, days_task)
    ti = context["ti"]
    own = [dt.date.fromisoformat(d) for d in ti.xcom_pull(task_ids="plan_days") or []]
    pending = unsettled_history(settings, pipeline, days, settled=[*days, *own])
    earlier = sorted({d for per_day in pending.values() for ds in per_day.values() for d in ds})
    in_flight: dict[dt.date, str] = {}
    for day in earlier:
        for dag_id, logical_date in feature_run_dates(pipeline, day).items():
            if ti.get_dr_count(dag_id=dag_id, logical_dates=[logical_date], states=["running"]):
                in_flight[day] = dag_id
                break
    for day, dag_id in in_flight.items():
        print(f"waiting for {pipeline.name} of {day}: a running {dag_id} run is validating it")
    return not in_flight


def feature_event_extra(
    pipeline_name: str, context: dict[str, Any], days_task: str | None = None
) -> dict[str, Any]:
    """What the feature Asset event carries: the day(s), the feature version and the path.

    A daily run built the day of its data interval. A run whose days come from an
    upstream task (``days_task``: a micro-batch's ``validate_raw``, a wide run's
    ``validated_days``) built the days in that task's XCom; the event lists them, and a
    micro-batch's also carries the batch id and the stream clock, so inference scores
    exactly the days the batch changed, and only rows still ahead of the clock.
    """
    from runway_mlops.lake import open_lake

    settings, pipeline = _load(pipeline_name)
    built = (context["ti"].xcom_pull(task_ids=days_task) or {}) if days_task else {}
    ds = _built_days(pipeline, context, days_task)[-1]
    lake = open_lake(settings)
    manifest = lake.manifest("features", pipeline.name, pipeline.features.entity, ds)
    extra = {
        "pipeline": pipeline.name,
        "ds": ds.isoformat(),
        "feature_version": manifest.get("feature_version"),
        "rows": manifest.get("rows"),
        "path": lake.location("features", pipeline.name, pipeline.features.entity, ds),
    }
    extra.update({k: built[k] for k in ("days", "batch", "clock") if k in built})
    return extra


# ---------------------------------------------------------------------------- training


def _run_context(context: dict[str, Any]) -> Any:
    """The task's run provenance (training, scoring and monitoring alike)."""
    from runway_mlops.context import RunContext

    return RunContext.from_airflow(context)


def training_window_end(pipeline: Any, context: dict[str, Any]) -> dt.date:
    """The last day a training run may use, from (in order) the ``window_end`` param, the
    features the triggering Asset events announced, or the run's data interval."""
    from runway_mlops.config import parse_date

    params = context.get("params") or {}
    if params.get("window_end"):
        return parse_date(str(params["window_end"]), "window_end param")
    events = context.get("triggering_asset_events") or {}
    days = [
        dt.date.fromisoformat(str(event.extra["ds"]))
        for asset_events in events.values()
        for event in asset_events
        if getattr(event, "extra", None) and event.extra.get("ds")
    ]
    if days:
        return max(days)
    end = context.get("data_interval_end")
    if end is None:
        raise ValueError("no window_end param, Asset event or data interval to train up to")
    return partition_day(end - dt.timedelta(microseconds=1), pipeline.timezone)


def build_training_set(pipeline_name: str, **context: Any) -> dict[str, Any]:
    """Assemble the window's training set (Airflow task ``build_training_set``)."""
    from runway_mlops.stages.train import prepare_training_set, training_window

    settings, pipeline = _load(pipeline_name)
    params = context.get("params") or {}

    def run() -> Any:
        end = training_window_end(pipeline, context)
        window = training_window(
            pipeline,
            end=end,
            days=params.get("window_days") or None,
            validation_days=params.get("validation_days") or None,
            test_days=params.get("test_days") or None,
        )
        policy = params.get("missing_partitions") or None
        return prepare_training_set(settings, pipeline, window, missing_partitions=policy)

    training_set = _run_stage(run)
    print(
        f"training set {training_set.path}: rows {training_set.lineage['rows']}, "
        f"skipped days {training_set.lineage['skipped_days'] or 'none'}"
    )
    return {
        "training_set": str(training_set.path),
        "window": training_set.window.as_dict(),
        "rows": training_set.lineage["rows"],
    }


def plan_candidates(
    pipeline_name: str, training: dict[str, Any], **context: Any
) -> list[dict[str, Any]]:
    """One ``op_kwargs`` per grid point for the mapped ``train_candidate`` task."""
    from runway_mlops.training.model import candidates

    _, pipeline = _load(pipeline_name)
    params = context.get("params") or {}
    found = _run_stage(
        lambda: candidates(
            pipeline.training,
            params.get("hyperparameters") or {},
            tune=bool(params.get("tune", True)),
        )
    )
    return [
        {
            "pipeline_name": pipeline_name,
            "training_set": training["training_set"],
            "candidate": c.as_dict(),
        }
        for c in found
    ]


def train_candidate(
    pipeline_name: str, training_set: str, candidate: dict[str, Any], **context: Any
) -> dict[str, Any]:
    """Train and log one candidate (mapped Airflow task ``train_candidate``)."""
    from runway_mlops.stages import train
    from runway_mlops.training.model import Candidate

    settings, pipeline = _load(pipeline_name)
    result = _run_stage(
        lambda: train.train_candidate(
            settings,
            pipeline,
            training_set,
            Candidate.from_dict(candidate),
            _run_context(context),
        )
    )
    print(
        f"candidate {result.candidate.index}: validation ROC AUC "
        f"{result.validation['roc_auc']:.4f}, MLflow run {result.mlflow_run_id}"
    )
    return result.to_xcom()


def select_best(pipeline_name: str, results: Any, **context: Any) -> dict[str, Any]:
    from runway_mlops.stages.train import TrainedCandidate
    from runway_mlops.stages.train import select_best as pick

    best = _run_stage(lambda: pick([TrainedCandidate.from_xcom(r) for r in results]))
    print(
        f"best of {best.candidates}: candidate {best.candidate.index} "
        f"(validation ROC AUC {best.validation['roc_auc']:.4f})"
    )
    return best.to_xcom()


def evaluate_gates(pipeline_name: str, best: dict[str, Any], **context: Any) -> dict[str, Any]:
    """Run the gates and record the decision; a blocking rejection fails the task."""
    from runway_mlops.stages import train

    settings, pipeline = _load(pipeline_name)
    params = context.get("params") or {}
    result = _run_stage(
        lambda: train.evaluate_gates(
            settings,
            pipeline,
            train.TrainedCandidate.from_xcom(best),
            _run_context(context),
            mode=params.get("gate_mode") or None,
        )
    )
    print(f"gate decision {result.decision_id}: {result.summary}")
    return result.to_xcom()


def register_challenger(
    pipeline_name: str, evaluation: dict[str, Any], **context: Any
) -> dict[str, Any]:
    from runway_mlops.stages import train

    settings, pipeline = _load(pipeline_name)
    result = _run_stage(
        lambda: train.register_challenger(
            settings, pipeline, train.GateOutcome.from_xcom(evaluation), _run_context(context)
        )
    )
    print(f"registered {pipeline.model_name} v{result.model_version} as challenger")
    return result.to_xcom()


def promote_champion(
    pipeline_name: str, registered: dict[str, Any], **context: Any
) -> dict[str, Any]:
    """Promote the challenger; skipped (with the reason) on a backfill run."""
    from airflow.sdk.exceptions import AirflowSkipException

    from runway_mlops.errors import PromotionRefusedError
    from runway_mlops.stages import train

    settings, pipeline = _load(pipeline_name)
    approved_by = None
    if pipeline.promotion.policy == "manual":
        approval = context["ti"].xcom_pull(task_ids="approve_promotion") or {}
        user = approval.get("responded_by_user") or {}
        if "Approve" in (approval.get("chosen_options") or []):
            approved_by = str(user.get("name") or user.get("id") or "unknown user")
    try:
        result = train.promote_champion(
            settings,
            pipeline,
            train.Registered.from_xcom(registered),
            _run_context(context),
            approved_by=approved_by,
        )
    except PromotionRefusedError as exc:
        raise AirflowSkipException(f"promotion refused: {exc}") from exc
    print(
        f"{pipeline.model_name} champion is now v{result.champion} "
        f"(previous: {result.previous_champion or 'none'}, by {result.promoted_by})"
    )
    return result.to_xcom()


# --------------------------------------------------------------------------- inference


def _blocked_reason(settings: Any, pipeline: Any, ds: dt.date) -> str | None:
    """Why the day's features will never arrive (its raw data is quarantined), or None."""
    from runway_mlops import catalog

    blocked = sorted(
        {
            e.dataset
            for e in catalog.list_quarantine(settings.database_url, pipeline.name, ds)
            if e.scope in ("partition", "delivery") and e.dataset in pipeline.events_datasets
        }
    )
    if not blocked:
        return None
    return (
        f"{', '.join(blocked)} of {pipeline.name} for {ds} is quarantined, so the day has no "
        "features to score: see `runway quarantine list` and the validation report; rerun "
        "the feature DAG for the day once the data is fixed, then clear this run"
    )


def features_ready(pipeline_name: str, **context: Any) -> bool:
    """Sensor ``wait_for_features``: the interval's feature partition is published."""
    from airflow.sdk.exceptions import AirflowFailException

    from runway_mlops.lake import open_lake

    settings, pipeline = _load(pipeline_name)
    ds = partition_day(context["data_interval_start"], pipeline.timezone)
    if open_lake(settings).exists("features", pipeline.name, pipeline.features.entity, ds):
        return True
    reason = _blocked_reason(settings, pipeline, ds)
    if reason:
        raise AirflowFailException(f"missing partition: {reason}")
    print(f"waiting for the feature partition of {pipeline.name} for {ds}")
    return False


def score_champion(pipeline_name: str, **context: Any) -> dict[str, Any]:
    """Score the interval with the serving model (Airflow task ``score_champion``)."""
    from runway_mlops.stages import score

    settings, pipeline = _load(pipeline_name)
    ds = partition_day(context["data_interval_start"], pipeline.timezone)
    params = context.get("params") or {}
    result = _run_stage(
        lambda: score.score_champion(
            settings, pipeline, ds, _run_context(context), model=params.get("model") or None
        )
    )
    print(result.summary())
    print(f"chosen by: {result.models[0]['how']}")
    return {"ds": ds.isoformat(), "rows": result.rows, "path": result.path, "models": result.models}


def score_micro_batch(pipeline_name: str, **context: Any) -> dict[str, Any]:
    """Score the rows the triggering feature updates added (Airflow task ``score_new``)."""
    from runway_mlops.stages import score

    settings, pipeline = _load(pipeline_name)
    days: set[dt.date] = set()
    clocks = []
    for asset_events in (context.get("triggering_asset_events") or {}).values():
        for event in asset_events:
            extra = getattr(event, "extra", None) or {}
            days.update(dt.date.fromisoformat(d) for d in extra.get("days") or [])
            if extra.get("clock"):
                clocks.append(dt.datetime.fromisoformat(extra["clock"]))
    if not days:
        raise ValueError("no feature update with micro-batch days triggered this run")
    clock = max(clocks) if clocks else None
    scoring = _run_context(context)
    done = {}
    for ds in sorted(days):

        def score_day(day: dt.date = ds) -> list[Any]:
            return score.score_new(settings, pipeline, day, clock, scoring)

        for result in _run_stage(score_day):
            print(result.summary())
            done[f"{ds.isoformat()}/{result.role}"] = result.rows
    return {"clock": clock.isoformat() if clock else None, "rows": done}


def score_shadow(pipeline_name: str, **context: Any) -> dict[str, Any]:
    """Score the interval with the shadow models (Airflow task ``score_shadow``)."""
    from runway_mlops.stages import score

    settings, pipeline = _load(pipeline_name)
    ds = partition_day(context["data_interval_start"], pipeline.timezone)
    result = _run_stage(lambda: score.score_shadow(settings, pipeline, ds, _run_context(context)))
    print(result.summary())
    return {"ds": ds.isoformat(), "rows": result.rows, "path": result.path, "models": result.models}


# -------------------------------------------------------------------------- monitoring


def _monitored(pipeline: Any, context: dict[str, Any]) -> dt.date:
    from runway_mlops.stages.monitor import monitored_day

    return monitored_day(pipeline, partition_day(context["data_interval_start"], pipeline.timezone))


def outcomes_ready(pipeline_name: str, **context: Any) -> bool:
    """Sensor ``wait_for_outcomes``: the monitored day's predictions and outcomes exist."""
    from airflow.sdk.exceptions import AirflowFailException

    from runway_mlops.stages.monitor import missing_inputs

    settings, pipeline = _load(pipeline_name)
    ds = _monitored(pipeline, context)
    missing = missing_inputs(settings, pipeline, ds)
    if not missing:
        return True
    reason = _blocked_reason(settings, pipeline, ds)
    if reason:
        raise AirflowFailException(f"missing partition: {reason}")
    print(f"monitoring {pipeline.name} {ds} waits for: {', '.join(missing)}")
    return False


def compute_monitoring(pipeline_name: str, **context: Any) -> dict[str, Any]:
    """Realised quality and drift of the monitored day (task ``compute_monitoring``)."""
    from runway_mlops.stages import monitor

    settings, pipeline = _load(pipeline_name)
    ds = _monitored(pipeline, context)
    result = _run_stage(
        lambda: monitor.compute_monitoring(settings, pipeline, ds, _run_context(context))
    )
    print(result.summary())
    return {
        "monitored_day": ds.isoformat(),
        "versions": result.versions,
        "drift_alerts": result.drift_alerts,
    }


def decide_policies(pipeline_name: str, **context: Any) -> dict[str, Any]:
    """Rollback, shadow promotion and retraining decisions (task ``decide_policies``)."""
    from runway_mlops.stages import monitor

    settings, pipeline = _load(pipeline_name)
    ds = _monitored(pipeline, context)
    outcome = _run_stage(
        lambda: monitor.decide_policies(settings, pipeline, ds, _run_context(context))
    )
    print(outcome.summary())
    result = outcome.as_dict()
    if outcome.retrain:
        conf = {"window_end": outcome.retrain["window_end"], "reason": outcome.retrain["reason"]}
        if outcome.retrain.get("window_days"):
            conf["window_days"] = outcome.retrain["window_days"]
        result["retrain"] = {**outcome.retrain, "conf": conf}
    return result


def retraining_needed(**context: Any) -> bool:
    """``should_retrain``: True when ``decide_policies`` fired (and acted on) a retraining."""
    decided = context["ti"].xcom_pull(task_ids="decide_policies") or {}
    return bool(decided.get("retrain"))


def write_monitoring_report(pipeline_name: str, **context: Any) -> dict[str, Any]:
    """Rewrite the pipeline's monitoring report (task ``write_report``)."""
    from runway_mlops.monitoring.report import write_report
    from runway_mlops.training import registry

    settings, pipeline = _load(pipeline_name)
    client, _ = registry.connect(settings, pipeline)
    aliases = {
        alias: registry.aliased_version(client, pipeline.model_name, alias)
        for alias in (registry.CHAMPION, registry.CHALLENGER, registry.PREVIOUS)
    }
    path = _run_stage(lambda: write_report(settings, pipeline, aliases=aliases))
    print(f"monitoring report: {path} (Airflow UI: Browse → Model monitoring)")
    return {"report": str(path)}
