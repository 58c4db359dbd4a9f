"""End to end in a real browser: a pipeline's model-monitoring report in the Airflow UI.

A real report (monitoring rows and policy decisions in the platform database of the
``airflow_stack`` fixture, then :func:`write_report`) is opened the way a person does:
log in, *Browse → Model monitoring*, the pipeline's link; its plots load inside the UI's
iframe. Anonymous visitors get Airflow's login, never the report.

The report is written under a pipeline name of its own (a copy of the flights pipeline):
the stack is shared with other tests, whose flights rows and model events stay untouched.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_ui import log_in
from tests.unit.test_monitoring_app import write_monitoring_report

#: The pipeline of this module's report: the flights configuration under another name.
PIPELINE = "e2e_flights"
HEADING = f"Monitoring: {PIPELINE}"
#: The monitoring app, as plugins/runway_reports.py mounts it.
MONITORING = "/runway/monitoring/"


@pytest.fixture(scope="module")
def report(airflow_stack, flights_pipeline) -> Path:
    """The folder of the pipeline's report, written into the running Airflow's settings."""
    pipeline = flights_pipeline.model_copy(update={"name": PIPELINE})
    index = write_monitoring_report(airflow_stack.settings, pipeline, promoted=False)
    return index.parent


@pytest.fixture(scope="module")
def ui(page: Page, airflow_stack) -> Page:
    """The module's tab, logged in through Airflow's login page."""
    page.goto(airflow_stack.url + "/")
    log_in(page, airflow_stack.username, airflow_stack.password)
    return page


def _png_width(path: Path) -> int:
    """The width a browser reads from a PNG: the first field of its IHDR chunk."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR", path
    return int(struct.unpack(">I", header[16:20])[0])


def test_the_report_opens_from_the_navigation_with_its_plots(
    ui: Page, airflow_stack, report: Path
) -> None:
    ui.goto(airflow_stack.url + "/")
    ui.get_by_role("button", name="Browse").click()
    ui.get_by_role("menuitem", name="Model monitoring").click()
    # Airflow 3.3 appends the iframe's location once it has loaded (a race with this check).
    expect(ui).to_have_url(re.compile(r"/plugin/runway-model-monitoring(/runway/monitoring/?)?$"))
    frame = ui.frame_locator("iframe[title='Model monitoring']")
    expect(frame.get_by_role("heading", level=1)).to_have_text("Model monitoring")

    # The index: one row per pipeline with a report, naming the DAG that writes it.
    row = frame.get_by_role("row").filter(has=frame.get_by_role("link", name=PIPELINE, exact=True))
    expect(row).to_contain_text(f"{PIPELINE}_monitoring")
    row.get_by_role("link", name=PIPELINE, exact=True).click()

    expect(frame.get_by_role("heading", level=1)).to_have_text(HEADING)
    plot = frame.get_by_role("img", name="realised quality per model version")
    expect(plot).to_be_visible()
    # Loaded and decoded (a broken image has naturalWidth 0): this very file's width.
    expect(plot).to_have_js_property("naturalWidth", _png_width(report / "quality.png"))
    # Still inside the UI: the report opened in the iframe, the tab is on the view's page
    # (Airflow 3.3 appends the iframe's location to it: .../runway/monitoring/files/...).
    expect(ui).to_have_url(re.compile(r"/plugin/runway-model-monitoring(/|$)"))


def test_anonymous_visitors_get_the_login_page_not_the_report(
    anonymous_page: Page, airflow_stack, report: Path
) -> None:
    base = airflow_stack.url + MONITORING
    urls = [
        base,
        base + PIPELINE,
        f"{base}files/{PIPELINE}/index.html",
        f"{base}files/{PIPELINE}/quality.png",
    ]
    for url in urls:
        response = anonymous_page.goto(url)
        assert response is not None and response.status == 401, url
        expect(anonymous_page.get_by_role("heading", level=1)).to_have_text(
            "Log in to Airflow first"
        )
        assert HEADING not in anonymous_page.content(), url
        expect(anonymous_page.get_by_role("img")).to_have_count(0)

    # The UI's page of the view sends the visitor to Airflow's login ...
    anonymous_page.goto(airflow_stack.url + "/plugin/runway-model-monitoring")
    expect(anonymous_page).to_have_url(re.compile(r"/auth/login"))
    expect(anonymous_page.get_by_role("heading", name="Sign into Airflow")).to_be_visible()
    # ... and so does the refusal's link, which comes back to the report once logged in:
    # the same URL that was refused does serve the report.
    anonymous_page.goto(urls[2])
    anonymous_page.get_by_role("link", name="log in").click()
    log_in(anonymous_page, airflow_stack.username, airflow_stack.password)
    expect(anonymous_page).to_have_url(urls[2])
    expect(anonymous_page.get_by_role("heading", level=1)).to_have_text(HEADING)
