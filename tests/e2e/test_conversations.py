"""Finding, branching and organising conversations in a real Chromium against a real server.

Conversations that stand for months of use are written into the data folder before the server
starts (as the app itself would have stored them); answers the tests ask for come from the
bundled SmolLM2 and are kept to a few tokens by the conversation's or project's settings.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from backend.storage.conversations import ConversationStore
from backend.storage.db import Database
from tests.server import ServerProcess

from .conftest import wait_live
from .test_chat import ANSWER_TIMEOUT_MS, ASSISTANT, CONVERSATION_URL, ITEM, SEND, STATS, STOP, USER, send, sign_in

pytestmark = pytest.mark.e2e

SHORT = {"max_tokens": 8, "temperature": 1.0}
"""A few tokens an answer: enough to tell two answers apart, quick on a busy machine."""
HOSTILE = '<img src=x onerror="window.glHacked=1"> and <script>window.glHacked=2</script> marigold'
SEARCH = "input[data-testid=search]"
HIT = "[data-testid=search-hit]"
BRANCH_LABEL = "[data-testid=branch-label]"


@dataclass
class Seeded:
    garden: str
    """"Garden notes": a question with two answers, the second shown."""
    tulip_answer: str
    """The first answer (on the branch not shown), which mentions tulips."""
    hostile: str
    """A conversation whose message is HTML."""
    short: str
    """An empty conversation whose answers are short."""


def run_async(coroutine: Coroutine[Any, Any, Seeded]) -> Seeded:
    """Runs it on a loop of its own: Playwright's sync API keeps the main thread's loop marked as running."""
    result: list[Seeded] = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(coroutine)))
    thread.start()
    thread.join()
    assert result, "seeding the data folder failed (see the thread's traceback above)"
    return result[0]


async def seed(data_dir: Path) -> Seeded:
    data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(data_dir / "gridless.db")
    await db.open()
    try:
        store = ConversationStore(db)
        for i in range(4):
            other = await store.create(title=f"Older chat {i}")
            await store.add_message(other.id, "user", f"Something else entirely, number {i}.")
        garden = await store.create(title="Garden notes")
        question = await store.add_message(garden.id, "user", "What should I plant in autumn?")
        first = await store.add_message(garden.id, "assistant", "Plant tulip bulbs before the first frost.")
        await store.add_message(garden.id, "assistant", "Garlic and onions do well.", parent_id=question.id)
        hostile = await store.create(title="Odd characters")
        await store.add_message(hostile.id, "user", HOSTILE)
        short = await store.create(title="Short answers", settings=SHORT)
        return Seeded(garden=garden.id, tulip_answer=first.id, hostile=hostile.id, short=short.id)
    finally:
        await db.close()


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[ServerProcess, Seeded]]:
    data = tmp_path / "data"
    ids = run_async(seed(data))
    with ServerProcess(data_dir=data) as server:
        yield server, ids


def stored(server: ServerProcess, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """What the server's database holds now (read beside the running server, as WAL allows)."""
    with sqlite3.connect(f"file:{server.data_dir / 'gridless.db'}?mode=ro", uri=True) as db:
        return db.execute(sql, params).fetchall()


def drawer_item(page: Page, title: str) -> Locator:
    return page.locator(ITEM, has_text=title)


def menu(page: Page, title: str, entry: str) -> None:
    """The ⋮ beside a drawer conversation, then an entry of its menu."""
    drawer_item(page, title).locator("xpath=..").get_by_role("button", name="More").click()
    page.locator(".q-menu .q-item", has_text=entry).click()


def answered(page: Page) -> str:
    """Waits until the last answer is finished; returns its text."""
    expect(page.locator(STATS).last).to_contain_text("tok/s", timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator(STOP)).to_be_hidden()
    expect(page.locator(SEND)).to_be_visible()
    return page.locator(f"{ASSISTANT} .gl-answer").last.inner_text().strip()


# tests --------------------------------------------------------------------------------------------

