"""Config files are validated into typed models; mistakes name the file, line and key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from runway_mlops.config import (
    PipelineConfig,
    get_pipeline,
    load_pipeline,
    load_settings,
    parse_date,
)
from runway_mlops.errors import ConfigError
from tests.conftest import CONFIG_DIR

REFERENCE = CONFIG_DIR / "pipelines" / "flights.yaml"


def _write_variant(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(REFERENCE.read_text())
    mutate(data)
    path = tmp_path / "flights.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_reference_pipeline_loads() -> None:
    config = load_pipeline(REFERENCE)
    assert isinstance(config, PipelineConfig)
    assert config.name == "flights"
    assert config.events_datasets == ["flights", "weather"]
    assert set(config.reference_datasets) == {"planes", "airports", "airlines"}
    assert config.datasets["flights"].key == ["year", "month", "day", "carrier", "flight", "origin"]
    assert config.features.trailing and config.features.trailing.windows_days == [7, 28]


def test_unknown_key_names_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "flights.yaml"
    text = REFERENCE.read_text().replace("\nsource:\n", "\nsource:\n  bucket_name: x\n", 1)
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_pipeline(path)
    message = str(err.value)
    assert str(path) in message
    assert "source.bucket_name" in message and "unknown key" in message
    line = text.splitlines().index("  bucket_name: x") + 1
    assert f"line {line}" in message


def test_wrong_type_says_what_was_expected(tmp_path: Path) -> None:
    def mutate(d):
        d["datasets"]["flights"]["checks"][0]["min"] = "lots"

    with pytest.raises(ConfigError) as err:
        load_pipeline(_write_variant(tmp_path, mutate))
    message = str(err.value)
    assert "datasets.flights.checks[0].min" in message
    assert "integer" in message and "'lots'" in message


def test_check_on_unknown_column_is_rejected(tmp_path: Path) -> None:
    def mutate(d):
        d["datasets"]["flights"]["checks"].append({"check": "not_null", "column": "gate"})

    with pytest.raises(ConfigError, match="names column 'gate', which is not in 'columns'"):
        load_pipeline(_write_variant(tmp_path, mutate))


def test_unknown_check_kind_lists_the_known_ones(tmp_path: Path) -> None:
    def mutate(d):
        d["datasets"]["weather"]["checks"].append({"check": "positive", "column": "temp"})

    with pytest.raises(ConfigError, match="unknown check 'positive'.*range"):
        load_pipeline(_write_variant(tmp_path, mutate))


@pytest.mark.parametrize("cadence", ["every day", "61 * * * *", "* * *"])
def test_bad_cadence_is_rejected(tmp_path: Path, cadence: str) -> None:
    with pytest.raises(ConfigError, match="cadence .* valid five-field cron"):
        load_pipeline(_write_variant(tmp_path, lambda d: d.update(cadence=cadence)))


@pytest.mark.parametrize("cadence", ["@hourly", "*/5 * * * *", "0 6 * * 1-5"])
def test_good_cadence_is_accepted(tmp_path: Path, cadence: str) -> None:
    assert (
        load_pipeline(_write_variant(tmp_path, lambda d: d.update(cadence=cadence))).cadence
        == cadence
    )


def test_sql_injection_in_table_name_is_rejected(tmp_path: Path) -> None:
    def mutate(d):
        d["datasets"]["flights"]["table"] = "flights; drop table x"

    with pytest.raises(ConfigError, match="table .* is not a plain identifier"):
        load_pipeline(_write_variant(tmp_path, mutate))


def test_reference_to_missing_dataset(tmp_path: Path) -> None:
    def mutate(d):
        d["features"]["lookups"][0]["dataset"] = "aircraft"

    with pytest.raises(ConfigError, match="names dataset 'aircraft'"):
        load_pipeline(_write_variant(tmp_path, mutate))


def test_yaml_syntax_error_cites_line(tmp_path: Path) -> None:
    path = tmp_path / "flights.yaml"
    path.write_text("name: flights\nsource: [unclosed\n")
    with pytest.raises(ConfigError, match=r"flights.yaml line \d+: not valid YAML"):
        load_pipeline(path)


def test_file_name_must_match_pipeline_name(tmp_path: Path) -> None:
    path = tmp_path / "other.yaml"
    shutil.copy(REFERENCE, path)
    with pytest.raises(ConfigError, match="must equal the file name 'other'"):
        load_pipeline(path)


def test_settings_resolve_paths_and_env_overrides(tmp_path: Path) -> None:
    settings = load_settings(CONFIG_DIR, env={})
    assert settings.profile == "local"
    assert settings.lake_dir == CONFIG_DIR.parent / ".runway" / "lake"
    assert settings.database_url == f"sqlite:///{CONFIG_DIR.parent / '.runway' / 'runway.db'}"
    overridden = load_settings(
        CONFIG_DIR, env={"RUNWAY_LAKE_DIR": str(tmp_path), "RUNWAY_SPARK_MASTER": "local[1]"}
    )
    assert overridden.lake_dir == tmp_path
    assert overridden.spark_master == "local[1]"


def test_unknown_env_setting_is_an_error() -> None:
    with pytest.raises(ConfigError, match="unknown environment setting RUNWAY_LAKEDIR"):
        load_settings(CONFIG_DIR, env={"RUNWAY_LAKEDIR": "/x"})


def test_unknown_profile_lists_profiles() -> None:
    with pytest.raises(ConfigError, match="profile 'staging' not found.*local"):
        load_settings(CONFIG_DIR, env={"RUNWAY_PROFILE": "staging"})


def test_prod_profile_is_services_and_buckets() -> None:
    settings = load_settings(CONFIG_DIR, env={"RUNWAY_PROFILE": "prod"})
    assert settings.executor == "CeleryExecutor"
    assert settings.lake_uri == "s3://runway-lake"
    assert settings.lake_dir == CONFIG_DIR.parent / ".runway-prod" / "lake-staging"
    assert settings.mlflow_artifact_uri == "mlflow-artifacts:/"  # a URI, not a path
    assert settings.spark_cluster and settings.spark_workers == 2
    assert settings.airflow_database_url and settings.airflow_database_url.startswith(
        "postgresql+psycopg2://"
    )


def test_env_override_is_validated_with_its_profile() -> None:
    with pytest.raises(ConfigError, match=r"RUNWAY_SPARK_WORKERS.*spark_workers"):
        load_settings(CONFIG_DIR, env={"RUNWAY_PROFILE": "prod", "RUNWAY_SPARK_WORKERS": "two"})
    with pytest.raises(ConfigError, match="CeleryExecutor needs airflow_database_url"):
        load_settings(
            CONFIG_DIR,
            env={
                "RUNWAY_EXECUTOR": "CeleryExecutor",
                "RUNWAY_CELERY_BROKER_URL": "redis://r",
                "RUNWAY_AIRFLOW_DATABASE_URL": "sqlite:////tmp/airflow.db",
            },
        )
    with pytest.raises(ConfigError, match="lake_uri must be s3://"):
        load_settings(CONFIG_DIR, env={"RUNWAY_LAKE_URI": "/data/lake"})
    with pytest.raises(ConfigError, match="must be 'embedded' or a database URL"):
        load_settings(CONFIG_DIR, env={"RUNWAY_AIRFLOW_DATABASE_URL": "postgres"})


def test_celery_profile_without_broker_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "platform.yaml").write_text(
        "profiles:\n  team:\n    executor: CeleryExecutor\n"
        "    airflow_database_url: postgresql+psycopg2://h/db\n"
    )
    with pytest.raises(ConfigError, match=r"platform.yaml.*needs celery_broker_url"):
        load_settings(tmp_path / "config", env={"RUNWAY_PROFILE": "team"})


def test_unknown_pipeline_lists_known_ones() -> None:
    settings = load_settings(CONFIG_DIR, env={})
    with pytest.raises(ConfigError, match="unknown pipeline 'trains'.*flights"):
        get_pipeline(settings, "trains")


@pytest.mark.parametrize("bad", ["2013-02-30", "13/01/2013", "yesterday", ""])
def test_bad_dates_are_named(bad: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown date {bad!r}"):
        parse_date(bad)


def test_monitoring_policy_mistakes_name_the_key(tmp_path: Path) -> None:
    def mutate(d):
        d["monitoring"]["policies"]["retrain"]["breaches"] = 9  # more than of_last (7)

    with pytest.raises(ConfigError, match=r"monitoring\.policies\.retrain.*cannot exceed of_last"):
        load_pipeline(_write_variant(tmp_path, mutate))

    def typo(d):
        d["monitoring"]["policies"]["rollback"]["probation"] = 3

    with pytest.raises(
        ConfigError, match=r"monitoring\.policies\.rollback\.probation: unknown key"
    ):
        load_pipeline(_write_variant(tmp_path, typo))

    def no_inference(d):
        del d["inference"]

    with pytest.raises(ConfigError, match="'monitoring' needs an 'inference' block"):
        load_pipeline(_write_variant(tmp_path, no_inference))

    def injected(d):
        d["monitoring"]["slices"] = ["carrier; drop table x"]

    with pytest.raises(ConfigError, match="slice column .* is not a plain identifier"):
        load_pipeline(_write_variant(tmp_path, injected))


def test_reference_pipeline_has_inference_and_monitoring() -> None:
    config = load_pipeline(REFERENCE)
    assert config.inference is not None and config.inference.backfill_model == "recorded"
    assert config.monitoring is not None and config.monitoring.outcome_delay_days == 1
    assert config.monitoring.policies.retrain.cooldown_days > 0


@pytest.mark.parametrize(
    ("cadence", "micro"),
    [
        ("@daily", False),
        ("@weekly", False),
        ("0 6 * * 1-5", False),
        ("30 23 * * *", False),
        ("@hourly", True),
        ("*/5 * * * *", True),
        ("0 */6 * * *", True),
    ],
)
def test_cadence_shorter_than_a_day_selects_micro_batch(
    tmp_path: Path, cadence: str, micro: bool
) -> None:
    pipeline = load_pipeline(_write_variant(tmp_path, lambda d: d.update(cadence=cadence)))
    assert pipeline.micro_batch is micro


def test_stream_lateness_must_not_be_negative(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="allowed_lateness_minutes"):
        load_pipeline(
            _write_variant(tmp_path, lambda d: d.update(stream={"allowed_lateness_minutes": -1}))
        )


def test_reference_pipeline_has_intraday_features() -> None:
    intraday = load_pipeline(REFERENCE).features.intraday
    assert intraday is not None and set(intraday.groups) == {"tail", "origin", "carrier"}
    assert "tail_dep_delay_mean_today" in intraday.feature_names


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda i: i["groups"].update({"tail number": ["tailnum"]}),
            r"features\.intraday\.groups.*intraday group 'tail number' is not a plain identifier",
        ),
        (
            lambda i: i["groups"].update({"tail": ["tailnum; drop table x"]}),
            r"column of intraday group 'tail' .* is not a plain identifier",
        ),
        (lambda i: i["groups"].update({"tail": []}), "intraday group 'tail' has no columns"),
        (
            lambda i: i["aggregates"].update({"2mean": "avg(dep_delay)"}),
            r"features\.intraday\.aggregates.*intraday aggregate '2mean' is not a plain",
        ),
        (
            lambda i: i["aggregates"].update({"mean": " "}),
            "intraday aggregate 'mean' has an empty expression",
        ),
        (lambda i: i.pop("known_at"), r"features\.intraday\.known_at"),
        (lambda i: i.update(window="1h"), r"features\.intraday\.window: unknown key"),
    ],
)
def test_intraday_mistakes_name_the_key(tmp_path: Path, change, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_pipeline(_write_variant(tmp_path, lambda d: change(d["features"]["intraday"])))


def test_intraday_feature_name_must_not_shadow_a_column(tmp_path: Path) -> None:
    def clash(d):
        d["features"]["columns"]["tail_flights_today"] = "1"

    with pytest.raises(ConfigError, match=r"intraday feature name\(s\) \['tail_flights_today'\]"):
        load_pipeline(_write_variant(tmp_path, clash))
