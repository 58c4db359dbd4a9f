"""The model-gate decision pages: what the gate decided, behind Airflow's login.

Decisions and model events are written with the catalog's own functions into the
platform database of a temporary home; the pages are read with tokens issued by Airflow
itself (a private AIRFLOW_HOME with the simple auth manager: see ``tests/conftest.py``).
"""

from __future__ import annotations

import datetime as dt
import itertools
from html.parser import HTMLParser
from urllib.parse import quote, urlencode

import pytest
from fastapi.testclient import TestClient

from runway_mlops import catalog
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

DAG_ID = "flights_training"
RUN_ID = "scheduled__2013-01-08T00:00:00+00:00"
#: A decision of that DAG run that passed its gates and was registered as version 3.
PASSED_ID = "0f3c9a7e5b2d4c6e8a1b3d5f7a9c1e3b"
#: A later decision of the same run (a retry of its training): the run's tab opens this one.
RETRY_ID = "7d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a"
#: A decision written outside Airflow (``runway run train``): no DAG, rejected, blocking.
CLI_ID = "c0ffee00c0ffee00c0ffee00c0ffee00"
MODEL = "flights_delay"

CHECKS = [
    {
        "name": "roc_auc_min",
        "value": 0.73124,
        "threshold": 0.7,
        "verdict": "pass",
        "detail": "ROC AUC 0.7312 at least 0.7",
    },
    {
        "name": "no_regression",
        "value": -0.0123,
        "threshold": -0.01,
        "verdict": "fail",
        "detail": "ROC AUC fell 0.0123 below champion v2 <b>(limit 0.01)</b>",
    },
    {
        "name": "calibration",
        "value": None,
        "threshold": 0.05,
        "verdict": "skip",
        "detail": "no positives in the test days",
    },
]
#: What the decisions that passed checked: no check failed.
PASSING_CHECKS = [CHECKS[0], CHECKS[2]]
INPUTS = {
    "window": {"start": "2013-01-01", "end": "2013-01-07"},
    "rows": {"train": 5021, "test": 1187},
    "champion_version": "2",
    "params": {"num_leaves": 31, "learning_rate": 0.05},
}


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


def _decision(decision_id: str, **changes) -> catalog.GateDecisionRecord:
    fields = {
        "decision_id": decision_id,
        "pipeline": "flights",
        "model_name": MODEL,
        "model_version": "3",
        "mlflow_run_id": decision_id,
        "mode": "enforce",
        "decision": "passed",
        "blocking": False,
        "checks": PASSING_CHECKS,
        "inputs": INPUTS,
        "dag_id": DAG_ID,
        "run_id": RUN_ID,
    }
    return catalog.GateDecisionRecord(**(fields | changes))


def _event(event: str, version: str, actor: str, reason: str, **changes) -> catalog.ModelEvent:
    fields = {
        "pipeline": "flights",
        "model_name": MODEL,
        "model_version": version,
        "event": event,
        "actor": actor,
        "reason": reason,
        "details": {"decision_id": PASSED_ID},
        "dag_id": DAG_ID,
        "run_id": RUN_ID,
    }
    return catalog.ModelEvent(**(fields | changes))


@pytest.fixture
def decisions(settings, monkeypatch):
    """Three decisions and three model events, recorded one minute apart in this order."""
    minutes = itertools.count()
    start = dt.datetime(2013, 1, 8, 6, tzinfo=dt.UTC)
    monkeypatch.setattr(catalog, "_now", lambda: start + dt.timedelta(minutes=next(minutes)))
    url = settings.database_url
    catalog.record_gate_decision(url, _decision(PASSED_ID))
    catalog.record_gate_decision(url, _decision(RETRY_ID, model_version=None))
    catalog.record_gate_decision(
        url,
        _decision(
            CLI_ID,
            model_name="flights_delay_cli",
            model_version=None,
            decision="rejected",
            blocking=True,
            checks=CHECKS,
            dag_id=None,
            run_id=None,
        ),
    )
    catalog.record_model_event(url, _event("registered", "3", f"dag:{DAG_ID}", "gates passed"))
    catalog.record_model_event(url, _event("challenger", "3", f"dag:{DAG_ID}", "latest to pass"))
    catalog.record_model_event(
        url,
        _event(
            "promoted",
            "3",
            "ada",
            "approved by ada; previous champion v2",
            details={},
            dag_id=None,
            run_id=None,
        ),
    )
    return settings


