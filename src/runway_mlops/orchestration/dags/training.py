"""The training DAG, one per pipeline with a ``training`` block (``<name>_training``)::

    build_training_set >> plan_candidates >> train_candidate (mapped, one per grid point)
        >> select_best >> evaluate_gates >> register_challenger
        [>> approve_promotion]  >> promote_champion

scheduled by ``training.schedule`` (a cadence, ``features`` = after each feature Asset
update, or none), triggered with ``params`` from the UI, or by the monitoring pipeline.
"""

from __future__ import annotations

import datetime as dt
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


def _training_doc(pipeline: PipelineConfig) -> str:
    assert pipeline.training is not None
    approval = (
        "\n6. **approve_promotion**: a person approves or rejects in the Airflow UI "
        "(*Required actions*); the answer is recorded."
        if pipeline.promotion.policy == "manual"
        else ""
    )
    return textwrap.dedent(
        f"""\
        ### {pipeline.name}: training

        Trains LightGBM on the pipeline's feature and label partitions and lets the
        model reach production only through its evaluation gates.

        1. **build_training_set**: the window's days (train / validation / test by date);
           refuses quarantined or missing days (`training.missing_partitions`).
        2. **train_candidate**: one mapped task per tuning-grid point, tracked in MLflow.
        3. **select_best**: best validation ROC AUC.
        4. **evaluate_gates**: thresholds, no regression against the champion (same test
           rows), per-slice checks, safety; the decision is recorded and shown under
           *Browse → Model gate decisions*. A rejection fails this task (mode `enforce`).
        5. **register_challenger**: registers `{pipeline.model_name}` and sets `challenger`.{approval}
        7. **promote_champion**: moves `champion` (the old one becomes
           `previous_champion`); always skipped on a backfill run, and skipped under
           `promotion.policy: shadow` (now `{pipeline.promotion.policy}`) once a champion
           exists: the challenger is then scored in shadow and `{pipeline.name}_monitoring`
           promotes it when it wins there.

        *Trigger DAG w/ config*: `window_end` (YYYY-MM-DD; default: the end of the run's
        interval), `window_days`, `validation_days`, `test_days`, `hyperparameters` (e.g. `{{"num_leaves": 15}}`), `tune`,
        `gate_mode` (`enforce` / `dry_run`), `reason`.
        """
    )


def build_training_dag(pipeline: PipelineConfig, settings: PlatformSettings) -> DAG:
    """The ``<pipeline>_training`` DAG (see the module docstring)."""
    from airflow.providers.standard.operators.hitl import ApprovalOperator
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import Param

    from runway_mlops.orchestration import tasks as airflow_tasks

    training = pipeline.training
    assert training is not None
    schedule: Any
    if training.schedule is None:
        schedule = None
    elif training.schedule == "features":
        schedule = [feature_asset(pipeline.name)]
    else:
        schedule = interval_timetable(pipeline, training.schedule)
    params = {
        "window_end": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Last day of the window (YYYY-MM-DD); empty: the run's interval end",
        ),
        "window_days": Param(
            training.window.days,
            type="integer",
            minimum=3,  # with validation_days + test_days below it (checked per run)
            description="Days in the window (train + validation + test)",
        ),
        "validation_days": Param(
            training.window.validation_days,
            type="integer",
            minimum=1,
            description="Days before the test days that early stopping and tuning use",
        ),
        "test_days": Param(
            training.window.test_days,
            type="integer",
            minimum=1,
            description="Last days of the window, on which the gates score the models",
        ),
        "hyperparameters": Param(
            {}, type="object", description="LightGBM parameters that override config and grid"
        ),
        "tune": Param(bool(training.tuning), type="boolean", description="Train the grid"),
        "gate_mode": Param(
            pipeline.gates.mode,
            type="string",
            enum=["enforce", "dry_run"],
            description="enforce: a failed gate blocks; dry_run: record only",
        ),
        "missing_partitions": Param(
            training.missing_partitions,
            type="string",
            enum=["refuse", "skip"],
            description="A quarantined or missing day in the window: refuse the run, or "
            "skip the day (recorded in the training set's lineage)",
        ),
        "reason": Param("", type="string", description="Why this run (recorded)"),
    }
    with runway_dag(
        pipeline,
        "training",
        description=f"{pipeline.name}: train LightGBM behind evaluation gates, register, promote",
        doc_md=_training_doc(pipeline),
        schedule=schedule,
        max_active_runs=1,
        params=params,
        tags=["training"],
    ) as dag:
        kwargs = {"pipeline_name": pipeline.name}
        build_training_set = PythonOperator(
            task_id="build_training_set",
            python_callable=airflow_tasks.build_training_set,
            op_kwargs=kwargs,
        )
        plan_candidates = PythonOperator(
            task_id="plan_candidates",
            python_callable=airflow_tasks.plan_candidates,
            op_kwargs={**kwargs, "training": build_training_set.output},
        )
        # Each candidate uses every core: run them one after another.
        train_candidate = PythonOperator.partial(
            task_id="train_candidate",
            python_callable=airflow_tasks.train_candidate,
            max_active_tis_per_dagrun=1,
        ).expand(op_kwargs=plan_candidates.output)
        select_best = PythonOperator(
            task_id="select_best",
            python_callable=airflow_tasks.select_best,
            op_kwargs={**kwargs, "results": train_candidate.output},
        )
        evaluate_gates = PythonOperator(
            task_id="evaluate_gates",
            python_callable=airflow_tasks.evaluate_gates,
            op_kwargs={**kwargs, "best": select_best.output},
        )
        register_challenger = PythonOperator(
            task_id="register_challenger",
            python_callable=airflow_tasks.register_challenger,
            op_kwargs={**kwargs, "evaluation": evaluate_gates.output},
        )
        promote_champion = PythonOperator(
            task_id="promote_champion",
            python_callable=airflow_tasks.promote_champion,
            op_kwargs={**kwargs, "registered": register_challenger.output},
        )
        if pipeline.promotion.policy == "manual":
            approve_promotion = ApprovalOperator(
                task_id="approve_promotion",
                subject=f"Promote {pipeline.model_name} to champion?",
                body=(
                    "Challenger v{{ ti.xcom_pull(task_ids='register_challenger')"
                    "['model_version'] }} passed its gates: {{ ti.xcom_pull("
                    "task_ids='register_challenger')['summary'] }}. Decision: "
                    "/runway/decisions/{{ ti.xcom_pull(task_ids='register_challenger')"
                    "['decision_id'] }}"
                ),
                defaults=["Reject"],
                response_timeout=dt.timedelta(hours=pipeline.promotion.approval_timeout_hours),
            )
            register_challenger >> approve_promotion >> promote_champion
        else:
            register_challenger >> promote_champion
    return dag
