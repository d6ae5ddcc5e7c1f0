"""The Documents pages, a passage opened from a citation, and collections chosen for a chat or a project.

The indexer is stopped in these tests: a document's state is set here as the indexer would leave
it, so each state can be looked at, and no embedding model is started. Search therefore finds
passages by their words (a collection whose documents have no vectors has no embedding model).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nicegui import ui
from nicegui.testing import User
from nicegui.testing.user_interaction import UserInteraction

from backend.knowledge.chunking import Chunk
from backend.knowledge.store import Collection, Document
from backend.services import Services

from ...documentfiles import REPORT_PAGES, pdf_bytes
from ..conftest import ORIGIN
from ..finders import arrived, by_testid, click, dialog, find_testid, inside, no_dialog, press, sees, shown, wait_for


@pytest.fixture
def shared_folder(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The phone's folder of documents, set before the app starts (asked for before `owner`)."""
    folder = tmp_path / "Documents"
    folder.mkdir()
    monkeypatch.setenv("GRIDLESS_SHARED_FOLDER", str(folder))
    yield folder


@pytest.fixture
async def knowledge(services: Services) -> AsyncIterator[Services]:
    """The services with the indexer stopped: documents stay as the test leaves them."""
    await services.knowledge.indexer.stop()
    yield services


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def add(services: Services, collection: Collection, name: str, data: bytes | None = None) -> Document:
    return await services.knowledge.add_document(collection.id, name, _one(data or f"Notes of {name}".encode()))


async def read(services: Services, document: Document, passages: list[tuple[str, str, int | None]], *,
               kind: str = "markdown", pages: int | None = None, ready: bool = True) -> None:
    """Leave the document as the indexer does once it has read it (and, with `ready`, embedded it)."""
    collection = await services.knowledge.collection(document.collection_id)
    chunks = [Chunk(text=text, heading=heading, page=page, ordinal=i) for i, (text, heading, page)
              in enumerate(passages)]
    await services.knowledge.store.replace_passages(document, collection, chunks, kind=kind, title=None,
                                                    pages=pages, notice=None)
    if ready:
        await services.knowledge.store.set_state(document.id, "ready")


async def set_embedded(services: Services, document: Document, embedded: int) -> None:
    await services.knowledge.store.db.execute("UPDATE documents SET embedded = ? WHERE id = ?",
                                              (embedded, document.id))


def changed(services: Services) -> None:
    """What the indexer does after each step: pages following the version draw again."""
    services.knowledge.version += 1


def card(user: User, document: Document) -> ui.card:
    [found] = [c for c in by_testid(user, "document", ui.card) if c.props.get("data-document-id") == document.id]
    return found


def state_of(user: User, document: Document) -> str:
    return find_testid(user, "document-state", ui.label, within=card(user, document)).text


def names_shown(user: User, testid: str) -> list[str]:
    return [str(getattr(e, "text", "")) for e in by_testid(user, testid, ui.element)]


def report_passages() -> list[tuple[str, str, int | None]]:
    return [(" ".join(lines), "Quarterly report", page) for page, lines in enumerate(REPORT_PAGES, 1)]


# the list of collections ------------------------------------------------------------------------------

async def test_a_collection_is_made_from_the_empty_list(owner: User, knowledge: Services) -> None:
    await owner.open("/knowledge")
    assert "No collections yet" in (await shown(owner, "collections-empty", ui.label)).text
    click(owner, find_testid(owner, "new-collection"))
    await dialog(owner, "New collection")
    find_testid(owner, "collection-name-input", ui.input).value = "  Manuals  "
    left = owner.client
    click(owner, find_testid(owner, "collection-name-ok"))
    [made] = await _collections_once_made(knowledge)
    assert made.name == "Manuals"
    await arrived(owner, f"/knowledge/{made.id}", left)
    assert (await shown(owner, "collection-title", ui.label)).text == "Manuals"
    assert "No documents yet" in (await shown(owner, "documents-empty", ui.label)).text


async def _collections_once_made(services: Services) -> list[Collection]:
    for _ in range(50):
        if found := await services.knowledge.collections():
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("no collection was made")


