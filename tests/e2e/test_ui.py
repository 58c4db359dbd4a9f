"""End to end in a real browser against the real Airflow UI of the ``airflow_stack`` fixture.

What a person does on the platform: log in, find the feature DAG, backfill two days from
the UI's *Trigger → Backfill* dialog and watch the runs succeed, then open the day's
validation report from *Browse → Validation reports* and from the ``validate_raw`` task
instance. Anonymous visitors (and plain HTTP clients) never see a report.

Selectors are the UI's roles and labels (what a person reads) and, where the UI has none,
its ``data-testid`` attributes; no CSS classes. The tests run in file order: the first
logs the shared tab in, the backfill feeds the later ones.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import FrameLocator, Page, expect

from runway_mlops.programs.demo import follow_backfill, local_midnight

DAG_ID = "flights_features"
#: The two days backfilled from the dialog; the stack's file source holds 2013-01-01..10,
#: the integration tier uses 01-01..01-04.
FIRST, LAST = dt.date(2013, 1, 5), dt.date(2013, 1, 6)
DAYS = (FIRST, LAST)
#: The timezone the UI shows and reads dates in (Airflow's default UI timezone).
UI_TIMEZONE = dt.UTC
#: From the click on *Run Backfill* to both runs finished (Spark included): ~100 s.
#: A safety net, not a speed claim (bench/ measures speed): on a busy 2-core machine the
#: two days (ingest, validate, a Spark job each) have taken over 240 s.
BACKFILL_TIMEOUT_S = 900
#: The reports app, as plugins/runway_reports.py mounts it.
REPORTS = "/runway/reports/"
#: What a report page says and a refusal must never say.
REPORT_TITLE = re.compile(r"Validation of flights on \d{4}-\d{2}-\d{2}")


def log_in(page: Page, username: str, password: str) -> None:
    """Fill in Airflow's login page (the simple auth manager's) and wait to leave it."""
    expect(page.get_by_role("heading", name="Sign into Airflow")).to_be_visible()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/auth/login"))


@pytest.fixture(scope="module")
def ui(page: Page, airflow_stack) -> Page:
    """The shared tab, logged in (by the first test, or here when it runs alone)."""
    if not any(cookie["name"] == "_token" for cookie in page.context.cookies()):
        page.goto(airflow_stack.url + "/")
        log_in(page, airflow_stack.username, airflow_stack.password)
    return page


@pytest.fixture(scope="module")
def api(airflow_stack) -> Iterator[Any]:
    with airflow_stack.api() as client:
        yield client


def _utc(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class UIBackfill:
    """What the dialog created: the backfill record and the DAG runs that were new."""

    backfill: dict[str, Any]
    new_runs: dict[dt.datetime, dict[str, Any]]  # by logical date (UTC)


@pytest.fixture(scope="module")
def ui_backfill(ui: Page, airflow_stack, api, flights_pipeline) -> UIBackfill:
    """Backfill FIRST..LAST from the DAG page's *Trigger → Backfill* dialog."""
    before = {run["dag_run_id"] for run in api.dag_runs(DAG_ID)}
    ui.goto(f"{airflow_stack.url}/dags/{DAG_ID}")
    ui.get_by_role("button", name="Trigger Dag").click()
    # The dialog has no accessible name; its heading ends with the DAG id in both modes.
    dialog = ui.get_by_role("dialog").filter(
        has=ui.get_by_role("heading", name=re.compile(rf"{DAG_ID}$"))
    )
    # Radio cards: the input is visually hidden, a person clicks the card's label.
    dialog.get_by_text("Backfill", exact=True).click()
    expect(dialog.get_by_role("radio", name="Backfill")).to_be_checked()
    expect(dialog.get_by_role("heading", name=f"Run Backfill - {DAG_ID}")).to_be_visible()

    # From and To are data-interval *starts*, both included, in the UI's timezone. A daily
    # interval starts at local midnight in New York: 05:00 UTC in January. Typing dates
    # alone (00:00 UTC) would select the 5th only.
    for label, day in (("From", FIRST), ("To", LAST)):
        start = local_midnight(day, flights_pipeline).astimezone(UI_TIMEZONE)
        field = dialog.get_by_role("group").filter(has=ui.get_by_text(label, exact=True))
        field.get_by_test_id("datetime-input").click()
        picker = ui.get_by_role("dialog").filter(has=ui.get_by_placeholder("YYYY/MM/DD"))
        expect(picker.get_by_text("UTC", exact=True)).to_be_visible()
        picker.get_by_placeholder("YYYY/MM/DD").fill(f"{start:%Y/%m/%d}")
        picker.get_by_placeholder("HH:mm").fill(f"{start:%H:%M}")
        ui.keyboard.press("Escape")  # closes the picker only
        expect(picker).to_be_hidden()
        expect(field).to_contain_text(f"{start:%b %d, %Y %H:%M}")

    # Missing runs only: the two days are new to this Airflow, so the dialog must create
    # exactly two runs (a leftover run of those days would show in the dry run below).
    behaviour = dialog.get_by_role("radiogroup", name="Reprocess Behavior")
    behaviour.get_by_text("Missing Runs", exact=True).click()
    expect(behaviour.get_by_role("radio", name="Missing Runs")).to_be_checked()
    # Both days at once (the DAG allows two active runs).
    dialog.locator("input[name=max_active_runs]").fill("2")
    # The dialog's dry run, before anything is created.
    expect(dialog.get_by_text("2 runs will be triggered.")).to_be_visible()

    run_backfill = dialog.get_by_role("button", name="Run Backfill")
    expect(run_backfill).to_be_enabled()
    run_backfill.click()
    expect(dialog).to_be_hidden()
    expect(ui.get_by_role("status").filter(has_text="Backfill generated")).to_be_visible()

    # Creating a backfill creates its runs at once; give the API a moment to show them.
    deadline = time.monotonic() + 30
    while True:
        new_runs = {
            _utc(run["logical_date"]): run
            for run in api.dag_runs(DAG_ID)
            if run["dag_run_id"] not in before
        }
        if len(new_runs) >= len(DAYS) or time.monotonic() > deadline:
            break
        time.sleep(1)
    backfills = api.get("/backfills", dag_id=DAG_ID)["backfills"]
    return UIBackfill(backfill=max(backfills, key=lambda b: b["id"]), new_runs=new_runs)


