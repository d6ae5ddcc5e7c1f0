"""The background indexer: reads queued documents into passages and embeds them, one document at
a time, in batches, so that a restart goes on where it stopped.

*Reading* extracts and chunks the file in a thread and writes every passage in one transaction;
*indexing* embeds the passages that have no vector yet, a batch at a time, each batch's vectors
and flags written together. A document caught reading by a restart is read again; one caught
indexing goes on from its first passage without a vector. Cancelling stops between batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from ..core.errors import AppError, ErrorCode
from ..runtime.host import EngineJob
from ..storage.media import MediaStore
from .chunking import chunk, embedding_text
from .embedder import EmbeddingEngines, embed
from .extract import Limits, extract
from .store import Collection, Document, KnowledgeStore

__all__ = ["BATCH", "Indexer"]

log = logging.getLogger(__name__)

BATCH = 32
"""Passages embedded and written together: small enough to report progress and to stop soon,
large enough that the engine's batching is used."""


class Indexer:
    def __init__(self, store: KnowledgeStore, media: MediaStore, embeddings: EmbeddingEngines, *,
                 limits: Callable[[], Limits], changed: Callable[[], None], retry_s: float = 60.0) -> None:
        self.store = store
        self.media = media
        self.embeddings = embeddings
        self.limits = limits
        self.retry_s = retry_s
        """How long a document whose embedding model is on a server that cannot be reached waits before
        it is tried again; the documents behind it go on meanwhile."""
        self._held: dict[str, float] = {}
        self.changed = changed
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._current: str | None = None
        self._stop_current = False
        self._job: EngineJob | None = None

    @property
    def current(self) -> str | None:
        """The document being read or indexed now."""
        return self._current

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="knowledge-indexer")
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            if self._job is not None:
                self.embeddings.cancel(self._job)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def cancel(self, document_id: str) -> bool:
        """Stop the document being indexed, if it is this one (between batches)."""
        if self._current != document_id:
            return False
        self._stop_current = True
        if self._job is not None:
            self.embeddings.cancel(self._job)
        return True

    async def _run(self) -> None:
        while True:
            try:
                await self._next()
            except asyncio.CancelledError:
                raise
            except Exception:  # the data closed under it, a disk error: try again shortly, never stop for good
                log.exception("the indexer stumbled; it goes on in a moment")
                await asyncio.sleep(5)

    async def _next(self) -> None:
        """Index the oldest pending document, or wait until there is one."""
        self._wake.clear()
        now = time.monotonic()
        waiting = await self.store.pending()
        self._held = {d.id: self._held[d.id] for d in waiting if d.id in self._held}
        pending = [d for d in waiting if self._held.get(d.id, 0.0) <= now]
        if not pending:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(self._held.values()) - now if self._held else None):
                    await self._wake.wait()
            return
        document = pending[0]
        self._current, self._stop_current = document.id, False
        try:
            await self._index(document)
        except asyncio.CancelledError:
            raise
        except AppError as exc:
            if exc.code == ErrorCode.REMOTE_UNAVAILABLE and not self._stop_current:
                await self._hold(document, exc.message)
            else:
                await self._failed(document, exc.code, exc.message)
        except Exception as exc:
            log.exception("indexing %s failed", document.name)
            await self._failed(document, ErrorCode.INTERNAL, f"Indexing failed: {exc}")
        finally:
            self._current, self._job = None, None
            self.changed()

    async def _hold(self, document: Document, reason: str) -> None:
        """The server whose model embeds this collection cannot be reached: the document keeps what is
        done, says why it waits, and is tried again later."""
        self._held[document.id] = time.monotonic() + self.retry_s
        if await self.store.get_document(document.id) is not None:
            await self.store.set_state(document.id, "indexing", error_code=ErrorCode.REMOTE_UNAVAILABLE,
                                       error=f"Waiting for the server, tried again every {self.retry_s:.0f} s: "
                                             f"{reason}")

    async def _failed(self, document: Document, code: str, message: str) -> None:
        current = await self.store.get_document(document.id)
        if current is None:
            return  # deleted meanwhile
        collection = await self.store.get_collection(current.collection_id)
        if code == ErrorCode.CANCELLED or self._stop_current:
            if collection is not None:
                await self.store.clear_passages(current, collection, "cancelled")
            return
        if collection is not None:
            await self.store.clear_passages(current, collection, "failed")
        await self.store.set_state(current.id, "failed", error_code=str(code), error=message)

    def _check(self) -> None:
        if self._stop_current:
            raise AppError(ErrorCode.CANCELLED, "indexing was cancelled")

    async def _index(self, document: Document) -> None:
        collection = await self.store.get_collection(document.collection_id)
        if collection is None:
            return
        if document.state in ("queued", "reading"):
            await self.store.set_state(document.id, "reading")
            self.changed()
            await self._read(document, collection)
            self.changed()
        while True:
            self._check()
            batch = await self.store.unembedded(document.id, BATCH)
            if not batch:
                break
            self._job = EngineJob()
            texts = [embedding_text(p) for p in batch]
            try:
                result = await embed(self.embeddings, texts, purpose="passage", model_id=collection.embedder or None,
                                     job=self._job)
            except AppError as exc:
                if exc.code != ErrorCode.MODEL_NOT_FOUND or not collection.embedder:
                    raise
                # the model that indexed the collection is gone: the active one indexes it all again
                result = await embed(self.embeddings, texts, purpose="passage", job=self._job)
            self._check()
            if collection.embedder != result.model_id or collection.dim != result.dim:
                collection = await self.store.use_embedder(collection, result.model_id, result.dim)
            vectors = result.vectors
            await self.store.write_vectors(document.id, collection,
                                           [(p.n, vectors[i].tobytes()) for i, p in enumerate(batch)])
            self.changed()
        current = await self.store.get_document(document.id)
        if current is not None and current.state == "indexing":
            await self.store.set_state(document.id, "ready", error_code=None, error=None)

    async def _read(self, document: Document, collection: Collection) -> None:
        path = self.media.path(document.file)
        extracted = await asyncio.to_thread(extract, Path(path), document.name, limits=self.limits(),
                                            cancelled=lambda: self._stop_current)
        chunks = await asyncio.to_thread(chunk, extracted.blocks)
        if not chunks:
            raise AppError(ErrorCode.NO_TEXT, f"«{document.name}» has no text to index.")
        notice = " ".join(extracted.warnings) or None
        await self.store.replace_passages(document, collection, chunks, kind=extracted.kind, title=extracted.title,
                                          pages=extracted.pages, notice=notice)
