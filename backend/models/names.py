"""Names that come from outside (hub listings, uploads, the command line), checked before
any path is built from them."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["UnsafeName", "model_id_from", "safe_relative_path", "safe_repo_id"]


class UnsafeName(ValueError):
    """A repository or file name that must not be used to build a path."""


_REPO_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_PATH_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9 ._+()\[\]-]{0,199}")
_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_repo_id(repo_id: str) -> str:
    """`owner/name` exactly, each part a plain hub name (no dots-only parts, no slashes)."""
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(_REPO_PART.fullmatch(p) and set(p) != {"."} and ".." not in p for p in parts):
        raise UnsafeName(f"'{repo_id}' is not a repository id of the form owner/name")
    return repo_id


def safe_relative_path(name: str) -> str:
    """A hub file name usable under a folder of ours: relative, forward slashes, no `..`,
    no drive letters, no control or look-alike characters. Returned unchanged when valid."""
    if not name or len(name) > 512:
        raise UnsafeName("a file name must have 1 to 512 characters")
    if unicodedata.normalize("NFC", name) != name or not name.isascii():
        raise UnsafeName(f"'{name}' has characters that are not plain ASCII")
    if "\\" in name:
        raise UnsafeName(f"'{name}' contains a backslash")
    if name.startswith("/") or _DRIVE.match(name):
        raise UnsafeName(f"'{name}' is an absolute path")
    parts = name.split("/")
    if len(parts) > 8:
        raise UnsafeName(f"'{name}' is nested too deeply")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafeName(f"'{name}' contains an empty, '.' or '..' part")
        if not _PATH_PART.fullmatch(part) or part.endswith((".", " ")):
            raise UnsafeName(f"'{name}' contains characters that are not allowed in a file name")
    return name


def model_id_from(text: str) -> str:
    """A short id for a model made from a file or repo name: lower case, `[a-z0-9._-]`."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.")
    return slug[:80].rstrip("-.") or "model"
