"""Typed messages that cross the pipe between the server and an engine worker.

Everything here is a plain dataclass (picklable, no engine imports) so the server can
build requests and read events without loading any native library. Engines add their
own request and event types next to their worker code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Cancel", "ErrorCode", "Event", "JobDone", "JobFailed", "Request", "Shutdown", "Submit",
    "WorkerFailed", "WorkerReady",
]


class ErrorCode:
    """Stable machine-readable error codes shared by engines, the API and the pages."""

    BAD_REQUEST = "bad_request"
    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
    MODEL_LOAD_FAILED = "model_load_failed"
    WORKER_CRASHED = "worker_crashed"
    CANCELLED = "cancelled"
    BUSY = "busy"
    INSUFFICIENT_MEMORY = "insufficient_memory"
    INTERNAL = "internal_error"


@dataclass(kw_only=True, slots=True)
class Request:
    """Base of every engine request; the engine dispatches on the concrete type."""


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

    code: str
    message: str


@dataclass(kw_only=True, slots=True)
class JobDone(Event):
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True, slots=True)
class JobFailed(Event):
    code: str
    message: str
