"""Config refuses what it cannot mean: each mistake names the file, the line and the key.

Every case here loaded silently (or broke later with a raw traceback) before the strict
loader: duplicate keys, YAML 1.1 words, booleans as numbers, inverted or NaN bounds,
columns that do not exist, a cron that never fires, overflowing delays, oversized files.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from runway_mlops.config import load_pipeline, load_settings
from runway_mlops.errors import ConfigError
from tests.conftest import CONFIG_DIR

REFERENCE = CONFIG_DIR / "pipelines" / "flights.yaml"


def _variant(tmp_path: Path, old: str, new: str) -> tuple[Path, str]:
    """The reference pipeline with one text replacement; (path, text)."""
    text = REFERENCE.read_text()
    assert old in text, old
    text = text.replace(old, new, 1)
    path = tmp_path / "flights.yaml"
    path.write_text(text)
    return path, text


def _line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def _refused(path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        load_pipeline(path)
    message = str(err.value)
    assert str(path) in message
    return message


def test_a_duplicate_key_is_refused_with_both_lines(tmp_path: Path) -> None:
    path, text = _variant(
        tmp_path,
        "{check: row_count, min: 400, max: 1300, severity: block}",
        "{check: row_count, min: 400, max: 1300, severity: block,\n         severity: warn}",
    )
    message = _refused(path)
    assert "duplicate key 'severity'" in message
    assert f"line {_line_of(text, 'severity: warn}')}" in message
    assert f"first given on line {_line_of(text, 'check: row_count, min: 400')}" in message


def test_a_duplicate_top_level_block_is_refused(tmp_path: Path) -> None:
    path, _ = _variant(tmp_path, "\nlabel:\n", "\nlabel: {expression: '1'}\nlabel:\n")
    assert "duplicate key 'label'" in _refused(path)


def test_yaml_1_1_words_stay_text(tmp_path: Path) -> None:
    """``NO`` (Norway's code), ``on``, ``0x1F`` are values, not booleans or hex numbers."""
    path, _ = _variant(
        tmp_path, "values: [EWR, JFK, LGA]}", "values: [EWR, NO, on, 0x1F, yes, '1:30', 0755]}"
    )
    check = next(c for c in load_pipeline(path).datasets["flights"].checks if c.check == "in_set")
    assert check.values == ["EWR", "NO", "on", "0x1F", "yes", "1:30", 755]


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("{check: row_count, min: 400,", "{check: row_count, min: true,", "checks[0].min"),
        (
            "{check: range, column: distance, min: 1,",
            "{check: range, column: distance, min: false,",
            "checks[19].min",
        ),
        (
            "max_quarantine_fraction: 0.10",
            "max_quarantine_fraction: true",
            "max_quarantine_fraction",
        ),
        ("retries: 2", "retries: yes", "retries"),
    ],
)
def test_a_value_of_the_wrong_type_is_not_converted(
    tmp_path: Path, old: str, new: str, key: str
) -> None:
    path, text = _variant(tmp_path, old, new)
    message = _refused(path)
    assert key in message
    assert f"line {_line_of(text, new.splitlines()[0])}" in message


def test_inverted_row_count_bounds_are_refused(tmp_path: Path) -> None:
    path, _ = _variant(
        tmp_path,
        "{check: row_count, min: 400, max: 1300,",
        "{check: row_count, min: 1300, max: 400,",
    )
    assert "checks[0]: min 1300 is greater than max 400" in _refused(path)


@pytest.mark.parametrize("bound", [".nan", ".inf", "-.inf", ".NaN"])
def test_a_non_finite_bound_is_refused(tmp_path: Path, bound: str) -> None:
    path, text = _variant(
        tmp_path,
        "{check: range, column: distance, min: 1,",
        f"{{check: range, column: distance, min: {bound},",
    )
    message = _refused(path)
    assert f"{bound!r} is not a finite number" in message
    assert f"line {_line_of(text, 'column: distance, min:')}" in message


def test_numbers_in_other_bases_are_refused(tmp_path: Path) -> None:
    path, _ = _variant(tmp_path, "retries: 2", "retries: !!int 0x2")
    assert "'0x2' is not a decimal whole number" in _refused(path)


