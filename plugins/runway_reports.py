"""Airflow plugin: Runway's validation reports, model-gate decisions and model-monitoring
reports inside the Airflow UI, behind its login.

Mounts :func:`runway_mlops.ui.reports_app.create_app` in the API server under ``/runway``
and adds five external views, all shown in an iframe of the UI:

* *Validation reports* under **Browse** in the navigation (``/plugin/runway-validation-reports``);
* *Validation report*, a tab on every task instance, which opens the report written by
  that DAG run. Airflow 3.3 cannot limit a view to one task id, so the tab is on every
  task; on a run without a validation it says so (404 page);
* *Model gate decisions* under **Browse** (``/plugin/runway-gate-decisions``): every gate
  decision with its checks and inputs, and the model events (registered, promoted...);
* *Gate decision*, a tab on every DAG run, which opens the decision recorded by that run,
  or says that there is none (404 page) on runs that train no model;
* *Model monitoring* under **Browse** (``/plugin/runway-model-monitoring``): each
  pipeline's monitoring report (realised quality, drift, policy decisions), shown to users
  who may read the runs of its ``<pipeline>_monitoring`` DAG.

The UI substitutes ``{DAG_ID}``, ``{RUN_ID}``, ``{TASK_ID}`` and ``{MAP_INDEX}`` in the
``href`` of non-nav views (URL-encoded; on a DAG run only the first two are known). Hrefs
are relative, without a leading slash, so they resolve against the UI's base URL
(``[api] base_url``).

Importing this module does no work: no settings, no database, no Airflow API modules;
it is imported by every Airflow process, tasks included.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from runway_mlops.ui.reports_app import create_app

URL_PREFIX = "/runway"


class RunwayReportsPlugin(AirflowPlugin):
    name = "runway_reports"
    fastapi_apps = [
        {
            "app": create_app(),
            "url_prefix": URL_PREFIX,
            "name": "Runway reports: validation, gate decisions, model monitoring",
        }
    ]
    external_views = [
        {
            "name": "Validation reports",
            "href": "runway/reports/",
            "destination": "nav",
            "category": "browse",
            "url_route": "runway-validation-reports",
        },
        {
            "name": "Validation report",
            "href": "runway/reports/run?dag_id={DAG_ID}&run_id={RUN_ID}&task_id={TASK_ID}",
            "destination": "task_instance",
            "url_route": "runway-validation-report",
        },
        {
            "name": "Model gate decisions",
            "href": "runway/decisions/",
            "destination": "nav",
            "category": "browse",
            "url_route": "runway-gate-decisions",
        },
        {
            "name": "Gate decision",
            "href": "runway/decisions/run?dag_id={DAG_ID}&run_id={RUN_ID}",
            "destination": "dag_run",
            "url_route": "runway-gate-decision",
        },
        {
            "name": "Model monitoring",
            "href": "runway/monitoring/",
            "destination": "nav",
            "category": "browse",
            "url_route": "runway-model-monitoring",
        },
    ]
