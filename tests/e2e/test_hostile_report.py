"""End to end in a real browser: a delivery carrying script runs nothing on Airflow's origin.

A day of a pipeline of its own (the flights configuration under another name, reading a
private landing folder, with only the datasets its checks need) is delivered with markup in
its values: a ``dest`` whose ``<img onerror>`` would rename the page, and a ``carrier``
whose ``<img onerror>`` would take the logged-in user's token from ``document.cookie`` and
create an Airflow variable through the REST API (the account takeover the review found).
Both fail the reference checks, so Great Expectations lists them in its Data Docs as
unexpected values, unescaped. The day is ingested and validated in-process with the stage
functions, on the settings of the running ``airflow_stack``, whose API server serves the
report; the report is then opened as a logged-in user, directly and from *Browse →
Validation reports* inside the Airflow UI (whose iframe allows scripts and Airflow's
origin: only the report's own Content-Security-Policy stands in the way).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pandas as pd
import pytest
from playwright.sync_api import Page, expect

from runway_mlops.sample.seed import seed_files
from runway_mlops.stages.ingest import ingest
from runway_mlops.stages.validate import report_dir, validate
from runway_mlops.storage import open_store
from tests.e2e.test_ui import log_in

PIPELINE = "e2e_hostile"
#: A day of the stack's range no other test validates for this pipeline.
DAY = dt.date(2013, 1, 9)
#: The variable the stealing payload would create with the user's token.
VARIABLE = "runway_e2e_pwned"
#: Renames the page it runs in.
RENAME = """<img src=x onerror="document.title='pwned'">"""
#: Renames the page, then creates an Airflow variable with the token Airflow's UI keeps in
#: a script-readable cookie.
STEAL = (
    "<img src=y onerror=\"document.title='pwned';"
    "fetch('/api/v2/variables',{method:'POST',headers:{"
    "'Content-Type':'application/json',Authorization:'Bearer '+"
    "document.cookie.split('_token=')[1].split(';')[0]},"
    f"body:JSON.stringify({{key:'{VARIABLE}',value:document.cookie}})}})"
    ".then(r=>{document.title='pwned '+r.status})\">"
)
#: What a report page is called, for the summary and for GX's pages.
SUMMARY_TITLE = f"Validation of {PIPELINE} {DAY:%Y-%m-%d}"


@dataclass
class HostileReport:
    summary: str  # URLs, on the running Airflow
    gx_page: str


def _variable(airflow_stack, api) -> httpx.Response:
    return httpx.get(
        f"{airflow_stack.url}/api/v2/variables/{VARIABLE}",
        headers={"Authorization": f"Bearer {api.token}"},
    )


@pytest.fixture(scope="module")
def api(airflow_stack) -> Iterator[object]:
    with airflow_stack.api() as client:
        yield client


@pytest.fixture(scope="module")
def hostile_report(airflow_stack, api, flights_pipeline, tmp_path_factory) -> HostileReport:
    """The day delivered with the payloads, ingested and validated; its report's URLs."""
    settings = airflow_stack.settings
    landing = tmp_path_factory.mktemp("hostile-landing")
    pipeline = flights_pipeline.model_copy(
        update={
            "name": PIPELINE,
            "source": flights_pipeline.source.model_copy(update={"uri": str(landing)}),
            "datasets": {
                name: flights_pipeline.datasets[name]
                for name in ("flights", "airlines", "airports")
            },
        }
    )
    seed_files(open_store(str(landing)), pipeline, DAY, DAY, "csv")
    delivery = landing / "flights" / f"ds={DAY:%Y-%m-%d}" / "flights.csv"
    frame = pd.read_csv(delivery, dtype=str, keep_default_na=False)
    frame.loc[0, "dest"] = RENAME
    frame.loc[1, "carrier"] = STEAL
    frame.to_csv(delivery, index=False, lineterminator="\n")
    ingest(settings, pipeline, DAY)
    outcome = validate(settings, pipeline, DAY)
    folder = report_dir(settings, PIPELINE, DAY)
    assert outcome.report_path == folder / "index.html"
    checks = outcome.datasets["flights"].pages["checks"]
    # The premise: GX wrote both payloads into its page as markup, not as text.
    gx_html = (folder / checks).read_text()
    assert RENAME in gx_html and STEAL in gx_html
    files = f"{airflow_stack.url}/runway/reports/files/{PIPELINE}/ds={DAY:%Y-%m-%d}"
    return HostileReport(summary=f"{files}/index.html", gx_page=f"{files}/{checks}")