@pytest.mark.parametrize(
    ("old", "new", "key", "name"),
    [
        (
            "categorical: [carrier, origin, dest]",
            "categorical: [carrier, gate]",
            "training.categorical",
            "gate",
        ),
        ("exclude_features: []", "exclude_features: [gate]", "training.exclude_features", "gate"),
        (
            "{column: carrier, min_rows: 300,",
            "{column: terminal, min_rows: 300,",
            "gates.slices[0].column",
            "terminal",
        ),
        ("slices: [carrier, origin]", "slices: [carrier, runway]", "monitoring.slices", "runway"),
        (
            "features: []                # empty",
            "features: [snowfall]  # empty",
            "monitoring.drift.features",
            "snowfall",
        ),
        (
            "drift_features: [score]",
            "drift_features: [score, snowfall]",
            "retrain.drift_features",
            "snowfall",
        ),
        (
            "columns: [temp, dewp,",
            "columns: [temp, snow, dewp,",
            "features.asof[0].columns",
            "snow",
        ),
        (
            "join_on: {origin: origin}",
            "join_on: {origin: airport}",
            "features.asof[0].join_on",
            "airport",
        ),
        (
            "join_on: {tailnum: tailnum}",
            "join_on: {tail: tailnum}",
            "features.lookups[0].join_on",
            "tail",
        ),
        (
            "route: [origin, dest]",
            "route: [origin, destination]",
            "features.trailing.groups.route",
            "destination",
        ),
        (
            "tail: [tailnum]\n      origin: [origin]\n      carrier: [carrier]\n    aggregates:",
            "tail: [plane]\n      origin: [origin]\n      carrier: [carrier]\n    aggregates:",
            "features.intraday.groups.tail",
            "plane",
        ),
    ],
)
def test_a_column_that_does_not_exist_is_refused(
    tmp_path: Path, old: str, new: str, key: str, name: str
) -> None:
    text = REFERENCE.read_text()
    if old == "exclude_features: []":  # not in the reference file: add it
        old, new = "  categorical: [", f"  {new}\n  categorical: ["
    path, _ = _variant(tmp_path, old, new)
    message = _refused(path)
    assert key in message and repr(name) in message
    assert text  # the reference itself loads (test_config.py)


def test_the_feature_columns_a_block_names_are_the_produced_ones() -> None:
    pipeline = load_pipeline(REFERENCE)
    assert "route_delayed_rate_28d" in pipeline.model_features
    # The weather an hour ahead is a micro-batch feature: the daily run predicts at midnight.
    assert "weather_visib" not in pipeline.model_features
    micro = pipeline.model_copy(update={"cadence": "*/5 * * * *"})
    assert "weather_visib" in micro.model_features
    assert "flight" not in pipeline.model_features  # a key column, not a feature
    assert "flight" in pipeline.feature_columns


@pytest.mark.parametrize("cadence", ["0 0 30 2 *", "0 0 31 4 *"])
def test_a_cron_that_never_fires_is_refused(tmp_path: Path, cadence: str) -> None:
    path, _ = _variant(tmp_path, 'cadence: "@daily"', f'cadence: "{cadence}"')
    assert "never fires" in _refused(path)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        (
            "retry_delay_seconds: 30",
            "retry_delay_seconds: 100000000000000000000",
            "retry_delay_seconds",
        ),
        ("approval_timeout_hours: 72", "approval_timeout_hours: 1.0e+20", "approval_timeout_hours"),
        ("start_date: 2013-01-01", "start_date: 0001-01-01", "start_date"),
        ("end_date: 2013-12-31", "end_date: 9999-12-31", "end_date"),
    ],
)
def test_a_delay_or_date_that_breaks_dag_building_is_refused(
    tmp_path: Path, old: str, new: str, key: str
) -> None:
    path, _ = _variant(tmp_path, old, new)
    assert key in _refused(path)


def test_an_oversized_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path, _ = _variant(
        tmp_path, "tags: [reference, nycflights13]", "tags: [" + "t, " * 2_500_000 + "x]"
    )
    began = time.perf_counter()
    message = _refused(path)
    assert "too big for a configuration file" in message
    assert time.perf_counter() - began < 1.0  # not parsed: a 4.7 MB file took 24 s


