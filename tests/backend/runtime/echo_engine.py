"""A small engine for exercising the worker protocol without a model (runs in the child)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from backend.core.errors import AppError, ErrorCode
from backend.runtime.child import JobContext
from backend.runtime.protocol import Event, Request, Result


@dataclass(kw_only=True, slots=True)
class Count(Request):
    n: int
    delay_s: float = 0.0


@dataclass(kw_only=True, slots=True)
class Crash(Request):
    after: int = 0


@dataclass(kw_only=True, slots=True)
class Fail(Request):
    pass


@dataclass(kw_only=True, slots=True)
class Hang(Request):
    """Sends one tick, then loops without a word: an engine stuck in an endless loop."""


@dataclass(kw_only=True, slots=True)
class Tick(Event):
    i: int


@dataclass(kw_only=True, slots=True)
class Counted(Result):
    count: int = 0


class EchoEngine:
    def __init__(self, config: dict[str, Any]) -> None:
        if config.get("refuse"):
            raise AppError(ErrorCode.MODEL_LOAD_FAILED, "refused to start on purpose")
        self.started_pid = os.getpid()

    def info(self) -> dict[str, Any]:
        return {"pid": self.started_pid}

    def run(self, request: Request, ctx: JobContext) -> Counted:
        if isinstance(request, Fail):
            raise AppError(ErrorCode.BAD_REQUEST, "this request always fails")
        if isinstance(request, Hang):
            ctx.emit(Tick(job_id=ctx.job_id, i=0))
            while True:
                time.sleep(0.05)
        if isinstance(request, Crash):
            for i in range(request.after):
                ctx.emit(Tick(job_id=ctx.job_id, i=i))
            os._exit(3)
        assert isinstance(request, Count)
        for i in range(request.n):
            if ctx.cancelled():
                return Counted(finish_reason="cancelled", count=i)
            ctx.emit(Tick(job_id=ctx.job_id, i=i))
            time.sleep(request.delay_s)
        return Counted(finish_reason="stop", count=request.n)

    def idle(self) -> None:
        pass

    def close(self) -> None:
        pass
