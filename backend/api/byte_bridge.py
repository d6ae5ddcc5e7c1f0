"""Bytes between a worker thread and the event loop, with backpressure both ways.

A backup is written, and a restore read, by blocking code (tarfile, SQLite, file I/O) that runs in
a worker thread, while the HTTP response or request body lives on the event loop. Each bridge is
a bounded asyncio queue: the side that produces waits while it is full, so neither a slow client
nor a slow disk makes the other side hold the whole archive in memory. Either side can walk away
(`abandon`): the thread then stops at its next read or write instead of waiting for ever.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["LoopReader", "LoopWriter"]

_END = object()
_POLL_S = 0.25


class _Bridge:
    def __init__(self, loop: asyncio.AbstractEventLoop, max_chunks: int) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[Any] = asyncio.Queue(max_chunks)
        self._abandoned = False

    def abandon(self) -> None:
        """The loop's side is done with it (the client left, or the request ended)."""
        self._abandoned = True

    def _wait(self, future: concurrent.futures.Future[Any]) -> Any:
        """On the thread: the queue operation's result, or ConnectionAbortedError once abandoned."""
        while True:
            try:
                return future.result(timeout=_POLL_S)
            except concurrent.futures.TimeoutError:
                if self._abandoned:
                    future.cancel()
                    raise ConnectionAbortedError("the other side of the transfer went away") from None


class LoopWriter(_Bridge):
    """A file a worker thread writes into (`write`, then `finish`), read on the loop by iterating."""

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._abandoned:
            raise ConnectionAbortedError("the other side of the transfer went away")
        self._wait(asyncio.run_coroutine_threadsafe(self._queue.put(bytes(data)), self._loop))
        return len(data)

    def flush(self) -> None:
        pass

    def finish(self, error: BaseException | None = None) -> None:
        """On the thread, at the end: the reader gets the end, or `error` raised."""
        try:
            self._wait(asyncio.run_coroutine_threadsafe(self._queue.put(error or _END), self._loop))
        except ConnectionAbortedError:
            pass  # nobody reads any more

    async def next(self) -> bytes | None:
        """On the loop: the next piece written, None at the end; the writer's error is raised."""
        item = await self._queue.get()
        if item is _END:
            return None
        if isinstance(item, BaseException):
            raise item
        return bytes(item)


class LoopReader(_Bridge, io.RawIOBase):
    """A file a worker thread reads from, fed on the loop by `feed` (a request body as it arrives)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_chunks: int = 32) -> None:
        _Bridge.__init__(self, loop, max_chunks)
        io.RawIOBase.__init__(self)
        self._pending = memoryview(b"")
        self._ended = False

    async def feed(self, chunks: AsyncIterator[bytes]) -> None:
        """On the loop: pass every chunk on, then the end, or the error that cut the stream off.
        Once the reader is abandoned the rest is read and dropped, so that a client still sending
        gets the answer (browsers report a connection closed mid-upload as a network error)."""
        try:
            async for chunk in chunks:
                if chunk and not self._abandoned:
                    await self._queue.put(chunk)
        except Exception as exc:
            if not self._abandoned:
                await self._queue.put(exc)
        else:
            if not self._abandoned:
                await self._queue.put(_END)

    def abandon(self) -> None:
        """On the loop, when the thread is done reading: a `feed` waiting for room goes on."""
        super().abandon()
        while not self._queue.empty():
            self._queue.get_nowait()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        if not self._pending:
            if self._ended:
                return 0
            item = self._wait(asyncio.run_coroutine_threadsafe(self._queue.get(), self._loop))
            if item is _END:
                self._ended = True
                return 0
            if isinstance(item, BaseException):
                self._ended = True
                raise item
            self._pending = memoryview(item)
        n = min(len(target), len(self._pending))
        target[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n