@pytest.fixture(autouse=True)
def _no_variable(airflow_stack, api) -> Iterator[None]:
    """Each test starts without the variable (a payload that ran in one test must not fail
    the next) and leaves none behind."""

    def delete() -> None:
        httpx.delete(
            f"{airflow_stack.url}/api/v2/variables/{VARIABLE}",
            headers={"Authorization": f"Bearer {api.token}"},
        )

    delete()
    yield
    delete()


@pytest.fixture(scope="module")
def ui(page: Page, airflow_stack) -> Page:
    """The module's tab, logged in through Airflow's login page."""
    page.goto(airflow_stack.url + "/")
    log_in(page, airflow_stack.username, airflow_stack.password)
    assert any(cookie["name"] == "_token" for cookie in page.context.cookies())
    return page


def _assert_nothing_ran(page: Page, airflow_stack, api) -> None:
    """Once every frame of the page has loaded (an ``<img onerror>`` runs before its page's
    load event): no title renamed, and no variable created."""
    for frame in page.frames:
        frame.wait_for_load_state("load")
    titles = [frame.title() for frame in page.frames]
    assert not any("pwned" in title for title in titles), titles
    assert _variable(airflow_stack, api).status_code == 404, "the payload called the API"


def test_the_data_docs_keep_the_payloads_inert(ui: Page, airflow_stack, api, hostile_report):
    response = ui.goto(hostile_report.gx_page)
    assert response is not None and response.status == 200
    expect(ui.get_by_text("Expectation Validation Result").first).to_be_visible()
    # The payloads are in the page as elements (GX did not escape them) ...
    expect(ui.locator("img[src=x]")).to_have_count(1)
    expect(ui.locator("img[src=y]")).to_have_count(1)
    # ... and ran nothing: the page's origin is opaque and no script may run.
    _assert_nothing_ran(ui, airflow_stack, api)
    assert ui.evaluate("() => self.origin") == "null"


def test_the_summary_shows_the_payloads_as_text(ui: Page, airflow_stack, api, hostile_report):
    response = ui.goto(hostile_report.summary)
    assert response is not None and response.status == 200
    expect(ui).to_have_title(re.compile(re.escape(SUMMARY_TITLE)))
    expect(ui.get_by_text(RENAME).first).to_be_visible()
    expect(ui.locator("img")).to_have_count(0)
    _assert_nothing_ran(ui, airflow_stack, api)


def test_inside_the_airflow_ui_the_payloads_run_nothing(
    ui: Page, airflow_stack, api, hostile_report
):
    """The way a person opens it: Browse → Validation reports, the day, its checks."""
    ui.goto(airflow_stack.url + "/")
    ui.get_by_role("button", name="Browse").click()
    ui.get_by_role("menuitem", name="Validation reports").click()
    frame = ui.frame_locator("iframe[title='Validation reports']")
    row = frame.get_by_role("row").filter(has_text=PIPELINE)
    row.get_by_role("link", name=f"{DAY:%Y-%m-%d}").click()
    expect(frame.get_by_role("heading", level=1)).to_contain_text(
        f"Validation of {PIPELINE} on {DAY:%Y-%m-%d}"
    )
    expect(frame.get_by_text(RENAME).first).to_be_visible()
    flights = frame.get_by_role("row").filter(
        has=frame.get_by_role("cell", name="flights", exact=True)
    )
    flights.get_by_role("link", name="checks").click()
    expect(frame.get_by_text("Expectation Validation Result").first).to_be_visible()
    expect(frame.locator("img[src=y]")).to_have_count(1)
    _assert_nothing_ran(ui, airflow_stack, api)
    expect(ui).to_have_url(re.compile(r"/plugin/runway-validation-reports"))
