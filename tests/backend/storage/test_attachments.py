"""The attachments table: pending rows of one uploader, linking to a message, and what goes with messages."""

from __future__ import annotations

import asyncio
import time

import pytest

from backend.storage.attachments import Attachment, AttachmentStore
from backend.storage.conversations import ConversationStore, Message
from backend.storage.db import Database
from backend.storage.sqlite import sqlite


@pytest.fixture
def attachments(db: Database) -> AttachmentStore:
    return AttachmentStore(db)


@pytest.fixture
def conversations(db: Database) -> ConversationStore:
    return ConversationStore(db)


def photo(uploader: str = "owner", *, name: str = "cat.jpg", created_at: float | None = None) -> Attachment:
    stem = name.rsplit(".", 1)[0]
    made = Attachment(uploader=uploader, kind="image", name=name, mime="image/jpeg", path=f"attachments/{stem}.jpg",
                      thumb=f"attachments/{stem}-thumb.jpg", bytes=1234, width=640, height=480,
                      info={"source_format": "JPEG", "original_width": 4032, "original_height": 3024})
    if created_at is not None:
        made.created_at = created_at
    return made


def files_of(*attachments: Attachment) -> list[str]:
    """The stored files of attachments (path, and thumbnail where there is one), sorted."""
    return sorted(p for a in attachments for p in (a.path, a.thumb) if p)


def document(uploader: str = "owner", *, name: str = "notes.txt", text: str = "line one\nline two") -> Attachment:
    stem = name.rsplit(".", 1)[0]
    return Attachment(uploader=uploader, kind="document", name=name, mime="text/plain; charset=utf-8",
                      path=f"attachments/{stem}.txt", bytes=len(text), text=text,
                      info={"kind": "text", "encoding": "utf-8", "total_chars": len(text)})


async def message(conversations: ConversationStore, conversation_id: str, text: str = "look") -> Message:
    return await conversations.add_message(conversation_id, "user", text)


async def test_add_and_get_round_trip(attachments: AttachmentStore) -> None:
    table = Attachment(uploader="device:abc", kind="document", name="people.csv", mime="text/csv; charset=utf-8",
                       path="attachments/x.csv", bytes=42, text="| a | b |\n| --- | --- |\n| 1 | 2 |",
                       info={"kind": "table", "rows": 1, "columns": ["a", "b"], "preview": [["a", "b"], ["1", "2"]],
                             "encoding": "utf-8", "note": "é ✓"})
    await attachments.add(table)
    found = await attachments.get(table.id)
    assert found == table  # every field, the info JSON included
    assert found is not None and found.info["preview"] == [["a", "b"], ["1", "2"]] and found.info["note"] == "é ✓"
    assert found.message_id is None and found.sent_text is None and found.sent_notice is None
    assert not found.is_image

    picture = await attachments.add(photo())
    again = await attachments.get(picture.id)
    assert again is not None and again.is_image and (again.width, again.height) == (640, 480)
    assert again.thumb == "attachments/cat-thumb.jpg" and again.info["original_width"] == 4032
    assert await attachments.get("no-such-id") is None


async def test_to_json_leaves_the_text_out(attachments: AttachmentStore) -> None:
    doc = await attachments.add(document(text="secret words " * 10))
    shown = doc.to_json()
    assert "text" not in shown and "secret" not in repr(shown)
    assert shown["chars"] == len(doc.text) and shown["url"] == f"/api/attachments/{doc.id}/file"
    assert shown["thumbnail"] is None
    assert photo().to_json()["thumbnail"].endswith("/thumb")


async def test_pending_only_of_that_uploader_not_sent_in_the_order_asked(
        attachments: AttachmentStore, conversations: ConversationStore) -> None:
    a, b, c = [await attachments.add(document(name=f"{n}.txt")) for n in "abc"]
    theirs = await attachments.add(document("device:other", name="theirs.txt"))
    sent = await attachments.add(document(name="sent.txt"))
    conv = await conversations.create()
    await attachments.link((await message(conversations, conv.id)).id, [sent])

    found = await attachments.pending([c.id, a.id, theirs.id, sent.id, "missing", b.id, c.id], "owner")
    assert [x.id for x in found] == [c.id, a.id, b.id]
    assert [x.id for x in await attachments.pending([theirs.id, a.id], "device:other")] == [theirs.id]
    assert await attachments.pending([], "owner") == []
    assert await attachments.pending([a.id], "device:nobody") == []


