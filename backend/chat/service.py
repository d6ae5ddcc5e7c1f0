"""The one chat service: the chat page and `/v1/chat/completions` both stream through it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ..config import Settings
from ..engines.llm import ChatRequest, LlmConfig, TokenDelta
from ..models.local import LocalModel, LocalModels
from ..runtime.child import EngineError
from ..runtime.protocol import Event, JobDone, JobFailed
from ..runtime.scheduler import FifoGate, PositionCallback
from ..runtime.worker import WorkerProcess, WorkerSpec

__all__ = ["ChatJob", "ChatService", "ModelUnavailable", "collect"]


class ModelUnavailable(EngineError):
    def __init__(self, message: str) -> None:
        super().__init__("model_not_found", message)


@dataclass(kw_only=True, slots=True)
class ChatJob:
    """One request's handle: its id, and a cancel that works whether it waits or runs."""

    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    cancelled: bool = False


class ChatService:
    def __init__(self, settings: Settings, models: LocalModels) -> None:
        self.settings = settings
        self.models = models
        self.gate = FifoGate("chat", settings.queue_limit)
        self._worker: WorkerProcess | None = None
        self._model: LocalModel | None = None
        self._running: dict[str, ChatJob] = {}

    @property
    def model(self) -> LocalModel | None:
        """The model in use (loaded or about to be): the last one asked for, else the default."""
        if self._model is None:
            self._model = self.models.default_chat_model()
        return self._model

    @property
    def loaded_info(self) -> dict[str, Any]:
        return self._worker.info if self._worker is not None and self._worker.alive else {}

    def resolve(self, model_id: str | None) -> LocalModel:
        model = self.models.find(model_id) if model_id else self.model
        if model is None:
            if model_id:
                raise ModelUnavailable(f"the model '{model_id}' does not exist; GET /v1/models lists them")
            raise ModelUnavailable("no chat model is installed")
        return model

    def _worker_for(self, model: LocalModel) -> WorkerProcess:
        if self._worker is not None and self._worker.spec.config.model_path == str(model.path):
            return self._worker
        config = LlmConfig(model_path=str(model.path), n_ctx=self.settings.context_length,
                           n_threads=self.settings.inference_threads,
                           kv_cache_bytes=self.settings.kv_cache_mb * 1024 * 1024)
        return WorkerProcess(WorkerSpec(name="llm", factory="backend.engines.llm:LlmEngine", config=config))

    async def stream(self, job: ChatJob, request: ChatRequest, *, model_id: str | None = None,
                     on_position: PositionCallback | None = None) -> AsyncGenerator[Event, None]:
        """Wait for the engine in FIFO order, then yield the job's events (ending in Done/Failed)."""
        model = self.resolve(model_id)
        async with self.gate.turn(on_position):
            if job.cancelled:
                yield JobDone(job_id=job.id, result={"finish_reason": "cancelled", "completion_tokens": 0})
                return
            worker = self._worker_for(model)
            if worker is not self._worker:
                if self._worker is not None:
                    await self._worker.stop()  # one resident chat model: unloading frees it all
                self._worker, self._model = worker, model
            self._running[job.id] = job
            try:
                async for event in worker.run(request, job.id):
                    yield event
            finally:
                self._running.pop(job.id, None)

    def cancel(self, job: ChatJob) -> None:
        job.cancelled = True
        if job.id in self._running and self._worker is not None:
            self._worker.cancel(job.id)

    async def close(self) -> None:
        if self._worker is not None:
            await self._worker.stop()


async def collect(events: AsyncIterator[Event]) -> tuple[str, dict[str, Any]]:
    """Run a stream to its end: the whole text and the final result (raises on failure)."""
    parts: list[str] = []
    result: dict[str, Any] = {}
    async for event in events:
        if isinstance(event, TokenDelta):
            parts.append(event.text)
        elif isinstance(event, JobDone):
            result = event.result
        elif isinstance(event, JobFailed):
            raise EngineError(event.code, event.message)
    return "".join(parts), result
