"""Sharing on a network, seen from a second host: a tablet in its own network namespace.

The real server shares on our side of a veth pair; every client here runs inside the
namespace, so requests arrive on the LAN listener from a LAN address exactly as a
tablet's would.
"""

from __future__ import annotations

import hashlib
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.audiofiles import png_bytes
from tests.netns import SecondHost, netns_available
from tests.rawws import RawWebSocket
from tests.server import ServerProcess

if not netns_available():
    pytest.skip("network namespaces are not available (needs root and `ip netns`)", allow_module_level=True)

EVIL = "http://evil.example"


@dataclass
class Lan:
    server: ServerProcess
    host: SecondHost
    second_source: str
    """Another address inside the namespace, for a client the rate limit has not seen."""
    origin: str = ""
    port: int = 0
    secrets: list[str] = field(default_factory=list)
    """Every pairing code and device token handed out, to look for in the log."""

    @property
    def address(self) -> str:
        return self.host.host_address

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.host.run(lambda: httpx.get(self.origin + path, **kwargs))

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.host.run(lambda: httpx.post(self.origin + path, **kwargs))


@dataclass
class Paired:
    cookie: str
    """`gridless_device=<token>`, as the tablet's browser sends it."""
    token: str
    set_cookie: str
    name: str


# the owner, on loopback

def owner_get(server: ServerProcess, path: str) -> Any:
    response = httpx.get(server.base + path, headers=server.headers())
    assert response.status_code == 200, response.text
    return response.json()


def share(server: ServerProcess, address: str, *, secure: bool = False) -> dict[str, Any]:
    response = httpx.post(server.base + "/api/sharing", json={"address": address, "secure": secure},
                          headers=server.headers(), timeout=30)
    assert response.status_code == 200, response.text
    state = response.json()
    assert state["sharing"] is True and state["address"] == address
    return state


def answer(server: ServerProcess, confirm: str, name: str, verdict: str) -> None:
    waiting = [r for r in owner_get(server, "/api/pairing/requests")
               if r["confirm"] == confirm and r["name"] == name]
    assert len(waiting) == 1, waiting
    response = httpx.post(f"{server.base}/api/pairing/requests/{waiting[0]['id']}/{verdict}",
                          headers=server.headers())
    assert response.status_code == 200, response.text


def device_id(server: ServerProcess, name: str) -> str:
    found = [d["id"] for d in owner_get(server, "/api/devices") if d["name"] == name]
    assert len(found) == 1, found
    return found[0]


# the tablet, in the namespace

def set_cookie(response: httpx.Response, name: str) -> str | None:
    return next((c for c in response.headers.get_list("set-cookie") if c.startswith(f"{name}=")), None)


def ask(lan: Lan, code: str, name: str, *, verify: Any = True, origin: str | None = None) -> httpx.Response:
    origin = origin or lan.origin
    return lan.host.run(lambda: httpx.post(origin + "/api/pair", json={"code": code, "name": name},
                                           headers={"Origin": origin}, verify=verify))


def pair(lan: Lan, name: str, *, verdict: str = "approve", verify: Any = True,
         origin: str | None = None) -> tuple[httpx.Response, Paired | None]:
    """Ask with a fresh code from the namespace, let the owner answer, collect the answer."""
    origin = origin or lan.origin
    code = owner_get(lan.server, "/api/pairing/code")["code"]
    lan.secrets.append(code)
    asked = ask(lan, code, name, verify=verify, origin=origin)
    assert asked.status_code == 200, asked.text
    assert asked.json()["state"] == "waiting"
    pairing = set_cookie(asked, "gridless_pairing")
    assert pairing is not None and "HttpOnly" in pairing
    answer(lan.server, asked.json()["confirm"], name, verdict)
    status = lan.host.run(lambda: httpx.get(origin + "/api/pair/status", verify=verify,
                                            headers={"Cookie": pairing.split(";")[0]}))
    assert status.status_code == 200, status.text
    device = set_cookie(status, "gridless_device")
    if device is None:
        return status, None
    cookie = device.split(";")[0]
    token = cookie.split("=", 1)[1]
    lan.secrets.append(token)
    return status, Paired(cookie, token, device, name)


