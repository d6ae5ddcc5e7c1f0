"""A tiny-ish random-weight image model for stable-diffusion.cpp, written from the SDXS-512
tensor manifest in `tests/data/` (UNet, CLIP text encoder and tiny autoencoder; 882 MB of fp16).

Its pictures are noise, but loading and sampling are real. Writing it takes a few seconds;
tests write it once per session. The values are seeded, so every file written is the same.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

__all__ = ["MANIFEST", "TINY_SD", "register_image_model", "write_sdxs"]

MANIFEST = Path(__file__).parent / "data" / "sdxs512-tensor-manifest.json"
_CHUNK = 8 * 1024 * 1024  # values generated at a time


def write_sdxs(path: Path, *, prefix_map: dict[str, str] | None = None, seed: int = 0) -> Path:
    """Write the model as one `.safetensors` file at `path`. `prefix_map` renames tensor prefixes
    (`{"unet.": "wrong."}` makes a file stable-diffusion.cpp cannot use)."""
    tensors: list[tuple[str, list[int]]] = json.loads(MANIFEST.read_text())
    header: dict[str, object] = {}
    offset = 0
    for name, shape in tensors:
        for old, new in (prefix_map or {}).items():
            if name.startswith(old):
                name = new + name[len(old):]
        size = 2 * int(np.prod(shape, dtype=np.int64)) if shape else 2
        header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        out.write(struct.pack("<Q", len(encoded)) + encoded)
        left = offset // 2
        while left:
            count = min(left, _CHUNK)
            (rng.standard_normal(count, dtype=np.float32) * 0.02).astype("<f2").tofile(out)
            left -= count
    return path


TINY_SD = "tiny-sdxs"


async def register_image_model(db_path: Path, model: Path, model_id: str = TINY_SD) -> None:
    """Record `model` as an installed image model in the database at `db_path`."""
    from backend.models.registry import ModelRecord, ModelRegistry
    from backend.storage.db import Database

    db = Database(db_path)
    await db.open()
    try:
        registry = ModelRegistry(db)
        await registry.load()
        await registry.add(ModelRecord(id=model_id, job="images", name="Tiny SDXS", format="safetensors",
                                       path=model, size_bytes=model.stat().st_size, source="import"))
    finally:
        await db.close()
