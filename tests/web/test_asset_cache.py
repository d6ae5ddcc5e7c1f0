"""Immutable assets answered from memory: what is kept, what never is, and that the gate still
stands in front of what is kept."""

from __future__ import annotations

import gzip
from collections.abc import MutableMapping
from typing import Any

import pytest
from nicegui.testing import User

from web.asset_cache import AssetCache

Message = MutableMapping[str, Any]


class FileApp:
    """Answers every request with `body` (gzipped when the client accepts it, as the compression
    middleware would) and counts how often it was asked."""

    def __init__(self, body: bytes = b"x" * 1000, *, status: int = 200,
                 extra_headers: list[tuple[bytes, bytes]] | None = None, chunks: int = 1) -> None:
        self.body, self.status, self.extra_headers, self.chunks = body, status, extra_headers or [], chunks
        self.calls = 0

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        self.calls += 1
        zipped = b"gzip" in dict(scope["headers"]).get(b"accept-encoding", b"")
        body = gzip.compress(self.body, mtime=0) if zipped else self.body
        headers = [(b"content-type", b"text/javascript"), (b"content-length", str(len(body)).encode()),
                   *([(b"content-encoding", b"gzip")] if zipped else []), *self.extra_headers]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        step = -(-len(body) // self.chunks)
        for i in range(self.chunks):
            await send({"type": "http.response.body", "body": body[i * step:(i + 1) * step],
                        "more_body": i < self.chunks - 1})


async def fetch(app: Any, path: str = "/static/app.js", *, method: str = "GET", query: bytes = b"",
                headers: list[tuple[bytes, bytes]] | None = None) -> tuple[int, dict[bytes, bytes], bytes]:
    scope = {"type": "http", "method": method, "path": path, "query_string": query,
             "headers": headers if headers is not None else [(b"accept-encoding", b"gzip, deflate")]}
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), body


def cache(inner: FileApp, **limits: int) -> AssetCache:
    return AssetCache(inner, prefixes=("/static/", "/_nicegui/3.18.0/"), **limits)


async def test_a_second_request_is_answered_from_memory_with_the_same_bytes_and_headers() -> None:
    inner = FileApp(chunks=3)
    app = cache(inner)
    first = await fetch(app)
    second = await fetch(app)
    assert inner.calls == 1
    assert second == first
    assert first[1][b"content-encoding"] == b"gzip"
    assert gzip.decompress(second[2]) == inner.body


async def test_compressed_and_plain_answers_are_kept_apart() -> None:
    inner = FileApp()
    app = cache(inner)
    zipped = await fetch(app)
    plain = await fetch(app, headers=[(b"accept-encoding", b"identity")])
    again = await fetch(app, headers=[])
    assert inner.calls == 2
    assert plain[2] == inner.body and b"content-encoding" not in plain[1]
    assert again == plain
    assert zipped[2] != plain[2]


@pytest.mark.parametrize(("path", "method", "query", "header"), [
    ("/api/conversations", "GET", b"", None),
    ("/static/app.js", "HEAD", b"", None),
    ("/static/app.js", "POST", b"", None),
    ("/static/app.js", "GET", b"v=2", None),
    ("/static/app.js", "GET", b"", (b"range", b"bytes=0-9")),
    ("/static/app.js", "GET", b"", (b"if-none-match", b'"abc"')),
    ("/static/app.js", "GET", b"", (b"if-modified-since", b"Mon, 07 Dec 2026 06:18:03 GMT")),
])
async def test_what_is_not_a_plain_get_of_a_whole_asset_always_goes_through(
        path: str, method: str, query: bytes, header: tuple[bytes, bytes] | None) -> None:
    inner = FileApp()
    app = cache(inner)
    headers = [(b"accept-encoding", b"gzip"), *([header] if header else [])]
    for _ in range(2):
        await fetch(app, path, method=method, query=query, headers=headers)
    assert inner.calls == 2
    assert app.total_bytes == 0


@pytest.mark.parametrize("inner", [
    FileApp(status=404),
    FileApp(extra_headers=[(b"Set-Cookie", b"session=1")]),
], ids=["not-found", "sets-a-cookie"])
async def test_an_answer_that_is_not_a_plain_file_is_never_kept(inner: FileApp) -> None:
    app = cache(inner)
    await fetch(app)
    await fetch(app)
    assert inner.calls == 2


async def test_a_file_over_the_entry_limit_is_not_kept_and_the_total_is_bounded() -> None:
    big = FileApp(body=bytes(range(256)) * 64, chunks=4)  # 16 KiB that gzip hardly shrinks
    app = cache(big, max_entry_bytes=4096)
    status, _, body = await fetch(app, headers=[])
    assert status == 200 and body == big.body  # the client still gets all of it
    await fetch(app, headers=[])
    assert big.calls == 2 and app.total_bytes == 0

    small = FileApp(body=b"y" * 3000)
    app = cache(small, max_total_bytes=5000)
    await fetch(app, "/static/a.js", headers=[])
    await fetch(app, "/static/b.js", headers=[])  # would pass the total: answered, not kept
    await fetch(app, "/static/a.js", headers=[])
    await fetch(app, "/static/b.js", headers=[])
    assert small.calls == 3
    assert app.total_bytes == 3000


async def test_the_app_keeps_its_assets_behind_the_gate(user: User) -> None:
    """In the assembled app: an asset comes back the same the second time, with the gate's
    headers, and a request with a Host that is not the server's is still refused."""
    first = await user.http_client.get("/static/app.js")
    second = await user.http_client.get("/static/app.js")
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert first.headers.get("content-encoding") == second.headers.get("content-encoding") == "gzip"
    assert second.headers["content-security-policy"] == first.headers["content-security-policy"]
    refused = await user.http_client.get("/static/app.js", headers={"Host": "attacker.example"})
    assert refused.status_code == 400
