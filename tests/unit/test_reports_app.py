"""The validation-report pages: Airflow's login in front, nothing outside the reports folder."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from runway_mlops import catalog
from runway_mlops.ui.reports_app import create_app

DAY = dt.date(2013, 1, 5)


@pytest.fixture(scope="module")
def auth_manager():
    """Airflow's own auth manager; token checks consult its metadata DB (revoked tokens)."""
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.utils.db import initdb

    initdb()
    return init_auth_manager()


@pytest.fixture
def token(auth_manager) -> str:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return auth_manager.generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))


@pytest.fixture
def client(settings) -> TestClient:
    folder = settings.reports_dir / "validation" / "flights" / f"ds={DAY}"
    folder.mkdir(parents=True)
    (folder / "index.html").write_text("<h1>Validation report: flights, 2013-01-05</h1>")
    (settings.home / "secret.txt").write_text("not a report")
    (folder / "escape.html").symlink_to(settings.home / "secret.txt")
    catalog.record_validation(
        settings.database_url,
        catalog.ValidationRecord(
            validation_id="v1",
            pipeline="flights",
            dataset="flights",
            ds=DAY,
            outcome="passed",
            rows=720,
            rows_quarantined=28,
            failures=[],
            report_path=str(folder / "index.html"),
            dag_id="flights_features",
            run_id="backfill__2013-01-05",
        ),
        [],
    )
    return TestClient(create_app(lambda: settings))


def test_anonymous_requests_are_refused(client) -> None:
    for path in (
        "/reports/",
        "/reports/run?dag_id=flights_features&run_id=backfill__2013-01-05",
        f"/reports/files/flights/ds={DAY}/index.html",
    ):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 401, path
        assert "Validation report" not in response.text


def test_forged_or_expired_tokens_are_refused(client, auth_manager) -> None:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    expired = auth_manager.generate_jwt(
        SimpleAuthManagerUser(username="admin", role="admin"), expiration_time_in_seconds=-60
    )
    for bad in ("garbage", expired, expired[:-4] + "AAAA"):
        response = client.get("/reports/", cookies={"_token": bad})
        assert response.status_code in (401, 403)


def test_logged_in_user_sees_the_index_and_the_report(client, token) -> None:
    client.cookies.set("_token", token)
    index = client.get("/reports/")
    assert index.status_code == 200
    assert "2013-01-05" in index.text and "passed" in index.text
    page = client.get(f"/reports/files/flights/ds={DAY}/index.html")
    assert page.status_code == 200 and "Validation report: flights" in page.text


def test_bearer_token_works_too(client, token) -> None:
    response = client.get("/reports/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_task_instance_link_opens_that_runs_report(client, token) -> None:
    client.cookies.set("_token", token)
    response = client.get(
        "/reports/run",
        params={"dag_id": "flights_features", "run_id": "backfill__2013-01-05"},
        follow_redirects=False,
    )
    assert response.status_code == 307
    assert response.headers["location"] == f"files/flights/ds={DAY}/index.html"
    unknown = client.get("/reports/run", params={"dag_id": "flights_features", "run_id": "nope"})
    assert unknown.status_code == 404 and "No validation report" in unknown.text


@pytest.mark.parametrize(
    "path",
    [
        "/reports/files/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "/reports/files/flights/..%2f..%2f..%2fsecret.txt",
        "/reports/files//etc/passwd",
        "/reports/files/%2fetc%2fpasswd",
        f"/reports/files/flights/ds={DAY}/escape.html",
        "/reports/files/flights/ds=2013-01-05",
    ],
)
def test_paths_outside_the_reports_folder_are_refused(client, token, path) -> None:
    client.cookies.set("_token", token)
    response = client.get(path)
    assert response.status_code == 404
    assert "not a report" not in response.text and "root:" not in response.text
