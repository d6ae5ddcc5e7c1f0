from __future__ import annotations

from pathlib import Path

from backend.security.devices import OWNER, DeviceStore, Principal
from backend.security.owner import OwnerCredential, load_or_create_token
from backend.security.policy import AccessGuard, cookie_header
from backend.storage.db import Database

TOKEN = "a-very-secret-owner-token"


def guard() -> AccessGuard:
    return AccessGuard(OwnerCredential(TOKEN), {"127.0.0.1", "localhost", "::1"},
                       public_prefixes=("/static/",), public_paths={"/healthz"})


def test_host_allowlist() -> None:
    g = guard()
    assert g.host_ok("127.0.0.1:8765") and g.host_ok("localhost") and g.host_ok("[::1]:8765")
    assert not g.host_ok("evil.example:8765")
    assert not g.host_ok("127.0.0.1.nip.io")
    assert not g.host_ok(None) and not g.host_ok("")


def test_origin_must_match_host() -> None:
    g = guard()
    assert g.origin_ok("http://127.0.0.1:8765", "127.0.0.1:8765")
    assert not g.origin_ok("http://127.0.0.1:9999", "127.0.0.1:8765")
    assert not g.origin_ok("http://evil.example", "127.0.0.1:8765")
    assert not g.origin_ok("null", "127.0.0.1:8765")
    assert g.origin_ok(None, "127.0.0.1:8765")


def test_credentials() -> None:
    g = guard()
    owner = OwnerCredential(TOKEN)
    assert g.authenticated({"authorization": f"Bearer {TOKEN}"}) == (OWNER, "bearer")
    assert g.authenticated({"cookie": f"gridless_session={owner.session_value}"}) == (OWNER, "cookie")
    assert g.authenticated({"cookie": f"gridless_session={TOKEN}"}) is None  # the token is not the cookie
    assert g.authenticated({"authorization": "Bearer wrong"}) is None
    assert g.authenticated({"cookie": "garbage;;=="}) is None
    cookie = g.session_cookie()
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_public_paths() -> None:
    g = guard()
    assert g.is_public("/healthz") and g.is_public("/static/app.css")
    assert not g.is_public("/") and not g.is_public("/v1/models") and not g.is_public("/static")


def test_token_is_saved_privately_and_reused(tmp_path: Path) -> None:
    first = load_or_create_token(tmp_path, None)
    assert len(first) >= 24
    assert (tmp_path / "owner_token").stat().st_mode & 0o077 == 0
    assert load_or_create_token(tmp_path, None) == first
    assert load_or_create_token(tmp_path, "given-token-xxxxxxxx") == "given-token-xxxxxxxx"


LAN = "192.168.1.20"
TABLET = "192.168.1.30"


def lan_guard(shared: set[str], hosts: frozenset[str] = frozenset({"127.0.0.1", "localhost", "::1"}),
              devices: DeviceStore | None = None) -> AccessGuard:
    return AccessGuard(OwnerCredential(TOKEN), set(hosts), public_prefixes=("/static/",), public_paths={"/healthz"},
                       devices=devices, lan_addresses=lambda: shared,
                       admin_prefixes=("/models", "/sharing", "/api/devices"))


def test_lan_listener_answers_only_to_its_address() -> None:
    shared: set[str] = {LAN}
    g = lan_guard(shared)
    assert g.host_ok(f"{LAN}:8765", LAN) and g.host_ok(LAN, LAN)
    for host in ("localhost:8765", "127.0.0.1:8765", "[::1]:8765", "evil.example", f"{LAN}.nip.io",
                 "192.168.1.21:8765", "", None, "[broken"):
        assert not g.host_ok(host, LAN), host
    # the loopback listener does not answer to the LAN address...
    assert g.host_ok("127.0.0.1:8765", "127.0.0.1") and g.host_ok("localhost", "127.0.0.1")
    assert not g.host_ok(f"{LAN}:8765", "127.0.0.1")
    # ...unless this machine's addresses are allowed there (bound to every address)
    assert lan_guard(shared, frozenset({"127.0.0.1", LAN})).host_ok(f"{LAN}:8765", "127.0.0.1")
    # once sharing stops, the LAN address is no longer a LAN listener
    shared.clear()
    assert not g.host_ok(f"{LAN}:8765", LAN)


def test_lan_listener_on_ipv6() -> None:
    g = lan_guard({"fe80::5"})
    assert g.host_ok("[fe80::5]:8765", "fe80::5") and g.host_ok("[FE80::5]:8765", "fe80::5")
    assert not g.host_ok("[::1]:8765", "fe80::5") and not g.host_ok("localhost", "fe80::5")


