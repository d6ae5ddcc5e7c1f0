"""The one chat service: the chat page and `/v1/chat/completions` both stream through it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ..config import Settings
from ..engines.llm import ChatRequest, LlmConfig, TokenDelta
from ..models.manager import ModelManager
from ..models.registry import ModelRecord
from ..runtime.child import EngineError
from ..runtime.protocol import Event, JobDone, JobFailed
from ..runtime.residency import ResidencyManager, Resident
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
    unloaded: list[str] = field(default_factory=list)
    """What was unloaded to make room for the model this job loaded (slot names: "images"…)."""


class ChatService:
    """One resident chat model at a time, loaded on demand within the memory budget."""

    def __init__(self, settings: Settings, manager: ModelManager, residency: ResidencyManager) -> None:
        self.settings = settings
        self.manager = manager
        self.residency = residency
        self.gate = FifoGate("chat", settings.queue_limit)
        self._worker: WorkerProcess | None = None
        self._loaded: ModelRecord | None = None
        self._loaded_ctx = 0
        self._running: dict[str, ChatJob] = {}

    @property
    def model(self) -> ModelRecord | None:
        """The model answers come from: the loaded one while a job runs, else the active one."""
        if self._running and self._loaded is not None:
            return self._loaded
        return self.manager.active("chat")

    @property
    def loaded(self) -> ModelRecord | None:
        return self._loaded if self._worker is not None and self._worker.alive else None

    @property
    def loaded_info(self) -> dict[str, Any]:
        return self._worker.info if self._worker is not None and self._worker.alive else {}

    def chat_models(self) -> list[ModelRecord]:
        return self.manager.installed("chat") + self.manager.installed("vision")

    def resolve(self, model_id: str | None) -> ModelRecord:
        if model_id:
            model = self.manager.get(model_id)
            if model is None or model.job not in ("chat", "vision"):
                raise ModelUnavailable(f"the model '{model_id}' does not exist; GET /v1/models lists them")
            return model
        active = self.model
        if active is None:
            raise ModelUnavailable("no chat model is installed")
        return active

    async def _load(self, model: ModelRecord, job: ChatJob | None = None) -> WorkerProcess:
        """The worker for `model`, replacing the loaded one; refuses what does not fit."""
        n_ctx = self.manager.context_for(model)
        if (self._worker is not None and self._loaded is not None and self._loaded.id == model.id
                and self._loaded.path == model.path and self._loaded_ctx == n_ctx):
            return self._worker
        estimate = self.manager.check_fit(model, n_ctx)
        resident = Resident(name="chat", model=model.id, heavy=True, estimate=estimate.total, unload=self.unload,
                            pid=lambda: self._worker.pid if self._worker is not None else None)
        unloaded = await self.residency.admit("chat", model.name, estimate.total, heavy=True,
                                              override=model.memory_override, resident=resident)
        if job is not None:
            job.unloaded = unloaded
        await self._stop_worker()
        # saved conversation states may use what the budget leaves, up to the configured amount
        room = max(0, self.residency.budget.limit - estimate.total)
        config = LlmConfig(model_path=str(model.path), n_ctx=n_ctx, n_threads=self.settings.inference_threads,
                           kv_cache_bytes=min(self.settings.kv_cache_mb * 1024 * 1024, room),
                           projector_path=str(model.projector) if model.projector else None)
        self._worker = WorkerProcess(WorkerSpec(name="llm", factory="backend.engines.llm:LlmEngine", config=config))
        self._loaded, self._loaded_ctx = model, n_ctx
        return self._worker

    async def unload(self) -> None:
        """Stop the worker: all of the model's memory goes back to the system."""
        self.residency.forget("chat")
        await self._stop_worker()

    async def _stop_worker(self) -> None:
        worker, self._worker, self._loaded = self._worker, None, None
        if worker is not None:
            await worker.stop()

    async def stream(self, job: ChatJob, request: ChatRequest, *, model_id: str | None = None,
                     on_position: PositionCallback | None = None) -> AsyncGenerator[Event, None]:
        """Wait for the engine in FIFO order, then yield the job's events (ending in Done/Failed)."""
        model = self.resolve(model_id)
        async with self.gate.turn(on_position):
            if job.cancelled:
                yield JobDone(job_id=job.id, result={"finish_reason": "cancelled", "completion_tokens": 0})
                return
            worker = await self._load(model, job)
            self._running[job.id] = job
            try:
                with self.residency.in_use("chat"):
                    async for event in worker.run(request, job.id):
                        yield event
            finally:
                self._running.pop(job.id, None)

    def cancel(self, job: ChatJob) -> None:
        job.cancelled = True
        if job.id in self._running and self._worker is not None:
            self._worker.cancel(job.id)

    async def close(self) -> None:
        await self.unload()


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