def open_ws(lan: Lan, headers: dict[str, str]) -> RawWebSocket:
    return lan.host.run(lambda: RawWebSocket(lan.address, lan.port, headers))


def add_second_source(host: SecondHost, last: int = 6) -> str:
    """Another address inside the namespace (ending in `last`), reachable from our side through the veth."""
    address = host.peer_address.rsplit(".", 1)[0] + f".{last}"
    subprocess.run(["ip", "-n", host.name, "addr", "add", f"{address}/32", "dev", "eth0"], check=True)
    subprocess.run(["ip", "route", "add", f"{address}/32", "dev", host.veth], check=True)
    return address


# fixtures

@pytest.fixture(scope="module")
def lan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lan]:
    with SecondHost() as host, ServerProcess(data_dir=tmp_path_factory.mktemp("lan") / "data") as server:
        shared = share(server, host.host_address)
        yield Lan(server, host, add_second_source(host), shared["origin"], shared["port"])


@pytest.fixture(scope="module")
def device(lan: Lan) -> Paired:
    _, paired = pair(lan, "Module tablet")
    assert paired is not None
    return paired


@pytest.fixture
def fresh_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    env = getattr(request, "param", {})
    with ServerProcess(data_dir=tmp_path / "data", env=env) as server:
        yield server


def restore(lan: Lan) -> None:
    state = share(lan.server, lan.address)
    assert state["origin"] == lan.origin


# 1. nothing without pairing

def test_unpaired_tablet_is_refused_everywhere(lan: Lan) -> None:
    headers = {"Origin": lan.origin}
    for path in ("/", "/c/x", "/models", "/sharing", "/v1/models", "/media/x.png", "/api/sharing",
                 "/api/devices", "/_nicegui_ws/socket.io/?EIO=4&transport=polling"):
        assert lan.get(path).status_code == 401, path
    assert lan.post("/v1/chat/completions", json={"model": "x", "messages": []}, headers=headers).status_code == 401
    assert lan.post("/_nicegui/client/abc/upload/1", content=b"x", headers=headers).status_code == 401
    assert lan.post("/api/sharing", json={}, headers=headers).status_code == 401
    assert lan.get("/v1/models").json()["error"]["type"] == "authentication_error"
    socket_ = open_ws(lan, {"Host": f"{lan.address}:{lan.port}", "Origin": lan.origin})
    try:
        assert socket_.status and not socket_.upgraded(), socket_.status
    finally:
        socket_.close()


def test_public_paths_answer_without_pairing(lan: Lan) -> None:
    page = lan.get("/pair")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert lan.get("/manifest.webmanifest").status_code == 200
    assert lan.get("/static/app.css").status_code == 200


# 2. DNS rebinding and cross-site requests

def test_other_host_names_are_refused_on_the_lan(lan: Lan, device: Paired) -> None:
    for host in ("evil.example", f"evil.example:{lan.port}", f"127.0.0.1:{lan.port}", f"localhost:{lan.port}"):
        assert lan.get("/pair", headers={"Host": host}).status_code == 400, host
        assert lan.get("/", headers={"Host": host, "Cookie": device.cookie}).status_code == 400, host
    assert lan.get("/", headers={"Cookie": device.cookie}).status_code == 200


def test_cross_origin_websocket_is_refused_even_with_a_device_cookie(lan: Lan, device: Paired) -> None:
    host = f"{lan.address}:{lan.port}"
    evil = open_ws(lan, {"Host": host, "Origin": EVIL, "Cookie": device.cookie})
    evil.close()
    assert evil.status and not evil.upgraded(), evil.status
    rebound = open_ws(lan, {"Host": "evil.example", "Origin": EVIL, "Cookie": device.cookie})
    rebound.close()
    assert rebound.status and not rebound.upgraded(), rebound.status
    same = open_ws(lan, {"Host": host, "Origin": lan.origin, "Cookie": device.cookie})
    same.close()
    assert same.upgraded(), same.status


