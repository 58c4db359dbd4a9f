"""Airflow plugin: Runway's validation reports inside the Airflow UI.

Mounts :func:`runway_mlops.ui.reports_app.create_app` in the API server under
``/runway`` and adds two external views: *Validation reports* in the navigation
(under Browse) and *Validation report* on every task instance (it shows the report of
that run; other tasks say no report was recorded for them). Every page requires
Airflow's login.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from runway_mlops.ui.reports_app import create_app

PREFIX = "/runway"


class RunwayReportsPlugin(AirflowPlugin):
    name = "runway_reports"
    fastapi_apps = [
        {"app": create_app(), "url_prefix": PREFIX, "name": "Runway validation reports"}
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
            "href": "runway/reports/run?dag_id={DAG_ID}&run_id={RUN_ID}",
            "destination": "task_instance",
            "url_route": "runway-validation-report",
        },
    ]
