"""The main loop of a spawned engine worker (runs in the child process only)."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import traceback
from collections import deque
from multiprocessing.connection import Connection
from typing import Any, Protocol

from ..core.errors import AppError, ErrorCode
from .protocol import Cancel, Event, JobDone, JobFailed, Request, Result, Shutdown, Submit, WorkerFailed, WorkerReady

__all__ = ["Engine", "JobContext", "worker_main"]


class JobContext:
    """What an engine sees of the pipe while it runs one job."""

    def __init__(self, conn: Connection, job_id: str, inbox: deque[Any]) -> None:
        self._conn = conn
        self.job_id = job_id
        self._inbox = inbox
        self._cancelled = False

    def emit(self, event: Event) -> None:
        self._conn.send(event)

    def cancelled(self) -> bool:
        """Cheap enough to call between tokens: one poll() syscall when nothing is pending."""
        while not self._cancelled and self._conn.poll():
            message = self._conn.recv()
            if isinstance(message, Cancel) and message.job_id == self.job_id:
                self._cancelled = True
            elif not isinstance(message, Cancel):
                self._inbox.append(message)  # handled after this job
        return self._cancelled


class Engine(Protocol):
    def info(self) -> dict[str, Any]: ...

    def run(self, request: Request, ctx: JobContext) -> Result: ...

    def idle(self) -> None:
        """Called after a job when nothing else is waiting: housekeeping off the request path."""

    def close(self) -> None: ...


def _load_engine(factory: str, config: Any) -> Engine:
    module_name, _, attr = factory.partition(":")
    return getattr(importlib.import_module(module_name), attr)(config)  # type: ignore[no-any-return]


def worker_main(conn: Connection) -> None:
    """Build the engine, announce readiness, then run jobs one at a time until told to stop."""
    logging.basicConfig(level=os.environ.get("GRIDLESS_WORKER_LOG", "WARNING"))
    # The server decides when a worker stops (Shutdown, else SIGKILL). A Ctrl+C or SIGTERM sent
    # to the whole process group must not end a job before the server has set it aside, or it
    # would be recorded as a crash instead of being resumed at the next start. Without the
    # server, the pipe closes and the worker exits at its next read or write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        factory, config = conn.recv()
    except (EOFError, OSError):
        return
    try:
        engine = _load_engine(factory, config)
        info = engine.info()
    except AppError as exc:
        conn.send(WorkerFailed(code=exc.code, message=exc.message))
        return
    except Exception as exc:  # the engine could not start; say why and exit
        conn.send(WorkerFailed(code=ErrorCode.MODEL_LOAD_FAILED, message=f"{type(exc).__name__}: {exc}"))
        return
    conn.send(WorkerReady(info=info))
    inbox: deque[Any] = deque()
    try:
        while True:
            message = inbox.popleft() if inbox else conn.recv()
            if isinstance(message, Shutdown):
                break
            if not isinstance(message, Submit):
                continue  # a late Cancel for a job that already ended
            ctx = JobContext(conn, message.job_id, inbox)
            try:
                result = engine.run(message.request, ctx)
                conn.send(JobDone(job_id=message.job_id, result=result))
            except AppError as exc:
                conn.send(JobFailed(job_id=message.job_id, code=exc.code, message=exc.message))
            except Exception as exc:
                traceback.print_exc()
                conn.send(JobFailed(job_id=message.job_id, code=ErrorCode.INTERNAL,
                                    message=f"{type(exc).__name__}: {exc}"))
            if not inbox and not conn.poll():
                engine.idle()
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass  # the server went away: exit quietly
    finally:
        engine.close()


if __name__ == "__main__":
    # Run through the module's real name: classes defined here (JobContext) must be the
    # same objects the engines import, not copies living in `__main__`.
    from backend.runtime.child import worker_main as _main

    _main(Connection(int(sys.argv[1])))