def test_cross_site_post_with_a_device_cookie_is_refused(lan: Lan, device: Paired) -> None:
    body = {"model": "x", "messages": []}
    evil = lan.post("/v1/chat/completions", json=body, headers={"Cookie": device.cookie, "Origin": EVIL})
    assert evil.status_code == 403 and evil.json()["error"]["code"] == "cross_origin"
    bare = lan.post("/v1/chat/completions", json=body, headers={"Cookie": device.cookie})
    assert bare.status_code == 403
    cross_site = lan.post("/v1/chat/completions", json=body,
                          headers={"Cookie": device.cookie, "Sec-Fetch-Site": "cross-site"})
    assert cross_site.status_code == 403
    same = lan.post("/v1/chat/completions", json=body, headers={"Cookie": device.cookie, "Origin": lan.origin})
    assert same.status_code == 400  # past the gate; the body itself is invalid
    # the pairing routes need no credential, yet refuse another site's page
    assert lan.post("/api/pair", json={"code": "x"}, headers={"Origin": EVIL}).status_code == 403


# 3. pairing

def test_wrong_code_is_refused(lan: Lan) -> None:
    owner_get(lan.server, "/api/pairing/code")
    response = ask(lan, "not-the-code", "Guesser")
    assert response.status_code == 403 and response.json()["error"]["code"] == "invalid_code"
    assert set_cookie(response, "gridless_pairing") is None
    assert not [r for r in owner_get(lan.server, "/api/pairing/requests") if r["name"] == "Guesser"]


def test_code_is_single_use(lan: Lan) -> None:
    code = owner_get(lan.server, "/api/pairing/code")["code"]
    lan.secrets.append(code)
    first = ask(lan, code, "First")
    assert first.status_code == 200 and first.json()["state"] == "waiting"
    again = ask(lan, code, "Second")
    assert again.status_code == 403 and again.json()["error"]["code"] == "invalid_code"
    assert owner_get(lan.server, "/api/pairing/code")["code"] != code
    answer(lan.server, first.json()["confirm"], "First", "deny")


@pytest.mark.slow  # waits for the code to expire
@pytest.mark.parametrize("fresh_server", [{"GRIDLESS_PAIRING_CODE_TTL_S": "2"}], indirect=True, ids=["ttl-2s"])
def test_expired_code_is_refused(lan: Lan, fresh_server: ServerProcess) -> None:
    origin = share(fresh_server, lan.address)["origin"]
    short = Lan(fresh_server, lan.host, lan.second_source, origin, fresh_server.port)
    code = owner_get(fresh_server, "/api/pairing/code")["code"]
    time.sleep(2.5)
    expired = ask(short, code, "Late tablet")
    assert expired.status_code == 403 and expired.json()["error"]["code"] == "invalid_code"
    fresh = owner_get(fresh_server, "/api/pairing/code")["code"]
    assert fresh != code
    assert ask(short, fresh, "Quick tablet").status_code == 200


