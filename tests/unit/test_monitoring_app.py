"""The model-monitoring pages: each pipeline's report, behind Airflow's login.

The report folder is the real one: monitoring rows, policy decisions and a model event are
written with the store's and the catalog's own functions into the platform database of a
temporary home, then :func:`write_report` draws the plots and the page (once per module,
copied into each test's home). Pages are read with tokens issued by Airflow itself (a
private AIRFLOW_HOME with the simple auth manager: see ``tests/conftest.py``).
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path
from urllib.parse import urljoin

import pytest
from fastapi.testclient import TestClient

from runway_mlops import catalog
from runway_mlops.config import load_settings
from runway_mlops.monitoring import store
from runway_mlops.monitoring.report import report_dir, write_report
from runway_mlops.ui.reports_app import create_app
from tests.conftest import CONFIG_DIR, ROOT
from tests.unit.test_reports_app import (
    HOSTILE,
    HOSTILE_ATTRIBUTE,
    assert_inert,
    csp,
    dags_owned_by_teams,
    team_token,
)

PIPELINE = "flights"
DAG_ID = "flights_monitoring"
RUN_ID = "scheduled__2013-02-10T05:00:00+00:00"
#: The days the written report monitors.
FIRST_DAY = dt.date(2013, 2, 1)
DAYS = 10
HEADING = "Monitoring: flights"
REPORT = "/monitoring/files/flights/index.html"
PLOTS = ("quality.png", "drift.png", "volume.png")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_monitoring_report(settings, pipeline, *, days: int = DAYS, promoted: bool = True) -> Path:
    """Monitor ``days`` days of ``pipeline`` into ``settings``' database, then write its
    report with the real :func:`write_report`; returns the report's ``index.html``.

    Version 1 is the champion, version 2 a shadow (promoted on the sixth day unless
    ``promoted`` is false: a database other tests read may count promotions); the
    champion's quality sags and its score drifts, so every plot has lines to draw.
    """
    url = settings.database_url
    dag_id = f"{pipeline.name}_monitoring"
    for i in range(days):
        ds = FIRST_DAY + dt.timedelta(days=i)
        rows = []
        for version, role, auc in (("1", "champion", 0.70 - 0.01 * i), ("2", "shadow", 0.69)):
            for metric, value in (("roc_auc", auc), ("positive_rate", 0.21), ("mean_score", 0.2)):
                rows.append(
                    store.MetricRow(
                        ds, version, role, role, "quality", "overall", metric, value, 700
                    )
                )
            rows.append(
                store.MetricRow(ds, version, role, role, "slice", "carrier=UA", "roc_auc", auc, 90)
            )
            for name, psi in (("score", 0.04 * i), ("dep_hour", 0.02 * i)):
                status = "alert" if psi > 0.25 else "warn" if psi > 0.1 else "ok"
                rows.append(
                    store.MetricRow(ds, version, role, role, "drift", name, "psi", psi, 700, status)
                )
        store.replace_day(url, pipeline.name, ds, rows, dag_id=dag_id, run_id=RUN_ID)
        store.record_decision(
            url,
            pipeline.name,
            ds,
            store.PolicyDecision("retrain", "hold", "realised ROC AUC above the threshold"),
            dag_id=dag_id,
            run_id=RUN_ID,
        )
    if not promoted:
        return write_report(settings, pipeline, aliases={"champion": "1", "shadow": "2"})
    catalog.record_model_event(
        url,
        catalog.ModelEvent(
            pipeline=pipeline.name,
            model_name=pipeline.model_name,
            model_version="2",
            event="promoted",
            actor=f"dag:{dag_id}",
            reason="the shadow beat the champion",
            details={"effective_from": str(FIRST_DAY + dt.timedelta(days=5))},
            dag_id=dag_id,
            run_id=RUN_ID,
        ),
    )
    return write_report(settings, pipeline, aliases={"champion": "2", "shadow": None})


@pytest.fixture(scope="module")
def written(tmp_path_factory, flights_pipeline) -> Path:
    """The folder of one real report (written once: drawing the plots takes seconds)."""
    home = tmp_path_factory.mktemp("written") / "home"
    settings = load_settings(CONFIG_DIR, env={"RUNWAY_HOME": str(home)})
    index = write_monitoring_report(settings, flights_pipeline)
    assert index == report_dir(settings, PIPELINE) / "index.html"
    return index.parent


@pytest.fixture(scope="module")
def auth_manager():
    """Airflow's configured auth manager, on an initialised metadata database."""
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
    from airflow.configuration import conf
    from airflow.utils.db import initdb

    assert conf.get("api_auth", "jwt_secret"), "tests/conftest.py sets a JWT secret"
    initdb()
    manager = init_auth_manager()
    assert isinstance(manager, SimpleAuthManager)
    return manager


