"""The monitoring stage: realised quality and drift of a scored day, then the policies.

Each function is one task of the ``<pipeline>_monitoring`` DAG (and ``runway run
monitor``)::

    wait_for_outcomes >> compute_monitoring >> decide_policies >> write_report
                                               decide_policies >> should_retrain >> trigger_retraining

A run of interval X monitors day ``X - monitoring.outcome_delay_days`` (the day whose
outcomes are known by the end of X: flights land within 12 hours).

* :func:`compute_monitoring` joins the day's predictions (champion and shadow) with the
  outcomes known by the end of the run's interval and records, per model version, the
  realised metrics overall and per slice, the PSI of its score against its training
  reference, and — for the champion — the PSI of every watched feature.
* :func:`decide_policies` evaluates rollback, shadow promotion and retraining
  (:mod:`runway_mlops.monitoring.policies`), records every decision with its figures,
  and acts: puts the previous champion back, promotes a challenger that won in shadow,
  or hands a retraining trigger (window end, reason) to the caller. A backfill run
  records what it would decide but never acts. A decision already acted on is returned
  as recorded, so a rerun never acts twice.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runway_mlops.context import RunContext
from runway_mlops.errors import ConfigError, MissingPartitionError
from runway_mlops.lake import Lake, open_lake
from runway_mlops.monitoring import policies, psi
from runway_mlops.monitoring import store as mstore
from runway_mlops.training import champion as champions
from runway_mlops.training import registry

if TYPE_CHECKING:
    import pandas as pd

    from runway_mlops.config import MonitoringConfig, PipelineConfig, PlatformSettings

#: Quality metrics recorded per model version and day (besides ``rows``).
QUALITY = mstore.QUALITY


#: A monitoring run's provenance is the one run context (policies act when it ``acts``).
MonitorContext = RunContext


def _monitoring(pipeline: PipelineConfig) -> MonitoringConfig:
    if pipeline.monitoring is None or pipeline.label is None:
        raise ConfigError(f"pipeline {pipeline.name!r} has no 'monitoring' block")
    return pipeline.monitoring


def monitored_day(pipeline: PipelineConfig, interval_day: dt.date) -> dt.date:
    """The day a run of interval ``interval_day`` monitors."""
    return interval_day - dt.timedelta(days=_monitoring(pipeline).outcome_delay_days)


def outcome_horizon(pipeline: PipelineConfig, ds: dt.date) -> dt.datetime:
    """Outcomes known before this instant count: the end of the monitoring run's interval."""
    delay = _monitoring(pipeline).outcome_delay_days
    return dt.datetime.combine(ds + dt.timedelta(days=delay + 1), dt.time(), tzinfo=pipeline.zone)


def missing_inputs(settings: PlatformSettings, pipeline: PipelineConfig, ds: dt.date) -> list[str]:
    """What the monitoring of ``ds`` still waits for (empty when it can run)."""
    lake = open_lake(settings)
    wanted = [
        ("predictions", "champion", "champion predictions"),
        ("predictions", "shadow", "shadow predictions"),
        ("labels", pipeline.features.entity, "outcomes (labels)"),
        ("features", pipeline.features.entity, "features"),
    ]
    return [
        what for zone, dataset, what in wanted if not lake.exists(zone, pipeline.name, dataset, ds)
    ]


_references: dict[tuple[str, str, str], dict[str, Any] | None] = {}
_references_lock = threading.Lock()