@pytest.mark.engine
def test_approved_tablet_can_chat(lan: Lan, smollm_path: Path) -> None:
    status, paired = pair(lan, "Chatting tablet")
    assert status.json()["state"] == "approved" and paired is not None
    assert "HttpOnly" in paired.set_cookie and "SameSite=Strict" in paired.set_cookie
    assert "Secure" not in paired.set_cookie  # plain HTTP: a Secure cookie would never be sent back
    headers = {"Cookie": paired.cookie}
    assert lan.get("/", headers=headers).status_code == 200
    models = lan.get("/v1/models", headers=headers)
    assert models.status_code == 200
    model = models.json()["data"][0]["id"]
    chat = lan.post("/v1/chat/completions", timeout=120, headers={**headers, "Origin": lan.origin},
                    json={"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]})
    assert chat.status_code == 200, chat.text
    assert chat.json()["choices"][0]["message"]["role"] == "assistant"
    assert "Chatting tablet" in [d["name"] for d in owner_get(lan.server, "/api/devices")]
    # the session is handed over once
    again = lan.get("/api/pair/status", headers={"Cookie": "gridless_pairing=whatever"})
    assert again.status_code == 404


def test_denied_tablet_gets_no_session(lan: Lan) -> None:
    status, paired = pair(lan, "Denied tablet", verdict="deny")
    assert status.json()["state"] == "denied"
    assert paired is None and set_cookie(status, "gridless_device") is None
    assert "Denied tablet" not in [d["name"] for d in owner_get(lan.server, "/api/devices")]


# 4. a paired tablet is not the owner

def test_tablet_cannot_manage_the_phone(lan: Lan, device: Paired) -> None:
    headers = {"Cookie": device.cookie, "Origin": lan.origin}
    for path in ("/models", "/sharing", "/devices", "/api/sharing", "/api/devices", "/api/pairing/code",
                 "/api/pairing/requests"):
        assert lan.get(path, headers=headers).status_code == 403, path
    upload = lan.host.run(lambda: httpx.put(lan.origin + "/api/models/upload?filename=x.gguf", content=b"GGUF",
                                            headers=headers))
    assert upload.status_code == 403
    assert lan.post("/api/sharing", json={"address": lan.address}, headers=headers).status_code == 403
    delete = lan.host.run(lambda: httpx.delete(lan.origin + "/api/sharing", headers=headers))
    assert delete.status_code == 403
    assert owner_get(lan.server, "/api/sharing")["sharing"] is True
    assert lan.get("/", headers=headers).status_code == 200


def test_keys_for_apps_on_the_lan(lan: Lan, device: Paired) -> None:
    """Keys are the owner's to manage; a key works over the network for its scopes only, and wrong
    keys count towards the same limit as wrong owner tokens."""
    headers = {"Cookie": device.cookie, "Origin": lan.origin}
    for response in (lan.get("/api/keys", headers=headers),
                     lan.post("/api/keys", json={"name": "Tablet's", "scopes": ["chat"]}, headers=headers)):
        assert response.status_code == 403 and response.json()["error"]["code"] == "owner_only"
    made = httpx.post(lan.server.base + "/api/keys", json={"name": "Home Assistant", "scopes": ["chat"]},
                      headers=lan.server.headers())
    assert made.status_code == 201, made.text
    secret = made.json()["key"]
    lan.secrets.append(secret)
    key = {"Authorization": f"Bearer {secret}"}
    assert lan.get("/v1/models", headers=key).status_code == 200
    for path in ("/", "/api/conversations", "/api/keys", "/api/devices"):
        refused = lan.get(path, headers=key)
        assert refused.status_code == 403 and "This key may not open" in refused.text, path

    source = add_second_source(lan.host, 7)  # an address no other test guesses from
    guesser = httpx.Client(transport=httpx.HTTPTransport(local_address=source))

    def get(secret_: str) -> httpx.Response:
        return guesser.get(lan.origin + "/v1/models", headers={"Authorization": f"Bearer {secret_}"})

    try:
        wrong = lan.host.run(lambda: [get(f"gl-guess-{i}") for i in range(10)])
        assert [r.status_code for r in wrong] == [401] * 10
        assert lan.host.run(lambda: get(secret)).status_code == 200  # a key held is looked at first
        limited = lan.host.run(lambda: get("gl-guess"))
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "too_many_attempts"
        assert int(limited.headers["retry-after"]) >= 1
    finally:
        lan.host.run(guesser.close)
    assert lan.get("/v1/models", headers=key).status_code == 200  # another address is not held back


def test_tablet_attaches_files_of_its_own(lan: Lan, device: Paired) -> None:
    """A paired tablet uploads a photo for its message; the owner cannot take it over, a cross-site
    page cannot upload with the tablet's cookie, and the unpaired cannot upload at all."""
    headers = {"Cookie": device.cookie, "Origin": lan.origin}
    picture = png_bytes()
    uploaded = lan.post("/api/attachments?name=board.png", content=picture, headers=headers)
    assert uploaded.status_code == 201, uploaded.text
    attachment = uploaded.json()
    assert attachment["kind"] == "image"
    assert lan.get(attachment["thumbnail"], headers=headers).status_code == 200
    owner_delete = httpx.delete(f"{lan.server.base}/api/attachments/{attachment['id']}", headers=lan.server.headers())
    assert owner_delete.status_code == 404  # not the owner's to remove: it waits for the tablet's message
    evil = lan.post("/api/attachments?name=x.png", content=picture, headers={"Cookie": device.cookie, "Origin": EVIL})
    assert evil.status_code == 403
    assert lan.post("/api/attachments?name=x.png", content=picture, headers={"Origin": lan.origin}).status_code == 401
    mine = lan.host.run(lambda: httpx.delete(f"{lan.origin}/api/attachments/{attachment['id']}", headers=headers))
    assert mine.status_code == 200, mine.text


# 5. revoking ends what is open

def test_revoke_closes_the_socket_and_the_session(lan: Lan) -> None:
    _, paired = pair(lan, "Revoked tablet")
    assert paired is not None
    ws = open_ws(lan, {"Host": f"{lan.address}:{lan.port}", "Origin": lan.origin, "Cookie": paired.cookie})
    try:
        assert ws.upgraded(), ws.status
        opcode, payload = ws.frame(time.monotonic() + 5)
        assert opcode == 0x1 and payload.startswith(b"0{"), payload  # engine.io's open packet
        response = httpx.delete(f"{lan.server.base}/api/devices/{device_id(lan.server, paired.name)}",
                                headers=lan.server.headers())
        assert response.status_code == 200
        deadline = time.monotonic() + 1.0
        closed = None
        try:
            while closed is None:
                opcode, payload = ws.frame(deadline)
                if opcode == 0x8:
                    closed = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 0
        except (EOFError, ConnectionResetError):
            closed = -1
        assert closed in (4403, -1), closed
    finally:
        ws.close()
    assert lan.get("/", headers={"Cookie": paired.cookie}).status_code == 401
    assert lan.get("/v1/models", headers={"Cookie": paired.cookie}).status_code == 401


# 6. guessing codes

def test_guessing_codes_is_rate_limited_per_address(lan: Lan) -> None:
    server, origin = lan.server, lan.origin
    guesser = httpx.Client(transport=httpx.HTTPTransport(local_address=lan.second_source),
                           headers={"Origin": origin})

    def guess(count: int) -> list[httpx.Response]:
        return [guesser.post(origin + "/api/pair", json={"code": f"guess-{i}", "name": "Guesser"})
                for i in range(count)]

    try:
        responses = []
        for _ in range(4):
            responses += lan.host.run(lambda: guess(25))
            # the owner on loopback is never held back
            assert httpx.get(server.base + "/api/sharing", headers=server.headers()).status_code == 200
        assert [r.status_code for r in responses[:10]] == [403] * 10
        assert [r.json()["error"]["code"] for r in responses[:10]] == ["invalid_code"] * 10
        assert [r.status_code for r in responses[10:]] == [429] * 90
        assert all(int(r.headers["retry-after"]) >= 1 for r in responses[10:])
        # the right code from the limited address is refused too, and stays unused
        code = owner_get(server, "/api/pairing/code")["code"]
        lan.secrets.append(code)
        limited = lan.host.run(lambda: guesser.post(origin + "/api/pair", json={"code": code, "name": "Guesser"}))
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    finally:
        lan.host.run(guesser.close)
    # another address on the same network is not
    other = ask(lan, code, "Other tablet")
    assert other.status_code == 200 and other.json()["state"] == "waiting"
    assert other.json()["confirm"] in [r["confirm"] for r in owner_get(server, "/api/pairing/requests")]
    answer(server, other.json()["confirm"], "Other tablet", "deny")


# 7. secrets stay out of the log

def test_log_holds_no_code_or_device_token(lan: Lan) -> None:
    _, paired = pair(lan, "Logged tablet")
    assert paired is not None
    assert lan.get("/", headers={"Cookie": paired.cookie}).status_code == 200
    log = lan.server.log()
    assert lan.secrets and "sharing on" in log
    leaked = [s for s in lan.secrets if s in log]
    assert not leaked


# 8. the network goes away

@pytest.mark.slow  # waits for the sharing watch to notice
def test_sharing_stops_when_the_address_disappears(fresh_server: ServerProcess) -> None:
    with SecondHost(index=1) as other:
        share(fresh_server, other.host_address)
        other.host_side_down()
        deadline = time.monotonic() + 8
        state = owner_get(fresh_server, "/api/sharing")
        while state["sharing"] and time.monotonic() < deadline:
            time.sleep(0.25)
            state = owner_get(fresh_server, "/api/sharing")
    assert state["sharing"] is False
    assert other.host_address in (state["stopped_reason"] or "")
    pairing = httpx.get(fresh_server.base + "/api/pairing/code", headers=fresh_server.headers())
    assert pairing.status_code == 409  # no codes while not sharing


# 9. HTTPS

def test_secure_mode_serves_https_with_the_local_ca(lan: Lan, tmp_path: Path) -> None:
    state = share(lan.server, lan.address, secure=True)
    try:
        origin, guide = state["origin"], state["guide_url"]
        assert origin == f"https://{lan.address}:{lan.port}"
        assert guide == f"http://{lan.address}:{lan.port + 1}/ca"
        guide_base = guide.removesuffix("/ca")
        pem = lan.host.run(lambda: httpx.get(guide_base + "/ca/gridless-ca.pem"))
        assert pem.status_code == 200
        der = ssl.PEM_cert_to_DER_cert(pem.text)
        assert hashlib.sha256(der).digest().hex(":").upper() == state["ca_fingerprint"]
        crt = lan.host.run(lambda: httpx.get(guide_base + "/ca/gridless-ca.crt"))
        assert crt.status_code == 200 and crt.content == der
        page = lan.host.run(lambda: httpx.get(guide))
        assert page.status_code == 200 and state["ca_fingerprint"] in page.text
        for path in ("/", "/v1/models", "/pair", "/api/sharing"):
            assert lan.host.run(partial(httpx.get, guide_base + path)).status_code != 200, path

        cafile = tmp_path / "ca.pem"
        cafile.write_text(pem.text)
        trusted = ssl.create_default_context(cafile=str(cafile))
        assert lan.host.run(lambda: httpx.get(origin + "/pair", verify=trusted)).status_code == 200
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            lan.host.run(lambda: httpx.get(origin + "/pair", verify=ssl.create_default_context()))
        with pytest.raises(httpx.HTTPError):  # plain HTTP is not spoken on the HTTPS port
            lan.host.run(lambda: httpx.get(f"http://{lan.address}:{lan.port}/pair"))

        status, paired = pair(lan, "Secure tablet", verify=trusted, origin=origin)
        assert status.json()["state"] == "approved" and paired is not None
        assert "Secure" in [p.strip() for p in paired.set_cookie.split(";")]
        assert lan.host.run(lambda: httpx.get(origin + "/", verify=trusted,
                                              headers={"Cookie": paired.cookie})).status_code == 200
        assert lan.host.run(lambda: httpx.get(origin + "/", verify=trusted)).status_code == 401
    finally:
        restore(lan)
    with pytest.raises(httpx.ConnectError):  # the guide listener went with the secure share
        lan.host.run(lambda: httpx.get(f"http://{lan.address}:{lan.port + 1}/ca"))
    assert lan.get("/pair").status_code == 200


# 10. stopping

def test_stop_sharing_closes_the_lan_listener(lan: Lan, device: Paired) -> None:
    response = httpx.delete(lan.server.base + "/api/sharing", headers=lan.server.headers())
    assert response.status_code == 200 and response.json()["sharing"] is False
    try:
        with pytest.raises(httpx.ConnectError):
            lan.get("/pair")
        with pytest.raises(httpx.ConnectError):
            lan.get("/", headers={"Cookie": device.cookie})
        assert owner_get(lan.server, "/api/sharing")["sharing"] is False
        assert httpx.get(lan.server.base + "/v1/models", headers=lan.server.headers()).status_code == 200
    finally:
        restore(lan)
    assert lan.get("/", headers={"Cookie": device.cookie}).status_code == 200
