"""The expectation suite of one dataset, built from its pipeline-file checks.

:func:`plan_checks` turns a dataset's declared schema and ``checks`` into GX 1.x
expectations, each wrapped in a :class:`PlannedCheck` that remembers Runway's meaning
(severity, column, threshold, how to word a failure). :func:`interpret` turns one GX
result back into :class:`~runway_mlops.validation.results.Failure` objects and the row
positions to quarantine.

Schema first: ``expect_table_columns_to_match_set`` reports missing and unexpected
columns, and one type expectation per declared column checks its canonical dtype
(:data:`runway_mlops.schema.CANONICAL_DTYPE`). Value checks run only on columns that are
present and correctly typed; the others are named in a note instead of making GX compare
text with numbers. Aggregate checks (row count, null fraction, drift) cannot quarantine
single rows, so a ``quarantine`` severity on them blocks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runway_mlops.config import (
    DatasetConfig,
    InReferenceCheck,
    InSetCheck,
    NotNullCheck,
    NullFractionCheck,
    RangeCheck,
    RowCountCheck,
    UniqueCheck,
)
from runway_mlops.schema import has_type
from runway_mlops.validation.gx import exception_message, expectations, unexpected_positions
from runway_mlops.validation.results import Failure

if TYPE_CHECKING:
    import pandas as pd

#: Declared type -> the dtype GX's ``expect_column_type_to_be`` must see in the raw zone.
GX_DTYPE = {
    "int": "Int64",
    "float": "float64",
    "timestamp": "datetime64[ns, UTC]",
    "bool": "boolean",
}


@dataclass
class PlannedCheck:
    """One GX expectation with Runway's meaning attached."""

    expectation: Any
    #: columns | type | row_count | null_fraction | rows | mean | kl | new_values | vanished
    kind: str
    severity: str  # block | warn | quarantine
    expected: str  # what should hold, e.g. "distance in [1, 5100]"
    reason: str  # the problem when it does not, without counts
    column: str | None = None
    threshold: Any = None
    #: Extra words for failure messages (e.g. which days a drift band comes from).
    context: str = ""


@dataclass
class Plan:
    """The checks of one dataset, and what was decided before running GX."""

    checks: list[PlannedCheck] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Declared columns that are present and of their declared type.
    usable: set[str] = field(default_factory=set)


# ------------------------------------------------------------------------- formatting


def num(value: Any) -> str:
    """A number as people write it: 0.83, 1041.2, 1,300."""
    if value is None or isinstance(value, bool):
        return str(value).lower()
    value = float(value)
    if math.isinf(value) or math.isnan(value):
        return "infinite" if math.isinf(value) else "nan"
    if value.is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3g}"


