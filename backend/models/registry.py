"""Installed models, kept in SQLite and mirrored in memory so pages and the chat path can
look them up without waiting on the database."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiosqlite

from ..core.jobs import Job
from ..storage.db import Database
from .files import JOBS

__all__ = ["ModelRecord", "ModelRegistry"]

_ACTIVE_KEY = "active_model:"


@dataclass(kw_only=True, slots=True, frozen=True)
class ModelRecord:
    id: str
    job: Job
    name: str
    format: str
    path: Path
    """The file engines load (for a speech model, its folder)."""
    size_bytes: int
    source: str
    """'bundled' (ships in a package), 'hub', 'import' or 'folder' (found in the models folder)."""
    projector: Path | None = None
    folder: Path | None = None
    """A folder that belongs to this model alone and goes when it is deleted."""
    quantization: str | None = None
    license: str | None = None
    repo: str | None = None
    revision: str | None = None
    sha256: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    memory_override: bool = False
    """The owner chose to load it even though the estimate is over the memory budget."""
    context_choice: int | None = None
    """A context length the owner chose for this model (None: the app's setting)."""
    added_at: float = field(default_factory=time.time)

    @property
    def deletable(self) -> bool:
        return self.source != "bundled"

    @property
    def context_length(self) -> int | None:
        value = self.info.get("trained_context")
        return int(value) if value else None

    @property
    def files(self) -> list[Path]:
        """Every file that belongs to the model (its main file, projector and companions)."""
        extra = [Path(p) for p in self.info.get("companions", [])]
        return [p for p in (self.path, self.projector) if p is not None] + extra

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> ModelRecord:
        return cls(id=row["id"], job=Job(row["job"]), name=row["name"], format=row["format"], path=Path(row["path"]),
                   projector=Path(row["projector"]) if row["projector"] else None,
                   folder=Path(row["folder"]) if row["folder"] else None, size_bytes=row["size_bytes"],
                   quantization=row["quantization"], license=row["license"], source=row["source"],
                   repo=row["repo"], revision=row["revision"], sha256=row["sha256"], info=json.loads(row["info"]),
                   memory_override=bool(row["memory_override"]), context_choice=row["context_length"],
                   added_at=row["added_at"])


class ModelRegistry:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._records: dict[str, ModelRecord] = {}
        self._active: dict[str, str] = {}
        self._preferred: dict[str, str] = {}

    async def load(self) -> None:
        rows = await self.db.fetch_all("SELECT * FROM models ORDER BY added_at")
        self._records = {row["id"]: ModelRecord.from_row(row) for row in rows}
        rows = await self.db.fetch_all("SELECT key, value FROM settings WHERE key LIKE ?", (_ACTIVE_KEY + "%",))
        self._active = {row["key"].removeprefix(_ACTIVE_KEY): json.loads(row["value"]) for row in rows}

    def all(self, job: str | None = None) -> list[ModelRecord]:
        return [r for r in self._records.values() if job is None or r.job == job]

    def get(self, model_id: str) -> ModelRecord | None:
        return self._records.get(model_id)

    def by_path(self, path: Path) -> ModelRecord | None:
        return next((r for r in self._records.values() if r.path == path), None)

    def active(self, job: str) -> ModelRecord | None:
        """The one chosen for `job`, else the one preferred for it (`prefer`), else the first installed
        (the bundled one comes first)."""
        for model_id in (self._active.get(job, ""), self._preferred.get(job, "")):
            record = self._records.get(model_id)
            if record is not None and record.job == job:
                return record
        candidates = sorted(self.all(job), key=lambda r: (r.source != "bundled", r.added_at))
        return candidates[0] if candidates else None

    def unique_id(self, wanted: str) -> str:
        if wanted not in self._records:
            return wanted
        n = 2
        while f"{wanted}-{n}" in self._records:
            n += 1
        return f"{wanted}-{n}"

    async def add(self, record: ModelRecord) -> ModelRecord:
        if record.job not in JOBS:
            raise ValueError(f"unknown job {record.job}")
        record = replace(record, id=self.unique_id(record.id))
        await self.db.execute(
            "INSERT INTO models (id, job, name, format, path, projector, folder, size_bytes, quantization, license,"
            " source, repo, revision, sha256, info, memory_override, context_length, added_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (record.id, record.job, record.name, record.format, str(record.path),
             str(record.projector) if record.projector else None, str(record.folder) if record.folder else None,
             record.size_bytes, record.quantization, record.license, record.source, record.repo, record.revision,
             record.sha256, json.dumps(record.info), int(record.memory_override), record.context_choice,
             record.added_at))
        self._records[record.id] = record
        return record

    async def remove(self, model_id: str) -> ModelRecord | None:
        record = self._records.pop(model_id, None)
        if record is not None:
            await self.db.execute("DELETE FROM models WHERE id = ?", (model_id,))
            if self._active.get(record.job) == model_id:
                await self.db.execute("DELETE FROM settings WHERE key = ?", (_ACTIVE_KEY + record.job,))
                self._active.pop(record.job, None)
        return record

    async def set_active(self, job: str, model_id: str) -> None:
        record = self._records.get(model_id)
        if record is None or record.job != job:
            raise KeyError(model_id)
        await self.set_setting(_ACTIVE_KEY + job, model_id)
        self._active[job] = model_id

    def prefer(self, job: str, model_id: str) -> None:
        """The model `active` gives for `job` while the owner has chosen none (the bundled multilingual
        Whisper rather than the bundled tiny.en, which came first). Not stored: set at every start."""
        self._preferred[job] = model_id

    async def rename(self, model_id: str, name: str) -> ModelRecord:
        record = replace(self._records[model_id], name=name)
        await self.db.execute("UPDATE models SET name = ? WHERE id = ?", (name, model_id))
        self._records[model_id] = record
        return record

    async def refresh(self, model_id: str, *, size_bytes: int, info: dict[str, Any],
                      quantization: str | None) -> ModelRecord:
        """What the file now is, after it was written again in place (a bundled model)."""
        record = replace(self._records[model_id], size_bytes=size_bytes, info=info, quantization=quantization)
        await self.db.execute("UPDATE models SET size_bytes = ?, info = ?, quantization = ? WHERE id = ?",
                              (size_bytes, json.dumps(info), quantization, model_id))
        self._records[model_id] = record
        return record

    async def set_memory_override(self, model_id: str, override: bool) -> ModelRecord:
        record = replace(self._records[model_id], memory_override=override)
        await self.db.execute("UPDATE models SET memory_override = ? WHERE id = ?", (int(override), model_id))
        self._records[model_id] = record
        return record

    async def set_context_choice(self, model_id: str, context_length: int | None) -> ModelRecord:
        record = replace(self._records[model_id], context_choice=context_length)
        await self.db.execute("UPDATE models SET context_length = ? WHERE id = ?", (context_length, model_id))
        self._records[model_id] = record
        return record

    async def get_setting(self, key: str) -> Any:
        row = await self.db.fetch_one("SELECT value FROM settings WHERE key = ?", (key,))
        return json.loads(row["value"]) if row else None

    async def set_setting(self, key: str, value: Any) -> None:
        await self.db.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE"
                              " SET value = excluded.value", (key, json.dumps(value)))

    async def forget_missing(self) -> list[ModelRecord]:
        """Drop records whose files are gone (deleted by hand, package uninstalled)."""
        gone = [r for r in self._records.values() if not all(p.exists() for p in r.files)]
        for record in gone:
            await self.remove(record.id)
        return gone

    def disk_used(self) -> int:
        return sum(r.size_bytes for r in self._records.values() if r.source != "bundled")
