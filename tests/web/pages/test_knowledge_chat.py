"""Documents in a chat: citations in an answer that link to their passages, the list of sources
under it, collections turned on for a chat or a project, and a file from the paperclip kept in a
collection."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nicegui import ui
from nicegui.testing import User
from nicegui.testing.user_interaction import UserInteraction

from backend.services import Services
from web.components.knowledge_citations import CitedMarkdown, cite_html

from ..conftest import ORIGIN
from ..finders import by_testid, click, dialog, find_testid, inside, notified, sees, shown, wait_for
from ..test_frame import row_menu

SOURCES: list[dict[str, Any]] = [
    {"n": 1, "passage_id": 41, "document_id": "d1", "document": "report.pdf", "collection_id": "c1", "page": 3,
     "heading": "Quarterly report"},
    {"n": 2, "passage_id": 7, "document_id": "d2", "document": "notes.md", "collection_id": "c1", "page": None,
     "heading": ""},
]
LINK = re.compile(r'<a href="(/knowledge/passage/\d+)" class="gl-cite" data-testid="citation" data-source="(\d+)">'
                  r"([^<]*)</a>")


@pytest.fixture
async def knowledge(services: Services) -> AsyncIterator[Services]:
    """The services with the indexer stopped (no embedding model is started)."""
    await services.knowledge.indexer.stop()
    yield services


def links(html: str) -> list[tuple[str, str, str]]:
    """(address, source number, text) of each citation link."""
    return LINK.findall(html)


# citations ------------------------------------------------------------------------------------------

def test_only_numbers_of_sources_become_links() -> None:
    html = cite_html("<p>Apples sold well [1], pears [3] and plums [2].</p>", SOURCES)
    assert links(html) == [("/knowledge/passage/41", "1", "[1]"), ("/knowledge/passage/7", "2", "[2]")]
    assert "pears [3] and" in html  # no such source: left as written
    assert cite_html("<p>Apples [1].</p>", []) == "<p>Apples [1].</p>"


def test_citations_in_code_links_and_tags_stay_as_written() -> None:
    html = ('<p>See <code>a[1]</code> and <a href="https://example.org">[2]</a>.</p>'
            '<pre><code>x = y[2]\n</code></pre><p><img alt="[1]" src="x.png"> then [2, 5] and [1][2]</p>')
    cited = cite_html(html, SOURCES)
    assert "<code>a[1]</code>" in cited and '<a href="https://example.org">[2]</a>' in cited
    assert "<pre><code>x = y[2]\n</code></pre>" in cited and '<img alt="[1]" src="x.png">' in cited
    assert links(cited) == [("/knowledge/passage/7", "2", "2"), ("/knowledge/passage/41", "1", "[1]"),
                            ("/knowledge/passage/7", "2", "[2]")]
    assert re.search(r'\[<a [^>]*>2</a>, 5\]', cited)  # a list of numbers: each known one linked


def test_html_of_the_answer_is_not_rebuilt() -> None:
    """Text around the citations is not escaped again or changed: only the [n] are replaced."""
    html = "<p>&lt;b&gt; &amp; [1] «quoted» [x] [] [12a]</p>"
    assert cite_html(html, SOURCES) == html.replace("[1]", '<a href="/knowledge/passage/41" class="gl-cite" '
                                                           'data-testid="citation" data-source="1">[1]</a>')


async def test_a_streaming_answer_links_its_citations_as_it_grows(owner: User) -> None:
    await owner.open("/")
    await shown(owner, "composer")
    with owner:
        md = CitedMarkdown("Apples", sources=SOURCES)
    assert "citation" not in md.props["innerHTML"]
    md.set_content("Apples sold well [1].")
    assert links(md.props["innerHTML"]) == [("/knowledge/passage/41", "1", "[1]")]


async def test_an_answer_with_sources_links_its_citations_and_lists_them(owner: User, knowledge: Services) -> None:
    conversation = await knowledge.store.create(title="Fruit")
    await knowledge.store.add_message(conversation.id, "user", "What sold well?")
    answer = await knowledge.store.add_message(conversation.id, "assistant",
                                               "Apples sold well [1], as did pears [4]. `code [2]`")
    await knowledge.store.set_sources(answer.id, SOURCES)
    await knowledge.store.add_message(conversation.id, "user", "And plums?")
    await knowledge.store.add_message(conversation.id, "assistant", "Plums [1] are not mentioned.")
    await owner.open(f"/c/{conversation.id}")
    await wait_for(owner, lambda: len(by_testid(owner, "assistant-message", ui.element)) == 2, "two answers")
    first, second = by_testid(owner, "assistant-message", ui.element)

    [md] = inside(owner, first, ui.markdown)
    assert links(md.props["innerHTML"]) == [("/knowledge/passage/41", "1", "[1]")]
    assert "pears [4]" in md.props["innerHTML"] and "<code>code [2]</code>" in md.props["innerHTML"]
    listed = find_testid(owner, "answer-sources", ui.column, within=first)
    sources = [(link.text, link.props["href"]) for link in by_testid(owner, "source-link", ui.link, within=listed)]
    assert sources == [("report.pdf · page 3", "/knowledge/passage/41"), ("notes.md", "/knowledge/passage/7")]
    assert [e.text for e in by_testid(owner, "source-heading", ui.label, within=listed)] == ["Quarterly report"]

    [plain] = inside(owner, second, ui.markdown)  # an answer without sources: its [1] is only text
    assert "citation" not in plain.props["innerHTML"] and "Plums [1]" in plain.props["innerHTML"]
    assert not by_testid(owner, "answer-sources", within=second)


# collections turned on ------------------------------------------------------------------------------

def choices(user: User, within: ui.dialog) -> dict[str, ui.checkbox]:
    return {box.text: box for box in by_testid(user, "collection-choice", ui.checkbox, within=within)}


async def test_collections_are_turned_on_for_a_chat(owner: User, knowledge: Services) -> None:
    manuals = await knowledge.knowledge.create_collection("Manuals")
    await knowledge.knowledge.create_collection("Recipes")
    conversation = await knowledge.store.create(title="Oven")
    await owner.open(f"/c/{conversation.id}")
    linked_row = await shown(owner, "chat-documents", ui.button)
    await sees(owner, "Ask anything. It stays on this device.")  # the page is complete
    assert not by_testid(owner, "linked-collections")  # none on yet: nothing said

    click(owner, linked_row)
    chooser = await dialog(owner, "Documents for this chat")
    boxes = choices(owner, chooser)
    assert set(boxes) == {"Manuals", "Recipes"} and not any(b.value for b in boxes.values())
    boxes["Manuals"].value = True
    click(owner, find_testid(owner, "collections-save", within=chooser))
    await wait_for(owner, lambda: by_testid(owner, "linked-names"), "the collections on")
    assert find_testid(owner, "linked-names", ui.label).text == "Answers use: Manuals"
    assert [c.id for c in await knowledge.knowledge.linked(conversation_id=conversation.id)] == [manuals.id]

    click(owner, find_testid(owner, "linked-names"))  # the line itself opens the choice again
    chooser = await dialog(owner, "Documents for this chat")
    boxes = choices(owner, chooser)
    assert boxes["Manuals"].value and not boxes["Recipes"].value
    boxes["Manuals"].value = False
    click(owner, find_testid(owner, "collections-save", within=chooser))
    await wait_for(owner, lambda: not by_testid(owner, "linked-names"), "no collection on")
    assert await knowledge.knowledge.linked(conversation_id=conversation.id) == []


async def test_a_projects_collections_are_on_in_its_chats(owner: User, knowledge: Services) -> None:
    manuals = await knowledge.knowledge.create_collection("Manuals")
    recipes = await knowledge.knowledge.create_collection("Recipes")
    project = await knowledge.projects.create("Kitchen", system_prompt="")
    await owner.open(f"/p/{project.id}")
    label = await shown(owner, "project-collections", ui.label)
    await wait_for(owner, lambda: label.text == "No documents are turned on for this project.", "the project's list")
    click(owner, find_testid(owner, "project-documents"))
    chooser = await dialog(owner, "Documents for this project")
    choices(owner, chooser)["Recipes"].value = True
    click(owner, find_testid(owner, "collections-save", within=chooser))
    await wait_for(owner, lambda: label.text == "Chats in this project answer from: Recipes", "the project's list")
    assert [c.id for c in await knowledge.knowledge.linked(project_id=project.id)] == [recipes.id]

    conversation = await knowledge.store.create(title="Soup", project_id=project.id)
    await owner.open(f"/c/{conversation.id}")
    assert (await shown(owner, "linked-names", ui.label)).text == "Answers use: Recipes"
    click(owner, find_testid(owner, "chat-documents"))
    chooser = await dialog(owner, "Documents for this chat")
    boxes = choices(owner, chooser)
    assert boxes["Recipes"].value and not boxes["Recipes"].enabled  # the project's: on, not turned off here
    boxes["Manuals"].value = True
    click(owner, find_testid(owner, "collections-save", within=chooser))
    await wait_for(owner, lambda: find_testid(owner, "linked-names", ui.label).text
                   in ("Answers use: Manuals, Recipes", "Answers use: Recipes, Manuals"), "both on")
    assert [c.id for c in await knowledge.knowledge.linked(conversation_id=conversation.id)] == [manuals.id]


async def test_a_new_chat_and_the_drawer_offer_the_choice_too(owner: User, knowledge: Services) -> None:
    """On a phone the header has no room for the button: a new chat offers it, and so does each
    conversation's menu in the drawer."""
    manuals = await knowledge.knowledge.create_collection("Manuals")
    await owner.open("/")
    click(owner, await shown(owner, "chat-documents-start", ui.button))
    chooser = await dialog(owner, "Documents for this chat")
    choices(owner, chooser)["Manuals"].value = True
    click(owner, find_testid(owner, "collections-save", within=chooser))
    assert (await shown(owner, "linked-names", ui.label)).text == "Answers use: Manuals"
    [conversation] = await knowledge.store.list_recent()  # the new chat was made to hold the choice
    assert [c.id for c in await knowledge.knowledge.linked(conversation_id=conversation.id)] == [manuals.id]

    other = await knowledge.store.create(title="Garden")
    await owner.open(f"/c/{conversation.id}")
    await sees(owner, "Garden")
    row_menu(owner, "Garden", "Documents…")
    chooser = await dialog(owner, "Documents for this chat")
    assert not choices(owner, chooser)["Manuals"].value
    choices(owner, chooser)["Manuals"].value = True
    click(owner, find_testid(owner, "collections-save", within=chooser))
    for _ in range(50):  # the dialog's answer is handled in the page's background
        if await knowledge.knowledge.linked(conversation_id=other.id):
            break
        await asyncio.sleep(0.05)
    assert [c.id for c in await knowledge.knowledge.linked(conversation_id=other.id)] == [manuals.id]


