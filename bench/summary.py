"""``make bench``'s last step: one table of figures, each beside its reference.

    .venv/bin/python bench/summary.py [--readme bench/README.md]

Reads what the other benches wrote to ``bench/results/`` in this run (each bench's own
JSON: values and the bare references measured in the same run, on the same machine) and
writes ``bench/results/latest.json`` and the Markdown table between the markers
``<!-- bench-table:start -->`` and ``<!-- bench-table:end -->`` of ``bench/README.md``.
A figure whose bench did not run (or failed) is listed as not measured, never carried
over from an older file: every row of the table comes from the files present now.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import RESULTS, machine  # noqa: E402

README = Path(__file__).resolve().parent / "README.md"
START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"
YEAR = "backfill_flights_features_backfill_2013-01-01_2013-12-31"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _figure(
    number: int,
    name: str,
    value: float | None,
    unit: str,
    reference: float | None = None,
    reference_name: str = "",
    *,
    higher_is_better: bool = False,
    source: str,
) -> dict[str, Any]:
    """One row; ``ratio`` = value / reference. For times lower is better; for throughputs
    (``higher_is_better``) a ratio below 1 means slower than the reference."""
    ratio = None
    if value is not None and reference:
        ratio = value / reference
        ratio = round(ratio, 2 if ratio < 10 else 1)
    return {
        "figure": number,
        "name": name,
        "value": value,
        "unit": unit,
        "reference": reference,
        "reference_name": reference_name,
        "ratio": ratio,
        "higher_is_better": higher_is_better,
        "source": source,
    }


def end_to_end() -> list[dict[str, Any]]:
    year = _load(f"{YEAR}_end_to_end") or _load(YEAR)
    plain = _load("plain_year")
    rows = []
    src = "year_backfill.py --end-to-end, plain_year.py"
    plain_features = plain["features_s"] if plain else None
    plain_all = None
    if plain:
        plain_all = round(plain["load_s"] + plain["features_s"] + plain["train_s"], 2)
        plain_all = round(plain_all + plain["score_s"], 2)
    if year and "end_to_end" in year:
        e2e = year["end_to_end"]
        rows.append(
            _figure(
                1,
                "year end to end: 365-day feature backfill + train Jan–Sep + score "
                "Oct–Dec, through Airflow",
                e2e["total_s"],
                "s",
                plain_all,
                "plain pandas + LightGBM script (load, features, train, score)",
                source=src,
            )  # fmt: skip
        )
        rows.append(
            _figure(
                1,
                "of which training (one `flights_training` run)",
                e2e["training_s"],
                "s",
                plain["train_s"] if plain else None,
                "plain `lgb.train`",
                source=src,
            )  # fmt: skip
        )
        rows.append(
            _figure(
                1,
                f"of which scoring Oct–Dec ({e2e['scoring_days']} inference runs)",
                e2e["scoring_s"],
                "s",
                plain["score_s"] if plain else None,
                "plain `Booster.predict` of Oct–Dec",
                source=src,
            )  # fmt: skip
        )
    if year:
        rows.append(
            _figure(
                1,
                "365-day feature backfill through Airflow (month-wide runs)",
                year["backfill_wall_s"],
                "s",
                plain_features,
                "plain pandas features for the year",
                source=src,
            )  # fmt: skip
        )
    return rows


def orchestration() -> list[dict[str, Any]]:
    rows = []
    for name, label in ((YEAR, "month-wide runs"), ("feature_backfill", "day-wide runs")):
        run = _load(name) or (_load(f"{YEAR}_end_to_end") if name == YEAR else None)
        if not run:
            continue
        src = "year_backfill.py" if name == YEAR else "feature_backfill.py"
        wall, overhead = run["median_run_wall_s"], run["median_run_overhead_s"]
        if overhead >= 0:
            rows.append(
                _figure(
                    2,
                    f"Airflow overhead per run ({label}): wall − task durations",
                    overhead,
                    "s",
                    wall,
                    "median run wall time",
                    source=src,
                )  # fmt: skip
            )
            rows.append(
                _figure(
                    2,
                    f"median gap between dependent tasks ({label})",
                    run["median_gap_between_tasks_s"],
                    "s",
                    source=src,
                )  # fmt: skip
            )
        else:
            # A month-wide run's mapped day tasks overlap: wall minus summed durations says
            # nothing there; the task-seconds and the queueing below do.
            rows.append(
                _figure(
                    2,
                    f"task-seconds per run ({label}; mapped tasks overlap)",
                    run["median_run_work_s"],
                    "s",
                    wall,
                    "median run wall time",
                    source=src,
                )  # fmt: skip
            )
        waits = [t["median_queued_to_running_s"] for t in run["tasks"].values()]
        waits = [w for w in waits if w is not None]
        if waits:
            rows.append(
                _figure(
                    2, f"queued → running, worst task median ({label})", max(waits), "s", source=src
                )  # fmt: skip
            )
    return rows


def spark() -> list[dict[str, Any]]:
    rows = []
    daily = _load("feature_backfill")
    if daily and "spark_submit_session_s" in daily:
        build = daily["tasks"].get("build_features", {}).get("median_duration_s")
        rows.append(
            _figure(
                3,
                "Spark start: spark-submit of an app that only opens a session",
                daily["spark_submit_session_s"],
                "s",
                build,
                "a day's `build_features` task",
                source="feature_backfill.py",
            )  # fmt: skip
        )
        if build:
            rows.append(
                _figure(
                    3,
                    "feature job per partition, day-wide runs (one job per day)",
                    build,
                    "s",
                    source="feature_backfill.py",
                )  # fmt: skip
            )
    year = _load(YEAR) or _load(f"{YEAR}_end_to_end")
    if year:
        build = year["tasks"].get("build_features", {}).get("median_duration_s")
        if build:
            # analyse() replaces the run count with the list of runs.
            per_day = round(build * len(year["runs"]) / year["days"], 2)
            rows.append(
                _figure(
                    3,
                    "feature job per partition, month-wide runs (one job per month)",
                    per_day,
                    "s",
                    source="year_backfill.py",
                )  # fmt: skip
            )
    return rows


#: validation.py's headline figures, in table order.
VALIDATION = {
    "validate_day_in_process": "`validate` one day, 5 datasets, in-process",
    "validate_day_gx_checks_suites": "of which GX running the suites (92 expectations)",
    "validate_day_fresh_process": "`validate` one day in a fresh process (a task without preload)",
    "s_per_expectation_per_mrow_x10": "GX flights suite per expectation per M rows, ×10 day",
    "marginal_s_per_expectation_per_mrow_x10_x50": "GX per expectation per extra M rows "
    "(×10 → ×50)",
}


def validation() -> list[dict[str, Any]]:
    result = _load("validation")
    if not result:
        return []
    figures = result.get("figures", {})
    reference = {
        "validate_day_fresh_process": "the same call in-process",
    }
    return [
        _figure(
            4,
            label,
            figures[key]["value"],
            figures[key]["unit"],
            figures[key].get("reference"),
            reference.get(key, "the same checks in plain pandas/pyarrow"),
            source="validation.py",
        )  # fmt: skip
        for key, label in VALIDATION.items()
        if key in figures
    ]


def training() -> list[dict[str, Any]]:
    result = _load("training")
    if not result:
        return []
    m = result["medians_s"]
    src = "training.py"
    chain = m["train_candidate_s"] + m["evaluate_gates_s"] + m["register_promote_s"]
    bare = m["bare_train_s"] + m["bare_score_s"] + m["bare_register_promote_s"]
    return [
        _figure(5, "train one candidate (`train_candidate`)", m["train_candidate_s"], "s",
                m["bare_train_s"], "bare `lgb.Dataset` + `lgb.train`", source=src),
        _figure(5, "of which LightGBM (`train_seconds`: prepare + train)",
                m["train_booster_s"], "s", m["bare_train_s"], "bare `lgb.train`", source=src),
        _figure(5, "tracking and gates: `evaluate_gates`", m["evaluate_gates_s"], "s",
                m["bare_score_s"], "predict 2 boosters + ROC AUC, log loss", source=src),
        _figure(5, "train → gates → register → promote", round(chain, 3), "s",
                round(bare, 3), "bare equivalents", source=src),
    ]  # fmt: skip


def scoring() -> list[dict[str, Any]]:
    result = _load("scoring")
    if not result:
        return []
    rows = []
    for t in result["throughput"]:
        rate = t["rows_per_s"]
        rows.append(
            _figure(
                6,
                f"scoring throughput, {t['rows']:,} rows",
                rate["runway"],
                "rows/s",
                rate["bare"],
                "bare `Booster.predict`, same booster and threads",
                higher_is_better=True,
                source="scoring.py",
            )  # fmt: skip
        )
    return rows


SECTIONS: tuple[Callable[[], list[dict[str, Any]]], ...] = (
    end_to_end,
    orchestration,
    spark,
    validation,
    training,
    scoring,
)


def _fmt(x: Any) -> str:
    if x is None:
        return "—"
    if isinstance(x, float) and abs(x) >= 1000 or isinstance(x, int):
        return f"{x:,.0f}"
    return f"{x:g}"


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"Generated {result['generated_at']} by `bench/summary.py` (the last step of "
        f"`make bench`) on {m['cores']} cores, {m['memory_mib'] / 1024:.0f} GiB, Python "
        f"{m['python']}, from the results in `bench/results/`. Each reference was measured "
        "by the same bench run as its value, on the same machine. Ratio = value / reference "
        "(times: lower is better; rows/s: higher is better).",
        "",
        "| # | figure | value | reference | ratio | bench |",
        "|---|---|---|---|---|---|",
    ]
    for f in result["figures"]:
        ref = f"{_fmt(f['reference'])} {f['unit']}" if f["reference"] is not None else "—"
        if f["reference_name"] and f["reference"] is not None:
            ref += f" ({f['reference_name']})"
        ratio = f"{f['ratio']:g} ×" if f["ratio"] is not None else "—"
        lines.append(
            f"| {f['figure']} | {f['name']} | {_fmt(f['value'])} {f['unit']} | {ref} "
            f"| {ratio} | `{f['source']}` |"
        )
    missing = result["not_measured"]
    if missing:
        lines += ["", f"Not measured in this run: figure(s) {', '.join(map(str, missing))}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    figures = [row for section in SECTIONS for row in section()]
    present = {f["figure"] for f in figures}
    result = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "figures": figures,
        "not_measured": [n for n in range(1, 7) if n not in present],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    text = args.readme.read_text()
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        args.readme.write_text(f"{head}{START}\n{table}\n{END}{tail}")
    print(table)
    print(f"\nwritten to {RESULTS / 'latest.json'} and {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
