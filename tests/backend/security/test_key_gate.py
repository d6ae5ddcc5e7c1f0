"""What an app's key may open: the allowlist itself (`policy.key_may_open`) and the gate applying it,
driven directly as ASGI with a small app behind it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import pytest

from backend.api.keys import ScopeName
from backend.security.devices import DeviceStore, Principal
from backend.security.keys import SCOPES, KeyStore
from backend.security.middleware import Receive, Scope, SecurityMiddleware, Send, principal_of
from backend.security.owner import OwnerCredential
from backend.security.policy import KEY_ROUTES, AccessGuard, key_may_open, key_refusal
from backend.storage.db import Database

from .test_middleware_asgi import LAN, LAN_HOST, LOOPBACK_HOST, TOKEN, EchoApp, Socket, call

# the allowlist -----------------------------------------------------------------------------------

ROUTES: dict[tuple[str, str], set[str]] = {
    ("POST", "/v1/chat/completions"): {"chat"},
    ("GET", "/v1/models"): set(SCOPES),  # every key
    ("POST", "/v1/images/generations"): {"images"},
    ("GET", "/api/images/0123abcd/file"): {"images"},
    ("POST", "/v1/audio/transcriptions"): {"audio"},
    ("POST", "/v1/audio/speech"): {"audio"},
    ("POST", "/v1/embeddings"): {"embeddings"},
    ("GET", "/api/conversations"): {"conversations"},
    ("GET", "/api/conversations/search"): {"conversations"},
    ("GET", "/api/conversations/4f2a9c"): {"conversations"},
    ("GET", "/api/conversations/4f2a9c/events"): {"conversations"},
    ("GET", "/api/conversations/4f2a9c/export"): {"conversations"},
}
"""Each route a key may open, with the scopes that open it."""

NEVER = [
    # pages, the websocket's polling, the owner's routes
    ("GET", "/"), ("GET", "/c/abc"), ("GET", "/sharing"), ("GET", "/models"), ("GET", "/api/keys"),
    ("POST", "/api/keys"), ("DELETE", "/api/keys/abc"), ("GET", "/api/models"), ("GET", "/api/devices"),
    ("GET", "/api/engines"), ("GET", "/api/backup"), ("POST", "/api/restore"),
    ("GET", "/_nicegui_ws/socket.io/"), ("POST", "/_nicegui/client/x/upload/y"),
    # other /api routes
    ("GET", "/api/images"), ("GET", "/api/images/0123abcd"), ("GET", "/api/images/0123abcd/thumb"),
    ("DELETE", "/api/images/0123abcd"), ("GET", "/api/transcripts"), ("GET", "/api/attachments/abc/file"),
    ("GET", "/api/projects"), ("GET", "/api/collections"), ("GET", "/api/passages/1"),
    # writing conversations
    ("POST", "/api/conversations"), ("POST", "/api/conversations/import"), ("PATCH", "/api/conversations/abc"),
    ("DELETE", "/api/conversations/abc"), ("POST", "/api/conversations/abc/messages"),
    ("POST", "/api/conversations/abc/regenerate"), ("POST", "/api/conversations/abc/stop"),
    ("POST", "/api/conversations/abc/switch"), ("POST", "/api/conversations/abc/messages/m/edit"),
    # other methods on the allowed paths
    ("GET", "/v1/chat/completions"), ("PUT", "/v1/chat/completions"), ("DELETE", "/v1/models"),
    ("HEAD", "/v1/models"), ("OPTIONS", "/v1/chat/completions"), ("post", "/v1/chat/completions"),
    ("HEAD", "/api/conversations"), ("OPTIONS", "/api/conversations"),
    # paths that are not quite the allowed ones
    ("POST", "/v1/chat/completions/../models"), ("GET", "/v1/chat/completions/../models"),
    ("POST", "/v1/chat/completionsX"), ("POST", "/v1/chat/completions/"), ("GET", "/v1/models/"),
    ("GET", "/v1/models/x"), ("GET", "//v1/models"), ("POST", "/v1//chat/completions"),
    ("POST", "/V1/chat/completions"), ("POST", "/v1/chat/completions\n"), ("POST", " /v1/chat/completions"),
    ("GET", "/v1/models/.."), ("GET", "/v1"), ("GET", "/v1/"), ("POST", "/v1/embeddings/x"),
    ("GET", "/api/conversations/"), ("GET", "/api/conversations/.."), ("GET", "/api/conversations/../keys"),
    ("GET", "/api/conversations/a/b/c"), ("GET", "/api/conversations/abc/export/"),
    ("GET", "/api/conversations/abc/messages"), ("GET", "/api/conversationsX"),
    ("GET", "/api/conversations/" + "a" * 65), ("GET", "/api/images/../file"),
    ("GET", "/api/images/../keys/file"), ("GET", "/api/images/a.b/file"), ("GET", "/api/images//file"),
]


def test_the_scopes_are_the_same_everywhere() -> None:
    assert set(KEY_ROUTES) == set(SCOPES) and get_args(ScopeName) == SCOPES


@pytest.mark.parametrize("scope", SCOPES)
def test_each_scope_opens_its_routes_and_no_other(scope: str) -> None:
    for (method, path), scopes in ROUTES.items():
        assert key_may_open(frozenset({scope}), method, path) is (scope in scopes), (scope, method, path)
    for method, path in NEVER:
        assert not key_may_open(frozenset({scope}), method, path), (scope, method, path)


def test_every_route_is_in_the_table() -> None:
    """Nothing opens that the table above does not list."""
    for scope, routes in KEY_ROUTES.items():
        for method, pattern in routes:
            matched = [(m, p) for m, p in ROUTES if m == method and pattern.fullmatch(p)]
            assert matched and all(scope in ROUTES[r] for r in matched), (scope, pattern.pattern)
    assert sum(len(routes) for routes in KEY_ROUTES.values()) == len(ROUTES)


def test_scopes_together_and_none() -> None:
    every = frozenset(SCOPES)
    for method, path in ROUTES:
        assert key_may_open(every, method, path), (method, path)
    for method, path in NEVER:
        assert not key_may_open(every, method, path), (method, path)
    assert key_may_open(frozenset(), "GET", "/v1/models")
    assert not key_may_open(frozenset(), "POST", "/v1/chat/completions")
    assert not key_may_open(frozenset({"admin", "owner"}), "GET", "/api/keys")
    both = frozenset({"chat", "embeddings"})
    assert key_may_open(both, "POST", "/v1/chat/completions") and key_may_open(both, "POST", "/v1/embeddings")
    assert not key_may_open(both, "POST", "/v1/audio/speech")


def test_refusal_names_the_request_and_the_scopes() -> None:
    principal = Principal("app", None, "Tasker", key_id="k", scopes=frozenset({"embeddings", "chat"}))
    assert key_refusal(principal, "POST", "/v1/chat/completions") is None
    assert key_refusal(principal, "GET", "/api/keys") == \
        "This key may not open GET /api/keys; its scopes are chat, embeddings."
    long = key_refusal(principal, "GET", "/x" * 500)
    assert long is not None and len(long) < 250


# the gate ----------------------------------------------------------------------------------------

@dataclass
class KeyGate:
    keys: KeyStore
    guard: AccessGuard
    seen: list[Principal | None] = field(default_factory=list)

    def middleware(self) -> SecurityMiddleware:
        return SecurityMiddleware(self.ok_app, self.guard)

    async def ok_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.seen.append(principal_of(scope))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
async def gate(tmp_path: Path) -> AsyncIterator[KeyGate]:
    db = Database(tmp_path / "g.db")
    await db.open()
    keys = KeyStore(db)
    guard = AccessGuard(OwnerCredential(TOKEN), {"127.0.0.1", "localhost"}, public_prefixes=("/static/",),
                        public_paths={"/healthz"}, devices=DeviceStore(db, 3600), keys=keys,
                        lan_addresses=lambda: {LAN}, admin_prefixes=("/models", "/api/keys"))
    yield KeyGate(keys, guard)
    await db.close()


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


async def test_a_key_opens_its_routes(gate: KeyGate) -> None:
    app = gate.middleware()
    key, secret = await gate.keys.create("Tasker", ["chat"])
    for lan in (False, True):
        assert (await call(app, "GET", "/v1/models", bearer(secret), lan=lan)).status == 200
        # a bearer key is not sent by browsers on their own: no Origin needed for a write
        assert (await call(app, "POST", "/v1/chat/completions", bearer(secret), lan=lan)).status == 200
    assert gate.seen == [key.principal] * 4
    seen = gate.seen[0]
    assert seen is not None and seen.key == f"app:{key.id}" and not seen.is_owner and seen.device_id is None
    used = gate.keys.get(key.id)
    assert used is not None and used.requests == 4 and used.last_used_at is not None


async def test_a_key_is_refused_outside_its_scopes(gate: KeyGate) -> None:
    app = gate.middleware()
    key, secret = await gate.keys.create("Tasker", ["chat"])
    v1 = await call(app, "POST", "/v1/embeddings", bearer(secret))
    assert v1.status == 403 and v1.json()["error"]["code"] == "key_scope"
    assert v1.json()["error"]["message"] == "This key may not open POST /v1/embeddings; its scopes are chat."
    api = await call(app, "GET", "/api/conversations", bearer(secret))
    assert api.status == 403 and api.json()["error"]["code"] == "key_scope"
    for path in ("/", "/c/abc", "/models", "/api/keys"):  # pages and the owner's paths too: not owner_only
        page = await call(app, "GET", path, bearer(secret), lan=True)
        assert page.status == 403 and b"This key may not open GET " in page.body, path
    assert gate.seen == []
    refused = gate.keys.get(key.id)
    assert refused is not None and refused.requests == 0  # only requests let through are counted


async def test_keys_come_only_as_bearer_tokens(gate: KeyGate) -> None:
    app = gate.middleware()
    _, secret = await gate.keys.create("Tasker", ["chat", "conversations"])
    for cookie in (f"gridless_session={secret}", f"gridless_device={secret}", f"key={secret}"):
        assert (await call(app, "GET", "/v1/models", {"cookie": cookie})).status == 401, cookie
    assert (await call(app, "GET", "/v1/models", {"authorization": secret})).status == 401
    assert (await call(app, "GET", "/v1/models", {"authorization": f"Basic {secret}"})).status == 401
    link = await call(app, "GET", "/api/conversations", query=f"token={secret}")  # not an owner link either
    assert link.status == 401 and "set-cookie" not in link.headers
    assert gate.seen == []
    assert (await call(app, "GET", "/v1/models", {"authorization": f"bearer  {secret} "})).status == 200


async def test_a_revoked_key_is_refused_at_once(gate: KeyGate) -> None:
    app = gate.middleware()
    key, secret = await gate.keys.create("Tasker", ["chat"])
    assert (await call(app, "GET", "/v1/models", bearer(secret))).status == 200
    await gate.keys.revoke(key.id)
    refused = await call(app, "GET", "/v1/models", bearer(secret))
    assert refused.status == 401 and refused.json()["error"]["code"] == "unauthorized"


async def test_wrong_keys_are_limited_with_wrong_tokens(gate: KeyGate) -> None:
    app = gate.middleware()
    key, secret = await gate.keys.create("Tasker", ["chat"])
    await gate.keys.revoke(key.id)
    _, good = await gate.keys.create("Shortcuts", ["chat"])
    for i in range(5):
        assert (await call(app, "GET", "/v1/models", bearer(f"gl-wrong-{i}"), lan=True)).status == 401
    for _ in range(3):  # a revoked key is a wrong key
        assert (await call(app, "GET", "/v1/models", bearer(secret), lan=True)).status == 401
    for _ in range(2):  # wrong owner tokens count in the same limit
        assert (await call(app, "GET", "/v1/models", bearer("wrong"), lan=True)).status == 401
    # a key that works is looked at before the limit
    assert (await call(app, "GET", "/v1/models", bearer(good), lan=True)).status == 200
    limited = await call(app, "GET", "/v1/models", bearer("gl-wrong"), lan=True)
    assert limited.status == 429 and limited.json()["error"]["code"] == "too_many_attempts"
    assert int(limited.headers["retry-after"]) > 0
    # the owner's own device is never held back
    for _ in range(15):
        assert (await call(app, "GET", "/v1/models", bearer("gl-wrong"))).status == 401


async def test_a_key_opens_no_websocket(gate: KeyGate) -> None:
    _, secret = await gate.keys.create("Tasker", list(SCOPES))
    for lan, host in ((False, LOOPBACK_HOST), (True, LAN_HOST)):
        echo = EchoApp()
        socket = Socket(SecurityMiddleware(echo, gate.guard),
                        {"host": host, "origin": f"http://{host}", **bearer(secret)}, lan=lan)
        await asyncio.wait_for(socket.task, 1)
        assert socket.sent == [{"type": "websocket.close", "code": 4401}]
        assert echo.principal is None and not echo.accepted.is_set()
    # the owner's token still opens one the same way
    echo = EchoApp()
    socket = Socket(SecurityMiddleware(echo, gate.guard),
                    {"host": LOOPBACK_HOST, "origin": f"http://{LOOPBACK_HOST}", **bearer(TOKEN)}, lan=False)
    await asyncio.wait_for(echo.accepted.wait(), 1)
    socket.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.wait_for(socket.task, 1)


async def test_a_key_is_nobody_on_public_paths(gate: KeyGate) -> None:
    app = gate.middleware()
    _, secret = await gate.keys.create("Tasker", ["chat"])
    assert (await call(app, "GET", "/healthz", bearer(secret))).status == 200
    assert gate.seen == [None]
