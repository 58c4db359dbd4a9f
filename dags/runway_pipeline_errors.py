"""Pipeline files that did not become DAGs, as an Airflow import error of this file.

``runway_pipelines.py`` builds the DAGs of every pipeline file that loads and leaves the
others out, so one broken file never hides the rest. This file defines no DAG: it
raises one error naming each broken file with its line, key and reason, which Airflow
shows under *DAG import errors* until the file is fixed. (Airflow's safe-mode discovery
parses files that mention both "airflow" and "dag".)
"""

from runway_mlops.orchestration.factory import raise_pipeline_errors

raise_pipeline_errors()
