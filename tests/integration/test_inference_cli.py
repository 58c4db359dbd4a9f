"""``runway run score|monitor`` and ``runway predictions``: what a person types and reads.

A real MLflow and SQLite in a temporary home, synthetic partitions, one champion.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from runway_mlops.config import load_settings
from runway_mlops.programs.cli import main
from tests.conftest import CONFIG_DIR
from tests.integration.test_inference_stages import END, FIRST, promote, train_model
from tests.synthetic import write_days

DAY = END + dt.timedelta(days=1)


@pytest.fixture
def home(monkeypatch, tmp_path, flights_pipeline):
    monkeypatch.setenv("RUNWAY_CONFIG_DIR", str(CONFIG_DIR))
    monkeypatch.setenv("RUNWAY_HOME", str(tmp_path / "home"))
    settings = load_settings(CONFIG_DIR)
    write_days(settings, flights_pipeline, FIRST, DAY + dt.timedelta(days=1), rows=200)
    return settings


def test_scoring_without_a_champion_says_what_to_do(home, capsys) -> None:
    assert main(["run", "score", "--pipeline", "flights", "--date", str(DAY)]) == 1
    err = capsys.readouterr().err
    assert "no model: runway_flights has no champion yet" in err and "runway train" in err
    assert "Traceback" not in err


def test_score_look_up_and_monitor_a_day(home, flights_pipeline, capsys) -> None:
    registered, _ = train_model(home, flights_pipeline)
    promote(home, flights_pipeline, registered)
    assert main(["run", "score", "--pipeline", "flights", "--date", str(DAY)]) == 0
    out = capsys.readouterr().out
    assert f"champion {DAY}: 200 predictions by v1 (champion)" in out
    assert main(["predictions", "--pipeline", "flights", "--date", str(DAY), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 200 and {r["model_version"] for r in rows} == {"1"}
    key = rows[0]["entity_key"]
    assert main(["predictions", "--pipeline", "flights", "--key", key]) == 0
    table = capsys.readouterr().out
    assert key in table and "runway_flights" in table and "synthetic1" in table
    assert main(["predictions", "--pipeline", "flights", "--key", "2013|1|1|XX|0|EWR"]) == 1
    assert "entity key joined by '|'" in capsys.readouterr().out

    assert main(["run", "score", "--pipeline", "flights", "--date", str(DAY), "--model", "7"]) == 1
    assert "has no version '7'" in capsys.readouterr().err
    assert (
        main(["run", "score", "--pipeline", "flights", "--date", str(DAY), "--model", "best"]) == 1
    )
    assert "unknown model choice 'best'" in capsys.readouterr().err

    assert main(["run", "monitor", "--pipeline", "flights", "--date", str(DAY)]) == 0
    out = capsys.readouterr().out
    assert f"monitored {DAY}: v1 (champion) ROC AUC" in out
    assert "retrain: hold" in out and "report:" in out
