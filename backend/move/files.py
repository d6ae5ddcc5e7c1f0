"""What a move is made of, as both devices see it: the files of the manifest, the Range arithmetic
of serving them, and the checksums of model files.

The manifest crosses the network, so the new device reads it as untrusted input: every field is
checked before a path is built from a name or a size is believed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..core.jobs import Job
from ..models.names import UnsafeName, safe_relative_path

__all__ = ["MOVABLE_JOBS", "BadManifest", "MoveFile", "RangeNotSatisfiable", "file_sha256", "parse_range"]

MOVABLE_JOBS = (Job.CHAT, Job.VISION, Job.IMAGES)
"""Model jobs that move as files and are installed with the model import path on the new device."""
MAX_FILE_BYTES = 1 << 44
_ID = re.compile(r"[a-z0-9-]{1,40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MODEL_KEYS = {"id", "job", "name", "role", "format", "quantization", "license", "repo", "revision",
               "memory_override", "context_choice"}


class BadManifest(ValueError):
    """The old device's list of files cannot be used as it is."""


class RangeNotSatisfiable(ValueError):
    """A Range header that names no bytes of the file (answered 416)."""


@dataclass(kw_only=True, slots=True, frozen=True)
class MoveFile:
    id: str
    kind: Literal["archive", "model"]
    name: str
    size: int
    sha256: str
    model: dict[str, Any] | None = field(default=None, hash=False, compare=False)
    """For a model file: the model's id, job, name, `role` ('model' or 'projector') and what the
    registry keeps about it (format, quantization, licence, repo, revision, the owner's choices)."""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "name": self.name, "size": self.size, "sha256": self.sha256,
                "model": self.model}

    @classmethod
    def from_json(cls, data: Any) -> MoveFile:
        if not isinstance(data, dict):
            raise BadManifest("a file entry is not an object")
        file_id, kind, name = data.get("id"), data.get("kind"), data.get("name")
        size, sha256, model = data.get("size"), data.get("sha256"), data.get("model")
        if not isinstance(file_id, str) or not _ID.fullmatch(file_id):
            raise BadManifest(f"file id {file_id!r} is not valid")
        if kind not in ("archive", "model"):
            raise BadManifest(f"file kind {kind!r} is not known")
        if not isinstance(name, str) or "/" in name:
            raise BadManifest(f"file name {name!r} is not a plain file name")
        try:
            safe_relative_path(name)
        except UnsafeName as exc:
            raise BadManifest(str(exc)) from exc
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_FILE_BYTES:
            raise BadManifest(f"{name}: size {size!r} is not valid")
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise BadManifest(f"{name}: sha256 {sha256!r} is not valid")
        if kind == "model":
            model = _checked_model(name, model)
        elif model is not None:
            raise BadManifest(f"{name}: an archive has no model details")
        return cls(id=file_id, kind=kind, name=name, size=size, sha256=sha256, model=model)


def _checked_model(name: str, model: Any) -> dict[str, Any]:
    if not isinstance(model, dict) or not set(model) <= _MODEL_KEYS:
        raise BadManifest(f"{name}: the model details are not valid")
    if model.get("job") not in MOVABLE_JOBS or model.get("role") not in ("model", "projector"):
        raise BadManifest(f"{name}: a {model.get('job')!r} model cannot be moved")
    for key in ("id", "name"):
        if not isinstance(model.get(key), str) or not 0 < len(model[key]) <= 200:
            raise BadManifest(f"{name}: the model's {key} is not valid")
    for key in ("format", "quantization", "license", "repo", "revision"):
        if model.get(key) is not None and (not isinstance(model[key], str) or len(model[key]) > 200):
            raise BadManifest(f"{name}: the model's {key} is not valid")
    choice = model.get("context_choice")
    if choice is not None and (not isinstance(choice, int) or not 256 <= choice <= 131072):
        raise BadManifest(f"{name}: the model's context length is not valid")
    return dict(model)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte span a `Range` header asks for, None for the whole file. One range
    only (`bytes=a-b`, `bytes=a-`, `bytes=-n`): a move never asks for more, and anything else
    is refused rather than guessed at."""
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        raise RangeNotSatisfiable(f"only one byte range is served, not {header!r}")
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == "") \
            or (first == "" and last == ""):
        raise RangeNotSatisfiable(f"{header!r} is not a byte range")
    if first == "":  # the last n bytes
        n = int(last)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable("an empty suffix range")
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable(f"bytes {start}- are outside the file's {size} bytes")
    return start, end


def file_sha256(path: Path) -> str:
    """The sha256 of a whole file (blocking: call it in a thread)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
