"""The DAGs of a pipeline, one module per kind; :mod:`..factory` builds them all.

* :mod:`.common` — what every Runway DAG shares (:func:`.common.runway_dag`), the
  feature Asset, dates, default args, timetables;
* :mod:`.features` — ``<name>_features`` and ``<name>_features_backfill``;
* :mod:`.training` — ``<name>_training``;
* :mod:`.inference` — ``<name>_inference`` (per interval, or per micro-batch);
* :mod:`.monitoring` — ``<name>_monitoring``.

Each module's docstring draws its task graph; the DAG's ``doc_md`` is built next to it.
Importing them imports no Airflow, pandas, Spark, GX or MLflow: that happens inside the
builders (Airflow) and the tasks (the rest).
"""
