"""Validate: judge one day's raw partitions with Great Expectations, route every row.

For each dataset of the pipeline the stage builds a GX 1.x expectation suite from the
pipeline file (:func:`build_expectations`), runs it on the day's raw partition and
routes the data:

* rows failing a ``quarantine`` check go to ``quarantine/`` with their reasons; the
  rest become the ``validated`` partition (typed with the declared schema);
* a failed ``block`` check — or more bad rows than ``max_quarantine_fraction`` — moves
  the whole raw partition to quarantine with the validation result, removes any
  validated partition of that day, and fails the stage naming the failed checks;
* ``warn`` checks are recorded and shown.

Every run writes GX Data Docs and a self-contained summary page to
``<reports_dir>/validation/<pipeline>/ds=<day>/`` (replaced on rerun) and one record per
dataset in the catalog. Nothing depends on the clock: the same day gives the same result.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runway_mlops import catalog
from runway_mlops.config import (
    DatasetConfig,
    InReferenceCheck,
    InSetCheck,
    NotNullCheck,
    NullFractionCheck,
    PipelineConfig,
    PlatformSettings,
    RangeCheck,
    RowCountCheck,
    UniqueCheck,
)
from runway_mlops.errors import DataValidationError, MissingPartitionError
from runway_mlops.lake import Lake
from runway_mlops.schema import has_type

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Check:
    """One expectation with Runway's meaning attached."""

    expectation: Any
    severity: str  # block | warn | quarantine
    description: str


@dataclass
class Failure:
    check: str
    severity: str
    observed: Any = None
    rows: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "severity": self.severity,
            "observed": self.observed,
            "rows": self.rows,
        }


@dataclass
class DatasetResult:
    dataset: str
    outcome: str = "passed"  # passed | warned | blocked
    rows: int = 0
    rows_validated: int = 0
    rows_quarantined: int = 0
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    gx_page: str | None = None

    @property
    def blocking(self) -> list[Failure]:
        return [f for f in self.failures if f.severity == "block"]


