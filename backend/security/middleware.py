"""One ASGI gate in front of everything: Host allowlist, credentials, same-origin, headers.

It sits below FastAPI and NiceGUI so it also covers NiceGUI's own routes (uploads,
socket.io polling) and the websocket, which route-level dependencies would miss. What it
decides is in `policy.py`; this module applies it to HTTP requests and websockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ..core.errors import AppError, ErrorCode, render_error
from ..core.units import format_limit
from .devices import Principal
from .policy import SAFE_METHODS, SECURITY_HEADERS, AccessGuard, key_refusal

__all__ = ["SecurityMiddleware", "principal_of"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
STATE_KEY = "gridless_principal"

def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


def _local(scope: Scope) -> str | None:
    server = scope.get("server")
    return str(server[0]) if server else None


def principal_of(scope: Scope) -> Principal | None:
    """The principal the gate found for this request (pages read it from `request.scope`)."""
    state = scope.get("state")
    return state.get(STATE_KEY) if isinstance(state, dict) else None


def _set_principal(scope: Scope, principal: Principal) -> None:
    state = scope.get("state")
    if not isinstance(state, dict):
        state = scope["state"] = {}
    state[STATE_KEY] = principal


NICEGUI_UPLOAD = re.compile(r"^/_nicegui/client/([^/]+)/upload/")


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
        guard, headers, path, client = self.guard, _headers(scope), scope["path"], _client(scope)
        if not guard.host_ok(headers.get("host"), _local(scope)):
            refused = AppError(ErrorCode.INVALID_HOST, "This server does not answer to that host name.")
            return await _respond(send, refused, path)
        unsafe = scope["method"] not in SAFE_METHODS
        if guard.is_public(path):
            if unsafe and not guard.origin_ok(headers.get("origin"), headers.get("host")):
                return await _respond(send, AppError(ErrorCode.CROSS_ORIGIN, "Cross-site requests are refused."), path)
            if path in guard.public_paths:  # a route of ours that may care who asks (the pair page);
                found = guard.authenticated(headers, client)  # static files do not
                if found is not None and found[0].key_id is None:  # an app's key is nobody there
                    _set_principal(scope, found[0])
            return await self.app(scope, receive, _with_headers(send, private=False))
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if "token" in query and scope["method"] == "GET" and not path.startswith("/v1/"):
            return await self._owner_link(scope, send, query, path, client)
        found = guard.authenticated(headers, client)
        if found is None:
            if headers.get("authorization"):
                wait = guard.owner_guess_allowed(client)
                if wait > 0:
                    refused = AppError(ErrorCode.TOO_MANY_ATTEMPTS,
                                       f"Too many wrong keys; try again in {int(wait) + 1} s.", retry_after=wait)
                    return await _respond(send, refused, path)
                guard.owner_guess_failed(client)
            return await _respond(send, AppError(ErrorCode.UNAUTHORIZED, self._sign_in_hint(scope)), path)
        principal, how = found
        if principal.key_id is not None:  # an app's key opens the routes of its scopes and nothing else
            refusal = key_refusal(principal, scope["method"], path)
            if refusal:
                return await _respond(send, AppError(ErrorCode.KEY_SCOPE, refusal), path)
        elif not principal.is_owner:
            refusal = self._device_refusal(principal, path)
            if refusal:
                return await _respond(send, AppError(ErrorCode.OWNER_ONLY, refusal), path)
        if how == "cookie" and unsafe and not guard.same_origin_write(headers):
            return await _respond(send, AppError(ErrorCode.CROSS_ORIGIN, "Cross-site requests are refused."), path)
        declared, limit = headers.get("content-length", ""), guard.body_limit(path)
        if declared and (not declared.isdigit() or int(declared) > limit):
            refused = AppError(ErrorCode.REQUEST_TOO_LARGE,
                               f"The request is larger than the limit of {format_limit(limit)}.")
            return await _respond(send, refused, path)
        _set_principal(scope, principal)
        guard.key_used(principal)
        receive = _capped(receive, limit)
        if principal.device_id is None:
            return await self.app(scope, receive, _with_headers(send, private=True))
        await _revocable(self.app, scope, receive, _with_headers(send, private=True), guard, principal.device_id)

    def _sign_in_hint(self, scope: Scope) -> str:
        if _local(scope) in self.guard.lan_addresses():
            return "This device is not paired. On the phone, open Share and scan its QR code with this device."
        return "Sign in with the link that `gridless serve` printed."

    def _device_refusal(self, principal: Principal, path: str) -> str | None:
        if self.guard.is_admin(path):
            return "Only the phone that runs gridless can open this."
        upload = NICEGUI_UPLOAD.match(path)
        if upload and self.guard.client_principal is not None \
                and self.guard.client_principal(upload.group(1)) != principal:
            return "That upload belongs to another page."
        return None

    async def _owner_link(self, scope: Scope, send: Send, query: dict[str, str], path: str, client: str) -> None:
        guard = self.guard
        wait = guard.owner_guess_allowed(client)
        if wait > 0:
            refused = AppError(ErrorCode.TOO_MANY_ATTEMPTS, f"Too many wrong links; try again in {int(wait) + 1} s.",
                               retry_after=wait)
            return await _respond(send, refused, path)
        if guard.owner.token_ok(query["token"]):
            rest = urlencode({k: v for k, v in query.items() if k != "token"})
            return await _sign_in(send, guard.session_cookie(secure=scope.get("scheme") == "https"),
                                  path + (f"?{rest}" if rest else ""))
        guard.owner_guess_failed(client)
        return await _respond(send, AppError(ErrorCode.INVALID_TOKEN, "That link's token is not valid."), path)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        guard, headers = self.guard, _headers(scope)
        found = None
        if guard.host_ok(headers.get("host"), _local(scope)) \
                and guard.origin_ok(headers.get("origin"), headers.get("host")):
            found = guard.authenticated(headers, _client(scope))
        if found is not None and found[0].key_id is not None:
            found = None  # an app's key opens no websocket
        if found is not None and (found[0].is_owner or not guard.is_admin(scope["path"])):
            _set_principal(scope, found[0])
            if found[0].device_id is None:
                return await self.app(scope, receive, send)
            return await _revocable(self.app, scope, receive, send, guard, found[0].device_id)
        await receive()  # websocket.connect
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": 401,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "websocket.http.response.body", "body": b"unauthorized"})
        else:
            await send({"type": "websocket.close", "code": 4401})


async def _revocable(app: ASGIApp, scope: Scope, receive: Receive, send: Send, guard: AccessGuard,
                     device_id: str) -> None:
    """Run a paired device's request or websocket so that revoking the device ends it at
    once: the app is told the client left and a websocket is closed from our side."""
    revoked = guard.track(device_id)
    websocket = scope["type"] == "websocket"
    closed = False

    async def guarded_receive() -> Message:
        nonlocal closed
        if not revoked.is_set():
            incoming = asyncio.ensure_future(receive())
            waiter = asyncio.ensure_future(revoked.wait())
            try:
                done, _ = await asyncio.wait({incoming, waiter}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            if incoming in done:
                return incoming.result()
            incoming.cancel()
        if websocket and not closed:
            closed = True
            with contextlib.suppress(Exception):  # the client may be gone already
                await send({"type": "websocket.close", "code": 4403, "reason": "access revoked"})
        return {"type": "websocket.disconnect", "code": 4403} if websocket else {"type": "http.disconnect"}

    async def guarded_send(message: Message) -> None:
        if closed:
            return  # we closed the socket; the app learns it on its next receive
        await send(message)

    try:
        await app(scope, guarded_receive, guarded_send)
    finally:
        guard.untrack(device_id, revoked)


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


async def _respond(send: Send, error: AppError, path: str) -> None:
    body, media_type, extra = render_error(error, path)
    headers = [(b"content-type", media_type.encode()), (b"content-length", str(len(body)).encode()),
               *SECURITY_HEADERS, (b"cache-control", b"no-store"),
               *((k.lower().encode(), v.encode()) for k, v in extra.items())]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _sign_in(send: Send, cookie: str, target: str) -> None:
    """Set the cookie on a page that then navigates itself: a redirect straight from a
    link opened elsewhere would not carry a SameSite=Strict cookie on its next hop."""
    safe_target = json.dumps(target if target.startswith("/") and not target.startswith("//") else "/")
    safe_target = safe_target.replace("<", "\\u003c")
    body = (f"<!doctype html><meta charset=utf-8><title>gridless</title>"
            f"<script>location.replace({safe_target})</script>"
            f"<noscript><a href='/'>Continue</a></noscript>").encode()
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode()),
        (b"set-cookie", cookie.encode()), (b"cache-control", b"no-store"),
        *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})
