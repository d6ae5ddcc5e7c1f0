"""The embedding engine as the server uses it: its host, and `embed`, which turns texts into vectors.

The engine is a small sidecar like speech: loaded on first use within the memory budget, unloaded
when idle or when a heavy model needs the room, one job at a time in arrival order (the indexer's
batches and a chat's query take turns). Some models are trained to read a query and a passage
with different words in front ("query: ", "search_document: "); `embed` puts the model's own
prefix for the purpose in front of each text, so callers never need to know them.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..core.config import Settings
from ..core.errors import AppError, ErrorCode
from ..core.jobs import Job
from ..engines.embed import EmbedConfig, EmbedProgress, EmbedRequest, EmbedResult
from ..models.manager import ModelManager
from ..models.memory import EMBEDDING_BATCH
from ..models.registry import ModelRecord
from ..remote.service import RemoteEngines
from ..runtime.host import EngineHost, EngineJob, EngineSpec
from ..runtime.protocol import Event, JobDone, JobFailed
from ..runtime.residency import ResidencyManager

__all__ = ["EmbeddingEngines", "Embeddings", "embed", "embedding_engine", "prefix_for"]

Purpose = Literal["query", "passage"]


def embedding_engine(settings: Settings, manager: ModelManager, residency: ResidencyManager) -> EngineHost:
    spec = EngineSpec(slot=Job.EMBEDDINGS, factory="backend.engines.embed:EmbedEngine",
                      configure=lambda m, _estimate: EmbedConfig(model_path=str(m.path),
                                                                 n_threads=settings.inference_threads,
                                                                 n_batch=EMBEDDING_BATCH),
                      stall_timeout_s=settings.engine_stall_s)
    return EngineHost(spec, manager, residency, queue_limit=settings.queue_limit)


@dataclass(kw_only=True, slots=True)
class Embeddings:
    vectors: np.ndarray
    """float32, one row per text, in the order given."""
    dim: int
    model_id: str
    tokens: int
    truncated: int
    """How many texts were longer than the model takes and were cut."""


class EmbeddingEngines:
    """The embedding models: the local engine, or an embedding model of an engine server the owner
    added (its vectors come over HTTP, in the same result the local engine gives)."""

    def __init__(self, local: EngineHost, remote: RemoteEngines, models: ModelManager) -> None:
        self.local = local
        self.remote = remote
        self.models = models

    def _remote(self, model_id: str | None) -> ModelRecord | None:
        record = self.remote.get(model_id) if model_id else None
        return record if record is not None and record.job is Job.EMBEDDINGS else None

    def resolve(self, model_id: str | None) -> ModelRecord:
        remote = self._remote(model_id)
        return remote if remote is not None else self.local.resolve(model_id)

    def choices(self) -> list[ModelRecord]:
        """The embedding models a collection may be indexed with: this device's, then the servers'."""
        return [*self.models.installed(Job.EMBEDDINGS.value), *self.remote.records(Job.EMBEDDINGS)]

    async def stream(self, request: EmbedRequest, job: EngineJob, *, model_id: str | None = None
                     ) -> AsyncGenerator[Event, None]:
        remote = self._remote(model_id)
        if remote is None:
            events = self.local.stream(request, job, model_id=model_id)
            try:
                async for event in events:
                    yield event
            finally:
                await events.aclose()
            return
        if job.cancelled:
            yield JobFailed(job_id=job.id, code=ErrorCode.CANCELLED, message="cancelled before it started")
            return
        try:
            vectors, tokens = await self.remote.embed(remote, list(request.texts))
        except AppError as exc:
            yield JobFailed(job_id=job.id, code=exc.code, message=exc.message)
            return
        yield JobDone(job_id=job.id, result=EmbedResult(vectors=vectors.astype(np.float32).tobytes(),
                                                        dim=int(vectors.shape[1]), tokens=tokens))

    def cancel(self, job: EngineJob) -> None:
        job.cancelled = True
        self.local.cancel(job)

    async def close(self) -> None:
        await self.local.close()


def prefix_for(model: object, purpose: Purpose) -> str:
    """The words an embedding model wants in front of a text read for `purpose` (often none)."""
    info = getattr(model, "info", None) or {}
    value = info.get(f"{purpose}_prefix")
    return value if isinstance(value, str) else ""


async def embed(host: EmbeddingEngines, texts: Sequence[str], *, purpose: Purpose = "passage",
                model_id: str | None = None, job: EngineJob | None = None,
                on_progress: Callable[[int, int], None] | None = None, truncate: bool = True) -> Embeddings:
    """Vectors for `texts` from the embedding model `model_id` (else the active one). Raises
    AppError for what went wrong (no model, busy, no memory, an empty text, cancelled)."""
    if not texts:
        raise AppError(ErrorCode.BAD_REQUEST, "there are no texts to embed")
    model = host.resolve(model_id)
    prefix = prefix_for(model, purpose)
    request = EmbedRequest(texts=[prefix + text for text in texts] if prefix else list(texts), truncate=truncate)
    result: EmbedResult | None = None
    async for event in host.stream(request, job or EngineJob(), model_id=model.id):
        if isinstance(event, EmbedProgress):
            if on_progress is not None:
                on_progress(event.done, event.total)
        elif isinstance(event, JobDone):
            if isinstance(event.result, EmbedResult):
                result = event.result
        elif isinstance(event, JobFailed):
            raise AppError(event.code, event.message)
    if result is None:
        raise AppError(ErrorCode.INTERNAL, "the embedding model ended without vectors")
    if result.cancelled:
        raise AppError(ErrorCode.CANCELLED, "embedding was cancelled")
    vectors = np.frombuffer(result.vectors, dtype=np.float32).reshape(-1, result.dim).copy()
    if vectors.shape[0] != len(texts):
        raise AppError(ErrorCode.INTERNAL,
                       f"the embedding model gave {vectors.shape[0]} vectors for {len(texts)} texts")
    return Embeddings(vectors=vectors, dim=result.dim, model_id=model.id, tokens=result.tokens,
                      truncated=result.truncated)
