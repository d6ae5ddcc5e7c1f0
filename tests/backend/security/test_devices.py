from __future__ import annotations

from pathlib import Path

import pytest

from backend.security.devices import OWNER, DeviceStore, Principal, clean_device_name, token_hash
from backend.storage.db import Database
from tests.clocks import FakeClock as Clock

IDLE = 1000.0


@pytest.fixture
def clock() -> Clock:
    return Clock(10_000.0)


@pytest.fixture
def store(db: Database, clock: Clock) -> DeviceStore:
    return DeviceStore(db, IDLE, clock)


async def row(db: Database, device_id: str) -> dict[str, object] | None:
    found = await db.fetch_one("SELECT * FROM devices WHERE id = ?", (device_id,))
    return dict(found) if found is not None else None


async def test_add_and_authenticate(store: DeviceStore, db: Database, clock: Clock) -> None:
    device, token = await store.add("Tablet", "192.168.1.30", "Mozilla/5.0 (Android)")
    assert len(token) >= 43  # 256 bits, URL-safe
    assert device.name == "Tablet" and device.address == "192.168.1.30"
    assert device.created_at == device.last_seen == clock.now
    assert store.authenticate(token, "192.168.1.30") == device
    assert store.get(device.id) == device and store.list() == [device]
    assert device.principal == Principal("device", device.id, "Tablet")
    assert not device.principal.is_owner and OWNER.is_owner and OWNER.device_id is None

    stored = await row(db, device.id)
    assert stored is not None
    assert stored["token_hash"] == token_hash(token) and stored["name"] == "Tablet"
    assert token not in stored.values()

    other, other_token = await store.add("Laptop")
    assert other_token != token and other.id != device.id
    assert store.authenticate(other_token) == other and store.authenticate(token) == device


async def test_tokens_are_not_stored(tmp_path: Path, clock: Clock) -> None:
    db = Database(tmp_path / "plain.db")
    await db.open()
    store = DeviceStore(db, IDLE, clock)
    tokens = [(await store.add(f"Device {i}", "10.0.0.2", "UA"))[1] for i in range(3)]
    await db.close()
    data = b"".join(p.read_bytes() for p in tmp_path.glob("plain.db*"))
    for token in tokens:
        assert token.encode() not in data
        assert token_hash(token).encode() in data  # the check does see what is stored


async def test_wrong_and_overlong_tokens(store: DeviceStore, db: Database, clock: Clock) -> None:
    _, token = await store.add("Tablet")
    for wrong in (None, "", "wrong", token + "x", token[:-1], token.upper(), " " + token, "a" * 129, "\udcff"):
        assert store.authenticate(wrong) is None, wrong
    # a token longer than 128 characters is refused before it is looked up, even if it was stored
    long_token = "L" * 129
    await db.execute("INSERT INTO devices (id, name, token_hash, address, user_agent, created_at, last_seen) "
                     "VALUES ('long', 'Long', ?, '', '', ?, ?)", (token_hash(long_token), clock.now, clock.now))
    reloaded = DeviceStore(db, IDLE, clock)
    await reloaded.load()
    assert reloaded.get("long") is not None
    assert reloaded.authenticate(long_token) is None
    assert reloaded.authenticate(token) is not None


async def test_idle_expiry(store: DeviceStore, db: Database, clock: Clock) -> None:
    device, token = await store.add("Tablet")
    clock.now += IDLE  # exactly the expiry: still valid, and now seen again
    assert store.authenticate(token) is not None
    clock.now += IDLE
    assert store.authenticate(token) is not None
    clock.now += IDLE + 0.5
    assert store.authenticate(token) is None
    assert store.authenticate(token) is None  # a failed attempt does not revive it
    revoked: list[str] = []
    store.on_revoke(revoked.append)
    assert await store.prune() == 1
    assert revoked == [device.id] and store.list() == [] and await row(db, device.id) is None


async def test_last_seen_is_written_by_flush_after_the_gap(store: DeviceStore, db: Database, clock: Clock) -> None:
    device, token = await store.add("Tablet", "192.168.1.30")
    start = clock.now

    clock.now = start + 0.5
    assert store.authenticate(token, "192.168.1.30") == device  # within a second: left as it was

    clock.now = start + 30
    seen = store.authenticate(token, "192.168.1.31")
    assert seen is not None and seen.last_seen == start + 30 and seen.address == "192.168.1.31"
    assert store.get(device.id) == seen
    await store.flush(60)
    stored = await row(db, device.id)
    assert stored is not None and stored["last_seen"] == start and stored["address"] == "192.168.1.30"

    clock.now = start + 61
    store.authenticate(token, "")  # no address: the last one is kept
    await store.flush(60)
    stored = await row(db, device.id)
    assert stored is not None and stored["last_seen"] == start + 61 and stored["address"] == "192.168.1.31"

    clock.now = start + 62
    store.authenticate(token)
    await store.flush(60)
    stored = await row(db, device.id)
    assert stored is not None and stored["last_seen"] == start + 61  # 1 s after the last write

    await store.flush(0)
    stored = await row(db, device.id)
    assert stored is not None and stored["last_seen"] == start + 62

    again = DeviceStore(db, IDLE, clock)
    await again.load()
    loaded = again.get(device.id)
    assert loaded is not None and loaded.last_seen == start + 62 and loaded.address == "192.168.1.31"
    assert again.authenticate(token) is not None


