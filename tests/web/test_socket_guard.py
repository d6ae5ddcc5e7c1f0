from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from nicegui.client import Client

from backend.security.devices import OWNER, Principal
from tests.loops import run_alone
from web import socket_guard

TABLET = Principal("device", "d1", "Tablet")


class FakeServer:
    def __init__(self, rooms: dict[str, list[str]]) -> None:
        self._rooms = rooms

    def rooms(self, sid: str, namespace: str = "/") -> list[str]:
        return self._rooms.get(sid, [sid])


def environ_for(principal: Principal | None) -> dict[str, Any]:
    state = {"gridless_principal": principal} if principal else {}
    return {"asgi.scope": {"type": "websocket", "state": state}}


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    fake = {
        "owner-page": SimpleNamespace(request=SimpleNamespace(scope={"state": {"gridless_principal": OWNER}})),
        "tablet-page": SimpleNamespace(request=SimpleNamespace(scope={"state": {"gridless_principal": TABLET}})),
        "no-request": SimpleNamespace(request=None),
    }
    monkeypatch.setattr(Client, "instances", fake)
    return fake


def test_page_principal_is_read_from_its_request(clients: dict[str, Any]) -> None:
    assert socket_guard.client_principal("owner-page") == OWNER
    assert socket_guard.client_principal("tablet-page") == TABLET
    assert socket_guard.client_principal("no-request") is None
    assert socket_guard.client_principal("unknown") is None


def test_a_socket_attaches_only_to_a_page_of_the_same_principal(clients: dict[str, Any]) -> None:
    assert socket_guard._may_attach(environ_for(TABLET), "tablet-page")
    assert not socket_guard._may_attach(environ_for(TABLET), "owner-page")
    assert not socket_guard._may_attach(environ_for(OWNER), "tablet-page")
    assert not socket_guard._may_attach(environ_for(None), "owner-page")
    assert not socket_guard._may_attach(environ_for(TABLET), None)
    assert not socket_guard._may_attach(environ_for(TABLET), "unknown")
    other_tablet = Principal("device", "d2", "Tablet")  # same name, another device
    assert not socket_guard._may_attach(environ_for(other_tablet), "tablet-page")


def test_messages_reach_only_the_page_the_socket_joined() -> None:
    seen: list[Any] = []
    server = FakeServer({"sid-1": ["sid-1", "tablet-page"]})
    guarded = socket_guard._only_own_client(server, lambda sid, msg: seen.append((sid, msg)))  # type: ignore[arg-type]
    guarded("sid-1", {"client_id": "tablet-page", "x": 1})
    guarded("sid-1", {"client_id": "owner-page", "x": 2})
    guarded("sid-1", "not a dict")
    guarded("sid-2", {"client_id": "tablet-page", "x": 3})
    assert seen == [("sid-1", {"client_id": "tablet-page", "x": 1})]


def test_async_handlers_stay_async() -> None:
    seen: list[Any] = []

    async def handler(sid: str, msg: Any) -> str:
        seen.append(msg)
        return "handled"

    server = FakeServer({"sid-1": ["sid-1", "page"]})
    guarded = socket_guard._only_own_client(server, handler)  # type: ignore[arg-type]
    assert asyncio.iscoroutinefunction(guarded)
    assert run_alone(guarded("sid-1", {"client_id": "page"})) == "handled"
    assert run_alone(guarded("sid-1", {"client_id": "elsewhere"})) is None
    assert seen == [{"client_id": "page"}]


def test_install_wraps_the_handlers_once() -> None:
    from nicegui import core

    handlers = core.sio.handlers["/"]
    socket_guard.install()
    connect = handlers["connect"]
    socket_guard.install()
    assert handlers["connect"] is connect
    assert getattr(connect, "gridless_guarded", False)


def test_a_renamed_device_is_still_the_same_principal(clients: dict[str, Any]) -> None:
    renamed = Principal("device", "d1", "Kitchen tablet")
    assert socket_guard._may_attach(environ_for(renamed), "tablet-page")


def test_engineio_origin_check_uses_the_real_scheme() -> None:
    def environ(scheme: str, host: str = "10.0.0.1:8765") -> dict[str, Any]:
        return {"HTTP_HOST": host, "asgi.scope": {"scheme": scheme}}

    assert socket_guard.same_origin("http://10.0.0.1:8765", environ("ws"))
    assert socket_guard.same_origin("https://10.0.0.1:8765", environ("wss"))
    assert socket_guard.same_origin("https://10.0.0.1:8765", environ("https"))
    assert not socket_guard.same_origin("http://10.0.0.1:8765", environ("wss"))  # downgraded page
    assert not socket_guard.same_origin("https://10.0.0.1:8765", environ("ws"))
    assert not socket_guard.same_origin("http://evil.example", environ("ws"))
    assert not socket_guard.same_origin(None, environ("ws"))
    assert not socket_guard.same_origin("http://10.0.0.1:8765", {"asgi.scope": {"scheme": "ws"}})
