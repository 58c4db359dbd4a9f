"""The training stages: data set, candidates, gates, registration and promotion.

Each function is one step of the ``<pipeline>_training`` DAG and of ``runway train``;
they hand each other references (a training-set folder, an MLflow run id, a model
version), never data::

    build_training_set >> train_candidate (one per grid point) >> select_best
        >> evaluate_gates >> register_challenger [>> approve_promotion] >> promote_champion

A gate decision is recorded (platform database and MLflow) before anything can block,
so a rejected model leaves its reasons behind. Promotion never happens from a backfill.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runway_mlops import catalog
from runway_mlops.errors import ConfigError, GateRejectedError, PromotionRefusedError
from runway_mlops.training import registry
from runway_mlops.training.dataset import TrainingSet, TrainingWindow, build_training_set
from runway_mlops.training.model import Candidate

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from runway_mlops.config import PipelineConfig, PlatformSettings

#: Requirements written into every logged model (no slow inference of requirements).
MODEL_REQUIREMENTS = ("lightgbm", "pandas", "numpy", "mlflow", "scikit-learn")


@dataclasses.dataclass(frozen=True)
class RunContext:
    """Where a training run comes from: recorded on everything it writes."""

    dag_id: str | None = None
    run_id: str | None = None
    run_type: str | None = None  # scheduled | manual | backfill | asset_triggered | cli
    reason: str | None = None


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


def train_candidate(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    training_set_path: str | Path,
    candidate: Candidate,
    context: RunContext,
) -> dict[str, Any]:
    """Train one candidate and log it to MLflow; return its run id, model URI and metrics."""
    import mlflow

    from runway_mlops.training.metrics import binary_metrics
    from runway_mlops.training.model import feature_spec, predict, train_booster

    training_set = TrainingSet.load(training_set_path)
    label = training_set.label
    train = training_set.frame("train")
    validation = training_set.frame("validation")
    spec = feature_spec(train, training_set.features, training_set.lineage["categorical"])
    started = time.perf_counter()
    booster, info = train_booster(train, validation, spec, label, candidate)
    train_seconds = time.perf_counter() - started
    valid_scores = predict(booster, validation, spec)
    valid_metrics = binary_metrics(validation[label].to_numpy(), valid_scores)

    client, experiment_id = registry.connect(settings, pipeline)
    tags = lineage_tags(training_set, context, settings)
    tags["runway.candidate"] = str(candidate.index)
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
            dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]
                frame,
                source=str(training_set.path / f"{split}.parquet"),
                name=f"{pipeline.name}-{split}-{training_set.window.key}",
                targets=label,
            )
            mlflow.log_input(dataset, context=split)
        with tempfile.TemporaryDirectory(prefix="runway-model-") as tmp:
            folder = Path(tmp)
            booster.save_model(str(folder / "booster.txt"), num_iteration=info["best_iteration"])
            (folder / "feature_spec.json").write_text(json.dumps(spec, indent=1))
            example = model_input(validation.head(5), spec)
            signature = model_signature(spec)
            model_info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(Path(__file__).parents[1] / "training" / "pyfunc_model.py"),
                artifacts={
                    "booster": str(folder / "booster.txt"),
                    "feature_spec": str(folder / "feature_spec.json"),
                },
                signature=signature,
                input_example=example,
                pip_requirements=_requirements(),
            )
            (folder / "lineage.json").write_text(
                json.dumps(training_set.lineage, indent=1, sort_keys=True)
            )
            mlflow.log_artifact(str(folder / "lineage.json"))
            mlflow.log_dict(
                monitoring_reference(pipeline, train, spec, valid_scores),
                MONITORING_REFERENCE,
            )
    return {
        "candidate": candidate.as_dict(),
        "mlflow_run_id": run.info.run_id,
        "model_uri": model_info.model_uri,
        "validation": valid_metrics,
        "best_iteration": info["best_iteration"],
        "training_set": str(training_set.path),
    }


#: The artifact with a model's drift reference (training distributions and scores).
MONITORING_REFERENCE = "monitoring_reference.json"


def monitoring_reference(
    pipeline: PipelineConfig, train: pd.DataFrame, spec: dict[str, Any], scores: np.ndarray
) -> dict[str, Any]:
    """What monitoring compares a scored day with: the training rows' feature distributions
    and the validation scores (see :mod:`runway_mlops.monitoring.psi`)."""
    from runway_mlops.monitoring.psi import build_reference

    bins = pipeline.monitoring.drift.bins if pipeline.monitoring else 10
    return build_reference(train, spec["features"], list(spec["categories"]), scores, bins=bins)


def model_signature(spec: dict[str, Any]) -> Any:
    """Input: every feature, optional (a feature may be missing); strings for categoricals
    and doubles for the rest. Output: the positive-class probability."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema(
        [
            ColSpec("string" if name in spec["categories"] else "double", name, required=False)
            for name in spec["features"]
        ]
    )
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec("double", "probability")]))


