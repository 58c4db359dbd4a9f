"""Runway's Airflow DAGs, one set per pipeline file in ``config/pipelines/``.

This file is configuration: the DAG factory in :mod:`runway_mlops.orchestration.factory` reads
the YAML files and builds each pipeline's DAGs. To add a pipeline, add a YAML file.
A pipeline file that does not load is left out here, so the other pipelines keep their
DAGs; ``runway_pipeline_errors.py`` shows it in Airflow as an import error.
(Airflow's safe-mode discovery parses files that mention both "airflow" and "dag".)
"""

from runway_mlops.orchestration.factory import build_dags

globals().update(build_dags(problems={}))
