"""The security gate on a real server: pages, /v1, NiceGUI's routes and the websocket."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from backend.security.owner import OwnerCredential
from tests.server import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module: every test only knocks on the gate and changes nothing."""
    with ServerProcess(data_dir=tmp_path_factory.mktemp("security") / "data") as srv:
        yield srv


def ws_handshake(server: ServerProcess, headers: dict[str, str]) -> str:
    """Status line of a raw websocket upgrade to NiceGUI's socket.io endpoint."""
    request = ("GET /_nicegui_ws/socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
    request += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(request.encode())
        return sock.recv(4096).split(b"\r\n", 1)[0].decode()


def cookie(server: ServerProcess) -> str:
    return f"gridless_session={OwnerCredential(server.token).session_value}"


def test_no_credential_is_401_everywhere(server: ServerProcess) -> None:
    for path in ("/", "/c/whatever", "/v1/models", "/_nicegui_ws/socket.io/?EIO=4&transport=polling"):
        response = httpx.get(server.base + path)
        assert response.status_code == 401, path
    body = httpx.get(server.base + "/v1/models").json()
    assert body["error"]["type"] == "authentication_error"
    assert httpx.post(server.base + "/v1/chat/completions", json={}).status_code == 401
    assert httpx.get(server.base + "/healthz").status_code == 200
    assert httpx.get(server.base + "/static/app.css").status_code == 200


def test_websocket_needs_cookie_and_same_origin(server: ServerProcess) -> None:
    host = f"127.0.0.1:{server.port}"
    assert " 401 " in ws_handshake(server, {"Host": host, "Origin": f"http://{host}"}) + " "
    assert " 401 " in ws_handshake(server, {"Host": host, "Origin": "http://evil.example",
                                            "Cookie": cookie(server)}) + " "
    assert " 101 " in ws_handshake(server, {"Host": host, "Origin": f"http://{host}", "Cookie": cookie(server)}) + " "


def test_wrong_host_is_rejected(server: ServerProcess) -> None:
    response = httpx.get(server.base + "/v1/models", headers={**server.headers(), "Host": "attacker.example"})
    assert response.status_code == 400
    assert httpx.get(server.base + "/healthz", headers={"Host": "attacker.example"}).status_code == 400


def test_link_token_becomes_cookie(server: ServerProcess) -> None:
    response = httpx.get(server.owner_link)
    assert response.status_code == 200
    set_cookie = response.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and server.token not in set_cookie
    assert "location.replace" in response.text
    page = httpx.get(server.base + "/", headers={"Cookie": set_cookie.split(";")[0]})
    assert page.status_code == 200 and "gridless" in page.text
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    assert httpx.get(server.base + "/?token=wrong-token").status_code == 401


def test_cross_site_post_with_cookie_is_refused(server: ServerProcess) -> None:
    response = httpx.post(server.base + "/v1/chat/completions", json={"model": "x", "messages": []},
                          headers={"Cookie": cookie(server), "Origin": "http://evil.example"})
    assert response.status_code == 403
    same_origin = httpx.post(server.base + "/v1/chat/completions", json={"model": "x", "messages": []},
                             headers={"Cookie": cookie(server), "Origin": server.base})
    assert same_origin.status_code == 400  # past the gate; the body itself is invalid