def test_search_opens_the_message_found_and_shows_html_as_text(seeded: tuple[ServerProcess, Seeded],
                                                              page: Page) -> None:
    server, ids = seeded
    sign_in(page, server)
    page.locator(SEARCH).press_sequentially("tulip", delay=30)
    hit = page.locator(HIT)
    expect(hit).to_have_count(1)
    expect(hit.locator("[data-testid=search-hit-title]")).to_have_text("Garden notes")
    expect(hit.locator("mark")).to_have_text("tulip")
    expect(hit.locator("[data-testid=search-hit-snippet]")).to_contain_text("Plant tulip bulbs")
    expect(page.locator(ITEM).first).to_be_hidden()  # the results take the list's place

    hit.click()
    expect(page).to_have_url(f"{server.base}/c/{ids.garden}?m={ids.tulip_answer}")
    found = page.locator(f"[data-message-id='{ids.tulip_answer}']")
    expect(found).to_contain_text("Plant tulip bulbs before the first frost.")
    expect(found).to_have_class(re.compile(r"\bgl-flash\b"))  # marked for a moment
    expect(found).to_be_in_viewport()
    expect(found.locator(BRANCH_LABEL)).to_have_text("1/2")  # the branch holding it is the one shown
    expect(page.get_by_text("Garlic and onions do well.")).to_have_count(0)
    assert stored(server, "SELECT leaf_id FROM conversations WHERE id = ?", ids.garden) == [(ids.tulip_answer,)]

    wait_live(page)
    search = page.locator(SEARCH)
    search.fill("marigold")
    expect(page.locator(HIT)).to_have_count(1)
    snippet = page.locator(f"{HIT} [data-testid=search-hit-snippet]")
    expect(snippet).to_contain_text('onerror="window.glHacked=1"> and <script>window.glHacked=2</script>')
    expect(snippet.locator("mark")).to_have_text("marigold")
    expect(snippet.locator("img, script")).to_have_count(0)
    search.fill("nasturtium")
    expect(page.get_by_test_id("search-empty")).to_have_text("No results for “nasturtium”")
    search.fill("")
    expect(drawer_item(page, "Garden notes")).to_be_visible()

    page.goto(f"{server.base}/c/{ids.hostile}")
    expect(page.locator(USER)).to_have_text(HOSTILE)
    expect(page.locator(f"{USER} img, {USER} script")).to_have_count(0)
    assert page.evaluate("window.glHacked") is None


def test_versions_of_answers_and_messages(seeded: tuple[ServerProcess, Seeded], page: Page) -> None:
    server, ids = seeded
    sign_in(page, server)
    page.goto(f"{server.base}/c/{ids.short}")
    wait_live(page)
    send(page, "Name a colour.")
    first = answered(page)

    page.get_by_test_id("regenerate").click()
    answer = page.locator(ASSISTANT)
    expect(answer.locator(BRANCH_LABEL)).to_have_text("2/2", timeout=ANSWER_TIMEOUT_MS)  # shown at once
    answered(page)
    expect(answer).to_have_count(1)
    answer.get_by_role("button", name="Previous version").click()
    expect(answer.locator(BRANCH_LABEL)).to_have_text("1/2")
    expect(answer.locator(".gl-answer")).to_have_text(first)
    expect(answer.get_by_role("button", name="Previous version")).to_be_disabled()

    send(page, "And another one.")  # the conversation goes on from the first answer
    answered(page)
    expect(page.locator(USER)).to_have_text(["Name a colour.", "And another one."])
    expect(page.locator(ASSISTANT).first.locator(BRANCH_LABEL)).to_have_text("1/2")
    page.reload()
    expect(page.locator(ASSISTANT).first.locator(BRANCH_LABEL)).to_have_text("1/2")
    expect(page.locator(ASSISTANT).first.locator(".gl-answer")).to_have_text(first)
    wait_live(page)

    page.locator(USER).first.locator("xpath=..").get_by_role("button", name="Edit").click()
    field = page.locator("textarea:not([data-testid=composer])")
    field.fill("Name an animal.")
    page.get_by_test_id("edit-send").click()
    expect(page.locator(USER)).to_have_text(["Name an animal."])
    mine = page.locator(USER).locator("xpath=..")
    expect(mine.locator(BRANCH_LABEL)).to_have_text("2/2")
    answered(page)
    expect(page.locator(ASSISTANT)).to_have_count(1)

    mine.get_by_role("button", name="Previous version").click()  # back to the first version: its newest answer
    expect(page.locator(USER)).to_have_text(["Name a colour."])
    expect(page.locator(USER).first.locator("xpath=..").locator(BRANCH_LABEL)).to_have_text("1/2")
    expect(answer.locator(BRANCH_LABEL)).to_have_text("2/2")
    answer.get_by_role("button", name="Previous version").click()  # and the first answer, with what followed
    expect(page.locator(USER)).to_have_text(["Name a colour.", "And another one."])
    expect(page.locator(ASSISTANT).first.locator(".gl-answer")).to_have_text(first)
    rows = stored(server, "SELECT role, content FROM messages WHERE conversation_id = ? AND role = 'user'"
                          " ORDER BY n", ids.short)
    assert [r[1] for r in rows] == ["Name a colour.", "And another one.", "Name an animal."]