def _user(username: str = "viewer", role: str | None = "viewer"):
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return SimpleAuthManagerUser(username=username, role=role)


@pytest.fixture
def token(auth_manager) -> str:
    """What ``POST /auth/token`` returns for the ``viewer`` user (read-only role)."""
    from airflow.api_fastapi.auth.managers.simple.datamodels.login import LoginBody
    from airflow.api_fastapi.auth.managers.simple.services.login import SimpleAuthManagerLogin

    password = auth_manager.get_passwords()["viewer"]
    return SimpleAuthManagerLogin.create_token(LoginBody(username="viewer", password=password))


@pytest.fixture
def reports(settings, written):
    """The flights report and a copy as taxis; secrets next to them and links pointing out."""
    root = settings.reports_dir / "monitoring"
    shutil.copytree(written, root / PIPELINE)
    shutil.copytree(written, root / "taxis")
    (root / "taxis" / "index.html").write_text("<h1>Monitoring: taxis</h1>")
    outside = settings.home / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not a report")
    (outside / "index.html").write_text("<h1>not a report</h1>")
    (settings.reports_dir / "secret.txt").write_text("not a report")
    (root / "secret.txt").write_text("not a report")
    folder = root / PIPELINE
    (folder / "escape.png").symlink_to(outside / "secret.txt")
    (folder / "escape_dir").symlink_to(outside, target_is_directory=True)
    # Pipeline folders that are links: out of the reports, and onto another pipeline's.
    (root / "evil").symlink_to(outside, target_is_directory=True)
    (root / "alias").symlink_to(root / PIPELINE, target_is_directory=True)
    # What a swap in progress leaves for a moment (write_report's staging folder).
    shutil.copytree(written, root / ".flights-0123abcd")
    return settings


@pytest.fixture
def client(reports, auth_manager) -> TestClient:
    return TestClient(create_app(lambda: reports))


def _assert_no_report(response) -> None:
    assert HEADING not in response.text and "Monitoring: taxis" not in response.text
    assert "not a report" not in response.text and "root:" not in response.text
    assert not response.content.startswith(PNG_MAGIC)


# ------------------------------------------------------------------ authentication


@pytest.mark.parametrize(
    "path",
    [
        "/monitoring/",
        "/monitoring/flights",
        "/monitoring/flights/",
        REPORT,
        "/monitoring/files/flights/quality.png",
        "/monitoring/files/%2e%2e/%2e%2e/secret.txt",
        "/monitoring/nope",
    ],
)
def test_anonymous_requests_are_refused_with_a_link_to_the_login(client, path) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/html")
    _assert_no_report(response)
    assert "Log in to Airflow first" in response.text
    # The login page brings the user back to the page they asked for.
    assert "/auth/login?next=%2Fmonitoring%2F" in response.text


@pytest.mark.parametrize("kind", ["garbage", "expired"])
def test_forged_or_expired_tokens_are_refused(client, auth_manager, kind) -> None:
    bad = {
        "garbage": "garbage",
        "expired": auth_manager.generate_jwt(_user(), expiration_time_in_seconds=-3600),
    }[kind]
    for sent in ({"cookies": {"_token": bad}}, {"headers": {"Authorization": f"Bearer {bad}"}}):
        client.cookies.clear()
        for path in ("/monitoring/", REPORT):
            response = client.get(path, **sent)
            assert response.status_code in (401, 403), (kind, sent, path)
            _assert_no_report(response)


# ------------------------------------------------------------------ the pages


