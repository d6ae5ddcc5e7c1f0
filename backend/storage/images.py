"""Generated images: one row each with how it was made; the PNG and its thumbnail are media files."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import aiosqlite

from .db import Database

__all__ = ["ImageRecord", "ImageStore"]


@dataclass(kw_only=True, slots=True)
class ImageRecord:
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: float = field(default_factory=time.time)
    prompt: str
    negative_prompt: str = ""
    width: int
    height: int
    steps: int
    cfg_scale: float
    sampler: str
    seed: int
    model: str
    model_name: str
    seconds: float
    """Time the generation took, divided among the images of a batch."""
    path: str
    thumb: str
    bytes: int
    source_image: str | None = None
    """Image-to-image: the gallery image it started from."""
    strength: float | None = None
    conversation_id: str | None = None
    """Made from a chat message: the conversation it is shown in."""
    origin: str = "page"
    """"page", "chat" or "api"."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["path"], data["thumb"]
        data["url"] = f"/api/images/{self.id}/file"
        data["thumbnail"] = f"/api/images/{self.id}/thumb"
        return data

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> ImageRecord:
        return cls(**{key: row[key] for key in row.keys()})


_COLUMNS = tuple(ImageRecord.__dataclass_fields__)


class ImageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add_all(self, records: list[ImageRecord]) -> None:
        async with self.db.transaction() as conn:
            for record in records:
                await conn.execute(f"INSERT INTO images ({', '.join(_COLUMNS)}) VALUES "
                                   f"({', '.join('?' for _ in _COLUMNS)})",
                                   tuple(getattr(record, c) for c in _COLUMNS))

    async def get(self, image_id: str) -> ImageRecord | None:
        row = await self.db.fetch_one("SELECT * FROM images WHERE id = ?", (image_id,))
        return ImageRecord.from_row(row) if row else None

    async def recent(self, limit: int = 30, before: float | None = None) -> list[ImageRecord]:
        """Newest first; `before` (a `created_at`) continues a list where it stopped."""
        rows = await self.db.fetch_all(
            "SELECT * FROM images WHERE created_at < ? ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (before if before is not None else float("inf"), limit))
        return [ImageRecord.from_row(r) for r in rows]

    async def for_conversation(self, conversation_id: str) -> list[ImageRecord]:
        rows = await self.db.fetch_all("SELECT * FROM images WHERE conversation_id = ? ORDER BY created_at",
                                       (conversation_id,))
        return [ImageRecord.from_row(r) for r in rows]

    async def delete(self, ids: Iterable[str]) -> list[ImageRecord]:
        """Delete these images' rows; returns those that existed (their files are the caller's)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        marks = ", ".join("?" for _ in wanted)
        rows = await self.db.fetch_all(f"SELECT * FROM images WHERE id IN ({marks})", wanted)
        await self.db.execute(f"DELETE FROM images WHERE id IN ({marks})", wanted)
        return [ImageRecord.from_row(r) for r in rows]

    async def all_files(self) -> set[str]:
        rows = await self.db.fetch_all("SELECT path, thumb FROM images")
        return {p for row in rows for p in (row["path"], row["thumb"])}
