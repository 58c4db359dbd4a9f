"""The feature DAGs of a pipeline: one run per interval, and wide runs for backfills.

``<name>_features``, one DAG per pipeline::

    ingest_raw >> validate_raw >> wait_for_history >> build_features  --> Asset "<name>_features"

Each run owns the local calendar day its data interval starts on (the pipeline's
``timezone``); the schedule is the pipeline's ``cadence``. ``catchup`` is off: history is
loaded with a backfill (UI, ``airflow backfill create`` or the REST API).

``<name>_features_backfill`` (with a ``backfill_interval``): runs that wide, days kept
apart::

    plan_days >> day.ingest_raw >> day.validate_raw   (a mapped task group per day)
              >> validated_days >> wait_for_history >> build_features  (one Spark job)
                 day.*          >> check_days         (fails naming days that failed)
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

from runway_mlops.orchestration.dags.common import (
    feature_asset,
    interval_timetable,
    runway_dag,
)

if TYPE_CHECKING:
    from airflow.sdk import DAG

    from runway_mlops.config import PipelineConfig, PlatformSettings


def _doc(pipeline: PipelineConfig) -> str:
    datasets = ", ".join(f"`{name}` ({d.kind})" for name, d in pipeline.datasets.items())
    return textwrap.dedent(
        f"""\
        ### {pipeline.name}: features

        {pipeline.description.strip()}

        One run per `{pipeline.cadence}` interval; {_owns(pipeline)}

        1. **ingest_raw**: copy the day's deliveries of {datasets} from the
           `{pipeline.source.kind}` source into the lake's raw zone.
        2. **validate_raw**: Great Expectations checks from the pipeline file; bad rows
           and blocked days go to quarantine (`runway quarantine list`). The report opens
           from this task's *Validation report* link or *Browse → Validation reports*.
        3. **wait_for_history**: wait until the earlier days the trailing windows and
           as-of lookbacks read have been validated (or quarantined), so a backfill with
           several active runs gives the features a day-by-day run gives.
        4. **build_features**: the Spark job `jobs/build_features.py` writes the
           point-in-time-correct feature partition and updates the Asset
           `{pipeline.name}_features`.

        Config: `config/pipelines/{pipeline.name}.yaml`. Rerun a day by clearing its run;
        load history with *Backfill* (every run replaces its own partition).
        """
    )


def _owns(pipeline: PipelineConfig) -> str:
    if pipeline.micro_batch:
        return (
            "a **micro-batch**: the run takes the landing files that arrived in its data "
            "interval, routes rows to their event days (late rows to quarantine, duplicates "
            "dropped), validates and rebuilds the features of the days it changed."
        )
    return f"the run owns the local day ({pipeline.timezone}) its data interval starts on."


def build_feature_dag(pipeline: PipelineConfig, settings: PlatformSettings) -> DAG:
    """``<pipeline>_features``: ingest_raw >> validate_raw >> wait_for_history >> build_features."""
    from airflow.providers.standard.operators.python import PythonOperator

    from runway_mlops.orchestration import tasks as airflow_tasks

    if pipeline.micro_batch:
        # The days the batch changed, as validate_raw handed them on.
        days_task: str | None = "validate_raw"
        days = ["--days", "{{ ti.xcom_pull(task_ids='validate_raw')['days'] | join(',') }}"]
    else:
        day = f"{{{{ data_interval_start.in_timezone('{pipeline.timezone}').to_date_string() }}}}"
        days_task, days = None, ["--ds", day]
    with runway_dag(
        pipeline,
        "features",
        description=f"{pipeline.name}: ingest, validate and build features for one interval",
        doc_md=_doc(pipeline),
        schedule=interval_timetable(pipeline),
        # A stream has no end; micro-batches depend on the commit of the one before.
        ends=not pipeline.micro_batch,
        max_active_runs=1 if pipeline.micro_batch else pipeline.max_active_runs,
        tags=["features"],
    ) as dag:
        ingest_raw = PythonOperator(
            task_id="ingest_raw",
            python_callable=airflow_tasks.ingest_raw,
            op_kwargs={"pipeline_name": pipeline.name},
            doc_md="Copy the interval's deliveries into the lake's raw zone.",
        )
        validate_raw = PythonOperator(
            task_id="validate_raw",
            python_callable=airflow_tasks.validate_raw,
            op_kwargs={"pipeline_name": pipeline.name},
            doc_md="Great Expectations checks; failures quarantine data and block features.",
        )
        build_features = _feature_job(
            pipeline,
            settings,
            days,
            days_task,
            "Spark job: the point-in-time-correct feature partition of the day.",
        )
        ingest_raw >> validate_raw >> _wait_for_history(pipeline, days_task) >> build_features
    return dag


def _backfill_doc(pipeline: PipelineConfig) -> str:
    return textwrap.dedent(
        f"""\
        ### {pipeline.name}: wide feature runs (backfills)

        The same stages as `{pipeline.name}_features`, for a `{pipeline.backfill_interval}`
        data interval: **plan_days** lists its local days; a **day** task group per day
        runs **ingest_raw** and **validate_raw** for that day alone (the day is the map
        index label: clear one day to rerun it); **build_features** builds the features
        of every day that passed in one Spark job (one JVM for the interval instead of
        one per day), still one partition per day; **check_days** fails the run, naming
        them, if some days did not pass. Partitions, reports and Asset events are the
        daily DAG's: use either, or both, for any day.

        Backfill history here (*Trigger → Backfill*, or `runway airflow backfill create
        --dag-id {pipeline.name}_features_backfill ...`).
        """
    )


def build_backfill_dag(pipeline: PipelineConfig, settings: PlatformSettings) -> DAG:
    """``<pipeline>_features_backfill``: runs ``backfill_interval`` wide, days kept apart."""
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import TriggerRule, task_group

    from runway_mlops.orchestration import tasks as airflow_tasks

    assert pipeline.backfill_interval is not None
    kwargs = {"pipeline_name": pipeline.name}
    with runway_dag(
        pipeline,
        "features_backfill",
        description=f"{pipeline.name}: features for {pipeline.backfill_interval} intervals, "
        "one partition per day",
        doc_md=_backfill_doc(pipeline),
        schedule=interval_timetable(pipeline, pipeline.backfill_interval),
        max_active_runs=pipeline.max_active_runs,
        tags=["features", "backfill"],
    ) as dag:
        plan_days = PythonOperator(
            task_id="plan_days",
            python_callable=airflow_tasks.plan_days,
            op_kwargs=kwargs,
            doc_md="The local days of the run's data interval.",
        )

        @task_group(group_id="day")
        def day(ds: str) -> None:
            ingest_raw = PythonOperator(
                task_id="ingest_raw",
                python_callable=airflow_tasks.ingest_day,
                op_kwargs={**kwargs, "ds": ds},
                map_index_template="{{ task.op_kwargs['ds'] }}",
                doc_md="Copy one day's deliveries into the lake's raw zone.",
            )
            validate_raw = PythonOperator(
                task_id="validate_raw",
                python_callable=airflow_tasks.validate_day,
                op_kwargs={**kwargs, "ds": ds},
                map_index_template="{{ task.op_kwargs['ds'] }}",
                doc_md="Great Expectations checks of one day; failures quarantine it.",
            )
            ingest_raw >> validate_raw

        days = day.expand(ds=plan_days.output)
        validated_days = PythonOperator(
            task_id="validated_days",
            python_callable=airflow_tasks.validated_days,
            trigger_rule=TriggerRule.ALL_DONE,
            doc_md="The days that passed validation (skips if none did).",
        )
        build_features = _feature_job(
            pipeline,
            settings,
            ["--days", "{{ ti.xcom_pull(task_ids='validated_days')['days'] | join(',') }}"],
            "validated_days",
            "One Spark job for the days that passed; one feature partition per day.",
        )
        check_days = PythonOperator(
            task_id="check_days",
            python_callable=airflow_tasks.check_days,
            op_kwargs=kwargs,
            trigger_rule=TriggerRule.ALL_DONE,
            doc_md="Fail the run, naming them, if some days did not pass.",
        )
        wait_for_history = _wait_for_history(pipeline, "validated_days")
        days >> validated_days >> wait_for_history >> build_features
        days >> check_days
    return dag


def _wait_for_history(pipeline: PipelineConfig, days_task: str | None) -> Any:
    """``wait_for_history``: the earlier days the features read have been validated."""
    from runway_mlops.orchestration import tasks as airflow_tasks
    from runway_mlops.orchestration.operators import PartitionSensor

    return PartitionSensor(
        task_id="wait_for_history",
        check=airflow_tasks.history_settled,
        check_kwargs={"days_task": days_task},
        pipeline_name=pipeline.name,
        poke_interval=15,
        timeout=pipeline.features.wait_for_history_minutes * 60,
        doc_md="Wait until the earlier days the trailing windows and as-of lookbacks read "
        "have been validated (or quarantined), so a day's features do not depend on the "
        "order in which a backfill's runs finish.",
    )


def _feature_job(
    pipeline: PipelineConfig,
    settings: PlatformSettings,
    days: list[str],
    days_task: str | None,
    doc: str,
) -> Any:
    """The ``build_features`` task: ``jobs/build_features.py`` on ``spark_default``."""
    from runway_mlops.orchestration.operators import FeatureSubmitOperator
    from runway_mlops.stages.features import SPARK_CONF

    return FeatureSubmitOperator(
        task_id="build_features",
        pipeline_name=pipeline.name,
        days_task=days_task,
        application=str(settings.project_root / "jobs" / "build_features.py"),
        conn_id="spark_default",
        name=f"runway-features-{pipeline.name}",
        conf=dict(SPARK_CONF),
        application_args=["--pipeline", pipeline.name, *days, "--run-id", "{{ run_id }}"],
        outlets=[feature_asset(pipeline.name)],
        doc_md=doc,
    )