@pytest.fixture
def client(decisions, auth_manager) -> TestClient:
    return TestClient(create_app(lambda: decisions))


class _Tables(HTMLParser):
    """The text of every table cell of a page: ``tables[i][row][cell]``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _rows(text: str, table: int = 0) -> list[dict[str, str]]:
    """The rows of one table of a page, as {header: cell text}."""
    header, *rows = _Tables(text).tables[table]
    return [dict(zip(header, row, strict=True)) for row in rows]


def _assert_no_decision(response) -> None:
    """Nothing recorded shows (the id asked for may: it is in the login link's ``next``)."""
    for recorded in (MODEL, "roc_auc_min", "num_leaves", "gates passed", "approved by ada"):
        assert recorded not in response.text, recorded


# ------------------------------------------------------------------ authentication


@pytest.mark.parametrize(
    "path",
    [
        "/decisions/",
        f"/decisions/{PASSED_ID}",
        f"/decisions/run?dag_id={DAG_ID}&run_id={quote(RUN_ID)}",
    ],
)
def test_anonymous_requests_are_refused_with_a_link_to_the_login(client, path) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 401
    _assert_no_decision(response)
    assert "/auth/login?next=%2Fdecisions%2F" in response.text


def test_an_expired_token_is_refused(client, auth_manager) -> None:
    expired = auth_manager.generate_jwt(_user(), expiration_time_in_seconds=-3600)
    response = client.get(f"/decisions/{PASSED_ID}", cookies={"_token": expired})
    assert response.status_code in (401, 403)
    _assert_no_decision(response)


# ------------------------------------------------------------------ the list


def test_the_list_shows_every_decision_newest_first(client, token) -> None:
    client.cookies.set("_token", token)
    response = client.get("/decisions/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    rows = _rows(response.text)
    assert [row["model"] for row in rows] == ["flights_delay_cli", MODEL, MODEL]
    cli, retry, passed = rows
    assert passed == {
        "pipeline": "flights",
        "model": MODEL,
        "version": "3",
        "decision": "passed",
        "mode": "enforce",
        "failed checks": "0",
        "DAG run": f"{DAG_ID} / {RUN_ID}",
        "": "details",
    }
    assert retry["version"] == "not registered"
    assert cli["decision"] == "rejected" and cli["failed checks"] == "1"
    assert cli["DAG run"] == "outside Airflow"
    # Styled, and each row links to its decision's page (relative to /decisions/).
    assert "<span class='blocked'>rejected</span>" in response.text
    assert "<span class='passed'>passed</span>" in response.text
    for decision_id in (PASSED_ID, RETRY_ID, CLI_ID):
        assert f"<a href='{decision_id}'>details</a>" in response.text


def test_the_list_shows_model_events_newest_first(client, token) -> None:
    client.cookies.set("_token", token)
    events = _rows(client.get("/decisions/").text, table=1)
    assert [(e["event"], e["version"], e["actor"]) for e in events] == [
        ("promoted", "3", "ada"),
        ("challenger", "3", f"dag:{DAG_ID}"),
        ("registered", "3", f"dag:{DAG_ID}"),
    ]
    assert events[0]["reason"] == "approved by ada; previous champion v2"
    assert events[0]["DAG run"] == "outside Airflow"
    assert events[2]["DAG run"] == f"{DAG_ID} / {RUN_ID}"


def test_an_empty_catalog_says_so(settings, auth_manager, token) -> None:
    client = TestClient(create_app(lambda: settings))
    client.cookies.set("_token", token)
    response = client.get("/decisions/")
    assert response.status_code == 200
    assert "No gate decision yet" in response.text and "No model event yet" in response.text


# ------------------------------------------------------------------ one decision


def test_a_decision_page_shows_every_check(client, token) -> None:
    client.cookies.set("_token", token)
    response = client.get(f"/decisions/{CLI_ID}")
    assert response.status_code == 200
    checks = _rows(response.text)
    assert [(c["check"], c["value"], c["threshold"], c["verdict"]) for c in checks] == [
        ("roc_auc_min", "0.73124", "0.7", "pass"),
        ("no_regression", "-0.0123", "-0.01", "fail"),
        ("calibration", "none", "0.05", "skip"),
    ]
    assert checks[0]["detail"] == "ROC AUC 0.7312 at least 0.7"
    assert "<span class='blocked'>fail</span>" in response.text
    # Recorded text is shown as text, never as markup.
    assert checks[1]["detail"].endswith("<b>(limit 0.01)</b>")
    assert "&lt;b&gt;(limit 0.01)&lt;/b&gt;" in response.text
    assert "<b>(limit" not in response.text


def test_a_decision_page_shows_the_decision_and_its_inputs(client, token) -> None:
    client.cookies.set("_token", token)
    text = client.get(f"/decisions/{PASSED_ID}").text
    assert f"<title>Gate decision {PASSED_ID}</title>" in text
    for term, value in [
        ("decision", "<span class='passed'>passed</span>"),
        ("blocked", "no"),
        ("mode", "enforce"),
        ("failed checks", "0 of 2"),
        ("model", MODEL),
        ("version", "3"),
        ("MLflow run", f"<code>{PASSED_ID}</code>"),
        ("DAG run", f"{DAG_ID} / {RUN_ID}"),
        # The inputs, nested objects as nested definition lists.
        ("champion_version", "2"),
        ("start", "2013-01-01"),
        ("end", "2013-01-07"),
        ("test", "1187"),
        ("num_leaves", "31"),
        ("learning_rate", "0.05"),
    ]:
        assert f"<dt>{term}</dt><dd>{value}</dd>" in text, term
    # The inputs the decision was made on come first, in a fixed order.
    assert text.index("<dt>window</dt>") < text.index("<dt>rows</dt>") < text.index("<dt>params")
    # The events that followed this decision (the promotion names no decision).
    events = _rows(text, table=1)
    assert [e["event"] for e in events] == ["challenger", "registered"]
    assert [e["reason"] for e in events] == ["latest to pass", "gates passed"]


def test_a_blocking_rejection_says_it_blocked(client, token) -> None:
    client.cookies.set("_token", token)
    text = client.get(f"/decisions/{CLI_ID}").text
    assert "<dt>decision</dt><dd><span class='blocked'>rejected</span></dd>" in text
    assert "<dt>blocked</dt><dd>yes: the model was not registered</dd>" in text
    assert "<dt>version</dt><dd><span class='muted'>not registered</span></dd>" in text
    assert "<dt>DAG run</dt><dd><span class='muted'>outside Airflow</span></dd>" in text


def test_a_dry_run_rejection_says_it_did_not_block(client, decisions, token) -> None:
    dry_run = "d7e000000000000000000000000000aa"
    catalog.record_gate_decision(
        decisions.database_url,
        _decision(dry_run, mode="dry_run", decision="rejected", checks=CHECKS),
    )
    client.cookies.set("_token", token)
    text = client.get(f"/decisions/{dry_run}").text
    assert "<dt>mode</dt><dd>dry_run</dd>" in text
    assert "<dt>blocked</dt><dd>no: dry run, the decision is recorded and never blocks</dd>" in text
    newest = _rows(client.get("/decisions/").text)[0]
    assert (newest["decision"], newest["mode"], newest["version"]) == ("rejected", "dry_run", "3")


def test_an_unknown_decision_is_a_404_page(client, token) -> None:
    client.cookies.set("_token", token)
    response = client.get("/decisions/ffffffffffffffffffffffffffffffff")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "No gate decision ffffffffffffffffffffffffffffffff was recorded" in response.text
    assert "<a href='/decisions/'>All model gate decisions</a>" in response.text
    _assert_no_decision(response)


@pytest.mark.parametrize(
    "decision_id",
    ["..", ".hidden", "-x", "a b", "x" * 65, "a;b", "a\x00b", "%2e%2e", "..%2f..%2fetc", "a/b"],
)
def test_ids_that_are_not_decision_ids_are_404s(client, decisions, token, decision_id) -> None:
    """Refused by their shape, even when the catalog holds a record with that id."""
    catalog.record_gate_decision(decisions.database_url, _decision(decision_id))
    client.cookies.set("_token", token)
    response = client.get(f"/decisions/{quote(decision_id, safe='%/')}", follow_redirects=False)
    assert response.status_code == 404, response.text
    assert "roc_auc_min" not in response.text and MODEL not in response.text


# ------------------------------------------------------------------ a DAG run's decision


def test_the_dag_run_tab_opens_that_runs_latest_decision(client, token) -> None:
    client.cookies.set("_token", token)
    response = client.get(
        "/decisions/run", params={"dag_id": DAG_ID, "run_id": RUN_ID}, follow_redirects=False
    )
    assert response.status_code == 307
    assert response.headers["location"] == RETRY_ID
    followed = client.get("/decisions/run", params={"dag_id": DAG_ID, "run_id": RUN_ID})
    assert followed.status_code == 200
    assert str(followed.url).endswith(f"/decisions/{RETRY_ID}")
    assert f"<title>Gate decision {RETRY_ID}</title>" in followed.text


@pytest.mark.parametrize(
    ("dag_id", "run_id"),
    [(DAG_ID, "manual__2013-02-01T00:00:00+00:00"), ("flights_features", RUN_ID)],
)
def test_a_run_without_a_decision_gets_a_clear_404_page(client, token, dag_id, run_id) -> None:
    client.cookies.set("_token", token)
    response = client.get(
        "/decisions/run", params={"dag_id": dag_id, "run_id": run_id}, follow_redirects=False
    )
    assert response.status_code == 404
    assert "No gate decision was recorded for run" in response.text
    assert f"<code>{run_id}</code>" in response.text and f"<code>{dag_id}</code>" in response.text
    _assert_no_decision(response)


def test_the_run_page_escapes_what_it_was_given(client, token) -> None:
    client.cookies.set("_token", token)
    response = client.get("/decisions/run", params={"dag_id": DAG_ID, "run_id": "<i>x</i>"})
    assert response.status_code == 404
    assert "&lt;i&gt;x&lt;/i&gt;" in response.text and "<i>x</i>" not in response.text


# ------------------------------------------------------------------- authorisation


def test_a_user_without_a_role_is_authenticated_but_not_allowed(client, auth_manager) -> None:
    client.cookies.set("_token", auth_manager.generate_jwt(_user("nobody", role=None)))
    for path in (f"/decisions/{PASSED_ID}", f"/decisions/{CLI_ID}"):
        response = client.get(path)
        assert response.status_code == 403, path
        _assert_no_decision(response)
    run = client.get("/decisions/run", params={"dag_id": DAG_ID, "run_id": RUN_ID})
    assert run.status_code == 403
    index = client.get("/decisions/")
    assert index.status_code == 200
    assert MODEL not in index.text and "No gate decision yet" in index.text


#: A decision of another pipeline's training DAG, owned by another team.
TAXIS_DAG, TAXIS_ID = "taxis_training", "7a8e5c000000000000000000000000aa"


@pytest.mark.parametrize("team", ["team_flights", "team_taxis"])
def test_decisions_follow_the_dag_permissions_of_the_auth_manager(
    client, decisions, auth_manager, team
) -> None:
    """Two training DAGs owned by two teams (Airflow's own per-DAG permissions, judged by
    the real simple auth manager): a user of one team sees that DAG's records only, and
    records written outside Airflow (no DAG) as every reader of DAG runs does."""
    catalog.record_gate_decision(
        decisions.database_url,
        _decision(TAXIS_ID, pipeline="taxis", model_name="taxis_fare", dag_id=TAXIS_DAG),
    )
    mine, theirs = (PASSED_ID, TAXIS_ID) if team == "team_flights" else (TAXIS_ID, PASSED_ID)
    with dags_owned_by_teams({DAG_ID: "team_flights", TAXIS_DAG: "team_taxis"}):
        client.cookies.set("_token", team_token(auth_manager, team))
        listed = {row["model"] for row in _rows(client.get("/decisions/").text)}
        events = [e["event"] for e in _rows(client.get("/decisions/").text, table=1)]
        refused = client.get(f"/decisions/{theirs}")
        shown = client.get(f"/decisions/{mine}")
        cli = client.get(f"/decisions/{CLI_ID}")
        run = client.get("/decisions/run", params={"dag_id": DAG_ID, "run_id": RUN_ID})
    assert refused.status_code == 403
    _assert_no_decision(refused)
    assert shown.status_code == 200 and "roc_auc_min" in shown.text
    assert cli.status_code == 200  # outside Airflow: no DAG, no team
    if team == "team_flights":
        assert listed == {MODEL, "flights_delay_cli"}
        assert events == ["promoted", "challenger", "registered"]
        assert run.status_code == 200 and f"Gate decision {RETRY_ID}" in run.text
    else:
        assert listed == {"taxis_fare", "flights_delay_cli"}
        assert events == ["promoted"]  # the flights DAG's events are hidden
        assert run.status_code == 403


# ------------------------------------------------------------------ inert pages


def test_hostile_values_are_shown_as_text(client, decisions, token) -> None:
    """Checks, inputs, model names and events recorded by a run are escaped on every page,
    and the pages run no script."""
    hostile_id = "40511e000000000000000000000000aa"
    catalog.record_gate_decision(
        decisions.database_url,
        _decision(
            hostile_id,
            pipeline=HOSTILE,
            model_name=HOSTILE_ATTRIBUTE,
            model_version=HOSTILE,
            mode=HOSTILE_ATTRIBUTE,
            decision=HOSTILE_ATTRIBUTE,
            checks=[
                {
                    "name": HOSTILE,
                    "value": HOSTILE_ATTRIBUTE,
                    "threshold": [HOSTILE],
                    "verdict": HOSTILE_ATTRIBUTE,
                    "detail": HOSTILE,
                }
            ],
            inputs={HOSTILE_ATTRIBUTE: {HOSTILE: [HOSTILE, {"deep": HOSTILE_ATTRIBUTE}]}},
            run_id=HOSTILE,
        ),
    )
    catalog.record_model_event(
        decisions.database_url,
        _event(
            HOSTILE_ATTRIBUTE,
            HOSTILE,
            HOSTILE,
            HOSTILE_ATTRIBUTE,
            details={"decision_id": hostile_id},
            run_id=HOSTILE,
        ),
    )
    client.cookies.set("_token", token)
    for path in ("/decisions/", f"/decisions/{hostile_id}"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_inert(response.text, HOSTILE, HOSTILE_ATTRIBUTE)
        assert csp(response)["sandbox"] == ["allow-same-origin"]
        assert "script-src" not in csp(response)


# --------------------------------------------------- inside Airflow's API server


@pytest.fixture
def airflow_api(decisions, auth_manager, monkeypatch):
    """Airflow's real API server app (core API, auth, middlewares) with the plugin loaded."""
    from airflow import plugins_manager
    from airflow.api_fastapi.app import create_app as create_airflow_app

    monkeypatch.setenv("RUNWAY_CONFIG_DIR", str(CONFIG_DIR))
    monkeypatch.setenv("RUNWAY_HOME", str(decisions.home))
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


def test_mounted_in_airflow_the_decisions_are_behind_its_login(airflow_api, auth_manager) -> None:
    anonymous = airflow_api.get("/runway/decisions/")
    assert anonymous.status_code == 401
    assert "/auth/login?next=%2Frunway%2Fdecisions%2F" in anonymous.text

    login = airflow_api.post(
        "/auth/token",
        json={"username": "viewer", "password": auth_manager.get_passwords()["viewer"]},
    )
    assert login.status_code == 201
    airflow_api.cookies.set("_token", login.json()["access_token"])
    index = airflow_api.get("/runway/decisions/")
    assert index.status_code == 200 and MODEL in index.text
    # As the UI builds the DAG run tab's URL: encodeURIComponent() on each id.
    tab = airflow_api.get(
        "/runway/decisions/run?" + urlencode({"dag_id": DAG_ID, "run_id": RUN_ID}, quote_via=quote)
    )
    assert tab.status_code == 200 and "roc_auc_min" in tab.text
    assert str(tab.url).endswith(f"/runway/decisions/{RETRY_ID}")
    missing = airflow_api.get("/runway/decisions/ffffffffffffffffffffffffffffffff")
    assert missing.status_code == 404
    assert "<a href='/runway/decisions/'>All model gate decisions</a>" in missing.text

    # The UI reads the plugin's views from the REST API: the DAG run tab is accepted.
    plugins = airflow_api.get("/api/v2/plugins").json()["plugins"]
    views = next(p for p in plugins if p["name"] == "runway_reports")["external_views"]
    by_route = {view["url_route"]: view for view in views}
    assert by_route["runway-gate-decisions"]["destination"] == "nav"
    assert by_route["runway-gate-decision"]["destination"] == "dag_run"
