"""The knowledge store on a real database: collections, documents, passages, vectors and search."""

from __future__ import annotations

import numpy as np
import pytest

from backend.knowledge.chunking import Chunk
from backend.knowledge.store import Collection, Document, KnowledgeStore, sources_json, words_query
from backend.storage.conversations import ConversationStore
from backend.storage.db import Database

DIM = 8


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


async def indexed(store: KnowledgeStore, collection: Collection, name: str, texts: list[str], *,
                  seeds: list[int] | None = None, ready: bool = True) -> tuple[Document, Collection]:
    document = await store.add_document(collection.id, name=name, size=10, sha256=name, file=f"documents/{name}")
    chunks = [Chunk(text=t, heading="Intro" if i == 0 else "", page=i + 1, ordinal=i) for i, t in enumerate(texts)]
    await store.replace_passages(document, collection, chunks, kind="text", title=None, pages=len(texts), notice=None)
    collection = await store.use_embedder(collection, "minilm", DIM)
    passages = await store.unembedded(document.id, 1000)
    await store.write_vectors(document.id, collection,
                              [(p.n, unit(s).tobytes()) for p, s in zip(passages, seeds or range(len(passages)),
                                                                         strict=True)])
    if ready:
        await store.set_state(document.id, "ready")
    found = await store.get_document(document.id)
    assert found is not None
    return found, collection


@pytest.fixture
async def store(db: Database) -> KnowledgeStore:
    return KnowledgeStore(db)


def test_words_query_quotes_words_and_joins_them_with_or() -> None:
    assert words_query('What is "the" warranty? NEAR(x) a*') == '"warranty" OR "near"'
    assert words_query("Perché è così?") == '"così"'
    assert words_query("Quando chiude il rifugio della valle?") == '"chiude" OR "rifugio" OR "valle"'
    assert words_query("what is it") == '"what" OR "is" OR "it"'  # nothing but function words: all of them
    assert words_query("?? !") is None
    assert words_query("year 7") == '"year" OR "7"'


async def test_collections_count_only_ready_documents(store: KnowledgeStore) -> None:
    c = await store.create_collection("Manuals", description="home")
    await indexed(store, c, "a.md", ["one", "two"])
    await indexed(store, c, "b.md", ["three"], seeds=[9], ready=False)
    [listed] = await store.list_collections()
    assert (listed.name, listed.documents, listed.ready, listed.passages) == ("Manuals", 2, 1, 2)
    assert listed.to_json()["embedding_model"] == "minilm"
    assert listed.dim == DIM


async def test_hidden_collections_are_not_listed_and_go_with_their_conversation(store: KnowledgeStore,
                                                                                db: Database) -> None:
    conversations = ConversationStore(db)
    conv = await conversations.create()
    hidden = await store.create_collection("attached", conversation_id=conv.id)
    await indexed(store, hidden, "long.pdf", ["text"])
    assert await store.list_collections() == []
    assert [c.id for c in await store.list_collections(hidden=True)] == [hidden.id]
    await conversations.delete(conv.id)
    assert await store.get_collection(hidden.id) is None
    assert await store.orphan_vector_tables() == [f"vectors_{hidden.n}"]
    await store.drop_tables(await store.orphan_vector_tables())
    assert await store.orphan_vector_tables() == []


async def test_words_find_only_ready_documents_of_the_collections_asked(store: KnowledgeStore) -> None:
    a = await store.create_collection("A")
    b = await store.create_collection("B")
    _ready, a = await indexed(store, a, "ready.md", ["the oven warranty lasts two years", "unrelated text"])
    await indexed(store, a, "busy.md", ["the oven warranty is printed on the box"], ready=False)
    await indexed(store, b, "other.md", ["warranty of the fridge"])
    found = await store.by_words([a.id], "oven warranty", 10)
    hits = await store.hits([(n, 1.0, {}) for n in found])
    assert [h.document_name for h in hits] == ["ready.md"]
    assert hits[0].passage.page == 1 and hits[0].passage.heading == "Intro"
    assert await store.by_words([a.id, b.id], "fridge", 10) != []
    assert await store.by_words([], "fridge", 10) == []


async def test_words_ignore_accents_and_case(store: KnowledgeStore) -> None:
    c = await store.create_collection("IT")
    await indexed(store, c, "it.md", ["Il rifugio chiude a metà ottobre, perché nevica."])
    assert len(await store.by_words([c.id], "META OTTOBRE", 5)) == 1


