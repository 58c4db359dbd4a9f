"""The validation-report pages: Airflow's login in front, nothing outside the reports folder.

Runs against Airflow's real configuration (a private AIRFLOW_HOME, the simple auth
manager, a generated JWT secret: see ``tests/conftest.py``), its real metadata database
(token revocation and DAG teams are looked up there) and tokens issued by Airflow itself.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote, urlencode

import pytest
from fastapi.testclient import TestClient

from runway_mlops import catalog
from runway_mlops.ui.reports_app import create_app
from tests.conftest import CONFIG_DIR, ROOT

DAY = dt.date(2013, 1, 5)
DAG_ID = "flights_features"
RUN_ID = "backfill__2013-01-05T00:00:00+00:00"
REPORT = f"/reports/files/flights/ds={DAY}/index.html"
HEADING = "Validation report: flights, 2013-01-05"


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


def _record(settings, *, pipeline="flights", dataset="flights", dag_id=DAG_ID, run_id=RUN_ID):
    folder = settings.reports_dir / "validation" / pipeline / f"ds={DAY}"
    catalog.record_validation(
        settings.database_url,
        catalog.ValidationRecord(
            validation_id=f"{pipeline}-{dataset}",
            pipeline=pipeline,
            dataset=dataset,
            ds=DAY,
            outcome="passed",
            rows=720,
            rows_quarantined=28,
            failures=[],
            report_path=str(folder / "index.html"),
            dag_id=dag_id,
            run_id=run_id,
        ),
        [],
    )


@pytest.fixture
def reports(settings):
    """One recorded report, a secret next to the reports folder and links pointing out."""
    folder = settings.reports_dir / "validation" / "flights" / f"ds={DAY}"
    (folder / "gx").mkdir(parents=True)
    (folder / "index.html").write_text(f"<h1>{HEADING}</h1>")
    (folder / "gx" / "page.html").write_text("<p>expectations and results</p>")
    outside = settings.home / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not a report")
    (folder / "escape.html").symlink_to(outside / "secret.txt")
    (folder / "escape_dir").symlink_to(outside, target_is_directory=True)
    (settings.reports_dir / "secret.txt").write_text("not a report")
    _record(settings)
    _record(settings, dataset="weather")
    return settings


@pytest.fixture
def client(reports, auth_manager) -> TestClient:
    return TestClient(create_app(lambda: reports))


def _assert_no_report(response) -> None:
    assert HEADING not in response.text
    assert "not a report" not in response.text and "root:" not in response.text


# ------------------------------------------------------------------ authentication


@pytest.mark.parametrize(
    "path",
    ["/reports/", f"/reports/run?dag_id={DAG_ID}&run_id={quote(RUN_ID)}", REPORT],
)
def test_anonymous_requests_are_refused_with_a_link_to_the_login(client, path) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 401
    _assert_no_report(response)
    assert "flights: passed" not in response.text
    # The login page brings the user back to the page they asked for.
    assert "/auth/login?next=%2Freports%2F" in response.text


@pytest.mark.parametrize("kind", ["garbage", "expired", "tampered", "foreign key", "empty"])
def test_forged_expired_or_garbage_tokens_are_refused(client, auth_manager, kind) -> None:
    import jwt

    good = auth_manager.generate_jwt(_user())
    bad = {
        "garbage": "garbage",
        "expired": auth_manager.generate_jwt(_user(), expiration_time_in_seconds=-3600),
        "tampered": good[:-6] + ("AAAAAA" if not good.endswith("AAAAAA") else "BBBBBB"),
        # Same claims, signed with a key that is not Airflow's secret.
        "foreign key": jwt.encode(
            jwt.decode(good, options={"verify_signature": False}),
            "not-the-airflow-secret-" + "x" * 64,
            algorithm=jwt.get_unverified_header(good)["alg"],
        ),
        "empty": "",
    }[kind]
    for sent in ({"cookies": {"_token": bad}}, {"headers": {"Authorization": f"Bearer {bad}"}}):
        client.cookies.clear()
        response = client.get(REPORT, **sent)
        assert response.status_code in (401, 403), (kind, sent)
        _assert_no_report(response)


def test_the_ui_cookie_opens_the_index_and_the_report(client, token) -> None:
    client.cookies.set("_token", token)
    index = client.get("/reports/")
    assert index.status_code == 200
    assert "2013-01-05" in index.text
    assert "flights: passed" in index.text and "weather: passed" in index.text
    assert f"href='files/flights/ds={DAY}/index.html'" in index.text
    page = client.get(REPORT)
    assert page.status_code == 200 and HEADING in page.text
    assert page.headers["content-type"].startswith("text/html")
    assert client.get(f"/reports/files/flights/ds={DAY}/gx/page.html").status_code == 200


def test_a_bearer_token_works_too(client, token) -> None:
    response = client.get(REPORT, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and HEADING in response.text


def test_a_revoked_token_is_refused(client, auth_manager) -> None:
    """Logging out of Airflow revokes the token; the reports honour that."""
    revoked = auth_manager.generate_jwt(_user())
    assert client.get(REPORT, cookies={"_token": revoked}).status_code == 200
    auth_manager.revoke_token(revoked)
    client.cookies.clear()
    response = client.get(REPORT, cookies={"_token": revoked})
    assert response.status_code in (401, 403)
    _assert_no_report(response)


# ------------------------------------------------------------------- authorisation


def test_a_user_without_a_role_is_authenticated_but_not_allowed(client, auth_manager) -> None:
    client.cookies.set("_token", auth_manager.generate_jwt(_user("nobody", role=None)))
    for path in (REPORT, f"/reports/run?dag_id={DAG_ID}&run_id={quote(RUN_ID)}"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 403, path
        _assert_no_report(response)
    index = client.get("/reports/")
    assert index.status_code == 200 and "2013-01-05" not in index.text


def test_reports_follow_the_dag_permissions_of_the_auth_manager(
    client, auth_manager, token, monkeypatch
) -> None:
    """A user who may not read the runs of the DAG that wrote a report does not see it."""
    asked: list[str | None] = []

    def is_authorized_dag(*, method, user, access_entity=None, details=None) -> bool:
        asked.append(details.id if details else None)
        return method == "GET" and details is not None and details.id != DAG_ID

    monkeypatch.setattr(auth_manager, "is_authorized_dag", is_authorized_dag)
    client.cookies.set("_token", token)
    index = client.get("/reports/")
    assert index.status_code == 200 and "2013-01-05" not in index.text
    assert client.get(REPORT).status_code == 403
    run = client.get("/reports/run", params={"dag_id": DAG_ID, "run_id": RUN_ID})
    assert run.status_code == 403
    assert set(asked) == {DAG_ID}


# ------------------------------------------------------------------ the run's report


def test_the_task_instance_link_opens_that_runs_report(client, token) -> None:
    client.cookies.set("_token", token)
    response = client.get(
        "/reports/run",
        params={"dag_id": DAG_ID, "run_id": RUN_ID, "task_id": "validate_raw"},
        follow_redirects=False,
    )
    assert response.status_code == 307
    assert response.headers["location"] == f"files/flights/ds={DAY}/index.html"
    followed = client.get("/reports/run", params={"dag_id": DAG_ID, "run_id": RUN_ID})
    assert followed.status_code == 200 and HEADING in followed.text


@pytest.mark.parametrize(
    ("dag_id", "run_id"),
    [(DAG_ID, "manual__2013-02-01T00:00:00+00:00"), ("other_dag", RUN_ID)],
)
def test_a_run_without_a_report_gets_a_clear_404_page(client, token, dag_id, run_id) -> None:
    client.cookies.set("_token", token)
    response = client.get(
        "/reports/run", params={"dag_id": dag_id, "run_id": run_id, "task_id": "train_model"}
    )
    assert response.status_code == 404
    assert "No validation report was recorded for run" in response.text
    assert run_id in response.text and dag_id in response.text
    _assert_no_report(response)


def test_a_recorded_report_whose_files_are_gone_is_a_404_page(client, token, reports) -> None:
    (reports.reports_dir / "validation" / "flights" / f"ds={DAY}" / "index.html").unlink()
    client.cookies.set("_token", token)
    response = client.get("/reports/run", params={"dag_id": DAG_ID, "run_id": RUN_ID})
    assert response.status_code == 404 and "no longer in the reports folder" in response.text


def test_report_folders_missing_from_the_catalog_are_listed(client, token, reports) -> None:
    folder = reports.reports_dir / "validation" / "taxis" / "ds=2014-03-02"
    folder.mkdir(parents=True)
    (folder / "index.html").write_text("<h1>taxis</h1>")
    client.cookies.set("_token", token)
    index = client.get("/reports/")
    assert "2014-03-02" in index.text and "not in the catalog" in index.text
    assert client.get("/reports/files/taxis/ds=2014-03-02/index.html").status_code == 200


# ------------------------------------------------------------------ path traversal


@pytest.mark.parametrize(
    "path",
    [
        "/reports/files/%2e%2e/%2e%2e/secret.txt",
        "/reports/files/flights/ds=2013-01-05/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "/reports/files/flights/ds=2013-01-05/..%2f..%2f..%2fsecret.txt",
        "/reports/files/flights/ds=2013-01-05/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fouter/secret.txt",
        "/reports/files/flights/ds=2013-01-05/%252e%252e/%252e%252e/secret.txt",
        "/reports/files//etc/passwd",
        "/reports/files/%2fetc%2fpasswd",
        "/reports/files/flights/ds=2013-01-05/%2fetc%2fpasswd",
        "/reports/files/flights/ds=2013-01-05/index.html%00.txt",
        "/reports/files/flights/ds=2013-01-05/escape.html",
        "/reports/files/flights/ds=2013-01-05/escape_dir/secret.txt",
        "/reports/files/flights/ds=2013-01-05",
        "/reports/files/flights/ds=2013-01-05/",
        "/reports/files/secret.txt",
        "/reports/files/flights/ds=2013-99-99/index.html",
    ],
)
def test_paths_outside_the_reports_folder_are_refused(client, token, path) -> None:
    client.cookies.set("_token", token)
    response = client.get(path, follow_redirects=False)
    assert response.status_code in (403, 404), response.status_code
    _assert_no_report(response)


def test_traversal_is_refused_before_login_too(client) -> None:
    response = client.get("/reports/files/%2e%2e/%2e%2e/secret.txt")
    assert response.status_code == 401
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


def test_mounted_in_airflow_the_login_is_airflows(airflow_api, auth_manager) -> None:
    anonymous = airflow_api.get("/runway/reports/")
    assert anonymous.status_code == 401
    assert "/auth/login?next=%2Frunway%2Freports%2F" in anonymous.text
    assert airflow_api.get("/runway" + REPORT).status_code == 401

    login = airflow_api.post(
        "/auth/token",
        json={"username": "viewer", "password": auth_manager.get_passwords()["viewer"]},
    )
    assert login.status_code == 201
    token = login.json()["access_token"]

    airflow_api.cookies.set("_token", token)
    index = airflow_api.get("/runway/reports/")
    assert index.status_code == 200 and "flights: passed" in index.text
    # As the UI builds the task instance tab's URL: encodeURIComponent() on each id.
    report = airflow_api.get(
        "/runway/reports/run?" + urlencode({"dag_id": DAG_ID, "run_id": RUN_ID}, quote_via=quote)
    )
    assert report.status_code == 200 and HEADING in report.text
    assert str(report.url).endswith(f"/runway/reports/files/flights/ds={DAY}/index.html")
    missing = airflow_api.get("/runway/reports/files/flights/ds=2013-01-05/nope.html")
    assert missing.status_code == 404 and "/runway/reports/" in missing.text

    # The UI reads the plugin's views from the REST API, with the same token.
    plugins = airflow_api.get("/api/v2/plugins").json()["plugins"]
    ours = next(p for p in plugins if p["name"] == "runway_reports")
    assert {v["url_route"] for v in ours["external_views"]} == {
        "runway-validation-reports",
        "runway-validation-report",
        "runway-gate-decisions",
        "runway-gate-decision",
        "runway-model-monitoring",
    }
    assert [a["url_prefix"] for a in ours["fastapi_apps"]] == ["/runway"]
