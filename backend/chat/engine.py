"""The language-model engine as the chat page and `/v1/chat/completions` both use it: one
resident model at a time (a chat or vision model, with its projector), loaded on demand
within the memory budget, with saved conversation states in what the budget leaves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from ..core.config import Settings
from ..core.errors import AppError
from ..core.jobs import Job
from ..engines.llm import ChatResult, LlmConfig, TokenDelta
from ..models.manager import ModelManager
from ..models.registry import ModelRecord
from ..runtime.host import EngineHost, EngineSpec
from ..runtime.protocol import Event, JobDone, JobFailed
from ..runtime.residency import ResidencyManager

__all__ = ["Collected", "chat_engine", "collect"]


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
