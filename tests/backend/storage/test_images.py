"""The images table: round trip, newest first with a cursor, delete, and the conversation link."""

from __future__ import annotations

import pytest

from backend.storage.conversations import ConversationStore
from backend.storage.db import Database
from backend.storage.images import ImageRecord, ImageStore
from backend.storage.sqlite import sqlite


@pytest.fixture
def store(db: Database) -> ImageStore:
    return ImageStore(db)


def picture(name: str, *, created_at: float, conversation_id: str | None = None, **extra: object) -> ImageRecord:
    record = ImageRecord(prompt=f"a picture of {name}", width=128, height=96, steps=4, cfg_scale=1.5,
                         sampler="euler_a", seed=len(name), model="tiny-sdxs", model_name="Tiny SDXS", seconds=0.25,
                         path=f"images/{name}.png", thumb=f"images/{name}.jpg", bytes=1000 + len(name),
                         conversation_id=conversation_id, **extra)  # type: ignore[arg-type]
    record.created_at = created_at
    return record


async def test_round_trip_keeps_every_field(store: ImageStore) -> None:
    made = picture("owl", created_at=1000.5, negative_prompt="blurry", source_image="abc", strength=0.4,
                   origin="api")
    await store.add_all([made])
    found = await store.get(made.id)
    assert found == made
    assert found is not None and found.negative_prompt == "blurry" and found.strength == 0.4
    assert found.origin == "api" and found.cfg_scale == 1.5 and found.seed == 3
    assert await store.get("missing") is None
    shown = made.to_json()
    assert "path" not in shown and "thumb" not in shown
    assert shown["url"] == f"/api/images/{made.id}/file" and shown["thumbnail"] == f"/api/images/{made.id}/thumb"
    assert await store.all_files() == {"images/owl.png", "images/owl.jpg"}


async def test_add_all_is_one_transaction(store: ImageStore) -> None:
    first = picture("one", created_at=1.0)
    clash = picture("two", created_at=2.0)
    clash.id = first.id  # the second insert fails: neither row stays
    with pytest.raises(sqlite.IntegrityError, match="UNIQUE"):
        await store.add_all([first, clash])
    assert await store.recent() == []


async def test_recent_is_newest_first_with_a_cursor(store: ImageStore) -> None:
    records = [picture(f"p{i}", created_at=100.0 + i) for i in range(5)]
    await store.add_all([records[2], records[0], records[4], records[1], records[3]])
    assert [r.id for r in await store.recent()] == [r.id for r in reversed(records)]
    page = await store.recent(limit=2)
    assert [r.id for r in page] == [records[4].id, records[3].id]
    page = await store.recent(limit=2, before=page[-1].created_at)
    assert [r.id for r in page] == [records[2].id, records[1].id]
    page = await store.recent(limit=2, before=page[-1].created_at)
    assert [r.id for r in page] == [records[0].id]
    assert await store.recent(limit=2, before=records[0].created_at) == []


async def test_a_batch_with_one_timestamp_keeps_insertion_order_reversed(store: ImageStore) -> None:
    batch = [picture(f"b{i}", created_at=50.0) for i in range(3)]
    await store.add_all(batch)
    assert [r.id for r in await store.recent()] == [batch[2].id, batch[1].id, batch[0].id]


async def test_delete_returns_only_rows_that_existed(store: ImageStore) -> None:
    a, b, c = (picture(n, created_at=t) for n, t in (("a", 1.0), ("b", 2.0), ("c", 3.0)))
    await store.add_all([a, b, c])
    gone = await store.delete([a.id, "nope", c.id, a.id])
    assert sorted(r.id for r in gone) == sorted([a.id, c.id])
    assert {r.path for r in gone} == {"images/a.png", "images/c.png"}
    assert [r.id for r in await store.recent()] == [b.id]
    assert await store.delete([a.id]) == []
    assert await store.delete([]) == []
    assert await store.all_files() == {"images/b.png", "images/b.jpg"}


async def test_conversation_link_is_cleared_when_the_conversation_goes(store: ImageStore, db: Database) -> None:
    conversations = ConversationStore(db)
    kept = await conversations.create(title="kept")
    dropped = await conversations.create(title="dropped")
    in_dropped = picture("d", created_at=1.0, conversation_id=dropped.id)
    in_kept = picture("k", created_at=2.0, conversation_id=kept.id)
    await store.add_all([in_dropped, in_kept])
    assert [r.id for r in await store.for_conversation(dropped.id)] == [in_dropped.id]
    assert await conversations.delete(dropped.id)
    after = await store.get(in_dropped.id)
    assert after is not None and after.conversation_id is None  # the image stays in the gallery
    assert await store.for_conversation(dropped.id) == []
    still = await store.get(in_kept.id)
    assert still is not None and still.conversation_id == kept.id


async def test_an_unknown_conversation_is_refused(store: ImageStore) -> None:
    with pytest.raises(sqlite.IntegrityError, match="FOREIGN KEY"):
        await store.add_all([picture("x", created_at=1.0, conversation_id="no-such-conversation")])
    assert await store.recent() == []