async def test_link_sets_message_position_and_what_was_sent(
        attachments: AttachmentStore, conversations: ConversationStore) -> None:
    conv = await conversations.create()
    first = await attachments.add(document(name="long.txt"))
    second = await attachments.add(photo())
    msg = await message(conversations, conv.id)
    first.sent_text, first.sent_notice = "line one", "Only the first 47 % of the text was included."
    await attachments.link(msg.id, [second, first])
    assert (second.message_id, second.position, first.message_id, first.position) == (msg.id, 0, msg.id, 1)

    stored = await attachments.get(first.id)
    assert stored is not None and stored.message_id == msg.id and stored.position == 1
    assert stored.sent_text == "line one" and stored.sent_notice == "Only the first 47 % of the text was included."
    assert stored.text == "line one\nline two"  # the whole text stays
    stored_photo = await attachments.get(second.id)
    assert stored_photo is not None and stored_photo.position == 0 and stored_photo.sent_text is None
    assert await attachments.pending([first.id, second.id], "owner") == []


async def test_link_refuses_one_already_sent_and_changes_nothing(
        attachments: AttachmentStore, conversations: ConversationStore) -> None:
    conv = await conversations.create()
    earlier = await message(conversations, conv.id, "first")
    sent = await attachments.add(document(name="sent.txt"))
    await attachments.link(earlier.id, [sent])
    fresh = await attachments.add(document(name="fresh.txt"))
    later = await message(conversations, conv.id, "second")

    fresh.sent_text = "changed"
    with pytest.raises(LookupError, match=sent.id):
        await attachments.link(later.id, [fresh, sent])
    untouched = await attachments.get(fresh.id)
    assert untouched is not None and untouched.message_id is None and untouched.sent_text is None
    still = await attachments.get(sent.id)
    assert still is not None and still.message_id == earlier.id
    assert [a.id for a in await attachments.pending([fresh.id], "owner")] == [fresh.id]
    # the connection is usable afterwards: no transaction was left open
    await attachments.link(later.id, [fresh])
    linked = await attachments.get(fresh.id)
    assert linked is not None and linked.message_id == later.id and linked.sent_text == "changed"


async def test_link_while_other_writes_are_under_way(attachments: AttachmentStore,
                                                     conversations: ConversationStore) -> None:
    conv = await conversations.create()
    reply = await conversations.add_message(conv.id, "assistant", "", status="streaming")
    pairs = [(await message(conversations, conv.id), await attachments.add(document(name=f"{i}.txt")))
             for i in range(40)]

    async def streaming() -> None:
        for i in range(400):
            await conversations.save_progress(reply.id, content="x" * i, status="streaming")

    async def sending() -> None:
        for m, a in pairs:
            await attachments.link(m.id, [a])

    await asyncio.gather(streaming(), sending())
    assert await attachments.pending([a.id for _, a in pairs], "owner") == []


async def test_for_conversation_groups_by_message_in_order(
        attachments: AttachmentStore, conversations: ConversationStore) -> None:
    conv, other = await conversations.create(), await conversations.create()
    m1 = await message(conversations, conv.id, "one")
    await conversations.add_message(conv.id, "assistant", "answer")
    m3 = await message(conversations, conv.id, "three")
    elsewhere = await message(conversations, other.id, "other")
    x, y, z = [await attachments.add(document(name=f"{n}.txt")) for n in "xyz"]
    p = await attachments.add(photo())
    e = await attachments.add(document(name="e.txt"))
    await attachments.add(document(name="pending.txt"))
    await attachments.link(m3.id, [z, p])
    await attachments.link(m1.id, [y, x])
    await attachments.link(elsewhere.id, [e])

    grouped = await attachments.for_conversation(conv.id)
    assert list(grouped) == [m1.id, m3.id]  # by the messages' order
    assert [a.id for a in grouped[m1.id]] == [y.id, x.id]
    assert [a.id for a in grouped[m3.id]] == [z.id, p.id]
    assert [a.id for a in (await attachments.for_conversation(other.id))[elsewhere.id]] == [e.id]
    assert await attachments.for_conversation("nope") == {}


async def test_deleting_messages_or_the_conversation_removes_their_rows(
        attachments: AttachmentStore, conversations: ConversationStore) -> None:
    conv = await conversations.create()
    m1, m2 = await message(conversations, conv.id, "one"), await message(conversations, conv.id, "two")
    a, b = await attachments.add(document(name="a.txt")), await attachments.add(photo())
    waiting = await attachments.add(document(name="waiting.txt"))
    await attachments.link(m1.id, [a])
    await attachments.link(m2.id, [b])

    await conversations.delete_message(m2.id)
    assert await attachments.get(b.id) is None
    assert await attachments.get(a.id) is not None
    assert await conversations.delete(conv.id)
    assert await attachments.get(a.id) is None
    assert await attachments.get(waiting.id) is not None  # not sent: no message to go with
    assert await attachments.all_files() == {waiting.path}


