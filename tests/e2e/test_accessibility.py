"""Accessibility in a real Chromium: axe-core checks every page and every dialog a person opens
from them, in English and in Italian, and the keyboard and screen-reader behaviour of the page's
own script (static/app.js) is checked as a person would use it.

axe-core comes from npm at the version tests/e2e/package-lock.json pins (`npm ci --prefix
tests/e2e`, which scripts/test runs); without it these tests fail rather than skip. A page passes
when axe finds nothing "serious" or "critical" under the WCAG 2 A/AA rules; on failure every
violation is listed with where it was found, its rule, its help and the elements concerned.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from backend.core.i18n import _ as translate
from backend.core.i18n import use_locale
from tests.server import ServerProcess

from .conftest import DESKTOP, browser_context, wait_live

pytestmark = pytest.mark.e2e

AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
FAILING_IMPACTS = {"serious", "critical"}
LOCALES = {"en": "en-US", "it": "it-IT"}
ANSWER_TIMEOUT_MS = 180_000

RUN_AXE = """async (tags) => {
  const result = await axe.run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] });
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map((n) => ({ target: n.target.join(' '), impact: n.impact,
                                 summary: (n.failureSummary || '').replace(/\\s+/g, ' ').slice(0, 300),
                                 html: (n.html || '').slice(0, 200) })),
  }));
}"""


@pytest.fixture(scope="session")
def axe_script() -> Path:
    if not AXE.is_file():
        pytest.fail(f"axe-core is not installed ({AXE} is missing): run `npm ci --prefix tests/e2e` "
                    "(scripts/test does it before the tests)")
    return AXE


@dataclass
class Audit:
    """Runs axe in the page as it is now and keeps what it found, once per rule and element."""
    page: Page
    language: str
    script: Path
    found: list[str] = field(default_factory=list)
    seen: set[tuple[str, str]] = field(default_factory=set)
    checked: list[str] = field(default_factory=list)

    def t(self, text: str, **values: Any) -> str:
        """`text` as the page shows it in this audit's language."""
        with use_locale(self.language):
            return translate(text, **values)

    def check(self, where: str) -> None:
        page = self.page
        page.wait_for_timeout(350)  # transitions end (motion is reduced, see `audit`)
        if not page.evaluate("typeof window.axe === 'object'"):
            page.add_script_tag(path=str(self.script))
        violations: list[dict[str, Any]] = page.evaluate(RUN_AXE, TAGS)
        self.checked.append(where)
        for violation in violations:
            nodes = [n for n in violation["nodes"] if (n["impact"] or violation["impact"]) in FAILING_IMPACTS]
            new = [n for n in nodes if (violation["id"], n["target"]) not in self.seen]
            if not new:
                continue
            self.seen.update((violation["id"], n["target"]) for n in new)
            lines = [f"[{self.language}] {where}: {violation['id']} ({violation['impact']}) — {violation['help']}"
                     f" <{violation['helpUrl']}>"]
            lines += [f"    {n['target']}: {n['summary']}\n      {n['html']}" for n in new]
            self.found.append("\n".join(lines))

    def assert_clean(self) -> None:
        if self.found:
            print("\n\n".join(self.found))
            pytest.fail(f"axe found {len(self.found)} serious or critical violation(s) in {self.language} "
                        f"(checked: {', '.join(self.checked)}):\n\n" + "\n\n".join(self.found), pytrace=False)
        assert self.checked


@pytest.fixture(params=sorted(LOCALES))
def audit(request: pytest.FixtureRequest, browser: Browser, axe_script: Path, tmp_path: Path) -> Iterator[Audit]:
    """A fresh browser profile speaking the language (its Accept-Language), motion reduced so a
    check never catches a dialog halfway in."""
    language = str(request.param)
    for context in browser_context(browser, request, tmp_path, DESKTOP, name=f"failure-{language}",
                                   locale=LOCALES[language], reduced_motion="reduce"):
        yield Audit(page=context.new_page(), language=language, script=axe_script)


# helpers ------------------------------------------------------------------------------------------

def sign_in(audit: Audit, server: ServerProcess) -> None:
    page = audit.page
    page.goto(server.owner_link)
    expect(page.locator("textarea[data-testid=composer]")).to_be_visible()
    wait_live(page)
    expect(page.locator("html")).to_have_attribute("lang", audit.language)


def open_page(audit: Audit, server: ServerProcess, path: str) -> None:
    audit.page.goto(f"{server.base}{path}")
    wait_live(audit.page)


def dialog(page: Page) -> Any:
    found = page.locator(".q-dialog").last
    expect(found).to_be_visible()
    return found


def close_dialog(page: Page) -> None:
    page.keyboard.press("Escape")
    expect(page.locator(".q-dialog")).to_have_count(0)


