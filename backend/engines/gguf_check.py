"""Checks on a model file before any native loader sees it."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import AppError, ErrorCode
from ..models.gguf_info import GgufError, GgufInfo, read_gguf_info

__all__ = ["check_gguf_file"]


def check_gguf_file(path: Path) -> GgufInfo:
    """The file's header, or a clear AppError if it is missing, not a GGUF, damaged or cut short."""
    if not path.is_file():
        raise AppError(ErrorCode.MODEL_LOAD_FAILED, f"model file not found: {path}")
    try:
        return read_gguf_info(path)
    except GgufError as exc:
        raise AppError(ErrorCode.MODEL_LOAD_FAILED, str(exc)) from None
