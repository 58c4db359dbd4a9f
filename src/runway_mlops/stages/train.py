"""The training stage: data set, candidates, gates, registration and promotion.

Each function is one step of the ``<pipeline>_training`` DAG and of ``runway train`` (the
chain is :func:`runway_mlops.flows.train_and_promote`); they hand each other typed results
(:class:`TrainedCandidate` → :class:`GateOutcome` → :class:`Registered` →
:class:`Promoted`) that hold references (a training-set folder, an MLflow run id, a model
version), never data::

    build_training_set >> train_candidate (one per grid point) >> select_best
        >> evaluate_gates >> register_challenger [>> approve_promotion] >> promote_champion

A gate decision is recorded (platform database and MLflow) before anything can block,
so a rejected model leaves its reasons behind. Promotion never happens from a backfill.
What a model is made of is :mod:`runway_mlops.training.packaging`; what the gates measure
besides quality, :mod:`runway_mlops.training.checks`; champion moves,
:mod:`runway_mlops.training.champion`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runway_mlops import catalog
from runway_mlops.context import RunContext, RunType
from runway_mlops.errors import ConfigError, GateRejectedError
from runway_mlops.training import champion as champions
from runway_mlops.training import packaging, registry
from runway_mlops.training.checks import edge_rows, single_feature_baselines
from runway_mlops.training.dataset import (
    TrainingSet,
    TrainingWindow,
    build_training_set,
    mlflow_dataset,
)
from runway_mlops.training.model import Candidate
from runway_mlops.training.packaging import (
    MODEL_REQUIREMENTS,
    MONITORING_REFERENCE,
    model_input,
    model_signature,
    monitoring_reference,
    spec_of,
)

if TYPE_CHECKING:
    import numpy as np

    from runway_mlops.config import PipelineConfig, PlatformSettings

__all__ = [
    "MODEL_REQUIREMENTS",
    "MONITORING_REFERENCE",
    "GateOutcome",
    "Promoted",
    "Registered",
    "RunContext",
    "RunType",
    "TrainedCandidate",
    "edge_rows",
    "evaluate_gates",
    "model_input",
    "model_signature",
    "monitoring_reference",
    "prepare_training_set",
    "promote_champion",
    "register_challenger",
    "select_best",
    "single_feature_baselines",
    "train_candidate",
    "training_window",
]


def training_window(
    pipeline: PipelineConfig,
    *,
    end: dt.date | None = None,
    days: int | None = None,
    validation_days: int | None = None,
    test_days: int | None = None,
    reference: bool = False,
) -> TrainingWindow:
    """The window of a run: the pipeline's reference split, or ``days`` up to ``end``."""
    training = _training(pipeline)
    if reference:
        ref = training.reference
        if ref is None:
            raise ConfigError(f"pipeline {pipeline.name!r} has no training.reference block")
        validation_from = ref.test_from - dt.timedelta(days=ref.validation_days)
        return TrainingWindow(ref.train_from, validation_from, ref.test_from, ref.test_to)
    if end is None:
        raise ConfigError("a training window needs its last day (window_end)")
    changes = {
        k: v
        for k, v in {
            "days": days,
            "validation_days": validation_days,
            "test_days": test_days,
        }.items()
        if v is not None
    }
    config = training.window.model_copy(update=changes)
    if config.validation_days < 1 or config.test_days < 1:
        raise ConfigError("validation_days and test_days must be 1 or more")
    if config.validation_days + config.test_days >= config.days:
        raise ConfigError(
            f"window_days {config.days} leaves no training days after "
            f"{config.validation_days} validation and {config.test_days} test days"
        )
    return TrainingWindow.ending(end, config)


def _training(pipeline: PipelineConfig) -> Any:
    if pipeline.training is None or pipeline.label is None:
        raise ConfigError(f"pipeline {pipeline.name!r} has no 'training' and 'label' blocks")
    return pipeline.training


