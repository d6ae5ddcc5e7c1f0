"""Documents in a real Chromium on a phone-sized screen, against a real `gridless serve` with the
bundled embedding model and the bundled SmolLM2: a collection made, a Markdown file and a PDF
uploaded and indexed while the page follows them, a search whose passage opens in its document,
and a chat that answers from the collection and links its sources to their passages.

The tiny chat model may not write "[1]" itself: the Sources list under the answer comes from
retrieval and is always there when passages were found, so it is what the test opens; an inline
citation is opened too when the model wrote one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.documentfiles import REPORT_PAGES, pdf_bytes
from tests.server import ServerProcess

from .conftest import PHONE
from .test_chat import COMPOSER, send, sign_in, wait_complete

pytestmark = pytest.mark.e2e

INDEX_TIMEOUT_MS = 60_000  # reading and embedding two small documents, the model loaded first
SEARCH_TIMEOUT_MS = 30_000  # the query embedded (the model may have been unloaded meanwhile)

NOTES = """# Orchard notes

## Cherries

The cherry trees on the north slope ripen in the second week of June.
Pick them in the morning, before the heat.

## Apples

The apple harvest starts in September; the old trees give the sweetest fruit.
"""
PASSAGE_URL = re.compile(r"/knowledge/passage/(\d+)$")
COLLECTION_URL = re.compile(r"/knowledge/([0-9a-f]{32})$")


def fits_the_screen(page: Page) -> None:
    width: int = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width} px wide on a {PHONE['width']} px screen"


def in_view(page: Page, selector: str) -> None:
    page.wait_for_function(
        "s => { const r = document.querySelector(s)?.getBoundingClientRect();"
        " return !!r && r.top >= 0 && r.top < innerHeight; }", arg=selector)


def test_documents_from_upload_to_a_cited_answer(server: ServerProcess, phone_page: Page, tmp_path: Path) -> None:
    page = phone_page
    notes = tmp_path / "orchard.md"
    notes.write_text(NOTES, encoding="utf-8")
    report = tmp_path / "report.pdf"
    report.write_bytes(pdf_bytes(REPORT_PAGES))

    sign_in(page, server)
    page.get_by_role("button", name="Conversations").click()  # the drawer, as a person finds the page
    page.get_by_test_id("nav-knowledge").click()
    expect(page).to_have_url(f"{server.base}/knowledge")
    expect(page.get_by_test_id("collections-empty")).to_be_visible()

    page.get_by_test_id("new-collection").click()
    page.get_by_test_id("collection-name-input").fill("Orchard")
    page.get_by_test_id("collection-name-ok").click()
    expect(page).to_have_url(COLLECTION_URL)
    expect(page.get_by_test_id("collection-title")).to_have_text("Orchard")

    with page.expect_file_chooser() as chooser_info:
        page.get_by_test_id("add-documents").click()
    assert chooser_info.value.is_multiple(), "the chooser takes one file only"
    chooser_info.value.set_files([notes, report])
    documents = page.get_by_test_id("document")
    expect(documents).to_have_count(2, timeout=INDEX_TIMEOUT_MS)
    markdown_card = documents.filter(has_text="orchard.md")
    pdf_card = documents.filter(has_text="report.pdf")
    expect(markdown_card.get_by_test_id("document-state")).to_have_text(re.compile(r"^Ready · \d+ passages?$"),
                                                                        timeout=INDEX_TIMEOUT_MS)
    expect(pdf_card.get_by_test_id("document-state")).to_have_text("Ready · 4 passages · 4 pages",
                                                                   timeout=INDEX_TIMEOUT_MS)
    expect(page.get_by_test_id("upload")).to_have_count(0)  # the uploads' progress is gone once sent
    expect(page.get_by_test_id("upload-problem")).to_have_count(0)
    fits_the_screen(page)

    page.get_by_test_id("knowledge-search").fill("Which page mentions cherries?")
    page.get_by_test_id("knowledge-search").press("Enter")
    results = page.get_by_test_id("search-result")
    expect(results.first).to_be_visible(timeout=SEARCH_TIMEOUT_MS)
    on_page_three = results.filter(has_text="report.pdf · page 3")
    expect(on_page_three).to_have_count(1)
    expect(on_page_three.get_by_test_id("search-result-text")).to_have_text("Third page mentions cherries")
    expect(results.filter(has_text="orchard.md").first).to_contain_text("Cherries")
    fits_the_screen(page)
    on_page_three.click()
    expect(page).to_have_url(PASSAGE_URL)
    current = page.get_by_test_id("passage-current")
    expect(current.get_by_test_id("passage-text")).to_have_text("Third page mentions cherries")
    expect(current.get_by_test_id("passage-page")).to_have_text("page 3")
    expect(page.get_by_test_id("passage-document")).to_have_text("report.pdf")
    in_view(page, "[data-testid=passage-current]")
    fits_the_screen(page)
    page.get_by_test_id("passage-back").click()
    expect(page.get_by_test_id("collection-title")).to_have_text("Orchard")

    # a new chat answers from the collection
    page.goto(f"{server.base}/")
    expect(page.locator(COMPOSER)).to_be_visible()
    expect(page.get_by_test_id("chat-documents")).to_be_hidden()  # no room in a phone's header
    page.get_by_test_id("chat-documents-start").click()
    page.get_by_test_id("collection-choice").filter(has_text="Orchard").click()
    page.get_by_test_id("collections-save").click()
    expect(page.get_by_test_id("linked-names")).to_have_text("Answers use: Orchard")
    send(page, "When do the cherries ripen?")
    wait_complete(page)
    answer = page.get_by_test_id("assistant-message").last
    sources = answer.get_by_test_id("source-link")
    expect(sources.first).to_be_visible()
    assert "orchard.md" in " ".join(sources.all_inner_texts()), sources.all_inner_texts()
    fits_the_screen(page)
    chat_url = page.url

    first = sources.first
    target = first.get_attribute("href") or ""
    assert PASSAGE_URL.search(target), target
    first.click()
    expect(page).to_have_url(f"{server.base}{target}")
    expect(page.get_by_test_id("passage-current")).to_be_visible()
    in_view(page, "[data-testid=passage-current]")

    page.goto(chat_url)
    citations = page.get_by_test_id("assistant-message").last.get_by_test_id("citation")
    expect(page.get_by_test_id("assistant-message").last.get_by_test_id("source-link").first).to_be_visible()
    if citations.count():  # the model cited a passage by its number in its own words
        target = citations.first.get_attribute("href") or ""
        assert PASSAGE_URL.search(target), target
        citations.first.click()
        expect(page).to_have_url(f"{server.base}{target}")
        expect(page.get_by_test_id("passage-current")).to_be_visible()
