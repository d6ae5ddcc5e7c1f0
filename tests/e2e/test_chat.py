"""The chat page in a real Chromium against a real `gridless serve` with the bundled SmolLM2.

The assertions are on what a person sees: messages, the answer growing, the stats line under
it, the stop button, the drawer. Answers come from a real model sharing the CPU with
everything else on the machine, so waits for them are long; waits for the page are not.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.server import ServerProcess

from .conftest import PHONE, wait_live

pytestmark = pytest.mark.e2e

ANSWER_TIMEOUT_MS = 180_000  # a whole answer, on a possibly busy machine
FIRST_TEXT_TIMEOUT_MS = 90_000  # until an answer shows its first words

COMPOSER = "textarea[data-testid=composer]"
SEND = "[data-testid=send]"
STOP = "[data-testid=stop]"
ASSISTANT = "[data-testid=assistant-message]"
ANSWER = f"{ASSISTANT} .gl-answer"
STATS = "[data-testid=answer-stats]"
USER = "[data-testid=user-message]"
REGENERATE = "[data-testid=regenerate]"
TITLE = "[data-testid=conversation-title]"
MODEL = "[data-testid=model-name]"
ITEM = "[data-testid=conversation-item]"

COMPLETE_STATS = re.compile(r"\d+ ms to first token · \d+(\.\d+)? tok/s · \d+ tokens")
CONVERSATION_URL = re.compile(r"^http://127\.0\.0\.1:\d+/c/([0-9a-f]{32})$")

# everything one look at the page needs, in one round trip, so a fast stream can be sampled often
SNAPSHOT_JS = """() => {
  const all = (s) => [...document.querySelectorAll(s)];
  const last = (s) => all(s).at(-1);
  const shown = (el) => !!el && el.checkVisibility();
  const stop = document.querySelector('[data-testid=stop]');
  const box = stop?.getBoundingClientRect();
  return {
    answer: last('[data-testid=assistant-message] .gl-answer')?.innerText ?? null,
    stats: last('[data-testid=answer-stats]')?.innerText ?? null,
    stop: shown(stop),
    stopInView: shown(stop) && box.left >= 0 && box.top >= 0 && box.right <= innerWidth + 1
      && box.bottom <= innerHeight + 1,
    scrollWidth: document.documentElement.scrollWidth,
  };
}"""


# helpers ------------------------------------------------------------------------------------------

def sign_in(page: Page, server: ServerProcess) -> None:
    """Open the owner link as a person would, and wait until the page is live (its websocket is up)."""
    page.goto(server.owner_link)
    expect(page.locator(COMPOSER)).to_be_visible()
    expect(page).to_have_url(f"{server.base}/")  # the token is not left in the address bar
    wait_live(page)


def send(page: Page, text: str) -> None:
    composer = page.locator(COMPOSER)
    composer.fill(text)
    composer.press("Enter")
    expect(page.locator(USER).last).to_have_text(text)
    expect(composer).to_have_value("")


def snapshot(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(SNAPSHOT_JS)
    return result


def wait_for_text(page: Page, min_chars: int = 1) -> str:
    """Wait until the last answer shows at least `min_chars` characters; returns what it shows."""
    page.wait_for_function(
        "n => ([...document.querySelectorAll('[data-testid=assistant-message] .gl-answer')].at(-1)"
        "?.innerText.trim().length ?? 0) >= n", arg=min_chars, timeout=FIRST_TEXT_TIMEOUT_MS)
    return str(snapshot(page)["answer"])


def wait_complete(page: Page) -> str:
    """Wait until the last answer is finished (stats with tok/s, send button back); returns its text."""
    expect(page.locator(STATS).last).to_contain_text("tok/s", timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator(STATS).last).to_have_text(COMPLETE_STATS)
    expect(page.locator(STOP)).to_be_hidden()
    expect(page.locator(SEND)).to_be_visible()
    text = page.locator(ANSWER).last.inner_text().strip()
    assert text, "the finished answer is empty"
    return text


@dataclass
class Watch:
    """What was seen while sampling a streaming answer."""
    lengths: list[int] = field(default_factory=list)
    stop_seen: bool = False
    stop_in_view: bool = False
    widest: int = 0  # the page's widest scrollWidth while streaming

    def grew(self) -> bool:
        """Seen as a non-empty text that later got longer (not just appearing at once)."""
        return any(0 < a < b for a, b in zip(self.lengths, self.lengths[1:], strict=False))


def watch_stream(page: Page) -> Watch:
    """Sample the last answer often until it is finished."""
    watch = Watch()
    deadline = time.monotonic() + ANSWER_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        seen = snapshot(page)
        answer = (seen["answer"] or "").strip()
        watch.lengths.append(len(answer))
        watch.stop_seen |= seen["stop"]
        watch.stop_in_view |= seen["stopInView"]
        watch.widest = max(watch.widest, seen["scrollWidth"])
        if "tok/s" in (seen["stats"] or ""):
            return watch
        page.wait_for_timeout(40)
    raise AssertionError(f"the answer did not finish in time; lengths seen: {watch.lengths[-20:]}")


def conversation_id(page: Page) -> str:
    match = CONVERSATION_URL.match(page.url)
    assert match, f"expected the address to be /c/<id>, it is {page.url}"
    return match.group(1)


def assert_in_viewport(locator: Locator, width: int, height: int, slack: float = 1) -> None:
    box = locator.bounding_box()
    assert box is not None, "element is not rendered"
    assert box["x"] >= -slack and box["y"] >= -slack, box
    assert box["x"] + box["width"] <= width + slack, box
    assert box["y"] + box["height"] <= height + slack, box


def page_width(page: Page) -> int:
    width: int = page.evaluate("document.documentElement.scrollWidth")
    return width


def more_menu(page: Page, item: Locator, entry: str) -> None:
    """Open a drawer item's "More" menu and pick an entry; the menu must stay put until then."""
    page.evaluate("window.glSamePage = true")
    item.locator("xpath=..").get_by_role("button", name="More").click()  # the button beside the item
    menu = page.locator(".q-menu")
    expect(menu).to_be_visible()
    page.wait_for_timeout(1000)  # a person takes a moment to pick; nothing may take the menu away meanwhile
    assert page.evaluate("window.glSamePage === true"), "opening the menu reloaded the page"
    expect(menu).to_be_visible()
    menu.locator(".q-item", has_text=entry).click(timeout=5_000)
    expect(page.locator(".q-dialog")).to_be_visible()


