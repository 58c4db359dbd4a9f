"""Orchestration: how Airflow runs the stages (named so it never shadows ``airflow``).

* :mod:`.factory` — the DAGs of every pipeline file, built by ``dags/runway_pipelines.py``;
* :mod:`.dags` — the DAG builders, one module per kind (features, training, inference,
  monitoring) with what they share in :mod:`.dags.common`;
* :mod:`.tasks` — task adapters: a task's context to a stage call, Runway errors to
  Airflow's retry semantics;
* :mod:`.operators` — small subclasses of provider operators (Spark submit, sensor);
* :mod:`.runtime` — a profile's Airflow: its environment, connections, ``runway up``;
* :mod:`.api` — the client of Airflow's REST API used by the programs;
* :mod:`.preload`, :mod:`.log_servers` — Airflow's local-settings hooks;
* :mod:`.lifecycle`, :mod:`.embedded_postgres` — the watchdog of each component and the
  metadata database of the zero-config profile.

It imports the stages; nothing below it (core, domain libraries, stages) imports it.
"""