def plain(value: Any) -> Any:
    """``value`` with numpy scalars and timestamps turned into JSON-friendly Python values."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            return str(value)
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def _examples(values: list[Any], limit: int = 3) -> str:
    shown: list[str] = []
    for value in values:
        if isinstance(value, dict):
            text = "(" + ", ".join(str(v) for v in value.values()) + ")"
        elif isinstance(value, float):
            text = num(value)
        else:
            text = str(value)
        if text not in shown:
            shown.append(text)
        if len(shown) == limit:
            break
    return ", ".join(shown)


def _bounds(low: Any, high: Any) -> str:
    if low is None:
        return f"<= {num(high)}"
    if high is None:
        return f">= {num(low)}"
    return f"[{num(low)}, {num(high)}]"


def _bad_values(series: pd.Series, declared: str) -> list[Any]:
    """A few non-null values of a mistyped column that do not read as ``declared``."""
    import pandas as pd

    present = series.dropna()
    if declared in ("int", "float"):
        bad = present[pd.to_numeric(present, errors="coerce").isna()]
    elif declared == "timestamp":
        parsed = pd.to_datetime(present, utc=True, errors="coerce", format="ISO8601")
        bad = present[parsed.isna()]
    else:
        bad = present
    return [repr(v) for v in (bad if len(bad) else present).head(20).tolist()]


# ------------------------------------------------------------------------- planning


def plan_checks(
    config: DatasetConfig, frame: pd.DataFrame, references: Mapping[str, pd.DataFrame]
) -> Plan:
    """The schema and rule checks of one dataset for one day (drift is added separately).

    ``references`` holds the same day's raw frames of the other datasets, for
    ``in_reference`` checks.
    """
    gxe = expectations()
    plan = Plan()
    declared = list(config.columns)
    present = [c for c in declared if c in frame.columns]
    plan.checks.append(
        PlannedCheck(
            gxe.ExpectTableColumnsToMatchSet(column_set=declared, exact_match=True),
            "columns",
            "block",
            f"exactly the declared columns ({', '.join(declared)})",
            "columns differ from the declared schema",
        )
    )
    for column in present:
        kind = config.columns[column]
        expectation = (
            gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=["str"])
            if kind == "string"
            else gxe.ExpectColumnTypeToBe(column=column, type_=GX_DTYPE[kind])
        )
        plan.checks.append(
            PlannedCheck(
                expectation,
                "type",
                "block",
                f"column {column} has type {kind}",
                f"column {column} is not of type {kind}",
                column=column,
                threshold=kind,
            )
        )
        if has_type(frame[column], kind):
            plan.usable.add(column)

    skipped: dict[str, int] = {}
    for check in config.checks:
        columns = check.columns if isinstance(check, UniqueCheck) else []
        if not isinstance(check, RowCountCheck | UniqueCheck):
            columns = [check.column]
        if isinstance(check, NullFractionCheck) and check.where_not_null is not None:
            columns = [*columns, check.where_not_null]
        unusable = [c for c in columns if c not in plan.usable]
        if unusable:
            for column in unusable:
                skipped[column] = skipped.get(column, 0) + 1
            continue
        planned = _rule(check, frame, references, gxe)
        if isinstance(planned, Failure):
            plan.failures.append(planned)
        else:
            plan.checks.append(planned)
    for column, count in skipped.items():
        why = "missing" if column not in frame.columns else "of the wrong type"
        plan.notes.append(f"{count} check(s) on column {column} not evaluated: the column is {why}")
    return plan


def _rule(
    check: Any, frame: pd.DataFrame, references: Mapping[str, pd.DataFrame], gxe: Any
) -> PlannedCheck | Failure:
    # Aggregate checks cannot pick out rows: 'quarantine' on them means 'block'.
    aggregate_severity = "block" if check.severity == "quarantine" else check.severity
    if isinstance(check, RowCountCheck):
        return PlannedCheck(
            gxe.ExpectTableRowCountToBeBetween(min_value=check.min, max_value=check.max),
            "row_count",
            aggregate_severity,
            f"row count {_bounds(check.min, check.max)}",
            f"row count outside {_bounds(check.min, check.max)}",
            threshold=[check.min, check.max],
        )
    if isinstance(check, NullFractionCheck):
        of = check.column
        extra: dict[str, Any] = {}
        if check.where_not_null is not None:
            from great_expectations.expectations.row_conditions import Column

            of = f"{check.column} where {check.where_not_null} is not null"
            extra["row_condition"] = Column(check.where_not_null).is_not_null()
        return PlannedCheck(
            gxe.ExpectColumnProportionOfNonNullValuesToBeBetween(
                column=check.column, min_value=1.0 - check.max, **extra
            ),
            "null_fraction",
            aggregate_severity,
            f"null fraction of {of} <= {num(check.max)}",
            f"null fraction of {of} above {num(check.max)}",
            column=check.column,
            threshold=check.max,
            context=of,
        )
    if isinstance(check, UniqueCheck):
        key = ", ".join(check.columns)
        expectation = (
            gxe.ExpectColumnValuesToBeUnique(column=check.columns[0])
            if len(check.columns) == 1
            else gxe.ExpectCompoundColumnsToBeUnique(column_list=check.columns)
        )
        return PlannedCheck(
            expectation,
            "rows",
            check.severity,
            f"({key}) unique",
            f"duplicate ({key})",
            column=key,
        )
    if isinstance(check, NotNullCheck):
        return PlannedCheck(
            gxe.ExpectColumnValuesToNotBeNull(column=check.column),
            "rows",
            check.severity,
            f"{check.column} not null",
            f"{check.column} null",
            column=check.column,
        )
    if isinstance(check, RangeCheck):
        return PlannedCheck(
            gxe.ExpectColumnValuesToBeBetween(
                column=check.column, min_value=check.min, max_value=check.max
            ),
            "rows",
            check.severity,
            f"{check.column} {_bounds(check.min, check.max)}",
            f"{check.column} outside {_bounds(check.min, check.max)}",
            column=check.column,
            threshold=[check.min, check.max],
        )
    if isinstance(check, InSetCheck):
        shown = "{" + ", ".join(map(str, check.values)) + "}"
        return PlannedCheck(
            gxe.ExpectColumnValuesToBeInSet(column=check.column, value_set=list(check.values)),
            "rows",
            check.severity,
            f"{check.column} in {shown}",
            f"{check.column} not in {shown}",
            column=check.column,
            threshold=list(check.values),
        )
    if isinstance(check, InReferenceCheck):
        source = f"{check.reference}.{check.reference_column}"
        reference = references.get(check.reference)
        if reference is None or check.reference_column not in reference.columns:
            return Failure(
                reason=f"reference {source} unavailable",
                message=f"cannot check {check.column} against {source}: the day's "
                f"{check.reference} delivery has no column {check.reference_column}",
                expectation="expect_column_values_to_be_in_set",
                severity="block",
                column=check.column,
                threshold=source,
            )
        known = {*reference[check.reference_column].dropna().tolist(), *check.also_allow}
        # Only the known values that occur in the column: the same verdict as the whole
        # reference, without GX copying e.g. 1,458 airport codes ~100 times per run.
        seen = set(frame[check.column].dropna().tolist())
        values = sorted((plain(v) for v in known & seen), key=str)
        return PlannedCheck(
            gxe.ExpectColumnValuesToBeInSet(
                column=check.column,
                value_set=values,
                notes=f"The set shown: the {len(known):,} values of {source} that occur "
                f"in this day's {check.column}; any other value is unknown.",
            ),
            "rows",
            check.severity,
            f"{check.column} in {source}",
            f"{check.column} not in {source}",
            column=check.column,
            threshold=source,
        )
    raise TypeError(f"unknown check {check!r}")


# ------------------------------------------------------------------------ interpreting


def interpret(
    check: PlannedCheck, result: Any, frame: pd.DataFrame
) -> tuple[list[Failure], list[int]]:
    """The failures one GX result stands for, and the rows it sends to quarantine."""
    if result.success:
        return [], []
    expectation = str(result.expectation_config.type)
    body = result.result or {}
    error = exception_message(result)
    if error is not None:
        # Never a crash: an expectation GX could not evaluate blocks, naming the check.
        return [
            Failure(
                reason=f"could not evaluate: {check.expected}",
                message=f"could not evaluate '{check.expected}': {error.splitlines()[0]}",
                expectation=expectation,
                severity="block",
                column=check.column,
                threshold=check.threshold,
            )
        ], []

    def failure(
        message: str, observed: Any, severity: str = check.severity, **extra: Any
    ) -> Failure:
        return Failure(
            reason=extra.pop("reason", check.reason),
            message=message,
            expectation=expectation,
            severity=severity,
            column=extra.pop("column", check.column),
            observed=plain(observed),
            threshold=plain(extra.pop("threshold", check.threshold)),
            **extra,
        )

    if check.kind == "columns":
        mismatched = (body.get("details") or {}).get("mismatched") or {}
        found = [
            failure(
                f"column {c} missing",
                "absent",
                reason=f"column {c} missing",
                column=c,
                threshold="present",
            )
            for c in mismatched.get("missing") or []
        ] + [
            failure(
                f"unexpected column {c}",
                "present",
                reason=f"unexpected column {c}",
                column=c,
                threshold="absent",
            )
            for c in mismatched.get("unexpected") or []
        ]
        return found or [failure(check.reason, body.get("observed_value"))], []

    if check.kind == "type":
        assert check.column is not None
        dtype = str(frame[check.column].dtype)
        bad = body.get("partial_unexpected_list") or _bad_values(
            frame[check.column], check.threshold
        )
        return [
            failure(
                f"column {check.column} has type {dtype}, expected {check.threshold} "
                f"(values such as {_examples(bad)})",
                dtype,
            )
        ], []

    observed = body.get("observed_value")
    if check.kind == "row_count":
        low, high = check.threshold
        side = f"< {num(low)}" if low is not None and observed < low else f"> {num(high)}"
        return [failure(f"row count {num(observed)} {side}", observed)], []

    if check.kind == "null_fraction":
        fraction = 1.0 - float(observed) if observed is not None else None
        shown = f"{fraction:.2f}" if fraction is not None else "unknown (no rows)"
        message = (
            f"null fraction of {check.context or check.column} {shown} > {num(check.threshold)}"
        )
        return [failure(message, round(fraction, 4) if fraction is not None else None)], []

    if check.kind == "mean":
        low, high = check.threshold
        message = (
            f"mean of {check.column} {num(observed)} outside "
            f"[{num(low)}, {num(high)}] ({check.context})"
        )
        return [failure(message, observed)], []

    if check.kind == "kl":
        shown = num(observed) if observed is not None else "infinite"
        message = (
            f"KL divergence of {check.column} from the reference window {shown} > "
            f"{num(check.threshold)} ({check.context})"
        )
        return [failure(message, observed if observed is not None else "infinite")], []

    if check.kind == "new_values":
        share = float(body.get("unexpected_percent") or 0.0) / 100
        examples = _examples(body.get("partial_unexpected_list") or [])
        message = (
            f"{share:.1%} of {check.column} values are new to the window (> "
            f"{check.threshold:.1%}; e.g. {examples}) ({check.context})"
        )
        return [failure(message, round(share, 4))], []

    if check.kind == "vanished":
        missing = body.get("partial_missing_list") or []
        message = (
            f"value(s) {_examples(missing, limit=10)} of {check.column}, each at least "
            f"{check.threshold:.1%} of the window, absent ({check.context})"
        )
        return [failure(message, plain(missing))], []

    # Row-level checks: the failing rows are known by position.
    count = int(body.get("unexpected_count") or 0)
    positions = unexpected_positions(result)
    examples = _examples(body.get("partial_unexpected_list") or [])
    message = f"{check.reason} in {count:,} row(s)" + (f" (e.g. {examples})" if examples else "")
    severity = check.severity
    if severity == "quarantine" and positions is None:
        severity = "block"  # cannot tell which rows: keep none of them
        message += "; failing rows unknown, so the day is blocked"
    quarantined = (positions or []) if severity == "quarantine" else []
    return [failure(message, count, severity, rows=count)], quarantined
