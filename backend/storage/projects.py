"""Projects: conversations grouped, with the system prompt and settings their new chats start from."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from .db import Database

__all__ = ["Project", "ProjectStore"]


@dataclass(kw_only=True, slots=True)
class Project:
    id: str
    name: str
    system_prompt: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    """What a new chat in the project starts with (model, temperature, thinking, tools…)."""
    preset: str | None = None
    """The ready-made project it started from, if any."""
    created_at: float = 0.0
    updated_at: float = 0.0
    conversations: int = 0
    """How many conversations it holds (archived ones too), when listed."""

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> Project:
        keys = row.keys()
        return cls(id=row["id"], name=row["name"], system_prompt=row["system_prompt"],
                   settings=json.loads(row["settings"]), preset=row["preset"], created_at=row["created_at"],
                   updated_at=row["updated_at"], conversations=row["conversations"] if "conversations" in keys else 0)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "system_prompt": self.system_prompt, "settings": self.settings,
                "preset": self.preset, "created_at": self.created_at, "updated_at": self.updated_at,
                "conversations": self.conversations}


class ProjectStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, name: str, *, system_prompt: str = "", settings: dict[str, Any] | None = None,
                     preset: str | None = None) -> Project:
        now = time.time()
        project = Project(id=uuid.uuid4().hex, name=name, system_prompt=system_prompt, settings=settings or {},
                          preset=preset, created_at=now, updated_at=now)
        await self.db.execute(
            "INSERT INTO projects (id, name, system_prompt, settings, preset, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (project.id, name, system_prompt, json.dumps(project.settings), preset, now, now))
        return project

    async def get(self, project_id: str) -> Project | None:
        row = await self.db.fetch_one(
            "SELECT p.*, (SELECT COUNT(*) FROM conversations c WHERE c.project_id = p.id) AS conversations"
            " FROM projects p WHERE p.id = ?", (project_id,))
        return Project.from_row(row) if row else None

    async def list(self) -> list[Project]:
        rows = await self.db.fetch_all(
            "SELECT p.*, (SELECT COUNT(*) FROM conversations c WHERE c.project_id = p.id) AS conversations"
            " FROM projects p ORDER BY p.name COLLATE NOCASE, p.created_at")
        return [Project.from_row(r) for r in rows]

    async def update(self, project_id: str, *, name: str | None = None, system_prompt: str | None = None,
                     settings: dict[str, Any] | None = None) -> bool:
        sets: list[str] = ["updated_at = ?"]
        params: list[object] = [time.time()]
        for column, value in (("name", name), ("system_prompt", system_prompt),
                              ("settings", None if settings is None else json.dumps(settings))):
            if value is not None:
                sets.append(f"{column} = ?")
                params.append(value)
        return await self.db.execute(f"UPDATE projects SET {', '.join(sets)} WHERE id = ?",
                                     (*params, project_id)) > 0

    async def delete(self, project_id: str) -> bool:
        """The project goes; its conversations stay, in no project."""
        return await self.db.execute("DELETE FROM projects WHERE id = ?", (project_id,)) > 0
