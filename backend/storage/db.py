"""The one SQLite database: WAL, `synchronous=FULL`, foreign keys on, numbered migrations."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from ..core.errors import AppError, ErrorCode
from .migrations import MIGRATIONS
from .sqlite import connect, sqlite

__all__ = ["Database"]

log = logging.getLogger(__name__)


class Database:
    """A single aiosqlite connection (its own thread), shared by the repositories.

    SQLite serialises writers anyway; one connection keeps transactions simple and
    never blocks the event loop. Writes take `_write_lock`, so that a statement and its
    commit, or a whole `transaction()`, never interleave with another writer's on the shared
    connection (a BEGIN issued between another write and its commit fails).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._in_use = 0
        """Statements and transactions under way; `close` waits for them (a restore closes the
        database while requests are being answered)."""
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:  # closed: the server is stopping, or a backup is being restored
            raise AppError(ErrorCode.BUSY, "The data is not open right now; try again in a moment.", retry_after=5)
        return self._conn

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        path = self.path
        self._conn = await aiosqlite.Connection(lambda: connect(path), iter_chunk_size=64)
        self._conn.row_factory = sqlite.Row
        await self._conn.execute("PRAGMA journal_mode=WAL")
        await self._conn.execute("PRAGMA synchronous=FULL")
        await self._conn.execute("PRAGMA foreign_keys=ON")
        await self._conn.execute("PRAGMA busy_timeout=5000")
        await self._migrate()

    async def close(self) -> None:
        """Close once what is being read or written has finished (at most 10 s); anything asked
        meanwhile is refused as busy."""
        if self._conn is not None:
            self._closing = True
            try:
                try:
                    async with asyncio.timeout(10):
                        await self._idle.wait()
                except TimeoutError:
                    log.warning("closing the database while %d statements are still under way", self._in_use)
                await self._conn.close()
                self._conn = None
            finally:
                self._closing = False

    @asynccontextmanager
    async def _using(self) -> AsyncIterator[aiosqlite.Connection]:
        conn = self.conn
        if self._closing:
            raise AppError(ErrorCode.BUSY, "The data is being closed; try again in a moment.", retry_after=5)
        self._in_use += 1
        self._idle.clear()
        try:
            yield conn
        finally:
            self._in_use -= 1
            if not self._in_use:
                self._idle.set()

    async def _migrate(self) -> None:
        async with self.conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        current = int(row[0]) if row else 0
        if current > len(MIGRATIONS):
            raise RuntimeError(
                f"database {self.path} has schema version {current}, newer than this gridless "
                f"({len(MIGRATIONS)}); upgrade gridless or use another --data-dir"
            )
        if current == len(MIGRATIONS):
            return
        # a migration may rebuild a table that others refer to; foreign keys are checked once it is done
        await self.conn.execute("PRAGMA foreign_keys=OFF")
        try:
            for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
                log.info("applying database migration %d", version)
                # executescript commits first; wrap the script and the version bump in one transaction
                await self.conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={version};\nCOMMIT;")
            broken = await self.fetch_all("PRAGMA foreign_key_check")
            if broken:
                raise RuntimeError(f"database {self.path}: {len(broken)} rows refer to rows that are gone "
                                   f"after the migration (first in table {broken[0][0]})")
        finally:
            await self.conn.execute("PRAGMA foreign_keys=ON")

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement in its own transaction; returns the number of rows changed."""
        async with self._write_lock, self._using() as conn:
            cur = await conn.execute(sql, tuple(params))
            await conn.commit()
            return cur.rowcount

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Several statements as one write transaction (BEGIN IMMEDIATE … COMMIT, rolled back
        on any error), with no other write in between."""
        async with self._write_lock, self._using() as conn:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                await conn.commit()
            except BaseException:
                await conn.rollback()
                raise

    async def fetch_all(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        async with self._using() as conn, conn.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    async def fetch_one(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        async with self._using() as conn, conn.execute(sql, tuple(params)) as cur:
            return await cur.fetchone()

    async def integrity_check(self) -> str:
        row = await self.fetch_one("PRAGMA integrity_check")
        return str(row[0]) if row else "no answer"
