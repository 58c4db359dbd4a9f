"""The DAG factory: every ``config/pipelines/<name>.yaml`` becomes its Airflow DAGs.

``dags/runway_pipelines.py`` calls :func:`build_dags` and hands the result to Airflow, so
a new pipeline is a new YAML file. Building the DAGs reads YAML and nothing else: no
database, no network, no pandas/Spark/GX import (those load inside the tasks).

The feature pipeline, one DAG per pipeline (``<name>_features``)::

    ingest_raw  >>  validate_raw  >>  build_features  --> Asset "<name>_features"

Each run owns the local calendar day its data interval starts on (the pipeline's
``timezone``); the schedule is the pipeline's ``cadence``. ``catchup`` is off: history is
loaded with a backfill (UI, ``airflow backfill create`` or the REST API).
"""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runway_mlops.config import PipelineConfig, PlatformSettings, load_pipelines, load_settings

if TYPE_CHECKING:
    from airflow.sdk import DAG, Asset


def feature_asset(pipeline_name: str) -> Asset:
    """The Asset the feature DAG updates once per feature partition."""
    from airflow.sdk import Asset

    return Asset(
        name=f"{pipeline_name}_features",
        uri=f"runway://{pipeline_name}/features",
        group="runway-features",
    )


def _doc(pipeline: PipelineConfig) -> str:
    datasets = ", ".join(f"`{name}` ({d.kind})" for name, d in pipeline.datasets.items())
    return textwrap.dedent(
        f"""\
        ### {pipeline.name}: features

        {pipeline.description.strip()}

        One run per `{pipeline.cadence}` interval; the run owns the local day
        ({pipeline.timezone}) its data interval starts on.

        1. **ingest_raw**: copy the day's deliveries of {datasets} from the
           `{pipeline.source.kind}` source into the lake's raw zone.
        2. **validate_raw**: Great Expectations checks from the pipeline file; bad rows
           and blocked days go to quarantine (`runway quarantine list`). The report opens
           from this task's *Validation report* link or *Browse → Validation reports*.
        3. **build_features**: the Spark job `jobs/build_features.py` writes the
           point-in-time-correct feature partition and updates the Asset
           `{pipeline.name}_features`.

        Config: `config/pipelines/{pipeline.name}.yaml`. Rerun a day by clearing its run;
        load history with *Backfill* (every run replaces its own partition).
        """
    )


def build_feature_dag(pipeline: PipelineConfig, settings: PlatformSettings) -> DAG:
    """The ``<pipeline>_features`` DAG: ingest_raw >> validate_raw >> build_features."""
    import pendulum
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
    from airflow.timetables.interval import CronDataIntervalTimetable

    from runway_mlops import airflow_tasks
    from runway_mlops.features.job import SPARK_CONF
    from runway_mlops.operators import FeatureSubmitOperator

    zone = pendulum.timezone(pipeline.timezone)
    start = pendulum.datetime(
        pipeline.start_date.year, pipeline.start_date.month, pipeline.start_date.day, tz=zone
    )
    end = None
    if pipeline.end_date:
        last = pipeline.end_date + dt.timedelta(days=1)
        end = pendulum.datetime(last.year, last.month, last.day, tz=zone)
    default_args: dict[str, Any] = {
        "owner": pipeline.owner,
        "retries": pipeline.retries,
        "retry_delay": dt.timedelta(seconds=pipeline.retry_delay_seconds),
    }
    day = f"{{{{ data_interval_start.in_timezone('{pipeline.timezone}').to_date_string() }}}}"
    with DAG(
        dag_id=f"{pipeline.name}_features",
        description=f"{pipeline.name}: ingest, validate and build features for one interval",
        doc_md=_doc(pipeline),
        schedule=CronDataIntervalTimetable(_cron(pipeline.cadence), timezone=zone),
        start_date=start,
        end_date=end,
        catchup=False,
        max_active_runs=pipeline.max_active_runs,
        default_args=default_args,
        tags=["runway", "features", pipeline.name, *pipeline.tags],
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
        build_features = FeatureSubmitOperator(
            task_id="build_features",
            pipeline_name=pipeline.name,
            application=str(settings.project_root / "jobs" / "build_features.py"),
            conn_id="spark_default",
            name=f"runway-features-{pipeline.name}",
            conf=dict(SPARK_CONF),
            application_args=["--pipeline", pipeline.name, "--ds", day, "--run-id", "{{ run_id }}"],
            outlets=[feature_asset(pipeline.name)],
            doc_md="Spark job: the point-in-time-correct feature partition of the day.",
        )
        ingest_raw >> validate_raw >> build_features
    return dag


_PRESET_CRON = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


def _cron(cadence: str) -> str:
    if cadence == "@once":
        raise ValueError("cadence '@once' has no data intervals; use a cron cadence")
    return _PRESET_CRON.get(cadence, cadence)


def build_dags(config_dir: Path | None = None) -> dict[str, DAG]:
    """Every pipeline's DAGs, keyed by dag_id (for a DAG file's ``globals()``)."""
    settings = load_settings(config_dir)
    dags: dict[str, DAG] = {}
    for pipeline in load_pipelines(settings.config_dir).values():
        dag = build_feature_dag(pipeline, settings)
        dags[dag.dag_id] = dag
    return dags