def test_the_index_lists_each_pipeline_with_a_link_to_its_report(client, token) -> None:
    client.cookies.set("_token", token)
    index = client.get("/monitoring/")
    assert index.status_code == 200
    assert index.headers["cache-control"] == "no-store"
    assert "<title>Model monitoring</title>" in index.text
    links = re.findall(r"<a href='([^']+)'>([^<]+)</a>", index.text)
    assert links == [
        ("files/flights/index.html", "flights"),
        ("files/taxis/index.html", "taxis"),
    ]
    assert "flights_monitoring" in index.text and "taxis_monitoring" in index.text
    # Links of pipeline folders that are links, and staging folders, are not listed.
    for hidden in ("evil", "alias", ".flights"):
        assert hidden not in index.text
    # The index's links, resolved as a browser does, open the reports.
    for href, _ in links:
        page = client.get(urljoin(str(index.url), href))
        assert page.status_code == 200 and "<h1>Monitoring: " in page.text


def test_the_report_and_its_plots_are_served(client, token, written) -> None:
    client.cookies.set("_token", token)
    page = client.get(REPORT)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "private, no-cache"
    assert f"<h1>{HEADING}</h1>" in page.text
    # Every image of the page, resolved against the page's URL as a browser does.
    images = re.findall(r"<img src='([^']+)'", page.text)
    assert set(PLOTS) <= set(images)
    for src in images:
        plot = client.get(urljoin(str(page.url), src))
        assert plot.status_code == 200, src
        assert plot.headers["content-type"] == "image/png"
        assert plot.headers["cache-control"] == "private, no-cache"
        assert plot.content.startswith(PNG_MAGIC)
        assert plot.content == (written / src).read_bytes()