def prepare_training_set(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    window: TrainingWindow,
    *,
    missing_partitions: str | None = None,
) -> TrainingSet:
    """Build the window's training set (``missing_partitions`` overrides the config)."""
    return build_training_set(settings, pipeline, window, missing_partitions=missing_partitions)


def _compact_days(days: list[str]) -> str:
    """``2013-01-01..2013-01-05,2013-01-07`` — consecutive days as ranges."""
    if not days:
        return ""
    parsed = sorted(dt.date.fromisoformat(d) for d in days)
    ranges, first, last = [], parsed[0], parsed[0]
    for day in parsed[1:]:
        if day == last + dt.timedelta(days=1):
            last = day
            continue
        ranges.append((first, last))
        first = last = day
    ranges.append((first, last))
    return ",".join(f"{a}" if a == b else f"{a}..{b}" for a, b in ranges)


def lineage_tags(
    training_set: TrainingSet, context: RunContext, settings: PlatformSettings
) -> dict[str, str]:
    """The lineage of a model as MLflow tags (the full record is the lineage.json artifact)."""
    lineage = training_set.lineage
    partitions = lineage["partitions"]
    validation_ids = sorted(
        {f"{p['ds']}:{ds}:{vid}" for p in partitions for ds, vid in p["validation_ids"].items()}
    )
    window = training_set.window
    return {
        "runway.pipeline": str(lineage["pipeline"]),
        "runway.feature_version": str(lineage["feature_version"]),
        "runway.data_window": f"{window.start}..{window.end}",
        "runway.split": (
            f"train {window.start}..{window.validation_from - dt.timedelta(days=1)}; "
            f"validation {window.validation_from}..{window.test_from - dt.timedelta(days=1)}; "
            f"test {window.test_from}..{window.end}"
        ),
        "runway.partitions": registry.tag_value(
            _compact_days([p["ds"] for p in partitions]), note="lineage.json"
        ),
        "runway.partitions_root": str(Path(partitions[0]["features"]).parent),
        "runway.skipped_days": registry.tag_value(
            json.dumps(lineage["skipped_days"], sort_keys=True), note="lineage.json"
        ),
        "runway.validation_ids": registry.tag_value(",".join(validation_ids), note="lineage.json"),
        "runway.training_set": str(training_set.path),
        "runway.airflow_dag_id": context.dag_id or "",
        "runway.airflow_run_id": context.run_id or "",
        "runway.airflow_run_type": context.run_type or "",
        "runway.git_commit": registry.git_commit(settings.project_root),
    }


# ----------------------------------------------------------------- typed results


class _Step:
    """A training step's result: typed, handed to the next step as is, or through XCom as
    :meth:`to_xcom` (plain JSON) and back with :meth:`from_xcom`. ``result["field"]``
    reads a field, as the dicts these steps used to return did."""

    def fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def __getitem__(self, name: str) -> Any:
        if name not in {f.name for f in dataclasses.fields(self)}:  # type: ignore[arg-type]
            raise KeyError(name)
        value = getattr(self, name)
        return value.as_dict() if isinstance(value, Candidate) else value

    def to_xcom(self) -> dict[str, Any]:
        return {name: self[name] for name in self.fields()}

    @classmethod
    def from_xcom(cls, data: dict[str, Any]) -> Any:
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        values = {k: v for k, v in data.items() if k in known}
        values["candidate"] = Candidate.from_dict(values["candidate"])
        return cls(**values)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainedCandidate(_Step):
    """One trained and logged candidate (``train_candidate``; ``select_best`` sets
    ``candidates`` to how many it chose from)."""

    candidate: Candidate
    mlflow_run_id: str
    model_uri: str
    validation: dict[str, Any]
    best_iteration: int
    training_set: str
    candidates: int = 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class GateOutcome(TrainedCandidate):
    """The gates' decision on a candidate (``evaluate_gates``), recorded before it returns."""

    decision_id: str
    decision: str
    blocking: bool
    mode: str
    summary: str
    test: dict[str, Any]
    champion_version: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Registered(GateOutcome):
    """A candidate registered as ``challenger`` (``register_challenger``)."""

    model_version: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class Promoted(Registered):
    """The registered version made champion (``promote_champion``)."""

    champion: str
    previous_champion: str | None
    promoted_by: str
    effective_from: str | None