@pytest.fixture(scope="module")
def finished_runs(ui_backfill: UIBackfill, airflow_stack, api, flights_pipeline):
    """The backfilled runs by day, once Airflow has finished them (success or not)."""
    wanted = {local_midnight(day, flights_pipeline).astimezone(dt.UTC) for day in DAYS}
    if set(ui_backfill.new_runs) != wanted:
        pytest.fail(f"the dialog created runs for {sorted(ui_backfill.new_runs)}, not {wanted}")
    return follow_backfill(
        api,
        DAG_ID,
        list(DAYS),
        flights_pipeline,
        backfill_id=ui_backfill.backfill["id"],
        procs=airflow_stack.procs,
        timeout=BACKFILL_TIMEOUT_S,
    )


def test_anonymous_visit_lands_on_login_and_login_shows_the_dags(page: Page, airflow_stack):
    page.goto(airflow_stack.url + "/")
    expect(page).to_have_url(re.compile(r"/auth/login"))
    log_in(page, airflow_stack.username, airflow_stack.password)

    page.get_by_role("link", name="Dags", exact=True).first.click()
    expect(page).to_have_url(re.compile(r"/dags$"))
    expect(page.get_by_role("link", name=DAG_ID, exact=True)).to_be_visible()


def test_backfill_dialog_creates_one_run_per_chosen_day(ui_backfill: UIBackfill, flights_pipeline):
    local_midnights = [local_midnight(day, flights_pipeline) for day in DAYS]
    assert [t.astimezone(dt.UTC).isoformat() for t in local_midnights] == [
        "2013-01-05T05:00:00+00:00",
        "2013-01-06T05:00:00+00:00",
    ]
    backfill = ui_backfill.backfill
    assert _utc(backfill["from_date"]) == local_midnights[0]
    assert _utc(backfill["to_date"]) == local_midnights[-1]
    assert backfill["reprocess_behavior"] == "none"  # "Missing Runs" in the dialog
    assert backfill["max_active_runs"] == 2
    # Exactly the two days, nothing before or after them.
    assert sorted(ui_backfill.new_runs) == local_midnights
    for logical, run in ui_backfill.new_runs.items():
        assert run["run_type"] == "backfill"
        assert _utc(run["data_interval_start"]) == logical
        assert _utc(run["data_interval_end"]) - logical == dt.timedelta(days=1)


def test_backfilled_runs_succeed_and_the_ui_shows_them(
    ui: Page, airflow_stack, api, finished_runs, flights_pipeline
):
    states = {day: run["state"] for day, run in finished_runs.items()}
    if set(states.values()) != {"success"}:
        tasks = {
            f"{day} {ti['task_id']}": ti["state"]
            for day, run in finished_runs.items()
            for ti in api.task_instances(DAG_ID, run["dag_run_id"])
        }
        pytest.fail(f"backfilled runs did not all succeed: {states}; tasks: {tasks}")

    # The runs list: one row per run, state Success (the list refreshes by itself).
    ui.goto(f"{airflow_stack.url}/dags/{DAG_ID}/runs")
    for run in finished_runs.values():
        row = ui.get_by_role("row").filter(
            has=ui.get_by_role("link", name=run["dag_run_id"], exact=True)
        )
        expect(row).to_contain_text("Success")
        expect(row).to_contain_text("Backfill")

    # The grid on the DAG page has a column per run, linking to it.
    ui.goto(f"{airflow_stack.url}/dags/{DAG_ID}")
    for run in finished_runs.values():
        expect(ui.locator(f'a[href$="/runs/{run["dag_run_id"]}/"]')).to_be_visible()

    # A run's page names its logical date: the local midnight of its day, shown in UTC.
    for day, run in finished_runs.items():
        logical = local_midnight(day, flights_pipeline).astimezone(UI_TIMEZONE)
        ui.goto(f"{airflow_stack.url}/dags/{DAG_ID}/runs/{run['dag_run_id']}")
        header = ui.get_by_test_id("header-card")
        expect(header).to_contain_text("Success")
        expect(header).to_contain_text(re.compile(rf"Logical Date\s*{logical:%Y-%m-%d %H:%M:%S}"))


