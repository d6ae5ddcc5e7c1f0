"""Collections with the real embedding engine: indexing in the background, search, refusals that keep
nothing, cancelling, resuming after a stop, and answers that draw on the documents."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from backend.core.config import Settings
from backend.core.errors import AppError, ErrorCode
from backend.engines.llm import ChatRequest
from backend.knowledge.service import MEDIA_KIND
from backend.knowledge.store import Document
from backend.runtime.protocol import Event
from backend.services import Services
from tests.documentfiles import encrypted, pdf_bytes

pytestmark = pytest.mark.engine

QUICK = {"max_tokens": 4, "temperature": 0}
OVEN = """# Velox oven manual

## Warranty

The Velox X2 oven is covered against defects for twenty-seven months from the day of purchase.
Keep the receipt: the service centre asks for it.

## Cleaning

Wipe the door with warm water and a little vinegar; never use steel wool on the glass.
"""
TRIP = """# Rifugio Lago Nero

Il rifugio apre a giugno e chiude il 14 ottobre. La cena è servita alle 19:30.
Per arrivare si segue il sentiero 21 dal parcheggio di Malga Alta, circa due ore di cammino.
"""


def settings_for(data: Path, **changes: Any) -> Settings:
    return Settings(data_dir=data, token="t" * 20, context_length=2048, threads=1, **changes)


async def running(data: Path, **changes: Any) -> Services:
    built = Services.build(settings_for(data, **changes))
    await built.start()
    return built


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    built = await running(tmp_path)
    try:
        yield built
    finally:
        await built.stop()


def body(data: bytes, piece: int = 65536) -> AsyncIterator[bytes]:
    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(data), piece):
            yield data[i:i + piece]
    return pieces()


async def add(services: Services, collection_id: str, name: str, data: bytes) -> Document:
    return await services.knowledge.add_document(collection_id, name, body(data))


async def ready(services: Services, *documents: Document) -> list[Document]:
    done = await services.knowledge.wait([d.id for d in documents], within=120)
    assert all(not d.pending for d in done), [(d.name, d.state) for d in done]
    return done


def stored_documents(services: Services) -> list[str]:
    return services.media.files(MEDIA_KIND) + services.media.files(MEDIA_KIND, partial=True)


async def test_documents_are_indexed_in_the_background_and_found_by_words_and_meaning(services: Services) -> None:
    manuals = await services.knowledge.create_collection("Manuals")
    pdf = pdf_bytes([["Cover page of the booklet."], ["The boiler pressure must stay between 1 and 1.5 bar."]])
    oven, booklet, trip = [await add(services, manuals.id, n, d) for n, d in
                           [("oven.md", OVEN.encode()), ("boiler.pdf", pdf), ("rifugio.txt", TRIP.encode())]]
    assert oven.state == "queued"
    done = {d.name: d for d in await ready(services, oven, booklet, trip)}
    assert {d.state for d in done.values()} == {"ready"}
    assert done["oven.md"].passages >= 2 and done["oven.md"].embedded == done["oven.md"].passages
    assert done["boiler.pdf"].pages == 2 and done["oven.md"].kind == "markdown"

    # meaning: no word of the question but "oven" is in the passage
    result = await services.knowledge.search([manuals.id], "How long is the oven guaranteed after I buy it?", k=3)
    top = result.hits[0]
    assert top.document_name == "oven.md" and "twenty-seven months" in top.passage.text
    assert top.passage.heading.endswith("Warranty") and set(top.ranks) <= {"words", "vector"}
    vector_only = await services.knowledge.search([manuals.id], "guarantee period after purchase", k=1,
                                                  mode="vector")
    assert vector_only.hits[0].document_name == "oven.md" and vector_only.hits[0].ranks == {"vector": 1}
    words_only = await services.knowledge.search([manuals.id], "boiler pressure", k=1, mode="words")
    assert words_only.hits[0].passage.page == 2 and words_only.hits[0].ranks == {"words": 1}
    accents = await services.knowledge.search([manuals.id], "quando chiude il rifugio", k=1, mode="words")
    assert accents.hits[0].document_name == "rifugio.txt"

    [listed] = await services.knowledge.collections()
    assert (listed.documents, listed.ready, listed.embedder) == (3, 3, "all-minilm-l6-v2")


async def test_refusals_keep_nothing(services: Services, tmp_path: Path) -> None:
    c = await services.knowledge.create_collection("Refusals")
    with pytest.raises(AppError) as caught:
        await add(services, c.id, "photo.png", b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    assert caught.value.code == ErrorCode.UNSUPPORTED_CONTENT and "«photo.png»" in caught.value.message
    with pytest.raises(AppError) as caught:
        await add(services, c.id, "empty.txt", b"")
    assert caught.value.code == ErrorCode.EMPTY_DOCUMENT
    first = await add(services, c.id, "oven.md", OVEN.encode())
    with pytest.raises(AppError) as caught:
        await add(services, c.id, "copy of oven.md", OVEN.encode())
    assert caught.value.code == ErrorCode.CONFLICT and "«oven.md»" in caught.value.message
    with pytest.raises(AppError) as caught:
        await add(services, "no-such-collection", "a.md", b"text")
    assert caught.value.code == ErrorCode.NOT_FOUND
    await ready(services, first)
    assert len(stored_documents(services)) == 1


async def test_a_document_over_the_size_limit_is_refused_while_it_arrives(tmp_path: Path) -> None:
    services = await running(tmp_path, max_document_mb=1)
    try:
        c = await services.knowledge.create_collection("Big")
        with pytest.raises(AppError) as caught:
            await add(services, c.id, "huge.txt", b"word " * 300_000)
        assert caught.value.code == ErrorCode.DOCUMENT_TOO_LARGE and "1 MB" in caught.value.message
        assert stored_documents(services) == [] and await services.knowledge.documents(c.id) == []
    finally:
        await services.stop()


async def test_unreadable_documents_fail_with_a_sentence_and_are_never_searchable(services: Services) -> None:
    c = await services.knowledge.create_collection("Bad")
    locked = await add(services, c.id, "locked.pdf", encrypted(pdf_bytes([["secret plans"]]), "pw"))
    binary = await add(services, c.id, "data.txt", bytes(range(256)) * 40)
    good = await add(services, c.id, "oven.md", OVEN.encode())
    done = {d.name: d for d in await ready(services, locked, binary, good)}
    assert done["locked.pdf"].state == "failed" and done["locked.pdf"].error_code == ErrorCode.ENCRYPTED_PDF
    assert "«locked.pdf»" in (done["locked.pdf"].error or "")
    assert done["data.txt"].state == "failed" and done["data.txt"].passages == 0
    assert done["oven.md"].state == "ready"
    result = await services.knowledge.search([c.id], "secret plans", k=5)
    assert all(h.document_name == "oven.md" for h in result.hits)


def long_text(paragraphs: int) -> bytes:
    return "\n\n".join(f"Section {i}. The lighthouse keeper number {i} logs the weather, the tides and the ships "
                       f"that pass the cape every evening, with notes on the wind and the colour of the sea. " * 4
                       for i in range(paragraphs)).encode()


async def until(check: Any, within: float = 60) -> None:
    async with asyncio.timeout(within):
        while not await check():
            await asyncio.sleep(0.02)


async def test_cancel_stops_between_batches_and_index_again_finishes(services: Services) -> None:
    c = await services.knowledge.create_collection("Long")
    doc = await add(services, c.id, "log.txt", long_text(120))

    async def started() -> bool:
        return (await services.knowledge.document(doc.id)).embedded > 0
    await until(started)
    cancelled = await services.knowledge.cancel(doc.id)
    assert cancelled.state == "cancelled" and cancelled.passages == 0 and cancelled.embedded == 0
    assert (await services.knowledge.search([c.id], "lighthouse keeper", k=3)).hits == []
    again = await services.knowledge.reindex(doc.id)
    assert again.state == "queued"
    [done] = await ready(services, again)
    assert done.state == "ready" and done.embedded == done.passages > 64


async def test_a_stop_while_indexing_resumes_where_it_was(tmp_path: Path) -> None:
    services = await running(tmp_path)
    c = await services.knowledge.create_collection("Resume")
    doc = await add(services, c.id, "log.txt", long_text(150))
    try:
        async def halfway() -> bool:
            return (await services.knowledge.document(doc.id)).embedded >= 64
        await until(halfway)
    finally:
        await services.stop()
    stopped = await _document_offline(tmp_path, doc.id)
    assert stopped.state == "indexing" and 64 <= stopped.embedded < stopped.passages
    again = await running(tmp_path)
    try:
        seen: list[int] = []
        original = again.embeddings.stream

        def counting(request: Any, job: Any, **kw: Any) -> AsyncGenerator[Event, None]:
            seen.append(len(request.texts))
            return original(request, job, **kw)
        again.embeddings.stream = counting  # type: ignore[method-assign]
        [done] = await ready(again, stopped)
        assert done.state == "ready" and done.embedded == done.passages
        assert sum(seen) == stopped.passages - stopped.embedded  # nothing embedded twice
        assert (await again.knowledge.search([c.id], "lighthouse tides", k=1)).hits
    finally:
        await again.stop()


async def _document_offline(data: Path, document_id: str) -> Document:
    from backend.knowledge.store import KnowledgeStore
    from backend.storage.db import Database
    db = Database(data / "gridless.db")
    await db.open()
    try:
        found = await KnowledgeStore(db).get_document(document_id)
        assert found is not None
        return found
    finally:
        await db.close()


async def test_deleting_a_document_while_it_is_indexed(services: Services) -> None:
    c = await services.knowledge.create_collection("Delete")
    doc = await add(services, c.id, "log.txt", long_text(120))

    async def started() -> bool:
        return (await services.knowledge.document(doc.id)).embedded > 0
    await until(started)
    await services.knowledge.delete_document(doc.id)
    with pytest.raises(AppError):
        await services.knowledge.document(doc.id)
    assert stored_documents(services) == []
    await asyncio.sleep(0.5)
    row = await services.db.fetch_one("SELECT count(*) FROM passages")
    assert row is not None and row[0] == 0
    other = await add(services, c.id, "oven.md", OVEN.encode())
    assert [d.state for d in await ready(services, other)] == ["ready"]


@pytest.fixture
def requests(services: Services, monkeypatch: pytest.MonkeyPatch) -> list[ChatRequest]:
    seen: list[ChatRequest] = []
    original = services.chat.stream

    def spy(request: ChatRequest, job: Any, **kw: Any) -> AsyncGenerator[Event, None]:
        seen.append(request)
        return original(request, job, **kw)
    monkeypatch.setattr(services.chat, "stream", spy)
    return seen


async def answer(services: Services, conversation_id: str, text: str, ids: list[str] | None = None) -> str:
    reply = await services.conversations.send(conversation_id, text, ids or [])
    await asyncio.wait_for(reply.finished.wait(), 180)
    assert reply.status == "done", (reply.error, reply.stats)
    return reply.message_id


async def test_an_answer_in_a_conversation_with_a_collection_cites_its_passages(
        services: Services, requests: list[ChatRequest]) -> None:
    c = await services.knowledge.create_collection("Manuals")
    await ready(services, await add(services, c.id, "oven.md", OVEN.encode()),
                await add(services, c.id, "rifugio.txt", TRIP.encode()))
    conv = await services.store.create(settings=QUICK)
    plain = await answer(services, conv.id, "How long is the oven guaranteed?")
    assert (await services.store.get_message(plain)).sources == []  # type: ignore[union-attr]
    await services.knowledge.link([c.id], conversation_id=conv.id)

    message_id = await answer(services, conv.id, "How long is the oven guaranteed?")
    message = await services.store.get_message(message_id)
    assert message is not None
    first = message.sources[0]
    assert first["n"] == 1 and first["document"] == "oven.md" and first["collection_id"] == c.id
    assert (await services.knowledge.passage_view(first["passage_id"]))[0].name == "oven.md"
    last_turn = requests[-1].messages[-1]
    assert last_turn["role"] == "user" and last_turn["content"].startswith("Passages from the person's documents")
    assert "[1] (oven.md, Velox oven manual › Warranty)" in last_turn["content"]
    assert last_turn["content"].endswith("Question: How long is the oven guaranteed?")
    # the earlier question is read as it was asked: passages go with the latest question only
    assert requests[-1].messages[0] == {"role": "user", "content": "How long is the oven guaranteed?"}

    project = await services.projects.create(name="Home")
    in_project = await services.conversations.create(project_id=project.id)
    await services.store.update(in_project.id, settings=QUICK)
    await services.knowledge.link([c.id], project_id=project.id)
    message_id = await answer(services, in_project.id, "When does the rifugio close?")
    sourced = await services.store.get_message(message_id)
    assert sourced is not None and sourced.sources[0]["document"] == "rifugio.txt"


async def test_search_documents_tool_reads_passages_of_the_linked_collections(services: Services) -> None:
    c = await services.knowledge.create_collection("Manuals")
    other = await services.knowledge.create_collection("Trips")
    await ready(services, await add(services, c.id, "oven.md", OVEN.encode()),
                await add(services, other.id, "rifugio.txt", TRIP.encode()))
    conv = await services.store.create()
    await services.knowledge.link([c.id], conversation_id=conv.id)
    tools = await services.conversations._tools_for(conv)
    outcome = await tools.call("search_documents", {"query": "oven warranty", "limit": 2})
    assert outcome.ok and outcome.text.startswith("- From «oven.md»") and "rifugio" not in outcome.text
    everything = await (await services.conversations._tools_for(await services.store.create())).call(
        "search_documents", {"query": "rifugio Lago Nero", "limit": 1})
    assert everything.ok and "«rifugio.txt»" in everything.text


async def test_a_document_too_long_for_the_context_is_indexed_and_answered_from(
        services: Services, requests: list[ChatRequest]) -> None:
    text = long_text(120).decode() + "\n\nThe spare key of the lighthouse is hidden under the third blue stone."
    attachment = await services.attachments.accept(body(text.encode()), name="keeper.txt", uploader="owner")
    conv = await services.store.create(settings={**QUICK, "context_length": 1024})
    await answer(services, conv.id, "Where is the spare key of the lighthouse hidden?", [attachment.id])
    [sent] = (await services.attachments.store.for_conversation(conv.id)).values()
    assert sent[0].sent_notice is not None and "indexed" in sent[0].sent_notice
    prompt = requests[-1].messages[-1]["content"]
    assert "third blue stone" in prompt and len(prompt) < len(text)
    hidden = await services.knowledge.store.hidden_collection(conv.id)
    assert hidden is not None and hidden.id not in [c.id for c in await services.knowledge.collections()]
    await services.conversations.delete(conv.id)
    assert await services.knowledge.store.hidden_collection(conv.id) is None
    assert stored_documents(services) == []
