"""The validation-report pages: Airflow's login in front, nothing outside the reports folder,
nothing in the data that can run.

Runs against Airflow's real configuration (a private AIRFLOW_HOME, the simple auth
manager, a generated JWT secret: see ``tests/conftest.py``), its real metadata database
(token revocation and DAG teams are looked up there) and tokens issued by Airflow itself.
Per-DAG permissions are Airflow's own: DAGs owned by teams (:func:`dags_owned_by_teams`)
and users in one team (:func:`team_token`), judged by the real simple auth manager.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import quote, urlencode

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings, strategies

from runway_mlops import catalog
from runway_mlops.ui import serving
from runway_mlops.ui.reports_app import MAX_ID, create_app
from runway_mlops.validation.report import index_html
from runway_mlops.validation.results import DatasetResult, Failure
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


@contextlib.contextmanager
def dags_owned_by_teams(owners: dict[str, str]) -> Iterator[None]:
    """DAGs (by id) owned by teams (by name) in Airflow's metadata database; removed after.

    How Airflow 3 gives a DAG to a team: the DAG's bundle belongs to the team. The simple
    auth manager then lets a non-admin read the DAG's runs only if they are in that team;
    DAGs of no team stay readable by every viewer. Airflow caches a DAG's team for
    ``[core] team_name_cache_ttl`` seconds: the cache is cleared on the way in and out.
    """
    from airflow.models.dag import DagModel, clear_team_name_cache
    from airflow.models.dagbundle import DagBundleModel
    from airflow.models.team import Team
    from airflow.utils.session import create_session

    bundles = {team: f"runway-tests-{team}" for team in set(owners.values())}
    with create_session() as session:
        for team, bundle_name in bundles.items():
            bundle = DagBundleModel(name=bundle_name)
            bundle.teams.append(Team(name=team))
            session.add(bundle)
        session.flush()
        for dag_id, team in owners.items():
            session.add(DagModel(dag_id=dag_id, bundle_name=bundles[team]))
    clear_team_name_cache()
    try:
        yield
    finally:
        with create_session() as session:
            for dag_id in owners:
                session.query(DagModel).filter(DagModel.dag_id == dag_id).delete()
            for team, bundle_name in bundles.items():
                bundle = session.get(DagBundleModel, bundle_name)
                if bundle is not None:
                    bundle.teams.clear()
                    session.delete(bundle)
                session.query(Team).filter(Team.name == team).delete()
        clear_team_name_cache()


def team_token(auth_manager, team: str, username: str = "alice") -> str:
    """A token Airflow issues for a viewer who is in ``team`` only."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    user = SimpleAuthManagerUser(username=username, role="viewer", teams=[team])
    return str(auth_manager.generate_jwt(user))


#: Values a hostile delivery (or record) may carry: markup, a closed attribute, a script.
HOSTILE = """<img src=x onerror="document.title='pwned'">"""
HOSTILE_ATTRIBUTE = "'><script>document.title='pwned'</script><b class='"


class _Markup(HTMLParser):
    """What a browser would build from a page: its elements, attributes and text."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)

    def handle_data(self, data) -> None:
        self.text.append(data)


def assert_inert(page: str, *shown: str) -> None:
    """No script, no event handler, no image in ``page``; each of ``shown`` in its text."""
    markup = _Markup(page)
    assert "script" not in markup.tags and "img" not in markup.tags, markup.tags
    handlers = [name for name, _ in markup.attributes if name.startswith("on")]
    assert not handlers, handlers
    text = "".join(markup.text)
    for value in shown:
        assert value in text, value


def csp(response) -> dict[str, list[str]]:
    """The response's Content-Security-Policy: directive -> its values."""
    directives = [d.split() for d in response.headers["content-security-policy"].split(";")]
    return {d[0]: d[1:] for d in directives if d}


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


# ------------------------------------------------ per-DAG permissions, resolved paths

ALPHA_DAG, BETA_DAG = "alpha_features", "beta_features"