# ---------------------------------------------------------------------------- steps


def train_candidate(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    training_set_path: str | Path,
    candidate: Candidate,
    context: RunContext,
) -> TrainedCandidate:
    """Train one candidate and log it to MLflow; return its run id, model URI and metrics."""
    import mlflow

    from runway_mlops.training.metrics import binary_metrics, cost_threshold
    from runway_mlops.training.model import feature_spec, fit_calibration, predict, train_booster

    training_set = TrainingSet.load(training_set_path)
    label = training_set.label
    train = training_set.frame("train")
    validation = training_set.frame("validation")
    spec = feature_spec(train, training_set.features, training_set.lineage["categorical"])
    started = time.perf_counter()
    booster, info = train_booster(train, validation, spec, label, candidate)
    train_seconds = time.perf_counter() - started
    if pipeline.training is not None and pipeline.training.calibration == "platt":
        calibration = fit_calibration(
            validation[label].to_numpy(), predict(booster, validation, spec)
        )
        if calibration is not None:
            spec["calibration"] = calibration
    valid_scores = predict(booster, validation, spec)
    valid_metrics = binary_metrics(validation[label].to_numpy(), valid_scores)
    threshold_tags: dict[str, str] = {}
    costs = pipeline.inference.costs if pipeline.inference is not None else None
    if costs is not None:
        threshold, per_row = cost_threshold(
            validation[label].to_numpy(), valid_scores, costs.false_positive, costs.false_negative
        )
        threshold_tags["runway.decision_threshold"] = repr(threshold)
        valid_metrics["decision_cost_per_row"] = per_row

    client, experiment_id = registry.connect(settings, pipeline)
    tags = lineage_tags(training_set, context, settings)
    tags["runway.candidate"] = str(candidate.index)
    tags.update(threshold_tags)
    run_name = f"{pipeline.name}-{training_set.window.end}-c{candidate.index}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
        mlflow.log_params(
            {
                **{
                    k: (json.dumps(v) if isinstance(v, list) else v)
                    for k, v in candidate.params.items()
                },
                "num_boost_round": candidate.num_boost_round,
                "early_stopping_rounds": candidate.early_stopping_rounds,
                "best_iteration": info["best_iteration"],
                "features": len(spec["features"]),
            }
        )
        mlflow.log_metrics(
            {f"validation_{k}": v for k, v in valid_metrics.items() if v is not None}
            | {"train_seconds": train_seconds, "train_rows": float(len(train))}
        )
        for split, frame in (("train", train), ("validation", validation)):
            dataset = mlflow_dataset(training_set, pipeline.name, split, frame)
            mlflow.log_input(dataset, context=split)
        model_info = packaging.log_model(
            pipeline, training_set, booster, info["best_iteration"], spec, validation, valid_scores
        )
    return TrainedCandidate(
        candidate=candidate,
        mlflow_run_id=run.info.run_id,
        model_uri=model_info.model_uri,
        validation=valid_metrics,
        best_iteration=info["best_iteration"],
        training_set=str(training_set.path),
    )


def select_best(results: list[TrainedCandidate]) -> TrainedCandidate:
    """The candidate with the best validation ROC AUC (lowest log loss, then index, on ties)."""
    if not results:
        raise ConfigError("no candidate was trained")

    def rank(r: TrainedCandidate) -> tuple[float, float, int]:
        v = r.validation
        return (-(v["roc_auc"] or 0.0), v["log_loss"], r.candidate.index)

    best = min(results, key=rank)
    return dataclasses.replace(best, candidates=len(results))