def test_a_project_from_a_preset(seeded: tuple[ServerProcess, Seeded], page: Page) -> None:
    server, _ = seeded
    sign_in(page, server)
    page.get_by_test_id("projects").get_by_text("Projects").click()
    page.get_by_test_id("new-project").click()
    dialog = page.locator(".q-dialog")
    dialog.get_by_test_id("preset").filter(has_text="Translator").click()
    expect(dialog.get_by_test_id("preset").filter(has_text="Translator")) \
        .to_contain_text("Translates what you write")
    expect(dialog.locator("input[data-testid=project-name]")).to_have_value("Translator")
    dialog.get_by_test_id("project-create").click()
    expect(page).to_have_url(re.compile(r"/p/[0-9a-f]{32}$"))
    project_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_test_id("project-title")).to_have_text("Translator")
    [(prompt,)] = stored(server, "SELECT system_prompt FROM projects WHERE id = ?", project_id)
    assert prompt.startswith("You are a translator.")
    wait_live(page)

    page.get_by_test_id("project-settings").click()  # short answers for its chats
    dialog = page.locator(".q-dialog")
    expect(dialog).to_contain_text("Project settings")
    dialog.get_by_label("Max tokens per answer").fill("8")
    dialog.get_by_test_id("settings-save").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_text("Project saved")).to_be_visible()
    [(settings,)] = stored(server, "SELECT settings FROM projects WHERE id = ?", project_id)
    assert json.loads(settings)["max_tokens"] == 8 and json.loads(settings)["temperature"] == 0.2  # kept the preset's
    page.get_by_test_id("project-new-chat").click()
    expect(page).to_have_url(f"{server.base}/?project={project_id}")
    expect(page.get_by_test_id("new-chat-project")).to_contain_text("New chat in Translator")
    wait_live(page)
    page.get_by_test_id("settings").click()
    expect(dialog.get_by_label("System prompt")).to_have_value(prompt)
    expect(dialog.get_by_label("Max tokens per answer")).to_have_value("8")
    dialog.get_by_role("button", name="Cancel").click()
    send(page, "Buongiorno a tutti.")
    answered(page)
    match = CONVERSATION_URL.match(page.url)
    assert match, page.url
    assert stored(server, "SELECT project_id, system_prompt FROM conversations WHERE id = ?",
                  match.group(1)) == [(project_id, prompt)]

    menu(page, "Garden notes", "Move to project…")
    dialog = page.locator(".q-dialog")
    dialog.get_by_test_id("move-project").click()
    page.locator(".q-menu .q-item", has_text="Translator").click()
    dialog.get_by_test_id("move-ok").click()
    expect(page.get_by_text("Moved to Translator")).to_be_visible()
    page.goto(f"{server.base}/p/{project_id}")
    expect(page.get_by_test_id("project-conversation")).to_have_count(2)
    expect(page.get_by_test_id("project-conversation").filter(has_text="Garden notes")).to_be_visible()

    wait_live(page)
    page.get_by_test_id("project-delete").click()
    dialog = page.locator(".q-dialog")
    expect(dialog).to_contain_text("Its chats stay, in no project.")
    dialog.get_by_test_id("confirm-ok").click()
    expect(page).to_have_url(f"{server.base}/")
    expect(drawer_item(page, "Garden notes")).to_be_visible()
    assert stored(server, "SELECT COUNT(*) FROM projects") == [(0,)]
    assert stored(server, "SELECT COUNT(*) FROM conversations WHERE project_id IS NOT NULL") == [(0,)]


