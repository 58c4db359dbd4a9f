"""The Airflow plugin: registers the reports app and its views, and loads in Airflow."""

from __future__ import annotations

import runpy

from tests.conftest import ROOT


def test_plugin_registers_app_and_views() -> None:
    namespace = runpy.run_path(str(ROOT / "plugins" / "runway_reports.py"))
    plugin = namespace["RunwayReportsPlugin"]
    (app,) = plugin.fastapi_apps
    assert app["url_prefix"] == "/runway"
    routes = {route.path for route in app["app"].routes}
    assert {"/reports/", "/reports/run", "/reports/files/{relative:path}"} <= routes
    views = {view["destination"]: view for view in plugin.external_views}
    assert views["nav"]["href"] == "runway/reports/"
    assert "{DAG_ID}" in views["task_instance"]["href"]
    assert "{RUN_ID}" in views["task_instance"]["href"]


def test_airflow_plugin_manager_accepts_it(monkeypatch) -> None:
    from airflow import plugins_manager

    monkeypatch.setattr(plugins_manager.settings, "PLUGINS_FOLDER", str(ROOT / "plugins"))
    plugins_manager._get_plugins.cache_clear()
    plugins_manager.get_fastapi_plugins.cache_clear()
    try:
        apps, _ = plugins_manager.get_fastapi_plugins()
        plugins, import_errors = plugins_manager._get_plugins()
    finally:
        plugins_manager._get_plugins.cache_clear()
        plugins_manager.get_fastapi_plugins.cache_clear()
    assert import_errors == {}
    assert "runway_reports" in {p.name for p in plugins}
    assert [a["url_prefix"] for a in apps] == ["/runway"]
