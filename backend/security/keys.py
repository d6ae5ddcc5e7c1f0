"""Keys the owner makes for other apps (Tasker, Shortcuts, Home Assistant, scripts).

A key is a random secret (256 bits) starting with `gl-`, shown to the owner once and stored here
only as its SHA-256, so a copy of the database lets nobody in. Each key has scopes, and the gate
lets it open only the routes of those (`policy.key_may_open`). The live keys are kept in memory,
by hash, so checking one costs no database read and revoking one ends it at once. A revoked key
stays listed as revoked (with its usage) until more than `MAX_REVOKED` newer ones push it out.
How often a key is used is counted in memory and written at most every minute (`flush`).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from ..core.errors import AppError, ErrorCode
from ..storage.db import Database
from .devices import Principal, clean_device_name, token_hash

__all__ = ["MAX_KEYS", "SCOPES", "ApiKey", "KeyStore", "checked_scopes"]

log = logging.getLogger(__name__)

SCOPES = ("chat", "images", "audio", "embeddings", "conversations")
"""What a key may be given, in the order they are shown."""
SECRET_PREFIX = "gl-"
SHOWN_PREFIX = 8
"""How much of a secret is kept in the clear to recognise it (`gl-` and five more characters)."""
MAX_KEYS = 100
"""Live keys at most."""
MAX_REVOKED = 20
"""Revoked keys kept for the list; older ones are forgotten."""
MAX_SECRET = 128
USAGE_WRITE_S = 60.0
"""`requests` and `last_used_at` are kept in memory and written at most this often per key."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    scopes: tuple[str, ...]
    prefix: str
    created_at: float
    last_used_at: float | None = None
    requests: int = 0
    revoked_at: float | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def principal(self) -> Principal:
        return Principal("app", None, self.name, key_id=self.id, scopes=frozenset(self.scopes))

    def to_json(self) -> dict[str, object]:
        """What the owner sees of a key: never its secret."""
        return {"id": self.id, "name": self.name, "scopes": list(self.scopes), "prefix": self.prefix,
                "created_at": self.created_at, "last_used_at": self.last_used_at, "requests": self.requests,
                "revoked": self.revoked, "revoked_at": self.revoked_at}


def checked_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes asked for, each once and in `SCOPES`' order; unknown ones and none at all are refused."""
    asked = list(scopes)
    unknown = [s for s in asked if s not in SCOPES]
    if unknown:
        raise AppError(ErrorCode.INVALID_VALUE, f"“{str(unknown[0])[:40]}” is not a scope; the scopes are "
                                                f"{', '.join(SCOPES)}.", param="scopes")
    if not asked:
        raise AppError(ErrorCode.INVALID_VALUE, "Give the key at least one scope.", param="scopes")
    return tuple(s for s in SCOPES if s in asked)


