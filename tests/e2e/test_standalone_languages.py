"""The pages outside the app in Chromium: in Italian for a browser that speaks Italian, in English
when its person chose English, with the server's own sentence in the certificate guide kept whole
(its link included)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

from backend.api import pairing
from backend.core.i18n import COOKIE
from backend.core.resources import STATIC_DIR

pytestmark = pytest.mark.e2e

ORIGIN = "http://gridless.test"


class Certificates:
    @staticmethod
    def fingerprint() -> str:
        return "AB:CD:EF"


def pages() -> dict[str, str]:
    """What the server sends for each page (the guide filled in as for a share on HTTPS)."""
    return {"/static/offline.html": (STATIC_DIR / "offline.html").read_text(encoding="utf-8"),
            "/pair": (STATIC_DIR / "pair.html").read_text(encoding="utf-8"),
            "/ca": pairing._guide(Certificates(), "https://192.168.43.1:8766")}  # type: ignore[arg-type]


@pytest.fixture
def italian(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(locale="it-IT")
    served = pages()

    def fulfil(route: Route) -> None:
        path = route.request.url.removeprefix(ORIGIN).split("#")[0]
        if path in served:
            route.fulfill(status=200, content_type="text/html; charset=utf-8", body=served[path])
        else:
            route.fulfill(status=404, body="")

    context.route(f"{ORIGIN}/**", fulfil)
    yield context
    context.close()


def test_the_offline_page_speaks_the_browsers_language(italian: BrowserContext) -> None:
    page = italian.new_page()
    page.goto(f"{ORIGIN}/static/offline.html")
    expect(page.get_by_test_id("offline-title")).to_have_text("gridless non è in esecuzione")
    expect(page).to_have_title("gridless non è in esecuzione")
    expect(page.get_by_role("button")).to_have_text("Riprova")
    expect(page.locator("strong").first).to_have_text("Sul telefono (Termux):")
    expect(page.locator("body")).to_contain_text("gridless serve")  # the commands stay as they are
    assert page.evaluate("document.documentElement.lang") == "it"


def test_a_chosen_language_wins_over_the_browsers(italian: BrowserContext) -> None:
    italian.add_cookies([{"name": COOKIE, "value": "en", "url": ORIGIN}])
    page = italian.new_page()
    page.goto(f"{ORIGIN}/static/offline.html")
    expect(page.get_by_test_id("offline-title")).to_have_text("gridless is not running")
    assert page.evaluate("document.documentElement.lang") == "en"


def test_the_pairing_page_and_its_script_speak_italian(italian: BrowserContext) -> None:
    page: Page = italian.new_page()
    page.goto(f"{ORIGIN}/pair#12345678")  # the phone does not answer: the script says so, in Italian
    expect(page.locator("h1")).to_have_text("Abbina a gridless")
    expect(page.get_by_test_id("pair-message")).not_to_have_text("Asking the phone…")
    expect(page.get_by_test_id("pair-message")).not_to_contain_text("phone")


def test_the_certificate_guide_keeps_the_servers_link(italian: BrowserContext) -> None:
    page = italian.new_page()
    page.goto(f"{ORIGIN}/ca")
    expect(page.locator("h1")).to_have_text("Considera attendibile gridless su questo dispositivo")
    expect(page.get_by_test_id("ca-fingerprint")).to_have_text("AB:CD:EF")
    next_step = page.locator("[data-i18n-next] p")
    expect(next_step).to_have_text("Poi apri https://192.168.43.1:8766 oppure inquadra di nuovo il codice QR di "
                                   "abbinamento.")
    expect(next_step.locator("a")).to_have_attribute("href", "https://192.168.43.1:8766/pair")
