"""Running an answer from `RemoteEngines` to its end in a test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from backend.engines.llm import ChatRequest, ChatResult, TokenDelta
from backend.remote.service import RemoteEngines
from backend.runtime.host import EngineJob
from backend.runtime.protocol import Event, JobDone, JobFailed

__all__ = ["Answer", "answer", "question", "soon"]


def question(text: str = "Say hello.") -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}])


@dataclass
class Answer:
    events: list[Event] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, TokenDelta))

    @property
    def last(self) -> Event:
        return self.events[-1]

    @property
    def result(self) -> ChatResult:
        assert isinstance(self.last, JobDone), self.last
        assert isinstance(self.last.result, ChatResult)
        return self.last.result

    @property
    def failed(self) -> JobFailed:
        assert isinstance(self.last, JobFailed), self.last
        return self.last


async def answer(engines: RemoteEngines, model_id: str, request: ChatRequest | None = None,
                 job: EngineJob | None = None) -> Answer:
    model = engines.get(model_id)
    assert model is not None, model_id
    got = Answer()
    async for event in engines.stream(model, request or question(), job or EngineJob()):
        got.events.append(event)
    assert isinstance(got.last, JobDone | JobFailed)
    assert sum(isinstance(e, JobDone | JobFailed) for e in got.events) == 1
    return got


async def soon(condition: Callable[[], bool], within_s: float = 3.0) -> None:
    """Wait for something another thread (the fake server's) or task does."""
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "it did not happen in time"
        await asyncio.sleep(0.02)
