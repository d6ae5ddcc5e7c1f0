"""What a gridless backup holds: the names of its members, its manifest, and the folders a restore uses.

A backup is one uncompressed tar whose members are, in this order: the database (`gridless.db`),
every media file (`media/<kind>/<name>`), optionally model files (`models/<path in the models
folder>`, or `models/from-elsewhere/<model id>/<name>` for a model kept outside it), and last the
manifest `gridless-backup.json`, which lists each member with its size and sha256. The manifest
comes last because the checksums are computed while the members are written, in one pass, into a
stream that cannot go back (a pipe, an HTTP response).

The writer and the reader share `member_kind`, so a backup never holds a name a restore refuses.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DB_NAME", "FORMAT_NAME", "FORMAT_VERSION", "JOURNAL_NAME", "MANIFEST_NAME", "MAX_ARCHIVE_BYTES",
           "MAX_MANIFEST_BYTES", "MAX_MEMBERS", "MEDIA_DIR", "MODELS_DIR", "OLD_DIR", "STAGING_DIR", "Manifest",
           "ManifestError", "MemberFile", "ModelPaths", "member_kind"]

FORMAT_NAME = "gridless-backup"
FORMAT_VERSION = 1
"""Raised when a change means an older gridless cannot read the archive; it refuses newer versions."""
MANIFEST_NAME = "gridless-backup.json"
DB_NAME = "gridless.db"
MEDIA_DIR = "media"
MODELS_DIR = "models"
STAGING_DIR = ".restore-staging"
"""Beside the data (and beside the models folder): a restore writes the archive's files here first."""
OLD_DIR = ".restore-old"
"""Where the data being replaced waits until the restored data is wholly in place."""
JOURNAL_NAME = ".restore-journal.json"
MAX_ARCHIVE_BYTES = 256 * 1024**3
"""A hard cap on what a restore writes, whatever the free space: 256 GiB."""
MAX_MEMBERS = 1_000_000
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
_MAX_NAME_BYTES = 4096
_MAX_PART_BYTES = 255
_SHA256 = re.compile(r"[0-9a-f]{64}")


def member_kind(name: str) -> str:
    """What a member is by its name: 'database', 'media', 'model', 'manifest', or 'other' for a safe
    name outside this format's layout (a newer format's, say). ValueError, with the reason, for a name
    that is unsafe anywhere: absolute, with `..` or empty parts, hidden parts, backslashes, control
    characters, or too long."""
    try:
        encoded = name.encode()
    except UnicodeEncodeError:
        raise ValueError("its name is not valid UTF-8") from None
    if not name or not name.isprintable() or "\\" in name or len(encoded) > _MAX_NAME_BYTES:
        raise ValueError("its name is empty, unreadable or too long")
    if name.startswith("/"):
        raise ValueError("it is an absolute path")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError("its path climbs out of its folder or has empty parts")
    if any(part.startswith(".") or len(part.encode()) > _MAX_PART_BYTES for part in parts):
        raise ValueError("its name is hidden or too long")
    if name == DB_NAME:
        return "database"
    if name == MANIFEST_NAME:
        return "manifest"
    if parts[0] == MEDIA_DIR and len(parts) > 1:
        return "media"
    if parts[0] == MODELS_DIR and len(parts) > 1:
        return "model"
    return "other"


class ManifestError(ValueError):
    pass


@dataclass(kw_only=True, slots=True, frozen=True)
class MemberFile:
    path: str
    size: int
    sha256: str


@dataclass(kw_only=True, slots=True, frozen=True)
class ModelPaths:
    """Where one model's files were on the device the backup was made on, and their members."""

    id: str
    paths: dict[str, str]
    """Each original absolute path (a file, or a model's folder) → its member name (or folder of members)."""


@dataclass(kw_only=True, slots=True)
class Manifest:
    format_version: int = FORMAT_VERSION
    app_version: str
    created_at: str
    user_version: int
    """The database's schema version when it was copied."""
    files: list[MemberFile] = field(default_factory=list)
    models: list[ModelPaths] = field(default_factory=list)

    def to_json(self) -> bytes:
        return json.dumps({
            "format": FORMAT_NAME, "format_version": self.format_version, "app_version": self.app_version,
            "created_at": self.created_at, "user_version": self.user_version,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
            "models": [{"id": m.id, "paths": m.paths} for m in self.models],
        }, indent=1).encode()

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        """Read a manifest; ManifestError says what is wrong. A newer format version is reported as
        such before anything else is looked at (its shape may have changed)."""
        try:
            raw = json.loads(data)
        except (UnicodeDecodeError, ValueError):
            raise ManifestError("its list of contents is not JSON") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
            raise ManifestError("its list of contents is not a gridless backup's")
        version = raw.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ManifestError("its format version is missing")
        if version > FORMAT_VERSION:
            raise ManifestError(f"it was made by a newer gridless (backup format {version}; this gridless reads "
                                f"format {FORMAT_VERSION} and older). Update gridless to restore it")
        try:
            files = [MemberFile(path=_text(f["path"]), size=_count(f["size"]), sha256=_digest(f["sha256"]))
                     for f in _items(raw.get("files"))]
            models = [ModelPaths(id=_text(m["id"]), paths={_text(k): _text(v) for k, v in _mapping(m["paths"])})
                      for m in _items(raw.get("models", []))]
            return cls(format_version=version, app_version=_text(raw.get("app_version")),
                       created_at=_text(raw.get("created_at")), user_version=_count(raw.get("user_version")),
                       files=files, models=models)
        except (KeyError, TypeError, ValueError):
            raise ManifestError("its list of contents is damaged") from None


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not text")
    return value


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("not a count")
    return value


def _digest(value: Any) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise ValueError("not a sha256")
    return value


def _items(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise TypeError("not a list of objects")
    return value


def _mapping(value: Any) -> list[tuple[Any, Any]]:
    if not isinstance(value, dict):
        raise TypeError("not an object")
    return list(value.items())