def test_pin_archive_and_delete_several(seeded: tuple[ServerProcess, Seeded], page: Page) -> None:
    server, ids = seeded
    sign_in(page, server)
    items = page.locator(ITEM)
    expect(items).to_have_count(7)
    menu(page, "Older chat 1", "Pin")
    expect(items.first).to_contain_text("Older chat 1")
    expect(items.first.get_by_test_id("pinned")).to_be_visible()

    menu(page, "Garden notes", "Archive")
    expect(drawer_item(page, "Garden notes")).to_have_count(0)
    page.get_by_test_id("show-archived").click()
    expect(items).to_have_count(1)
    expect(items).to_contain_text("Garden notes")
    page.get_by_test_id("archived-back").click()
    expect(items).to_have_count(6)

    page.get_by_role("button", name="Select").click()
    for title in ("Older chat 2", "Older chat 3"):
        drawer_item(page, title).locator("xpath=..").get_by_test_id("select-conversation").click()
    expect(page.get_by_test_id("selected-count")).to_have_text("2 selected")
    page.get_by_test_id("selected-delete").click()
    dialog = page.locator(".q-dialog")
    expect(dialog).to_contain_text("Delete 2 conversations?")
    dialog.get_by_test_id("confirm-ok").click()
    expect(items).to_have_count(4)
    expect(drawer_item(page, "Older chat 2")).to_have_count(0)
    assert stored(server, "SELECT COUNT(*) FROM conversations") == [(5,)]  # the archived one stays
    assert stored(server, "SELECT pinned FROM conversations WHERE title = 'Older chat 1'") == [(1,)]
    assert ids.garden in {r[0] for r in stored(server, "SELECT id FROM conversations WHERE archived = 1")}


def chatgpt_export(title: str) -> list[dict[str, Any]]:
    """ChatGPT's conversations.json, cut to one conversation: a root node, a question and its answer."""
    def node(key: str, parent: str | None, children: list[str], role: str | None, text: str) -> dict[str, Any]:
        message = None if role is None else {
            "id": key, "author": {"role": role}, "create_time": 1_700_000_000.0,
            "content": {"content_type": "text", "parts": [text]}, "metadata": {}}
        return {"id": key, "parent": parent, "children": children, "message": message}
    return [{"title": title, "create_time": 1_700_000_000.0, "update_time": 1_700_000_100.0,
             "current_node": "a1",
             "mapping": {"root": node("root", None, ["q1"], None, ""),
                         "q1": node("q1", "root", ["a1"], "user", "How do I repot a fern?"),
                         "a1": node("a1", "q1", [], "assistant", "Gently, into a slightly larger pot.")}}]


def test_export_and_import(seeded: tuple[ServerProcess, Seeded], page: Page, tmp_path: Path) -> None:
    server, _ = seeded
    sign_in(page, server)
    contents: dict[str, str] = {}
    for entry, extension in (("Export as Markdown", ".md"), ("Export as JSON", ".json")):
        with page.expect_download() as download_info:
            menu(page, "Garden notes", entry)
        download = download_info.value
        assert download.suggested_filename.endswith(extension), download.suggested_filename
        contents[extension] = Path(download.path()).read_text(encoding="utf-8")
    assert "What should I plant in autumn?" in contents[".md"]
    assert "Garlic and onions do well." in contents[".md"]  # the branch shown
    document = json.loads(contents[".json"])
    texts = json.dumps(document)
    assert "Plant tulip bulbs before the first frost." in texts and "Garlic and onions do well." in texts  # all

    exported = tmp_path / "conversations.json"
    exported.write_text(json.dumps(chatgpt_export("Repotting ferns")), encoding="utf-8")
    page.locator("input[data-testid=import-file]").set_input_files(exported)
    expect(page.get_by_text("Imported 1 conversation from conversations.json")).to_be_visible()
    drawer_item(page, "Repotting ferns").click()
    expect(page.locator(USER)).to_have_text(["How do I repot a fern?"])
    expect(page.locator(f"{ASSISTANT} .gl-answer")).to_have_text("Gently, into a slightly larger pot.")

    broken = tmp_path / "broken.json"
    broken.write_text('{"not": "an export"', encoding="utf-8")
    wait_live(page)
    page.locator("input[data-testid=import-file]").set_input_files(broken)
    expect(page.locator(".q-notification").filter(has_text="JSON")).to_be_visible()
    assert stored(server, "SELECT COUNT(*) FROM conversations") == [(8,)]  # nothing of the broken file