@dataclass
class ValidationOutcome:
    pipeline: str
    ds: dt.date
    datasets: dict[str, DatasetResult]
    report_path: Path

    @property
    def outcome(self) -> str:
        outcomes = {r.outcome for r in self.datasets.values()}
        for worst in ("blocked", "warned"):
            if worst in outcomes:
                return worst
        return "passed"

    def summary(self) -> str:
        lines = [f"validated {self.pipeline} {self.ds}: {self.outcome}"]
        for name, r in self.datasets.items():
            line = f"  {name:<10} {r.outcome:<8} {r.rows_validated:>6,} of {r.rows:,} rows"
            if r.rows_quarantined:
                line += f", {r.rows_quarantined:,} quarantined"
            lines.append(line)
            for failure in r.failures:
                lines.append(
                    f"      {failure.severity}: {failure.check} (observed {failure.observed})"
                )
            lines.extend(f"      note: {note}" for note in r.notes)
        lines.append(f"  report: {self.report_path}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- checks


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def reference_means(
    lake: Lake, pipeline: PipelineConfig, dataset: str, ds: dt.date, columns: list[str]
) -> tuple[list[dt.date], pd.DataFrame]:
    """Per-day means of ``columns`` over the trailing window of validated days."""
    import pandas as pd
    import pyarrow.parquet as pq

    config = pipeline.datasets[dataset].drift
    assert config is not None
    first = ds - dt.timedelta(days=config.reference_days)
    days = [d for d in lake.partitions("validated", pipeline.name, dataset) if first <= d < ds]
    rows = []
    for day in days:
        folder = lake.partition_dir("validated", pipeline.name, dataset, day)
        table = pq.read_table(sorted(folder.glob("*.parquet")), columns=columns)
        rows.append(table.to_pandas().mean(numeric_only=True).rename(day))
    return days, pd.DataFrame(rows)


def reference_values(
    lake: Lake, pipeline: PipelineConfig, dataset: str, days: list[dt.date], column: str
) -> pd.Series:
    import pandas as pd
    import pyarrow.parquet as pq

    parts = []
    for day in days:
        folder = lake.partition_dir("validated", pipeline.name, dataset, day)
        parts.append(pq.read_table(sorted(folder.glob("*.parquet")), columns=[column]).to_pandas())
    return pd.concat(parts)[column].dropna().astype(float)


def build_expectations(
    pipeline: PipelineConfig,
    dataset: str,
    frame: pd.DataFrame,
    references: dict[str, pd.DataFrame | None],
    lake: Lake,
    ds: dt.date,
) -> tuple[list[Check], list[Failure], list[str]]:
    """The GX expectations of one dataset for one day.

    Returns the checks to run, failures found before running GX (a missing reference
    snapshot) and notes (e.g. drift skipped for lack of history). Value checks on a
    column that is missing or mistyped are left out: the schema checks report it.
    """
    import great_expectations.expectations as gxe
    import numpy as np

    config: DatasetConfig = pipeline.datasets[dataset]
    checks: list[Check] = []
    pre: list[Failure] = []
    notes: list[str] = []
    declared = list(config.columns)
    present = [c for c in declared if c in frame.columns]
    missing = [c for c in declared if c not in frame.columns]
    extra = [c for c in frame.columns if c not in config.columns]
    what = "columns match the declared schema"
    if missing:
        what += f" (missing: {', '.join(missing)})"
    if extra:
        what += f" (unexpected: {', '.join(map(str, extra))})"
    checks.append(
        Check(
            gxe.ExpectTableColumnsToMatchSet(column_set=declared, exact_match=True), "block", what
        )
    )
    # Types are judged against Runway's canonical dtypes (schema.has_type): GX's type
    # expectations look at per-value Python types for pandas extension dtypes and flag
    # every null of a nullable Int64 column, so they cannot express "Int64 with nulls".
    typed: set[str] = set()
    for column in present:
        kind = config.columns[column]
        if has_type(frame[column], kind):
            typed.add(column)
        else:
            sample = frame[column].dropna().astype(str).head(3).tolist()
            pre.append(
                Failure(
                    f"column {column} has type {kind}",
                    "block",
                    f"{frame[column].dtype} values such as {sample}",
                )
            )

    def usable(column: str) -> bool:
        return column in typed

    for check in config.checks:
        if isinstance(check, RowCountCheck):
            checks.append(
                Check(
                    gxe.ExpectTableRowCountToBeBetween(min_value=check.min, max_value=check.max),
                    check.severity,
                    f"row count in [{check.min}, {check.max}]",
                )
            )
        elif isinstance(check, UniqueCheck):
            if not all(usable(c) for c in check.columns):
                continue
            expectation = (
                gxe.ExpectColumnValuesToBeUnique(column=check.columns[0])
                if len(check.columns) == 1
                else gxe.ExpectCompoundColumnsToBeUnique(column_list=check.columns)
            )
            checks.append(
                Check(expectation, check.severity, f"key ({', '.join(check.columns)}) unique")
            )
        elif isinstance(check, NotNullCheck) and usable(check.column):
            checks.append(
                Check(
                    gxe.ExpectColumnValuesToNotBeNull(column=check.column),
                    check.severity,
                    f"{check.column} not null",
                )
            )
        elif isinstance(check, NullFractionCheck) and usable(check.column):
            checks.append(
                Check(
                    gxe.ExpectColumnValuesToNotBeNull(column=check.column, mostly=1 - check.max),
                    check.severity,
                    f"null fraction of {check.column} <= {_fmt(check.max)}",
                )
            )
        elif isinstance(check, RangeCheck) and usable(check.column):
            checks.append(
                Check(
                    gxe.ExpectColumnValuesToBeBetween(
                        column=check.column, min_value=check.min, max_value=check.max
                    ),
                    check.severity,
                    f"{check.column} in [{_fmt(check.min)}, {_fmt(check.max)}]",
                )
            )
        elif isinstance(check, InSetCheck) and usable(check.column):
            checks.append(
                Check(
                    gxe.ExpectColumnValuesToBeInSet(column=check.column, value_set=check.values),
                    check.severity,
                    f"{check.column} in {{{', '.join(map(str, check.values))}}}",
                )
            )
        elif isinstance(check, InReferenceCheck) and usable(check.column):
            reference = references.get(check.reference)
            what = f"{check.column} is a known {check.reference}.{check.reference_column}"
            if reference is None or check.reference_column not in reference.columns:
                pre.append(Failure(f"{what}: reference {check.reference} unavailable", "block"))
                continue
            values = sorted(reference[check.reference_column].dropna().astype(str).unique())
            checks.append(
                Check(
                    gxe.ExpectColumnValuesToBeInSet(column=check.column, value_set=values),
                    check.severity,
                    what,
                )
            )

    drift = config.drift
    if drift and drift.columns:
        columns = [d.column for d in drift.columns if usable(d.column)]
        days, means = (
            reference_means(lake, pipeline, dataset, ds, columns) if columns else ([], None)
        )
        if len(days) < drift.min_reference_days:
            notes.append(
                f"drift checks skipped: {len(days)} earlier validated day(s) in the "
                f"{drift.reference_days}-day window, {drift.min_reference_days} needed"
            )
        else:
            assert means is not None
            for spec in drift.columns:
                if spec.column not in columns:
                    continue
                daily = means[spec.column].dropna()
                if spec.mean_sigmas is not None and len(daily) >= 2:
                    centre = float(daily.mean())
                    spread = max(float(daily.std(ddof=1)), 1e-9)
                    low = centre - spec.mean_sigmas * spread
                    high = centre + spec.mean_sigmas * spread
                    checks.append(
                        Check(
                            gxe.ExpectColumnMeanToBeBetween(
                                column=spec.column, min_value=low, max_value=high
                            ),
                            spec.severity,
                            f"mean of {spec.column} within {_fmt(float(spec.mean_sigmas))} sd "
                            f"of the last {len(days)} days ({low:.4g} .. {high:.4g})",
                        )
                    )
                if spec.kl_max is not None:
                    values = reference_values(lake, pipeline, dataset, days, spec.column)
                    edges = np.unique(np.quantile(values, np.linspace(0, 1, 11)))
                    if len(edges) >= 3:
                        counts, _ = np.histogram(values, bins=edges)
                        weights = (counts / counts.sum()).tolist()
                        checks.append(
                            Check(
                                gxe.ExpectColumnKLDivergenceToBeLessThan(
                                    column=spec.column,
                                    partition_object={
                                        "bins": edges.tolist(),
                                        "weights": weights,
                                    },
                                    threshold=spec.kl_max,
                                    tail_weight_holdout=0.01,
                                    internal_weight_holdout=0.01,
                                ),
                                spec.severity,
                                f"KL divergence of {spec.column} vs the last {len(days)} days "
                                f"< {_fmt(spec.kl_max)}",
                            )
                        )
    return checks, pre, notes


# ------------------------------------------------------------------------ GX running


class _Runner:
    """One ephemeral GX context for every dataset of one validate() call."""

    def __init__(self, site_dir: Path, pipeline: str, ds: dt.date) -> None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx = gx
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.source = self.context.data_sources.add_pandas("runway")
        self.site_dir = site_dir
        self.context.add_data_docs_site(
            site_name="runway",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(site_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        from great_expectations.core.run_identifier import RunIdentifier

        # A fixed run time derived from the day keeps report paths stable on reruns.
        self.run_id = RunIdentifier(
            run_name=f"{pipeline}-{ds.isoformat()}",
            run_time=dt.datetime.combine(ds, dt.time(), tzinfo=dt.UTC),
        )

    def run(self, dataset: str, frame: pd.DataFrame, checks: list[Check]) -> list[Any]:
        gx = self.gx
        asset = self.source.add_dataframe_asset(dataset)
        batch = asset.add_batch_definition_whole_dataframe("day")
        suite = self.context.suites.add(gx.ExpectationSuite(name=dataset))
        for position, check in enumerate(checks):
            check.expectation.meta = {
                "severity": check.severity,
                "check": check.description,
                "runway_check": position,
            }
            suite.add_expectation(check.expectation)
        definition = self.context.validation_definitions.add(
            gx.ValidationDefinition(name=dataset, data=batch, suite=suite)
        )
        result = definition.run(
            batch_parameters={"dataframe": frame.reset_index(drop=True)},
            result_format={"result_format": "COMPLETE", "partial_unexpected_count": 20},
            run_id=self.run_id,
        )
        # GX returns results in its own order: put them back in the order of ``checks``.
        return sorted(result.results, key=lambda r: r.expectation_config.meta["runway_check"])

    def build_docs(self) -> None:
        self.context.build_data_docs(site_names=["runway"])


def _observed(result: Any) -> Any:
    body = result.result or {}
    if "observed_value" in body and body["observed_value"] is not None:
        value = body["observed_value"]
        return round(float(value), 4) if isinstance(value, float) else value
    if body.get("unexpected_count") is not None:
        shown = body.get("partial_unexpected_list") or []
        return f"{body['unexpected_count']} rows ({body.get('unexpected_percent', 0):.2f}%), e.g. {shown[:5]}"
    info = result.exception_info or {}
    message = info.get("exception_message") if isinstance(info, dict) else None
    return message or "not computable"


# --------------------------------------------------------------------------- the stage


def validate(
    settings: PlatformSettings,
    pipeline: PipelineConfig,
    ds: dt.date,
    *,
    run_id: str | None = None,
    dag_id: str | None = None,
) -> ValidationOutcome:
    """Validate day ``ds`` of every dataset; raise DataValidationError if any is blocked."""

    lake = Lake(settings.lake_dir)
    frames: dict[str, pd.DataFrame] = {}
    missing = [d for d in pipeline.datasets if not lake.exists("raw", pipeline.name, d, ds)]
    if missing:
        raise MissingPartitionError(
            f"cannot validate {pipeline.name} for {ds}: no raw partition of "
            f"{', '.join(missing)}; run `runway run ingest --pipeline {pipeline.name} "
            f"--date {ds}` first"
        )
    for name in pipeline.datasets:
        frames[name] = lake.read_frame("raw", pipeline.name, name, ds)

    report_dir = settings.reports_dir / "validation" / pipeline.name / f"ds={ds.isoformat()}"
    staging = report_dir.with_name(report_dir.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    runner = _Runner(staging / "gx", pipeline.name, ds)
    results: dict[str, DatasetResult] = {}
    routed: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    for name, frame in frames.items():
        checks, pre, notes = build_expectations(pipeline, name, frame, frames, lake, ds)
        outcome = runner.run(name, frame, checks)
        result = DatasetResult(dataset=name, rows=len(frame), notes=notes, failures=list(pre))
        bad_rows: dict[int, list[str]] = {}
        for check, gx_result in zip(checks, outcome, strict=True):
            if gx_result.success:
                continue
            body = gx_result.result or {}
            indices = body.get("unexpected_index_list")
            if check.severity == "quarantine" and indices is not None:
                for index in indices:
                    position = int(index) if not isinstance(index, dict) else int(index["index"])
                    bad_rows.setdefault(position, []).append(check.description)
                result.failures.append(
                    Failure(check.description, "quarantine", _observed(gx_result), len(indices))
                )
            else:
                severity = "block" if check.severity == "quarantine" else check.severity
                result.failures.append(Failure(check.description, severity, _observed(gx_result)))
        result.rows_quarantined = len(bad_rows)
        limit = pipeline.datasets[name].max_quarantine_fraction
        if frame.shape[0] and len(bad_rows) / frame.shape[0] > limit:
            result.failures.append(
                Failure(
                    f"quarantined rows <= {limit:.0%} of the day",
                    "block",
                    f"{len(bad_rows)} of {len(frame)} ({len(bad_rows) / len(frame):.1%})",
                )
            )
        if result.blocking:
            result.outcome = "blocked"
        elif any(f.severity == "warn" for f in result.failures):
            result.outcome = "warned"
        positions = sorted(bad_rows)
        clean = frame.reset_index(drop=True)
        rejected = clean.iloc[positions].copy()
        rejected["_reasons"] = ["; ".join(bad_rows[p]) for p in positions]
        routed[name] = (clean.drop(index=positions), rejected)
        results[name] = result

    runner.build_docs()
    _write_index(staging, pipeline.name, ds, results)
    shutil.rmtree(report_dir, ignore_errors=True)
    report_dir.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(report_dir)
    for result in results.values():
        result.gx_page = _gx_page(report_dir, result.dataset)

    for name, result in results.items():
        _publish(
            settings,
            lake,
            pipeline,
            ds,
            name,
            result,
            routed[name],
            frames[name],
            report_dir,
            run_id,
            dag_id,
        )

    validation = ValidationOutcome(pipeline.name, ds, results, report_dir / "index.html")
    blocked = [r for r in results.values() if r.outcome == "blocked"]
    if blocked:
        detail = "; ".join(
            f"{r.dataset} blocked: "
            + ", ".join(f"{f.check} (observed {f.observed})" for f in r.blocking)
            for r in blocked
        )
        raise DataValidationError(
            f"{pipeline.name} {ds}: {detail}. The day is in quarantine "
            f"(`runway quarantine list --date {ds}`); report: {report_dir / 'index.html'}",
            failures=[f.as_dict() for r in blocked for f in r.blocking],
        )
    return validation


def _validation_id(pipeline: str, dataset: str, ds: dt.date) -> str:
    return hashlib.sha256(f"{pipeline}/{dataset}/{ds}".encode()).hexdigest()[:16]


def _arrow_schema(config: DatasetConfig, frame: pd.DataFrame) -> Any:
    import pyarrow as pa

    arrow = {
        "int": pa.int64(),
        "float": pa.float64(),
        "string": pa.string(),
        "timestamp": pa.timestamp("us", tz="UTC"),  # Spark reads microseconds only
        "bool": pa.bool_(),
    }
    return pa.schema([(c, arrow[t]) for c, t in config.columns.items() if c in frame.columns])


def _publish(
    settings: PlatformSettings,
    lake: Lake,
    pipeline: PipelineConfig,
    ds: dt.date,
    name: str,
    result: DatasetResult,
    routed: tuple[pd.DataFrame, pd.DataFrame],
    raw: pd.DataFrame,
    report_dir: Path,
    run_id: str | None,
    dag_id: str | None,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    config = pipeline.datasets[name]
    validation_id = _validation_id(pipeline.name, name, ds)
    good, rejected = routed
    entries: list[catalog.QuarantineEntry] = []
    details = {
        "validation_id": validation_id,
        "outcome": result.outcome,
        "failures": [f.as_dict() for f in result.failures],
        "run_id": run_id,
    }
    if result.outcome == "blocked":
        reasons = {f.check: f.rows for f in result.blocking}
        with lake.publish(
            "quarantine", pipeline.name, name, ds, {"scope": "partition", **details}
        ) as folder:
            pq.write_table(
                pa.Table.from_pandas(raw, preserve_index=False), folder / "part-0.parquet"
            )
            (folder / "validation.json").write_text(json.dumps(details, indent=2, default=str))
        entries.append(
            catalog.QuarantineEntry(
                pipeline=pipeline.name,
                dataset=name,
                ds=ds,
                scope="partition",
                rows=len(raw),
                reasons=reasons,
                path=str(lake.partition_dir("quarantine", pipeline.name, name, ds)),
                validation_id=validation_id,
                run_id=run_id,
            )
        )
        if lake.remove("validated", pipeline.name, name, ds):
            catalog.forget_partition(
                settings.database_url, pipeline=pipeline.name, dataset=name, zone="validated", ds=ds
            )
    else:
        table = pa.Table.from_pandas(good, schema=_arrow_schema(config, good), preserve_index=False)
        with lake.publish(
            "validated", pipeline.name, name, ds, {**details, "rows": len(good)}
        ) as folder:
            pq.write_table(table, folder / "part-0.parquet")
        result.rows_validated = len(good)
        catalog.record_partition(
            settings.database_url,
            pipeline=pipeline.name,
            dataset=name,
            zone="validated",
            ds=ds,
            rows=len(good),
            path=str(lake.partition_dir("validated", pipeline.name, name, ds)),
            details={"validation_id": validation_id, "outcome": result.outcome},
            run_id=run_id,
        )
        if len(rejected):
            counts: dict[str, int] = {}
            for text in rejected["_reasons"]:
                for reason in text.split("; "):
                    counts[reason] = counts.get(reason, 0) + 1
            with lake.publish(
                "quarantine", pipeline.name, name, ds, {"scope": "rows", **details}
            ) as folder:
                pq.write_table(
                    pa.Table.from_pandas(rejected, preserve_index=False), folder / "part-0.parquet"
                )
            entries.append(
                catalog.QuarantineEntry(
                    pipeline=pipeline.name,
                    dataset=name,
                    ds=ds,
                    scope="rows",
                    rows=len(rejected),
                    reasons=counts,
                    path=str(lake.partition_dir("quarantine", pipeline.name, name, ds)),
                    validation_id=validation_id,
                    run_id=run_id,
                )
            )
        elif lake.remove("quarantine", pipeline.name, name, ds):
            pass  # an earlier run's quarantine of this day no longer applies
    catalog.record_validation(
        settings.database_url,
        catalog.ValidationRecord(
            validation_id=validation_id,
            pipeline=pipeline.name,
            dataset=name,
            ds=ds,
            outcome=result.outcome,
            rows=result.rows,
            rows_quarantined=len(raw) if result.outcome == "blocked" else result.rows_quarantined,
            failures=[f.as_dict() for f in result.failures],
            report_path=str(report_dir / "index.html"),
            dag_id=dag_id,
            run_id=run_id,
        ),
        entries,
    )


# --------------------------------------------------------------------------- reports


def _gx_page(report_dir: Path, dataset: str) -> str | None:
    pages = sorted((report_dir / "gx" / "validations" / dataset).rglob("*.html"))
    return str(pages[-1].relative_to(report_dir)) if pages else None


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1a202c;max-width:70rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}
th,td{border:1px solid #cbd5e0;padding:.35rem .6rem;text-align:left;vertical-align:top}
th{background:#edf2f7}.passed{color:#276749}.warned{color:#975a16}.blocked{color:#c53030}
.block{color:#c53030;font-weight:600}.warn{color:#975a16}.quarantine{color:#6b46c1}
code{background:#edf2f7;padding:0 .2rem}
"""


def _write_index(
    folder: Path, pipeline: str, ds: dt.date, results: dict[str, DatasetResult]
) -> None:
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Validation {esc(pipeline)} {ds}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Validation report: {esc(pipeline)}, {ds}</h1>",
        "<table><tr><th>dataset</th><th>outcome</th><th>rows</th><th>quarantined rows</th>"
        "<th>Great Expectations page</th></tr>",
    ]
    for name, r in results.items():
        page = _gx_page(folder, name)
        link = f"<a href='{esc(page)}'>expectations and results</a>" if page else "—"
        parts.append(
            f"<tr><td>{esc(name)}</td><td class='{r.outcome}'>{r.outcome}</td>"
            f"<td>{r.rows:,}</td><td>{r.rows_quarantined:,}</td><td>{link}</td></tr>"
        )
    parts.append("</table>")
    for name, r in results.items():
        if not (r.failures or r.notes):
            continue
        parts.append(
            f"<h2>{esc(name)}</h2><table><tr><th>severity</th><th>check</th>"
            "<th>observed</th><th>rows</th></tr>"
        )
        for f in r.failures:
            parts.append(
                f"<tr><td class='{f.severity}'>{f.severity}</td><td>{esc(f.check)}</td>"
                f"<td>{esc(str(f.observed))}</td><td>{f.rows or ''}</td></tr>"
            )
        parts.append("</table>")
        parts.extend(f"<p>Note: {esc(n)}</p>" for n in r.notes)
    parts.append(
        "<p>Quarantined data: <code>runway quarantine list --pipeline "
        f"{esc(pipeline)} --date {ds}</code>. The Great Expectations pages load their "
        "styles from a CDN; without internet they show unstyled but complete.</p>"
        "</body></html>"
    )
    (folder / "index.html").write_text("\n".join(parts))