async def test_no_collections_yet_says_where_to_make_one(owner: User, knowledge: Services) -> None:
    conversation = await knowledge.store.create(title="Oven")
    await owner.open(f"/c/{conversation.id}")
    await sees(owner, "Ask anything. It stays on this device.")
    assert not by_testid(owner, "chat-documents-start")  # nothing to offer in a new chat
    click(owner, await shown(owner, "chat-documents", ui.button))
    chooser = await dialog(owner, "Documents for this chat")
    assert find_testid(owner, "no-collections", ui.label, within=chooser).text == "There are no collections yet."
    assert inside(owner, None, ui.link, "Make one on the Documents page")


# the paperclip ------------------------------------------------------------------------------------

async def test_an_attached_file_is_added_to_a_collection(owner: User, knowledge: Services) -> None:
    manuals = await knowledge.knowledge.create_collection("Manuals")
    await owner.open("/")
    await shown(owner, "attach-button")
    response = await owner.http_client.post("/api/attachments", params={"name": "oven.md"},
                                            content=b"# Oven\n\nPreheat to 180 degrees.", headers={"Origin": ORIGIN})
    assert response.status_code in (200, 201), response.text
    [file_input] = [e for e in inside(owner, None, ui.element) if e.props.get("testid") == "attach-input"]
    UserInteraction(owner, {file_input}, None).trigger("uploaded", {"name": "oven.md", "data": response.json()})
    add = await shown(owner, "add-to-collection", ui.button)

    click(owner, add)
    chooser = await dialog(owner, "Add to a collection")
    assert find_testid(owner, "target-collection", ui.select, within=chooser).value == manuals.id
    click(owner, find_testid(owner, "add-to-collection-ok", within=chooser))
    await notified(owner, "«oven.md» was added to «Manuals» and is being indexed.")
    assert [d.name for d in await knowledge.knowledge.documents(manuals.id)] == ["oven.md"]
    assert by_testid(owner, "pending-document")  # still attached to the message too

    click(owner, add)  # into a new collection, named there
    chooser = await dialog(owner, "Add to a collection")
    find_testid(owner, "target-collection", ui.select, within=chooser).value = ""
    find_testid(owner, "new-collection-name", ui.input, within=chooser).value = "Kitchen"
    click(owner, find_testid(owner, "add-to-collection-ok", within=chooser))
    await notified(owner, "«oven.md» was added to «Kitchen»")
    [kitchen] = [c for c in await knowledge.knowledge.collections() if c.name == "Kitchen"]
    assert [d.name for d in await knowledge.knowledge.documents(kitchen.id)] == ["oven.md"]

    click(owner, add)  # the same file again in the same collection: refused with why
    chooser = await dialog(owner, "Add to a collection")
    find_testid(owner, "target-collection", ui.select, within=chooser).value = manuals.id
    click(owner, find_testid(owner, "add-to-collection-ok", within=chooser))
    await notified(owner, "«oven.md» is already in this collection")