def load_reference(
    settings: PlatformSettings, pipeline: PipelineConfig, version: str
) -> dict[str, Any] | None:
    """A model version's drift reference (None if it was trained without one)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from runway_mlops.training.packaging import MONITORING_REFERENCE

    key = (settings.mlflow_tracking_uri, pipeline.model_name, version)
    with _references_lock:
        if key not in _references:
            client, _ = registry.connect(settings, pipeline)
            run_id = client.get_model_version(pipeline.model_name, version).run_id
            try:
                _references[key] = mlflow.artifacts.load_dict(
                    f"runs:/{run_id}/{MONITORING_REFERENCE}"
                )
            except (MlflowException, OSError):
                _references[key] = None
        return _references[key]


@dataclass
class MonitoringResult:
    ds: dt.date
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    drift_alerts: list[str] = field(default_factory=list)
    rows_outcome_unknown: int = 0
    values: int = 0

    def summary(self) -> str:
        parts = []
        for version, info in self.versions.items():
            auc = info["metrics"].get("roc_auc")
            shown = "n/a" if auc is None else f"{auc:.4f}"
            parts.append(f"v{version} ({info['role']}) ROC AUC {shown} on {info['rows']:,} rows")
        drift = f"; drift alerts: {', '.join(self.drift_alerts)}" if self.drift_alerts else ""
        return f"monitored {self.ds}: " + "; ".join(parts) + drift


def _read_predictions(lake: Lake, pipeline: PipelineConfig, ds: dt.date) -> pd.DataFrame:
    import pandas as pd

    if not lake.exists("predictions", pipeline.name, "champion", ds):
        raise MissingPartitionError(
            f"no champion predictions of {pipeline.name} for {ds}: run the "
            f"{pipeline.name}_inference DAG (or `runway run score`) for that day first"
        )
    frames = [lake.read_frame("predictions", pipeline.name, "champion", ds)]
    if lake.exists("predictions", pipeline.name, "shadow", ds):
        shadow = lake.read_frame("predictions", pipeline.name, "shadow", ds)
        if len(shadow):
            frames.append(shadow)
    return pd.concat(frames, ignore_index=True)


def _drift_limits(
    settings: PlatformSettings, pipeline: PipelineConfig, champion: str | None
) -> dict[str, float]:
    """Per watched name, the PSI the champion's own validation days reached, times the
    margin (``inf`` for a day-level feature): what a drift breach must exceed."""
    drift = _monitoring(pipeline).drift
    reference = load_reference(settings, pipeline, champion) if champion else None
    if reference is None:
        return {}
    return {
        name: psi.limits(reference, name, 0.0, 0.0, drift.calibration_margin)[1]
        for name in [psi.SCORE, *reference["features"]]
    }


def _pooled_days(
    lake: Lake,
    pipeline: PipelineConfig,
    ds: dt.date,
    days: int,
    features: pd.DataFrame,
    predictions: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``ds``'s features and predictions with those of up to ``days - 1`` days before it
    (the days that have them), for drift over a week."""
    import pandas as pd

    entity = pipeline.features.entity
    feature_frames, prediction_frames = [features], [predictions]
    for back in range(1, days):
        day = ds - dt.timedelta(days=back)
        if not (
            lake.exists("features", pipeline.name, entity, day)
            and lake.exists("predictions", pipeline.name, "champion", day)
        ):
            continue
        feature_frames.append(lake.read_frame("features", pipeline.name, entity, day))
        prediction_frames.append(_read_predictions(lake, pipeline, day))
    return pd.concat(feature_frames, ignore_index=True), pd.concat(
        prediction_frames, ignore_index=True
    )


