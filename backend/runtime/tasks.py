"""Server tasks: work that outlives the page that asked for it (answers, pictures, transcripts).

A server task runs as an asyncio task owned by its service, not by a page: closing the tab
does not stop it, and a page that comes back finds it again and follows it. What a page
follows is a `ServerTask` record: `version` goes up on every change a page should draw
(pages compare it on a timer instead of being called back from the task), `finished` is
set once it has ended and been saved, and a failure is kept as a code and a message.
`TaskSet` holds a service's running tasks so that shutdown can end them together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import AppError, ErrorCode

__all__ = ["ServerTask", "TaskSet", "failures_to"]

log = logging.getLogger(__name__)


@dataclass(kw_only=True, slots=True)
class ServerTask:
    version: int = 0
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None
    error_code: ErrorCode | None = None

    def touch(self) -> None:
        """Something a page shows has changed."""
        self.version += 1

    def end(self) -> None:
        """It has ended and its outcome is saved: followers stop following."""
        self.touch()
        self.finished.set()


class TaskSet:
    """The running tasks of one service, kept until they end and ended together at shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self.closing = False
        """Set at shutdown: a task cancelled now was cut off, not stopped by a person."""

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def shutdown(self, *, within_s: float = 5.0, cancel: bool = False) -> None:
        """Wait up to `within_s` for the tasks (asked to stop by their service) to save what they
        have; with `cancel`, cancel them first. The set can be used again afterwards (a restore
        stops the services and starts them again in the same process)."""
        self.closing = True
        tasks = list(self._tasks)
        if cancel:
            for task in tasks:
                task.cancel()
        try:
            if tasks:
                await asyncio.wait(tasks, timeout=within_s)
        finally:
            self.closing = False


@contextlib.contextmanager
def failures_to(fail: Callable[[ErrorCode, str], None], what: str) -> Iterator[None]:
    """Around a server task's work: an application error, or any unexpected one (logged as
    `what` failing), becomes `fail(code, message)` instead of ending the task with an exception."""
    try:
        yield
    except AppError as exc:
        fail(exc.code, exc.message)
    except Exception as exc:
        log.exception("%s failed", what)
        fail(ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")
