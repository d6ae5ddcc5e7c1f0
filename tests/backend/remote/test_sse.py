"""`server_events` over hand-made chunk lists: every way a stream may be cut into chunks reads the
same, the fields that are not data are left aside, and every limit ends the stream with
`remote_failed` saying what was wrong."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable

import pytest

from backend.core.errors import AppError, ErrorCode
from backend.remote.sse import StreamLimits, server_events

STREAM = (
    ": keep-alive comment\r\n"
    "event: message\r\n"
    "id: 7\r\n"
    'data: {"a": 1}\r\n'
    "\r\n"
    "retry: 1000\n"
    "data: line one\n"
    "data:line two, no space\n"
    "data:  two spaces keep one\n"
    "\n"
    ": another comment\n"
    "\n"
    "data: données é 😀\n"
    "\n"
    "data: [DONE]\n"
    "\n"
    "data: after the end\n"
    "\n"
).encode()
EXPECTED = ['{"a": 1}', "line one\nline two, no space\n two spaces keep one", "données é 😀"]


async def chunked(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def events(parts: Iterable[bytes], limits: StreamLimits | None = None) -> list[str]:
    return [e async for e in server_events(chunked(parts), limits or StreamLimits(), "box")]


async def failure(parts: Iterable[bytes] | AsyncIterator[bytes], limits: StreamLimits) -> tuple[AppError, list[str]]:
    got: list[str] = []
    source = parts if isinstance(parts, AsyncIterator) else chunked(parts)
    with pytest.raises(AppError) as caught:
        async for event in server_events(source, limits, "box"):
            got.append(event)
    assert caught.value.code == ErrorCode.REMOTE_FAILED
    assert caught.value.message.startswith("box ")
    return caught.value, got


async def test_whole_stream() -> None:
    assert await events([STREAM]) == EXPECTED


async def test_cut_at_every_byte() -> None:
    for cut in range(len(STREAM) + 1):
        assert await events([STREAM[:cut], STREAM[cut:]]) == EXPECTED, cut
    assert await events([STREAM[i:i + 1] for i in range(len(STREAM))]) == EXPECTED


async def test_cut_at_every_pair_of_places() -> None:
    for first in range(0, len(STREAM), 7):
        for second in range(first, len(STREAM), 5):
            assert await events([STREAM[:first], STREAM[first:second], STREAM[second:]]) == EXPECTED


async def test_empty_chunks_and_lone_cr() -> None:
    parts = [b"", b"data: a", b"", b"\r", b"\n", b"\r\n", b""]
    assert await events(parts) == ["a"]


async def test_done_ends_without_reading_further() -> None:
    pulled: list[bytes] = []

    async def source() -> AsyncIterator[bytes]:
        for part in (b"data: one\n\n", b"data: [DONE]\n\n", b"data: two\n\n"):
            pulled.append(part)
            yield part
        raise AssertionError("read past [DONE]")

    got = [e async for e in server_events(source(), StreamLimits(), "box")]
    assert got == ["one"]
    assert len(pulled) == 2


async def test_last_event_without_blank_line() -> None:
    assert await events([b"data: one\n\ndata: two\n"]) == ["one", "two"]
    assert await events([b"data: one\n\ndata: two\r\n"]) == ["one", "two"]
    assert await events([b"data: one\n\ndata: a\ndata: b\n"]) == ["one", "a\nb"]
    # a line the stream never finished is not read (as the event stream standard has it)
    assert await events([b"data: one\n\ndata: two"]) == ["one"]
    assert await events([b"data: one\n\ndata: [DONE]"]) == ["one"]
    assert await events([b"data: one\n\ndata: [DONE]\n"]) == ["one"]
    assert await events([b": only a comment\n"]) == []
    assert await events([]) == []


async def test_fields_without_data_make_no_event() -> None:
    assert await events([b"event: ping\nid: 1\n\n: hi\n\ndata: x\n\n"]) == ["x"]


async def test_line_over_the_limit() -> None:
    limits = StreamLimits(max_line=100)
    error, _ = await failure([b"data: " + b"x" * 60, b"x" * 60], limits)
    assert "line longer than" in error.message
    # a comment is not data, but its line is held as long: the same limit
    error, _ = await failure([b":" + b"y" * 80, b"y" * 80, b"\n\n"], limits)
    assert "line longer than" in error.message
    # within the limit, cut the same way, it is read
    assert await events([b"data: " + b"x" * 40, b"x" * 40 + b"\n\n"], limits) == ["x" * 80]


async def test_event_over_the_limit() -> None:
    limits = StreamLimits(max_line=100)
    lines = b"".join(b"data: " + b"z" * 40 + b"\n" for _ in range(3)) + b"\n"
    error, _ = await failure([lines], limits)
    assert "event larger than" in error.message
    # the size is each event's own: many events of 80 pass
    two = b"".join(b"data: " + b"z" * 40 + b"\n" for _ in range(2)) + b"\n"
    assert len(await events([two * 10], limits)) == 10


async def test_total_bytes_over_the_limit() -> None:
    limits = StreamLimits(max_bytes=1000)
    event = b"data: " + b"w" * 44 + b"\n\n"  # 52 bytes
    error, got = await failure([event] * 100, limits)
    assert "sent more than" in error.message
    assert 0 < len(got) <= 1000 // len(event)
    assert len(await events([event] * 19, limits)) == 19


async def test_past_its_time() -> None:
    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b'data: {"tick": 1}\n\n'
            await asyncio.sleep(0.02)

    started = time.monotonic()
    error, got = await failure(endless(), StreamLimits(max_seconds=0.3))
    assert "still streaming after" in error.message
    assert len(got) >= 3  # what came within the time was read
    assert time.monotonic() - started < 2.0


async def test_html_is_not_an_event_stream() -> None:
    page = b"<!DOCTYPE html>\n<html><head><title>Login</title></head></html>\n"
    error, _ = await failure([page], StreamLimits())
    assert "did not answer with an event stream" in error.message
    error, _ = await failure([b"data: ok\n\n", b'<meta content="a:b">\n'], StreamLimits())
    assert "not an event field" in error.message


async def test_not_utf8() -> None:
    error, _ = await failure([b"data: caf\xe9\n\n"], StreamLimits())
    assert "not UTF-8" in error.message
    # a character cut between chunks is still UTF-8
    text = "caf\u00e9".encode()
    assert await events([b"data: " + text[:-1], text[-1:] + b"\n\n"]) == ["café"]
