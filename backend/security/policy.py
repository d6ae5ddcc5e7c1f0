"""What the security gate decides, free of ASGI plumbing so it can be tested directly: which
hosts and origins are ours, who a request speaks for, what is public or the owner's alone,
what an app's key may open, how large a body may be, and the headers every answer carries."""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Callable
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from .devices import OWNER, DeviceStore, Principal
from .keys import SCOPES, KeyStore
from .owner import OwnerCredential
from .ratelimit import FailureLimiter

__all__ = ["CONTENT_SECURITY_POLICY", "KEY_ROUTES", "SAFE_METHODS", "SECURITY_HEADERS", "AccessGuard",
           "cookie_header", "is_loopback", "key_may_open", "key_refusal"]

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CONTENT_SECURITY_POLICY = "; ".join((
    # Nothing is loaded from or sent to another origin: an answer whose Markdown holds an image
    # or link to a tracking address cannot make the browser fetch it. NiceGUI's pages need
    # inline scripts and styles and Vue's template compiler ('unsafe-eval').
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "worker-src 'self'",
    "manifest-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
]
COOKIE_MAX_AGE = 400 * 24 * 3600  # the longest browsers keep a cookie

_ID = r"[A-Za-z0-9_-]{1,64}"
"""An id in a path: no dots or slashes, so nothing such as `..` can lead elsewhere."""
KEY_ROUTES: dict[str, tuple[tuple[str, re.Pattern[str]], ...]] = {
    scope: tuple((method, re.compile(pattern)) for method, pattern in routes) for scope, routes in {
        "chat": (("POST", "/v1/chat/completions"), ("GET", "/v1/models")),
        # the pictures `response_format: "url"` links to
        "images": (("POST", "/v1/images/generations"), ("GET", f"/api/images/{_ID}/file")),
        "audio": (("POST", "/v1/audio/transcriptions"), ("POST", "/v1/audio/speech")),
        "embeddings": (("POST", "/v1/embeddings"),),
        # reading only: the list, the search, one conversation, its answer's events, its export
        "conversations": (("GET", "/api/conversations"), ("GET", "/api/conversations/search"),
                          ("GET", f"/api/conversations/{_ID}"), ("GET", f"/api/conversations/{_ID}/events"),
                          ("GET", f"/api/conversations/{_ID}/export")),
    }.items()}
"""What each scope of an app's key opens, by method and whole path (the path the router sees)."""
ANY_KEY_ROUTES = (("GET", re.compile("/v1/models")),)
"""What every key may open: the models, which an OpenAI client asks for first."""


def key_may_open(scopes: frozenset[str] | set[str], method: str, path: str) -> bool:
    """Whether a key with these scopes may make this request: only the exact routes of its scopes."""
    routes = [*ANY_KEY_ROUTES, *(r for scope in scopes for r in KEY_ROUTES.get(scope, ()))]
    return any(method == allowed and pattern.fullmatch(path) for allowed, pattern in routes)


def key_refusal(principal: Principal, method: str, path: str) -> str | None:
    """Why an app's key may not make this request, or None when it may."""
    if key_may_open(principal.scopes, method, path):
        return None
    shown = path if len(path) <= 120 else path[:119] + "…"
    scopes = ", ".join(s for s in SCOPES if s in principal.scopes) or "none"
    return f"This key may not open {method} {shown}; its scopes are {scopes}."


class AccessGuard:
    """The decisions, kept free of ASGI plumbing so they can be tested directly."""

    def __init__(self, owner: OwnerCredential, hosts: set[str], public_prefixes: tuple[str, ...],
                 public_paths: set[str], *, devices: DeviceStore | None = None,
                 keys: KeyStore | None = None,
                 lan_addresses: Callable[[], set[str]] = set, limiter: FailureLimiter | None = None,
                 admin_prefixes: tuple[str, ...] = (),
                 client_principal: Callable[[str], Principal | None] | None = None,
                 max_body_bytes: int = 4 * 1024 * 1024, body_limits: dict[str, int] | None = None,
                 body_limit_patterns: tuple[tuple[str, int], ...] = ()) -> None:
        self.owner = owner
        self.devices = devices
        self.keys = keys
        """Apps' keys, checked when a bearer token is not the owner's."""
        self.lan_addresses = lan_addresses
        """The addresses being shared on right now: a request that arrived on one must name it as its Host."""
        self.limiter = limiter or FailureLimiter()
        self.admin_prefixes = admin_prefixes
        self.client_principal = client_principal
        """Who opened a page's client (by its id), so an upload goes only to one's own page."""
        self.max_body_bytes = max_body_bytes
        self.body_limits = body_limits or {}
        """Paths with their own limit (model uploads), instead of `max_body_bytes`."""
        self.body_limit_patterns = [(re.compile(pattern), limit) for pattern, limit in body_limit_patterns]
        """Paths with an id in them (a collection's documents) matching a pattern, with their own limit."""
        self.hosts = {h.lower() for h in hosts}
        self.public_prefixes = public_prefixes
        self.public_paths = public_paths
        self._live: dict[str, set[asyncio.Event]] = {}
        if devices is not None:
            devices.on_revoke(self.close_device)

    def host_ok(self, host_header: str | None, local_address: str | None = None) -> bool:
        """The Host names this server: on a shared LAN address exactly that address, elsewhere
        one of the loopback names (or this machine's names when bound to every address)."""
        if not host_header:
            return False
        try:
            hostname = urlsplit(f"//{host_header}").hostname
        except ValueError:
            return False
        if hostname is None:
            return False
        if local_address is not None and local_address in self.lan_addresses():
            return hostname == local_address.lower()
        return hostname.lower() in self.hosts

    def origin_ok(self, origin: str | None, host_header: str | None) -> bool:
        """Same origin: the Origin's host:port is the Host the request was sent to."""
        if origin is None:
            return True  # not a browser cross-site request (browsers send Origin on those)
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        return bool(parts.netloc) and parts.netloc.lower() == (host_header or "").lower()

    def same_origin_write(self, headers: dict[str, str]) -> bool:
        """A state-changing request made with a cookie must show it comes from our own page:
        an Origin equal to the Host, or (where a browser sends no Origin) Sec-Fetch-Site
        saying same-origin. SameSite=Strict cookies are the second line."""
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return False
        origin = headers.get("origin")
        if origin is None:
            return headers.get("sec-fetch-site") == "same-origin"
        return self.origin_ok(origin, headers.get("host"))

    def body_limit(self, path: str) -> int:
        if path in self.body_limits:
            return self.body_limits[path]
        for pattern, limit in self.body_limit_patterns:
            if pattern.fullmatch(path):
                return limit
        return self.max_body_bytes

    def is_public(self, path: str) -> bool:
        return path in self.public_paths or path.startswith(self.public_prefixes)

    def is_admin(self, path: str) -> bool:
        return any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.admin_prefixes)

    def authenticated(self, headers: dict[str, str], client: str = "") -> tuple[Principal, str] | None:
        """Who the request speaks for and how ('cookie' or 'bearer'), or None. An app's key comes
        only as a bearer token, never in a cookie."""
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            bearer = auth[7:].strip()
            if self.owner.token_ok(bearer):
                return OWNER, "bearer"
            key = self.keys.authenticate(bearer) if self.keys is not None else None
            if key is not None:
                return key.principal, "bearer"
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:
            return None
        morsel = cookie.get(OwnerCredential.COOKIE)
        if morsel is not None and self.owner.session_ok(morsel.value):
            return OWNER, "cookie"
        morsel = cookie.get(DeviceStore.COOKIE)
        if morsel is not None and self.devices is not None:
            device = self.devices.authenticate(morsel.value, client)
            if device is not None:
                return device.principal, "cookie"
        return None

    def key_used(self, principal: Principal) -> None:
        """An app's key made a request the gate let through."""
        if principal.key_id is not None and self.keys is not None:
            self.keys.touch(principal.key_id)

    def owner_guess_allowed(self, client: str) -> float:
        """Seconds a source must wait before another owner-token guess is looked at. The
        owner's own device (loopback) is never held back."""
        return 0.0 if is_loopback(client) else self.limiter.retry_after(client)

    def owner_guess_failed(self, client: str) -> None:
        if not is_loopback(client):
            self.limiter.failed(client)

    def session_cookie(self, secure: bool = False) -> str:
        return cookie_header(OwnerCredential.COOKIE, self.owner.session_value, secure=secure)

    # open connections of paired devices, closed when the device is revoked

    def track(self, device_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self._live.setdefault(device_id, set()).add(event)
        return event

    def untrack(self, device_id: str, event: asyncio.Event) -> None:
        events = self._live.get(device_id)
        if events is not None:
            events.discard(event)
            if not events:
                del self._live[device_id]

    def close_device(self, device_id: str) -> None:
        for event in self._live.pop(device_id, set()):
            event.set()


def cookie_header(name: str, value: str, *, secure: bool, path: str = "/", max_age: int = COOKIE_MAX_AGE) -> str:
    parts = [f"{name}={value}", f"Path={path}", "HttpOnly", "SameSite=Strict", f"Max-Age={max_age}"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
