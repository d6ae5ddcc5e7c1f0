"""One FIFO queue per engine: one job runs, the rest wait in order and know their place."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from ..core.errors import AppError, ErrorCode

__all__ = ["FifoGate", "PositionCallback", "busy"]

PositionCallback = Callable[[int], None]
"""Called with 0 when the job starts running, or with its place (1 = next) while it waits."""


def busy(name: str, retry_after: int = 5) -> AppError:
    """The answer to a request that finds the line full: try again in a few seconds."""
    return AppError(ErrorCode.BUSY, f"the {name} engine is busy; try again in a few seconds", retry_after=retry_after)


class FifoGate:
    """Admits one holder at a time in arrival order; a bounded line, with positions reported.

    A waiter that gives up (its client went away, or it was cancelled) leaves the line
    without disturbing the others.
    """

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        self._holder: object | None = None
        self._line: list[tuple[object, asyncio.Future[None], PositionCallback | None]] = []

    @property
    def waiting(self) -> int:
        return len(self._line)

    @property
    def busy(self) -> bool:
        return self._holder is not None

    @asynccontextmanager
    async def turn(self, on_position: PositionCallback | None = None) -> AsyncIterator[None]:
        token = object()
        if self._holder is None and not self._line:
            self._holder = token
        else:
            if len(self._line) >= self.limit:
                raise busy(self.name)
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._line.append((token, future, on_position))
            self._report()
            try:
                await future
            except BaseException:
                self._leave(token)
                raise
        if on_position:
            on_position(0)
        try:
            yield
        finally:
            self._release(token)

    def _leave(self, token: object) -> None:
        self._line = [entry for entry in self._line if entry[0] is not token]
        if self._holder is token:  # admitted at the moment it was cancelled
            self._release(token)
        self._report()

    def _release(self, token: object) -> None:
        if self._holder is not token:
            return
        self._holder = None
        while self._line:
            next_token, future, _ = self._line.pop(0)
            if not future.done():
                self._holder = next_token
                future.set_result(None)
                break
        self._report()

    def _report(self) -> None:
        for place, (_, future, callback) in enumerate(self._line, start=1):
            if callback and not future.done():
                callback(place)
