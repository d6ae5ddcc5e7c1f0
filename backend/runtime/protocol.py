"""Typed messages that cross the pipe between the server and an engine worker.

Everything here is a plain dataclass (picklable, no engine imports) so the server can
build requests and read events without loading any native library. Engines add their
own request, event and result types next to their worker code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.errors import ErrorCode

__all__ = [
    "Cancel", "Event", "JobDone", "JobFailed", "Request", "Result", "Shutdown", "Submit", "WorkerFailed",
    "WorkerReady",
]


@dataclass(kw_only=True, slots=True)
class Request:
    """Base of every engine request; the engine dispatches on the concrete type."""


@dataclass(kw_only=True, slots=True)
class Result:
    """Base of what a finished job returns; each engine has its own typed result."""

    finish_reason: str = "done"
    """How it ended: "done" (or the engine's own word, such as "stop" or "length"), or "cancelled"."""

    @property
    def cancelled(self) -> bool:
        return self.finish_reason == "cancelled"


@dataclass(kw_only=True, slots=True)
class Event:
    job_id: str


# server -> worker ---------------------------------------------------------------------------

@dataclass(kw_only=True, slots=True)
class Submit:
    job_id: str
    request: Request


@dataclass(kw_only=True, slots=True)
class Cancel:
    job_id: str


@dataclass(kw_only=True, slots=True)
class Shutdown:
    pass


# worker -> server ---------------------------------------------------------------------------

@dataclass(kw_only=True, slots=True)
class WorkerReady:
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True, slots=True)
class WorkerFailed:
    """The engine could not start (for example the model file is unusable)."""

    code: ErrorCode
    message: str


@dataclass(kw_only=True, slots=True)
class JobDone(Event):
    result: Result = field(default_factory=Result)


@dataclass(kw_only=True, slots=True)
class JobFailed(Event):
    code: ErrorCode
    message: str