def evaluate_gates(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    best: TrainedCandidate,
    context: RunContext,
    *,
    mode: str | None = None,
) -> GateOutcome:
    """Score challenger and champion on the test days, run the gates, record the decision.

    Raises :class:`GateRejectedError` after recording when the decision blocks.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from runway_mlops.training import checks, gates
    from runway_mlops.training.plots import evaluation_plots

    mode = mode or pipeline.gates.mode
    if mode not in ("enforce", "dry_run"):
        raise ConfigError(f"unknown gate mode {mode!r}: expected 'enforce' or 'dry_run'")
    training_set = TrainingSet.load(best.training_set)
    label = training_set.label
    test = training_set.frame("test")
    train = training_set.frame("train")
    y = test[label].to_numpy()
    train_rate = training_set.lineage["positives"]["train"] / max(
        training_set.lineage["rows"]["train"], 1
    )

    client, _ = registry.connect(settings, pipeline)
    model = registry.load_model(best.model_uri)
    spec = spec_of(model)
    p_challenger = model.predict(model_input(test, spec))

    champion = registry.aliased(client, pipeline.model_name, registry.CHAMPION)
    p_champion: np.ndarray | None = None
    champion_error = None
    if champion is not None:
        try:
            champion_model = registry.load_model(
                f"models:/{pipeline.model_name}/{champion.version}"
            )
            p_champion = champion_model.predict(model_input(test, spec_of(champion_model)))
        except (KeyError, ValueError, OSError, MlflowException) as exc:
            champion_error = str(exc)

    safety = checks.safety(model, test, spec, best.model_uri)
    decision = gates.evaluate(
        pipeline.gates,
        mode=mode,
        test=test,
        y=y,
        p_challenger=p_challenger,
        train_positive_rate=train_rate,
        safety=safety,
        p_champion=p_champion,
        champion_version=champion.version if champion else None,
        champion_error=champion_error,
        train=train,
        y_train=train[label].to_numpy(),
        features=training_set.features,
        categorical=training_set.lineage["categorical"],
    )
    baselines = checks.single_feature_baselines(training_set, test)
    run_id = best.mlflow_run_id
    inputs = {
        "window": training_set.window.as_dict(),
        "rows": training_set.lineage["rows"],
        "feature_version": training_set.lineage["feature_version"],
        "skipped_days": training_set.lineage["skipped_days"],
        "champion_version": champion.version if champion else None,
        "champion_run_id": champion.run_id if champion else None,
        "candidate": best.candidate.as_dict(),
        "candidates_trained": best.candidates,
        "metrics": decision.metrics,
        "best_single_feature": baselines,
        "reason": context.reason,
        "gates": pipeline.gates.model_dump(mode="json"),
    }
    record = catalog.GateDecisionRecord(
        decision_id=run_id,
        pipeline=pipeline.name,
        model_name=pipeline.model_name,
        model_version=None,
        mlflow_run_id=run_id,
        mode=mode,
        decision=decision.decision,
        blocking=decision.blocking,
        checks=[c.as_dict() for c in decision.checks],
        inputs=inputs,
        dag_id=context.dag_id,
        run_id=context.run_id,
    )
    catalog.record_gate_decision(settings.database_url, record)

    with mlflow.start_run(run_id=run_id):
        for who, values in decision.metrics.items():
            mlflow.log_metrics({f"test_{who}_{k}": v for k, v in values.items() if v is not None})
        mlflow.log_input(mlflow_dataset(training_set, pipeline.name, "test", test), context="test")
        mlflow.set_tags(
            {
                "runway.gate.decision": decision.decision,
                "runway.gate.mode": mode,
                "runway.gate.summary": registry.tag_value(decision.summary()),
                "runway.gate.decision_id": run_id,
                "runway.gate.champion_version": champion.version if champion else "none",
            }
        )
        mlflow.log_dict(
            {
                "decision": decision.decision,
                "mode": mode,
                "checks": record.checks,
                "inputs": inputs,
            },
            "gate_decision.json",
        )
        with tempfile.TemporaryDirectory(prefix="runway-plots-") as tmp:
            scores = {"challenger": p_challenger}
            if p_champion is not None:
                scores[f"champion v{champion.version}"] = p_champion  # type: ignore[union-attr]
            booster = model.unwrap_python_model().booster
            for path in evaluation_plots(Path(tmp), y, scores, booster):
                mlflow.log_artifact(str(path), artifact_path="plots")

    result = GateOutcome(
        **best.fields(),
        decision_id=run_id,
        decision=decision.decision,
        blocking=decision.blocking,
        mode=mode,
        summary=decision.summary(),
        test=decision.metrics["challenger"],
        champion_version=champion.version if champion else None,
    )
    if decision.blocking:
        raise GateRejectedError(
            f"candidate {run_id} of {pipeline.name} {decision.summary()}; champion unchanged "
            f"(v{champion.version if champion else 'none'}). Decision: /runway/decisions/{run_id}"
        )
    return result


def _description(evaluation: GateOutcome) -> str:
    decision = catalog_decision_line(evaluation)
    return (
        f"Gate decision {evaluation.decision_id}: {decision}\n\n"
        f"Test ROC AUC {evaluation.test['roc_auc']:.4f}, log loss "
        f"{evaluation.test['log_loss']:.4f}. Full record: Airflow UI → Browse → Model gate "
        f"decisions, or runway_gate_decisions in the platform database."
    )


def catalog_decision_line(evaluation: GateOutcome) -> str:
    return f"{evaluation.decision} ({evaluation.mode}): {evaluation.summary}"


def register_challenger(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    evaluation: GateOutcome,
    context: RunContext,
) -> Registered:
    """Register a candidate that passed (or was evaluated in dry run) as ``challenger``."""
    if evaluation.blocking:
        raise GateRejectedError(
            f"candidate {evaluation.mlflow_run_id} was rejected: {evaluation.summary}"
        )
    client, _ = registry.connect(settings, pipeline)
    run = client.get_run(evaluation.mlflow_run_id)
    tags = {k: v for k, v in run.data.tags.items() if k.startswith("runway.")}
    tags["runway.gate.summary"] = registry.tag_value(catalog_decision_line(evaluation))
    version = registry.register(
        client,
        pipeline.model_name,
        evaluation.model_uri,
        evaluation.mlflow_run_id,
        tags=tags,
        description=_description(evaluation),
    )
    client.set_registered_model_alias(pipeline.model_name, registry.CHALLENGER, version)
    catalog.set_decision_version(settings.database_url, evaluation.decision_id, version)
    actor = f"dag:{context.dag_id}" if context.dag_id else (context.run_type or "cli")
    for event, reason in (
        ("registered", f"gates {evaluation.decision} ({evaluation.mode})"),
        ("challenger", "latest model to pass its gates"),
    ):
        champions.record_event(
            settings,
            pipeline,
            version,
            event,
            actor=actor,
            reason=reason,
            context=context,
            details={"decision_id": evaluation.decision_id, "test": evaluation.test},
        )
    return Registered(**evaluation.fields(), model_version=version)


def promote_champion(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    registered: Registered,
    context: RunContext,
    *,
    approved_by: str | None = None,
) -> Promoted:
    """Move ``champion`` to the registered version (:func:`runway_mlops.training.champion.promote`:
    refused from a backfill, and without approval where the policy asks for one).

    ``approved_by`` names the person who approved (manual policy) and is recorded.
    """
    promotion = champions.promote(
        settings,
        pipeline,
        registered.model_version,
        context,
        approved_by=approved_by,
        decision_id=registered.decision_id,
    )
    return Promoted(**registered.fields(), **dataclasses.asdict(promotion))