def check_dialog(audit: Audit, opener: str, where: str) -> None:
    """Open a dialog with the element of test id `opener`, check it, close it with Escape."""
    audit.page.get_by_test_id(opener).first.click()
    dialog(audit.page)
    audit.check(where)
    close_dialog(audit.page)


def check_menu(audit: Audit, opener: Any, where: str) -> None:
    opener.click()
    expect(audit.page.locator(".q-menu")).to_be_visible()
    audit.check(where)
    audit.page.keyboard.press("Escape")
    expect(audit.page.locator(".q-menu")).to_have_count(0)


def ask(page: Page, text: str) -> str:
    """Send a question and wait for the whole answer; returns it."""
    composer = page.locator("textarea[data-testid=composer]")
    composer.fill(text)
    composer.press("Enter")
    expect(page.locator("[data-testid=user-message]").last).to_have_text(text)
    expect(page.locator("[data-testid=answer-stats]").last).to_contain_text("tok/s", timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("[data-testid=stop]")).to_be_hidden()
    answer = page.locator("[data-testid=assistant-message] .gl-answer").last.inner_text().strip()
    assert answer, "the answer is empty"
    return answer


def conversation_menu(audit: Audit, entry: str) -> None:
    """The drawer's "More" menu of the first conversation, then one of its entries."""
    page = audit.page
    item = page.get_by_test_id("conversation-item").first
    item.locator("xpath=..").get_by_role("button", name=audit.t("More")).click()
    menu = page.locator(".q-menu")
    expect(menu).to_be_visible()
    menu.locator(".q-item", has_text=audit.t(entry)).click()


# tests --------------------------------------------------------------------------------------------

def test_chat_and_its_dialogs(server: ServerProcess, audit: Audit) -> None:
    page = audit.page
    sign_in(audit, server)
    audit.check("chat, empty")

    page.keyboard.press("?")
    shortcuts = page.get_by_role("dialog", name=audit.t("Keyboard shortcuts"))
    expect(shortcuts).to_be_visible()
    audit.check("keyboard shortcuts")
    page.keyboard.press("Escape")
    expect(shortcuts).to_have_count(0)

    check_dialog(audit, "settings", "conversation settings")
    check_dialog(audit, "chat-documents", "documents for the chat")
    page.get_by_test_id("camera-button").click()  # no camera here: the viewfinder says so
    expect(page.get_by_test_id("camera")).to_be_visible()
    expect(page.get_by_test_id("camera-message")).not_to_be_empty()
    audit.check("camera")
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("camera")).to_have_count(0)
    if page.get_by_test_id("mic-language").count():
        check_menu(audit, page.get_by_test_id("mic-language"), "language of dictation menu")
    page.get_by_test_id("voice-mode-open").click()  # no microphone here: the view says why
    expect(page.get_by_test_id("voice-mode")).to_be_visible()
    expect(page.get_by_test_id("voice-error")).not_to_be_empty()
    audit.check("voice conversation")
    page.get_by_test_id("voice-close").click()
    expect(page.get_by_test_id("voice-mode")).to_have_count(0)
    page.get_by_test_id("projects").locator(".q-item").first.click()
    check_dialog(audit, "new-project", "new project")

    ask(page, "Say hello in one short sentence.")
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f]{32}$"))
    audit.check("chat, a question and its answer")

    item = page.get_by_test_id("conversation-item").first
    check_menu(audit, item.locator("xpath=..").get_by_role("button", name=audit.t("More")), "conversation menu")
    conversation_menu(audit, "Rename")
    dialog(page)
    audit.check("rename a conversation")
    close_dialog(page)
    conversation_menu(audit, "Delete")
    dialog(page)
    audit.check("delete a conversation")
    close_dialog(page)

    open_page(audit, server, "/c/" + "0" * 32)
    audit.check("not found")
    audit.assert_clean()


