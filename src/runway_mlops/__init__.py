"""Runway: a batch MLOps platform orchestrated by Apache Airflow.

The package holds all logic; DAG files, Spark job entrypoints and the CLI are thin
callers of the stage functions in :mod:`runway_mlops.stages`.
"""

__version__ = "0.1.0"
