"""Run provenance: which run of which DAG (or program) did a thing, why, and who acted.

One :class:`RunContext` goes with every stage call that writes something: the training
steps record it on MLflow runs, gate decisions and model events; scoring on every
prediction; monitoring on its decisions. ``run_type`` says what kind of run it is (an
Airflow ``DagRunType`` value, or a program's: ``cli``, ``replay``); ``actor`` says who
acted when that is not the run itself (a person's ``cli:<user>``, a policy's
``policy:shadow``). Policies act on live runs only: a backfill records what it would do
(:attr:`RunContext.acts`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runway_mlops.config import PipelineConfig


class RunType(enum.StrEnum):
    """What kind of run: Airflow's ``DagRunType`` values and Runway's programs."""

    SCHEDULED = "scheduled"
    MANUAL = "manual"
    BACKFILL = "backfill"
    ASSET_TRIGGERED = "asset_triggered"
    ASSET_MATERIALIZATION = "asset_materialization"
    CLI = "cli"
    REPLAY = "replay"

    @classmethod
    def _missing_(cls, value: object) -> RunType | None:
        # A run type a newer Airflow adds is still a run type: keep its value.
        if not isinstance(value, str) or not value:
            return None
        member = str.__new__(cls, value)
        member._name_ = value.upper()
        member._value_ = value
        return member


@dataclasses.dataclass(frozen=True)
class RunContext:
    """Where a stage call comes from: recorded on everything it writes."""

    dag_id: str | None = None
    run_id: str | None = None
    run_type: RunType | str | None = None  # coerced to RunType
    reason: str | None = None
    #: Who acted, when not the run itself: ``cli:<user>``, ``policy:shadow``, an approver.
    actor: str | None = None
    #: The run's data interval (scoring records it on each prediction).
    interval_start: dt.datetime | None = None
    interval_end: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.run_type is not None and not isinstance(self.run_type, RunType):
            object.__setattr__(self, "run_type", RunType(str(self.run_type)))

    @property
    def acts(self) -> bool:
        """Policies act on live runs only: a backfill records what it would do."""
        return self.run_type != RunType.BACKFILL

    @property
    def is_backfill(self) -> bool:
        return self.run_type == RunType.BACKFILL

    def replace(self, **changes: Any) -> RunContext:
        return dataclasses.replace(self, **changes)

    @classmethod
    def for_day(
        cls,
        pipeline: PipelineConfig,
        ds: dt.date,
        *,
        run_id: str,
        run_type: RunType | str,
        dag_id: str | None = None,
        reason: str | None = None,
    ) -> RunContext:
        """A run outside Airflow (CLI, replay): the interval is the local day ``ds``."""
        start = dt.datetime.combine(ds, dt.time(), tzinfo=pipeline.zone)
        end = dt.datetime.combine(ds + dt.timedelta(days=1), dt.time(), tzinfo=pipeline.zone)
        return cls(
            dag_id,
            run_id,
            RunType(str(run_type)),
            reason=reason,
            interval_start=start,
            interval_end=end,
        )

    @classmethod
    def from_airflow(cls, context: dict[str, Any]) -> RunContext:
        """The context of an Airflow task: its DAG, run, run type, ``reason`` param and
        data interval."""
        dag_run = context.get("dag_run")
        run_type = getattr(dag_run, "run_type", None)
        params = context.get("params") or {}
        return cls(
            dag_id=context["dag"].dag_id if context.get("dag") else None,
            run_id=context.get("run_id"),
            run_type=RunType(str(getattr(run_type, "value", run_type))) if run_type else None,
            reason=(params.get("reason") or None),
            interval_start=context.get("data_interval_start"),
            interval_end=context.get("data_interval_end"),
        )