def _expect_report(frame: FrameLocator, day: dt.date, datasets: list[str]) -> None:
    """The summary of one day's report: its title and one row per dataset with its outcome."""
    expect(frame.get_by_role("heading", level=1)).to_contain_text(
        f"Validation of flights on {day:%Y-%m-%d}"
    )
    for dataset in datasets:
        row = frame.get_by_role("row").filter(
            has=frame.get_by_role("cell", name=dataset, exact=True)
        )
        # Runs succeeded, so no dataset blocked the day.
        expect(row.first).to_contain_text(re.compile(r"passed|warned"))


def test_report_opens_from_the_navigation(ui: Page, airflow_stack, finished_runs, flights_pipeline):
    datasets = list(flights_pipeline.datasets)
    ui.goto(airflow_stack.url + "/")
    ui.get_by_role("button", name="Browse").click()
    ui.get_by_role("menuitem", name="Validation reports").click()
    frame = ui.frame_locator("iframe[title='Validation reports']")
    expect(frame.get_by_role("heading", level=1)).to_have_text("Validation reports")

    # The index: one row per validated day, each dataset with its outcome.
    for day in DAYS:
        row = frame.get_by_role("row").filter(
            has=frame.get_by_role("link", name=f"{day:%Y-%m-%d}", exact=True)
        )
        for dataset in datasets:
            expect(row).to_contain_text(re.compile(rf"{dataset}: (passed|warned)"))

    frame.get_by_role("link", name=f"{FIRST:%Y-%m-%d}", exact=True).click()
    _expect_report(frame, FIRST, datasets)


def test_report_opens_from_the_task_instance(
    ui: Page, airflow_stack, finished_runs, flights_pipeline
):
    run_id = finished_runs[LAST]["dag_run_id"]
    ui.goto(f"{airflow_stack.url}/dags/{DAG_ID}/runs/{run_id}/tasks/validate_raw")
    expect(ui.get_by_role("heading", name="validate_raw")).to_be_visible()
    ui.get_by_role("link", name="Validation report", exact=True).click()
    expect(ui).to_have_url(re.compile(r"/tasks/validate_raw/plugin/runway-validation-report$"))
    frame = ui.frame_locator("iframe[title='Validation report']")
    _expect_report(frame, LAST, list(flights_pipeline.datasets))


def _report_urls(base: str, run_id: str) -> list[str]:
    """Every route of the reports app, each pointing at a report that exists."""
    return [
        f"{base}{REPORTS}",
        f"{base}{REPORTS}files/flights/ds={FIRST:%Y-%m-%d}/index.html",
        f"{base}{REPORTS}run?dag_id={DAG_ID}&run_id={quote(run_id, safe='')}",
    ]


def _shows_no_report(text: str) -> bool:
    return not REPORT_TITLE.search(text) and "weather" not in text


def test_anonymous_requests_to_reports_are_refused(
    anonymous_page: Page, airflow_stack, api, finished_runs
):
    urls = _report_urls(airflow_stack.url, finished_runs[FIRST]["dag_run_id"])
    # The same URLs serve the reports to a logged-in user, so the refusals below are real.
    with httpx.Client(headers={"Authorization": f"Bearer {api.token}"}) as client:
        for url in urls:
            response = client.get(url, follow_redirects=True)
            assert response.status_code == 200, url
            assert "weather" in response.text, url

    # A browser without cookies: refused, offered a login, shown nothing of the report.
    for url in urls:
        response = anonymous_page.goto(url)
        assert response is not None and response.status == 401, url
        expect(anonymous_page.get_by_role("heading", level=1)).to_have_text(
            "Log in to Airflow first"
        )
        assert _shows_no_report(anonymous_page.content()), url
    # The UI's page of the reports sends the visitor to Airflow's login ...
    anonymous_page.goto(airflow_stack.url + "/plugin/runway-validation-reports")
    expect(anonymous_page).to_have_url(re.compile(r"/auth/login"))
    # ... and so does the refusal's link, which comes back to the report once logged in.
    anonymous_page.goto(urls[1])
    anonymous_page.get_by_role("link", name="log in").click()
    log_in(anonymous_page, airflow_stack.username, airflow_stack.password)
    expect(anonymous_page).to_have_url(urls[1])
    expect(anonymous_page.get_by_role("heading", level=1)).to_contain_text(
        f"Validation of flights on {FIRST:%Y-%m-%d}"
    )

    # Plain HTTP: no credentials (401), or forged ones (401/403), and never the report.
    forged = [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Cookie": "_token=not-a-token"},
    ]
    for headers in forged:
        for url in urls:
            response = httpx.get(url, headers=headers)
            expected = {401} if not headers else {401, 403}
            assert response.status_code in expected, (url, headers, response.status_code)
            assert _shows_no_report(response.text), (url, headers)
