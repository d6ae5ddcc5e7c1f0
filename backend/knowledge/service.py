"""Collections of documents: what pages, routes, answers and tools ask of them (docs/knowledge.md).

Adding a document stores its file and queues it; the indexer reads and embeds it in the
background. Search fuses the passages found by words with those found by meaning, always among
documents that are ready.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from ..core.config import Settings
from ..core.errors import AppError, ErrorCode
from ..storage.media import MediaStore, MediaTooLarge
from .embedder import EmbeddingEngines, embed
from .extract import SUPPORTED_SUFFIXES, Limits
from .indexer import Indexer
from .retrieval import fuse
from .store import ANY, Collection, Document, Hit, KnowledgeStore

__all__ = ["KnowledgeService", "SearchMode", "SearchResult", "SharedFile"]

MEDIA_KIND = "documents"
SearchMode = Literal["hybrid", "vector", "words"]
CANDIDATES = 50
"""Passages each list (words, meaning) brings to the fusion."""
MAX_NAME = 200
MAX_QUERY_CHARS = 2000
MAX_K = 50
_REMOTE_ERRORS = (ErrorCode.REMOTE_UNAVAILABLE, ErrorCode.REMOTE_FAILED, ErrorCode.REMOTE_REFUSED,
                  ErrorCode.REMOTE_UNTRUSTED)


@dataclass(slots=True)
class SearchResult:
    hits: list[Hit]
    notice: str | None = None
    """Said when part of the search could not run (a collection's embedding model is gone)."""
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class SharedFile:
    name: str
    size: int
    modified: float


def _checked_name(name: str) -> str:
    clean = PurePosixPath(name.replace("\\", "/")).name.strip()
    if not clean or clean in (".", ".."):
        raise AppError(ErrorCode.BAD_REQUEST, "The document needs a file name, such as notes.pdf.")
    if len(clean) > MAX_NAME:
        raise AppError(ErrorCode.BAD_REQUEST, f"The file name is longer than {MAX_NAME} characters.")
    return clean


def _suffix(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        kinds = "PDF, Word (.docx), Markdown, text, CSV and HTML"
        raise AppError(ErrorCode.UNSUPPORTED_CONTENT,
                       f"«{name}» is not a kind of document collections can hold ({kinds}).")
    return suffix


class KnowledgeService:
    def __init__(self, settings: Settings, store: KnowledgeStore, media: MediaStore,
                 embeddings: EmbeddingEngines) -> None:
        self.settings = settings
        self.store = store
        self.media = media
        self.embeddings = embeddings
        self.version = 0
        """Goes up whenever a document changes state or progress (pages redraw on it)."""
        self._changed = asyncio.Condition()
        self.indexer = Indexer(store, media, embeddings, limits=self.limits, changed=self._bump,
                               retry_s=settings.remote_check_s)

    @property
    def max_bytes(self) -> int:
        return self.settings.max_document_mb * 1024 * 1024

    def limits(self) -> Limits:
        return Limits(max_bytes=self.max_bytes)

    def _bump(self) -> None:
        self.version += 1

        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()
        asyncio.get_running_loop().create_task(notify())

    async def start(self) -> None:
        orphans = await self.store.orphan_vector_tables()
        if orphans:
            await self.store.drop_tables(orphans)
        await self.sweep()
        self.indexer.start()

    async def shutdown(self) -> None:
        await self.indexer.stop()

    async def sweep(self) -> int:
        """Delete document files no document refers to (left by a crash mid-upload, or by a
        collection deleted with its conversation)."""
        rows = await self.store.db.fetch_all("SELECT file FROM documents")
        known = {r[0] for r in rows}
        stale = [f for f in self.media.files(MEDIA_KIND) if f not in known]
        stale += self.media.files(MEDIA_KIND, partial=True)
        for relative in stale:
            self.media.delete(relative)
        return len(stale)

    # collections ---------------------------------------------------------------------------

    async def create_collection(self, name: str, *, description: str = "", project_id: str | None = None,
                                embedder: str | None = None) -> Collection:
        """A new collection, indexed with `embedder` (an embedding model of this device or of an engine
        server the owner added) or else with the active embedding model."""
        name = name.strip()
        if not name:
            raise AppError(ErrorCode.BAD_REQUEST, "A collection needs a name.")
        if len(name) > MAX_NAME:
            raise AppError(ErrorCode.BAD_REQUEST, f"The name is longer than {MAX_NAME} characters.")
        if embedder:
            try:
                embedder = self.embeddings.resolve(embedder).id
            except AppError as exc:
                exc.param = "embedder"
                raise
        return await self.store.create_collection(name, description=description.strip(), project_id=project_id,
                                                  embedder=embedder or None)

    async def collections(self, *, project_id: Any = ANY) -> list[Collection]:
        return await self.store.list_collections(project_id=project_id)

    async def collection(self, collection_id: str) -> Collection:
        collection = await self.store.get_collection(collection_id)
        if collection is None:
            raise AppError(ErrorCode.NOT_FOUND, "There is no such collection; it may have been deleted.")
        return collection

    async def rename(self, collection_id: str, name: str) -> Collection:
        await self.collection(collection_id)
        name = name.strip()
        if not name or len(name) > MAX_NAME:
            raise AppError(ErrorCode.BAD_REQUEST, f"A collection needs a name of at most {MAX_NAME} characters.")
        await self.store.update_collection(collection_id, name=name)
        return await self.collection(collection_id)

    async def delete_collection(self, collection_id: str) -> None:
        collection = await self.collection(collection_id)
        for document in await self.store.documents(collection_id):
            self.indexer.cancel(document.id)
        files = await self.store.delete_collection(collection)
        for relative in files:
            self.media.delete(relative)
        self._bump()

    # documents -----------------------------------------------------------------------------

    async def add_document(self, collection_id: str, name: str, chunks: AsyncIterator[bytes]) -> Document:
        """Store an upload in a collection and queue it for indexing; raises AppError (unknown
        collection, a kind of file collections do not hold, too large, the same file already there)."""
        collection = await self.collection(collection_id)
        name = _checked_name(name)
        suffix = _suffix(name)
        relative = self.media.new_name(MEDIA_KIND, suffix.lstrip(".") or "bin")
        digest = hashlib.sha256()

        async def hashed() -> AsyncIterator[bytes]:
            async for piece in chunks:
                digest.update(piece)
                yield piece
        try:
            size = await self.media.write_stream(hashed(), relative, self.max_bytes)
        except MediaTooLarge:
            raise AppError(ErrorCode.DOCUMENT_TOO_LARGE,
                           f"«{name}» is larger than the limit of {self.settings.max_document_mb} MB.") from None
        try:
            if size == 0:
                raise AppError(ErrorCode.EMPTY_DOCUMENT, f"«{name}» is empty.")
            same = await self.store.find_same(collection.id, digest.hexdigest())
            if same is not None:
                raise AppError(ErrorCode.CONFLICT, f"«{name}» is already in this collection (as «{same.name}»).")
            document = await self.store.add_document(collection.id, name=name, size=size,
                                                     sha256=digest.hexdigest(), file=relative)
        except BaseException:
            self.media.delete(relative)
            raise
        self._bump()
        self.indexer.wake()
        return document

    async def add_file(self, collection_id: str, path: Path, name: str | None = None) -> Document:
        """Add a file of this device (copied: the original stays where it is)."""
        def read() -> AsyncIterator[bytes]:
            async def pieces() -> AsyncIterator[bytes]:
                with path.open("rb") as fh:
                    while piece := await asyncio.to_thread(fh.read, 1 << 20):
                        yield piece
            return pieces()
        try:
            return await self.add_document(collection_id, name or path.name, read())
        except OSError as exc:
            raise AppError(ErrorCode.NOT_FOUND, f"«{name or path.name}» could not be read: {exc.strerror}.") \
                from None

    async def documents(self, collection_id: str) -> list[Document]:
        await self.collection(collection_id)
        return await self.store.documents(collection_id)

    async def document(self, document_id: str) -> Document:
        document = await self.store.get_document(document_id)
        if document is None:
            raise AppError(ErrorCode.NOT_FOUND, "There is no such document; it may have been deleted.")
        return document

    async def delete_document(self, document_id: str) -> None:
        document = await self.document(document_id)
        self.indexer.cancel(document_id)
        collection = await self.collection(document.collection_id)
        await self.store.delete_document(document, collection)
        self.media.delete(document.file)
        self._bump()

    async def cancel(self, document_id: str) -> Document:
        """Stop reading or indexing a document; its passages go, it stays listed as cancelled."""
        document = await self.document(document_id)
        if not document.pending:
            return document
        if not self.indexer.cancel(document_id):
            collection = await self.collection(document.collection_id)
            await self.store.clear_passages(document, collection, "cancelled")
            self._bump()
        else:
            await self.wait([document_id], within=30)
        return await self.document(document_id)

    async def reindex(self, document_id: str) -> Document:
        """Read and index a failed or cancelled document again (or a ready one, afresh)."""
        document = await self.document(document_id)
        if document.pending:
            return document
        collection = await self.collection(document.collection_id)
        await self.store.clear_passages(document, collection, "queued")
        await self.store.set_state(document_id, "queued")
        self._bump()
        self.indexer.wake()
        return await self.document(document_id)

    async def wait(self, document_ids: Sequence[str], *, within: float) -> list[Document]:
        """Wait until none of these documents is pending any more (at most `within` seconds)."""
        deadline = time.monotonic() + within
        while True:
            documents = await self.store.get_documents(document_ids)
            left = deadline - time.monotonic()
            if all(not d.pending for d in documents) or left <= 0:
                return documents
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait(), min(left, 1.0))
                except TimeoutError:
                    pass

    # search --------------------------------------------------------------------------------

    async def search(self, collection_ids: Sequence[str], query: str, *, k: int = 5,
                     mode: SearchMode = "hybrid") -> SearchResult:
        """The `k` passages that best answer `query` in these collections."""
        collections = [await self.collection(cid) for cid in dict.fromkeys(collection_ids)]
        query = query.strip()
        if not query:
            raise AppError(ErrorCode.BAD_REQUEST, "Type something to search for.")
        if len(query) > MAX_QUERY_CHARS:
            raise AppError(ErrorCode.BAD_REQUEST, f"The search is longer than {MAX_QUERY_CHARS} characters.")
        if not 1 <= k <= MAX_K:
            raise AppError(ErrorCode.BAD_REQUEST, f"k must be between 1 and {MAX_K}.")
        started = time.perf_counter()
        vectors: dict[str, bytes] = {}
        notice = None
        if mode != "words":
            vectors, notice = await self.query_vectors(collections, query)
        embedded = time.perf_counter()
        result = await self.rank(collections, query, vectors, k=k, mode=mode)
        result.notice = notice
        result.timings = {"embed_ms": (embedded - started) * 1000, "rank_ms": (time.perf_counter() - embedded) * 1000}
        return result

    async def query_vectors(self, collections: Sequence[Collection], query: str) -> tuple[dict[str, bytes], str | None]:
        """The query embedded by each embedding model the collections were indexed with; a
        collection whose model is gone, or whose engine server does not answer, is searched by words
        alone, and the notice says so."""
        vectors: dict[str, bytes] = {}
        missing: list[str] = []
        away: list[str] = []
        for embedder in dict.fromkeys(c.embedder for c in collections if c.embedder):
            assert embedder is not None
            try:
                vectors[embedder] = (await embed(self.embeddings, [query], purpose="query",
                                                 model_id=embedder)).vectors[0].tobytes()
            except AppError as exc:
                names = ", ".join(f"«{c.name}»" for c in collections if c.embedder == embedder)
                if exc.code == ErrorCode.MODEL_NOT_FOUND:
                    missing.append(names)
                elif exc.code in _REMOTE_ERRORS:  # the engine server that indexed them is away or failing
                    away.append(f"{names} was searched by its words only: {exc.message}")
                else:
                    raise
        said = []
        if missing:
            said.append(f"The embedding model that indexed {', '.join(missing)} is no longer "
                        "installed: those documents were searched by their words only.")
        said += away
        return vectors, " ".join(said) or None

    async def rank(self, collections: Sequence[Collection], query: str, vectors: dict[str, bytes], *, k: int,
                   mode: SearchMode = "hybrid") -> SearchResult:
        """Search with the query's vectors already made (by embedding model)."""
        lists: dict[str, list[int]] = {}
        if mode != "vector":
            lists["words"] = await self.store.by_words([c.id for c in collections], query, CANDIDATES)
        if mode != "words":
            nearest: list[tuple[int, float]] = []
            for collection in collections:
                vector = vectors.get(collection.embedder or "")
                if vector is not None:
                    nearest += await self.store.by_vector(collection, vector, CANDIDATES)
            lists["vector"] = [n for n, _ in sorted(nearest, key=lambda item: item[1])[:CANDIDATES]]
        fused = fuse(lists)[:k]
        return SearchResult(hits=await self.store.hits(fused))

    async def passage_view(self, passage_id: int) -> tuple[Document, list[Any], int]:
        """A passage in its document: the document, all of its passages and the passage's place."""
        passage = await self.store.passage(passage_id)
        if passage is None:
            raise AppError(ErrorCode.NOT_FOUND, "That passage is no longer there; its document may have been "
                                                "deleted or indexed again.")
        document = await self.document(passage.document_id)
        passages = await self.store.passages(document.id)
        index = next(i for i, p in enumerate(passages) if p.n == passage_id)
        return document, passages, index

    async def hidden_collection(self, conversation_id: str, title: str) -> Collection:
        """The collection a conversation's long attached documents are indexed into (made, and
        turned on for it, the first time); it goes with the conversation."""
        found = await self.store.hidden_collection(conversation_id)
        if found is not None:
            return found
        collection = await self.store.create_collection(f"Attached in «{title}»", conversation_id=conversation_id)
        linked = await self.store.linked(conversation_id=conversation_id)
        await self.store.link([*linked, collection.id], conversation_id=conversation_id)
        return collection

    async def same_file(self, collection_id: str, path: Path) -> Document | None:
        """The document of a collection holding the same bytes as `path`, if any."""
        def digest() -> str:
            h = hashlib.sha256()
            with path.open("rb") as fh:
                while piece := fh.read(1 << 20):
                    h.update(piece)
            return h.hexdigest()
        return await self.store.find_same(collection_id, await asyncio.to_thread(digest))

    # links ---------------------------------------------------------------------------------

    async def linked(self, *, conversation_id: str | None = None, project_id: str | None = None) -> list[Collection]:
        ids = await self.store.linked(conversation_id=conversation_id, project_id=project_id)
        found = [await self.store.get_collection(i) for i in ids]
        return [c for c in found if c is not None]

    async def link(self, collection_ids: Sequence[str], *, conversation_id: str | None = None,
                   project_id: str | None = None) -> None:
        for cid in collection_ids:
            await self.collection(cid)
        await self.store.link(list(dict.fromkeys(collection_ids)), conversation_id=conversation_id,
                              project_id=project_id)

    # the device's shared folder ------------------------------------------------------------

    def shared_files(self) -> list[SharedFile]:
        """Documents in the device's shared folder that a collection can hold, newest first."""
        folder = self.settings.shared_folder
        if folder is None or not folder.is_dir():
            return []
        found = []
        for entry in os.scandir(folder):
            if entry.is_file(follow_symlinks=False) and PurePosixPath(entry.name).suffix.lower() in SUPPORTED_SUFFIXES:
                stat = entry.stat(follow_symlinks=False)
                found.append(SharedFile(name=entry.name, size=stat.st_size, modified=stat.st_mtime))
        return sorted(found, key=lambda f: -f.modified)

    async def add_shared(self, collection_id: str, name: str) -> Document:
        """Add one of `shared_files` by name (only a name listed there: nothing else of the device)."""
        listed = {f.name for f in await asyncio.to_thread(self.shared_files)}
        if name not in listed:
            raise AppError(ErrorCode.NOT_FOUND, f"«{name}» is not in the shared folder.")
        assert self.settings.shared_folder is not None
        return await self.add_file(collection_id, self.settings.shared_folder / name, name)
