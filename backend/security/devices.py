"""Paired devices and who a request speaks for.

A device's session token is random (256 bits), given to the device once as an HttpOnly
cookie and stored here only as its SHA-256, so a copy of the database lets nobody in.
Sessions end when the owner revokes the device or after it has not been seen for the
idle expiry; either way it must pair again.
"""

from __future__ import annotations

import logging
import secrets
import time
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from hashlib import sha256
from typing import Literal

from backend.storage.db import Database

__all__ = ["OWNER", "Device", "DeviceStore", "Principal", "clean_device_name"]

log = logging.getLogger(__name__)

LAST_SEEN_WRITE_S = 60.0
"""`last_seen` is kept in memory and written at most this often per device."""
NAME_MAX = 60


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request speaks for: the owner (this device), a paired device, or an app with a key the
    owner made for it (`keys.py`), which may open only the routes of its scopes."""

    role: Literal["owner", "device", "app"]
    device_id: str | None = None
    name: str = field(default="this device", compare=False)
    """Shown to people; two principals are the same whatever the device is called now."""
    key_id: str | None = None
    """An app's key."""
    scopes: frozenset[str] = field(default=frozenset(), compare=False)
    """What an app's key may open."""

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"

    @property
    def key(self) -> str:
        """A stable string for this principal ("owner", "device:<id>", "app:<id>"), for rows it owns."""
        if self.role == "app":
            return f"app:{self.key_id}"
        return "owner" if self.is_owner else f"device:{self.device_id}"


OWNER = Principal("owner")


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    name: str
    address: str
    user_agent: str
    created_at: float
    last_seen: float

    @property
    def principal(self) -> Principal:
        return Principal("device", self.id, self.name)


def clean_device_name(name: str | None, fallback: str = "Unnamed device") -> str:
    """Printable, one line, at most 60 characters: it is shown on the owner's screen."""
    text = "".join(ch if unicodedata.category(ch)[0] not in "CZ" else " " for ch in (name or ""))
    text = " ".join(text.split())[:NAME_MAX].strip()
    return text or fallback


def token_hash(token: str) -> str:
    return sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class DeviceStore:
    COOKIE = "gridless_device"

    def __init__(self, db: Database, idle_expiry_s: float, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.idle_expiry_s = idle_expiry_s
        self.clock = clock
        self._by_hash: dict[str, Device] = {}
        self._written: dict[str, float] = {}
        """last_seen as stored, per device id, to know what needs writing."""
        self._revoke_listeners: list[Callable[[str], None]] = []

    async def load(self) -> None:
        """Read the paired devices; loaded again after a restore, when a device the restored data does
        not know loses its open connections at once."""
        before = {d.id for d in self._by_hash.values()}
        rows = await self.db.fetch_all("SELECT * FROM devices")
        self._by_hash = {r["token_hash"]: Device(r["id"], r["name"], r["address"], r["user_agent"],
                                                 r["created_at"], r["last_seen"]) for r in rows}
        self._written = {d.id: d.last_seen for d in self._by_hash.values()}
        for device_id in before - {d.id for d in self._by_hash.values()}:
            self._notify(device_id)
        await self.prune()

    def on_revoke(self, listener: Callable[[str], None]) -> None:
        """`listener(device_id)` runs when a device's access ends (revoked or expired)."""
        self._revoke_listeners.append(listener)

    def list(self) -> list[Device]:
        return sorted(self._by_hash.values(), key=lambda d: d.last_seen, reverse=True)

    def get(self, device_id: str) -> Device | None:
        return next((d for d in self._by_hash.values() if d.id == device_id), None)

    async def add(self, name: str, address: str = "", user_agent: str = "") -> tuple[Device, str]:
        """A new paired device and its session token (returned once, never stored)."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        device = Device(uuid.uuid4().hex, clean_device_name(name), address[:64], user_agent[:300], now, now)
        digest = token_hash(token)
        await self.db.execute(
            "INSERT INTO devices (id, name, token_hash, address, user_agent, created_at, last_seen) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (device.id, device.name, digest, device.address, device.user_agent, now, now))
        self._by_hash[digest] = device
        self._written[device.id] = now
        log.info("device %s paired", device.id)
        return device, token

    def authenticate(self, token: str | None, address: str = "") -> Device | None:
        """The device this session token belongs to, if it is still valid; marks it seen."""
        if not token or len(token) > 128:
            return None
        # looked up by the SHA-256 of the token: how long the lookup takes says nothing about the token
        digest = token_hash(token)
        device = self._by_hash.get(digest)
        if device is None:
            return None
        now = self.clock()
        if now - device.last_seen > self.idle_expiry_s:
            return None
        if now - device.last_seen >= 1.0 or (address and address != device.address):
            device = replace(device, last_seen=now, address=address[:64] or device.address)
            self._by_hash[digest] = device
        return device

    async def rename(self, device_id: str, name: str) -> Device | None:
        for digest, device in self._by_hash.items():
            if device.id == device_id:
                renamed = replace(device, name=clean_device_name(name, device.name))
                await self.db.execute("UPDATE devices SET name = ? WHERE id = ?", (renamed.name, device_id))
                self._by_hash[digest] = renamed
                return renamed
        return None

    async def revoke(self, device_id: str) -> bool:
        digest = next((k for k, d in self._by_hash.items() if d.id == device_id), None)
        if digest is None:
            return False
        del self._by_hash[digest]
        self._written.pop(device_id, None)
        await self.db.execute("DELETE FROM devices WHERE id = ?", (device_id,))
        log.info("device %s revoked", device_id)
        self._notify(device_id)
        return True

    async def prune(self) -> int:
        """Forget devices idle past the expiry; they must pair again."""
        now = self.clock()
        expired = [d.id for d in self._by_hash.values() if now - d.last_seen > self.idle_expiry_s]
        for device_id in expired:
            await self.revoke(device_id)
        return len(expired)

    async def flush(self, min_gap_s: float = LAST_SEEN_WRITE_S) -> None:
        """Write `last_seen` (and the latest address) of devices seen `min_gap_s` after the last write."""
        for device in list(self._by_hash.values()):
            written = self._written.get(device.id, 0.0)
            if device.last_seen > written and device.last_seen - written >= min_gap_s:
                await self.db.execute("UPDATE devices SET last_seen = ?, address = ? WHERE id = ?",
                                      (device.last_seen, device.address, device.id))
                self._written[device.id] = device.last_seen

    def _notify(self, device_id: str) -> None:
        for listener in self._revoke_listeners:
            try:
                listener(device_id)
            except Exception:  # a listener's failure must not keep a device connected
                log.exception("revoke listener failed")
