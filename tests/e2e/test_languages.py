"""The interface's language in a real Chromium: an Italian browser gets Italian by default; an
English one gets English until the person picks Italiano at the bottom of the drawer, and then
keeps it on every page. Dates are written the Italian way there."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from backend.storage.db import Database
from backend.storage.transcripts import Transcript, TranscriptState, TranscriptStore
from tests.server import ServerProcess

from .conftest import DESKTOP, browser_context
from .test_chat import sign_in

pytestmark = pytest.mark.e2e

NEW_CHAT = "[data-testid=new-chat]"
LANGUAGE = "[data-testid=language]"
TITLE = "[data-testid=conversation-title]"
RECORDED = datetime(2026, 3, 14, 15, 9)
"""When the seeded recording was made (the server's local time, as the page shows it)."""


def seed(data_dir: Path) -> None:
    """A finished recording, so the Transcripts page shows a date."""
    async def write() -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(data_dir / "gridless.db")
        await db.open()
        try:
            when = RECORDED.timestamp()
            await TranscriptStore(db).add(Transcript(
                audio="audio/seeded.wav", mime="audio/wav", bytes=44, name="Lista della spesa", duration=95.0,
                language="it", state=TranscriptState.DONE, text="Latte, uova e pane.", created_at=when,
                updated_at=when))
        finally:
            await db.close()

    # on a loop of its own: Playwright's sync API keeps the main thread's loop marked as running
    thread = threading.Thread(target=lambda: asyncio.run(write()))
    thread.start()
    thread.join()


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[ServerProcess]:
    seed(tmp_path / "data")
    with ServerProcess(data_dir=tmp_path / "data") as server:
        yield server


def browser_in(browser: Browser, locale: str, tmp_path: Path, request: pytest.FixtureRequest) \
        -> Iterator[BrowserContext]:
    """A fresh profile whose browser speaks `locale` (its Accept-Language and navigator.language)."""
    yield from browser_context(browser, request, tmp_path, DESKTOP, locale=locale)


@pytest.fixture
def italian_page(browser: Browser, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Page]:
    for context in browser_in(browser, "it-IT", tmp_path, request):
        yield context.new_page()


@pytest.fixture
def english_page(browser: Browser, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Page]:
    for context in browser_in(browser, "en-US", tmp_path, request):
        yield context.new_page()


def expect_italian(page: Page) -> None:
    expect(page.locator("html")).to_have_attribute("lang", "it")
    expect(page.locator(NEW_CHAT)).to_contain_text("Nuova chat")
    expect(page.locator(LANGUAGE)).to_contain_text("Italiano")


def test_an_italian_browser_gets_italian(seeded: ServerProcess, italian_page: Page) -> None:
    page = italian_page
    sign_in(page, seeded)
    expect_italian(page)
    expect(page.get_by_text("Chiedi quello che vuoi. Resta su questo dispositivo.")).to_be_visible()
    expect(page.get_by_role("button", name="Invia")).to_be_visible()  # icon-only buttons are named in it too
    expect(page.get_by_role("button", name="Impostazioni")).to_be_visible()
    assert page.evaluate("navigator.language") == "it-IT"


def test_an_english_browser_switches_to_italian_and_keeps_it(seeded: ServerProcess, english_page: Page) -> None:
    page = english_page
    sign_in(page, seeded)
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator(NEW_CHAT)).to_contain_text("New chat")
    expect(page.get_by_text("Ask anything. It stays on this device.")).to_be_visible()
    expect(page.locator(LANGUAGE)).to_contain_text("English")

    page.evaluate("window.glSamePage = true")
    page.locator(LANGUAGE).click()
    page.get_by_role("option", name="Italiano").click()
    page.wait_for_function("window.glSamePage === undefined")  # the page was loaded again
    expect_italian(page)
    expect(page.get_by_text("Chiedi quello che vuoi. Resta su questo dispositivo.")).to_be_visible()
    assert any(c["name"] == "gridless_lang" and c["value"] == "it" for c in page.context.cookies())

    page.locator("[data-testid=nav-transcripts]").click()  # another page: still Italian
    expect(page).to_have_url(f"{seeded.base}/transcripts")
    expect(page.locator(TITLE)).to_have_text("Trascrizioni")
    expect(page).to_have_title("Trascrizioni · gridless")
    expect_italian(page)
    expect(page.locator("[data-testid=transcribe-upload]")).to_contain_text("Trascrivi un file")
    card = page.locator("[data-testid^=transcript-]").filter(has_text="Lista della spesa")
    expect(card).to_contain_text("14/03/26, 15:09 · 1:35 · IT")  # the date the Italian way

    page.evaluate("window.glSamePage = true")  # and back to English the same way
    page.locator(LANGUAGE).click()
    page.get_by_role("option", name="English").click()
    page.wait_for_function("window.glSamePage === undefined")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator(TITLE)).to_have_text("Transcripts")
    expect(card).to_contain_text("3/14/26, 3:09 PM · 1:35 · IT")
