"""Data folders with real conversations, media and model files, archives made by hand (good and
hostile), and fingerprints that say whether two data folders hold the same data."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import tarfile
import time
from pathlib import Path
from typing import Any

from backend.core.config import Settings
from backend.storage.backup_format import FORMAT_NAME, FORMAT_VERSION, MANIFEST_NAME
from backend.storage.conversations import ConversationStore
from backend.storage.db import Database
from backend.storage.media import MediaStore

MODEL_BYTES = b"GGUF" + bytes(range(256)) * 64
"""A stand-in model file (the registry does not read files; only the backup copies them)."""


def settings_in(root: Path) -> Settings:
    """A data folder with its models folder outside it, as GRIDLESS_MODELS_DIR can make it."""
    return Settings(data_dir=root / "data", models_dir=root / "models")


async def populate(settings: Settings, *, tag: str, conversations: int = 3, media: int = 3,
                   model: bool = True) -> list[str]:
    """Conversations with messages, media files, a setting and a registered model; returns the
    conversations' ids. `tag` makes the content of one folder differ from another's."""
    db = Database(settings.db_path)
    await db.open()
    try:
        store = ConversationStore(db)
        ids = []
        for n in range(conversations):
            conv = await store.create(title=f"{tag} chat {n}")
            await store.add_message(conv.id, "user", f"{tag} question {n} città")
            await store.add_message(conv.id, "assistant", f"{tag} answer {n} " + "words " * 50)
            ids.append(conv.id)
        await db.execute("INSERT INTO settings (key, value) VALUES (?, ?)", ("backup-test", json.dumps(tag)))
        mediastore = MediaStore(settings.media_dir)
        for n in range(media):
            await mediastore.write_bytes(mediastore.new_name("images", "png"), f"{tag}-{n}".encode() * 2000)
        if model:
            settings.model_folder.mkdir(parents=True, exist_ok=True)
            path = settings.model_folder / f"{tag}-model.gguf"
            path.write_bytes(MODEL_BYTES + tag.encode())
            await db.execute(
                "INSERT INTO models (id, job, name, format, path, size_bytes, source, info, added_at)"
                " VALUES (?, 'chat', ?, 'gguf', ?, ?, 'import', '{}', ?)",
                (f"{tag}-model", f"{tag} model", str(path), path.stat().st_size, time.time()))
    finally:
        await db.close()
    return ids


def tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` with its sha256 (byte for byte)."""
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def rows(db_path: Path) -> list[str]:
    """The database's content as SQL (journal mode and page layout aside)."""
    conn = sqlite3.connect(db_path)
    try:
        return sorted(conn.iterdump())
    finally:
        conn.close()


def state(settings: Settings) -> dict[str, Any]:
    """What a person has: the database's rows, the media files, the model files."""
    hidden = ("gridless.lock",)
    return {"rows": rows(settings.db_path), "media": tree(settings.media_dir),
            "models": {k: v for k, v in tree(settings.model_folder).items() if not k.startswith(".")},
            "other": sorted(p.name for p in settings.data_dir.iterdir()
                            if p.name not in ("gridless.db", "media") and p.name not in hidden)}


def leftovers(settings: Settings) -> list[str]:
    """Staging, old data or a journal left behind by a restore."""
    found = [p for folder in (settings.data_dir, settings.model_folder) if folder.is_dir()
             for p in folder.iterdir() if p.name.startswith((".restore-staging", ".restore-old", ".restore-journal"))]
    return sorted(str(p) for p in found)


def member(name: str, data: bytes = b"", **attrs: Any) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1_700_000_000
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def manifest_for(members: list[tuple[tarfile.TarInfo, bytes]], **changes: Any) -> bytes:
    files = [{"path": info.name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
             for info, data in members if info.isreg()]
    body: dict[str, Any] = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "app_version": "0.1.0",
                            "created_at": "2026-01-01T00:00:00+00:00", "user_version": 1, "files": files,
                            "models": []}
    body.update(changes)
    return json.dumps(body).encode()


def archive(members: list[tuple[tarfile.TarInfo, bytes]], manifest: bytes | None = None, *,
            with_manifest: bool = True, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A tar of `members` and, last, a manifest (made from them unless given)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w|", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
        if with_manifest:
            data = manifest if manifest is not None else manifest_for(members)
            info, _ = member(MANIFEST_NAME, data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def small_database(path: Path, *, user_version: int | None = None, extra_sql: str = "") -> bytes:
    """A real gridless database (every migration), with a conversation, as bytes."""
    import asyncio

    async def make() -> None:
        db = Database(path)
        await db.open()
        store = ConversationStore(db)
        conv = await store.create(title="from the archive")
        await store.add_message(conv.id, "user", "hello " * 200)
        await db.close()

    asyncio.run(make())
    conn = sqlite3.connect(path)
    if extra_sql:
        conn.executescript(extra_sql)
    if user_version is not None:
        conn.execute(f"PRAGMA user_version={user_version}")
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    data = path.read_bytes()
    os.unlink(path)
    return data
