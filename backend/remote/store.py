"""The engine servers the owner added, in the `engines` table."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from ..storage.db import Database

__all__ = ["JOBS", "EngineStore", "RemoteEngine", "guess_job"]

JOBS = ("chat", "embeddings", "speech", "images")
"""What a server's model may be used for here."""
_SPEECH_NAMES = re.compile(r"whisper|parakeet|canary|moonshine|transcri", re.I)
_IMAGE_NAMES = re.compile(r"stable-?diffusion|sdxl|sdxs|sd-?turbo|sd3|flux|dall-?e|gpt-image|dreamshaper|"
                          r"kandinsky|(^|[/_:.-])sd[-_]?(1|2|v1|v2|xl)", re.I)
_EMBEDDING_NAMES = re.compile(r"embed|(^|[/_:.-])(e5|bge|gte|minilm|mpnet|nomic|arctic|jina|paraphrase)([/_:.-]|$)",
                              re.I)


def guess_job(model: str) -> str:
    """What a model is for, from its name (servers do not say): the usual speech, image and embedding
    families, else chat."""
    if _SPEECH_NAMES.search(model):
        return "speech"
    if _IMAGE_NAMES.search(model):
        return "images"
    return "embeddings" if _EMBEDDING_NAMES.search(model) else "chat"


@dataclass(kw_only=True, slots=True)
class RemoteEngine:
    id: str
    url: str
    """The base of its OpenAI API (`http://host:port/v1`)."""
    name: str
    api_key: str = field(default="", repr=False)
    certificate: str | None = field(default=None, repr=False)
    """The pinned certificate (PEM) of a self-signed https server."""
    fingerprint: str | None = None
    models: list[str] = field(default_factory=list)
    jobs: dict[str, str] = field(default_factory=dict)
    """What each model is used for: "chat", "embeddings", "speech" or "images" (guessed from its name, or
    the owner's choice)."""
    tools: bool = False
    """The owner says its chat models can call tools (llama-server with --jinja, Ollama, vLLM with a tool
    parser): conversations then offer them the tools as they do local models that can."""
    state: str = "unknown"
    """"up", "down" or "unknown" (not checked since the start)."""
    error: str | None = None
    latency_ms: float | None = None
    """How long its last check (the model list) took."""
    speed: dict[str, dict[str, float]] = field(default_factory=dict)
    """Each model's last answer: `tokens_per_s` and `ttft_s`."""
    checked_at: float | None = None
    created_at: float = field(default_factory=time.time)

    @property
    def secure(self) -> bool:
        return self.url.startswith("https://")

    def job_of(self, model: str) -> str:
        return self.jobs.get(model) or guess_job(model)

    def public(self) -> dict[str, Any]:
        """What the API and pages show: never the key."""
        return {"id": self.id, "url": self.url, "name": self.name, "has_key": bool(self.api_key),
                "secure": self.secure, "fingerprint": self.fingerprint, "models": list(self.models),
                "jobs": {m: self.job_of(m) for m in self.models}, "tools": self.tools,
                "state": self.state, "error": self.error, "latency_ms": self.latency_ms,
                "speed": dict(self.speed), "checked_at": self.checked_at, "created_at": self.created_at}


def _from_row(row: Any) -> RemoteEngine:
    return RemoteEngine(id=row["id"], url=row["url"], name=row["name"], api_key=row["api_key"],
                        certificate=row["certificate"], fingerprint=row["fingerprint"],
                        models=json.loads(row["models"]), jobs=json.loads(row["jobs"]), tools=bool(row["tools"]),
                        state=row["state"],
                        error=row["error"],
                        latency_ms=row["latency_ms"], speed=json.loads(row["speed"]), checked_at=row["checked_at"],
                        created_at=row["created_at"])


class EngineStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def all(self) -> list[RemoteEngine]:
        rows = await self.db.fetch_all("SELECT * FROM engines ORDER BY created_at")
        return [_from_row(r) for r in rows]

    async def add(self, engine: RemoteEngine) -> None:
        await self.db.execute(
            "INSERT INTO engines (id, url, name, api_key, certificate, fingerprint, models, jobs, state, error,"
            " latency_ms, speed, checked_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (engine.id, engine.url, engine.name, engine.api_key, engine.certificate, engine.fingerprint,
             json.dumps(engine.models), json.dumps(engine.jobs), engine.state, engine.error, engine.latency_ms,
             json.dumps(engine.speed),
             engine.checked_at, engine.created_at))

    async def save_state(self, engine: RemoteEngine) -> None:
        await self.db.execute(
            "UPDATE engines SET models = ?, jobs = ?, state = ?, error = ?, latency_ms = ?, speed = ?,"
            " checked_at = ? WHERE id = ?",
            (json.dumps(engine.models), json.dumps(engine.jobs), engine.state, engine.error, engine.latency_ms,
             json.dumps(engine.speed),
             engine.checked_at, engine.id))

    async def set_tools(self, engine_id: str, tools: bool) -> None:
        await self.db.execute("UPDATE engines SET tools = ? WHERE id = ?", (int(tools), engine_id))

    async def remove(self, engine_id: str) -> bool:
        return await self.db.execute("DELETE FROM engines WHERE id = ?", (engine_id,)) > 0