class KeyStore:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock
        self._keys: dict[str, ApiKey] = {}
        """Every key listed, live and revoked, by id."""
        self._by_hash: dict[str, str] = {}
        """Live keys' ids by the SHA-256 of their secret."""
        self._written: dict[str, int] = {}
        """`requests` as stored, per key id, to know what needs writing."""
        self._written_at: dict[str, float] = {}
        """When each key's usage was last written (by the key's own clock of use)."""

    async def load(self) -> None:
        """Read the keys (at start, and again after a restore: keys the restored data does not know end)."""
        rows = await self.db.fetch_all("SELECT * FROM api_keys ORDER BY created_at")
        keys: dict[str, ApiKey] = {}
        by_hash: dict[str, str] = {}
        for r in rows:
            try:
                scopes = tuple(s for s in json.loads(r["scopes"]) if s in SCOPES)
            except (ValueError, TypeError):
                scopes = ()
            key = ApiKey(r["id"], r["name"], scopes, r["prefix"], r["created_at"], r["last_used_at"],
                         int(r["requests"] or 0), r["revoked_at"])
            keys[key.id] = key
            if key.revoked_at is None and scopes:
                by_hash[r["secret_hash"]] = key.id
        self._keys, self._by_hash = keys, by_hash
        self._written = {k.id: k.requests for k in keys.values()}
        self._written_at = {k.id: k.last_used_at or 0.0 for k in keys.values()}

    def list(self) -> list[ApiKey]:
        """Live keys first, newest first; then the revoked ones, most recently revoked first."""
        live = sorted((k for k in self._keys.values() if not k.revoked), key=lambda k: k.created_at, reverse=True)
        revoked = sorted((k for k in self._keys.values() if k.revoked), key=lambda k: k.revoked_at or 0.0,
                         reverse=True)
        return live + revoked

    def get(self, key_id: str) -> ApiKey | None:
        return self._keys.get(key_id)

    async def create(self, name: str, scopes: Iterable[str]) -> tuple[ApiKey, str]:
        """A new key and its secret (returned once, never stored)."""
        cleaned = clean_device_name(name, fallback="")
        if not cleaned:
            raise AppError(ErrorCode.INVALID_VALUE, "Give the key a name, such as the app that will use it.",
                           param="name")
        given = checked_scopes(scopes)
        if sum(1 for k in self._keys.values() if not k.revoked) >= MAX_KEYS:
            raise AppError(ErrorCode.CONFLICT, f"There are already {MAX_KEYS} keys; revoke one you no longer "
                                               f"use first.")
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        digest = token_hash(secret)
        key = ApiKey(uuid.uuid4().hex, cleaned, given, secret[:SHOWN_PREFIX], self.clock())
        await self.db.execute(
            "INSERT INTO api_keys (id, name, scopes, secret_hash, prefix, created_at, requests) "
            "VALUES (?, ?, ?, ?, ?, ?, 0)",
            (key.id, key.name, json.dumps(list(key.scopes)), digest, key.prefix, key.created_at))
        self._keys[key.id] = key
        self._by_hash[digest] = key.id
        self._written[key.id] = 0
        self._written_at[key.id] = 0.0
        log.info("app key %s made", key.id)
        return key, secret

    def authenticate(self, secret: str | None) -> ApiKey | None:
        """The live key this secret belongs to, or None. Looked up by the secret's SHA-256: how long
        the lookup takes says nothing about the secret."""
        if not secret or len(secret) > MAX_SECRET:
            return None
        key_id = self._by_hash.get(token_hash(secret))
        return self._keys.get(key_id) if key_id is not None else None

    def touch(self, key_id: str) -> None:
        """One more request made with this key, now (in memory; `flush` writes it)."""
        key = self._keys.get(key_id)
        if key is not None and not key.revoked:
            self._keys[key_id] = replace(key, requests=key.requests + 1, last_used_at=self.clock())

    async def revoke(self, key_id: str) -> ApiKey | None:
        """Ends the key at once (its next request is 401); None for an unknown id. A key revoked
        already is answered as it is."""
        key = self._keys.get(key_id)
        if key is None or key.revoked:
            return key
        self._by_hash = {h: i for h, i in self._by_hash.items() if i != key_id}
        key = replace(key, revoked_at=self.clock())
        self._keys[key_id] = key
        await self.db.execute("UPDATE api_keys SET revoked_at = ?, requests = ?, last_used_at = ? WHERE id = ?",
                              (key.revoked_at, key.requests, key.last_used_at, key_id))
        self._written[key_id] = key.requests
        log.info("app key %s revoked", key_id)
        await self._forget_old_revoked()
        return key

    async def flush(self, min_gap_s: float = USAGE_WRITE_S) -> None:
        """Write the usage of keys used `min_gap_s` after their usage was last written."""
        for key in list(self._keys.values()):
            if key.requests == self._written.get(key.id) or key.last_used_at is None:
                continue
            if key.last_used_at - self._written_at.get(key.id, 0.0) < min_gap_s:
                continue
            await self.db.execute("UPDATE api_keys SET requests = ?, last_used_at = ? WHERE id = ?",
                                  (key.requests, key.last_used_at, key.id))
            self._written[key.id] = key.requests
            self._written_at[key.id] = key.last_used_at

    async def _forget_old_revoked(self) -> None:
        revoked = sorted((k for k in self._keys.values() if k.revoked), key=lambda k: k.revoked_at or 0.0,
                         reverse=True)
        for key in revoked[MAX_REVOKED:]:
            await self.db.execute("DELETE FROM api_keys WHERE id = ?", (key.id,))
            del self._keys[key.id]
            self._written.pop(key.id, None)
            self._written_at.pop(key.id, None)