async def test_collections_are_listed_newest_first_with_their_counts(owner: User, knowledge: Services) -> None:
    manuals = await knowledge.knowledge.create_collection("Manuals")
    for name, passages in (("oven.md", 2), ("fridge.md", 1)):
        await read(knowledge, await add(knowledge, manuals, name), [(f"text {i}", "", None) for i in range(passages)])
    await add(knowledge, manuals, "kettle.md")  # still waiting: neither ready nor counted in the passages
    await knowledge.knowledge.create_collection("Recipes")
    await owner.open("/knowledge")
    await wait_for(owner, lambda: len(names_shown(owner, "collection-item-name")) == 2, "two collections")
    assert names_shown(owner, "collection-item-name") == ["Recipes", "Manuals"]
    assert names_shown(owner, "collection-counts") == ["No documents yet", "2 of 3 documents ready · 3 passages"]


async def test_a_collection_is_renamed_and_deleted_from_the_list_after_asking(owner: User, knowledge: Services) -> None:
    kept = await knowledge.knowledge.create_collection("Recipes")
    doomed = await knowledge.knowledge.create_collection("Old manuals")
    await owner.open("/knowledge")
    await sees(owner, "Old manuals")

    menu_entry(owner, "Old manuals", "Rename")
    await dialog(owner, "Rename collection")
    find_testid(owner, "collection-name-input", ui.input).value = "Manuals"
    click(owner, find_testid(owner, "collection-name-ok"))
    await wait_for(owner, lambda: names_shown(owner, "collection-item-name") == ["Manuals", "Recipes"], "the new name")
    assert (await knowledge.knowledge.collection(doomed.id)).name == "Manuals"

    menu_entry(owner, "Manuals", "Delete")
    press(owner, await dialog(owner, "Delete the collection «Manuals»?"), "Cancel")
    await no_dialog(owner, "Delete the collection")
    assert [c.id for c in await knowledge.knowledge.collections()] == [doomed.id, kept.id]
    menu_entry(owner, "Manuals", "Delete")
    click(owner, find_testid(owner, "confirm-ok", within=await dialog(owner, "Delete the collection «Manuals»?")))
    await wait_for(owner, lambda: names_shown(owner, "collection-item-name") == ["Recipes"], "the collection gone")
    assert [c.id for c in await knowledge.knowledge.collections()] == [kept.id]


def menu_entry(user: User, name: str, action: str) -> None:
    """Tap the ⋮ beside the collection named `name`, then `action` in its menu."""
    [item] = [i for i in by_testid(user, "collection-item", ui.item) if inside(user, i, ui.item_label, name)]
    row = item.parent_slot.parent  # type: ignore[union-attr]
    more = find_testid(user, "collection-more", ui.button, within=row)
    [entry] = [e for section in inside(user, row, ui.item_section, action) for e in section.ancestors()
               if isinstance(e, ui.menu_item)]
    click(user, more)
    click(user, entry)


async def test_an_unknown_collection_shows_the_not_found_page(owner: User, knowledge: Services) -> None:
    await owner.open("/knowledge/0123456789abcdef0123456789abcdef")
    await sees(owner, "This collection does not exist. It may have been deleted.")
    assert find_testid(owner, "conversation-title", ui.label).text == "Not found"


# a collection's documents -----------------------------------------------------------------------------