def test_same_origin_write() -> None:
    g = guard()
    host = "127.0.0.1:8765"
    assert g.same_origin_write({"host": host, "origin": f"http://{host}"})
    assert g.same_origin_write({"host": host, "origin": f"http://{host}", "sec-fetch-site": "same-origin"})
    assert not g.same_origin_write({"host": host, "origin": "http://evil.example"})
    assert not g.same_origin_write({"host": host, "origin": "http://127.0.0.1:9999"})
    assert not g.same_origin_write({"host": host, "origin": "null"})
    assert g.same_origin_write({"host": host, "sec-fetch-site": "same-origin"})
    assert not g.same_origin_write({"host": host})  # neither: not shown to come from our page
    assert not g.same_origin_write({"host": host, "sec-fetch-site": "none"})
    for site in ("cross-site", "same-site"):
        assert not g.same_origin_write({"host": host, "sec-fetch-site": site})
        assert not g.same_origin_write({"host": host, "sec-fetch-site": site, "origin": f"http://{host}"})


def test_admin_paths() -> None:
    g = lan_guard(set())
    for path in ("/models", "/models/", "/models/x", "/sharing", "/sharing/devices", "/api/devices",
                 "/api/devices/abc/revoke"):
        assert g.is_admin(path), path
    for path in ("/modelsx", "/", "/c/models", "/api/devicesx", "/sharingx", "/api", "/static/models"):
        assert not g.is_admin(path), path
    assert not guard().is_admin("/models")  # none configured


async def test_device_cookie(tmp_path: Path) -> None:
    db = Database(tmp_path / "g.db")
    await db.open()
    try:
        devices = DeviceStore(db, 3600)
        g = lan_guard({LAN}, devices=devices)
        device, token = await devices.add("Tablet", TABLET)
        found = g.authenticated({"cookie": f"other=1; gridless_device={token}"}, TABLET)
        assert found == (Principal("device", device.id, "Tablet"), "cookie")
        assert found is not None and not found[0].is_owner
        assert g.authenticated({"cookie": "gridless_device=wrong"}, TABLET) is None
        assert g.authenticated({"cookie": f"gridless_session={token}"}, TABLET) is None  # not an owner cookie
        assert g.authenticated({"authorization": f"Bearer {token}"}, TABLET) is None  # nor a bearer key
        # the owner's cookie wins when both are sent
        owner = OwnerCredential(TOKEN).session_value
        assert g.authenticated({"cookie": f"gridless_device={token}; gridless_session={owner}"}) == (OWNER, "cookie")
        # a guard without a device store knows no devices
        assert guard().authenticated({"cookie": f"gridless_device={token}"}) is None

        other, other_token = await devices.add("Other")
        live, other_live = g.track(device.id), g.track(other.id)
        assert await devices.revoke(device.id)
        assert live.is_set() and not other_live.is_set()
        assert g.authenticated({"cookie": f"gridless_device={token}"}, TABLET) is None
        assert g.authenticated({"cookie": f"gridless_device={other_token}"}) is not None
        g.untrack(other.id, other_live)
        await devices.revoke(other.id)
        assert not other_live.is_set()  # untracked: no longer closed
    finally:
        await db.close()


def test_track_untrack_close() -> None:
    g = guard()
    first, second = g.track("d1"), g.track("d1")
    g.untrack("d1", first)
    g.close_device("d1")
    assert second.is_set() and not first.is_set()
    g.close_device("d1")  # nothing left: no error
    g.untrack("d1", second)
    g.close_device("unknown")


def test_owner_guesses_limited_except_on_loopback() -> None:
    g = guard()
    for client in ("127.0.0.1", "::1", "127.0.0.5"):
        for _ in range(30):
            g.owner_guess_failed(client)
        assert g.owner_guess_allowed(client) == 0, client
    # nor when the limiter, shared with pairing, holds failures for it
    for _ in range(10):
        g.limiter.failed("127.0.0.1")
    assert g.limiter.retry_after("127.0.0.1") > 0 and g.owner_guess_allowed("127.0.0.1") == 0
    for _ in range(9):
        g.owner_guess_failed(TABLET)
    assert g.owner_guess_allowed(TABLET) == 0
    g.owner_guess_failed(TABLET)
    assert 0 < g.owner_guess_allowed(TABLET) <= 60
    assert g.owner_guess_allowed("192.168.1.31") == 0
    # an unknown client address is not loopback
    for _ in range(10):
        g.owner_guess_failed("")
    assert g.owner_guess_allowed("") > 0


def test_cookie_header() -> None:
    assert cookie_header("n", "v", secure=False) == "n=v; Path=/; HttpOnly; SameSite=Strict; Max-Age=34560000"
    secure = cookie_header("n", "v", secure=True, path="/api/pair", max_age=0)
    assert secure.endswith("Secure") and "Path=/api/pair" in secure and "Max-Age=0" in secure