async def test_an_edited_message_shares_its_files_until_the_conversation_goes(
        attachments: AttachmentStore, conversations: ConversationStore) -> None:
    conv = await conversations.create()
    first = await message(conversations, conv.id, "what is this?")
    a = await attachments.add(photo())
    await attachments.link(first.id, [a])
    edited = await conversations.add_message(conv.id, "user", "what is in this photo?", parent_id=first.parent_id)
    await attachments.copy_to(edited.id, [a])
    by_message = await attachments.for_conversation(conv.id)
    assert [x.path for x in by_message[edited.id]] == [x.path for x in by_message[first.id]] == [a.path]
    assert by_message[edited.id][0].id != a.id
    assert sorted(await attachments.files_after(conv.id)) == sorted([a.path, a.thumb] * 2)
    await conversations.delete(conv.id)
    assert await attachments.all_files() == set()


async def test_files_after_a_position(attachments: AttachmentStore, conversations: ConversationStore) -> None:
    conv, other = await conversations.create(), await conversations.create()
    m1, m2, m3 = [await message(conversations, conv.id, t) for t in ("one", "two", "three")]
    doc1 = await attachments.add(document(name="d1.txt"))
    pic2 = await attachments.add(photo(name="p2.jpg"))
    doc3 = await attachments.add(document(name="d3.txt"))
    pic3 = await attachments.add(photo(name="p3.jpg"))
    await attachments.add(photo(name="pending.jpg"))
    theirs = await attachments.add(photo(name="theirs.jpg"))
    await attachments.link(m1.id, [doc1])
    await attachments.link(m2.id, [pic2])
    await attachments.link(m3.id, [doc3, pic3])
    await attachments.link((await message(conversations, other.id)).id, [theirs])

    assert files_of(pic2) == ["attachments/p2-thumb.jpg", "attachments/p2.jpg"]
    assert sorted(await attachments.files_after(conv.id)) == files_of(doc1, pic2, doc3, pic3)
    assert sorted(await attachments.files_after(conv.id, m1.seq)) == files_of(pic2, doc3, pic3)
    assert sorted(await attachments.files_after(conv.id, m2.seq)) == files_of(doc3, pic3)
    assert await attachments.files_after(conv.id, m3.seq) == []
    assert await attachments.files_after("nope") == []


async def test_expire_pending_forgets_old_unsent_rows_only(
        attachments: AttachmentStore, conversations: ConversationStore) -> None:
    now = time.time()
    old = await attachments.add(photo(name="old.jpg", created_at=now - 3 * 86400))
    old_doc = await attachments.add(document(name="old-doc.txt"))
    await attachments.db.execute("UPDATE attachments SET created_at = ? WHERE id = ?", (now - 2 * 86400, old_doc.id))
    recent = await attachments.add(photo(name="recent.jpg"))
    old_sent = await attachments.add(photo(name="old-sent.jpg", created_at=now - 5 * 86400))
    conv = await conversations.create()
    await attachments.link((await message(conversations, conv.id)).id, [old_sent])

    files = await attachments.expire_pending(now - 86400)
    assert sorted(files) == files_of(old, old_doc) and len(files) == 3
    assert await attachments.get(old.id) is None and await attachments.get(old_doc.id) is None
    assert await attachments.get(recent.id) is not None and await attachments.get(old_sent.id) is not None
    assert await attachments.expire_pending(now - 86400) == []


async def test_delete_pending_only_by_its_uploader_and_only_unsent(
        attachments: AttachmentStore, conversations: ConversationStore) -> None:
    mine = await attachments.add(photo("device:phone"))
    assert await attachments.delete_pending(mine.id, "owner") is None
    assert await attachments.delete_pending(mine.id, "device:laptop") is None
    assert await attachments.get(mine.id) is not None
    removed = await attachments.delete_pending(mine.id, "device:phone")
    assert removed is not None and removed.id == mine.id and removed.thumb == mine.thumb
    assert await attachments.get(mine.id) is None
    assert await attachments.delete_pending(mine.id, "device:phone") is None

    sent = await attachments.add(document())
    conv = await conversations.create()
    await attachments.link((await message(conversations, conv.id)).id, [sent])
    assert await attachments.delete_pending(sent.id, "owner") is None
    assert await attachments.get(sent.id) is not None


async def test_all_files_lists_paths_and_thumbnails(attachments: AttachmentStore) -> None:
    assert await attachments.all_files() == set()
    pic, doc = await attachments.add(photo()), await attachments.add(document())
    assert await attachments.all_files() == {pic.path, pic.thumb, doc.path}


async def test_kind_is_checked_by_the_table(attachments: AttachmentStore) -> None:
    bad = document()
    bad.kind = "video"  # type: ignore[assignment]
    with pytest.raises(sqlite.IntegrityError, match="CHECK constraint"):
        await attachments.add(bad)
    await attachments.db.conn.rollback()
    assert await attachments.all_files() == set()
