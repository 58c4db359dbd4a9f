"""The DAG factory: every ``config/pipelines/<name>.yaml`` becomes its Airflow DAGs.

``dags/runway_pipelines.py`` calls :func:`build_dags` and hands the result to Airflow, so
a new pipeline is a new YAML file. Building the DAGs reads YAML and nothing else: no
database, no network, no pandas/Spark/GX import (those load inside the tasks).

The feature pipeline, one DAG per pipeline (``<name>_features``)::

    ingest_raw >> validate_raw >> wait_for_history >> build_features  --> Asset "<name>_features"

Each run owns the local calendar day its data interval starts on (the pipeline's
``timezone``); the schedule is the pipeline's ``cadence``. ``catchup`` is off: history is
loaded with a backfill (UI, ``airflow backfill create`` or the REST API).

The training pipeline, one DAG per pipeline with a ``training`` block
(``<name>_training``)::

    build_training_set >> plan_candidates >> train_candidate (mapped, one per grid point)
        >> select_best >> evaluate_gates >> register_challenger
        [>> approve_promotion]  >> promote_champion

scheduled by ``training.schedule`` (a cadence, ``features`` = after each feature Asset
update, or none), triggered with ``params`` from the UI, or by the monitoring pipeline.

The inference pipeline (``<name>_inference``, with an ``inference`` block), on the
pipeline's cadence like the features::

    wait_for_features >> score_champion >> score_shadow

The monitoring pipeline (``<name>_monitoring``, with a ``monitoring`` block), on the same
cadence; a run of interval X monitors day X - ``outcome_delay_days``::

    wait_for_outcomes >> compute_monitoring >> decide_policies >> write_report
                                               decide_policies >> should_retrain >> trigger_retraining
"""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runway_mlops.cadence import cron
from runway_mlops.config import PipelineConfig, PlatformSettings, load_pipelines, load_settings
from runway_mlops.errors import PipelineConfigErrors

if TYPE_CHECKING:
    from airflow.sdk import DAG, Asset


#: Whether DAGs built now register with the DAG file being parsed (Airflow's default).
#: :func:`raise_pipeline_errors` builds every DAG only to find the ones that fail: those
#: must not register a second time from its own DAG file.
_registering = True


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


def _dag_dates(pipeline: PipelineConfig) -> tuple[Any, Any, Any]:
    """(time zone, first interval start, end or None) of a pipeline's DAGs, local midnights."""
    import pendulum

    zone = pendulum.timezone(pipeline.timezone)
    first = pipeline.start_date
    start = pendulum.datetime(first.year, first.month, first.day, tz=zone)
    end = None
    if pipeline.end_date:
        last = pipeline.end_date + dt.timedelta(days=1)
        end = pendulum.datetime(last.year, last.month, last.day, tz=zone)
    return zone, start, end


def _default_args(pipeline: PipelineConfig) -> dict[str, Any]:
    return {
        "owner": pipeline.owner,
        "retries": pipeline.retries,
        "retry_delay": dt.timedelta(seconds=pipeline.retry_delay_seconds),
    }


