"""Transcripts: one row per recording or uploaded audio file; plain SQL, one place."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import aiosqlite

from .db import Database

__all__ = ["Transcript", "TranscriptState", "TranscriptStore"]



class TranscriptState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"
    CANCELLED = "cancelled"


_COLUMNS = ("audio", "mime", "bytes", "name", "duration", "language", "language_hint", "model", "state", "text",
            "segments", "error", "seconds")


@dataclass(kw_only=True, slots=True)
class Transcript:
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    audio: str
    """The media file, relative to the media folder."""
    mime: str
    bytes: int
    name: str = ""
    duration: float | None = None
    language: str | None = None
    language_hint: str | None = None
    """The language asked for (None: detect)."""
    model: str | None = None
    state: TranscriptState = TranscriptState.QUEUED
    text: str = ""
    segments: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    seconds: float | None = None
    """How long transcribing took."""

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> Transcript:
        values = {k: row[k] for k in row.keys()}
        values["segments"] = json.loads(values["segments"])
        values["state"] = TranscriptState(values["state"])
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "created_at": self.created_at, "name": self.name, "mime": self.mime,
                "bytes": self.bytes, "duration": self.duration, "language": self.language, "model": self.model,
                "state": self.state, "text": self.text, "segments": self.segments, "error": self.error,
                "seconds": self.seconds}


class TranscriptStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, transcript: Transcript) -> Transcript:
        await self.db.execute(
            f"INSERT INTO transcripts (id, created_at, updated_at, {', '.join(_COLUMNS)}) "
            f"VALUES (?, ?, ?, {', '.join('?' for _ in _COLUMNS)})",
            (transcript.id, transcript.created_at, transcript.updated_at, *self._values(transcript)))
        return transcript

    async def save(self, transcript: Transcript) -> None:
        transcript.updated_at = time.time()
        await self.db.execute(
            f"UPDATE transcripts SET updated_at = ?, {', '.join(f'{c} = ?' for c in _COLUMNS)} WHERE id = ?",
            (transcript.updated_at, *self._values(transcript), transcript.id))

    async def get(self, transcript_id: str) -> Transcript | None:
        row = await self.db.fetch_one("SELECT * FROM transcripts WHERE id = ?", (transcript_id,))
        return Transcript.from_row(row) if row else None

    async def list_recent(self, limit: int = 200, before: float | None = None) -> list[Transcript]:
        rows = await self.db.fetch_all(
            "SELECT * FROM transcripts WHERE created_at < ? ORDER BY created_at DESC LIMIT ?",
            (before if before is not None else float("inf"), limit))
        return [Transcript.from_row(r) for r in rows]

    async def unfinished(self) -> list[Transcript]:
        rows = await self.db.fetch_all(
            "SELECT * FROM transcripts WHERE state IN ('queued', 'running') ORDER BY created_at")
        return [Transcript.from_row(r) for r in rows]

    async def delete(self, transcript_id: str) -> bool:
        return await self.db.execute("DELETE FROM transcripts WHERE id = ?", (transcript_id,)) > 0

    @staticmethod
    def _values(t: Transcript) -> tuple[Any, ...]:
        return (t.audio, t.mime, t.bytes, t.name, t.duration, t.language, t.language_hint, t.model, t.state, t.text,
                json.dumps(t.segments), t.error, t.seconds)
