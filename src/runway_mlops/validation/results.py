"""What validation found: failed checks, per-dataset results and the outcome of one run.

Plain dataclasses without pandas or Great Expectations, so the CLI, the Airflow task and
the catalog can carry them cheaply. Every value in :meth:`Failure.as_dict` is
JSON-serialisable: it is stored in the catalog and in the quarantine zone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Outcome = Literal["passed", "warned", "blocked"]


@dataclass(frozen=True)
class Failure:
    """One failed expectation and what Runway does about it.

    ``reason`` names the problem without counts ("dest not in airports.faa"): it is the
    ``_reasons`` value of quarantined rows. ``message`` adds what was observed
    ("dest not in airports.faa in 23 rows, e.g. BQN, SJU") and is what people read.
    """

    reason: str
    message: str
    expectation: str  # the Great Expectations type, e.g. expect_column_values_to_not_be_null
    severity: str  # block | warn | quarantine (as applied, after any escalation)
    column: str | None = None
    observed: Any = None
    threshold: Any = None
    rows: int = 0  # rows that failed a row-level check

    def as_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "message": self.message,
            "expectation": self.expectation,
            "severity": self.severity,
            "column": self.column,
            "observed": self.observed,
            "threshold": self.threshold,
            "rows": self.rows,
        }


@dataclass
class DatasetResult:
    """The verdict on one dataset's day: outcome, row counts, failures and notes."""

    dataset: str
    outcome: Outcome = "passed"
    rows: int = 0
    rows_validated: int = 0
    rows_quarantined: int = 0
    failures: list[Failure] = field(default_factory=list)
    #: Quarantined rows per reason (a row failing two checks counts under both).
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    #: Things a person should know that are not failures (e.g. drift skipped).
    notes: list[str] = field(default_factory=list)
    #: Report pages of this dataset, relative to the report folder (name -> path).
    pages: dict[str, str] = field(default_factory=dict)

    @property
    def blocking(self) -> list[Failure]:
        return [f for f in self.failures if f.severity == "block"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "outcome": self.outcome,
            "rows": self.rows,
            "rows_validated": self.rows_validated,
            "rows_quarantined": self.rows_quarantined,
            "failures": [f.as_dict() for f in self.failures],
            "quarantine_reasons": dict(self.quarantine_reasons),
            "notes": list(self.notes),
            "pages": dict(self.pages),
        }


@dataclass
class ValidationOutcome:
    """Everything one ``validate()`` call decided, dataset by dataset."""

    pipeline: str
    ds: dt.date
    datasets: dict[str, DatasetResult]
    report_path: Path

    @property
    def outcome(self) -> Outcome:
        """The worst outcome of any dataset."""
        found = {r.outcome for r in self.datasets.values()}
        if "blocked" in found:
            return "blocked"
        return "warned" if "warned" in found else "passed"

    @property
    def blocked(self) -> list[DatasetResult]:
        return [r for r in self.datasets.values() if r.outcome == "blocked"]

    def summary(self) -> str:
        """A few lines for a terminal or a task log."""
        lines = [f"validation of {self.pipeline} {self.ds}: {self.outcome}"]
        for name, r in self.datasets.items():
            line = (
                f"  {name:<10} {r.outcome:<8} {r.rows_validated:>7,} of {r.rows:,} rows validated"
            )
            if r.rows_quarantined:
                whole = " (whole day)" if r.outcome == "blocked" else ""
                line += f", {r.rows_quarantined:,} quarantined{whole}"
            lines.append(line)
            lines.extend(f"      {f.severity}: {f.message}" for f in r.failures)
            lines.extend(f"      note: {note}" for note in r.notes)
        lines.append(f"  report: {self.report_path}")
        return "\n".join(lines)
