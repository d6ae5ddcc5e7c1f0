"""Playwright fixtures for the end-to-end tests: one Chromium per session, a fresh context per test.

Debian's Chromium is used (never `playwright install`). A failing test leaves a screenshot of
each of its pages, and the server's log is already in the test's tmp_path.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, ViewportSize, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
EXPECT_TIMEOUT_MS = 15_000
"""How long an expectation waits by default (Playwright's own 5 s is short for a page's first render
on a busy 2-core machine)."""
expect.set_options(timeout=EXPECT_TIMEOUT_MS)
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) \
        -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember each phase's report on the item, so fixtures can tell whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("end-to-end tests need Debian's chromium at /usr/bin/chromium")
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


def browser_context(browser: Browser, request: pytest.FixtureRequest, tmp_path: Path,
                    viewport: ViewportSize = DESKTOP, *, name: str = "failure", init_scripts: tuple[str, ...] = (),
                    on_failure: Callable[[BrowserContext], None] | None = None, **options: Any) \
        -> Iterator[BrowserContext]:
    """A fresh browser profile (`options` go to `new_context`: a locale, reduced motion…; `init_scripts`
    run first in each page) whose pages are screenshot into `tmp_path` when the test using it failed,
    after `on_failure` has said what else it knows."""
    context = browser.new_context(viewport=viewport, **options)
    context.set_default_timeout(30_000)
    context.set_default_navigation_timeout(30_000)
    for script in init_scripts:
        context.add_init_script(script)
    yield context
    call_report = getattr(request.node, "report_call", None)
    if call_report is not None and call_report.failed:
        if on_failure is not None:
            on_failure(context)
        for i, page in enumerate(context.pages):
            try:
                page.screenshot(path=str(tmp_path / f"{name}-{i}.png"), full_page=True)
            except Exception as exc:  # the page may be the reason the test failed
                print(f"could not save a screenshot of page {i}: {exc}")
        print(f"screenshots and server log are in {tmp_path}")
    context.close()


@pytest.fixture
def context(browser: Browser, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) with a desktop-sized window."""
    yield from browser_context(browser, request, tmp_path, DESKTOP)


@pytest.fixture
def phone_context(browser: Browser, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BrowserContext]:
    """A fresh browser profile with a phone-sized window (390×844)."""
    yield from browser_context(browser, request, tmp_path, PHONE)


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def phone_page(phone_context: BrowserContext) -> Page:
    return phone_context.new_page()


def wait_live(page: Page) -> None:
    """Until the page's websocket is connected (its first handshake is done)."""
    page.wait_for_function("window.did_handshake === true")
