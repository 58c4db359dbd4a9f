"""The inference DAG, one per pipeline with an ``inference`` block (``<name>_inference``).

On the pipeline's cadence like the features, each run scoring its own interval::

    wait_for_features >> score_champion >> score_shadow

On a micro-batch cadence (shorter than a day), a run per update of the feature Asset,
scoring only the new rows::

    score_new
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from runway_mlops.orchestration.dags.common import (
    feature_asset,
    interval_timetable,
    runway_dag,
)

if TYPE_CHECKING:
    from airflow.sdk import DAG

    from runway_mlops.config import PipelineConfig, PlatformSettings


def _inference_doc(pipeline: PipelineConfig) -> str:
    assert pipeline.inference is not None
    return textwrap.dedent(
        f"""\
        ### {pipeline.name}: batch inference

        Scores each `{pipeline.cadence}` interval's feature partition with the registered
        model `{pipeline.model_name}` and stores the predictions.

        1. **wait_for_features**: waits for the interval's feature partition (fails at once,
           naming the reason, if validation quarantined the day).
        2. **score_champion**: resolves the model and scores every feature row through the
           model's own input preparation (the training code path). Predictions carry the
           model name and version, the feature version, the interval and the run id; they go
           to `lake/predictions/{pipeline.name}/champion/ds=<day>` and to the table
           `runway_predictions` (replaced per day: a rerun never duplicates).
        3. **score_shadow**: the challenger (and, in a new champion's probation, the previous
           champion) score the same rows, stored with `role = 'shadow'`, never served.

        **Which model** (param `model`): empty = the `champion` alias at run time on scheduled
        and manual runs, and in a backfill `{pipeline.inference.backfill_model}`
        (`recorded` = the champion in effect on that day by the promotion history);
        `champion` = today's champion, also for past days; or a version number.

        Look a prediction up: `runway predictions --pipeline {pipeline.name} --key
        '2013|1|5|UA|1545|EWR'`, or SQL on `runway_predictions` (README).
        """
    )


def build_inference_dag(pipeline: PipelineConfig, settings: PlatformSettings) -> DAG:
    """The ``<pipeline>_inference`` DAG (see the module docstring)."""
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import Param

    from runway_mlops.orchestration import tasks as airflow_tasks
    from runway_mlops.orchestration.operators import PartitionSensor

    inference = pipeline.inference
    assert inference is not None
    if pipeline.micro_batch:
        return _micro_batch_inference_dag(pipeline)
    kwargs = {"pipeline_name": pipeline.name}
    with runway_dag(
        pipeline,
        "inference",
        description=f"{pipeline.name}: score each interval with the champion (and shadows)",
        doc_md=_inference_doc(pipeline),
        schedule=interval_timetable(pipeline),
        max_active_runs=pipeline.max_active_runs,
        params={
            "model": Param(
                None,
                type=["null", "string"],
                pattern=r"^(champion|recorded|[0-9]+)$",
                description="champion | recorded | a version; empty: champion on scheduled "
                f"runs, {inference.backfill_model} in backfills",
            )
        },
        tags=["inference"],
    ) as dag:
        wait_for_features = PartitionSensor(
            task_id="wait_for_features",
            check=airflow_tasks.features_ready,
            pipeline_name=pipeline.name,
            timeout=inference.wait_for_features_minutes * 60,
            doc_md="Wait for the interval's feature partition; fail if the day is quarantined.",
        )
        score_champion = PythonOperator(
            task_id="score_champion",
            python_callable=airflow_tasks.score_champion,
            op_kwargs=kwargs,
            doc_md="Score the interval with the serving model; store the answers.",
        )
        score_shadow = PythonOperator(
            task_id="score_shadow",
            python_callable=airflow_tasks.score_shadow,
            op_kwargs=kwargs,
            doc_md="Score the same rows with the challenger (and a probation's previous champion).",
        )
        wait_for_features >> score_champion >> score_shadow
    return dag


def _micro_batch_inference_doc(pipeline: PipelineConfig) -> str:
    return textwrap.dedent(
        f"""\
        ### {pipeline.name}: micro-batch inference

        Runs on every update of the Asset `{pipeline.name}_features` (the cadence
        `{pipeline.cadence}` is shorter than a day). **score_new** scores, with the
        `champion` alias at run time (and the shadow models), the feature rows of the
        changed days that have no prediction yet and whose event is still ahead of the
        stream clock; rows first seen after their event are counted as missed. New rows
        are added to `runway_predictions` and the day's Parquet partition; a rerun adds
        nothing.
        """
    )


def _micro_batch_inference_dag(pipeline: PipelineConfig) -> DAG:
    """On a micro-batch cadence: a run per feature update, scoring only the new rows."""
    from airflow.providers.standard.operators.python import PythonOperator

    from runway_mlops.orchestration import tasks as airflow_tasks

    with runway_dag(
        pipeline,
        "inference",
        description=f"{pipeline.name}: score each micro-batch's new rows before their event",
        doc_md=_micro_batch_inference_doc(pipeline),
        schedule=[feature_asset(pipeline.name)],
        ends=False,
        max_active_runs=1,
        tags=["inference", "micro-batch"],
    ) as dag:
        PythonOperator(
            task_id="score_new",
            python_callable=airflow_tasks.score_micro_batch,
            op_kwargs={"pipeline_name": pipeline.name},
            doc_md="Score the new rows of the days the triggering feature updates changed.",
        )
    return dag
