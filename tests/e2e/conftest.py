"""Browser fixtures for the end-to-end tier: Debian's headless Chromium, driven by Playwright.

One browser and one browser context (one login, one tab) per module; a test that needs a
visitor without cookies opens its own context. When a test fails (or a fixture it needs),
every open tab is saved as a PNG under that test's ``tmp_path`` and the paths are listed in
the failure report.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError

#: Debian's chromium: the machine has no internet, Playwright never downloads a browser.
CHROMIUM = Path("/usr/bin/chromium")
#: Headless, and nothing that would try to reach the internet (no QUIC, updates, sync).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Long enough for the UI's first load on a busy machine, short enough to fail quickly.
TIMEOUT_MS = 20_000
#: The browser's own timezone; the UI shows times in its configured timezone (UTC).
BROWSER_TIMEZONE = "UTC"

expect.set_options(timeout=TIMEOUT_MS)

_BROWSER = pytest.StashKey[Browser]()
_SCREENSHOT_DIR = pytest.StashKey[Path]()


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        request.config.stash[_BROWSER] = browser
        try:
            yield browser
        finally:
            del request.config.stash[_BROWSER]
            browser.close()


def _new_context(browser: Browser) -> BrowserContext:
    """A fresh browser context: no cookies, no storage, the tier's timeouts."""
    context = browser.new_context(
        viewport={"width": 1400, "height": 900}, timezone_id=BROWSER_TIMEZONE
    )
    context.set_default_timeout(TIMEOUT_MS)
    return context


@pytest.fixture(scope="module")
def page(browser: Browser) -> Iterator[Page]:
    """The module's one tab, in a context every test shares (anonymous until logged in)."""
    context = _new_context(browser)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def anonymous_page(browser: Browser) -> Iterator[Page]:
    """A tab of a fresh context for one test: a visitor without cookies."""
    context = _new_context(browser)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(autouse=True)
def _screenshot_dir(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    request.node.stash[_SCREENSHOT_DIR] = tmp_path


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failure, screenshot every open tab while the test's fixtures still live."""
    report = yield
    browser = item.config.stash.get(_BROWSER, None)
    folder = item.stash.get(_SCREENSHOT_DIR, None)
    if report.failed and report.when in {"setup", "call"} and browser and folder:
        saved = []
        pages = [tab for context in browser.contexts for tab in context.pages]
        for number, tab in enumerate(pages):
            path = folder / f"failure-{report.when}-{number}.png"
            with contextlib.suppress(PlaywrightError):
                tab.screenshot(path=str(path), full_page=True)
                saved.append(f"{path}  ({tab.url})")
        if saved:
            report.sections.append(("screenshots", "\n".join(saved)))
    return report
