"""Catalog files for tests, with entries shaped like the GGUFs `tests.ggufs.write_lm_gguf` writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backend.models.gguf_info import quantization_from_name

TINY_SHAPE = {"layers": 2, "head_count": 4, "head_count_kv": 2, "key_length": 16, "value_length": 16,
              "embedding_length": 64, "feed_forward_length": 256, "vocab_size": 256, "trained_context": 2048}
_FROM_NAME = object()


def chat_entry(entry_id: str = "tiny-chat", *, name: str = "Tiny chat", repo: str = "acme/tiny-GGUF",
               path: str = "tiny-Q4_K_M.gguf", size_mb: float = 6, quantization: Any = _FROM_NAME,
               **changes: Any) -> dict[str, Any]:
    """A chat entry; `quantization` comes from the file name unless given (None: left out); a
    vision entry (job="vision") lists the feature "vision" unless `features` is given."""
    entry: dict[str, Any] = {
        "id": entry_id, "job": "chat", "name": name, "description": "test", "repo": repo,
        "files": [{"path": path, "size_mb": size_mb}], "license": "apache-2.0",
        "quantization": quantization_from_name(path) if quantization is _FROM_NAME else quantization,
        "shape": dict(TINY_SHAPE), "min_device_ram_gb": 1}
    if entry["quantization"] is None:
        del entry["quantization"]
    entry.update(changes)
    if entry["job"] == "vision" and "features" not in changes:
        entry["features"] = ["vision"]
    return entry


def write_catalog(path: Path, entries: list[dict[str, Any]], version: Any = 1) -> Path:
    path.write_text(json.dumps({"version": version, "models": entries}))
    return path
