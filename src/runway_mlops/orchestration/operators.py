"""Runway's operators: small subclasses of provider operators, no logic of their own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import BaseSensorOperator


class FeatureSubmitOperator(SparkSubmitOperator):
    """``SparkSubmitOperator`` that labels its Asset event with the partition it wrote.

    Where the job runs comes from the ``spark_default`` connection: of type ``spark``
    (``local[*]`` on embedded defaults, a ``spark://`` cluster in production) it is
    spark-submitted, a JVM of its own; of type ``spark_connect`` (``sc://host:port``, the
    Spark provider's Spark Connect connection) the task itself is a thin client of that
    long-lived server and runs the same job (:func:`runway_mlops.stages.features.run_job`)
    with the same arguments — a connection change, not a code change. A Connect server
    that does not answer fails the task with a retryable ``service unavailable`` error;
    nothing is published (each day is staged, then swapped in whole).

    After the job succeeds the feature Asset event carries ``ds``, ``feature_version``,
    ``rows`` and ``path`` from the partition's manifest (and ``days`` for a run that built
    several), so the pipelines that follow the Asset know exactly what changed.
    """

    def __init__(self, *, pipeline_name: str, days_task: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline_name = pipeline_name
        #: The upstream task whose XCom lists the days built (none: the interval's day).
        self.days_task = days_task

    def execute(self, context: Any) -> None:
        from runway_mlops.orchestration.tasks import feature_event_extra

        url = self._connect_url()
        if url is None:
            super().execute(context)
        else:
            self._run_on_connect(url)
        extra = feature_event_extra(self.pipeline_name, context, self.days_task)
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = extra
        self.log.info("feature partition %s (version %s)", extra["path"], extra["feature_version"])

    def _connect_url(self) -> str | None:
        """``sc://host:port/;...`` when ``spark_default`` is a Spark Connect connection."""
        from airflow.providers.apache.spark.hooks.spark_connect import SparkConnectHook

        connection = SparkConnectHook.get_connection(self._conn_id)
        if connection.conn_type != SparkConnectHook.conn_type:
            return None
        return SparkConnectHook(conn_id=self._conn_id).get_connection_url()

    def _run_on_connect(self, url: str) -> None:
        from runway_mlops.orchestration.tasks import _run_stage
        from runway_mlops.stages.features import run_job

        args = [str(a) for a in self.application_args or []]
        results = _run_stage(lambda: run_job(args, master=url))
        for result in results:
            self.log.info("built %s: %s rows at %s", result.ds, result.rows, result.path)


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
