"""The monitoring tables: realised quality and drift per day, and every policy decision.

In the platform database (SQLite or PostgreSQL), beside the catalog:

* ``runway_monitoring`` — long format, one value per (pipeline, day, model version,
  kind, name, metric): ``quality/overall/roc_auc``, ``slice/carrier=UA/roc_auc``,
  ``drift/weather_temp/psi``, ``drift/score/psi``... A monitoring run replaces its day.
* ``runway_policy_decisions`` — one row per (pipeline, day, policy): what was decided
  (``fire``, ``hold``, ``cooldown``, ``promote``, ``rollback``...), whether it was acted
  on and how, why, and the figures it was decided on. A decision that was acted on is
  never replaced: a rerun of the day returns it (so an action happens once).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from runway_mlops.catalog import engine_with

metadata = sa.MetaData()

monitoring = sa.Table(
    "runway_monitoring",
    metadata,
    sa.Column("pipeline", sa.String(128), primary_key=True),
    sa.Column("ds", sa.Date, primary_key=True),
    sa.Column("model_version", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),  # quality | slice | drift
    sa.Column("name", sa.String(250), primary_key=True),  # overall | carrier=UA | feature
    sa.Column("metric", sa.String(32), primary_key=True),  # roc_auc | rows | psi ...
    sa.Column("role", sa.String(16), nullable=False),  # champion | shadow
    sa.Column("alias", sa.String(32), nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column(
        "status", sa.String(8), nullable=False, default=""
    ),  # ok | warn | alert | n/a | by_day
    sa.Column("dag_id", sa.String(250)),
    sa.Column("run_id", sa.String(250)),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)

policy_decisions = sa.Table(
    "runway_policy_decisions",
    metadata,
    sa.Column("pipeline", sa.String(128), primary_key=True),
    sa.Column("ds", sa.Date, primary_key=True),
    sa.Column("policy", sa.String(32), primary_key=True),  # retrain | shadow_promotion | rollback
    sa.Column("decision", sa.String(32), nullable=False),
    sa.Column("acted", sa.Boolean, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("figures", sa.Text, nullable=False),  # JSON
    sa.Column("model_version", sa.String(32)),
    sa.Column("dag_id", sa.String(250)),
    sa.Column("run_id", sa.String(250)),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)

#: Quality metrics recorded per model version and day (besides ``rows``), in report order.
QUALITY = (
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "positive_rate",
    "mean_score",
    "calibration_error",
)


def _engine(url: str) -> sa.Engine:
    return engine_with(url, metadata)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)  # audit only


@dataclass(frozen=True)
class MetricRow:
    ds: dt.date
    model_version: str
    role: str
    alias: str
    kind: str
    name: str
    metric: str
    value: float | None
    rows: int
    status: str = ""


def replace_day(
    url: str,
    pipeline: str,
    ds: dt.date,
    rows: Iterable[MetricRow],
    *,
    dag_id: str | None = None,
    run_id: str | None = None,
) -> int:
    """Replace every monitoring value of (pipeline, ds) in one transaction."""
    now = _now()
    values = [
        {
            "pipeline": pipeline,
            "ds": row.ds,
            "model_version": row.model_version,
            "kind": row.kind,
            "name": row.name,
            "metric": row.metric,
            "role": row.role,
            "alias": row.alias,
            "value": row.value,
            "rows": row.rows,
            "status": row.status,
            "dag_id": dag_id,
            "run_id": run_id,
            "recorded_at": now,
        }
        for row in rows
    ]
    with _engine(url).begin() as conn:
        conn.execute(
            sa.delete(monitoring).where(
                (monitoring.c.pipeline == pipeline) & (monitoring.c.ds == ds)
            )
        )
        if values:
            conn.execute(sa.insert(monitoring), values)
    return len(values)


def metric_rows(
    url: str,
    pipeline: str,
    *,
    kind: str | None = None,
    metric: str | None = None,
    name: str | None = None,
    until: dt.date | None = None,
    since: dt.date | None = None,
) -> list[MetricRow]:
    """Stored monitoring values, oldest day first."""
    query = sa.select(monitoring).where(monitoring.c.pipeline == pipeline)
    for column, value in (("kind", kind), ("metric", metric), ("name", name)):
        if value is not None:
            query = query.where(monitoring.c[column] == value)
    if until is not None:
        query = query.where(monitoring.c.ds <= until)
    if since is not None:
        query = query.where(monitoring.c.ds >= since)
    query = query.order_by(monitoring.c.ds, monitoring.c.model_version, monitoring.c.name)
    with _engine(url).connect() as conn:
        return [
            MetricRow(
                ds=r["ds"],
                model_version=r["model_version"],
                role=r["role"],
                alias=r["alias"],
                kind=r["kind"],
                name=r["name"],
                metric=r["metric"],
                value=r["value"],
                rows=r["rows"],
                status=r["status"],
            )
            for r in conn.execute(query).mappings().all()
        ]


@dataclass
class PolicyDecision:
    """One evaluation of one policy for one monitored day."""

    policy: str
    decision: str
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)
    model_version: str | None = None
    acted: bool = False
    action: str = ""

    @property
    def fires(self) -> bool:
        return self.decision in ("fire", "promote", "rollback")


@dataclass(frozen=True)
class DecisionRecord:
    pipeline: str
    ds: dt.date
    policy: str
    decision: str
    acted: bool
    action: str
    reason: str
    figures: dict[str, Any]
    model_version: str | None
    dag_id: str | None
    run_id: str | None
    recorded_at: dt.datetime

    def as_decision(self) -> PolicyDecision:
        return PolicyDecision(
            self.policy,
            self.decision,
            self.reason,
            self.figures,
            self.model_version,
            self.acted,
            self.action,
        )


def _to_record(r: Any) -> DecisionRecord:
    return DecisionRecord(
        pipeline=r["pipeline"],
        ds=r["ds"],
        policy=r["policy"],
        decision=r["decision"],
        acted=bool(r["acted"]),
        action=r["action"],
        reason=r["reason"],
        figures=json.loads(r["figures"]),
        model_version=r["model_version"],
        dag_id=r["dag_id"],
        run_id=r["run_id"],
        recorded_at=r["recorded_at"],
    )


def record_decision(
    url: str,
    pipeline: str,
    ds: dt.date,
    decision: PolicyDecision,
    *,
    dag_id: str | None = None,
    run_id: str | None = None,
) -> None:
    """Store one decision, replacing an earlier one of the same day and policy."""
    key = (
        (policy_decisions.c.pipeline == pipeline)
        & (policy_decisions.c.ds == ds)
        & (policy_decisions.c.policy == decision.policy)
    )
    with _engine(url).begin() as conn:
        conn.execute(sa.delete(policy_decisions).where(key))
        conn.execute(
            sa.insert(policy_decisions).values(
                pipeline=pipeline,
                ds=ds,
                policy=decision.policy,
                decision=decision.decision,
                acted=decision.acted,
                action=decision.action,
                reason=decision.reason,
                figures=json.dumps(decision.figures, sort_keys=True, default=str),
                model_version=decision.model_version,
                dag_id=dag_id,
                run_id=run_id,
                recorded_at=_now(),
            )
        )


def list_decisions(
    url: str,
    pipeline: str | None = None,
    *,
    policy: str | None = None,
    ds: dt.date | None = None,
    until: dt.date | None = None,
) -> list[DecisionRecord]:
    """Policy decisions, oldest day first."""
    query = sa.select(policy_decisions)
    if pipeline is not None:
        query = query.where(policy_decisions.c.pipeline == pipeline)
    if policy is not None:
        query = query.where(policy_decisions.c.policy == policy)
    if ds is not None:
        query = query.where(policy_decisions.c.ds == ds)
    if until is not None:
        query = query.where(policy_decisions.c.ds <= until)
    query = query.order_by(policy_decisions.c.ds, policy_decisions.c.policy)
    with _engine(url).connect() as conn:
        return [_to_record(r) for r in conn.execute(query).mappings().all()]
