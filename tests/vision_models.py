"""A vision model for tests and benchmarks: the bundled SmolLM2 with a tiny random-weight projector,
registered in a fresh data folder before the server starts (its answers are noise; the path is real)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from backend.models.registry import ModelRecord, ModelRegistry
from backend.storage.db import Database
from tests.loops import run_alone

__all__ = ["VISION", "vision_data_dir"]

VISION = "tiny-vision"


async def _register(db_path: Path, model: Path, projector: Path) -> None:
    db = Database(db_path)
    await db.open()
    try:
        registry = ModelRegistry(db)
        await registry.load()
        await registry.add(ModelRecord(id=VISION, job="vision", name="Tiny vision", format="gguf", path=model,
                                       projector=projector, size_bytes=model.stat().st_size, source="import"))
    finally:
        await db.close()


def vision_data_dir(folder: Path, chat_model: Path, projector: Path) -> Path:
    """`folder/data`, with the vision model `VISION` (a link to `chat_model`'s weights, so the
    bundled chat model keeps its own registration) and `projector` in its database."""
    data = folder / "data"
    data.mkdir()
    model = folder / "tiny-vision.gguf"
    try:
        os.link(chat_model, model)
    except OSError:
        shutil.copyfile(chat_model, model)
    run_alone(_register(data / "gridless.db", model, projector))
    return data
