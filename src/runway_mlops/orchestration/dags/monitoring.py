"""The monitoring DAG, one per pipeline with a ``monitoring`` block (``<name>_monitoring``).

On the pipeline's cadence (daily for a micro-batch one); a run of interval X monitors
day X - ``outcome_delay_days``::

    wait_for_outcomes >> compute_monitoring >> decide_policies >> write_report
                                               decide_policies >> should_retrain >> trigger_retraining
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from runway_mlops.orchestration.dags.common import interval_timetable, runway_dag

if TYPE_CHECKING:
    from airflow.sdk import DAG

    from runway_mlops.config import PipelineConfig, PlatformSettings


def _monitoring_doc(pipeline: PipelineConfig) -> str:
    monitoring = pipeline.monitoring
    assert monitoring is not None
    return textwrap.dedent(
        f"""\
        ### {pipeline.name}: monitoring and the continual-learning policies

        A run of interval X monitors day X minus {monitoring.outcome_delay_days} day(s), whose
        outcomes are known by the end of X.

        1. **wait_for_outcomes**: the day's predictions, features and outcomes.
        2. **compute_monitoring**: realised {monitoring.policies.metric} (and PR AUC, log loss,
           Brier) per model version, champion and shadow, overall and per slice
           ({", ".join(monitoring.slices) or "none"}); PSI of the score and the features against
           each model's training reference. Table `runway_monitoring`.
        3. **decide_policies**: rollback (a new champion worse than the previous one during
           its probation), shadow promotion (a challenger that wins in shadow), retraining
           (sustained bad quality or drift, with a cooldown). Every decision is recorded with
           its figures (`runway_policy_decisions`); a backfill run records and never acts.
        4. **write_report**: *Browse → Model monitoring* in this UI.
        5. **should_retrain** / **trigger_retraining**: triggers `{pipeline.name}_training`
           with the window end and the reason (run id `retrain__{pipeline.name}__<day>`: at
           most once per monitored day).

        Config: the `monitoring` block of `config/pipelines/{pipeline.name}.yaml`.
        """
    )


def build_monitoring_dag(pipeline: PipelineConfig, settings: PlatformSettings) -> DAG:
    """The ``<pipeline>_monitoring`` DAG (see the module docstring)."""
    from airflow.providers.standard.operators.python import PythonOperator, ShortCircuitOperator
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

    from runway_mlops.orchestration import tasks as airflow_tasks
    from runway_mlops.orchestration.operators import PartitionSensor

    monitoring = pipeline.monitoring
    assert monitoring is not None
    kwargs = {"pipeline_name": pipeline.name}
    with runway_dag(
        pipeline,
        "monitoring",
        description=f"{pipeline.name}: realised quality, drift, retraining, promotion, rollback",
        doc_md=_monitoring_doc(pipeline),
        # Outcomes are judged per day, also when features and scores come in micro-batches.
        schedule=interval_timetable(pipeline, "@daily" if pipeline.micro_batch else None),
        # Policies read the decisions of earlier days (cooldown, probation): one at a time.
        max_active_runs=1,
        tags=["monitoring"],
    ) as dag:
        wait_for_outcomes = PartitionSensor(
            task_id="wait_for_outcomes",
            check=airflow_tasks.outcomes_ready,
            pipeline_name=pipeline.name,
            timeout=monitoring.wait_minutes * 60,
            doc_md="Wait for the monitored day's predictions, features and outcomes.",
        )
        compute_monitoring = PythonOperator(
            task_id="compute_monitoring",
            python_callable=airflow_tasks.compute_monitoring,
            op_kwargs=kwargs,
            doc_md="Realised quality per model version and slice; drift (PSI).",
        )
        decide_policies = PythonOperator(
            task_id="decide_policies",
            python_callable=airflow_tasks.decide_policies,
            op_kwargs=kwargs,
            doc_md="Rollback, shadow promotion and retraining: decided, recorded, acted on.",
        )
        write_report = PythonOperator(
            task_id="write_report",
            python_callable=airflow_tasks.write_monitoring_report,
            op_kwargs=kwargs,
            doc_md="The monitoring report under Browse → Model monitoring.",
        )
        should_retrain = ShortCircuitOperator(
            task_id="should_retrain",
            python_callable=airflow_tasks.retraining_needed,
            doc_md="Continue only if decide_policies fired a retraining.",
        )
        retrain = "ti.xcom_pull(task_ids='decide_policies')['retrain']"
        trigger_retraining = TriggerDagRunOperator(
            task_id="trigger_retraining",
            trigger_dag_id=f"{pipeline.name}_training",
            trigger_run_id=f"{{{{ {retrain}['run_id'] }}}}",
            # A JSON string: the operator parses it after templating.
            conf=f"{{{{ {retrain}['conf'] | tojson }}}}",  # type: ignore[arg-type]
            logical_date=None,
            skip_when_already_exists=True,
            doc_md="Trigger the training DAG with the window end and the reason.",
        )
        wait_for_outcomes >> compute_monitoring >> decide_policies
        decide_policies >> write_report
        decide_policies >> should_retrain >> trigger_retraining
    return dag