def model_input(frame: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """Feature rows as the registered model's signature takes them (numbers as doubles)."""
    import pandas as pd

    out = frame[spec["features"]].copy()
    for name in spec["features"]:
        if name not in spec["categories"]:
            out[name] = pd.to_numeric(out[name], errors="coerce").astype("float64")
        else:
            out[name] = out[name].astype("object").where(out[name].notna(), None)
    return out


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in MODEL_REQUIREMENTS]


def select_best(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The candidate with the best validation ROC AUC (lowest log loss, then index, on ties)."""
    if not results:
        raise ConfigError("no candidate was trained")

    def rank(r: dict[str, Any]) -> tuple[float, float, int]:
        v = r["validation"]
        return (-(v["roc_auc"] or 0.0), v["log_loss"], r["candidate"]["index"])

    best = min(results, key=rank)
    return {**best, "candidates": len(results)}


# ------------------------------------------------------------------------------ gates


def edge_rows(test: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """Rows a model must still score: every feature missing, and unseen categories."""
    import pandas as pd

    features = spec["features"]
    first = test[features].iloc[0].to_dict() if len(test) else dict.fromkeys(features)
    unseen = {c: ("__never_seen__" if c in spec["categories"] else first[c]) for c in features}
    extreme = {c: (unseen[c] if c in spec["categories"] else 1e12) for c in features}
    missing = dict.fromkeys(features)  # every feature missing
    return pd.DataFrame.from_records([unseen, extreme, missing], columns=features).astype(object)


def _latency_ms_per_1000(model: Any, test: pd.DataFrame, spec: dict[str, Any]) -> float:
    rows = model_input(test.head(1000), spec)
    rows = rows if len(rows) == 1000 else rows.sample(1000, replace=True, random_state=0)
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        model.predict(rows)
        timings.append((time.perf_counter() - started) * 1000)
    return float(statistics.median(timings))


def _model_mb(model_uri: str) -> float:
    import mlflow

    with tempfile.TemporaryDirectory(prefix="runway-size-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(model_uri, dst_path=tmp))
        return sum(f.stat().st_size for f in local.rglob("*") if f.is_file()) / 1e6


def _spec_of(model: Any) -> dict[str, Any]:
    return dict(model.unwrap_python_model().spec)


def evaluate_gates(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    best: dict[str, Any],
    context: RunContext,
    *,
    mode: str | None = None,
) -> dict[str, Any]:
    """Score challenger and champion on the test days, run the gates, record the decision.

    Raises :class:`GateRejectedError` after recording when the decision blocks.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from runway_mlops.training import gates
    from runway_mlops.training.plots import evaluation_plots

    mode = mode or pipeline.gates.mode
    if mode not in ("enforce", "dry_run"):
        raise ConfigError(f"unknown gate mode {mode!r}: expected 'enforce' or 'dry_run'")
    training_set = TrainingSet.load(best["training_set"])
    label = training_set.label
    test = training_set.frame("test")
    y = test[label].to_numpy()
    train_rate = training_set.lineage["positives"]["train"] / max(
        training_set.lineage["rows"]["train"], 1
    )

    client, _ = registry.connect(settings, pipeline)
    model = registry.load_model(best["model_uri"])
    spec = _spec_of(model)
    p_challenger = model.predict(model_input(test, spec))

    champion = registry.aliased(client, pipeline.model_name, registry.CHAMPION)
    p_champion: np.ndarray | None = None
    champion_error = None
    if champion is not None:
        try:
            champion_model = registry.load_model(
                f"models:/{pipeline.model_name}/{champion.version}"
            )
            p_champion = champion_model.predict(model_input(test, _spec_of(champion_model)))
        except (KeyError, ValueError, OSError, MlflowException) as exc:
            champion_error = str(exc)

    safety = gates.Safety(
        edge_scores=model.predict(model_input(edge_rows(test, spec), spec)),
        latency_ms_per_1000_rows=_latency_ms_per_1000(model, test, spec),
        model_mb=_model_mb(best["model_uri"]),
    )
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
    )
    baselines = single_feature_baselines(training_set, test)
    run_id = best["mlflow_run_id"]
    inputs = {
        "window": training_set.window.as_dict(),
        "rows": training_set.lineage["rows"],
        "feature_version": training_set.lineage["feature_version"],
        "skipped_days": training_set.lineage["skipped_days"],
        "champion_version": champion.version if champion else None,
        "champion_run_id": champion.run_id if champion else None,
        "candidate": best["candidate"],
        "candidates_trained": best.get("candidates", 1),
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
        mlflow.log_input(
            mlflow.data.from_pandas(  # type: ignore[attr-defined]
                test,
                source=str(training_set.path / "test.parquet"),
                name=f"{pipeline.name}-test-{training_set.window.key}",
                targets=label,
            ),
            context="test",
        )
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

    result = {
        **best,
        "decision_id": run_id,
        "decision": decision.decision,
        "blocking": decision.blocking,
        "mode": mode,
        "summary": decision.summary(),
        "test": decision.metrics["challenger"],
        "champion_version": champion.version if champion else None,
    }
    if decision.blocking:
        raise GateRejectedError(
            f"candidate {run_id} of {pipeline.name} {decision.summary()}; champion unchanged "
            f"(v{champion.version if champion else 'none'}). Decision: /runway/decisions/{run_id}"
        )
    return result


def single_feature_baselines(training_set: TrainingSet, test: pd.DataFrame) -> dict[str, Any]:
    """The best single numeric feature as a ranking score on the test days (a naive model)."""
    import pandas as pd

    from runway_mlops.training.metrics import roc_auc

    y = test[training_set.label].to_numpy()
    categorical = set(training_set.lineage["categorical"])
    best: dict[str, Any] = {"feature": None, "roc_auc": None}
    for column in training_set.features:
        if column in categorical:
            continue
        values = pd.to_numeric(test[column], errors="coerce")
        if values.isna().all():
            continue  # e.g. a 28-day window with no history yet
        auc = roc_auc(y, values.fillna(values.median()).to_numpy())
        if auc is None:
            continue
        auc = max(auc, 1 - auc)  # a feature may rank either way
        if best["roc_auc"] is None or auc > best["roc_auc"]:
            best = {"feature": column, "roc_auc": auc}
    return best


# ---------------------------------------------------------------- register and promote


def _description(evaluation: dict[str, Any]) -> str:
    decision = catalog_decision_line(evaluation)
    return (
        f"Gate decision {evaluation['decision_id']}: {decision}\n\n"
        f"Test ROC AUC {evaluation['test']['roc_auc']:.4f}, log loss "
        f"{evaluation['test']['log_loss']:.4f}. Full record: Airflow UI → Browse → Model gate "
        f"decisions, or runway_gate_decisions in the platform database."
    )


def catalog_decision_line(evaluation: dict[str, Any]) -> str:
    return f"{evaluation['decision']} ({evaluation['mode']}): {evaluation['summary']}"


def register_challenger(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    evaluation: dict[str, Any],
    context: RunContext,
) -> dict[str, Any]:
    """Register a candidate that passed (or was evaluated in dry run) as ``challenger``."""
    if evaluation["blocking"]:
        raise GateRejectedError(
            f"candidate {evaluation['mlflow_run_id']} was rejected: {evaluation['summary']}"
        )
    client, _ = registry.connect(settings, pipeline)
    run = client.get_run(evaluation["mlflow_run_id"])
    tags = {k: v for k, v in run.data.tags.items() if k.startswith("runway.")}
    tags["runway.gate.summary"] = registry.tag_value(catalog_decision_line(evaluation))
    version = registry.register(
        client,
        pipeline.model_name,
        evaluation["model_uri"],
        evaluation["mlflow_run_id"],
        tags=tags,
        description=_description(evaluation),
    )
    client.set_registered_model_alias(pipeline.model_name, registry.CHALLENGER, version)
    catalog.set_decision_version(settings.database_url, evaluation["decision_id"], version)
    for event, reason in (
        ("registered", f"gates {evaluation['decision']} ({evaluation['mode']})"),
        ("challenger", "latest model to pass its gates"),
    ):
        catalog.record_model_event(
            settings.database_url,
            catalog.ModelEvent(
                pipeline=pipeline.name,
                model_name=pipeline.model_name,
                model_version=version,
                event=event,
                actor=f"dag:{context.dag_id}" if context.dag_id else (context.run_type or "cli"),
                reason=reason,
                details={"decision_id": evaluation["decision_id"], "test": evaluation["test"]},
                dag_id=context.dag_id,
                run_id=context.run_id,
            ),
        )
    return {**evaluation, "model_version": version}


def promote_champion(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    registered: dict[str, Any],
    context: RunContext,
    *,
    approved_by: str | None = None,
) -> dict[str, Any]:
    """Move ``champion`` to the registered version; refuse from a backfill.

    ``approved_by`` names the person who approved (manual policy) and is recorded.
    """
    version = str(registered["model_version"])
    base_event: dict[str, Any] = {
        "pipeline": pipeline.name,
        "model_name": pipeline.model_name,
        "model_version": version,
        "dag_id": context.dag_id,
        "run_id": context.run_id,
    }
    if context.run_type == "backfill":
        reason = (
            "promotion is never done from a backfill: a model trained on past dates stays "
            "challenger; promote it with a manual run or `runway promote`"
        )
        catalog.record_model_event(
            settings.database_url,
            catalog.ModelEvent(
                event="promotion_refused", actor="policy", reason=reason, details={}, **base_event
            ),
        )
        raise PromotionRefusedError(reason)
    if (
        pipeline.promotion.policy == "manual"
        and approved_by is None
        and context.run_type != "cli-manual"
    ):
        raise PromotionRefusedError(
            f"{pipeline.name} promotes by manual approval: approve the run's approve_promotion "
            f"task in the Airflow UI, or run `runway promote --pipeline {pipeline.name} --version {version}`"
        )
    client, _ = registry.connect(settings, pipeline)
    if (
        pipeline.promotion.policy == "shadow"
        and approved_by is None
        and context.run_type not in ("cli-manual", "shadow")
        and registry.aliased(client, pipeline.model_name, registry.CHAMPION) is not None
    ):
        reason = (
            f"{pipeline.name} promotes in shadow: v{version} stays challenger, is scored beside "
            "the champion, and the monitoring pipeline promotes it once it wins there "
            f"(monitoring.policies.shadow_promotion); or `runway promote --pipeline "
            f"{pipeline.name} --version {version}`"
        )
        catalog.record_model_event(
            settings.database_url,
            catalog.ModelEvent(
                event="in_shadow", actor="policy:shadow", reason=reason, details={}, **base_event
            ),
        )
        raise PromotionRefusedError(reason)
    registry.require_version(client, pipeline.model_name, version)
    previous = registry.promote(client, pipeline.model_name, version)
    if approved_by:
        actor = approved_by
    elif context.run_type == "shadow":
        actor = "policy:shadow"
    else:
        actor = "policy:auto" if context.run_type != "cli-manual" else "cli"
    client.set_model_version_tag(pipeline.model_name, version, "runway.promoted_by", actor)
    if previous:
        client.set_model_version_tag(
            pipeline.model_name, version, "runway.previous_champion", previous
        )
    starts = _effective_from(settings, pipeline, client, version)
    catalog.record_model_event(
        settings.database_url,
        catalog.ModelEvent(
            event="promoted",
            actor=actor,
            reason=(
                f"approved by {approved_by}"
                if approved_by
                else (context.reason or f"promotion policy {pipeline.promotion.policy}")
            )
            + (f"; previous champion v{previous}" if previous else "; first champion")
            + (f"; serves from {starts}" if starts else ""),
            details={
                "previous_champion": previous,
                "decision_id": registered.get("decision_id"),
                "effective_from": starts.isoformat() if starts else None,
            },
            **base_event,
        ),
    )
    return {
        **registered,
        "champion": version,
        "previous_champion": previous,
        "promoted_by": actor,
        "effective_from": starts.isoformat() if starts else None,
    }


def _effective_from(
    settings: PlatformSettings, pipeline: PipelineConfig, client: Any, version: str
) -> dt.date | None:
    """The first day ``version`` serves as champion (see :mod:`runway_mlops.inference.models`)."""
    from runway_mlops.inference import models

    tags = dict(client.get_model_version(pipeline.model_name, version).tags or {})
    return models.effective_from(settings, pipeline, models.trained_until(tags))
