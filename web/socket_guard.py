"""Keep each page's socket to its own page.

NiceGUI routes a socket message to whichever page client the message names. The
security gate already refuses sockets without a credential; this adds that a socket may
only attach to a page opened by the same principal (a paired tablet cannot attach to
the owner's Models page even if it learnt its id), and that its messages reach only the
page it attached to.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import socketio
from nicegui import core
from nicegui.client import Client

from backend.security.devices import Principal
from backend.security.middleware import principal_of

__all__ = ["client_principal", "install", "same_origin"]

ROUTED_EVENTS = ("event", "javascript_response", "ack", "log")


def client_principal(client_id: str) -> Principal | None:
    """Who opened the page whose client has this id."""
    client = Client.instances.get(client_id)
    request = getattr(client, "request", None) if client is not None else None
    return principal_of(request.scope) if request is not None else None


def same_origin(origin: str | None, environ: dict[str, Any]) -> bool:
    """engine.io's own origin check, with the scheme the request really came over: its ASGI
    driver takes every request for plain HTTP, which would refuse the page on an HTTPS share."""
    scope = environ.get("asgi.scope") or {}
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    return origin == f"{scheme}://{environ.get('HTTP_HOST', '')}"


def _socket_principal(environ: dict[str, Any] | None) -> Principal | None:
    scope = (environ or {}).get("asgi.scope")
    return principal_of(scope) if isinstance(scope, dict) else None


def _may_attach(environ: dict[str, Any] | None, client_id: Any) -> bool:
    if not isinstance(client_id, str):
        return False
    owner = client_principal(client_id)
    return owner is not None and owner == _socket_principal(environ)


def install() -> None:
    sio = core.sio
    handlers: dict[str, Callable[..., Any]] = sio.handlers["/"]
    if getattr(handlers["connect"], "gridless_guarded", False):
        return
    original_connect, original_handshake = handlers["connect"], handlers["handshake"]

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> Any:
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        if query.get("implicit_handshake") == "true" and not _may_attach(environ, query.get("client_id")):
            raise socketio.exceptions.ConnectionRefusedError("This page belongs to someone else.")
        return await original_connect(sid, environ, auth)

    async def handshake(sid: str, data: dict[str, Any]) -> Any:
        if not isinstance(data, dict) or not _may_attach(sio.get_environ(sid), data.get("client_id")):
            return False
        return await original_handshake(sid, data)

    connect.gridless_guarded = True  # type: ignore[attr-defined]
    handlers["connect"], handlers["handshake"] = connect, handshake
    for name in ROUTED_EVENTS:
        handlers[name] = _only_own_client(sio, handlers[name])


def _only_own_client(sio: socketio.AsyncServer, handler: Callable[..., Any]) -> Callable[..., Any]:
    """A message is passed on only when it names the client its socket handshook with
    (the handshake put the socket in a room of that name)."""
    def allowed(sid: str, msg: Any) -> bool:
        return isinstance(msg, dict) and msg.get("client_id") in sio.rooms(sid)

    if inspect.iscoroutinefunction(handler):
        async def guarded_async(sid: str, msg: Any) -> Any:
            return await handler(sid, msg) if allowed(sid, msg) else None
        return guarded_async

    def guarded(sid: str, msg: Any) -> Any:
        return handler(sid, msg) if allowed(sid, msg) else None
    return guarded