def compute_monitoring(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    ds: dt.date,
    context: MonitorContext,
) -> MonitoringResult:
    """Realised quality per model version and slice, and drift, of the scored day ``ds``."""
    import numpy as np
    import pandas as pd

    from runway_mlops.training.metrics import binary_metrics, roc_auc

    monitoring = _monitoring(pipeline)
    assert pipeline.label is not None
    lake = open_lake(settings)
    entity = pipeline.features.entity
    key = pipeline.datasets[entity].key
    label = pipeline.label.name

    predictions = _read_predictions(lake, pipeline, ds)
    labels = lake.read_frame("labels", pipeline.name, entity, ds)
    features = lake.read_frame("features", pipeline.name, entity, ds)
    known = pd.to_datetime(labels["outcome_known_at"], utc=True) < outcome_horizon(pipeline, ds)
    result = MonitoringResult(ds, rows_outcome_unknown=int((~known).sum()))
    labels = labels.loc[known, [*key, label]]

    extra = [c for c in monitoring.slices if c not in predictions.columns]
    unknown = [c for c in extra if c not in features.columns]
    if unknown:
        raise ConfigError(
            f"monitoring.slices of {pipeline.name} names {unknown}, which are not feature or key "
            f"columns (features: {', '.join(c for c in features.columns if c not in key)})"
        )
    joined = predictions.merge(labels, on=key, how="inner", validate="many_to_one")
    if extra:
        joined = joined.merge(features[[*key, *extra]], on=key, how="left", validate="many_to_one")

    rows: list[mstore.MetricRow] = []

    def add(
        version: str,
        role: str,
        alias: str,
        kind: str,
        name: str,
        metric: str,
        value: Any,
        n: int,
        status: str = "",
    ) -> None:
        number = None if value is None or not np.isfinite(value) else float(value)
        rows.append(
            mstore.MetricRow(ds, version, role, alias, kind, name, metric, number, n, status)
        )

    drift = monitoring.drift
    week_features, week_predictions = _pooled_days(
        lake, pipeline, ds, drift.pooled_days, features, predictions
    )

    def judge(reference: dict[str, Any], column: str, value: float | None) -> str:
        return psi.judge(
            reference, column, value, drift.psi_warn, drift.psi_alert, drift.calibration_margin
        )

    for version, scored in predictions.groupby("model_version", sort=True):
        version = str(version)
        role, alias = str(scored["role"].iloc[0]), str(scored["alias"].iloc[0])
        group = joined[joined["model_version"] == version]
        y = group[label].to_numpy()
        p = group["score"].to_numpy(dtype="float64")
        metrics = binary_metrics(y, p) if len(group) else {}
        metrics["mean_score"] = float(p.mean()) if len(p) else None
        for name in QUALITY:
            add(version, role, alias, "quality", "overall", name, metrics.get(name), len(group))
        add(
            version,
            role,
            alias,
            "quality",
            "overall",
            "scored_rows",
            float(len(scored)),
            len(scored),
        )
        for column in monitoring.slices:
            values = group[column].astype("string").fillna("<missing>")
            for value, part in group.groupby(values, sort=True):
                if len(part) < monitoring.min_slice_rows:
                    continue
                auc = roc_auc(part[label].to_numpy(), part["score"].to_numpy(dtype="float64"))
                add(version, role, alias, "slice", f"{column}={value}", "roc_auc", auc, len(part))
        reference = load_reference(settings, pipeline, version)
        if reference is not None:
            week = week_predictions.loc[week_predictions["model_version"] == version, "score"]
            value = psi.psi(reference[psi.SCORE], week.to_numpy(dtype="float64"))
            status = judge(reference, psi.SCORE, value)
            add(version, role, alias, "drift", psi.SCORE, "psi", value, len(week), status)
            if status == "alert":
                result.drift_alerts.append(f"v{version} score PSI {value:.3f}")
            if role == "champion":
                watched = drift.features or sorted(reference["features"])
                for column in watched:
                    if column not in reference["features"] or column not in features.columns:
                        continue
                    value = psi.psi(reference["features"][column], week_features[column])
                    status = judge(reference, column, value)
                    rows_seen = len(week_features)
                    add(version, role, alias, "drift", column, "psi", value, rows_seen, status)
                    if status == "alert":
                        result.drift_alerts.append(f"{column} PSI {value:.3f}")
        result.versions[version] = {
            "role": role,
            "alias": alias,
            "rows": len(group),
            "metrics": {k: metrics.get(k) for k in QUALITY},
        }
    result.values = mstore.replace_day(
        settings.database_url, pipeline.name, ds, rows, dag_id=context.dag_id, run_id=context.run_id
    )
    return result


# ---------------------------------------------------------------------------- policies


def _series(
    rows: list[mstore.MetricRow], version: str, role: str | None = None
) -> dict[dt.date, mstore.MetricRow]:
    return {
        r.ds: r for r in rows if r.model_version == version and (role is None or r.role == role)
    }


def _pairs(
    ours: dict[dt.date, mstore.MetricRow], theirs: dict[dt.date, mstore.MetricRow]
) -> list[policies.DayPair]:
    return [
        policies.DayPair(
            day, ours[day].value, theirs[day].value, min(ours[day].rows, theirs[day].rows)
        )
        for day in sorted(set(ours) & set(theirs))
    ]


@dataclass
class PolicyOutcome:
    """The decisions of one monitored day, and the retraining to trigger, if any."""

    ds: dt.date
    decisions: dict[str, mstore.PolicyDecision]
    retrain: dict[str, Any] | None = None

    def summary(self) -> str:
        return "\n".join(
            f"{d.policy}: {d.decision}{' (acted: ' + d.action + ')' if d.acted else ''} — {d.reason}"
            for d in self.decisions.values()
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "monitored_day": self.ds.isoformat(),
            "decisions": {
                name: {
                    "decision": d.decision,
                    "acted": d.acted,
                    "action": d.action,
                    "reason": d.reason,
                }
                for name, d in self.decisions.items()
            },
            "retrain": self.retrain,
        }


def retrain_run_id(pipeline: PipelineConfig, ds: dt.date) -> str:
    """The training DAG run a retraining trigger for ``ds`` creates (at most one per day)."""
    return f"retrain__{pipeline.name}__{ds.isoformat()}"