async def test_unflushed_last_seen_is_lost_on_restart(store: DeviceStore, db: Database, clock: Clock) -> None:
    device, token = await store.add("Tablet")
    clock.now += 30
    store.authenticate(token)
    again = DeviceStore(db, IDLE, clock)
    await again.load()
    loaded = again.get(device.id)
    assert loaded is not None and loaded.last_seen == clock.now - 30


async def test_load_prunes_expired_devices(store: DeviceStore, db: Database, clock: Clock) -> None:
    old, old_token = await store.add("Old")
    clock.now += IDLE / 2
    fresh, fresh_token = await store.add("Fresh")
    clock.now += IDLE / 2 + 1
    again = DeviceStore(db, IDLE, clock)
    await again.load()
    assert [d.id for d in again.list()] == [fresh.id]
    assert again.authenticate(old_token) is None and again.authenticate(fresh_token) is not None
    assert await row(db, old.id) is None


async def test_revoke(store: DeviceStore, db: Database) -> None:
    device, token = await store.add("Tablet")
    keep, keep_token = await store.add("Other")
    calls: list[tuple[str, str]] = []

    def broken(device_id: str) -> None:
        raise RuntimeError("listener failed")

    store.on_revoke(lambda device_id: calls.append(("first", device_id)))
    store.on_revoke(broken)
    store.on_revoke(lambda device_id: calls.append(("last", device_id)))

    assert await store.revoke(device.id) is True
    assert calls == [("first", device.id), ("last", device.id)]  # one failing listener does not stop the rest
    assert store.authenticate(token) is None and store.get(device.id) is None
    assert await row(db, device.id) is None
    assert await store.revoke(device.id) is False and await store.revoke("nobody") is False
    assert len(calls) == 2
    assert store.authenticate(keep_token) == keep and await row(db, keep.id) is not None


async def test_rename(store: DeviceStore, db: Database) -> None:
    device, token = await store.add("Tablet")
    renamed = await store.rename(device.id, "Kitchen\ntablet\x07")
    assert renamed is not None and renamed.name == "Kitchen tablet"
    stored = await row(db, device.id)
    assert stored is not None and stored["name"] == "Kitchen tablet"
    seen = store.authenticate(token)
    assert seen is not None and seen.principal.name == "Kitchen tablet"
    blank = await store.rename(device.id, " \n ")
    assert blank is not None and blank.name == "Kitchen tablet"  # a blank name keeps the old one
    assert await store.rename("nobody", "x") is None


async def test_list_is_most_recent_first(store: DeviceStore, clock: Clock) -> None:
    first, first_token = await store.add("First")
    clock.now += 5
    second, _ = await store.add("Second")
    assert [d.id for d in store.list()] == [second.id, first.id]
    clock.now += 5
    store.authenticate(first_token)
    assert [d.id for d in store.list()] == [first.id, second.id]


async def test_add_cleans_and_caps_fields(store: DeviceStore) -> None:
    device, _ = await store.add("  ", "1" * 100, "u" * 1000)
    assert device.name == "Unnamed device" and len(device.address) == 64 and len(device.user_agent) == 300


def test_clean_device_name() -> None:
    assert clean_device_name("Pixel 8 — Ana's tablet") == "Pixel 8 — Ana's tablet"
    assert clean_device_name("Tab\nlet\r\n\x00two") == "Tab let two"
    assert clean_device_name("\x1b[31mred\x1b[0m") == "[31mred [0m"
    assert clean_device_name("evil\u202etxt.exe") == "evil txt.exe"  # bidi override
    assert clean_device_name("a\u2028b\u00a0c\td") == "a b c d"
    assert clean_device_name("x" * 100) == "x" * 60
    assert clean_device_name("word " * 20) == ("word " * 12).strip()
    assert len(clean_device_name("\u00e9" * 100)) == 60
    assert clean_device_name(None) == "Unnamed device"
    assert clean_device_name("\n\t\x00 ") == "Unnamed device"
    assert clean_device_name("", fallback="Old") == "Old"
    for name in ("a\nb", "x" * 500, "\x00\x01\x7f\x9b", "tab\tbed"):
        cleaned = clean_device_name(name)
        assert cleaned.isprintable() and len(cleaned) <= 60 and cleaned == cleaned.strip()
