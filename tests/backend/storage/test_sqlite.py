"""The SQLite gridless opens its data with: loadable extensions, sqlite-vec, FTS5, and the same error
classes everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlite_vec

from backend.storage.db import Database
from backend.storage.sqlite import connect, sqlite


def test_connections_have_sqlite_vec_and_fts5(tmp_path: Path) -> None:
    conn = connect(tmp_path / "x.db")
    try:
        assert conn.execute("SELECT vec_version()").fetchone()[0].startswith("v")
        conn.execute("CREATE VIRTUAL TABLE v USING vec0(e float[3] distance_metric=cosine)")
        conn.execute("INSERT INTO v (rowid, e) VALUES (1, ?), (2, ?)",
                     (sqlite_vec.serialize_float32([1, 0, 0]), sqlite_vec.serialize_float32([0, 1, 0])))
        rows = conn.execute("SELECT rowid FROM v WHERE e MATCH ? AND k = 1",
                            (sqlite_vec.serialize_float32([0.9, 0.1, 0]),)).fetchall()
        assert rows == [(1,)]
        conn.execute("CREATE VIRTUAL TABLE f USING fts5(t, tokenize='unicode61 remove_diacritics 2')")
        conn.execute("INSERT INTO f (t) VALUES ('città')")
        assert conn.execute("SELECT count(*) FROM f WHERE f MATCH 'citta'").fetchone() == (1,)
        with pytest.raises(sqlite.OperationalError):  # extensions cannot be loaded by SQL afterwards
            conn.execute("SELECT load_extension('/nonexistent')")
    finally:
        conn.close()


def test_a_file_written_without_a_key_is_plain_sqlite(tmp_path: Path) -> None:
    conn = connect(tmp_path / "x.db")
    conn.execute("CREATE TABLE t (a)")
    conn.commit()
    conn.close()
    assert (tmp_path / "x.db").read_bytes()[:16] == b"SQLite format 3\0"


async def test_the_servers_connection_raises_the_drivers_errors(tmp_path: Path) -> None:
    db = Database(tmp_path / "g.db")
    await db.open()
    try:
        assert (await db.fetch_one("SELECT vec_version()")) is not None
        with pytest.raises(sqlite.IntegrityError):
            await db.execute("INSERT INTO models (id, job, name, format, path, size_bytes, source, added_at)"
                             " VALUES ('m', 'dancing', 'n', 'gguf', '/x', 1, 'bundled', 0)")
    finally:
        await db.close()
