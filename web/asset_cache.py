"""Immutable assets answered from memory.

A page's first load asks for some 27 files: NiceGUI's versioned scripts and styles, the
custom elements' modules and the app's own static files. Served from disk, each costs a
few thread hops, and the compression middleware packs it again at its highest level every
time (about 50 ms of the server's CPU per new client here, for the same bytes). These files
do not change while the server runs (NiceGUI's carry its version in the path, the app's
come with the release), so the first answer for each is kept — as compressed, or not, as
the client asked — and later requests get it straight back.

It sits inside the security gate (every request is still checked) and outside the
compression, so what it keeps is what went on the wire. Only plain GETs of whole files
are kept: no query, no range, no conditional request, status 200, no cookie, bounded size.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["AssetCache"]

Message = MutableMapping[str, Any]
ASGIApp = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[None]]

_PASS_THROUGH = (b"range", b"if-none-match", b"if-modified-since", b"if-range")


class AssetCache:
    def __init__(self, app: ASGIApp, *, prefixes: tuple[str, ...], max_entry_bytes: int = 4 * 1024 * 1024,
                 max_total_bytes: int = 32 * 1024 * 1024) -> None:
        self.app = app
        self.prefixes = prefixes
        self.max_entry_bytes = max_entry_bytes
        self.max_total_bytes = max_total_bytes
        self.total_bytes = 0
        self._entries: dict[tuple[str, bool], tuple[list[tuple[bytes, bytes]], bytes]] = {}

    def _key(self, scope: MutableMapping[str, Any]) -> tuple[str, bool] | None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get("query_string"):
            return None
        path = scope["path"]
        if not path.startswith(self.prefixes):
            return None
        headers = dict(scope.get("headers", []))
        if any(name in headers for name in _PASS_THROUGH):
            return None
        # the compression middleware's own test, so the kept answer is the one it would give
        return path, b"gzip" in headers.get(b"accept-encoding", b"")

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        key = self._key(scope)
        if key is None:
            await self.app(scope, receive, send)
            return
        hit = self._entries.get(key)
        if hit is not None:
            await send({"type": "http.response.start", "status": 200, "headers": hit[0]})
            await send({"type": "http.response.body", "body": hit[1]})
            return
        headers: list[tuple[bytes, bytes]] | None = None
        parts: list[bytes] = []
        size = 0

        async def keep(message: Message) -> None:
            nonlocal headers, size
            if message["type"] == "http.response.start":
                raw = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
                if message["status"] == 200 and not any(k.lower() == b"set-cookie" for k, _ in raw):
                    headers = raw
            elif message["type"] == "http.response.body" and headers is not None:
                chunk = bytes(message.get("body", b""))
                size += len(chunk)
                if size > self.max_entry_bytes:
                    headers = None
                    parts.clear()
                else:
                    parts.append(chunk)
                    if (not message.get("more_body", False) and key not in self._entries
                            and self.total_bytes + size <= self.max_total_bytes):
                        self._entries[key] = (headers, b"".join(parts))
                        self.total_bytes += size
            await send(message)

        await self.app(scope, receive, keep)
