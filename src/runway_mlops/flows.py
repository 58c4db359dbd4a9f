"""The stage chains, written once: prepare days, and train and promote.

Airflow runs each stage as its own task (:mod:`runway_mlops.orchestration`); a program
that runs a chain in one process (``runway train``, ``runway run``, the replay, the
stream demo, the benches) calls these instead of wiring the stages by hand. The step
names are the training DAG's task ids::

    prepare_days:       ingest_raw >> validate_raw >> build_features   (days in one Spark job)
    train_and_promote:  build_training_set >> train_candidate (each) >> select_best
                            >> evaluate_gates >> register_challenger >> promote_champion

Both return typed outcomes; a day that fails and a candidate the gates reject are
outcomes, not errors (as in a backfill, the other days carry on).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from runway_mlops.context import RunContext
from runway_mlops.errors import GateRejectedError, PromotionRefusedError, RunwayError

if TYPE_CHECKING:
    from runway_mlops.config import PipelineConfig, PlatformSettings
    from runway_mlops.stages.features import FeatureResult
    from runway_mlops.stages.train import GateOutcome, Promoted, Registered, TrainedCandidate
    from runway_mlops.training.dataset import TrainingSet, TrainingWindow
    from runway_mlops.training.model import Candidate


def _quiet(_: str) -> None:
    return None


def one_line(exc: RunwayError) -> str:
    """``kind: message`` on one line, as a day's failure is reported."""
    return f"{exc.kind}: " + " ".join(str(exc).split())


# ------------------------------------------------------------------------ prepare days


@dataclasses.dataclass
class PreparedDays:
    """What :func:`prepare_days` did: the feature partitions built, the days that failed."""

    built: list[FeatureResult] = dataclasses.field(default_factory=list)
    #: Day -> ``kind: reason`` (validation blocked, a partition missing...).
    failed: dict[dt.date, str] = dataclasses.field(default_factory=dict)


def build_features(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    days: list[dt.date],
    *,
    run_id: str,
    spark: Any = None,
) -> PreparedDays:
    """``build_features`` of the days whose inputs are there, in one Spark job; the others
    are reported with why."""
    from runway_mlops.stages.features import (
        build_feature_range,
        missing_feature_inputs,
        spark_session,
    )

    outcome = PreparedDays()
    for ds, reasons in missing_feature_inputs(settings, pipeline, days).items():
        outcome.failed[ds] = "missing partition: " + " and ".join(reasons)
    buildable = [ds for ds in days if ds not in outcome.failed]
    if not buildable:
        return outcome
    session = spark or spark_session(
        settings.spark_engine, app_name=f"runway-features-{pipeline.name}"
    )
    try:
        outcome.built = build_feature_range(session, settings, pipeline, buildable, run_id=run_id)
    finally:
        if spark is None:
            session.stop()
    return outcome


def prepare_days(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    days: Iterable[dt.date],
    *,
    run_id: Callable[[dt.date], str],
    features_run_id: str,
    spark: Any = None,
    echo: Callable[[str], None] = _quiet,
) -> PreparedDays:
    """``ingest_raw >> validate_raw`` for each day, then ``build_features`` of the days that
    made it, in one Spark job (``spark``: a session to reuse, else one for this call)."""
    from runway_mlops.stages.ingest import ingest
    from runway_mlops.stages.validate import validate

    days = list(days)
    failed: dict[dt.date, str] = {}
    for i, ds in enumerate(days, 1):
        try:
            ingest(settings, pipeline, ds, run_id=run_id(ds))
            validate(settings, pipeline, ds, run_id=run_id(ds))
        except RunwayError as exc:
            failed[ds] = one_line(exc)[:300]
        if i % 30 == 0 or i == len(days):
            echo(f"  {i}/{len(days)} days ingested and validated")
    outcome = build_features(
        settings,
        pipeline,
        [d for d in days if d not in failed],
        run_id=features_run_id,
        spark=spark,
    )
    outcome.failed = {**failed, **outcome.failed}
    return outcome


