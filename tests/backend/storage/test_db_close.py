"""Closing the database (at shutdown, or for a restore) while requests are being answered: what is
under way finishes, what comes meanwhile is told the data is busy, and nothing fails inside SQLite."""

from __future__ import annotations

import asyncio

import pytest

from backend.core.errors import AppError, ErrorCode
from backend.storage.db import Database

SLOW = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000000) SELECT count(*) FROM n"


async def test_close_waits_for_a_query_under_way_and_refuses_new_ones(db: Database) -> None:
    running = asyncio.create_task(db.fetch_one(SLOW))
    await asyncio.sleep(0.01)  # the query has started on the database's thread
    closing = asyncio.create_task(db.close())
    await asyncio.sleep(0)
    with pytest.raises(AppError) as caught:
        await db.fetch_one("SELECT 1")
    assert caught.value.code == ErrorCode.BUSY and caught.value.status == 503
    row = await running
    assert row is not None and row[0] == 2_000_000
    await closing
    with pytest.raises(AppError):
        await db.execute("INSERT INTO settings (key, value) VALUES ('a', '1')")
    await db.open()  # and it opens again, as after a restore
    assert await db.execute("INSERT INTO settings (key, value) VALUES ('a', '1')") == 1