async def test_vectors_of_unready_documents_are_never_returned(store: KnowledgeStore) -> None:
    c = await store.create_collection("V")
    _ready, c = await indexed(store, c, "ready.md", ["a", "b", "c"], seeds=[1, 2, 3])
    await indexed(store, c, "busy.md", ["d"], seeds=[4], ready=False)
    nearest = await store.by_vector(c, unit(4).tobytes(), 2)
    assert len(nearest) == 2
    hits = await store.hits([(n, 0.0, {}) for n, _ in nearest])
    assert {h.document_name for h in hits} == {"ready.md"}
    exact = await store.by_vector(c, unit(2).tobytes(), 1)
    assert exact[0][1] == pytest.approx(0.0, abs=1e-5)
    assert (await store.hits([(exact[0][0], 0.0, {})]))[0].passage.text == "b"


async def test_deleting_a_document_removes_its_passages_words_and_vectors(store: KnowledgeStore,
                                                                          db: Database) -> None:
    c = await store.create_collection("D")
    doc, c = await indexed(store, c, "gone.md", ["zebra crossing", "zebra stripes"])
    assert await store.by_words([c.id], "zebra", 5)
    await store.delete_document(doc, c)
    assert await store.by_words([c.id], "zebra", 5) == []
    assert await store.by_vector(c, unit(0).tobytes(), 5) == []
    row = await db.fetch_one(f"SELECT count(*) FROM {c.vectors_table}")
    assert row is not None and row[0] == 0
    row = await db.fetch_one("SELECT count(*) FROM passages_fts WHERE passages_fts MATCH 'zebra'")
    assert row is not None and row[0] == 0


async def test_deleting_a_collection_drops_its_vector_table(store: KnowledgeStore, db: Database) -> None:
    c = await store.create_collection("X")
    _, c = await indexed(store, c, "x.md", ["x"])
    files = await store.delete_collection(c)
    assert files == ["documents/x.md"]
    assert await db.fetch_one("SELECT name FROM sqlite_master WHERE name = ?", (c.vectors_table,)) is None
    row = await db.fetch_one("SELECT count(*) FROM passages")
    assert row is not None and row[0] == 0


async def test_another_embedding_model_sends_documents_back_to_indexing(store: KnowledgeStore) -> None:
    c = await store.create_collection("M")
    doc, c = await indexed(store, c, "m.md", ["p", "q"])
    c = await store.use_embedder(c, "e5-small", 4)
    again = await store.get_document(doc.id)
    assert again is not None and (again.state, again.embedded, again.passages) == ("indexing", 0, 2)
    assert len(await store.unembedded(doc.id, 10)) == 2
    assert (c.embedder, c.dim) == ("e5-small", 4)


async def test_replacing_passages_starts_the_document_over(store: KnowledgeStore) -> None:
    c = await store.create_collection("R")
    doc, c = await indexed(store, c, "r.md", ["first reading"])
    await store.replace_passages(doc, c, [Chunk(text="second reading", heading="", page=None, ordinal=0),
                                          Chunk(text="more", heading="", page=None, ordinal=1)],
                                 kind="markdown", title="R", pages=None, notice="cut")
    again = await store.get_document(doc.id)
    assert again is not None
    assert (again.state, again.passages, again.embedded, again.kind, again.notice) == ("indexing", 2, 0, "markdown",
                                                                                     "cut")
    assert [p.text for p in await store.passages(doc.id)] == ["second reading", "more"]


async def test_links_of_conversations_and_projects(store: KnowledgeStore, db: Database) -> None:
    conv = await ConversationStore(db).create()
    a = await store.create_collection("A")
    b = await store.create_collection("B")
    await store.link([a.id, b.id], conversation_id=conv.id)
    assert set(await store.linked(conversation_id=conv.id)) == {a.id, b.id}
    await store.link([b.id], conversation_id=conv.id)
    assert await store.linked(conversation_id=conv.id) == [b.id]
    await store.delete_collection(b)
    assert await store.linked(conversation_id=conv.id) == []


def test_sources_are_numbered_from_one() -> None:
    from backend.knowledge.store import Hit, Passage
    hits = [Hit(passage=Passage(n=7, document_id="d", ordinal=0, heading="H", page=3, text="t"),
                document_name="a.pdf", collection_id="c", score=0.1)]
    assert sources_json(hits) == ('[{"n": 1, "passage_id": 7, "document_id": "d", "document": "a.pdf", '
                                  '"collection_id": "c", "page": 3, "heading": "H"}]')


async def test_words_ask_for_more_when_the_best_matches_are_in_other_collections(store: KnowledgeStore) -> None:
    crowded = await store.create_collection("Crowded")
    wanted = await store.create_collection("Wanted")
    await indexed(store, crowded, "zoo.md", ["zebra"] * 230, seeds=list(range(230)))
    # longer passages rank lower by bm25: these come after all 230 of the other collection
    await indexed(store, wanted, "far.md", ["a zebra among many other words of a long passage " * 5] * 3)
    found = await store.by_words([wanted.id], "zebra", 3)
    assert len(found) == 3
    hits = await store.hits([(n, 0.0, {}) for n in found])
    assert {h.document_name for h in hits} == {"far.md"}
