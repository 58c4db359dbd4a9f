"""The Airflow plugin: registers the reports app and its views, loads in Airflow, does no work."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
import textwrap
from urllib.parse import urlsplit

import pytest

from tests.conftest import ROOT

PLUGIN = ROOT / "plugins" / "runway_reports.py"
#: What the Airflow 3.3 UI substitutes in the href of a non-nav external view.
UI_PLACEHOLDERS = {"DAG_ID", "RUN_ID", "TASK_ID", "MAP_INDEX"}
#: Every view of the plugin, by its url_route (the UI's ``/plugin/<url_route>`` page).
URL_ROUTES = {
    "runway-validation-reports",
    "runway-validation-report",
    "runway-gate-decisions",
    "runway-gate-decision",
    "runway-model-monitoring",
}


@pytest.fixture(scope="module")
def plugin():
    return runpy.run_path(str(PLUGIN))["RunwayReportsPlugin"]


def test_plugin_mounts_the_reports_app_under_runway(plugin) -> None:
    (app,) = plugin.fastapi_apps
    assert plugin.name == "runway_reports"
    assert app["url_prefix"] == "/runway" and app["name"]
    routes = {route.path for route in app["app"].routes}
    assert {"/reports/", "/reports/run", "/reports/files/{relative:path}"} <= routes
    assert {"/decisions/", "/decisions/run", "/decisions/{decision_id}"} <= routes
    assert {"/monitoring/", "/monitoring/files/{relative:path}", "/monitoring/{pipeline}"} <= routes


def _views(plugin) -> dict[str, dict]:
    views = {view["url_route"]: view for view in plugin.external_views}
    assert len(views) == len(plugin.external_views), "url_routes must be unique"
    assert set(views) == URL_ROUTES
    return views


def test_validation_reports_are_in_browse_and_on_task_instances(plugin) -> None:
    views = _views(plugin)
    nav, task_instance = views["runway-validation-reports"], views["runway-validation-report"]
    assert nav["name"] == "Validation reports" and nav["category"] == "browse"
    assert nav["destination"] == "nav" and nav["href"] == "runway/reports/"
    assert task_instance["name"] == "Validation report"
    assert task_instance["destination"] == "task_instance"
    href = urlsplit(task_instance["href"])
    assert href.path == "runway/reports/run"
    assert "dag_id={DAG_ID}" in href.query and "run_id={RUN_ID}" in href.query


def test_gate_decisions_are_in_browse_and_on_dag_runs(plugin) -> None:
    views = _views(plugin)
    nav, dag_run = views["runway-gate-decisions"], views["runway-gate-decision"]
    assert nav["name"] == "Model gate decisions" and nav["category"] == "browse"
    assert nav["destination"] == "nav" and nav["href"] == "runway/decisions/"
    # Airflow 3.3 has DAG run tabs: the decision belongs to the run, not to one task.
    assert dag_run["name"] == "Gate decision" and dag_run["destination"] == "dag_run"
    href = urlsplit(dag_run["href"])
    assert href.path == "runway/decisions/run"
    assert href.query == "dag_id={DAG_ID}&run_id={RUN_ID}"


def test_model_monitoring_is_in_browse(plugin) -> None:
    nav = _views(plugin)["runway-model-monitoring"]
    assert nav["name"] == "Model monitoring" and nav["category"] == "browse"
    assert nav["destination"] == "nav" and nav["href"] == "runway/monitoring/"


def test_every_view_opens_a_route_of_the_app_in_the_ui(plugin) -> None:
    routes = {route.path for route in plugin.fastapi_apps[0]["app"].routes}
    for view in plugin.external_views:
        # Relative to the UI's base URL, so a deployment under a sub-path works; an
        # url_route makes the UI show the page in an iframe instead of a new tab.
        assert not view["href"].startswith(("/", "http")), view
        assert set(re.findall(r"{(\w+)}", view["href"])) <= UI_PLACEHOLDERS, view
        assert re.fullmatch(r"[a-z0-9-]+", view["url_route"]), view
        assert "/" + urlsplit(view["href"]).path.removeprefix("runway/") in routes, view
        if view["destination"] == "nav":
            assert not re.findall(r"{(\w+)}", view["href"]), "nav hrefs are not substituted"


def test_views_match_airflows_plugin_schema(plugin) -> None:
    from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse

    for view in plugin.external_views:
        parsed = ExternalViewResponse.model_validate(view)
        # An unknown destination (one this Airflow's UI does not have) fails validation.
        assert parsed.destination == view["destination"]


def test_airflow_plugin_manager_loads_it(monkeypatch) -> None:
    from airflow import plugins_manager

    monkeypatch.setattr(plugins_manager.settings, "PLUGINS_FOLDER", str(ROOT / "plugins"))
    caches = (
        plugins_manager._get_plugins,
        plugins_manager.get_fastapi_plugins,
        plugins_manager._get_ui_plugins,
    )
    for cache in caches:
        cache.cache_clear()
    try:
        plugins, import_errors = plugins_manager._get_plugins()
        apps, _ = plugins_manager.get_fastapi_plugins()
        external_views, _ = plugins_manager._get_ui_plugins()
    finally:
        for cache in caches:
            cache.cache_clear()
    assert import_errors == {}
    assert "runway_reports" in {p.name for p in plugins}
    assert [a["url_prefix"] for a in apps] == ["/runway"]
    assert {v["url_route"] for v in external_views} == URL_ROUTES


def test_importing_the_plugin_does_no_work(tmp_path) -> None:
    """Every Airflow process imports plugins (each task, for macros): it must stay cheap.

    A fresh interpreter imports the plugin with no readable settings and a listener on
    every database connection: nothing may connect, and Airflow's API server modules
    (imported only when a request arrives) must not be loaded.
    """
    script = textwrap.dedent(
        f"""
        import runpy, sys
        import sqlalchemy as sa

        connections = []
        sa.event.listen(sa.pool.Pool, "connect", lambda *a: connections.append(a))
        namespace = runpy.run_path({str(PLUGIN)!r})
        assert namespace["RunwayReportsPlugin"].fastapi_apps
        from runway_mlops import catalog
        assert connections == [], "the plugin opened a database connection at import"
        assert catalog._engines == {{}}, "the plugin touched the Runway catalog at import"
        heavy = [m for m in ("airflow.api_fastapi.core_api.security", "airflow.models.dag")
                 if m in sys.modules]
        assert not heavy, f"imported at plugin import: {{heavy}}"
        print("ok")
        """
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        # Settings cannot be read at all: a plugin that loads them at import fails.
        "RUNWAY_CONFIG_DIR": str(tmp_path / "no-config-here"),
        "PYTHONPATH": str(ROOT / "src"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