def decide_policies(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    ds: dt.date,
    context: MonitorContext,
) -> PolicyOutcome:
    """Evaluate, record and (on live runs) act on rollback, shadow promotion and retraining."""
    monitoring = _monitoring(pipeline)
    config = monitoring.policies
    url = settings.database_url
    existing = {r.policy: r for r in mstore.list_decisions(url, pipeline.name, ds=ds)}
    client, _ = registry.connect(settings, pipeline)
    name = pipeline.model_name
    quality = mstore.metric_rows(
        url, pipeline.name, kind="quality", name="overall", metric=config.metric, until=ds
    )
    decisions: dict[str, mstore.PolicyDecision] = {}

    def keep(policy: str) -> bool:
        if policy in existing and existing[policy].acted:
            decisions[policy] = existing[policy].as_decision()
            return True
        return False

    def record(decision: mstore.PolicyDecision) -> None:
        if decision.fires and not decision.acted and not context.acts:
            decision.action = "not acted on: a backfill run records its decisions and never acts"
        mstore.record_decision(
            url, pipeline.name, ds, decision, dag_id=context.dag_id, run_id=context.run_id
        )
        decisions[decision.policy] = decision

    # 1. Rollback: a new champion doing worse than the one it replaced, in probation.
    if not keep(policies.ROLLBACK):
        champion = registry.aliased_version(client, name, registry.CHAMPION)
        previous = registry.aliased_version(client, name, registry.PREVIOUS)
        start = champions.probation_start(settings, pipeline, champion) if champion else None
        pairs = (
            _pairs(_series(quality, champion, "champion"), _series(quality, previous, "shadow"))
            if champion and previous
            else []
        )
        decision = policies.evaluate_rollback(config, ds, champion, previous, start, pairs)
        if decision.decision == "rollback" and context.acts:
            bad, restored, serves = champions.rollback(
                settings,
                pipeline,
                decision.reason,
                context,
                monitored_day=ds,
                figures=decision.figures,
            )
            decision.acted = True
            decision.action = f"champion v{bad} -> v{restored}, serving from {serves}"
        record(decision)

    # 2. Shadow promotion: a challenger that beats the champion on the same rows.
    if not keep(policies.SHADOW_PROMOTION):
        challenger = registry.aliased(client, name, registry.CHALLENGER)
        champion = registry.aliased_version(client, name, registry.CHAMPION)
        pairs = []
        if challenger is not None and champion is not None:
            since = champions.trained_until(challenger.tags) or dt.date.min
            served = {r.ds: r for r in quality if r.role == "champion"}
            theirs = {d: r for d, r in served.items() if d > since}
            pairs = _pairs(_series(quality, challenger.version, "shadow"), theirs)
        decision = policies.evaluate_shadow_promotion(
            config,
            ds,
            challenger.version if challenger else None,
            champion,
            pairs,
            promotion_policy=pipeline.promotion.policy,
        )
        if decision.decision == "promote" and context.acts:
            assert challenger is not None
            promoted = champions.promote(
                settings,
                pipeline,
                challenger.version,
                context.replace(actor="policy:shadow", reason=f"won in shadow: {decision.reason}"),
            )
            decision.acted = True
            decision.action = (
                f"promoted v{challenger.version} (previous champion v{promoted.previous_champion}), "
                f"serving from {promoted.effective_from}"
            )
        record(decision)

    # 3. Retraining: sustained bad quality or drift of the current champion.
    retrain = None
    if not keep(policies.RETRAIN):
        champion = registry.aliased_version(client, name, registry.CHAMPION)
        series = _series(quality, champion, "champion") if champion else {}
        days = [policies.DayValue(d, r.value, r.rows) for d, r in sorted(series.items())]
        drift: dict[dt.date, dict[str, float | None]] = {}
        if champion:
            for row in mstore.metric_rows(url, pipeline.name, kind="drift", metric="psi", until=ds):
                if row.model_version == champion and row.role == "champion":
                    drift.setdefault(row.ds, {})[row.name] = row.value
        fired_before = [
            r.ds
            for r in mstore.list_decisions(url, pipeline.name, policy=policies.RETRAIN, until=ds)
            if r.decision == "fire" and r.acted and r.ds < ds
        ]
        decision = policies.evaluate_retrain(
            config,
            ds,
            days,
            drift,
            max(fired_before) if fired_before else None,
            drift_limits=_drift_limits(settings, pipeline, champion),
        )
        decision.model_version = champion
        if decision.decision == "fire" and context.acts:
            decision.acted = True
            decision.action = (
                f"trigger {pipeline.name}_training run {retrain_run_id(pipeline, ds)} "
                f"(window_end {ds})"
            )
        record(decision)
    final = decisions[policies.RETRAIN]
    if final.decision == "fire" and final.acted:
        retrain = {
            "run_id": retrain_run_id(pipeline, ds),
            "window_end": ds.isoformat(),
            "window_days": config.retrain.window_days,
            "reason": f"monitoring {ds}: {final.reason}",
        }
    return PolicyOutcome(ds, decisions, retrain)
