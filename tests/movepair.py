"""Two real gridless servers, an old device and a new one, for tests of moving between them: the
old one holds a conversation and a model file, the new one may already hold one of the models."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx

from backend.storage.conversations import ConversationStore
from backend.storage.db import Database
from tests.ggufs import write_lm_gguf
from tests.server import ServerProcess

__all__ = ["OLD_TITLE", "OLD_WORDS", "conversation_titles", "seed_old_device", "wait_pull"]

OLD_TITLE = "Trip to Lisbon"
OLD_WORDS = "Pack the blue umbrella for the tram ride"


def seed_old_device(data_dir: Path) -> dict[str, Path]:
    """A conversation in the old device's database and two models in its models folder."""
    async def seed() -> None:
        db = Database(data_dir / "gridless.db")
        await db.open()
        store = ConversationStore(db)
        conversation = await store.create(title=OLD_TITLE)
        await store.add_message(conversation.id, "user", OLD_WORDS)
        await store.add_message(conversation.id, "assistant", "Noted: the blue umbrella.")
        await db.close()

    data_dir.mkdir(parents=True)
    # on a thread of its own: in browser tests Playwright's loop already runs on this one
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, seed()).result()
    models = data_dir / "models"
    models.mkdir()
    return {"moved": write_lm_gguf(models / "tiny-moved.gguf", size_mb=3, seed=11, name="tiny moved"),
            "shared": write_lm_gguf(models / "tiny-shared.gguf", size_mb=1, seed=12, name="tiny shared")}


def conversation_titles(server: ServerProcess) -> list[str]:
    """Read the server's database while it runs (WAL: a reader never blocks it)."""
    conn = sqlite3.connect(f"file:{server.data_dir / 'gridless.db'}?mode=ro", uri=True)
    try:
        return [row[0] for row in conn.execute("SELECT title FROM conversations ORDER BY created_at")]
    finally:
        conn.close()


def wait_pull(server: ServerProcess, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = httpx.get(server.base + "/api/move/pull", headers=server.headers()).json()
        if state["finished"]:
            return dict(state)
        time.sleep(0.2)
    raise AssertionError(f"the move did not finish: {state}")
