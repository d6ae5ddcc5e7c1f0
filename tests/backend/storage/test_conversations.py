from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from backend.storage.conversations import MARK_END, MARK_START, Branches, ConversationStore, MessageStatus, fts_query
from backend.storage.db import Database
from backend.storage.migrations import MIGRATIONS
from backend.storage.projects import ProjectStore
from backend.storage.sqlite import sqlite


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


async def test_messages_follow_the_branch_shown(store: ConversationStore) -> None:
    conv = await store.create()
    u1 = await store.add_message(conv.id, "user", "one")
    a1 = await store.add_message(conv.id, "assistant", "", status="streaming")
    await store.save_progress(a1.id, content="partial", status="streaming", stats={"completion_tokens": 3})
    await store.add_message(conv.id, "user", "two")
    assert [m.seq for m in await store.messages(conv.id)] == [1, 2, 3]
    assert [m.parent_id for m in await store.messages(conv.id)] == [None, u1.id, a1.id]
    await store.delete_message(a1.id)  # and what follows it; its parent is the end again
    remaining = await store.messages(conv.id)
    assert [m.content for m in remaining] == ["one"]
    got = await store.get(conv.id)
    assert got is not None and got.leaf_id == u1.id


async def test_versions_of_a_message_are_branches(store: ConversationStore) -> None:
    conv = await store.create()
    u1 = await store.add_message(conv.id, "user", "question")
    a1 = await store.add_message(conv.id, "assistant", "first answer")
    u2 = await store.add_message(conv.id, "user", "follow-up")
    a2 = await store.add_message(conv.id, "assistant", "second answer")
    # regenerate: a new answer to u1, beside a1
    await store.set_leaf(conv.id, u1.id)
    b1 = await store.add_message(conv.id, "assistant", "another first answer")
    assert [m.content for m in await store.messages(conv.id)] == ["question", "another first answer"]
    branches = await store.branches(conv.id)
    assert branches[a1.id] == Branches(index=0, ids=(a1.id, b1.id))
    assert branches[b1.id].index == 1 and u1.id not in branches and u2.id not in branches
    # switching back to a1 goes down its own continuation, to the end
    assert await store.switch(conv.id, a1.id) == a2.id
    assert [m.id for m in await store.messages(conv.id)] == [u1.id, a1.id, u2.id, a2.id]
    # an edited first message is a second root
    e1 = await store.add_message(conv.id, "user", "question, edited", parent_id=None)
    assert [m.id for m in await store.messages(conv.id)] == [e1.id]
    assert (await store.branches(conv.id))[e1.id] == Branches(index=1, ids=(u1.id, e1.id))
    assert await store.switch(conv.id, u2.id) == a2.id
    assert len(await store.all_messages(conv.id)) == 6
    with pytest.raises(LookupError):
        await store.switch(conv.id, "nope")
    other = await store.create()
    with pytest.raises(LookupError):  # a message of another conversation
        await store.set_leaf(other.id, a1.id)
    with pytest.raises(LookupError):
        await store.add_message(other.id, "user", "x", parent_id=a1.id)


async def test_deleting_a_leaf_falls_back_to_the_newest_message(store: ConversationStore, db: Database) -> None:
    conv = await store.create()
    await store.add_message(conv.id, "user", "one")
    two = await store.add_message(conv.id, "assistant", "two")
    await db.execute("UPDATE conversations SET leaf_id = 'gone' WHERE id = ?", (conv.id,))
    assert [m.id for m in await store.messages(conv.id)][-1] == two.id


async def test_search_finds_words_in_every_branch_newest_first(store: ConversationStore) -> None:
    trip = await store.create(title="Trip to Rome")
    cooking = await store.create(title="Dinner")
    await store.add_message(trip.id, "user", "Which museums in the città eterna open on Monday?")
    answer = await store.add_message(trip.id, "assistant", "", status=MessageStatus.STREAMING)
    assert not [h for h in await store.search("capitoline") if h.message_id]  # not indexed while it streams
    await store.save_progress(answer.id, content="The Capitoline Museums open every day.",
                              status=MessageStatus.DONE)
    await store.add_message(cooking.id, "user", "A recipe for carbonara, like in Rome")
    hits = await store.search("rome")
    assert [h.conversation_id for h in hits if h.message_id is None] == [trip.id]  # the title
    assert hits[0].snippet == f"Trip to {MARK_START}Rome{MARK_END}"
    assert [(h.conversation_id, h.role) for h in hits if h.message_id] == [(cooking.id, "user")]
    capitol = [h for h in await store.search("Capitol") if h.message_id]  # the last word is a prefix
    assert [h.message_id for h in capitol] == [answer.id]
    assert f"{MARK_START}Capitoline{MARK_END}" in capitol[0].snippet
    assert not [h for h in await store.search("Capitol ") if h.message_id]  # a finished word is whole
    assert [h.message_id for h in await store.search("citta") if h.message_id]  # accents folded
    assert next(h.message_id for h in await store.search("MUSEUMS monday"))  # every word, any case
    assert not await store.search("museums tuesday")
    # changed text is found by its new words only; deleted messages not at all
    await store.save_progress(answer.id, content="Closed on Mondays.", status=MessageStatus.DONE)
    assert not [h for h in await store.search("capitoline") if h.message_id]
    await store.delete(trip.id)
    assert not await store.search("museums")