def test_an_alias_bomb_is_refused(tmp_path: Path) -> None:
    bomb = "\n".join(
        [f"x0: &x0 [{', '.join(['a'] * 10)}]"]
        + [f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 10)}]" for i in range(1, 7)]
    )
    path = tmp_path / "flights.yaml"
    path.write_text(bomb + "\n" + REFERENCE.read_text())
    assert "anchors and aliases" in _refused(path)


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "flights.yaml"
    path.write_bytes(REFERENCE.read_bytes().replace(b"America/New_York", b"Am\xe9rica/New_York"))
    assert "not UTF-8 text" in _refused(path)


def test_environment_overrides_are_still_read_as_text() -> None:
    settings = load_settings(CONFIG_DIR, profile="prod", env={"RUNWAY_SPARK_WORKERS": "3"})
    assert settings.spark_workers == 3


# ------------------------------------------------------- validation that catches what matters


def test_flights_feeding_columns_are_the_ones_the_sql_reads() -> None:
    fed = load_pipeline(REFERENCE).feeding_columns
    assert {"arr_delay", "dep_delay", "tailnum", "time_hour", "minute"} <= fed["flights"]
    assert "air_time" not in fed["flights"]  # checked, but no feature or label reads it
    assert fed["planes"] == {"tailnum", "year", "seats", "engines"}
    assert {"wind_gust", "origin", "time_hour"} <= fed["weather"]


def test_a_feeding_column_without_a_null_bound_is_refused(tmp_path: Path) -> None:
    path, _ = _variant(tmp_path, "      - {check: not_null, column: sched_arr_time}\n", "")
    message = _refused(path)
    assert "datasets.flights: column(s) sched_arr_time feed the label or a feature" in message
    assert "no check bounds their nulls" in message


def test_a_conditional_null_bound_does_not_count_as_the_column_s_bound(tmp_path: Path) -> None:
    """Only flown flights count for the conditional check: arr_delay needs its own bound too."""
    path, _ = _variant(
        tmp_path,
        "      - {check: null_fraction, column: arr_delay, max: 0.65, severity: block}\n",
        "",
    )
    assert "column(s) arr_delay feed the label" in _refused(path)


def test_where_not_null_names_a_real_column(tmp_path: Path) -> None:
    path, _ = _variant(tmp_path, "where_not_null: dep_time", "where_not_null: departed")
    assert "where_not_null names column 'departed', which is not in 'columns'" in _refused(path)


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        (
            "block: {mean_sigmas: 10, kl_max: 2.0}}\n        - {column: arr_delay",
            "block: {mean_sigmas: 3, kl_max: 2.0}}\n        - {column: arr_delay",
            "block.mean_sigmas 3.0 must be less sensitive than the warn level's 4.0",
        ),
        (
            "{column: dep_delay, mean_sigmas: 4, kl_max: 0.5,",
            "{column: dep_delay, severity: block, mean_sigmas: 4, kl_max: 0.5,",
            "with severity block, the measures given directly already block",
        ),
        (
            "{column: carrier, new_share_max: 0.01,",
            "{column: carrier, mean_sigmas: 3, new_share_max: 0.01,",
            "mean_sigmas does not apply to a string column",
        ),
        (
            "{column: distance, mean_sigmas: 8, severity: block}",
            "{column: distance, new_share_max: 0.1, severity: block}",
            "new_share_max does not apply to a float column",
        ),
        (
            "{column: distance, mean_sigmas: 8, severity: block}",
            "{column: distance, severity: block}",
            "a drift column needs a measure",
        ),
    ],
)
def test_drift_levels_and_measures_that_cannot_mean_anything_are_refused(
    tmp_path: Path, old: str, new: str, words: str
) -> None:
    path, _ = _variant(tmp_path, old, new)
    assert words in _refused(path)


def test_drift_levels_are_warn_first_then_block() -> None:
    drift = load_pipeline(REFERENCE).datasets["flights"].drift
    assert drift is not None
    dep = next(c for c in drift.columns if c.column == "dep_delay")
    assert dep.levels() == [
        ("warn", {"mean_sigmas": 4.0, "kl_max": 0.5}),
        ("block", {"mean_sigmas": 10.0, "kl_max": 2.0}),
    ]
    distance = next(c for c in drift.columns if c.column == "distance")
    assert distance.levels() == [("block", {"mean_sigmas": 8.0})]
