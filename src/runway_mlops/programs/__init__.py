"""Programs a user runs: the ``runway`` CLI and what it starts.

:mod:`.cli` (every ``runway`` command), :mod:`.demo` (``runway demo``: the zero-config
tour through Airflow), :mod:`.replay` (a year replayed day by day), :mod:`.stream_demo`
(the micro-batch path under a timer) and :mod:`.services` (the profile's own services:
MLflow, Spark). They chain the stages through :mod:`runway_mlops.flows` and the
orchestration package; nothing imports them.
"""
