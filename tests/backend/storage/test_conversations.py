from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from backend.storage.conversations import ConversationStore
from backend.storage.db import Database
from backend.storage.migrations import MIGRATIONS


@pytest.fixture
def store(db: Database) -> ConversationStore:
    return ConversationStore(db)


async def test_pragmas_and_migrations(db: Database) -> None:
    assert (await db.fetch_one("PRAGMA journal_mode"))[0] == "wal"  # type: ignore[index]
    assert (await db.fetch_one("PRAGMA synchronous"))[0] == 2  # type: ignore[index]  # FULL
    assert (await db.fetch_one("PRAGMA foreign_keys"))[0] == 1  # type: ignore[index]
    assert (await db.fetch_one("PRAGMA user_version"))[0] == len(MIGRATIONS)  # type: ignore[index]
    assert await db.integrity_check() == "ok"


async def test_reopen_does_not_reapply(tmp_path: Path) -> None:
    for _ in range(2):
        database = Database(tmp_path / "again.db")
        await database.open()
        await ConversationStore(database).create(title="x")
        await database.close()
    database = Database(tmp_path / "again.db")
    await database.open()
    assert len(await ConversationStore(database).list_recent()) == 2
    await database.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 5}")
    database = Database(path)
    with pytest.raises(RuntimeError, match="newer"):
        await database.open()
    await database.close()


async def test_conversation_lifecycle(store: ConversationStore) -> None:
    first = await store.create(title="first")
    second = await store.create(title="second", system_prompt="be brief", settings={"temperature": 0.2})
    await store.add_message(first.id, "user", "hello")  # touching a conversation makes it most recent
    assert [c.title for c in await store.list_recent()] == ["first", "second"]
    assert await store.update(second.id, title="renamed")
    got = await store.get(second.id)
    assert got is not None and got.title == "renamed" and got.system_prompt == "be brief"
    assert got.settings == {"temperature": 0.2}
    assert await store.delete(first.id)
    assert await store.messages(first.id) == []  # cascade
    assert not await store.delete("nope")
    assert await store.get("nope") is None


async def test_messages_order_truncate_and_progress(store: ConversationStore) -> None:
    conv = await store.create()
    u1 = await store.add_message(conv.id, "user", "one")
    a1 = await store.add_message(conv.id, "assistant", "", status="streaming")
    await store.save_progress(a1.id, content="partial", status="streaming", stats={"completion_tokens": 3})
    await store.add_message(conv.id, "user", "two")
    assert [m.seq for m in await store.messages(conv.id)] == [1, 2, 3]
    assert await store.truncate_after(conv.id, u1.seq) == 2
    remaining = await store.messages(conv.id)
    assert [m.content for m in remaining] == ["one"]


async def test_streaming_rows_become_interrupted(store: ConversationStore) -> None:
    conv = await store.create()
    msg = await store.add_message(conv.id, "assistant", "", status="streaming")
    await store.save_progress(msg.id, content="half an ans", status="streaming")
    assert await store.mark_interrupted() == 1
    got = await store.get_message(msg.id)
    assert got is not None and got.status == "interrupted" and got.content == "half an ans"
    assert await store.mark_interrupted() == 0


async def test_status_constraint(store: ConversationStore, db: Database) -> None:
    conv = await store.create()
    msg = await store.add_message(conv.id, "user", "x")
    with pytest.raises(sqlite3.IntegrityError):
        await db.execute("UPDATE messages SET status = 'weird' WHERE id = ?", (msg.id,))
    await db.conn.rollback()