async def test_each_document_says_its_state_in_words(owner: User, knowledge: Services) -> None:
    manuals = await knowledge.knowledge.create_collection("Manuals")
    waiting = await add(knowledge, manuals, "waiting.md")
    reading = await add(knowledge, manuals, "reading.md")
    await knowledge.knowledge.store.set_state(reading.id, "reading")
    indexing = await add(knowledge, manuals, "indexing.pdf")
    await read(knowledge, indexing, [(f"page text {i}", "", 1 + i // 4) for i in range(40)], kind="pdf", pages=10,
               ready=False)
    await set_embedded(knowledge, indexing, 12)
    ready = await add(knowledge, manuals, "ready.pdf")
    await read(knowledge, ready, [(f"text {i}", "", i + 1) for i in range(40)], kind="pdf", pages=12)
    one = await add(knowledge, manuals, "one.md")
    await read(knowledge, one, [("the only passage", "", None)])
    failed = await add(knowledge, manuals, "scan.pdf")
    await knowledge.knowledge.store.set_state(failed.id, "failed", error_code="no_text",
                                              error="«scan.pdf» has no text to index.")
    cancelled = await add(knowledge, manuals, "cancelled.md")
    await knowledge.knowledge.store.set_state(cancelled.id, "cancelled")

    await owner.open(f"/knowledge/{manuals.id}")
    await wait_for(owner, lambda: len(by_testid(owner, "document", ui.card)) == 7, "seven documents")
    shown_names = [find_testid(owner, "document-name", ui.label, within=c).text
                   for c in by_testid(owner, "document", ui.card)]
    assert shown_names == ["cancelled.md", "scan.pdf", "one.md", "ready.pdf", "indexing.pdf", "reading.md",
                           "waiting.md"]  # newest first
    assert state_of(owner, waiting) == "Waiting"
    assert state_of(owner, reading) == "Reading…"
    assert state_of(owner, indexing) == "Indexing 12 of 40"
    assert find_testid(owner, "document-progress", ui.linear_progress, within=card(owner, indexing)).value == 0.3
    assert state_of(owner, ready) == "Ready · 40 passages · 12 pages"
    assert state_of(owner, one) == "Ready · 1 passage"
    assert state_of(owner, failed) == "Failed: «scan.pdf» has no text to index."
    assert state_of(owner, cancelled) == "Cancelled"
    for document in (waiting, reading, indexing):  # pending: it can be stopped, not indexed again
        assert by_testid(owner, "document-cancel", within=card(owner, document))
        assert not by_testid(owner, "document-reindex", within=card(owner, document))
    for document in (failed, cancelled):
        assert by_testid(owner, "document-reindex", within=card(owner, document))
        assert not by_testid(owner, "document-cancel", within=card(owner, document))
    assert not by_testid(owner, "document-reindex", within=card(owner, ready))
    assert not by_testid(owner, "document-progress", within=card(owner, ready))


async def test_the_states_follow_the_indexer_while_the_page_is_open(owner: User, knowledge: Services) -> None:
    manuals = await knowledge.knowledge.create_collection("Manuals")
    document = await add(knowledge, manuals, "guide.pdf")
    await owner.open(f"/knowledge/{manuals.id}")
    await wait_for(owner, lambda: by_testid(owner, "document", ui.card), "the document")
    assert state_of(owner, document) == "Waiting"

    await read(knowledge, document, [(f"text {i}", "", i + 1) for i in range(40)], kind="pdf", pages=40, ready=False)
    await set_embedded(knowledge, document, 12)
    changed(knowledge)
    await wait_for(owner, lambda: state_of(owner, document) == "Indexing 12 of 40", "indexing to be shown")
    await knowledge.knowledge.store.set_state(document.id, "ready")
    await set_embedded(knowledge, document, 40)
    changed(knowledge)
    await wait_for(owner, lambda: state_of(owner, document) == "Ready · 40 passages · 40 pages", "ready to be shown")


async def test_a_document_is_stopped_indexed_again_and_deleted(owner: User, knowledge: Services) -> None:
    manuals = await knowledge.knowledge.create_collection("Manuals")
    document = await add(knowledge, manuals, "guide.md")
    await owner.open(f"/knowledge/{manuals.id}")
    await wait_for(owner, lambda: by_testid(owner, "document", ui.card), "the document")

    click(owner, find_testid(owner, "document-cancel", within=card(owner, document)))
    await wait_for(owner, lambda: state_of(owner, document) == "Cancelled", "the document stopped")
    assert (await knowledge.knowledge.document(document.id)).state == "cancelled"
    click(owner, find_testid(owner, "document-reindex", within=card(owner, document)))
    await wait_for(owner, lambda: state_of(owner, document) == "Waiting", "the document queued again")
    assert (await knowledge.knowledge.document(document.id)).state == "queued"

    click(owner, find_testid(owner, "document-delete", within=card(owner, document)))
    click(owner, find_testid(owner, "confirm-ok", within=await dialog(owner, "Delete «guide.md»?")))
    await shown(owner, "documents-empty", ui.label)
    assert await knowledge.knowledge.documents(manuals.id) == []


async def test_uploaded_documents_appear_and_each_refused_file_says_why(owner: User, knowledge: Services) -> None:
    """The files go to the upload route from the browser; the page hears of each through the
    uploader's events, given here with what the route really answered."""
    manuals = await knowledge.knowledge.create_collection("Manuals")
    await owner.open(f"/knowledge/{manuals.id}")
    await shown(owner, "documents-empty", ui.label)
    [uploader] = [e for e in inside(owner, None, ui.element) if e.props.get("testid") == "document-files"]

    async def post(name: str, data: bytes) -> dict[str, object]:
        response = await owner.http_client.post(f"/api/collections/{manuals.id}/documents", params={"name": name},
                                                content=data, headers={"Origin": ORIGIN})
        answer: dict[str, object] = response.json()
        return answer

    sent = await post("report.pdf", pdf_bytes(REPORT_PAGES))
    uploader_events(owner, uploader).trigger("uploaded", {"name": "report.pdf", "data": sent})
    await wait_for(owner, lambda: by_testid(owner, "document", ui.card), "the uploaded document")
    assert find_testid(owner, "document-name", ui.label).text == "report.pdf"

    for name, data in (("report-copy.pdf", pdf_bytes(REPORT_PAGES)), ("tool.exe", b"MZ\x90\x00")):
        refused = await post(name, data)
        uploader_events(owner, uploader).trigger("failed", {"name": name, "error": refused["error"]})
    uploader_events(owner, uploader).trigger("failed", {"name": "big.pdf", "error": {
        "code": "connection_lost", "message": "The connection was lost while the file was being sent."}})
    await wait_for(owner, lambda: len(by_testid(owner, "upload-problem")) == 3, "three refusals")
    messages = [e.text for e in by_testid(owner, "upload-problem-message", ui.label)]
    assert messages[0] == "«report-copy.pdf» is already in this collection (as «report.pdf»)."
    assert messages[1].startswith("«tool.exe» is not a kind of document collections can hold")
    assert messages[2] == "The connection was lost while the file was being sent."
    assert [d.name for d in await knowledge.knowledge.documents(manuals.id)] == ["report.pdf"]
    click(owner, find_testid(owner, "upload-problems-dismiss"))
    await wait_for(owner, lambda: not by_testid(owner, "upload-problem"), "the refusals dismissed")


def uploader_events(user: User, element: ui.element) -> UserInteraction[ui.element]:
    """What the uploader in the browser tells the page about each file."""
    return UserInteraction(user, {element}, None)


async def test_documents_are_added_from_the_phones_folder(shared_folder: Path, owner: User,
                                                           knowledge: Services) -> None:
    (shared_folder / "minutes.md").write_text("# Minutes\n\nWe agreed on the budget.", encoding="utf-8")
    (shared_folder / "photo.jpg").write_bytes(b"\xff\xd8\xff")  # not a document: not offered
    manuals = await knowledge.knowledge.create_collection("Manuals")
    await owner.open(f"/knowledge/{manuals.id}")
    await shown(owner, "shared-folder", ui.expansion)
    [item] = by_testid(owner, "shared-file", ui.item)
    assert inside(owner, item, ui.item_label, "minutes.md")
    click(owner, find_testid(owner, "shared-add", within=item))
    await wait_for(owner, lambda: by_testid(owner, "document", ui.card), "the added document")
    [document] = await knowledge.knowledge.documents(manuals.id)
    assert document.name == "minutes.md"
    assert (shared_folder / "minutes.md").exists()  # a copy: the phone's file stays

    click(owner, find_testid(owner, "shared-add", within=item))  # the same file again is refused, with why
    await wait_for(owner, lambda: by_testid(owner, "upload-problem"), "the refusal")
    assert "already in this collection" in find_testid(owner, "upload-problem-message", ui.label).text


async def test_no_phone_folder_no_list(owner: User, knowledge: Services) -> None:
    manuals = await knowledge.knowledge.create_collection("Manuals")
    await owner.open(f"/knowledge/{manuals.id}")
    await shown(owner, "documents-empty", ui.label)
    assert not by_testid(owner, "shared-folder")


# search and passages ----------------------------------------------------------------------------------

async def test_search_shows_passages_with_their_place_and_opens_one(owner: User, knowledge: Services) -> None:
    manuals = await knowledge.knowledge.create_collection("Manuals")
    report = await add(knowledge, manuals, "report.pdf", pdf_bytes(REPORT_PAGES))
    await read(knowledge, report, report_passages(), kind="pdf", pages=4)
    notes = await add(knowledge, manuals, "notes.md")
    await read(knowledge, notes, [("Buy cherries at the market", "Shopping", None)])
    await owner.open(f"/knowledge/{manuals.id}")
    search = await shown(owner, "knowledge-search", ui.input)

    search.value = "cherries"
    click(owner, find_testid(owner, "knowledge-search-go"))
    await wait_for(owner, lambda: len(by_testid(owner, "search-result", ui.item)) == 2, "two passages found")
    sources = [e.text for e in by_testid(owner, "search-result-source", ui.label)]
    assert sorted(sources) == ["notes.md", "report.pdf · page 3"]
    texts = [e.text for e in by_testid(owner, "search-result-text", ui.label)]
    assert "Third page mentions cherries" in texts and "Buy cherries at the market" in texts
    assert sorted(e.text for e in by_testid(owner, "search-result-heading", ui.label)) == \
        ["Quarterly report", "Shopping"]
    assert all(e.text.startswith("Score 0.") for e in by_testid(owner, "search-result-score", ui.label))

    search.value = "zeppelins"
    click(owner, find_testid(owner, "knowledge-search-go"))
    assert (await shown(owner, "search-empty", ui.label)).text == "No passages match «zeppelins»."

    search.value = "cherries"
    click(owner, find_testid(owner, "knowledge-search-go"))
    await wait_for(owner, lambda: len(by_testid(owner, "search-result", ui.item)) == 2, "two passages found")
    [on_page_three] = [i for i in by_testid(owner, "search-result", ui.item)
                       if inside(owner, i, ui.label, "report.pdf · page 3")]
    passage_id = on_page_three.props["data-passage-id"]
    left = owner.client
    click(owner, on_page_three)
    await arrived(owner, f"/knowledge/passage/{passage_id}", left)
    current = await shown(owner, "passage-current", ui.column)
    assert find_testid(owner, "passage-page", ui.label, within=current).text == "page 3"
    assert find_testid(owner, "passage-text", ui.label, within=current).text == "Third page mentions cherries"


async def test_a_passage_is_shown_in_its_document_with_its_pages(owner: User, knowledge: Services) -> None:
    manuals = await knowledge.knowledge.create_collection("Manuals")
    report = await add(knowledge, manuals, "report.pdf", pdf_bytes(REPORT_PAGES))
    await read(knowledge, report, report_passages(), kind="pdf", pages=4)
    passages = await knowledge.knowledge.store.passages(report.id)
    await owner.open(f"/knowledge/passage/{passages[1].n}")
    current = await shown(owner, "passage-current", ui.column)
    assert str(current.props["data-passage-id"]) == str(passages[1].n)
    assert find_testid(owner, "passage-document", ui.label).text == "report.pdf"
    assert find_testid(owner, "passage-document-details", ui.label).text == "PDF · 4 pages"
    others = by_testid(owner, "passage", ui.column)
    assert [str(p.props["data-passage-id"]) for p in others] == [str(p.n) for p in (passages[0], *passages[2:])]
    pages = [e.text for e in by_testid(owner, "passage-page", ui.label)]
    assert pages == ["page 1", "page 2", "page 3", "page 4"]  # in order, around the chosen one
    back = find_testid(owner, "passage-back", ui.link)
    assert back.text == "Back to «Manuals»" and back.props["href"] == f"/knowledge/{manuals.id}"


async def test_a_gone_passage_shows_the_not_found_page(owner: User, knowledge: Services) -> None:
    manuals = await knowledge.knowledge.create_collection("Manuals")
    notes = await add(knowledge, manuals, "notes.md")
    await read(knowledge, notes, [("Buy cherries", "", None)])
    [passage] = await knowledge.knowledge.store.passages(notes.id)
    await knowledge.knowledge.delete_document(notes.id)
    for address in (f"/knowledge/passage/{passage.n}", "/knowledge/passage/not-a-number",
                    "/knowledge/passage/99999999999999999999999"):
        await owner.open(address)
        await sees(owner, "That passage is no longer there")
        assert find_testid(owner, "conversation-title", ui.label).text == "Not found"