def test_a_bearer_token_works_too(client, token) -> None:
    response = client.get(REPORT, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and HEADING in response.text


@pytest.mark.parametrize("path", ["/monitoring/flights", "/monitoring/flights/"])
def test_the_pipeline_page_redirects_to_its_report(client, token, path) -> None:
    client.cookies.set("_token", token)
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 307
    # Relative, and right from both forms of the URL.
    location = response.headers["location"]
    assert not location.startswith("/")
    assert urljoin(str(response.url), location).endswith(REPORT)
    followed = client.get(path)
    assert followed.status_code == 200 and HEADING in followed.text
    assert str(followed.url).endswith(REPORT)


def test_no_report_yet_is_a_friendly_index(settings, auth_manager, token) -> None:
    client = TestClient(create_app(lambda: settings))
    client.cookies.set("_token", token)
    index = client.get("/monitoring/")
    assert index.status_code == 200
    assert "appears once a pipeline's monitoring DAG has run" in index.text
    assert "<table>" not in index.text


@pytest.mark.parametrize(
    "path", ["/monitoring/ships", "/monitoring/ships/", "/monitoring/files/ships/index.html"]
)
def test_a_pipeline_without_a_report_is_a_404_page(client, token, path) -> None:
    client.cookies.set("_token", token)
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "<a href='/monitoring/'>All monitoring reports</a>" in response.text
    if "/files/" not in path:
        assert "ships_monitoring" in response.text and "has run" in response.text


def test_a_report_being_replaced_is_a_404_not_an_error(client, token, reports) -> None:
    """write_report renames the folder away, then the new one in: between the two renames
    the report does not exist."""
    root = reports.reports_dir / "monitoring"
    (root / PIPELINE).rename(root / ".trash-flights-0123abcd")
    client.cookies.set("_token", token)
    index = client.get("/monitoring/")
    assert index.status_code == 200 and "files/flights/" not in index.text
    for path in ("/monitoring/flights", REPORT, "/monitoring/files/flights/quality.png"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 404, path
        _assert_no_report(response)


# ------------------------------------------------------------------- authorisation


def test_a_user_without_a_role_is_authenticated_but_not_allowed(client, auth_manager) -> None:
    client.cookies.set("_token", auth_manager.generate_jwt(_user("nobody", role=None)))
    for path in ("/monitoring/flights", REPORT, "/monitoring/files/flights/quality.png"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 403, path
        assert "You may not read runs of flights_monitoring" in response.text
        _assert_no_report(response)
    index = client.get("/monitoring/")
    assert index.status_code == 200
    assert "flights" not in index.text and "taxis" not in index.text
    assert "appears once a pipeline's monitoring DAG has run" in index.text


@pytest.fixture
def teams(reports, auth_manager):
    """flights' monitoring DAG owned by one team, taxis' by another (Airflow's own per-DAG
    permissions, judged by the real simple auth manager)."""
    with dags_owned_by_teams({DAG_ID: "team_flights", "taxis_monitoring": "team_taxis"}):
        yield reports


def test_reports_follow_the_monitoring_dag_permissions(client, teams, auth_manager) -> None:
    """A reader of the taxis monitoring runs, not of the flights ones: taxis only, and
    flights refused before the file is looked for (a missing file is a 403 too)."""
    client.cookies.set("_token", team_token(auth_manager, "team_taxis"))
    index = client.get("/monitoring/")
    assert index.status_code == 200
    assert "files/taxis/index.html" in index.text and "files/flights/" not in index.text
    for path in (
        "/monitoring/flights",
        REPORT,
        "/monitoring/files/flights/quality.png",
        "/monitoring/files/flights/no-such-file.png",
    ):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 403, path
        _assert_no_report(response)
    assert client.get("/monitoring/files/taxis/quality.png").status_code == 200


@pytest.mark.parametrize(
    "into_flights",
    [
        "taxis/%2e%2e/flights/index.html",
        "taxis/..%2fflights/quality.png",
        "taxis/%2e%2e/%2e%2e/monitoring/flights/index.html",
        "alias/index.html",  # a pipeline folder that is a link to flights'
    ],
)
def test_a_path_that_leads_into_another_pipeline_is_authorised_as_that_pipeline(
    client, teams, auth_manager, into_flights
) -> None:
    """The pipeline is the folder a path leads to (``..`` and links resolved), not the
    path's first part: a reader of taxis gets nothing of flights through taxis' folder."""
    client.cookies.set("_token", team_token(auth_manager, "team_taxis"))
    refused = client.get(f"/monitoring/files/{into_flights}")
    assert refused.status_code == 403
    assert "You may not read runs of flights_monitoring" in refused.text
    _assert_no_report(refused)
    # The same path is flights' file for a reader of flights.
    client.cookies.set("_token", team_token(auth_manager, "team_flights", username="bob"))
    assert client.get(f"/monitoring/files/{into_flights}").status_code == 200


# ------------------------------------------------------------------ inert pages


def test_the_report_page_runs_no_script_and_its_plots_are_data(client, token) -> None:
    client.cookies.set("_token", token)
    page = client.get(REPORT)
    # Runway's own page (every value escaped): no script, Airflow's origin kept so the
    # plots load with the login cookie.
    assert csp(page)["sandbox"] == ["allow-same-origin"]
    assert csp(page)["img-src"] == ["'self'"] and "script-src" not in csp(page)
    plot = client.get("/monitoring/files/flights/quality.png")
    assert plot.headers["content-type"] == "image/png"
    assert csp(plot)["sandbox"] == [] and csp(plot)["default-src"] == ["'none'"]
    for response in (page, plot):
        assert response.headers["x-content-type-options"] == "nosniff"


def test_hostile_values_are_shown_as_text_in_the_report(settings, flights_pipeline) -> None:
    """Reasons, actors, versions and figures recorded by monitoring runs are escaped."""
    url = settings.database_url
    write_monitoring_report(settings, flights_pipeline, days=2, promoted=False)
    store.record_decision(
        url,
        PIPELINE,
        FIRST_DAY,
        store.PolicyDecision(
            "retrain",
            "fire",
            HOSTILE,
            figures={HOSTILE_ATTRIBUTE: HOSTILE},
            action=HOSTILE_ATTRIBUTE,
        ),
        dag_id=HOSTILE_ATTRIBUTE,
        run_id=HOSTILE,
    )
    catalog.record_model_event(
        url,
        catalog.ModelEvent(
            pipeline=PIPELINE,
            model_name=flights_pipeline.model_name,
            model_version=HOSTILE_ATTRIBUTE,
            event=HOSTILE_ATTRIBUTE,
            actor=HOSTILE,
            reason=HOSTILE,
            details={"effective_from": HOSTILE_ATTRIBUTE},
            dag_id=HOSTILE,
            run_id=HOSTILE_ATTRIBUTE,
        ),
    )
    index = write_report(settings, flights_pipeline, aliases={"champion": HOSTILE_ATTRIBUTE})
    page = index.read_text()
    # The page's own plots are its only images.
    assert re.findall(r"<img src='([^']+)'", page) == list(PLOTS)
    assert_inert(page.replace("<img ", "<figure "), HOSTILE, HOSTILE_ATTRIBUTE)


# ------------------------------------------------------------------ path traversal


@pytest.mark.parametrize(
    "path",
    [
        "/monitoring/files/%2e%2e/%2e%2e/secret.txt",
        "/monitoring/files/%2e%2e/secret.txt",
        "/monitoring/files/flights/%2e%2e/secret.txt",
        "/monitoring/files/flights/%2e%2e/%2e%2e/secret.txt",
        "/monitoring/files/flights/..%2f..%2fsecret.txt",
        "/monitoring/files/flights/%252e%252e/%252e%252e/secret.txt",
        "/monitoring/files//etc/passwd",
        "/monitoring/files/%2fetc%2fpasswd",
        "/monitoring/files/flights/%2fetc%2fpasswd",
        "/monitoring/files/flights//etc/passwd",
        "/monitoring/files/flights/index.html%00.txt",
        "/monitoring/files/flights/escape.png",
        "/monitoring/files/flights/escape_dir/secret.txt",
        "/monitoring/files/evil/secret.txt",
        "/monitoring/files/evil/index.html",
        "/monitoring/files/.flights-0123abcd/index.html",
        "/monitoring/files/Flights/index.html",
        "/monitoring/files/flights-x/index.html",
        "/monitoring/files/1flights/index.html",
        "/monitoring/files/flights",
        "/monitoring/files/flights/",
        "/monitoring/files/secret.txt",
        "/monitoring/files/",
        "/monitoring/%2e%2e",
        "/monitoring/Flights",
        "/monitoring/evil",
        "/monitoring/alias/",
        "/monitoring/.flights-0123abcd",
    ],
)
def test_paths_outside_a_pipelines_report_folder_are_404s(client, token, path) -> None:
    client.cookies.set("_token", token)
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 404, response.status_code
    _assert_no_report(response)


# --------------------------------------------------- inside Airflow's API server


@pytest.fixture
def airflow_api(reports, auth_manager, monkeypatch):
    """Airflow's real API server app (core API, auth, middlewares) with the plugin loaded."""
    from airflow import plugins_manager
    from airflow.api_fastapi.app import create_app as create_airflow_app

    monkeypatch.setenv("RUNWAY_CONFIG_DIR", str(CONFIG_DIR))
    monkeypatch.setenv("RUNWAY_HOME", str(reports.home))
    monkeypatch.setattr(plugins_manager.settings, "PLUGINS_FOLDER", str(ROOT / "plugins"))
    caches = (
        plugins_manager._get_plugins,
        plugins_manager.get_fastapi_plugins,
        plugins_manager._get_ui_plugins,
        plugins_manager.get_flask_plugins,
    )
    for cache in caches:
        cache.cache_clear()
    try:
        yield TestClient(create_airflow_app(apps="core"))
    finally:
        for cache in caches:
            cache.cache_clear()


def test_mounted_in_airflow_the_reports_are_behind_its_login(airflow_api, auth_manager) -> None:
    anonymous = airflow_api.get("/runway/monitoring/")
    assert anonymous.status_code == 401
    assert "/auth/login?next=%2Frunway%2Fmonitoring%2F" in anonymous.text
    assert airflow_api.get("/runway" + REPORT).status_code == 401

    login = airflow_api.post(
        "/auth/token",
        json={"username": "viewer", "password": auth_manager.get_passwords()["viewer"]},
    )
    assert login.status_code == 201
    airflow_api.cookies.set("_token", login.json()["access_token"])
    index = airflow_api.get("/runway/monitoring/")
    assert index.status_code == 200 and "files/flights/index.html" in index.text
    for path in ("/runway/monitoring/flights", "/runway/monitoring/flights/"):
        report = airflow_api.get(path)
        assert report.status_code == 200 and HEADING in report.text
        assert str(report.url).endswith("/runway" + REPORT)
    plot = airflow_api.get("/runway/monitoring/files/flights/quality.png")
    assert plot.status_code == 200 and plot.content.startswith(PNG_MAGIC)
    missing = airflow_api.get("/runway/monitoring/ships")
    assert missing.status_code == 404
    assert "<a href='/runway/monitoring/'>All monitoring reports</a>" in missing.text

    # The UI reads the plugin's views from the REST API: the nav item is accepted.
    plugins = airflow_api.get("/api/v2/plugins").json()["plugins"]
    views = next(p for p in plugins if p["name"] == "runway_reports")["external_views"]
    nav = {view["url_route"]: view for view in views}["runway-model-monitoring"]
    assert (nav["destination"], nav["category"]) == ("nav", "browse")
    assert nav["href"] == "runway/monitoring/"