def build_feature_dag(pipeline: PipelineConfig, settings: PlatformSettings) -> DAG:
    """``<pipeline>_features``: ingest_raw >> validate_raw >> wait_for_history >> build_features."""
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
    from airflow.timetables.interval import CronDataIntervalTimetable

    from runway_mlops.orchestration import tasks as airflow_tasks

    zone, start, end = _dag_dates(pipeline)
    default_args = _default_args(pipeline)
    if pipeline.micro_batch:
        # The days the batch changed, as validate_raw handed them on.
        days_task: str | None = "validate_raw"
        days = ["--days", "{{ ti.xcom_pull(task_ids='validate_raw')['days'] | join(',') }}"]
    else:
        day = f"{{{{ data_interval_start.in_timezone('{pipeline.timezone}').to_date_string() }}}}"
        days_task, days = None, ["--ds", day]
    with DAG(
        auto_register=_registering,
        dag_id=f"{pipeline.name}_features",
        description=f"{pipeline.name}: ingest, validate and build features for one interval",
        doc_md=_doc(pipeline),
        schedule=CronDataIntervalTimetable(cron(pipeline.cadence), timezone=zone),
        start_date=start,
        # A stream has no end; micro-batches depend on the commit of the one before.
        end_date=None if pipeline.micro_batch else end,
        catchup=False,
        max_active_runs=1 if pipeline.micro_batch else pipeline.max_active_runs,
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
        build_features = _feature_job(
            pipeline,
            settings,
            days,
            days_task,
            "Spark job: the point-in-time-correct feature partition of the day.",
        )
        ingest_raw >> validate_raw >> _wait_for_history(pipeline, days_task) >> build_features
    return dag


def build_backfill_dag(pipeline: PipelineConfig, settings: PlatformSettings) -> DAG:
    """``<pipeline>_features_backfill``: runs ``backfill_interval`` wide, days kept apart.

    ::

        plan_days >> day.ingest_raw >> day.validate_raw   (a mapped task group per day)
                  >> validated_days >> wait_for_history >> build_features  (one Spark job)
                     day.*          >> check_days         (fails naming days that failed)
    """
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG, TriggerRule, task_group
    from airflow.timetables.interval import CronDataIntervalTimetable

    from runway_mlops.orchestration import tasks as airflow_tasks

    assert pipeline.backfill_interval is not None
    zone, start, end = _dag_dates(pipeline)
    kwargs = {"pipeline_name": pipeline.name}
    with DAG(
        auto_register=_registering,
        dag_id=f"{pipeline.name}_features_backfill",
        description=f"{pipeline.name}: features for {pipeline.backfill_interval} intervals, "
        "one partition per day",
        doc_md=textwrap.dedent(
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
        ),
        schedule=CronDataIntervalTimetable(cron(pipeline.backfill_interval), timezone=zone),
        start_date=start,
        end_date=end,
        catchup=False,
        max_active_runs=pipeline.max_active_runs,
        default_args=_default_args(pipeline),
        tags=["runway", "features", "backfill", pipeline.name, *pipeline.tags],
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
    from airflow.sdk import DAG, Param
    from airflow.timetables.interval import CronDataIntervalTimetable

    from runway_mlops.orchestration import tasks as airflow_tasks

    training = pipeline.training
    assert training is not None
    zone, start, end = _dag_dates(pipeline)
    schedule: Any
    if training.schedule is None:
        schedule = None
    elif training.schedule == "features":
        schedule = [feature_asset(pipeline.name)]
    else:
        schedule = CronDataIntervalTimetable(cron(training.schedule), timezone=zone)
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
    with DAG(
        auto_register=_registering,
        dag_id=f"{pipeline.name}_training",
        description=f"{pipeline.name}: train LightGBM behind evaluation gates, register, promote",
        doc_md=_training_doc(pipeline),
        schedule=schedule,
        start_date=start,
        end_date=end,
        catchup=False,
        max_active_runs=1,
        params=params,
        default_args=_default_args(pipeline),
        tags=["runway", "training", pipeline.name, *pipeline.tags],
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


def _interval_timetable(pipeline: PipelineConfig, cadence: str | None = None) -> Any:
    from airflow.timetables.interval import CronDataIntervalTimetable

    zone, _, _ = _dag_dates(pipeline)
    return CronDataIntervalTimetable(cron(cadence or pipeline.cadence), timezone=zone)


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
    from airflow.sdk import DAG, Param

    from runway_mlops.orchestration import tasks as airflow_tasks
    from runway_mlops.orchestration.operators import PartitionSensor

    inference = pipeline.inference
    assert inference is not None
    if pipeline.micro_batch:
        return _micro_batch_inference_dag(pipeline)
    _, start, end = _dag_dates(pipeline)
    kwargs = {"pipeline_name": pipeline.name}
    with DAG(
        auto_register=_registering,
        dag_id=f"{pipeline.name}_inference",
        description=f"{pipeline.name}: score each interval with the champion (and shadows)",
        doc_md=_inference_doc(pipeline),
        schedule=_interval_timetable(pipeline),
        start_date=start,
        end_date=end,
        catchup=False,
        max_active_runs=pipeline.max_active_runs,
        default_args=_default_args(pipeline),
        params={
            "model": Param(
                None,
                type=["null", "string"],
                pattern=r"^(champion|recorded|[0-9]+)$",
                description="champion | recorded | a version; empty: champion on scheduled "
                f"runs, {inference.backfill_model} in backfills",
            )
        },
        tags=["runway", "inference", pipeline.name, *pipeline.tags],
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


def _micro_batch_inference_dag(pipeline: PipelineConfig) -> DAG:
    """On a micro-batch cadence: a run per feature update, scoring only the new rows."""
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG

    from runway_mlops.orchestration import tasks as airflow_tasks

    _, start, _ = _dag_dates(pipeline)
    with DAG(
        auto_register=_registering,
        dag_id=f"{pipeline.name}_inference",
        description=f"{pipeline.name}: score each micro-batch's new rows before their event",
        doc_md=textwrap.dedent(
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
        ),
        schedule=[feature_asset(pipeline.name)],
        start_date=start,
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(pipeline),
        tags=["runway", "inference", "micro-batch", pipeline.name, *pipeline.tags],
    ) as dag:
        PythonOperator(
            task_id="score_new",
            python_callable=airflow_tasks.score_micro_batch,
            op_kwargs={"pipeline_name": pipeline.name},
            doc_md="Score the new rows of the days the triggering feature updates changed.",
        )
    return dag


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
    from airflow.sdk import DAG

    from runway_mlops.orchestration import tasks as airflow_tasks
    from runway_mlops.orchestration.operators import PartitionSensor

    monitoring = pipeline.monitoring
    assert monitoring is not None
    _, start, end = _dag_dates(pipeline)
    kwargs = {"pipeline_name": pipeline.name}
    with DAG(
        auto_register=_registering,
        dag_id=f"{pipeline.name}_monitoring",
        description=f"{pipeline.name}: realised quality, drift, retraining, promotion, rollback",
        doc_md=_monitoring_doc(pipeline),
        # Outcomes are judged per day, also when features and scores come in micro-batches.
        schedule=_interval_timetable(pipeline, "@daily" if pipeline.micro_batch else None),
        start_date=start,
        end_date=end,
        catchup=False,
        # Policies read the decisions of earlier days (cooldown, probation): one at a time.
        max_active_runs=1,
        default_args=_default_args(pipeline),
        tags=["runway", "monitoring", pipeline.name, *pipeline.tags],
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


def build_dags(
    config_dir: Path | None = None, *, problems: dict[str, str] | None = None
) -> dict[str, DAG]:
    """Every pipeline's DAGs, keyed by dag_id (for a DAG file's ``globals()``).

    A pipeline whose file does not load, or whose DAGs cannot be built, raises; with
    ``problems`` given, its DAGs are left out and its error recorded there (file ->
    message), so the other pipelines' DAGs still load. ``dags/runway_pipelines.py``
    builds what it can; ``dags/runway_pipeline_errors.py`` turns ``problems`` into an
    import error Airflow shows.
    """
    settings = load_settings(config_dir)
    dags: dict[str, DAG] = {}
    pipelines = load_pipelines(settings.config_dir, problems=problems)
    for pipeline in pipelines.values():
        try:
            built = _build_pipeline(pipeline, settings)
        except Exception as exc:
            if problems is None:
                raise
            where = settings.pipelines_dir / f"{pipeline.name}.yaml"
            problems[str(where)] = (
                f"{where}: the DAGs of pipeline {pipeline.name!r} cannot be built: "
                f"{type(exc).__name__}: {exc}"
            )
            continue
        for dag in built:
            dags[dag.dag_id] = dag
    return dags


def _build_pipeline(pipeline: PipelineConfig, settings: PlatformSettings) -> list[DAG]:
    built = [build_feature_dag(pipeline, settings)]
    if pipeline.backfill_interval:
        built.append(build_backfill_dag(pipeline, settings))
    if pipeline.training is not None:
        built.append(build_training_dag(pipeline, settings))
    if pipeline.inference is not None:
        built.append(build_inference_dag(pipeline, settings))
    if pipeline.monitoring is not None:
        built.append(build_monitoring_dag(pipeline, settings))
    return built


def raise_pipeline_errors(config_dir: Path | None = None) -> None:
    """Raise :class:`PipelineConfigErrors` naming each broken pipeline file, if any."""
    global _registering
    problems: dict[str, str] = {}
    _registering = False
    try:
        build_dags(config_dir, problems=problems)
    finally:
        _registering = True
    if problems:
        raise PipelineConfigErrors(problems)
