from __future__ import annotations

from pathlib import Path

from backend.security.devices import OWNER
from backend.security.middleware import AccessGuard
from backend.security.owner import OwnerCredential, load_or_create_token

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
