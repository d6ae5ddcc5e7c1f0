"""Conversations and their messages: plain SQL, one place."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import aiosqlite

from .db import Database

__all__ = ["Conversation", "ConversationStore", "Message", "MessageStatus", "Role"]

Role = Literal["system", "user", "assistant"]


class MessageStatus(StrEnum):
    """An answer is `streaming` while it is written (saved as it goes), then `done`, `error`, or
    `interrupted` when the server stopped under it."""

    STREAMING = "streaming"
    DONE = "done"
    INTERRUPTED = "interrupted"
    ERROR = "error"



def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(kw_only=True, slots=True)
class Conversation:
    id: str
    title: str
    system_prompt: str
    settings: dict[str, Any]
    created_at: float
    updated_at: float

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> Conversation:
        return cls(id=row["id"], title=row["title"], system_prompt=row["system_prompt"],
                   settings=json.loads(row["settings"]), created_at=row["created_at"],
                   updated_at=row["updated_at"])


@dataclass(kw_only=True, slots=True)
class Message:
    id: str
    conversation_id: str
    seq: int
    role: Role
    content: str
    status: MessageStatus = MessageStatus.DONE
    error: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    reasoning: str = ""
    """What the model thought before answering (never part of `content`)."""
    tools: list[dict[str, Any]] = field(default_factory=list)
    """The tools the answer called, in order: `id`, `name`, `arguments` (JSON text), `result`, `ok`."""

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> Message:
        return cls(id=row["id"], conversation_id=row["conversation_id"], seq=row["seq"],
                   role=row["role"], content=row["content"], status=MessageStatus(row["status"]), error=row["error"],
                   stats=json.loads(row["stats"]), created_at=row["created_at"],
                   updated_at=row["updated_at"], reasoning=row["reasoning"], tools=json.loads(row["tools"]))


class ConversationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # conversations -------------------------------------------------------------------------

    async def create(self, *, title: str = "New chat", system_prompt: str = "",
                     settings: dict[str, Any] | None = None) -> Conversation:
        now = time.time()
        conv = Conversation(id=new_id(), title=title, system_prompt=system_prompt,
                            settings=settings or {}, created_at=now, updated_at=now)
        await self.db.execute(
            "INSERT INTO conversations (id, title, system_prompt, settings, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (conv.id, conv.title, conv.system_prompt, json.dumps(conv.settings), now, now))
        return conv

    async def get(self, conversation_id: str) -> Conversation | None:
        row = await self.db.fetch_one("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        return Conversation.from_row(row) if row else None

    async def list_recent(self, limit: int = 200) -> list[Conversation]:
        rows = await self.db.fetch_all(
            "SELECT * FROM conversations ORDER BY updated_at DESC, rowid DESC LIMIT ?", (limit,))
        return [Conversation.from_row(r) for r in rows]

    async def update(self, conversation_id: str, *, title: str | None = None,
                     system_prompt: str | None = None, settings: dict[str, Any] | None = None) -> bool:
        sets: list[str] = ["updated_at = ?"]
        params: list[object] = [time.time()]
        for column, value in (("title", title), ("system_prompt", system_prompt),
                              ("settings", None if settings is None else json.dumps(settings))):
            if value is not None:
                sets.append(f"{column} = ?")
                params.append(value)
        changed = await self.db.execute(
            f"UPDATE conversations SET {', '.join(sets)} WHERE id = ?", (*params, conversation_id))
        return changed > 0

    async def delete(self, conversation_id: str) -> bool:
        return await self.db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)) > 0

    # messages -------------------------------------------------------------------------------

    async def messages(self, conversation_id: str) -> list[Message]:
        rows = await self.db.fetch_all(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY seq", (conversation_id,))
        return [Message.from_row(r) for r in rows]

    async def get_message(self, message_id: str) -> Message | None:
        row = await self.db.fetch_one("SELECT * FROM messages WHERE id = ?", (message_id,))
        return Message.from_row(row) if row else None

    async def add_message(self, conversation_id: str, role: Role, content: str, *,
                          status: MessageStatus = MessageStatus.DONE) -> Message:
        now = time.time()
        msg_id = new_id()
        # seq and insert in one transaction so two writers can never share a position
        async with self.db.transaction() as conn:
            async with conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE conversation_id = ?",
                                    (conversation_id,)) as cur:
                row = await cur.fetchone()
            seq = int(row[0]) if row else 1
            await conn.execute(
                "INSERT INTO messages (id, conversation_id, seq, role, content, status, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (msg_id, conversation_id, seq, role, content, status, now, now))
            await conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))
        return Message(id=msg_id, conversation_id=conversation_id, seq=seq, role=role, content=content,
                       status=status, created_at=now, updated_at=now)

    async def save_progress(self, message_id: str, *, content: str, status: MessageStatus,
                            stats: dict[str, Any] | None = None, error: str | None = None, reasoning: str = "",
                            tools: list[dict[str, Any]] | None = None) -> None:
        """Persist a streaming answer (called at least once a second while it streams)."""
        await self.db.execute(
            "UPDATE messages SET content = ?, status = ?, stats = ?, error = ?, reasoning = ?, tools = ?,"
            " updated_at = ? WHERE id = ?",
            (content, status, json.dumps(stats or {}), error, reasoning, json.dumps(tools or []), time.time(),
             message_id))

    async def set_content(self, message_id: str, content: str) -> None:
        await self.db.execute("UPDATE messages SET content = ?, updated_at = ? WHERE id = ?",
                              (content, time.time(), message_id))

    async def truncate_after(self, conversation_id: str, seq: int) -> int:
        """Delete every message after position `seq` (edit-and-resend, regenerate)."""
        return await self.db.execute("DELETE FROM messages WHERE conversation_id = ? AND seq > ?",
                                     (conversation_id, seq))

    async def mark_interrupted(self) -> int:
        """At start-up nothing can still be streaming: keep the text, mark it interrupted."""
        return await self.db.execute(
            "UPDATE messages SET status = 'interrupted', updated_at = ? WHERE status = 'streaming'",
            (time.time(),))
