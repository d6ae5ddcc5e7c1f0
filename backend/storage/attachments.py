"""Photos and documents attached to messages: one row each, the files themselves in the media folder.

An attachment is *pending* (no message yet) from its upload until the message it goes with
is sent; only the principal who uploaded it can send or remove it then. Once sent it lives and
dies with its message (the row cascades; the caller removes the files).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiosqlite

from .db import Database

__all__ = ["Attachment", "AttachmentKind", "AttachmentStore"]

AttachmentKind = Literal["image", "document"]


@dataclass(kw_only=True, slots=True)
class Attachment:
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    message_id: str | None = None
    uploader: str
    """The principal who uploaded it ("owner" or a device id)."""
    kind: AttachmentKind
    name: str
    mime: str
    path: str
    """The stored file, relative to the media folder: the prepared photo, or the document as sent."""
    thumb: str | None = None
    bytes: int
    width: int | None = None
    height: int | None = None
    text: str = ""
    """Documents: the text extracted from it (all that was read)."""
    info: dict[str, Any] = field(default_factory=dict)
    """Documents: kind, pages, rows, columns, preview, encoding, language, extraction notice."""
    sent_text: str | None = None
    """Documents: what the model was given, fixed when the message was sent (cut to fit its context)."""
    sent_notice: str | None = None
    """How much of the document that is, in plain words; None when it is all of it."""
    position: int = 0
    created_at: float = field(default_factory=time.time)

    @property
    def is_image(self) -> bool:
        return self.kind == "image"

    def to_json(self) -> dict[str, Any]:
        """What the API and the page get (not the text: it can be megabytes)."""
        return {"id": self.id, "message_id": self.message_id, "kind": self.kind, "name": self.name,
                "mime": self.mime, "bytes": self.bytes, "width": self.width, "height": self.height,
                "info": self.info, "chars": len(self.text), "sent_notice": self.sent_notice,
                "url": f"/api/attachments/{self.id}/file",
                "thumbnail": f"/api/attachments/{self.id}/thumb" if self.thumb else None}

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> Attachment:
        return cls(id=row["id"], message_id=row["message_id"], uploader=row["uploader"], kind=row["kind"],
                   name=row["name"], mime=row["mime"], path=row["path"], thumb=row["thumb"], bytes=row["bytes"],
                   width=row["width"], height=row["height"], text=row["text"], info=json.loads(row["info"]),
                   sent_text=row["sent_text"], sent_notice=row["sent_notice"], position=row["position"],
                   created_at=row["created_at"])


_COLUMNS = ("id", "message_id", "uploader", "kind", "name", "mime", "path", "thumb", "bytes", "width", "height",
            "text", "info", "sent_text", "sent_notice", "position", "created_at")


class AttachmentStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, attachment: Attachment) -> Attachment:
        values = [getattr(attachment, c) for c in _COLUMNS]
        values[_COLUMNS.index("info")] = json.dumps(attachment.info)
        await self.db.execute(f"INSERT INTO attachments ({', '.join(_COLUMNS)}) "
                              f"VALUES ({', '.join('?' for _ in _COLUMNS)})", values)
        return attachment

    async def get(self, attachment_id: str) -> Attachment | None:
        row = await self.db.fetch_one("SELECT * FROM attachments WHERE id = ?", (attachment_id,))
        return Attachment.from_row(row) if row else None

    async def pending(self, ids: Iterable[str], uploader: str) -> list[Attachment]:
        """Those of `ids` not yet sent and uploaded by `uploader`, in the order of `ids`."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        rows = await self.db.fetch_all(
            f"SELECT * FROM attachments WHERE message_id IS NULL AND uploader = ? "
            f"AND id IN ({', '.join('?' for _ in wanted)})", (uploader, *wanted))
        found = {row["id"]: Attachment.from_row(row) for row in rows}
        return [found[i] for i in wanted if i in found]

    async def set_sent(self, attachment_id: str, sent_text: str, sent_notice: str | None) -> None:
        """Change what the model is given of a sent document (a long one, once it is indexed)."""
        await self.db.execute("UPDATE attachments SET sent_text = ?, sent_notice = ? WHERE id = ?",
                              (sent_text, sent_notice, attachment_id))

    async def link(self, message_id: str, attachments: list[Attachment]) -> None:
        """Give pending attachments to a message, with what the model is to read of each document."""
        async with self.db.transaction() as conn:
            for position, a in enumerate(attachments):
                cur = await conn.execute(
                    "UPDATE attachments SET message_id = ?, position = ?, sent_text = ?, sent_notice = ? "
                    "WHERE id = ? AND message_id IS NULL", (message_id, position, a.sent_text, a.sent_notice, a.id))
                if cur.rowcount != 1:
                    raise LookupError(f"attachment {a.id} is no longer waiting to be sent")
        for position, a in enumerate(attachments):
            a.message_id, a.position = message_id, position

    async def copy_to(self, message_id: str, attachments: list[Attachment]) -> None:
        """The same files, attached to another message too (an edited message keeps its photos and
        documents); the files are shared, and go when the conversation goes."""
        if not attachments:
            return
        async with self.db.transaction() as conn:
            for a in attachments:
                await conn.execute(
                    "INSERT INTO attachments (id, message_id, uploader, kind, name, mime, path, thumb, bytes, width,"
                    " height, text, info, sent_text, sent_notice, position, created_at)"
                    " SELECT ?, ?, uploader, kind, name, mime, path, thumb, bytes, width, height, text, info,"
                    " sent_text, sent_notice, position, created_at FROM attachments WHERE id = ?",
                    (uuid.uuid4().hex, message_id, a.id))

    async def for_conversation(self, conversation_id: str) -> dict[str, list[Attachment]]:
        """The attachments of each message of a conversation, by message id, in their order."""
        rows = await self.db.fetch_all(
            "SELECT a.* FROM attachments a JOIN messages m ON m.id = a.message_id "
            "WHERE m.conversation_id = ? ORDER BY m.seq, a.position", (conversation_id,))
        found: dict[str, list[Attachment]] = {}
        for row in rows:
            found.setdefault(row["message_id"], []).append(Attachment.from_row(row))
        return found

    async def files_after(self, conversation_id: str, seq: int = 0) -> list[str]:
        """The media files of the attachments of messages after position `seq` (all: 0)."""
        rows = await self.db.fetch_all(
            "SELECT a.path, a.thumb FROM attachments a JOIN messages m ON m.id = a.message_id "
            "WHERE m.conversation_id = ? AND m.seq > ?", (conversation_id, seq))
        return [p for row in rows for p in (row["path"], row["thumb"]) if p]

    async def delete_pending(self, attachment_id: str, uploader: str) -> Attachment | None:
        found = await self.get(attachment_id)
        if found is None or found.message_id is not None or found.uploader != uploader:
            return None
        await self.db.execute("DELETE FROM attachments WHERE id = ? AND message_id IS NULL", (attachment_id,))
        return found

    async def expire_pending(self, older_than: float) -> list[str]:
        """Forget attachments never sent that were uploaded before `older_than`; returns their files."""
        rows = await self.db.fetch_all(
            "SELECT path, thumb FROM attachments WHERE message_id IS NULL AND created_at < ?", (older_than,))
        await self.db.execute("DELETE FROM attachments WHERE message_id IS NULL AND created_at < ?", (older_than,))
        return [p for row in rows for p in (row["path"], row["thumb"]) if p]

    async def all_files(self) -> set[str]:
        rows = await self.db.fetch_all("SELECT path, thumb FROM attachments")
        return {p for row in rows for p in (row["path"], row["thumb"]) if p}
