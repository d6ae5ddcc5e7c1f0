"""Apps' keys in a real database: made, listed, checked, counted, revoked, read again after a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.core.errors import AppError, ErrorCode
from backend.security.devices import token_hash
from backend.security.keys import MAX_KEYS, MAX_REVOKED, SCOPES, ApiKey, KeyStore, checked_scopes
from backend.storage.db import Database
from tests.clocks import FakeClock as Clock


@pytest.fixture
def clock() -> Clock:
    return Clock(10_000.0)


@pytest.fixture
def store(db: Database, clock: Clock) -> KeyStore:
    return KeyStore(db, clock)


async def row(db: Database, key_id: str) -> dict[str, object] | None:
    found = await db.fetch_one("SELECT * FROM api_keys WHERE id = ?", (key_id,))
    return dict(found) if found is not None else None


async def test_create_list_and_authenticate(store: KeyStore, db: Database, clock: Clock) -> None:
    key, secret = await store.create("Home Assistant", ["conversations", "chat", "chat"])
    assert secret.startswith("gl-") and len(secret) == 3 + 43  # 256 bits, URL-safe
    assert key.name == "Home Assistant" and key.scopes == ("chat", "conversations")  # once each, in order
    assert key.prefix == secret[:8] and key.created_at == clock.now
    assert key.last_used_at is None and key.requests == 0 and not key.revoked
    assert store.authenticate(secret) == key and store.get(key.id) == key

    principal = key.principal
    assert principal.role == "app" and not principal.is_owner and principal.device_id is None
    assert principal.key_id == key.id and principal.scopes == {"chat", "conversations"}
    assert principal.key == f"app:{key.id}" and principal.name == "Home Assistant"

    stored = await row(db, key.id)
    assert stored is not None and stored["secret_hash"] == token_hash(secret)
    assert json.loads(str(stored["scopes"])) == ["chat", "conversations"] and stored["prefix"] == secret[:8]
    assert secret not in stored.values()

    clock.now += 1
    other, other_secret = await store.create("Tasker", ["images"])
    assert other_secret != secret and other.id != key.id
    assert store.authenticate(other_secret) == other and store.authenticate(secret) == key
    assert [k.id for k in store.list()] == [other.id, key.id]  # newest first
    listed = store.list()[0].to_json()
    assert set(listed) == {"id", "name", "scopes", "prefix", "created_at", "last_used_at", "requests", "revoked",
                           "revoked_at"}
    assert other_secret not in json.dumps(listed)


async def test_secrets_are_not_stored(tmp_path: Path, clock: Clock) -> None:
    db = Database(tmp_path / "plain.db")
    await db.open()
    store = KeyStore(db, clock)
    secrets = [(await store.create(f"App {i}", ["chat"]))[1] for i in range(3)]
    await db.close()
    data = b"".join(p.read_bytes() for p in tmp_path.glob("plain.db*"))
    for secret in secrets:
        assert secret.encode() not in data and secret[8:].encode() not in data
        assert token_hash(secret).encode() in data  # the check does see what is stored
        assert secret[:8].encode() in data  # the prefix shown to recognise it


async def test_wrong_secrets(store: KeyStore, db: Database, clock: Clock) -> None:
    _, secret = await store.create("Tasker", ["chat"])
    for wrong in (None, "", "gl-", "wrong", secret + "x", secret[:-1], secret.upper(), " " + secret, secret[3:],
                  "gl-" + "a" * 200, "\udcff"):
        assert store.authenticate(wrong) is None, wrong
    # a secret longer than 128 characters is refused before it is looked up, even if it was stored
    long_secret = "gl-" + "L" * 126
    await db.execute("INSERT INTO api_keys (id, name, scopes, secret_hash, prefix, created_at) "
                     "VALUES ('long', 'Long', '[\"chat\"]', ?, 'gl-LLLLL', ?)", (token_hash(long_secret), clock.now))
    again = KeyStore(db, clock)
    await again.load()
    assert again.get("long") is not None and again.authenticate(long_secret) is None
    assert again.authenticate(secret) is not None


@pytest.mark.parametrize(("name", "scopes", "param"), [
    ("", ["chat"], "name"),
    (" \n\t\x07 ", ["chat"], "name"),
    ("Tasker", [], "scopes"),
    ("Tasker", ["chat", "admin"], "scopes"),
    ("Tasker", ["Chat"], "scopes"),
    ("Tasker", ["models"], "scopes"),
])
async def test_bad_names_and_scopes_are_refused(store: KeyStore, db: Database, name: str, scopes: list[str],
                                                param: str) -> None:
    with pytest.raises(AppError) as refused:
        await store.create(name, scopes)
    assert refused.value.code is ErrorCode.INVALID_VALUE and refused.value.param == param
    assert refused.value.message.endswith(".")
    assert store.list() == [] and await db.fetch_all("SELECT * FROM api_keys") == []


def test_checked_scopes_names_the_scopes() -> None:
    with pytest.raises(AppError) as refused:
        checked_scopes(["admin"])
    assert "admin" in refused.value.message and "chat, images, audio, embeddings, conversations" in \
        refused.value.message
    assert checked_scopes(reversed(SCOPES)) == SCOPES


async def test_names_are_cleaned_and_capped(store: KeyStore) -> None:
    key, _ = await store.create("  Home\nAssistant\x1b[31m  " + "x" * 100, ["chat"])
    assert key.name.startswith("Home Assistant [31m") and len(key.name) == 60
    assert "\n" not in key.name and "\x1b" not in key.name


async def test_at_most_live_keys(store: KeyStore) -> None:
    made = [(await store.create(f"App {i}", ["chat"]))[0] for i in range(MAX_KEYS)]
    with pytest.raises(AppError) as refused:
        await store.create("One too many", ["chat"])
    assert refused.value.code is ErrorCode.CONFLICT and str(MAX_KEYS) in refused.value.message
    await store.revoke(made[0].id)  # a revoked key makes room
    await store.create("Now it fits", ["chat"])


async def test_revoke(store: KeyStore, db: Database, clock: Clock) -> None:
    key, secret = await store.create("Tasker", ["chat"])
    keep, keep_secret = await store.create("Shortcuts", ["audio"])
    clock.now += 10
    store.touch(key.id)
    revoked = await store.revoke(key.id)
    assert revoked is not None and revoked.revoked and revoked.revoked_at == clock.now
    assert store.authenticate(secret) is None  # at once, from memory
    assert store.authenticate(keep_secret) == keep
    stored = await row(db, key.id)
    assert stored is not None and stored["revoked_at"] == clock.now and stored["requests"] == 1  # usage kept
    # listed as revoked, after the live ones, never with its secret
    assert [(k.id, k.revoked) for k in store.list()] == [(keep.id, False), (key.id, True)]
    store.touch(key.id)  # a request in flight when it was revoked is not counted
    assert store.get(key.id) == revoked
    # revoking again answers the key as it is; an unknown id is None
    clock.now += 10
    assert await store.revoke(key.id) == revoked
    assert await store.revoke("nobody") is None
    # still revoked after a restart
    again = KeyStore(db, clock)
    await again.load()
    assert again.authenticate(secret) is None and again.authenticate(keep_secret) is not None
    reloaded = again.get(key.id)
    assert reloaded is not None and reloaded.revoked_at == revoked.revoked_at


async def test_only_the_newest_revoked_keys_are_kept(store: KeyStore, db: Database, clock: Clock) -> None:
    made = []
    for i in range(MAX_REVOKED + 3):
        clock.now += 1
        key, _ = await store.create(f"App {i}", ["chat"])
        made.append(key)
        await store.revoke(key.id)
    kept = [k.id for k in store.list()]
    assert kept == [k.id for k in reversed(made[3:])]
    assert len(await db.fetch_all("SELECT id FROM api_keys")) == MAX_REVOKED
    assert await row(db, made[0].id) is None and store.get(made[0].id) is None


async def test_usage_is_counted_and_written_by_flush_after_the_gap(store: KeyStore, db: Database,
                                                                   clock: Clock) -> None:
    key, secret = await store.create("Tasker", ["chat"])
    start = clock.now
    for _ in range(3):
        clock.now += 1
        store.touch(key.id)
    used = store.get(key.id)
    assert used is not None and used.requests == 3 and used.last_used_at == start + 3
    assert store.authenticate(secret) == used  # authenticating is not a request made

    await store.flush(60)  # never written before: written now
    stored = await row(db, key.id)
    assert stored is not None and (stored["requests"], stored["last_used_at"]) == (3, start + 3)

    clock.now = start + 30
    store.touch(key.id)
    await store.flush(60)  # 27 s after the last write: kept in memory
    stored = await row(db, key.id)
    assert stored is not None and (stored["requests"], stored["last_used_at"]) == (3, start + 3)

    clock.now = start + 63
    store.touch(key.id)
    await store.flush(60)
    stored = await row(db, key.id)
    assert stored is not None and (stored["requests"], stored["last_used_at"]) == (5, start + 63)

    await store.flush(60)  # nothing new: nothing written
    clock.now = start + 64
    store.touch(key.id)
    await store.flush(0)  # at shutdown, everything
    stored = await row(db, key.id)
    assert stored is not None and (stored["requests"], stored["last_used_at"]) == (6, start + 64)

    again = KeyStore(db, clock)
    await again.load()
    loaded = again.get(key.id)
    assert loaded is not None and (loaded.requests, loaded.last_used_at) == (6, start + 64)
    assert again.authenticate(secret) == loaded
    again.touch(key.id)
    loaded = again.get(key.id)
    assert loaded is not None and loaded.requests == 7


async def test_unknown_keys_are_not_touched(store: KeyStore) -> None:
    store.touch("nobody")
    assert store.list() == []


async def test_load_after_restart_and_after_a_restore(store: KeyStore, db: Database, clock: Clock) -> None:
    key, secret = await store.create("Tasker", ["chat", "images"])
    again = KeyStore(db, clock)
    await again.load()
    assert again.list() == [key] and again.authenticate(secret) == key
    # the data is replaced by data that does not know the key: it ends at the next load
    await db.execute("DELETE FROM api_keys")
    await again.load()
    assert again.list() == [] and again.authenticate(secret) is None


async def test_stored_scopes_that_make_no_sense_open_nothing(store: KeyStore, db: Database, clock: Clock) -> None:
    for key_id, scopes in (("broken", "not json"), ("unknown", '["admin"]'), ("empty", "[]")):
        secret = f"gl-{key_id}-secret"
        await db.execute("INSERT INTO api_keys (id, name, scopes, secret_hash, prefix, created_at) "
                         "VALUES (?, ?, ?, ?, 'gl-xxxxx', ?)", (key_id, key_id, scopes, token_hash(secret), clock.now))
    mixed = "gl-mixed-secret"
    await db.execute("INSERT INTO api_keys (id, name, scopes, secret_hash, prefix, created_at) "
                     "VALUES ('mixed', 'mixed', '[\"admin\", \"chat\"]', ?, 'gl-xxxxx', ?)",
                     (token_hash(mixed), clock.now))
    await store.load()
    for key_id in ("broken", "unknown", "empty"):
        assert store.authenticate(f"gl-{key_id}-secret") is None
    found = store.authenticate(mixed)
    assert isinstance(found, ApiKey) and found.scopes == ("chat",)