@pytest.fixture
def two_pipelines(reports, auth_manager) -> Iterator[object]:
    """alpha's and beta's reports of DAY, each written by a DAG its own team owns; links in
    alpha's folder that point into beta's."""
    folders = {}
    for pipeline, dag_id in (("alpha", ALPHA_DAG), ("beta", BETA_DAG)):
        folder = folders[pipeline] = reports.reports_dir / "validation" / pipeline / f"ds={DAY}"
        folder.mkdir(parents=True)
        (folder / "index.html").write_text(f"<h1>The {pipeline} report</h1>")
        _record(reports, pipeline=pipeline, dataset="flights", dag_id=dag_id)
    (folders["alpha"] / "beta.html").symlink_to(folders["beta"] / "index.html")
    (folders["alpha"] / "beta_day").symlink_to(folders["beta"], target_is_directory=True)
    with dags_owned_by_teams({ALPHA_DAG: "team_alpha", BETA_DAG: "team_beta"}):
        yield reports


def test_a_reader_of_one_pipeline_sees_only_its_reports(client, two_pipelines, auth_manager):
    client.cookies.set("_token", team_token(auth_manager, "team_alpha"))
    alpha = client.get(f"/reports/files/alpha/ds={DAY}/index.html")
    assert alpha.status_code == 200 and "The alpha report" in alpha.text
    beta = client.get(f"/reports/files/beta/ds={DAY}/index.html")
    assert beta.status_code == 403 and "The beta report" not in beta.text
    run = client.get("/reports/run", params={"dag_id": BETA_DAG, "run_id": RUN_ID})
    assert run.status_code == 403
    index = client.get("/reports/").text
    assert f"href='files/alpha/ds={DAY}/index.html'" in index
    assert "files/beta/" not in index and BETA_DAG not in index
    # DAGs of no team (flights_features) stay readable by every viewer.
    assert f"href='files/flights/ds={DAY}/index.html'" in index


@pytest.mark.parametrize(
    "into_beta",
    [
        f"alpha/ds={DAY}/%2e%2e/%2e%2e/beta/ds={DAY}/index.html",
        f"alpha/ds={DAY}/..%2f..%2fbeta/ds={DAY}/index.html",
        f"alpha/ds={DAY}/%2e%2e/%2e%2e/%2e%2e/validation/beta/ds={DAY}/index.html",
        f"alpha/ds={DAY}/beta.html",
        f"alpha/ds={DAY}/beta_day/index.html",
    ],
)
def test_a_path_that_leads_into_another_pipeline_is_authorised_as_that_pipeline(
    client, two_pipelines, auth_manager, into_beta
) -> None:
    """Whose report a file is comes from where its path leads (``..`` and links resolved),
    not from how the path starts."""
    client.cookies.set("_token", team_token(auth_manager, "team_alpha"))
    refused = client.get(f"/reports/files/{into_beta}")
    assert refused.status_code == 403
    assert "The beta report" not in refused.text
    # The same path is beta's report for a reader of beta: nothing else stood in the way.
    client.cookies.set("_token", team_token(auth_manager, "team_beta", username="bob"))
    served = client.get(f"/reports/files/{into_beta}")
    assert served.status_code == 200 and "The beta report" in served.text


# ------------------------------------------------ what is served: inert, typed