# tests --------------------------------------------------------------------------------------------

def test_send_and_stream_then_reload(server: ServerProcess, page: Page) -> None:
    sign_in(page, server)
    expect(page.locator(ITEM)).to_have_count(0)
    expect(page.get_by_text("No conversations yet")).to_be_visible()
    expect(page.locator(STOP)).to_be_hidden()
    expect(page.locator(TITLE)).to_have_text("gridless")
    expect(page.locator(MODEL)).to_contain_text("smollm2-135m-instruct")

    composer = page.locator(COMPOSER)  # Shift+Enter is a new line, not a send
    composer.fill("first line")
    composer.press("Shift+Enter")
    composer.press_sequentially("second line")
    expect(composer).to_have_value("first line\nsecond line")
    page.wait_for_timeout(300)
    expect(page.locator(USER)).to_have_count(0)
    assert page.url == f"{server.base}/"

    question = "Write a long story about a dragon."
    send(page, question)
    watch = watch_stream(page)
    assert watch.stop_seen, "the stop button never showed while the answer was written"
    assert watch.grew(), f"the answer was never seen growing: {watch.lengths}"
    answer = wait_complete(page)
    assert len(answer) > 100, answer
    expect(page.locator(USER)).to_have_count(1)
    expect(page.locator(ASSISTANT)).to_have_count(1)
    expect(page.locator(REGENERATE)).to_be_visible()
    conv_id = conversation_id(page)
    expect(page.locator(ITEM)).to_have_count(1)
    expect(page.locator(ITEM)).to_contain_text(question)

    page.reload()
    expect(page.locator(USER)).to_have_text([question])
    expect(page.locator(ANSWER)).to_have_count(1)
    assert page.locator(ANSWER).inner_text().strip() == answer
    expect(page.locator(STATS)).to_have_text(COMPLETE_STATS)
    assert conversation_id(page) == conv_id
    expect(page.locator(TITLE)).to_have_text(question)
    expect(page).to_have_title(f"{question} · gridless")
    item = page.locator(ITEM)
    expect(item).to_have_count(1)
    expect(item).to_be_visible()
    expect(item).to_contain_text(question)
    expect(item).to_have_class(re.compile(r"\bgl-current\b"))
    expect(page.locator(STOP)).to_be_hidden()


def assert_phone_layout(page: Page, when: str) -> None:
    width, height = PHONE["width"], PHONE["height"]
    assert page_width(page) <= width + 2, f"the page scrolls sideways {when}"
    assert_in_viewport(page.locator(COMPOSER), width, height)
    assert_in_viewport(page.locator(SEND), width, height)
    model = page.locator(MODEL)
    expect(model).to_be_visible()
    expect(model).to_contain_text("smollm2-135m-instruct")
    assert_in_viewport(model, width, height)
    assert_in_viewport(page.locator(TITLE), width, height)


