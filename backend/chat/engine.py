"""The language-model engine as the chat page and `/v1/chat/completions` both use it: one
resident model at a time (a chat or vision model, with its projector), loaded on demand
within the memory budget, with saved conversation states in what the budget leaves."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

from ..core.config import Settings
from ..core.errors import AppError
from ..core.jobs import Job
from ..engines.llm import ChatRequest, ChatResult, LlmConfig, TokenDelta
from ..models.manager import ModelManager
from ..models.registry import ModelRecord
from ..remote.service import RemoteEngines, is_remote
from ..runtime.host import EngineHost, EngineJob, EngineSpec
from ..runtime.protocol import Event, JobDone, JobFailed
from ..runtime.residency import ResidencyManager
from ..runtime.scheduler import PositionCallback

__all__ = ["ChatEngines", "Collected", "chat_engine", "collect"]


def chat_engine(settings: Settings, manager: ModelManager, residency: ResidencyManager) -> EngineHost:
    def configure(model: ModelRecord, estimate: int) -> LlmConfig:
        # saved conversation states may use what the budget leaves, up to the configured amount
        room = max(0, residency.budget.limit - estimate)
        return LlmConfig(model_path=str(model.path), n_ctx=manager.context_for(model),
                         n_threads=settings.inference_threads,
                         kv_cache_bytes=min(settings.kv_cache_mb * 1024 * 1024, room),
                         projector_path=str(model.projector) if model.projector else None)

    spec = EngineSpec(slot=Job.CHAT, jobs=(Job.CHAT, Job.VISION), factory="backend.engines.llm:LlmEngine",
                      configure=configure, heavy=True, context=manager.context_for,
                      stall_timeout_s=settings.engine_stall_s)
    return EngineHost(spec, manager, residency, queue_limit=settings.queue_limit)


class ChatEngines:
    """What answers go through: a model of an engine server the owner added streams from that
    server; any other model from the local engine. Remote answers do not wait in the local
    engine's line, so a slow or absent server never holds up local models."""

    def __init__(self, local: EngineHost, remote: RemoteEngines, models: ModelManager) -> None:
        self.local = local
        self.remote = remote
        self.models = models

    @property
    def model(self) -> ModelRecord | None:
        """The app's own chat model (the one used when a conversation chose none)."""
        return self.local.model

    def _remote(self, model_id: str | None) -> ModelRecord | None:
        """A server's model used for chat, by id."""
        record = self.remote.get(model_id) if model_id else None
        return record if record is not None and record.job is Job.CHAT else None

    def get(self, model_id: str) -> ModelRecord | None:
        """A local model or a server's chat model, by id."""
        return self.models.get(model_id) or self._remote(model_id)

    def language_models(self) -> list[ModelRecord]:
        """The local chat and vision models, then the servers' chat models."""
        return [*self.models.language_models(), *self.remote.records(Job.CHAT)]

    def resolve(self, model_id: str | None) -> ModelRecord:
        remote = self._remote(model_id)
        return remote if remote is not None else self.local.resolve(model_id)

    @staticmethod
    def sees(model: ModelRecord | None) -> bool:
        """Whether photos may be given to it: a local model with its projector; a server's model
        is given them, and the server says if it cannot look at them."""
        return model is not None and (model.projector is not None or is_remote(model))

    async def stream(self, request: ChatRequest, job: EngineJob, *, model_id: str | None = None,
                     on_position: PositionCallback | None = None) -> AsyncGenerator[Event, None]:
        remote = self._remote(model_id)
        events = self.remote.stream(remote, request, job) if remote is not None \
            else self.local.stream(request, job, model_id=model_id, on_position=on_position)
        try:
            async for event in events:
                yield event
        finally:  # a caller that leaves early (a client gone) frees the engine's turn now
            await events.aclose()

    def cancel(self, job: EngineJob) -> None:
        self.local.cancel(job)
        self.remote.cancel(job)


@dataclass(slots=True)
class Collected:
    text: str
    reasoning: str
    result: ChatResult


async def collect(events: AsyncIterator[Event]) -> Collected:
    """Run a stream to its end: the answer, the thinking and the final result (raises on failure)."""
    parts: list[str] = []
    thoughts: list[str] = []
    result = ChatResult()
    async for event in events:
        if isinstance(event, TokenDelta):
            parts.append(event.text)
            thoughts.append(event.reasoning)
        elif isinstance(event, JobDone) and isinstance(event.result, ChatResult):
            result = event.result
        elif isinstance(event, JobFailed):
            raise AppError(event.code, event.message)
    return Collected("".join(parts), "".join(thoughts), result)