def test_runway_pages_carry_a_policy_that_runs_no_script(client, token) -> None:
    responses = {
        "anonymous": client.get("/reports/"),
        "not found": client.get("/reports/files/flights/ds=2013-01-05/nope.html"),
    }
    client.cookies.set("_token", token)
    responses |= {
        "index": client.get("/reports/"),
        "summary": client.get(REPORT),
        "no report": client.get("/reports/run", params={"dag_id": "x", "run_id": "y"}),
        "decisions": client.get("/decisions/"),
        "monitoring": client.get("/monitoring/"),
    }
    for name, response in responses.items():
        policy = csp(response)
        # Sandboxed without allow-scripts: no script, handler or javascript: URL runs.
        assert policy["sandbox"] == ["allow-same-origin"], name
        assert policy["default-src"] == ["'none'"] and "script-src" not in policy, name
        assert policy["frame-ancestors"] == ["'self'"] and policy["form-action"] == ["'none'"]
        assert response.headers["x-content-type-options"] == "nosniff", name


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("gx/page.html", "text/html; charset=utf-8"),
        ("results/flights.json", "application/json"),
        ("gx/static/logo.png", "image/png"),
        ("gx/static/styles.css", "text/css; charset=utf-8"),
        ("gx/static/logo.svg", serving.DOWNLOAD_TYPE),
        ("gx/static/app.js", serving.DOWNLOAD_TYPE),
        ("gx/static/data.xml", serving.DOWNLOAD_TYPE),
        ("gx/page.HTM", serving.DOWNLOAD_TYPE),
    ],
)
def test_report_files_are_data_with_an_opaque_origin_and_a_safe_type(
    client, token, reports, name, content_type
) -> None:
    """GX's Data Docs and every other file of a report: sandboxed without
    ``allow-same-origin`` (an opaque origin: even a script could not reach Airflow's
    cookies or API), loading nothing; types from an allowlist, anything else a download."""
    folder = reports.reports_dir / "validation" / "flights" / f"ds={DAY}"
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(f"<svg onload=\"document.title='pwned'\">{HOSTILE}</svg>")
    client.cookies.set("_token", token)
    response = client.get(f"/reports/files/flights/ds={DAY}/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    policy = csp(response)
    assert policy["sandbox"] == [], policy  # no allow-same-origin, no allow-scripts
    assert policy["default-src"] == ["'none'"] and policy["img-src"] == ["data:"]
    assert response.headers["x-content-type-options"] == "nosniff"
    downloaded = response.headers.get("content-disposition", "")
    assert downloaded.startswith("attachment") == (content_type == serving.DOWNLOAD_TYPE)


def test_the_days_summary_shows_hostile_values_as_text() -> None:
    """Every value of the summary page is escaped: names, messages, observed values."""
    failure = Failure(
        reason=HOSTILE,
        message=f"dest not in airports.faa in 3 row(s) (e.g. {HOSTILE})",
        expectation=HOSTILE,
        severity=HOSTILE_ATTRIBUTE,
        column=HOSTILE,
        observed=[HOSTILE, None],
        threshold=HOSTILE_ATTRIBUTE,
        rows=3,
    )
    result = DatasetResult(
        dataset=HOSTILE_ATTRIBUTE,
        outcome="warned",
        rows=10,
        rows_validated=7,
        rows_quarantined=3,
        failures=[failure],
        quarantine_reasons={HOSTILE: 3},
        notes=[HOSTILE],
        pages={HOSTILE_ATTRIBUTE: "gx/validations/page.html"},
    )
    page = index_html(HOSTILE_ATTRIBUTE, DAY, {HOSTILE_ATTRIBUTE: result})
    assert_inert(page, HOSTILE, HOSTILE_ATTRIBUTE)


def test_the_index_and_refusals_show_hostile_values_as_text(client, token, reports) -> None:
    folder = (
        reports.reports_dir / "validation" / HOSTILE_ATTRIBUTE.replace("/", "") / "ds=2013-02-01"
    )
    folder.mkdir(parents=True)
    (folder / "index.html").write_text("<h1>hostile</h1>")
    catalog.record_validation(
        reports.database_url,
        catalog.ValidationRecord(
            validation_id="hostile",
            pipeline=HOSTILE,
            dataset=HOSTILE_ATTRIBUTE,
            ds=dt.date(2013, 2, 2),
            outcome=HOSTILE_ATTRIBUTE,
            rows=1,
            rows_quarantined=0,
            failures=[],
            report_path=str(folder / "index.html"),
            dag_id=HOSTILE_ATTRIBUTE,
            run_id=HOSTILE,
        ),
        [],
    )
    client.cookies.set("_token", token)
    index = client.get("/reports/")
    assert index.status_code == 200
    assert_inert(index.text, HOSTILE, HOSTILE_ATTRIBUTE)
    run = client.get("/reports/run", params={"dag_id": HOSTILE, "run_id": HOSTILE_ATTRIBUTE})
    assert run.status_code == 404
    assert_inert(run.text, HOSTILE, HOSTILE_ATTRIBUTE)
    bad = client.get("/reports/run", params={"dag_id": HOSTILE, "run_id": "r" * (MAX_ID + 1)})
    assert bad.status_code == 400
    assert_inert(bad.text)


# ------------------------------------------------ bad paths and arguments: 4xx, never 5xx

LONG = "a" * 256


@pytest.mark.parametrize(
    ("path", "code", "says"),
    [
        (f"/reports/files/{LONG}/ds={DAY}/index.html", 404, "longer than 255 bytes"),
        (f"/reports/files/flights/ds={DAY}/{LONG}.html", 404, "longer than 255 bytes"),
        (f"/reports/files/flights/ds={DAY}/{'é' * 128}", 404, "longer than 255 bytes"),
        (f"/reports/files/flights/ds={DAY}/{'a/' * 600}x", 404, "longer than 1024 characters"),
        (f"/reports/files/flights/ds={DAY}/index.html%00", 404, "NUL byte"),
        (f"/reports/files/flights/ds={DAY}/%00/index.html", 404, "NUL byte"),
        ("/reports/files/flights/ds=2013-13-45/index.html", 404, "with a valid date"),
        ("/reports/files/flights/ds=2013-02-30/index.html", 404, "with a valid date"),
        ("/reports/files/flights%2Fds=2013-13-45%2Findex.html", 404, "with a valid date"),
        (f"/reports/files/flights%2Fds={DAY}%2F{LONG}", 404, "longer than 255 bytes"),
        (f"/reports/files/flights/ds={DAY}/%ff%fe%fd.html", 404, "No such report file"),
        (f"/reports/files/flights/ds={DAY}/{'%2e%2e/' * 40}etc/passwd", 404, "No such report"),
        (f"/reports/run?dag_id={'d' * (MAX_ID + 1)}&run_id=r", 400, "dag_id"),
        (f"/reports/run?dag_id=d&run_id={'r' * 10_000}", 400, "at most 250 characters"),
        (f"/reports/run?dag_id=d&run_id=r&task_id={'t' * 300}", 400, "task_id"),
        ("/reports/run?dag_id=d", 400, "run_id"),
        ("/reports/run?dag_id=&run_id=r", 400, "dag_id"),
        (f"/decisions/run?dag_id={'d' * (MAX_ID + 1)}&run_id=r", 400, "dag_id"),
        ("/decisions/run?run_id=r", 400, "dag_id"),
        (f"/decisions/{'d' * 300}", 404, "No such gate decision"),
        (f"/monitoring/{LONG}", 404, "No such monitoring report"),
        (f"/monitoring/{'p' * 5000}/", 404, "No such monitoring report"),
        (f"/monitoring/files/{LONG}/index.html", 404, "longer than 255 bytes"),
        (f"/monitoring/files/flights/{LONG}", 404, "longer than 255 bytes"),
        ("/monitoring/files/flights/index.html%00", 404, "NUL byte"),
    ],
)
def test_bad_paths_and_arguments_get_a_small_4xx_page(client, token, path, code, says) -> None:
    client.cookies.set("_token", token)
    response = client.get(path, follow_redirects=False)
    assert response.status_code == code, response.text[:300]
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>" in response.text and says in response.text
    assert len(response.content) < 4_000  # a small page, not an echo of the request
    _assert_no_report(response)


_PARTS = strategies.sampled_from(
    [
        "..",
        ".",
        "",
        "flights",
        f"ds={DAY}",
        "ds=2013-13-45",
        "index.html",
        "gx",
        "escape.html",
        "escape_dir",
        "secret.txt",
        "%2e%2e",
        "%2f",
        "%00",
        "%ff",
        "\\",
        "~",
        LONG,
        "é" * 130,
    ]
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    parts=strategies.lists(
        strategies.one_of(_PARTS, _PARTS, strategies.text(max_size=20)), min_size=1, max_size=6
    )
)
# What broke before (a 500 each): names longer than the file system takes, NUL bytes.
@example(parts=[LONG])
@example(parts=[LONG, "index.html"])
@example(parts=["flights", f"ds={DAY}", "é" * 130])
@example(parts=["flights", "%00"])
def test_no_path_makes_a_route_fail(client, token, parts) -> None:
    """Whatever the path, every route answers with a page (2xx, 3xx or 4xx), never 5xx."""
    client.cookies.set("_token", token)
    path = quote("/".join(parts), safe="/%")
    for prefix in ("/reports/files/", "/monitoring/files/", "/monitoring/", "/decisions/"):
        response = client.get(prefix + path, follow_redirects=False)
        assert response.status_code < 500, (prefix + path, response.status_code)


def test_the_longest_id_a_query_may_carry_is_airflows() -> None:
    from airflow.models.base import ID_LEN

    assert MAX_ID == ID_LEN