# ------------------------------------------------------------------ train and promote


@dataclasses.dataclass
class TrainOutcome:
    """Where a training chain ended: rejected by the gates, registered, or promoted."""

    context: RunContext
    window: TrainingWindow
    training_set: TrainingSet
    trained: list[TrainedCandidate]
    best: TrainedCandidate
    #: The gates' outcome (None when they rejected the candidate in ``enforce`` mode).
    evaluation: GateOutcome | None = None
    #: The gates' rejection, recorded with its decision (``evaluation`` is then None).
    rejection: GateRejectedError | None = None
    registered: Registered | None = None
    promoted: Promoted | None = None
    #: Why the registered version was not promoted (policy, backfill, not asked).
    not_promoted: str | None = None

    @property
    def decision(self) -> str:
        return "rejected" if self.rejection is not None else "passed"

    @property
    def summary(self) -> str:
        if self.rejection is not None:
            return str(self.rejection)
        assert self.evaluation is not None
        return self.evaluation.summary


def train_and_promote(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    window: TrainingWindow,
    context: RunContext,
    *,
    candidates: list[Candidate] | None = None,
    missing_partitions: str | None = None,
    gate_mode: str | None = None,
    register: bool = True,
    promote: bool = True,
    approved_by: str | None = None,
    on_training_set: Callable[[TrainingSet], None] | None = None,
    on_candidate: Callable[[TrainedCandidate], None] | None = None,
) -> TrainOutcome:
    """The training DAG's chain in one process (``candidates``: the pipeline's grid).

    A rejection by the gates and a refused promotion are outcomes, not errors; the gate
    decision is recorded either way. ``register=False`` stops after the gates (a
    reference evaluation); ``promote=False`` after registration (manual policy).
    """
    from runway_mlops.stages import train
    from runway_mlops.training.model import candidates as grid

    assert pipeline.training is not None
    training_set = train.prepare_training_set(
        settings, pipeline, window, missing_partitions=missing_partitions
    )
    if on_training_set:
        on_training_set(training_set)
    trained = []
    for candidate in candidates if candidates is not None else grid(pipeline.training):
        result = train.train_candidate(settings, pipeline, training_set.path, candidate, context)
        if on_candidate:
            on_candidate(result)
        trained.append(result)
    best = train.select_best(trained)
    outcome = TrainOutcome(context, window, training_set, trained, best)
    try:
        outcome.evaluation = train.evaluate_gates(settings, pipeline, best, context, mode=gate_mode)
    except GateRejectedError as exc:
        outcome.rejection = exc
        return outcome
    if not register:
        return outcome
    outcome.registered = train.register_challenger(settings, pipeline, outcome.evaluation, context)
    if not promote:
        outcome.not_promoted = "not asked to promote"
        return outcome
    try:
        outcome.promoted = train.promote_champion(
            settings, pipeline, outcome.registered, context, approved_by=approved_by
        )
    except PromotionRefusedError as exc:
        outcome.not_promoted = str(exc)
    return outcome


def retrain(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    ds: dt.date,
    request: dict[str, Any],
    *,
    run_type: str,
    tune: bool = True,
) -> TrainOutcome:
    """The retraining a monitoring decision asked for (``request``: its ``run_id``,
    ``window_days`` and ``reason``), window ending on the monitored day ``ds``; days the
    window cannot use are skipped and recorded."""
    from runway_mlops.stages.train import training_window
    from runway_mlops.training.model import candidates as grid

    assert pipeline.training is not None
    window = training_window(pipeline, end=ds, days=request.get("window_days"))
    context = RunContext(run_id=request["run_id"], run_type=run_type, reason=request["reason"])
    return train_and_promote(
        settings,
        pipeline,
        window,
        context,
        candidates=grid(pipeline.training, tune=tune),
        missing_partitions="skip",
    )
