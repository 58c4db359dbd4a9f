"""One broken pipeline file breaks only itself: the other pipelines keep their DAGs.

Airflow's own DagBag parses the real DAG folder against a config folder holding the
reference pipeline and a second, broken one. Before, the one DAG file raised on the
broken file and every DAG of every pipeline disappeared from Airflow.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT

DAGS_DIR = ROOT / "dags"


def _config_with(tmp_path: Path, name: str, text: str) -> Path:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    (config / "pipelines" / f"{name}.yaml").write_text(text)
    return config


def _dagbag(monkeypatch: pytest.MonkeyPatch, config: Path):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("RUNWAY_CONFIG_DIR", str(config))
    return DagBag(dag_folder=str(DAGS_DIR))


def test_a_broken_pipeline_file_is_an_import_error_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = (ROOT / "config" / "pipelines" / "flights.yaml").read_text()
    broken = reference.replace("name: flights", "name: flights_copy", 1).replace(
        "retries: 2", "retries: 2\nretrys: 3", 1
    )
    config = _config_with(tmp_path, "flights_copy", broken)

    bag = _dagbag(monkeypatch, config)

    # The good pipeline keeps every DAG; the broken one has none.
    assert {d for d in bag.dag_ids if d.startswith("flights_")} >= {
        "flights_features",
        "flights_training",
        "flights_inference",
        "flights_monitoring",
    }
    assert not [d for d in bag.dag_ids if d.startswith("flights_copy")]
    # Airflow shows one import error, naming the broken file, its line and its key.
    assert list(bag.import_errors) == [str(DAGS_DIR / "runway_pipeline_errors.py")]
    message = next(iter(bag.import_errors.values()))
    line = broken.splitlines().index("retrys: 3") + 1
    assert (
        f"{config / 'pipelines' / 'flights_copy.yaml'} line {line}: retrys: unknown key" in message
    )
    assert "flights.yaml" not in message


def test_with_every_file_good_there_is_no_import_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = (ROOT / "config" / "pipelines" / "flights.yaml").read_text()
    config = _config_with(
        tmp_path, "flights_copy", reference.replace("name: flights", "name: flights_copy", 1)
    )

    bag = _dagbag(monkeypatch, config)

    assert bag.import_errors == {}
    assert "flights_copy_features" in bag.dag_ids and "flights_features" in bag.dag_ids
