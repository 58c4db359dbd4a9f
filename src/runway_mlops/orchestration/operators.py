"""Runway's operators: small subclasses of provider operators, no logic of their own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import BaseSensorOperator


class FeatureSubmitOperator(SparkSubmitOperator):
    """``SparkSubmitOperator`` that labels its Asset event with the partition it wrote.

    The master comes from the ``spark_default`` connection (``local[*]`` on embedded
    defaults, a cluster in production). After the job succeeds the feature Asset event
    carries ``ds``, ``feature_version``, ``rows`` and ``path`` from the partition's
    manifest (and ``days`` for a run that built several), so the pipelines that follow
    the Asset know exactly what changed.
    """

    def __init__(self, *, pipeline_name: str, days_task: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline_name = pipeline_name
        #: The upstream task whose XCom lists the days built (none: the interval's day).
        self.days_task = days_task

    def execute(self, context: Any) -> None:
        from runway_mlops.orchestration.tasks import feature_event_extra

        super().execute(context)
        extra = feature_event_extra(self.pipeline_name, context, self.days_task)
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = extra
        self.log.info("feature partition %s (version %s)", extra["path"], extra["feature_version"])


class PartitionSensor(BaseSensorOperator):
    """Wait until ``check(pipeline_name, **context)`` says the interval's inputs are there.

    ``check`` is one of the functions in :mod:`runway_mlops.orchestration.tasks` (e.g.
    ``features_ready``); it may raise ``AirflowFailException`` when the inputs will never
    come (a quarantined day), so the run fails at once with the reason instead of waiting
    for the timeout. Run in ``reschedule`` mode: no worker slot is held while waiting.
    """

    def __init__(
        self,
        *,
        check: Callable[..., bool],
        pipeline_name: str,
        check_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 60)
        super().__init__(**kwargs)
        self.check = check
        self.pipeline_name = pipeline_name
        self.check_kwargs = dict(check_kwargs or {})

    def poke(self, context: Any) -> bool:
        return bool(self.check(self.pipeline_name, **self.check_kwargs, **context))
