"""Cheap checks on a model file before any native loader sees it."""

from __future__ import annotations

from pathlib import Path

from ..runtime.child import EngineError
from ..runtime.protocol import ErrorCode

__all__ = ["GGUF_MAGIC", "check_gguf_file"]

GGUF_MAGIC = b"GGUF"


def check_gguf_file(path: Path) -> None:
    """Raise a clear EngineError unless `path` is a readable file that starts like a GGUF."""
    if not path.is_file():
        raise EngineError(ErrorCode.MODEL_LOAD_FAILED, f"model file not found: {path}")
    with path.open("rb") as fh:
        head = fh.read(8)
    if head[:4] != GGUF_MAGIC:
        raise EngineError(ErrorCode.MODEL_LOAD_FAILED,
                          f"{path.name} is not a GGUF model file (it does not start with 'GGUF')")
    if len(head) < 8:
        raise EngineError(ErrorCode.MODEL_LOAD_FAILED, f"{path.name} is truncated")
