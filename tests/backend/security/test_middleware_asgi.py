"""The security gate driven directly as ASGI, with a small app behind it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from backend.security.devices import OWNER, DeviceStore, Principal
from backend.security.middleware import (
    ASGIApp,
    Message,
    Receive,
    Scope,
    SecurityMiddleware,
    Send,
    principal_of,
)
from backend.security.owner import OwnerCredential
from backend.security.policy import AccessGuard
from backend.storage.db import Database

TOKEN = "a-very-secret-owner-token"
OWNER_COOKIE = f"gridless_session={OwnerCredential(TOKEN).session_value}"
LAN = "192.168.1.20"
TABLET = "192.168.1.30"
LOOPBACK_HOST = "127.0.0.1:8765"
LAN_HOST = f"{LAN}:8765"
BODY_LIMIT = 1000


@dataclass
class Gate:
    devices: DeviceStore
    guard: AccessGuard
    pages: dict[str, Principal]
    seen: list[Principal | None] = field(default_factory=list)
    """The principal each request that reached the app carried."""

    def middleware(self, app: ASGIApp | None = None) -> SecurityMiddleware:
        return SecurityMiddleware(app or self.ok_app, self.guard)

    async def ok_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.seen.append(principal_of(scope))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
async def gate(tmp_path: Path) -> AsyncIterator[Gate]:
    db = Database(tmp_path / "g.db")
    await db.open()
    devices = DeviceStore(db, 3600)
    pages: dict[str, Principal] = {}
    guard = AccessGuard(OwnerCredential(TOKEN), {"127.0.0.1", "localhost"}, public_prefixes=("/static/",),
                        public_paths={"/healthz"}, devices=devices, lan_addresses=lambda: {LAN},
                        admin_prefixes=("/models", "/api/devices"), client_principal=pages.get,
                        max_body_bytes=BODY_LIMIT)
    yield Gate(devices, guard, pages)
    await db.close()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_scope(method: str, path: str, headers: dict[str, str], *, lan: bool = False,
               query: str = "") -> dict[str, Any]:
    host = LAN_HOST if lan else LOOPBACK_HOST
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http",
            "method": method, "path": path, "raw_path": path.encode(), "query_string": query.encode(),
            "headers": [(k.lower().encode(), v.encode()) for k, v in {"host": host, **headers}.items()],
            "client": (TABLET if lan else "127.0.0.1", 50000), "server": (LAN if lan else "127.0.0.1", 8765)}


async def call(app: SecurityMiddleware, method: str, path: str, headers: dict[str, str] | None = None, *,
               lan: bool = False, query: str = "", body: bytes = b"") -> Response:
    sent: list[Message] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(app(http_scope(method, path, headers or {}, lan=lan, query=query), receive, send), 1)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body_out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Response(start["status"], {k.decode(): v.decode() for k, v in start.get("headers", [])}, body_out)


async def paired(gate: Gate, name: str = "Tablet") -> tuple[Principal, str]:
    device, token = await gate.devices.add(name, TABLET)
    return device.principal, f"gridless_device={token}"


# requests


async def test_private_path_needs_credentials(gate: Gate) -> None:
    app = gate.middleware()
    for path in ("/", "/c/abc", "/models", "/_nicegui/client/x/upload/y"):
        response = await call(app, "GET", path)
        assert response.status == 401, path
        assert response.headers["www-authenticate"] == 'Bearer realm="gridless"'
        assert response.headers["cache-control"] == "no-store"
    api = await call(app, "GET", "/v1/models", lan=True)
    assert api.status == 401 and api.headers["content-type"] == "application/json"
    assert api.json()["error"]["type"] == "authentication_error" and api.json()["error"]["code"] == "unauthorized"
    assert (await call(app, "GET", "/", {"cookie": "gridless_device=made-up"}, lan=True)).status == 401
    assert gate.seen == []


async def test_foreign_host_is_refused(gate: Gate) -> None:
    app = gate.middleware()
    for host in ("evil.example", "127.0.0.1.nip.io:8765", LAN_HOST):  # the loopback listener is not shared
        response = await call(app, "GET", "/", {"host": host, "cookie": OWNER_COOKIE})
        assert response.status == 400, host
    # the LAN listener answers to its own address only
    for host in (LOOPBACK_HOST, "localhost:8765", "evil.example"):
        assert (await call(app, "GET", "/healthz", {"host": host}, lan=True)).status == 400, host
    assert (await call(app, "GET", "/v1/models", {"host": "evil.example"})).json()["error"]["code"] == "invalid_host"
    assert gate.seen == []
    assert (await call(app, "GET", "/healthz", lan=True)).status == 200


async def test_public_paths(gate: Gate) -> None:
    app = gate.middleware()
    response = await call(app, "GET", "/healthz", lan=True)
    assert response.status == 200 and response.body == b"ok"
    assert response.headers["x-frame-options"] == "DENY" and response.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert "cache-control" not in response.headers  # public files may be cached
    assert (await call(app, "GET", "/static/app.css")).status == 200
    principal, cookie = await paired(gate)
    assert (await call(app, "GET", "/healthz", {"cookie": cookie}, lan=True)).status == 200
    assert gate.seen == [None, None, principal]
    # a cross-site write is refused even on a public path
    posted = await call(app, "POST", "/healthz", {"origin": "http://evil.example"}, lan=True)
    assert posted.status == 403 and len(gate.seen) == 3


async def test_owner_reaches_the_app(gate: Gate) -> None:
    app = gate.middleware()
    response = await call(app, "GET", "/models", {"cookie": OWNER_COOKIE})
    assert response.status == 200 and response.headers["cache-control"] == "no-store"
    bearer = await call(app, "GET", "/v1/models", {"authorization": f"Bearer {TOKEN}"})
    assert bearer.status == 200
    assert gate.seen == [OWNER, OWNER]


async def test_unsafe_cookie_request_must_be_same_origin(gate: Gate) -> None:
    app = gate.middleware()
    refused = await call(app, "POST", "/api/chat", {"cookie": OWNER_COOKIE})
    assert refused.status == 403 and b"Cross-site" in refused.body
    assert (await call(app, "POST", "/api/chat", {"cookie": OWNER_COOKIE,
                                                  "origin": "http://evil.example"})).status == 403
    assert (await call(app, "DELETE", "/api/chat", {"cookie": OWNER_COOKIE,
                                                    "sec-fetch-site": "cross-site"})).status == 403
    assert gate.seen == []
    assert (await call(app, "POST", "/api/chat", {"cookie": OWNER_COOKIE,
                                                  "origin": f"http://{LOOPBACK_HOST}"})).status == 200
    assert (await call(app, "POST", "/api/chat", {"cookie": OWNER_COOKIE,
                                                  "sec-fetch-site": "same-origin"})).status == 200
    # a bearer key is not sent by browsers on their own: no Origin needed
    assert (await call(app, "POST", "/v1/chat/completions", {"authorization": f"Bearer {TOKEN}"})).status == 200
    # a device's cookie is held to the same rule
    _, cookie = await paired(gate)
    assert (await call(app, "POST", "/api/chat", {"cookie": cookie}, lan=True)).status == 403
    assert (await call(app, "POST", "/api/chat", {"cookie": cookie, "origin": f"http://{LAN_HOST}"},
                       lan=True)).status == 200
    assert len(gate.seen) == 4


async def test_device_is_kept_from_owner_pages(gate: Gate) -> None:
    app = gate.middleware()
    principal, cookie = await paired(gate)
    for path in ("/models", "/models/add", "/api/devices", "/api/devices/x/revoke"):
        response = await call(app, "GET", path, {"cookie": cookie}, lan=True)
        assert response.status == 403, path
        assert b"Only the phone that runs gridless can open this." in response.body
    assert gate.seen == []
    response = await call(app, "GET", "/", {"cookie": cookie}, lan=True)
    assert response.status == 200 and response.headers["cache-control"] == "no-store"
    assert (await call(app, "GET", "/modelsx", {"cookie": cookie}, lan=True)).status == 200
    assert gate.seen == [principal, principal]
    assert principal.device_id is not None and principal.name == "Tablet"


async def test_owner_only_code_on_the_api(gate: Gate) -> None:
    gate.guard.admin_prefixes = ("/v1/admin",)
    _, cookie = await paired(gate)
    response = await call(gate.middleware(), "GET", "/v1/admin/x", {"cookie": cookie}, lan=True)
    assert response.status == 403 and response.json()["error"]["code"] == "owner_only"


async def test_owner_link(gate: Gate) -> None:
    app = gate.middleware()
    response = await call(app, "GET", "/c/abc", query=f"token={TOKEN}&x=1")
    assert response.status == 200
    assert response.headers["set-cookie"].startswith(OWNER_COOKIE + ";")
    assert "SameSite=Strict" in response.headers["set-cookie"] and TOKEN not in response.headers["set-cookie"]
    assert b'location.replace("/c/abc?x=1")' in response.body and TOKEN.encode() not in response.body
    assert gate.seen == []
    # wrong links are guesses: limited per address, except on this device
    for _ in range(10):
        assert (await call(app, "GET", "/", query="token=wrong", lan=True)).status == 401
    limited = await call(app, "GET", "/", query=f"token={TOKEN}", lan=True)
    assert limited.status == 429 and "set-cookie" not in limited.headers
    for _ in range(15):
        assert (await call(app, "GET", "/", query="token=wrong")).status == 401
    assert (await call(app, "GET", "/", query=f"token={TOKEN}")).status == 200


async def test_wrong_keys_are_limited(gate: Gate) -> None:
    app = gate.middleware()
    for _ in range(10):
        assert (await call(app, "GET", "/v1/models", {"authorization": "Bearer wrong"}, lan=True)).status == 401
    limited = await call(app, "GET", "/v1/models", {"authorization": f"Bearer {TOKEN}"}, lan=True)
    # the right key still works: a held credential is looked at before the limit
    assert limited.status == 200
    limited = await call(app, "GET", "/v1/models", {"authorization": "Bearer wrong"}, lan=True)
    assert limited.status == 429 and limited.json()["error"]["code"] == "too_many_attempts"
    for _ in range(15):
        assert (await call(app, "GET", "/v1/models", {"authorization": "Bearer wrong"})).status == 401


async def test_body_limit(gate: Gate) -> None:
    app = gate.middleware()
    headers = {"authorization": f"Bearer {TOKEN}"}
    big = await call(app, "POST", "/v1/chat/completions", {**headers, "content-length": str(BODY_LIMIT + 1)})
    assert big.status == 413 and big.json()["error"]["code"] == "request_too_large"
    assert (await call(app, "POST", "/v1/x", {**headers, "content-length": "12abc"})).status == 413
    assert gate.seen == []
    ok = await call(app, "POST", "/v1/x", {**headers, "content-length": str(BODY_LIMIT)}, body=b"x" * BODY_LIMIT)
    assert ok.status == 200

    received: list[Message] = []

    async def reader(scope: Scope, receive: Receive, send: Send) -> None:
        received.append(await receive())
        await gate.ok_app(scope, receive, send)

    # a body sent without a length is cut off at the limit
    await call(gate.middleware(reader), "POST", "/v1/x", headers, body=b"x" * (BODY_LIMIT + 1))
    assert received[-1] == {"type": "http.disconnect"}
    await call(gate.middleware(reader), "POST", "/v1/x", headers, body=b"x" * BODY_LIMIT)
    assert received[-1]["type"] == "http.request"


async def test_uploads_only_to_ones_own_page(gate: Gate) -> None:
    app = gate.middleware()
    principal, cookie = await paired(gate)
    other, _ = await paired(gate, "Tablet")  # the same name, another device
    gate.pages.update({"mine": principal, "owners": OWNER, "theirs": other})
    headers = {"cookie": cookie, "origin": f"http://{LAN_HOST}"}
    for page in ("owners", "theirs", "unknown"):
        response = await call(app, "POST", f"/_nicegui/client/{page}/upload/123", headers, lan=True)
        assert response.status == 403, page
        assert b"That upload belongs to another page." in response.body
    assert gate.seen == []
    assert (await call(app, "POST", "/_nicegui/client/mine/upload/123", headers, lan=True)).status == 200
    assert gate.seen == [principal]
    # the owner is not held to it
    owner = {"cookie": OWNER_COOKIE, "origin": f"http://{LOOPBACK_HOST}"}
    assert (await call(app, "POST", "/_nicegui/client/theirs/upload/1", owner)).status == 200


# revoking a device ends what it has open


class Socket:
    """One websocket connection to the gate, held open by the client."""

    def __init__(self, app: SecurityMiddleware, headers: dict[str, str], path: str = "/_nicegui_ws/socket.io/",
                 extensions: dict[str, Any] | None = None, lan: bool = True) -> None:
        self.incoming: asyncio.Queue[Message] = asyncio.Queue()
        self.incoming.put_nowait({"type": "websocket.connect"})
        self.sent: list[Message] = []
        scope = {"type": "websocket", "asgi": {"version": "3.0"}, "scheme": "ws", "path": path,
                 "raw_path": path.encode(), "query_string": b"EIO=4&transport=websocket", "subprotocols": [],
                 "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
                 "client": (TABLET if lan else "127.0.0.1", 50001), "server": (LAN if lan else "127.0.0.1", 8765),
                 "extensions": extensions or {}}
        self.task = asyncio.ensure_future(app(scope, self.incoming.get, self._send))

    async def _send(self, message: Message) -> None:
        self.sent.append(message)


class EchoApp:
    """Accepts, echoes text, and records what it receives."""

    def __init__(self) -> None:
        self.accepted = asyncio.Event()
        self.received: list[Message] = []
        self.principal: Principal | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.principal = principal_of(scope)
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        self.accepted.set()
        while True:
            message = await receive()
            self.received.append(message)
            if message["type"] == "websocket.disconnect":
                await send({"type": "websocket.send", "text": "after the end"})  # must not reach the client
                return
            await send({"type": "websocket.send", "text": message["text"]})


async def test_revoked_device_websocket_is_closed(gate: Gate) -> None:
    principal, cookie = await paired(gate)
    keep, keep_cookie = await paired(gate, "Other")
    echo, other_echo = EchoApp(), EchoApp()
    headers = {"host": LAN_HOST, "origin": f"http://{LAN_HOST}", "cookie": cookie}
    socket = Socket(gate.middleware(echo), headers)
    other = Socket(gate.middleware(other_echo), {**headers, "cookie": keep_cookie})
    await asyncio.wait_for(echo.accepted.wait(), 1)
    await asyncio.wait_for(other_echo.accepted.wait(), 1)
    assert echo.principal == principal and other_echo.principal == keep

    socket.incoming.put_nowait({"type": "websocket.receive", "text": "hi"})
    for _ in range(50):
        if len(socket.sent) == 2:
            break
        await asyncio.sleep(0.01)
    assert socket.sent == [{"type": "websocket.accept"}, {"type": "websocket.send", "text": "hi"}]

    assert principal.device_id is not None
    await gate.devices.revoke(principal.device_id)
    await asyncio.wait_for(socket.task, 1)
    assert echo.received[-1] == {"type": "websocket.disconnect", "code": 4403}
    assert socket.sent[2:] == [{"type": "websocket.close", "code": 4403, "reason": "access revoked"}]
    assert principal.device_id not in gate.guard._live

    # the other device's socket stays open
    assert not other.task.done()
    other.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(other.task, 1)
    assert other_echo.received == [{"type": "websocket.disconnect", "code": 1000}]
    # a send after the client left is passed on (the server drops it); a socket the gate closed swallows it
    assert other.sent == [{"type": "websocket.accept"}, {"type": "websocket.send", "text": "after the end"}]
    assert gate.guard._live == {}


async def test_websocket_refusals(gate: Gate) -> None:
    principal, cookie = await paired(gate)
    cases = [
        {"host": LAN_HOST, "origin": f"http://{LAN_HOST}"},  # no credential
        {"host": LAN_HOST, "origin": "http://evil.example", "cookie": cookie},  # cross-site
        {"host": "evil.example", "origin": "http://evil.example", "cookie": cookie},  # foreign host
        {"host": LOOPBACK_HOST, "origin": f"http://{LOOPBACK_HOST}", "cookie": cookie},  # not this listener's name
    ]
    for headers in cases:
        echo = EchoApp()
        socket = Socket(gate.middleware(echo), headers)
        await asyncio.wait_for(socket.task, 1)
        assert socket.sent == [{"type": "websocket.close", "code": 4401}], headers
        assert echo.principal is None and not echo.accepted.is_set()
    # a device may not open an owner page's socket
    echo = EchoApp()
    socket = Socket(gate.middleware(echo), {"host": LAN_HOST, "origin": f"http://{LAN_HOST}", "cookie": cookie},
                    path="/models/ws")
    await asyncio.wait_for(socket.task, 1)
    assert socket.sent == [{"type": "websocket.close", "code": 4401}] and not echo.accepted.is_set()
    # where the server can send an HTTP answer to the upgrade, it does
    socket = Socket(gate.middleware(EchoApp()), {"host": LAN_HOST}, extensions={"websocket.http.response": {}})
    await asyncio.wait_for(socket.task, 1)
    assert [m["type"] for m in socket.sent] == ["websocket.http.response.start", "websocket.http.response.body"]
    assert socket.sent[0]["status"] == 401
    # the owner's socket goes straight through, untracked
    echo = EchoApp()
    socket = Socket(gate.middleware(echo), {"host": LOOPBACK_HOST, "origin": f"http://{LOOPBACK_HOST}",
                                            "cookie": OWNER_COOKIE}, lan=False)
    await asyncio.wait_for(echo.accepted.wait(), 1)
    assert echo.principal == OWNER and gate.guard._live == {}
    socket.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(socket.task, 1)
    assert principal.device_id is not None


async def test_revoked_device_request_sees_disconnect(gate: Gate) -> None:
    principal, cookie = await paired(gate)
    received: list[Message] = []
    waiting = asyncio.Event()

    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        received.append(await receive())  # the request body
        waiting.set()
        received.append(await receive())  # blocks while the client is connected
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    app = gate.middleware(streaming)
    request = asyncio.ensure_future(call(app, "GET", "/c/abc", {"cookie": cookie}, lan=True))
    await asyncio.wait_for(waiting.wait(), 1)
    await asyncio.sleep(0.01)
    assert not request.done()
    assert principal.device_id is not None and principal.device_id in gate.guard._live
    await gate.devices.revoke(principal.device_id)
    response = await asyncio.wait_for(request, 1)
    assert response.status == 200
    assert received == [{"type": "http.request", "body": b"", "more_body": False}, {"type": "http.disconnect"}]
    assert gate.guard._live == {}
    # and the device is refused from then on
    assert (await call(gate.middleware(), "GET", "/c/abc", {"cookie": cookie}, lan=True)).status == 401


async def test_owner_request_is_not_tracked(gate: Gate) -> None:
    tracked: list[bool] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        tracked.append(bool(gate.guard._live))
        await gate.ok_app(scope, receive, send)

    _, cookie = await paired(gate)
    assert (await call(gate.middleware(app), "GET", "/", {"cookie": OWNER_COOKIE})).status == 200
    assert (await call(gate.middleware(app), "GET", "/", {"cookie": cookie}, lan=True)).status == 200
    assert tracked == [False, True] and gate.guard._live == {}


async def test_other_scopes_pass_through(gate: Gate) -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        pass

    await gate.middleware(app)({"type": "lifespan"}, receive, send)
    assert seen == ["lifespan"]
