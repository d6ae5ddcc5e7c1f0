"""One ASGI gate in front of everything: Host allowlist, credentials, same-origin, headers.

It sits below FastAPI and NiceGUI so it also covers NiceGUI's own routes (uploads,
socket.io polling) and the websocket, which route-level dependencies would miss.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from .owner import OwnerCredential

__all__ = ["AccessGuard", "SecurityMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CONTENT_SECURITY_POLICY = "; ".join((
    # Nothing is loaded from or sent to another origin: an answer whose Markdown holds an image
    # or link to a tracking address cannot make the browser fetch it. NiceGUI's pages need
    # inline scripts and styles and Vue's template compiler ('unsafe-eval').
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "worker-src 'self'",
    "manifest-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
]
COOKIE_MAX_AGE = 400 * 24 * 3600  # the longest browsers keep a cookie


class AccessGuard:
    """The decisions, kept free of ASGI plumbing so they can be tested directly."""

    def __init__(self, owner: OwnerCredential, hosts: set[str], public_prefixes: tuple[str, ...],
                 public_paths: set[str], secure_cookies: bool = False,
                 max_body_bytes: int = 4 * 1024 * 1024, body_limits: dict[str, int] | None = None) -> None:
        self.owner = owner
        self.max_body_bytes = max_body_bytes
        self.body_limits = body_limits or {}
        """Paths with their own limit (model uploads), instead of `max_body_bytes`."""
        self.hosts = {h.lower() for h in hosts}
        self.public_prefixes = public_prefixes
        self.public_paths = public_paths
        self.secure_cookies = secure_cookies

    def host_ok(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        try:
            hostname = urlsplit(f"//{host_header}").hostname
        except ValueError:
            return False
        return hostname is not None and hostname.lower() in self.hosts

    def origin_ok(self, origin: str | None, host_header: str | None) -> bool:
        """Same origin: the Origin's host:port is the Host the request was sent to."""
        if origin is None:
            return True  # not a browser cross-site request (browsers send Origin on those)
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        return bool(parts.netloc) and parts.netloc.lower() == (host_header or "").lower()

    def body_limit(self, path: str) -> int:
        return self.body_limits.get(path, self.max_body_bytes)

    def is_public(self, path: str) -> bool:
        return path in self.public_paths or path.startswith(self.public_prefixes)

    def authenticated(self, headers: dict[str, str]) -> str | None:
        """'cookie', 'bearer' or None."""
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and self.owner.token_ok(auth[7:].strip()):
            return "bearer"
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:
            return None
        morsel = cookie.get(OwnerCredential.COOKIE)
        if morsel is not None and self.owner.session_ok(morsel.value):
            return "cookie"
        return None

    def session_cookie(self) -> str:
        parts = [f"{OwnerCredential.COOKIE}={self.owner.session_value}", "Path=/", "HttpOnly",
                 "SameSite=Strict", f"Max-Age={COOKIE_MAX_AGE}"]
        if self.secure_cookies:
            parts.append("Secure")
        return "; ".join(parts)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, guard: AccessGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        guard, headers, path = self.guard, _headers(scope), scope["path"]
        if not guard.host_ok(headers.get("host")):
            return await _respond(send, 400, "invalid_host", "This server does not answer to that host name.",
                                  path)
        if guard.is_public(path):
            return await self.app(scope, receive, _with_headers(send, private=False))
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if "token" in query and scope["method"] == "GET" and not path.startswith("/v1/"):
            if guard.owner.token_ok(query["token"]):
                rest = urlencode({k: v for k, v in query.items() if k != "token"})
                return await _sign_in(send, guard, path + (f"?{rest}" if rest else ""))
            return await _respond(send, 401, "invalid_token", "That link's token is not valid.", path)
        how = guard.authenticated(headers)
        if how is None:
            return await _respond(send, 401, "unauthorized",
                                  "Sign in with the link that `gridless serve` printed.", path)
        if how == "cookie" and scope["method"] not in SAFE_METHODS:
            if not guard.origin_ok(headers.get("origin"), headers.get("host")) \
                    or headers.get("sec-fetch-site") == "cross-site":
                return await _respond(send, 403, "cross_origin", "Cross-site requests are refused.", path)
        declared, limit = headers.get("content-length", ""), guard.body_limit(path)
        if declared and (not declared.isdigit() or int(declared) > limit):
            return await _respond(send, 413, "request_too_large",
                                  f"The request body is larger than {limit:,} bytes.", path)
        await self.app(scope, _capped(receive, limit), _with_headers(send, private=True))

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        guard, headers = self.guard, _headers(scope)
        ok = guard.host_ok(headers.get("host")) \
            and guard.origin_ok(headers.get("origin"), headers.get("host")) \
            and guard.authenticated(headers) is not None
        if ok:
            return await self.app(scope, receive, send)
        await receive()  # websocket.connect
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": 401,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "websocket.http.response.body", "body": b"unauthorized"})
        else:
            await send({"type": "websocket.close", "code": 4401})


def _capped(receive: Receive, limit: int) -> Receive:
    """A body sent without a length (chunked) is cut off at the limit: the app sees the
    client leave rather than reading an unbounded body into memory."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                return {"type": "http.disconnect"}
        return message
    return wrapped


def _with_headers(send: Send, *, private: bool) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            existing = {k.lower() for k, _ in message.get("headers", [])}
            extra = [h for h in SECURITY_HEADERS if h[0] not in existing]
            if private and b"cache-control" not in existing:
                extra.append((b"cache-control", b"no-store"))
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)
    return wrapped


async def _respond(send: Send, status: int, code: str, message: str, path: str) -> None:
    if path.startswith("/v1/") or path == "/v1":
        body = json.dumps({"error": {"message": message, "type": "authentication_error" if status == 401
                                     else "invalid_request_error", "param": None, "code": code}}).encode()
        ctype = b"application/json"
    else:
        body = (f"<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
                f"<title>gridless</title><h1>gridless</h1><p>{message}</p>").encode()
        ctype = b"text/html; charset=utf-8"
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS,
               (b"cache-control", b"no-store")]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="gridless"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _sign_in(send: Send, guard: AccessGuard, target: str) -> None:
    """Set the cookie on a page that then navigates itself: a redirect straight from a
    link opened elsewhere would not carry a SameSite=Strict cookie on its next hop."""
    safe_target = json.dumps(target if target.startswith("/") and not target.startswith("//") else "/")
    safe_target = safe_target.replace("<", "\\u003c")
    body = (f"<!doctype html><meta charset=utf-8><title>gridless</title>"
            f"<script>location.replace({safe_target})</script>"
            f"<noscript><a href='/'>Continue</a></noscript>").encode()
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode()),
        (b"set-cookie", guard.session_cookie().encode()), (b"cache-control", b"no-store"),
        *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})
