"""Server-sent events from another machine, read within bounds: how long a line may be, how
many bytes a stream may hold, and how long it may last. A server that breaks any of them, or
that sends something that is not an event stream, ends the stream with `RemoteFailed`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from ..core.errors import AppError, ErrorCode
from ..core.units import format_limit

__all__ = ["StreamLimits", "server_events"]


@dataclass(frozen=True, slots=True)
class StreamLimits:
    max_line: int = 1024 * 1024
    """One line, and one event's data."""
    max_bytes: int = 32 * 1024 * 1024
    """The whole stream."""
    max_seconds: float = 1800.0
    """From the first byte to the last."""


def _failed(who: str, why: str) -> AppError:
    return AppError(ErrorCode.REMOTE_FAILED, f"{who} {why}")


async def server_events(chunks: AsyncIterable[bytes], limits: StreamLimits, who: str) -> AsyncIterator[str]:
    """The `data` of each event in the stream, in order; ends at `[DONE]` or when the stream
    does. Comments, `event:`, `id:` and `retry:` fields are read and left aside."""
    deadline = time.monotonic() + limits.max_seconds
    pending = bytearray()
    data: list[str] = []
    data_size = 0
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limits.max_bytes:
            raise _failed(who, f"sent more than {format_limit(limits.max_bytes)} in one answer; it was stopped.")
        if time.monotonic() > deadline:
            raise _failed(who, f"was still streaming after {limits.max_seconds:.0f} s; the answer was stopped.")
        pending += chunk
        start = 0
        while True:
            end = pending.find(b"\n", start)
            if end < 0:
                break
            line = bytes(pending[start:end])
            start = end + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:  # the end of an event
                if data:
                    event = "\n".join(data)
                    data, data_size = [], 0
                    if event.strip() == "[DONE]":
                        return
                    yield event
                continue
            if line.startswith(b":"):
                continue
            name, _, value = line.partition(b":")
            if name == b"data":
                text = _text(value[1:] if value.startswith(b" ") else value, who)
                data_size += len(text)
                if data_size > limits.max_line:
                    raise _failed(who, f"sent an event larger than {format_limit(limits.max_line)}.")
                data.append(text)
            elif name not in (b"event", b"id", b"retry"):
                raise _failed(who, "did not answer with an event stream (a line that is not an event field).")
        del pending[:start]
        if len(pending) > limits.max_line:
            raise _failed(who, f"sent a line longer than {format_limit(limits.max_line)}.")
    if data:  # a last event without its blank line
        event = "\n".join(data)
        if event.strip() != "[DONE]":
            yield event


def _text(raw: bytes, who: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _failed(who, "sent text that is not UTF-8.") from None
