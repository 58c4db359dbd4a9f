"""Stage functions: each is a function of (settings, pipeline, day) that reads its inputs
from the stateful layer (landing, lake, catalog) and writes its outputs there.

The Airflow tasks, the ``runway run`` CLI and the tests all call these same functions.
"""
