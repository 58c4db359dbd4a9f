"""The ``runway`` command line: exit codes and messages a person understands."""

from __future__ import annotations

import pytest

from runway_mlops.programs.cli import main
from tests.conftest import CONFIG_DIR


@pytest.fixture
def runway_env(monkeypatch, tmp_path):
    monkeypatch.setenv("RUNWAY_CONFIG_DIR", str(CONFIG_DIR))
    monkeypatch.setenv("RUNWAY_HOME", str(tmp_path / "home"))
    return tmp_path


def test_unknown_date_is_named(runway_env, capsys) -> None:
    assert main(["run", "ingest", "--pipeline", "flights", "--date", "2013-02-30"]) == 1
    err = capsys.readouterr().err
    assert "unknown date '2013-02-30'" in err and "YYYY-MM-DD" in err
    assert "Traceback" not in err


def test_unknown_pipeline_lists_the_known_ones(runway_env, capsys) -> None:
    assert main(["run", "ingest", "--pipeline", "trains", "--date", "2013-01-05"]) == 1
    err = capsys.readouterr().err
    assert "unknown pipeline 'trains'" in err and "flights" in err


def test_missing_delivery_names_dataset_and_day(runway_env, capsys) -> None:
    assert main(["run", "ingest", "--pipeline", "flights", "--date", "2013-01-05"]) == 1
    err = capsys.readouterr().err
    assert "2013-01-05" in err and "flights" in err


def test_unknown_environment_setting_is_refused(runway_env, monkeypatch, capsys) -> None:
    monkeypatch.setenv("RUNWAY_LAKE_DIRR", "/tmp/x")
    assert main(["quarantine", "list"]) == 1
    assert "RUNWAY_LAKE_DIRR" in capsys.readouterr().err


def test_seed_then_ingest_succeeds(runway_env, capsys) -> None:
    args = ["--from", "2013-01-05", "--to", "2013-01-05"]
    assert main(["seed", "--source", "files", *args]) == 0
    assert main(["run", "ingest", "--pipeline", "flights", "--date", "2013-01-05"]) == 0
    out = capsys.readouterr().out
    assert "ingested flights 2013-01-05" in out
    assert main(["quarantine", "list"]) == 0
    assert "quarantine is empty" in capsys.readouterr().out


def test_bad_stage_is_a_usage_error(runway_env) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "train", "--pipeline", "flights", "--date", "2013-01-05"])
    assert exc.value.code == 2


def test_airflow_subcommand_runs_airflow_with_the_profile(runway_env) -> None:
    import subprocess
    import sys
    from pathlib import Path

    runway = Path(sys.executable).parent / "runway"
    env = {
        "PATH": "/usr/bin:/bin",
        "RUNWAY_CONFIG_DIR": str(CONFIG_DIR),
        "RUNWAY_HOME": str(runway_env / "home"),
    }
    done = subprocess.run(
        [str(runway), "airflow", "config", "get-value", "core", "dags_folder"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == str(CONFIG_DIR.parent / "dags")


def test_predictions_needs_a_key_or_a_day(runway_env, capsys) -> None:
    assert main(["predictions", "--pipeline", "flights"]) == 1
    assert "exactly one of --key KEY or --date" in capsys.readouterr().err


def test_replay_refuses_a_folder_that_is_not_its_own(runway_env, capsys) -> None:
    precious = runway_env / "precious"
    precious.mkdir()
    (precious / "mlflow.db").write_text("not the replay's")
    assert main(["replay", "--home", str(precious)]) == 1
    err = capsys.readouterr().err
    assert "is not a replay home" in err and "Traceback" not in err
    assert (precious / "mlflow.db").read_text() == "not the replay's"


def test_a_range_carries_on_past_a_day_with_a_malformed_header(runway_env, capsys) -> None:
    from pathlib import Path

    assert main(["seed", "--source", "files", "--from", "2013-01-05", "--to", "2013-01-06"]) == 0
    path = Path(runway_env) / "home" / "landing" / "flights" / "ds=2013-01-05" / "flights.csv"
    header, rest = path.read_bytes().split(b"\n", 1)
    path.write_bytes(header.replace(b",tailnum,", b",carrier,") + b"\n" + rest)
    capsys.readouterr()

    args = ["run", "ingest", "--pipeline", "flights", "--from", "2013-01-05", "--to", "2013-01-06"]
    assert main(args) == 1

    out, err = capsys.readouterr()
    assert "FAILED flights 2013-01-05: source data error:" in out
    assert "flights.csv has a malformed header: repeated column name(s) 'carrier'" in out
    assert "ingested flights 2013-01-06" in out
    assert "ingest of flights 2013-01-05..2013-01-06: 1 of 2 days ok" in out
    assert "Traceback" not in out + err
