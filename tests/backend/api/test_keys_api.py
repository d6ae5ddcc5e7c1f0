"""Keys for apps through a real server: made by the owner, each scope held to its routes on every
`/v1` route, nothing of the owner's, revoked at once, shown once; and a real chat with the openai
client and a key (the bundled model)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from backend.security.keys import SCOPES
from tests.server import ServerProcess

MODEL = "smollm2-135m-instruct"

# every /v1 route and the conversations' list, each with a body that is deliberately not enough: a
# request the gate lets through is refused by the route itself (400/404/422), never 401/403, and runs
# no model
ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/v1/models", {}),
    ("POST", "/v1/chat/completions", {"json": {}}),
    ("POST", "/v1/images/generations", {"json": {}}),
    ("POST", "/v1/audio/transcriptions", {"data": {"model": "whisper-1"}}),
    ("POST", "/v1/audio/speech", {"json": {}}),
    ("POST", "/v1/embeddings", {"json": {}}),
    ("GET", "/api/conversations", {}),
    ("GET", "/api/images/0123456789abcdef/file", {}),  # where `response_format: "url"` points
]
OPENS = {
    "chat": {"/v1/chat/completions", "/v1/models"},
    "images": {"/v1/images/generations", "/api/images/0123456789abcdef/file", "/v1/models"},
    "audio": {"/v1/audio/transcriptions", "/v1/audio/speech", "/v1/models"},
    "embeddings": {"/v1/embeddings", "/v1/models"},
    "conversations": {"/api/conversations", "/v1/models"},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(data_dir=tmp_path_factory.mktemp("keys-api") / "data") as srv:
        yield srv


def owner(server: ServerProcess, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, server.base + path, headers=server.headers(), timeout=30, **kw)


def make_key(server: ServerProcess, name: str, scopes: list[str]) -> dict[str, Any]:
    made = owner(server, "POST", "/api/keys", json={"name": name, "scopes": scopes})
    assert made.status_code == 201, made.text
    return dict(made.json())


def with_key(server: ServerProcess, secret: str, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, server.base + path, headers={"Authorization": f"Bearer {secret}"}, timeout=30,
                         **kw)


@pytest.fixture(scope="module")
def keys(server: ServerProcess) -> dict[str, str]:
    """A key per scope, and one with all of them."""
    made = {scope: make_key(server, f"Only {scope}", [scope])["key"] for scope in SCOPES}
    made["all"] = make_key(server, "Everything", list(SCOPES))["key"]
    return made


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[r[1] for r in ROUTES])
def test_each_scope_on_every_route(server: ServerProcess, keys: dict[str, str], scope: str, method: str,
                                   path: str, body: dict[str, Any]) -> None:
    response = with_key(server, keys[scope], method, path, **body)
    if path in OPENS[scope]:
        assert response.status_code not in (401, 403), response.text
        assert response.status_code < 500, response.text
    else:
        assert response.status_code == 403, response.text
        error = response.json()["error"]
        assert error["code"] == "key_scope"
        assert error["message"] == f"This key may not open {method} {path}; its scopes are {scope}."
        if path.startswith("/v1/"):
            assert error["type"] == "invalid_request_error"  # OpenAI's shape


def test_a_key_with_every_scope_opens_every_route(server: ServerProcess, keys: dict[str, str]) -> None:
    for method, path, body in ROUTES:
        response = with_key(server, keys["all"], method, path, **body)
        assert response.status_code not in (401, 403), (path, response.text)
    models = with_key(server, keys["chat"], "GET", "/v1/models")
    assert MODEL in [m["id"] for m in models.json()["data"]]
    listed = with_key(server, keys["conversations"], "GET", "/api/conversations")
    assert listed.status_code == 200 and listed.json()["conversations"] == []


@pytest.mark.parametrize("which", [*SCOPES, "all"])
def test_no_key_opens_a_page_or_the_owners_routes(server: ServerProcess, keys: dict[str, str], which: str) -> None:
    secret = keys[which]
    for method, path in (("GET", "/"), ("GET", "/sharing"), ("GET", "/models"), ("GET", "/api/models"),
                         ("GET", "/api/keys"), ("POST", "/api/keys"), ("GET", "/api/images"),
                         ("POST", "/api/conversations"), ("GET", "/api/transcripts"),
                         ("GET", "/_nicegui_ws/socket.io/?EIO=4&transport=polling")):
        response = with_key(server, secret, method, path, json={"name": "x", "scopes": ["chat"]})
        assert response.status_code == 403, (path, response.text)
        assert "This key may not open" in response.text
    assert "x" not in [k["name"] for k in owner(server, "GET", "/api/keys").json()["keys"]]


def test_a_key_opens_no_websocket(server: ServerProcess, keys: dict[str, str]) -> None:
    host = f"127.0.0.1:{server.port}"
    request = ("GET /_nicegui_ws/socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nHost: {host}\r\nOrigin: http://{host}\r\n"
               f"Authorization: Bearer {keys['all']}\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request.encode())
        status = sock.recv(4096).split(b"\r\n", 1)[0].decode()
    assert " 401 " in status + " ", status


def test_the_key_is_shown_once(server: ServerProcess) -> None:
    made = make_key(server, "  Home\nAssistant  ", ["chat", "conversations"])
    secret = made["key"]
    assert secret.startswith("gl-") and made["prefix"] == secret[:8]
    assert made["name"] == "Home Assistant" and made["scopes"] == ["chat", "conversations"]
    assert made["requests"] == 0 and made["last_used_at"] is None and made["revoked"] is False
    listed = owner(server, "GET", "/api/keys")
    assert listed.status_code == 200 and secret not in listed.text and secret[8:] not in listed.text
    mine = next(k for k in listed.json()["keys"] if k["id"] == made["id"])
    assert mine == {k: v for k, v in made.items() if k != "key"}
    assert "key" not in mine
    assert with_key(server, secret, "GET", "/v1/models").status_code == 200
    assert secret not in server.log()


@pytest.mark.parametrize(("body", "param"), [
    ({"name": "Tasker", "scopes": []}, "scopes"),
    ({"name": "Tasker", "scopes": ["admin"]}, "scopes.0"),
    ({"name": "Tasker"}, "scopes"),
    ({"name": "", "scopes": ["chat"]}, "name"),
    ({"name": "\x07\x08", "scopes": ["chat"]}, "name"),
    ({"name": "x" * 201, "scopes": ["chat"]}, "name"),
    ({"name": "Tasker", "scopes": ["chat"], "admin": True}, "admin"),
])
def test_bad_bodies_are_refused(server: ServerProcess, body: dict[str, Any], param: str) -> None:
    before = owner(server, "GET", "/api/keys").json()["keys"]
    refused = owner(server, "POST", "/api/keys", json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "invalid_value" and refused.json()["error"]["message"]
    assert param in refused.json()["error"]["message"]
    assert owner(server, "GET", "/api/keys").json()["keys"] == before


def test_a_revoked_key_is_refused_on_its_very_next_request(server: ServerProcess) -> None:
    made = make_key(server, "Shortcuts", ["chat"])
    secret = made["key"]
    for _ in range(3):
        assert with_key(server, secret, "GET", "/v1/models").status_code == 200
    assert with_key(server, secret, "POST", "/v1/embeddings", json={}).status_code == 403  # not counted
    revoked = owner(server, "DELETE", f"/api/keys/{made['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    refused = with_key(server, secret, "GET", "/v1/models")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    listed = next(k for k in owner(server, "GET", "/api/keys").json()["keys"] if k["id"] == made["id"])
    assert listed["revoked"] is True and listed["requests"] == 3 and listed["last_used_at"] is not None
    assert owner(server, "DELETE", f"/api/keys/{made['id']}").status_code == 200  # revoked already: as it is
    unknown = owner(server, "DELETE", "/api/keys/0123456789abcdef")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


def test_keys_survive_a_restart_with_their_usage(tmp_path: Any) -> None:
    with ServerProcess(data_dir=tmp_path / "data") as server:
        made = make_key(server, "Script", ["embeddings"])
        gone = make_key(server, "Old script", ["chat"])
        owner(server, "DELETE", f"/api/keys/{gone['id']}")
        for _ in range(2):
            assert with_key(server, made["key"], "GET", "/v1/models").status_code == 200
    with ServerProcess(data_dir=tmp_path / "data") as server:
        listed = {k["id"]: k for k in owner(server, "GET", "/api/keys").json()["keys"]}
        assert listed[made["id"]]["requests"] == 2 and listed[gone["id"]]["revoked"] is True
        assert with_key(server, made["key"], "GET", "/v1/models").status_code == 200
        assert with_key(server, gone["key"], "GET", "/v1/models").status_code == 401
        data = b"".join(p.read_bytes() for p in server.data_dir.glob("gridless.db*"))
        assert data and made["key"].encode() not in data and gone["key"].encode() not in data


@pytest.mark.engine
def test_chat_with_the_openai_client_and_a_key(server: ServerProcess) -> None:
    made = make_key(server, "openai", ["chat"])
    client = openai.OpenAI(base_url=f"{server.base}/v1", api_key=made["key"], max_retries=0, timeout=120)
    assert MODEL in [m.id for m in client.models.list()]
    answer = client.chat.completions.create(model=MODEL, max_tokens=8, temperature=0,
                                            messages=[{"role": "user", "content": "Say hello."}])
    assert answer.choices[0].message.role == "assistant" and answer.choices[0].message.content
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.embeddings.create(model="text-embedding-3-small", input="hello")
    assert refused.value.status_code == 403 and json.loads(refused.value.response.text)["error"]["code"] == \
        "key_scope"
    stream = client.chat.completions.create(model=MODEL, max_tokens=8, stream=True,
                                            messages=[{"role": "user", "content": "Count to three."}])
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    listed = next(k for k in owner(server, "GET", "/api/keys").json()["keys"] if k["id"] == made["id"])
    assert listed["requests"] == 3  # the refused request is not counted