def test_every_page_and_its_dialogs(server: ServerProcess, audit: Audit) -> None:
    page = audit.page
    sign_in(audit, server)

    for path, where in (("/images", "images"), ("/transcripts", "transcripts"), ("/devices", "devices"),
                        ("/move", "move"), ("/backup", "backup")):
        open_page(audit, server, path)
        audit.check(where)

    open_page(audit, server, "/models")
    for job in ("chat", "vision", "images", "speech", "voice", "embeddings"):
        page.get_by_test_id(f"tab-{job}").click()
        audit.check(f"models, {job}")
    page.get_by_test_id("tab-chat").click()
    check_dialog(audit, "add-engine", "add an engine server")
    page.get_by_test_id("import-chat").click()
    expect(page.get_by_test_id("upload-chat")).to_be_visible()
    audit.check("models, import a model")

    open_page(audit, server, "/sharing")
    audit.check("share")
    page.get_by_test_id("key-name").fill("Tasker")
    page.get_by_test_id("key-scope-chat").click()
    page.get_by_test_id("key-create").click()
    key = page.get_by_test_id("key-dialog")
    expect(key).to_be_visible()
    audit.check("a new app key")
    key.get_by_test_id("key-done").click()
    expect(key).to_be_hidden()
    audit.check("share, with a key")

    open_page(audit, server, "/knowledge")
    audit.check("documents")
    page.get_by_test_id("new-collection").click()
    dialog(page)
    audit.check("new collection")
    page.get_by_test_id("collection-name-input").fill("Orchard")
    page.get_by_test_id("collection-name-ok").click()
    expect(page.get_by_test_id("collection-title")).to_have_text("Orchard")
    wait_live(page)
    audit.check("a collection")
    check_dialog(audit, "collection-rename", "rename a collection")
    check_dialog(audit, "collection-delete", "delete a collection")
    open_page(audit, server, "/knowledge")
    check_menu(audit, page.get_by_test_id("collection-more").first, "collection menu")

    page.get_by_test_id("projects").locator(".q-item").first.click()
    page.get_by_test_id("new-project").click()
    dialog(page).get_by_test_id("project-name").fill("Garden")
    page.get_by_test_id("project-create").click()
    expect(page).to_have_url(re.compile(r"/p/[0-9a-f]{32}$"))
    expect(page.get_by_test_id("project-title")).to_have_text("Garden")
    wait_live(page)
    audit.check("a project")
    check_dialog(audit, "project-settings", "project settings")
    check_dialog(audit, "project-delete", "delete a project")
    audit.assert_clean()


def test_keyboard_and_screen_reader(server: ServerProcess, page: Page) -> None:
    """The shortcuts, the focus they move and give back, and what a screen reader is told."""
    page.goto(server.owner_link)
    composer = page.locator("textarea[data-testid=composer]")
    expect(composer).to_be_visible()
    wait_live(page)

    # the list of shortcuts: a modal dialog that holds the focus and gives it back
    composer.focus()
    composer.press("Control+/")
    shortcuts = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(shortcuts).to_be_visible()
    expect(shortcuts).to_have_attribute("aria-modal", "true")
    expect(shortcuts).to_contain_text("Search conversations")
    close = shortcuts.get_by_role("button", name="Close")
    expect(close).to_be_focused()
    page.keyboard.press("Tab")
    expect(close).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(close).to_be_focused()
    page.keyboard.press("Escape")
    expect(shortcuts).to_have_count(0)
    expect(composer).to_be_focused()
    composer.press("?")  # typed in the message box, a question mark is a question mark
    expect(composer).to_have_value("?")
    expect(shortcuts).to_have_count(0)
    composer.fill("")

    # Ctrl+K: the search of conversations, from anywhere
    composer.press("Control+k")
    expect(page.locator("input[data-testid=search]")).to_be_focused()

    # Ctrl+Enter sends; the answer, once complete, is told to a screen reader politely
    composer.fill("Say hello in one short sentence.")
    composer.press("Control+Enter")
    expect(page.locator("[data-testid=user-message]")).to_have_count(1)
    expect(page.locator("[data-testid=answer-stats]").last).to_contain_text("tok/s", timeout=ANSWER_TIMEOUT_MS)
    answer = page.locator("[data-testid=assistant-message] .gl-answer").last.inner_text().strip()
    polite = page.get_by_test_id("live-polite")
    expect(polite).to_have_attribute("aria-live", "polite")
    expect(polite).not_to_be_empty()
    told = polite.inner_text().strip()
    assert told and told in answer, f"told {told!r} for the answer {answer!r}"
    expect(page.get_by_test_id("live-alert")).to_have_attribute("role", "alert")
    assert "Copy" not in told

    # Escape stops an answer being written
    composer.fill("Write a very long story about a dragon and a knight.")
    composer.press("Enter")
    stop = page.locator("[data-testid=stop]")
    expect(stop).to_be_visible()
    page.wait_for_function(
        "() => ([...document.querySelectorAll('[data-testid=assistant-message] .gl-answer')].at(-1)"
        "?.innerText.trim().length ?? 0) > 0", timeout=ANSWER_TIMEOUT_MS)
    page.keyboard.press("Escape")
    expect(stop).to_be_hidden()
    expect(page.locator("[data-testid=answer-stats]").last).to_contain_text("stopped")

    # Ctrl+Shift+O: a new chat
    conversation_url = page.url
    page.keyboard.press("Control+Shift+O")
    expect(page).to_have_url(f"{server.base}/")
    assert conversation_url != page.url
    expect(page.locator("[data-testid=user-message]")).to_have_count(0)