@pytest.mark.parametrize("typed", ['"', "*", "AND", "a OR b", "NEAR(a b)", "col:x", "^x", "(", "-", "' --", ""])
async def test_any_typed_text_searches_without_error(store: ConversationStore, typed: str) -> None:
    conv = await store.create(title="AND the rest")
    await store.add_message(conv.id, "user", "a or b, near x")
    await store.search(typed)  # FTS5's own syntax never reaches it unquoted
    assert fts_query(typed) is None or fts_query(typed).count('"') % 2 == 0  # type: ignore[union-attr]


async def test_pinned_first_archived_apart_and_projects(store: ConversationStore, db: Database) -> None:
    projects = ProjectStore(db)
    work = await projects.create("Work", system_prompt="be formal", settings={"temperature": 0.3})
    a, b, c = [await store.create(title=t) for t in "abc"]
    assert await store.organise([a.id], pinned=True) == 1
    assert await store.organise([b.id], archived=True) == 1
    assert await store.organise([c.id, a.id], project_id=work.id) == 2
    assert [x.title for x in await store.list_recent()] == ["a", "c"]
    assert [x.title for x in await store.list_recent(archived=True)] == ["b"]
    assert [x.title for x in await store.list_recent(project_id=work.id)] == ["a", "c"]
    assert [x.title for x in await store.list_recent(project_id=None, archived=True)] == ["b"]
    listed = await projects.list()
    assert [(p.name, p.conversations) for p in listed] == [("Work", 2)]
    assert await projects.delete(work.id)  # the conversations stay, in no project
    got = await store.get(a.id)
    assert got is not None and got.project_id is None and got.pinned
    assert await store.organise([], pinned=True) == 0


async def test_a_database_from_before_branches_keeps_its_conversations(tmp_path: Path) -> None:
    """Migration 8 rebuilds the messages table: the order, attachments and answers survive."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript("".join(f"{script};" for script in MIGRATIONS[:7]).replace(";;", ";")
                           + f"PRAGMA user_version={7};")
        conn.execute("INSERT INTO conversations (id, title, created_at, updated_at) VALUES ('c', 'old', 1, 1)")
        for seq, role in enumerate(["user", "assistant", "user", "assistant"], start=1):
            conn.execute("INSERT INTO messages (id, conversation_id, seq, role, content, status, created_at,"
                         " updated_at) VALUES (?, 'c', ?, ?, ?, 'done', ?, ?)",
                         (f"m{seq}", seq, role, f"words number {seq}", seq, seq))
        conn.execute("INSERT INTO attachments (id, message_id, uploader, kind, name, mime, path, bytes, created_at)"
                     " VALUES ('a', 'm3', 'owner', 'document', 'd.txt', 'text/plain', 'attachments/d.txt', 1, 1)")
    database = Database(path)
    await database.open()
    try:
        store = ConversationStore(database)
        shown = await store.messages("c")
        assert [m.id for m in shown] == ["m1", "m2", "m3", "m4"]
        assert [m.parent_id for m in shown] == [None, "m1", "m2", "m3"]
        assert [h.message_id for h in await store.search("number 3")] == ["m3"]
        row = await database.fetch_one("SELECT message_id FROM attachments WHERE id = 'a'")
        assert row is not None and row[0] == "m3"
        assert await database.integrity_check() == "ok"
        assert not await database.fetch_all("PRAGMA foreign_key_check")
        await store.delete("c")
        assert await database.fetch_one("SELECT * FROM attachments") is None  # the cascade still holds
    finally:
        await database.close()


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
    with pytest.raises(sqlite.IntegrityError):
        await db.execute("UPDATE messages SET status = 'weird' WHERE id = ?", (msg.id,))
    await db.conn.rollback()


def test_typed_words_become_a_query_the_index_answers_quickly() -> None:
    assert fts_query("museum rom") == '"museum" "rom"*'  # the last word is being typed
    assert fts_query("museum rome ") == '"museum" "rome"'  # a space ends it
    assert fts_query("trip t") == '"trip" "t"'  # one letter: a whole word, not thousands of words' lists
    assert fts_query("città, dell'arte") == '"città" "dell" "arte"*'
    assert fts_query(" ".join(f"w{i}" for i in range(20))).count('"') == 2 * 8  # at most eight words
