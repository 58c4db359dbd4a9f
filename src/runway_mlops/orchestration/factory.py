"""The DAG factory: every ``config/pipelines/<name>.yaml`` becomes its Airflow DAGs.

``dags/runway_pipelines.py`` calls :func:`build_dags` and hands the result to Airflow, so
a new pipeline is a new YAML file. Building the DAGs reads YAML and nothing else: no
database, no network, no pandas/Spark/GX import (those load inside the tasks).

A pipeline has up to five DAGs, each built (with its task graph and its documentation)
in a module of :mod:`runway_mlops.orchestration.dags`:

* ``<name>_features``, ``<name>_features_backfill`` — :mod:`.dags.features`;
* ``<name>_training`` (a ``training`` block) — :mod:`.dags.training`;
* ``<name>_inference`` (an ``inference`` block) — :mod:`.dags.inference`;
* ``<name>_monitoring`` (a ``monitoring`` block) — :mod:`.dags.monitoring`;

and what they share (:func:`.dags.common.runway_dag`) in :mod:`.dags.common`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from runway_mlops.config import PipelineConfig, PlatformSettings, load_pipelines, load_settings
from runway_mlops.errors import PipelineConfigErrors
from runway_mlops.orchestration.dags.common import feature_asset, unregistered
from runway_mlops.orchestration.dags.features import build_backfill_dag, build_feature_dag
from runway_mlops.orchestration.dags.inference import build_inference_dag
from runway_mlops.orchestration.dags.monitoring import build_monitoring_dag
from runway_mlops.orchestration.dags.training import build_training_dag

if TYPE_CHECKING:
    from airflow.sdk import DAG

__all__ = [
    "build_backfill_dag",
    "build_dags",
    "build_feature_dag",
    "build_inference_dag",
    "build_monitoring_dag",
    "build_training_dag",
    "feature_asset",
    "raise_pipeline_errors",
]


def build_dags(
    config_dir: Path | None = None, *, problems: dict[str, str] | None = None
) -> dict[str, DAG]:
    """Every pipeline's DAGs, keyed by dag_id (for a DAG file's ``globals()``).

    A pipeline whose file does not load, or whose DAGs cannot be built, raises; with
    ``problems`` given, its DAGs are left out and its error recorded there (file ->
    message), so the other pipelines' DAGs still load. ``dags/runway_pipelines.py``
    builds what it can; ``dags/runway_pipeline_errors.py`` turns ``problems`` into an
    import error Airflow shows.
    """
    settings = load_settings(config_dir)
    dags: dict[str, DAG] = {}
    pipelines = load_pipelines(settings.config_dir, problems=problems)
    for pipeline in pipelines.values():
        try:
            built = _build_pipeline(pipeline, settings)
        except Exception as exc:
            if problems is None:
                raise
            where = settings.pipelines_dir / f"{pipeline.name}.yaml"
            problems[str(where)] = (
                f"{where}: the DAGs of pipeline {pipeline.name!r} cannot be built: "
                f"{type(exc).__name__}: {exc}"
            )
            continue
        for dag in built:
            dags[dag.dag_id] = dag
    return dags


def _build_pipeline(pipeline: PipelineConfig, settings: PlatformSettings) -> list[DAG]:
    built = [build_feature_dag(pipeline, settings)]
    if pipeline.backfill_interval:
        built.append(build_backfill_dag(pipeline, settings))
    if pipeline.training is not None:
        built.append(build_training_dag(pipeline, settings))
    if pipeline.inference is not None:
        built.append(build_inference_dag(pipeline, settings))
    if pipeline.monitoring is not None:
        built.append(build_monitoring_dag(pipeline, settings))
    return built


def raise_pipeline_errors(config_dir: Path | None = None) -> None:
    """Raise :class:`PipelineConfigErrors` naming each broken pipeline file, if any."""
    problems: dict[str, str] = {}
    # Every DAG is built only to find the ones that fail: none registers a second time.
    with unregistered():
        build_dags(config_dir, problems=problems)
    if problems:
        raise PipelineConfigErrors(problems)