def test_phone_viewport(server: ServerProcess, phone_page: Page) -> None:
    page = phone_page
    sign_in(page, server)
    assert page.viewport_size == PHONE
    assert_phone_layout(page, "on a new chat")
    question = "Write a long story about a dragon."

    send(page, question)
    watch = watch_stream(page)
    assert watch.stop_seen, "the stop button never showed while the answer was written"
    assert watch.stop_in_view, "the stop button was not inside the screen while the answer was written"
    assert watch.grew(), f"the answer was never seen growing: {watch.lengths}"
    assert watch.widest <= PHONE["width"] + 2, f"the page scrolled sideways while streaming ({watch.widest}px)"
    answer = wait_complete(page)
    conversation_id(page)
    assert_phone_layout(page, "after the answer")

    page.reload()
    expect(page.locator(USER)).to_have_text([question])
    expect(page.locator(ANSWER)).to_have_count(1)
    assert page.locator(ANSWER).inner_text().strip() == answer
    wait_live(page)
    assert_phone_layout(page, "after reloading")

    # the drawer is closed on a phone; the menu button opens it and it lists the conversation
    item = page.locator(ITEM)
    expect(item).to_be_hidden()
    page.get_by_role("button", name="Conversations").click()
    expect(item).to_be_visible()
    expect(item).to_contain_text(question)
    page.wait_for_function(  # the drawer slides in
        "() => document.querySelector('[data-testid=conversation-item]').getBoundingClientRect().left >= 0")
    assert_in_viewport(item, PHONE["width"], PHONE["height"])
    assert page_width(page) <= PHONE["width"] + 2, "the page scrolls sideways with the drawer open"


def test_stop_keeps_partial_answer(server: ServerProcess, page: Page) -> None:
    sign_in(page, server)
    send(page, "Write a very long story about a lighthouse keeper and a storm, with many details.")
    wait_for_text(page, 10)
    page.locator(STOP).click()

    stats = page.locator(STATS).last
    expect(stats).to_contain_text("stopped", timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator(STOP)).to_be_hidden()
    expect(page.locator(SEND)).to_be_visible()
    partial = page.locator(ANSWER).last.inner_text().strip()
    assert len(partial) >= 10, f"the partial answer was not kept: {partial!r}"
    page.wait_for_timeout(1500)
    assert page.locator(ANSWER).last.inner_text().strip() == partial, "the answer kept growing after stop"

    page.reload()
    expect(page.locator(USER)).to_have_count(1)
    expect(page.locator(ANSWER)).to_have_count(1)
    assert page.locator(ANSWER).inner_text().strip() == partial
    expect(page.locator(STATS)).to_contain_text("stopped")
    expect(page.locator("[data-testid=interrupted]")).to_have_count(0)
    expect(page.locator(REGENERATE)).to_be_visible()


def test_regenerate_and_edit(server: ServerProcess, page: Page) -> None:
    sign_in(page, server)
    send(page, "Name three colours.")
    wait_complete(page)
    conv_id = conversation_id(page)

    old_answer = page.locator(ASSISTANT).element_handle()
    page.locator(REGENERATE).click()
    page.wait_for_function("el => !el.isConnected", arg=old_answer)  # the old answer was replaced
    old_answer.dispose()
    wait_complete(page)
    expect(page.locator(USER)).to_have_text(["Name three colours."])
    expect(page.locator(ASSISTANT)).to_have_count(1)
    expect(page.locator(REGENERATE)).to_have_count(1)

    edited = "Name three animals."
    old_answer = page.locator(ASSISTANT).element_handle()
    page.locator(USER).locator("xpath=..").get_by_role("button", name="Edit").click()
    field = page.locator("textarea:not([data-testid=composer])")
    expect(field).to_be_visible()
    expect(field).to_have_value("Name three colours.")
    field.fill(edited)
    page.locator("[data-testid=edit-send]").click()
    page.wait_for_function("el => !el.isConnected", arg=old_answer)
    old_answer.dispose()
    expect(page.locator(USER)).to_have_text([edited])
    expect(field).to_have_count(0)
    answer = wait_complete(page)
    expect(page.locator(USER)).to_have_text([edited])
    expect(page.locator(ASSISTANT)).to_have_count(1)

    page.reload()
    expect(page.locator(USER)).to_have_text([edited])
    expect(page.locator(ANSWER)).to_have_count(1)
    assert page.locator(ANSWER).inner_text().strip() == answer
    assert conversation_id(page) == conv_id


