"""The SQL of collections, documents, passages and their vectors (see docs/knowledge.md).

Passages' words are in `passages_fts` (kept by triggers); their vectors are in one `sqlite-vec`
table per collection, `vectors_<n>`, made when the collection's first vector is written (its
dimension is the embedding model's) and dropped with the collection. Search only ever returns
passages of documents that are `ready`: a document being read, indexed, cancelled or failed is
never half-found.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import aiosqlite

from ..storage.db import Database
from .chunking import Chunk
from .stopwords import STOPWORDS

__all__ = ["ANY", "Collection", "Document", "DocumentState", "Hit", "KnowledgeStore", "Passage", "sources_json",
           "words_query"]

DocumentState = Literal["queued", "reading", "indexing", "ready", "failed", "cancelled"]
PENDING: tuple[DocumentState, ...] = ("queued", "reading", "indexing")
MAX_QUERY_TERMS = 32
MAX_KNN = 4096
"""sqlite-vec answers at most this many nearest neighbours in one query."""


def new_id() -> str:
    return uuid.uuid4().hex


def words_query(text: str) -> str | None:
    """A question as an FTS5 query: any of its words (two letters or more, function words such as
    "the" or "della" left out unless there is nothing else), each quoted so that FTS5's own syntax
    never reaches the index; bm25 ranks passages holding more and rarer words first. None when
    there is no word."""
    seen: dict[str, None] = {}
    for word in re.findall(r"\w+", text.lower()):
        if len(word) > 1 or word.isdigit():
            seen.setdefault(word, None)
    words = [w for w in seen if w not in STOPWORDS] or list(seen)
    words = words[:MAX_QUERY_TERMS]
    return " OR ".join(f'"{w}"' for w in words) if words else None


@dataclass(slots=True)
class Collection:
    n: int
    id: str
    name: str
    description: str
    project_id: str | None
    conversation_id: str | None
    """Set for a hidden collection made for a long document attached in that conversation."""
    embedder: str | None
    """The embedding model its vectors were made with; None until the first is written."""
    dim: int | None
    created_at: float
    updated_at: float
    documents: int = 0
    ready: int = 0
    passages: int = 0

    @property
    def vectors_table(self) -> str:
        return f"vectors_{int(self.n)}"

    @property
    def hidden(self) -> bool:
        return self.conversation_id is not None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description, "project_id": self.project_id,
                "embedding_model": self.embedder, "dimensions": self.dim, "documents": self.documents,
                "ready": self.ready, "passages": self.passages, "created_at": self.created_at,
                "updated_at": self.updated_at}


@dataclass(slots=True)
class Document:
    id: str
    collection_id: str
    name: str
    kind: str
    size: int
    sha256: str
    file: str
    state: DocumentState
    error_code: str | None
    error: str | None
    notice: str | None
    title: str | None
    pages: int | None
    passages: int
    embedded: int
    created_at: float
    updated_at: float

    @property
    def pending(self) -> bool:
        return self.state in PENDING

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "collection_id": self.collection_id, "name": self.name, "kind": self.kind,
                "size": self.size, "state": self.state, "error": ({"code": self.error_code, "message": self.error}
                                                                  if self.error_code else None),
                "notice": self.notice, "title": self.title, "pages": self.pages, "passages": self.passages,
                "embedded": self.embedded, "created_at": self.created_at, "updated_at": self.updated_at}


@dataclass(slots=True)
class Passage:
    n: int
    document_id: str
    ordinal: int
    heading: str
    page: int | None
    text: str


@dataclass(slots=True)
class Hit:
    """A passage found for a query, with where it comes from."""

    passage: Passage
    document_name: str
    collection_id: str
    score: float
    """The fused score (reciprocal rank fusion); higher is better."""
    ranks: dict[str, int] = field(default_factory=dict)
    """Its place (1-based) in each list it was found in: "words", "vector"."""

    def to_json(self) -> dict[str, Any]:
        p = self.passage
        return {"passage_id": p.n, "document_id": p.document_id, "document": self.document_name,
                "collection_id": self.collection_id, "page": p.page, "heading": p.heading, "text": p.text,
                "score": round(self.score, 6), "ranks": self.ranks}


_COLLECTION_COLUMNS = "c.n, c.id, c.name, c.description, c.project_id, c.conversation_id, c.embedder, c.dim, " \
                      "c.created_at, c.updated_at"
_DOCUMENT_COLUMNS = "id, collection_id, name, kind, size, sha256, file, state, error_code, error, notice, title, " \
                    "pages, passages, embedded, created_at, updated_at"


def _collection(row: aiosqlite.Row) -> Collection:
    keys = row.keys()
    counts = {k: int(row[k] or 0) for k in ("documents", "ready", "passages") if k in keys}
    return Collection(n=row["n"], id=row["id"], name=row["name"], description=row["description"],
                      project_id=row["project_id"], conversation_id=row["conversation_id"], embedder=row["embedder"],
                      dim=row["dim"], created_at=row["created_at"], updated_at=row["updated_at"], **counts)


def _document(row: aiosqlite.Row) -> Document:
    return Document(**{k: row[k] for k in row.keys()})


def _passage(row: aiosqlite.Row) -> Passage:
    return Passage(n=row["n"], document_id=row["document_id"], ordinal=row["ordinal"], heading=row["heading"],
                   page=row["page"], text=row["text"])


ANY = object()


class KnowledgeStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # collections ---------------------------------------------------------------------------

    async def create_collection(self, name: str, *, description: str = "", project_id: str | None = None,
                                conversation_id: str | None = None, embedder: str | None = None) -> Collection:
        """A new collection; `embedder` is the model its passages are to be embedded with (else the
        active one when the first are)."""
        now = time.time()
        cid = new_id()
        await self.db.execute(
            "INSERT INTO collections (id, name, description, project_id, conversation_id, embedder, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (cid, name, description, project_id, conversation_id, embedder, now, now))
        collection = await self.get_collection(cid)
        assert collection is not None
        return collection

    async def get_collection(self, collection_id: str) -> Collection | None:
        rows = await self._collections("c.id = ?", (collection_id,))
        return rows[0] if rows else None

    async def list_collections(self, *, project_id: Any = ANY, hidden: bool = False) -> list[Collection]:
        """Collections, newest first: the person's own (not those made for a long attachment, unless
        `hidden`), all of them or those of one project (`project_id`, None for none)."""
        where, params = ["c.conversation_id IS NULL" if not hidden else "1"], []
        if project_id is None:
            where.append("c.project_id IS NULL")
        elif project_id is not ANY:
            where.append("c.project_id = ?")
            params.append(project_id)
        return await self._collections(" AND ".join(where), params)

    async def _collections(self, where: str, params: Iterable[Any]) -> list[Collection]:
        rows = await self.db.fetch_all(
            f"SELECT {_COLLECTION_COLUMNS}, count(d.id) AS documents,"
            " coalesce(sum(d.state = 'ready'), 0) AS ready,"
            " coalesce(sum(CASE WHEN d.state = 'ready' THEN d.passages END), 0) AS passages"
            f" FROM collections c LEFT JOIN documents d ON d.collection_id = c.id WHERE {where}"
            " GROUP BY c.n ORDER BY c.created_at DESC, c.n DESC", params)
        return [_collection(r) for r in rows]

    async def hidden_collection(self, conversation_id: str) -> Collection | None:
        rows = await self._collections("c.conversation_id = ?", (conversation_id,))
        return rows[0] if rows else None

    async def update_collection(self, collection_id: str, *, name: str | None = None,
                                description: str | None = None, project_id: Any = ANY) -> None:
        sets: list[str] = ["updated_at = ?"]
        params: list[Any] = [time.time()]
        if name is not None:
            sets.append("name = ?")
            params.append(name)
        if description is not None:
            sets.append("description = ?")
            params.append(description)
        if project_id is not ANY:
            sets.append("project_id = ?")
            params.append(project_id)
        await self.db.execute(f"UPDATE collections SET {', '.join(sets)} WHERE id = ?", (*params, collection_id))

    async def delete_collection(self, collection: Collection) -> list[str]:
        """Delete a collection, its documents, passages and vectors; returns its documents' files."""
        async with self.db.transaction() as conn:
            files = [r[0] for r in await conn.execute_fetchall(
                "SELECT file FROM documents WHERE collection_id = ?", (collection.id,))]
            await conn.execute(f"DROP TABLE IF EXISTS {collection.vectors_table}")
            await conn.execute("DELETE FROM collections WHERE id = ?", (collection.id,))
        return files

    async def orphan_vector_tables(self) -> list[str]:
        """Vector tables whose collection is gone (deleted with its conversation by a cascade)."""
        rows = await self.db.fetch_all(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'vectors_[0-9]*'"
            " AND name NOT GLOB 'vectors_*_*'")
        known = {f"vectors_{r[0]}" for r in await self.db.fetch_all("SELECT n FROM collections")}
        return [r[0] for r in rows if r[0] not in known]

    async def drop_tables(self, names: Sequence[str]) -> None:
        async with self.db.transaction() as conn:
            for name in names:
                if re.fullmatch(r"vectors_\d+", name):
                    await conn.execute(f"DROP TABLE IF EXISTS {name}")

    async def use_embedder(self, collection: Collection, model_id: str, dim: int) -> Collection:
        """Make sure the collection's vectors are `model_id`'s: the first time, its table is made;
        with another model (or another dimension), the old vectors are dropped and every passage is
        to be embedded again (its documents go back to indexing)."""
        if collection.embedder == model_id and collection.dim == dim:
            await self.db.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {collection.vectors_table} USING "
                                  f"vec0(embedding float[{int(dim)}] distance_metric=cosine)")
            return collection
        async with self.db.transaction() as conn:
            await conn.execute(f"DROP TABLE IF EXISTS {collection.vectors_table}")
            await conn.execute(f"CREATE VIRTUAL TABLE {collection.vectors_table} USING "
                               f"vec0(embedding float[{int(dim)}] distance_metric=cosine)")
            await conn.execute("UPDATE collections SET embedder = ?, dim = ?, updated_at = ? WHERE id = ?",
                               (model_id, dim, time.time(), collection.id))
            await conn.execute("UPDATE passages SET embedded = 0 WHERE embedded = 1 AND document_id IN"
                               " (SELECT id FROM documents WHERE collection_id = ?)", (collection.id,))
            await conn.execute("UPDATE documents SET embedded = 0, state = 'indexing', updated_at = ?"
                               " WHERE collection_id = ? AND state IN ('ready', 'indexing')",
                               (time.time(), collection.id))
        collection.embedder, collection.dim = model_id, dim
        return collection

    # links to conversations and projects ----------------------------------------------------

    async def linked(self, *, conversation_id: str | None = None, project_id: str | None = None) -> list[str]:
        """The collections turned on for a conversation (its own, its project's and its hidden one)."""
        ids: list[str] = []
        if conversation_id:
            ids += [r[0] for r in await self.db.fetch_all(
                "SELECT collection_id FROM conversation_collections WHERE conversation_id = ?", (conversation_id,))]
        if project_id:
            ids += [r[0] for r in await self.db.fetch_all(
                "SELECT collection_id FROM project_collections WHERE project_id = ?", (project_id,))]
        return list(dict.fromkeys(ids))

    async def link(self, collection_ids: Sequence[str], *, conversation_id: str | None = None,
                   project_id: str | None = None) -> None:
        """Set the collections turned on for a conversation or a project (replacing the list)."""
        table, column, owner = (("conversation_collections", "conversation_id", conversation_id) if conversation_id
                                else ("project_collections", "project_id", project_id))
        async with self.db.transaction() as conn:
            await conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (owner,))
            await conn.executemany(f"INSERT OR IGNORE INTO {table} ({column}, collection_id) VALUES (?, ?)",
                                   [(owner, cid) for cid in collection_ids])

    # documents -----------------------------------------------------------------------------

    async def add_document(self, collection_id: str, *, name: str, size: int, sha256: str, file: str,
                           kind: str = "") -> Document:
        now = time.time()
        did = new_id()
        await self.db.execute(
            "INSERT INTO documents (id, collection_id, name, kind, size, sha256, file, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (did, collection_id, name, kind, size, sha256, file, now, now))
        await self._touch(collection_id)
        document = await self.get_document(did)
        assert document is not None
        return document

    async def _touch(self, collection_id: str) -> None:
        await self.db.execute("UPDATE collections SET updated_at = ? WHERE id = ?", (time.time(), collection_id))

    async def get_documents(self, document_ids: Sequence[str]) -> list[Document]:
        if not document_ids:
            return []
        marks = ",".join("?" * len(document_ids))
        rows = await self.db.fetch_all(f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE id IN ({marks})",
                                       list(document_ids))
        return [_document(r) for r in rows]

    async def get_document(self, document_id: str) -> Document | None:
        row = await self.db.fetch_one(f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE id = ?", (document_id,))
        return _document(row) if row else None

    async def documents(self, collection_id: str) -> list[Document]:
        rows = await self.db.fetch_all(f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE collection_id = ?"
                                       " ORDER BY created_at DESC, rowid DESC", (collection_id,))
        return [_document(r) for r in rows]

    async def pending(self) -> list[Document]:
        """Documents still to be read or indexed, oldest first."""
        rows = await self.db.fetch_all(f"SELECT {_DOCUMENT_COLUMNS} FROM documents"
                                       " WHERE state IN ('queued', 'reading', 'indexing') ORDER BY created_at, rowid")
        return [_document(r) for r in rows]

    async def find_same(self, collection_id: str, sha256: str) -> Document | None:
        row = await self.db.fetch_one(f"SELECT {_DOCUMENT_COLUMNS} FROM documents WHERE collection_id = ?"
                                      " AND sha256 = ? AND state != 'failed' LIMIT 1", (collection_id, sha256))
        return _document(row) if row else None

    async def set_state(self, document_id: str, state: DocumentState, *, error_code: str | None = None,
                        error: str | None = None) -> None:
        await self.db.execute("UPDATE documents SET state = ?, error_code = ?, error = ?, updated_at = ? WHERE id = ?",
                              (state, error_code, error, time.time(), document_id))

    async def replace_passages(self, document: Document, collection: Collection, chunks: Sequence[Chunk], *,
                               kind: str, title: str | None, pages: int | None, notice: str | None) -> None:
        """Put a document's passages in place (replacing any from an earlier reading) and mark it
        as being indexed, all at once."""
        now = time.time()
        async with self.db.transaction() as conn:
            await self._delete_passages(conn, document.id, collection)
            await conn.executemany(
                "INSERT INTO passages (document_id, ordinal, heading, page, text) VALUES (?, ?, ?, ?, ?)",
                [(document.id, c.ordinal, c.heading, c.page, c.text) for c in chunks])
            await conn.execute(
                "UPDATE documents SET state = 'indexing', kind = ?, title = ?, pages = ?, notice = ?, passages = ?,"
                " embedded = 0, error_code = NULL, error = NULL, updated_at = ? WHERE id = ?",
                (kind, title, pages, notice, len(chunks), now, document.id))

    async def _delete_passages(self, conn: aiosqlite.Connection, document_id: str, collection: Collection) -> None:
        if collection.dim is not None:
            await conn.execute(f"DELETE FROM {collection.vectors_table} WHERE rowid IN"
                               " (SELECT n FROM passages WHERE document_id = ?)", (document_id,))
        await conn.execute("DELETE FROM passages WHERE document_id = ?", (document_id,))

    async def clear_passages(self, document: Document, collection: Collection, state: DocumentState) -> None:
        """Remove a document's passages and vectors and leave it in `state` (cancelled, queued)."""
        async with self.db.transaction() as conn:
            await self._delete_passages(conn, document.id, collection)
            await conn.execute("UPDATE documents SET state = ?, passages = 0, embedded = 0, updated_at = ?"
                               " WHERE id = ?", (state, time.time(), document.id))

    async def unembedded(self, document_id: str, limit: int) -> list[Passage]:
        rows = await self.db.fetch_all(
            "SELECT n, document_id, ordinal, heading, page, text FROM passages"
            " WHERE document_id = ? AND embedded = 0 ORDER BY ordinal LIMIT ?", (document_id, limit))
        return [_passage(r) for r in rows]

    async def write_vectors(self, document_id: str, collection: Collection,
                            vectors: Sequence[tuple[int, bytes]]) -> int:
        """Store a batch of passages' vectors and mark them embedded; returns how many of the
        document's passages have vectors now."""
        async with self.db.transaction() as conn:
            # passages deleted meanwhile (their document was deleted or read again) get no vector
            marks = ",".join("?" * len(vectors))
            alive = {r[0] for r in await conn.execute_fetchall(
                f"SELECT n FROM passages WHERE embedded = 0 AND n IN ({marks})", [n for n, _ in vectors])}
            kept = [(n, v) for n, v in vectors if n in alive]
            await conn.executemany(f"INSERT INTO {collection.vectors_table} (rowid, embedding) VALUES (?, ?)", kept)
            await conn.executemany("UPDATE passages SET embedded = 1 WHERE n = ?", [(n,) for n, _ in kept])
            await conn.execute("UPDATE documents SET embedded = (SELECT count(*) FROM passages WHERE document_id = ?"
                               " AND embedded = 1), updated_at = ? WHERE id = ?",
                               (document_id, time.time(), document_id))
            row = await (await conn.execute("SELECT embedded FROM documents WHERE id = ?", (document_id,))).fetchone()
        return int(row[0]) if row else 0

    async def delete_document(self, document: Document, collection: Collection) -> None:
        async with self.db.transaction() as conn:
            await self._delete_passages(conn, document.id, collection)
            await conn.execute("DELETE FROM documents WHERE id = ?", (document.id,))
        await self._touch(collection.id)

    # reading passages ----------------------------------------------------------------------

    async def passages(self, document_id: str) -> list[Passage]:
        rows = await self.db.fetch_all("SELECT n, document_id, ordinal, heading, page, text FROM passages"
                                       " WHERE document_id = ? ORDER BY ordinal", (document_id,))
        return [_passage(r) for r in rows]

    async def passage(self, n: int) -> Passage | None:
        row = await self.db.fetch_one("SELECT n, document_id, ordinal, heading, page, text FROM passages WHERE n = ?",
                                      (n,))
        return _passage(row) if row else None

    async def hits(self, ranked: Sequence[tuple[int, float, dict[str, int]]]) -> list[Hit]:
        """The passages of (passage n, score, ranks), in that order, with their documents."""
        if not ranked:
            return []
        marks = ",".join("?" * len(ranked))
        rows = await self.db.fetch_all(
            "SELECT p.n, p.document_id, p.ordinal, p.heading, p.page, p.text, d.name AS document_name, d.collection_id"
            f" FROM passages p JOIN documents d ON d.id = p.document_id WHERE p.n IN ({marks})",
            [n for n, _, _ in ranked])
        found = {r["n"]: r for r in rows}
        return [Hit(passage=_passage(found[n]), document_name=found[n]["document_name"],
                    collection_id=found[n]["collection_id"], score=score, ranks=ranks)
                for n, score, ranks in ranked if n in found]

    # search --------------------------------------------------------------------------------

    async def by_words(self, collection_ids: Sequence[str], query: str, limit: int) -> list[int]:
        """Passages of ready documents holding the query's words, best first (bm25, the heading
        counting half as much as the text).

        The word index is asked alone for its best passages, and only those are then checked for
        their collection and state: joined in one query, every match of a common word is looked up
        first (132 ms at p95 over 100 000 passages, against 50). When too few of them pass, it asks
        for more."""
        match = words_query(query)
        if match is None or not collection_ids:
            return []
        marks = ",".join("?" * len(collection_ids))
        fetch = max(limit * 4, 200)
        while True:
            ranked = [r[0] for r in await self.db.fetch_all(
                "SELECT rowid FROM passages_fts WHERE passages_fts MATCH ?"
                " ORDER BY bm25(passages_fts, 0.5, 1.0) LIMIT ?", (match, fetch))]
            if not ranked:
                return []
            keep = {r[0] for r in await self.db.fetch_all(
                f"SELECT p.n FROM passages p JOIN documents d ON d.id = p.document_id"
                f" WHERE p.n IN ({','.join('?' * len(ranked))}) AND d.collection_id IN ({marks})"
                " AND d.state = 'ready'", (*ranked, *collection_ids))}
            found = [n for n in ranked if n in keep][:limit]
            if len(found) >= limit or len(ranked) < fetch:
                return found
            fetch *= 4

    async def by_vector(self, collection: Collection, vector: bytes, limit: int) -> list[tuple[int, float]]:
        """The passages of ready documents nearest to `vector` (cosine distance), nearest first.
        Vectors of documents still being indexed are in the table too: the query asks for enough
        neighbours to have `limit` left once those are set aside."""
        if collection.dim is None:
            return []
        row = await self.db.fetch_one(
            "SELECT coalesce(sum(embedded), 0) FROM documents WHERE collection_id = ? AND state != 'ready'",
            (collection.id,))
        unready = int(row[0]) if row else 0
        k = min(MAX_KNN, limit + unready)
        rows = await self.db.fetch_all(
            f"SELECT v.rowid, v.distance FROM (SELECT rowid, distance FROM {collection.vectors_table}"
            "  WHERE embedding MATCH ? AND k = ?) v"
            " JOIN passages p ON p.n = v.rowid JOIN documents d ON d.id = p.document_id"
            " WHERE d.state = 'ready' ORDER BY v.distance LIMIT ?", (vector, k, limit))
        return [(r[0], float(r[1])) for r in rows]

    async def counts(self) -> dict[str, int]:
        row = await self.db.fetch_one("SELECT (SELECT count(*) FROM collections WHERE conversation_id IS NULL),"
                                      " (SELECT count(*) FROM documents), (SELECT count(*) FROM passages)")
        assert row is not None
        return {"collections": row[0], "documents": row[1], "passages": row[2]}


def sources_json(hits: Sequence[Hit]) -> str:
    """The passages an answer was given, numbered as it cites them, as stored on the message."""
    return json.dumps([{"n": i, "passage_id": h.passage.n, "document_id": h.passage.document_id,
                        "document": h.document_name, "collection_id": h.collection_id, "page": h.passage.page,
                        "heading": h.passage.heading} for i, h in enumerate(hits, 1)])
