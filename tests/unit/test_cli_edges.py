"""CLI edges a hostile or careless user reaches: each ends in a clear message, no traceback."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from runway_mlops.errors import ConfigError
from runway_mlops.programs.cli import main
from tests.conftest import CONFIG_DIR


@pytest.fixture
def runway_env(monkeypatch, tmp_path):
    monkeypatch.setenv("RUNWAY_CONFIG_DIR", str(CONFIG_DIR))
    monkeypatch.setenv("RUNWAY_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RUNWAY_DEBUG", raising=False)
    return tmp_path


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("9999-12-31", "out of range (Runway handles days from 1970-01-01 to 2999-12-31)"),
        ("0001-01-01", "out of range"),
        ("20130105", "expected a real date as YYYY-MM-DD"),
        ("2013-1-5", "expected a real date as YYYY-MM-DD"),
        ("2013-01-05T00:00", "expected a real date as YYYY-MM-DD"),
    ],
)
def test_a_date_is_a_real_day_written_yyyy_mm_dd(runway_env, capsys, value, problem) -> None:
    assert main(["run", "ingest", "--pipeline", "flights", "--date", value]) == 1
    err = capsys.readouterr().err
    assert f"unknown date {value!r}: {problem}" in err
    assert "Traceback" not in err


def test_a_huge_range_is_refused_at_once(runway_env, capsys) -> None:
    began = time.perf_counter()
    code = main(
        ["run", "ingest", "--pipeline", "flights", "--from", "1970-01-01", "--to", "2999-12-31"]
    )
    assert code == 1
    assert time.perf_counter() - began < 5  # it looped over 3.6 million days
    err = capsys.readouterr().err
    assert "is 376,200 days: a range is at most 3,660 days" in err


def test_an_argument_that_is_not_utf8_is_named(runway_env, capsys) -> None:
    bad = b"fl\xffights".decode("utf-8", "surrogateescape")
    assert main(["run", "ingest", "--pipeline", bad, "--date", "2013-01-05"]) == 2
    err = capsys.readouterr().err
    assert "argument 4 (fl\\xffights) is not valid UTF-8 text" in err


def test_an_argument_that_is_not_utf8_from_the_shell(runway_env) -> None:
    runway = Path(sys.executable).parent / "runway"
    done = subprocess.run(
        [str(runway).encode(), b"quarantine", b"list", b"--pipeline", b"\xff\xfe"],
        capture_output=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "RUNWAY_CONFIG_DIR": str(CONFIG_DIR), "LANG": "C.UTF-8"},
    )
    assert done.returncode == 2
    assert b"is not valid UTF-8 text" in done.stderr and b"Traceback" not in done.stderr


def test_quarantine_of_an_unknown_pipeline_is_not_empty_but_unknown(runway_env, capsys) -> None:
    assert main(["quarantine", "list", "--pipeline", "nosuch"]) == 1
    err = capsys.readouterr().err
    assert "unknown pipeline 'nosuch'" in err and "flights" in err


def test_runway_debug_shows_the_traceback_instead_of_failing(runway_env, monkeypatch) -> None:
    monkeypatch.setenv("RUNWAY_DEBUG", "1")
    assert main(["quarantine", "list"]) == 0  # it was "unknown environment setting"
    with pytest.raises(ConfigError, match="unknown pipeline 'nosuch'"):
        main(["quarantine", "list", "--pipeline", "nosuch"])