def test_closing_tab_does_not_stop_answer(server: ServerProcess, context: BrowserContext, page: Page) -> None:
    sign_in(page, server)
    question = "Write a very long story about a lighthouse keeper and a storm, with many details."
    send(page, question)
    seen = wait_for_text(page, 1)
    url = page.url
    conversation_id(page)
    page.close()
    time.sleep(3)  # the tab stays closed for a while

    again = context.new_page()
    again.goto(url)
    expect(again.locator(USER)).to_have_text([question])
    expect(again.locator(ASSISTANT)).to_have_count(1)
    answer = wait_complete(again)
    stats = again.locator(STATS)
    expect(stats).not_to_contain_text("stopped")
    expect(stats).not_to_contain_text("interrupted")
    expect(again.locator("[data-testid=interrupted]")).to_have_count(0)
    assert len(answer) > len(seen), "the answer did not go on after the tab was closed"
    assert answer.startswith(seen[:1])


def test_unauthenticated_is_refused(server: ServerProcess, page: Page) -> None:
    for path in ("/", "/c/0123456789abcdef0123456789abcdef"):
        response = page.goto(server.base + path)
        assert response is not None and response.status == 401, path
        expect(page.locator("body")).to_contain_text("Sign in with the link")
        expect(page.locator(COMPOSER)).to_have_count(0)
        expect(page.locator(MODEL)).to_have_count(0)

    response = page.goto(f"{server.base}/?token=not-the-token")
    assert response is not None and response.status == 401
    expect(page.locator("body")).to_contain_text("not valid")
    expect(page.locator(COMPOSER)).to_have_count(0)
    assert page.context.cookies() == [], "a refused visit was given a cookie"


def test_rename_and_delete_conversation(server: ServerProcess, page: Page) -> None:
    sign_in(page, server)
    send(page, "Say hello.")
    wait_complete(page)
    conv_id = conversation_id(page)
    page.reload()
    wait_live(page)
    item = page.locator(ITEM)
    expect(item).to_have_count(1)
    expect(page.locator(TITLE)).to_have_text("Say hello.")

    more_menu(page, item, "Rename")
    dialog = page.locator(".q-dialog")
    expect(dialog).to_contain_text("Rename conversation")
    title_field = dialog.get_by_label("Title")
    expect(title_field).to_have_value("Say hello.")
    title_field.fill("Greetings")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(TITLE)).to_have_text("Greetings")
    expect(page).to_have_title("Greetings · gridless")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("Greetings")
    assert conversation_id(page) == conv_id
    wait_live(page)

    page.reload()
    expect(page.locator(TITLE)).to_have_text("Greetings")
    expect(page.locator(ITEM)).to_contain_text("Greetings")
    expect(page.locator(USER)).to_have_text(["Say hello."])
    wait_live(page)

    more_menu(page, page.locator(ITEM), "Delete")
    dialog = page.locator(".q-dialog")
    expect(dialog).to_contain_text("Delete “Greetings”?")
    dialog.get_by_role("button", name="Delete").click()
    expect(page).to_have_url(f"{server.base}/")
    expect(page.locator(ITEM)).to_have_count(0)
    expect(page.get_by_text("No conversations yet")).to_be_visible()
    expect(page.locator(USER)).to_have_count(0)

    page.goto(f"{server.base}/c/{conv_id}")
    expect(page.get_by_text("This conversation does not exist")).to_be_visible()
    expect(page.locator(USER)).to_have_count(0)
    expect(page.locator(ITEM)).to_have_count(0)


def test_header_shows_title_after_first_message(server: ServerProcess, page: Page) -> None:
    sign_in(page, server)
    expect(page.locator(TITLE)).to_have_text("gridless")
    send(page, "Say hello.")
    expect(page.locator(ITEM)).to_contain_text("Say hello.")
    expect(page.locator(TITLE)).to_have_text("Say hello.", timeout=10_000)
    expect(page).to_have_title("Say hello. · gridless")
    expect(page.locator(ITEM)).to_have_class(re.compile(r"\bgl-current\b"))


def test_conversation_settings_apply_and_persist(server: ServerProcess, page: Page) -> None:
    sign_in(page, server)
    page.locator("[data-testid=settings]").click()
    dialog = page.locator(".q-dialog")
    expect(dialog).to_contain_text("Conversation settings")
    dialog.get_by_label("System prompt").fill("You are a pirate.")
    dialog.get_by_label("Max tokens per answer").fill("5")
    page.locator("[data-testid=settings-save]").click()
    expect(dialog).to_be_hidden()
    conv_id = conversation_id(page)  # saving settings on a new chat creates it

    send(page, "Write a long story about a dragon.")
    stats = page.locator(STATS).last
    expect(stats).to_contain_text("5 tokens", timeout=ANSWER_TIMEOUT_MS)
    expect(stats).to_contain_text("reached the token limit")

    page.reload()
    wait_live(page)
    assert conversation_id(page) == conv_id
    page.locator("[data-testid=settings]").click()
    expect(dialog.get_by_label("System prompt")).to_have_value("You are a pirate.")
    expect(dialog.get_by_label("Max tokens per answer")).to_have_value("5")
