"""A backup's database with collections' vector tables passes the restore's schema check; a vector
table of no collection does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.core.errors import AppError
from backend.knowledge.store import KnowledgeStore
from backend.storage.backup_schema import check_database
from backend.storage.db import Database
from backend.storage.sqlite import connect


async def _database_with_vectors(path: Path) -> int:
    db = Database(path)
    await db.open()
    try:
        store = KnowledgeStore(db)
        collection = await store.create_collection("Manuals")
        await store.use_embedder(collection, "minilm", 4)
        return collection.n
    finally:
        await db.close()


async def test_vector_tables_of_collections_are_part_of_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    n = await _database_with_vectors(path)
    conn = connect(path)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'vectors_%'")}
    conn.close()
    assert f"vectors_{n}" in tables and len(tables) > 1  # its shadow tables too
    assert check_database(path) == {"conversations": 0, "messages": 0, "attachments": 0, "images": 0,
                                    "transcripts": 0}


async def test_a_vector_table_of_no_collection_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    await _database_with_vectors(path)
    conn = connect(path)
    conn.execute("CREATE VIRTUAL TABLE vectors_999 USING vec0(embedding float[4])")
    conn.commit()
    conn.close()
    with pytest.raises(AppError, match="vectors_999"):
        check_database(path)
