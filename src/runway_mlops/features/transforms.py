"""Feature transforms: pure ``DataFrame -> DataFrame`` functions, shared by every caller.

The feature job, training (building a training set) and inference all compute features
through :func:`compute_features`, so training and serving features come from one code
path. Nothing here reads or writes storage.

Point-in-time correctness is built into each block:

* ``columns`` and ``lookups`` read only the entity row itself and reference snapshots
  valid on the entity's day;
* ``trailing`` aggregates use history rows from whole days *strictly before* the entity's
  day (``_ds``), joined per entity day, so a run over one day or many gives the same rows;
  with ``known_at`` only the rows known by the start of the entity's day (at or before
  local midnight): an outcome that lands later cannot reach the day's predictions;
* ``intraday`` aggregates (micro-batch cadence only) use rows of the entity's *own* day
  whose ``known_at`` is at or before the entity's prediction time, the entity itself
  left out, so a day's rows known later cannot change them: features computed during
  the day with the rows so far equal those computed at its end;
* ``asof`` takes the latest observation *known* at or before the entity's prediction time
  (an observation stamped ``t`` is known at ``t + known_after_minutes``) and not older
  than ``max_age_minutes``.

The prediction time depends on the cadence (:func:`with_times`): a micro-batch run
scores a flight ``prediction_lead_minutes`` before its event; a daily run scores the
whole day at its local start (or earlier, for an event within the lead of midnight),
unless ``daily_prediction: as_of`` asks for the micro-batch rule on past days.


Conventions: every input frame carries ``_ds`` (its partition's local day, a DateType);
the entity frame also carries the entity key columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import Column, Window
from pyspark.sql import functions as F

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from runway_mlops.config import (
        AsofFeatures,
        FeaturesConfig,
        IntradayFeatures,
        LabelConfig,
        LookupFeatures,
        MissingKey,
        TrailingFeatures,
    )

EVENT_TIME = "event_time"
PREDICTION_TIME = "prediction_time"
OUTCOME_KNOWN_AT = "outcome_known_at"
DS = "_ds"


def with_times(
    entity: DataFrame, config: FeaturesConfig, *, micro_batch: bool, timezone: str
) -> DataFrame:
    """Add ``event_time`` (from the configured expression) and ``prediction_time``.

    The prediction time is when the prediction is made: ``prediction_lead_minutes``
    before the event on a micro-batch cadence; on a daily cadence the local start of the
    entity's day (``_ds`` in ``timezone``), when the day's run scores its schedule, or
    the lead before the event if that is earlier (``FeaturesConfig.daily_prediction``).
    """
    lead = F.make_dt_interval(F.lit(0), F.lit(0), F.lit(config.prediction_lead_minutes))
    timed = entity.withColumn(EVENT_TIME, F.expr(config.event_time).cast("timestamp"))
    ahead = F.col(EVENT_TIME) - lead
    if not config.at_day_start(micro_batch=micro_batch):
        return timed.withColumn(PREDICTION_TIME, ahead)
    day_start = F.to_utc_timestamp(F.col(DS).cast("timestamp"), timezone)
    return timed.withColumn(PREDICTION_TIME, F.least(ahead, day_start))


def base_columns(entity: DataFrame, key: list[str], config: FeaturesConfig) -> DataFrame:
    """Key, day, times and the configured per-row expressions."""
    selected: list[Column] = [F.col(k) for k in key]
    selected += [F.col(DS), F.col(EVENT_TIME), F.col(PREDICTION_TIME)]
    for name, expr in config.columns.items():
        if name in key:
            # A key column listed as a feature (e.g. ``carrier: carrier``) is already here;
            # selecting it twice would give the partition duplicate column names.
            if expr.strip() != name:
                raise ValueError(
                    f"feature column {name!r} is also a key column: it must be {name!r} itself, "
                    f"not {expr!r}; rename the feature"
                )
            continue
        selected.append(F.expr(expr).alias(name))
    return entity.select(*selected)


def borrow_missing_keys(entity: DataFrame, key: list[str], missing: list[MissingKey]) -> DataFrame:
    """Fill each missing key column from a row of the same day and group (see MissingKey).

    The donor is the value at a stable hash of the row's key among the sorted distinct
    values of its (day, group), so a rerun, or a run over a range, borrows the same one.
    A row whose group has no value keeps its null.
    """
    out = entity
    for fill in missing:
        within = [DS, *fill.borrow_within]
        donors = (
            entity.where(F.col(fill.column).isNotNull())
            .groupBy(*within)
            .agg(F.array_sort(F.collect_set(fill.column)).alias("_donors"))
        )
        pick = (F.pmod(F.xxhash64(*[F.col(k) for k in key]), F.size("_donors")) + 1).cast("int")
        out = (
            out.join(donors, on=within, how="left")
            .withColumn(
                fill.column,
                F.coalesce(
                    F.col(fill.column),
                    F.when(F.size("_donors") > 0, F.element_at("_donors", pick)),
                ),
            )
            .drop("_donors")
        )
    return out


def lookup_features(
    features: DataFrame,
    entity: DataFrame,
    key: list[str],
    reference: DataFrame,
    lookup: LookupFeatures,
) -> DataFrame:
    """Join a reference snapshot on ``join_on`` and evaluate the expressions over ``e``/``r``."""
    e = entity.alias("e")
    r = reference.drop(DS).alias("r")
    condition = None
    for entity_col, ref_col in lookup.join_on.items():
        clause = F.col(f"e.{entity_col}") == F.col(f"r.{ref_col}")
        condition = clause if condition is None else condition & clause
    joined = e.join(r, on=condition, how="left")
    values = joined.select(
        *[F.col(f"e.{k}").alias(k) for k in key],
        *[F.expr(expr).alias(name) for name, expr in lookup.columns.items()],
    )
    return features.join(values, on=key, how="left")


def trailing_features(
    features: DataFrame,
    entity: DataFrame,
    key: list[str],
    history: DataFrame,
    trailing: TrailingFeatures,
    *,
    timezone: str = "UTC",
) -> DataFrame:
    """Aggregates per group over the ``w`` whole days before each entity's day.

    Feature names: ``<group>_<aggregate>_<w>d`` (e.g. ``route_delayed_rate_7d``). A group
    with no rows in the window gets nulls. With ``trailing.known_at``, a history row
    counts only if it was known at or before the start of the entity's day in
    ``timezone``; a row whose ``known_at`` is null counts as never known.
    """
    days = entity.select(F.col(DS).alias("_for")).distinct()
    condition_known = None
    if trailing.known_at:
        history = history.withColumn("_known_at", F.expr(trailing.known_at).cast("timestamp"))
        days = days.withColumn(
            "_day_start", F.to_utc_timestamp(F.col("_for").cast("timestamp"), timezone)
        )
        condition_known = history["_known_at"] <= days["_day_start"]
    out = features
    for window in trailing.windows_days:
        condition = (history[DS] < days["_for"]) & (history[DS] >= F.date_sub(days["_for"], window))
        if condition_known is not None:
            condition = condition & condition_known
        in_window = history.join(F.broadcast(days), condition)
        for group, columns in trailing.groups.items():
            names = [f"{group}_{name}_{window}d" for name in trailing.aggregates]
            stats = (
                in_window.groupBy("_for", *columns)
                .agg(
                    *[
                        F.expr(e).alias(n)
                        for n, e in zip(names, trailing.aggregates.values(), strict=True)
                    ]
                )
                .withColumnRenamed("_for", DS)
            )
            per_entity = (
                entity.select(*dict.fromkeys([*key, DS, *columns]))
                .join(stats, on=[DS, *columns], how="left")
                .select(*key, *names)
            )
            out = out.join(per_entity, on=key, how="left")
    return out


def intraday_features(
    features: DataFrame,
    entity: DataFrame,
    key: list[str],
    intraday: IntradayFeatures,
    others: DataFrame | None = None,
) -> DataFrame:
    """Aggregates per group over the entity's own day, as known at its prediction time.

    For each entity row ``e``: the rows ``o`` of ``entity`` with the same ``_ds`` and
    group columns, ``o.known_at <= e.prediction_time`` and ``o`` not ``e`` itself.
    ``entity`` must hold every row of its days known so far (the feature job reads whole
    day partitions); rows known after a prediction time never reach its features.
    ``others`` (default ``entity``) are the rows aggregated, when the entity side differs
    from them (borrowed keys).

    Feature names: ``<group>_<aggregate>_today`` (e.g. ``tail_dep_delay_mean_today``).
    With no such rows an aggregate takes its value over no rows, as SQL gives it:
    ``count(*)`` 0 (no earlier flight *is* information), ``avg`` and ``sum`` null.
    A null group column matches nothing (as in a join).
    """
    known = (entity if others is None else others).withColumn(
        "_known_at", F.expr(intraday.known_at).cast("timestamp")
    )
    aggregates = intraday.aggregates
    # Each aggregate over no rows: the value an entity without earlier rows gets (a join
    # cannot produce it: an unmatched entity has no rows to aggregate).
    empty = known.limit(0).agg(
        *[F.expr(expr).alias(f"_empty_{a}") for a, expr in aggregates.items()]
    )
    out = features
    for group, columns in intraday.groups.items():
        # The entity side under private names, so the aggregates read ``o``'s columns.
        e = entity.select(
            *[F.col(k).alias(f"_e_{k}") for k in key],
            F.col(DS).alias("_e_ds"),
            *[F.col(c).alias(f"_e_g_{c}") for c in columns],
            F.col(PREDICTION_TIME).alias("_e_prediction_time"),
        )
        condition = (known[DS] == e["_e_ds"]) & (known["_known_at"] <= e["_e_prediction_time"])
        for c in columns:
            condition = condition & (known[c] == e[f"_e_g_{c}"])
        itself = None
        for k in key:
            same = known[k].eqNullSafe(e[f"_e_{k}"])
            itself = same if itself is None else itself & same
        assert itself is not None
        condition = condition & ~itself
        stats = (
            e.join(known, on=condition, how="inner")
            .groupBy(*[f"_e_{k}" for k in key])
            .agg(*[F.expr(expr).alias(f"_s_{a}") for a, expr in aggregates.items()])
        )
        per_entity = (
            entity.select(*key)
            .join(
                stats.select(
                    *[F.col(f"_e_{k}").alias(k) for k in key],
                    *[f"_s_{a}" for a in aggregates],
                ),
                on=key,
                how="left",
            )
            .crossJoin(F.broadcast(empty))
            .select(
                *key,
                *[
                    F.coalesce(F.col(f"_s_{a}"), F.col(f"_empty_{a}")).alias(f"{group}_{a}_today")
                    for a in aggregates
                ],
            )
        )
        out = out.join(per_entity, on=key, how="left")
    return out


def asof_features(
    features: DataFrame,
    entity: DataFrame,
    key: list[str],
    other: DataFrame,
    asof: AsofFeatures,
    time_column: str,
) -> DataFrame:
    """Latest ``other`` row per entity observed at or before its prediction time.

    Feature names: ``<dataset>_<column>`` (e.g. ``weather_visib``).
    """
    o = other.select(
        *[F.col(c).alias(f"_o_{c}") for c in asof.join_on.values()],
        F.col(time_column).alias("_o_time"),
        (
            F.col(time_column)
            + F.make_dt_interval(F.lit(0), F.lit(0), F.lit(asof.known_after_minutes))
        ).alias("_o_known_at"),
        *[F.col(c).alias(f"{asof.dataset}_{c}") for c in asof.columns],
    )
    f = entity.select(*dict.fromkeys([*key, *asof.join_on.keys(), PREDICTION_TIME]))
    condition = (o["_o_known_at"] <= f[PREDICTION_TIME]) & (
        o["_o_time"]
        >= f[PREDICTION_TIME] - F.make_dt_interval(F.lit(0), F.lit(0), F.lit(asof.max_age_minutes))
    )
    for entity_col, other_col in asof.join_on.items():
        condition = condition & (f[entity_col] == o[f"_o_{other_col}"])
    candidates = f.join(o, on=condition, how="inner")
    latest = Window.partitionBy(*key).orderBy(F.col("_o_time").desc())
    picked = (
        candidates.withColumn("_rank", F.row_number().over(latest))
        .where(F.col("_rank") == 1)
        .select(*key, *[f"{asof.dataset}_{c}" for c in asof.columns])
    )
    return features.join(picked, on=key, how="left")


def compute_features(
    entity: DataFrame,
    key: list[str],
    config: FeaturesConfig,
    *,
    feature_version: str,
    history: DataFrame | None = None,
    references: dict[str, DataFrame] | None = None,
    observations: dict[str, tuple[DataFrame, str]] | None = None,
    micro_batch: bool = False,
    timezone: str = "UTC",
) -> DataFrame:
    """One feature row per entity row: the single code path for training and serving.

    Args:
        entity: entity rows to featurise, with ``_ds``.
        key: the entity key columns.
        config: the pipeline's ``features`` block.
        feature_version: recorded on every row (see :func:`feature_version`).
        history: entity rows of earlier days (with ``_ds``) for ``trailing``.
        references: reference snapshot per dataset name, for ``lookups``.
        observations: (rows, time column) per events dataset name, for ``asof``.
        timezone: the pipeline's timezone, where its days start (trailing windows, the
            daily prediction time).
        micro_batch: the cadence is micro-batch (``PipelineConfig.micro_batch``): each
            row is predicted ``prediction_lead_minutes`` before its event, with the
            ``intraday`` block. A daily run predicts before any row of its day is known:
            no intraday columns; with ``daily_prediction: day_start`` (the default) the
            whole day at its start, without the ``asof`` blocks marked
            ``skip_at_day_start``.
    """
    references = references or {}
    observations = observations or {}
    timed = with_times(entity, config, micro_batch=micro_batch, timezone=timezone)
    out = base_columns(timed, key, config)
    # The entity as it was known before the fact, for what it joins on; the history rows
    # (and the same-day rows of intraday aggregates) keep the feed's values.
    keyed = borrow_missing_keys(timed, key, config.missing_keys) if config.missing_keys else timed
    for lookup in config.lookups:
        out = lookup_features(out, keyed, key, references[lookup.dataset], lookup)
    if config.trailing:
        if history is None:
            raise ValueError("trailing features need the entity history")
        out = trailing_features(out, keyed, key, history, config.trailing, timezone=timezone)
    for asof in config.asof_blocks(micro_batch=micro_batch):
        rows, time_column = observations[asof.dataset]
        out = asof_features(out, keyed, key, rows, asof, time_column)
    if micro_batch and config.intraday:
        # Last, so a micro-batch partition is the daily one plus these columns.
        out = intraday_features(out, keyed, key, config.intraday, others=timed)
    return out.withColumn("feature_version", F.lit(feature_version))


def label_rows(
    entity: DataFrame, key: list[str], config: FeaturesConfig, label: LabelConfig
) -> DataFrame:
    """One label row per entity row: key, event time, the label and when it became known.

    Labels live in their own lake zone, apart from the features, so no feature can read
    an outcome; training joins the two by key, keeping rows whose ``outcome_known_at``
    falls inside its window.
    """
    known_after = F.make_dt_interval(F.lit(0), F.lit(0), F.lit(label.available_after_minutes))
    timed = entity.withColumn(EVENT_TIME, F.expr(config.event_time).cast("timestamp"))
    return timed.select(
        *[F.col(k) for k in key],
        F.col(EVENT_TIME),
        F.expr(label.expression).cast("int").alias(label.name),
        (F.col(EVENT_TIME) + known_after).alias(OUTCOME_KNOWN_AT),
    )
