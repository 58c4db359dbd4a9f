"""`runway train` / `runway promote`: a champion, then a handicapped model rejected by name."""

from __future__ import annotations

import datetime as dt

import pytest

from runway_mlops import catalog
from runway_mlops.config import get_pipeline, load_settings
from runway_mlops.programs.cli import main
from runway_mlops.training import registry
from tests.conftest import CONFIG_DIR
from tests.synthetic import write_days

END = dt.date(2013, 4, 29)


@pytest.fixture
def trained_home(monkeypatch, tmp_path):
    monkeypatch.setenv("RUNWAY_CONFIG_DIR", str(CONFIG_DIR))
    monkeypatch.setenv("RUNWAY_HOME", str(tmp_path / "home"))
    settings = load_settings(CONFIG_DIR)
    pipeline = get_pipeline(settings, "flights")
    write_days(settings, pipeline, END - dt.timedelta(days=59), END, rows=300)
    return settings, pipeline


def _champion(settings, pipeline):
    client, _ = registry.connect(settings, pipeline)
    return registry.aliased_version(client, pipeline.model_name, registry.CHAMPION)


def test_train_promotes_then_rejects_a_handicapped_model(trained_home, capsys) -> None:
    settings, pipeline = trained_home
    args = ["train", "--pipeline", "flights", "--end", str(END), "--days", "60", "--no-tune"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "champion: v1 (previous: none)" in out
    assert "no_regression_vs_champion: first model" in out
    assert "base_rate" in out and "challenger" in out  # the metric table with the baseline

    handicapped = [*args, "--set", "num_leaves=2", "--set", "num_boost_round=2"]
    assert main(handicapped) == 1
    captured = capsys.readouterr()
    assert "gate rejected" in captured.err and "no_regression_vs_champion" in captured.err
    assert "FAIL  no_regression_vs_champion" in captured.out
    assert "Traceback" not in captured.err
    assert _champion(settings, pipeline) == "1"
    events = [(e.event, e.model_version) for e in catalog.list_model_events(settings.database_url)]
    assert events == [("registered", "1"), ("challenger", "1"), ("promoted", "1")]


def test_promote_by_hand_records_who(trained_home, capsys) -> None:
    settings, pipeline = trained_home
    args = ["train", "--pipeline", "flights", "--end", str(END), "--days", "60", "--no-tune"]
    assert main(args) == 0
    assert main([*args, "--dry-run", "--set", "num_leaves=2", "--set", "num_boost_round=2"]) == 0
    out = capsys.readouterr().out
    assert "rejected (dry run, not blocking)" in out
    # flights promotes in shadow: v2 is registered as challenger and waits there.
    assert "registered runway_flights v2 as challenger" in out and "promotes in shadow" in out
    assert _champion(settings, pipeline) == "1"
    # A person promotes it by hand (whatever the policy), then takes v1 back.
    assert main(["promote", "--pipeline", "flights", "--version", "2"]) == 0
    assert _champion(settings, pipeline) == "2"
    assert main(["promote", "--pipeline", "flights", "--version", "1"]) == 0
    assert _champion(settings, pipeline) == "1"
    last = catalog.list_model_events(settings.database_url)[-1]
    assert last.event == "promoted" and last.actor.startswith("cli:")
    assert main(["promote", "--pipeline", "flights", "--version", "9"]) == 1
    assert "has no version '9'" in capsys.readouterr().err
