"""Reading a backup into a staging folder beside the data, checking everything before anything
live changes.

The archive is read as a stream, once: from a file, or from an upload as it arrives
(`backup_read.py` refuses unsafe members at their headers). Files are written to
`<data>/.restore-staging/` (models to `<models folder>/.restore-staging/`, so they are later moved
into place within one file system), hashed as they are written, and compared at the end with the
manifest, which comes last. The staged database must pass the checks of `backup_schema.py`. Any
refusal removes the staging folders; nothing else is touched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..core.config import Settings
from ..core.errors import AppError, ErrorCode
from .backup_format import DB_NAME, JOURNAL_NAME, MAX_ARCHIVE_BYTES, MEDIA_DIR, MODELS_DIR, STAGING_DIR, Manifest
from .backup_read import ArchiveReader, Budget, refused, shown
from .backup_schema import check_database
from .media import sync_path

__all__ = ["StagedRestore", "check_and_stage", "unfinished_restore"]


def unfinished_restore() -> AppError:
    return AppError(ErrorCode.CONFLICT, "An earlier restore was cut off and is not finished; start gridless once "
                                        "(it finishes or undoes it), then restore again.")


@dataclass(kw_only=True, slots=True)
class StagedRestore:
    """A checked archive waiting in its staging folders; `apply_staged` puts it in place, `discard` drops it."""

    data_dir: Path
    staging: Path
    models_staging: Path
    manifest: Manifest
    model_members: list[str]
    """The model files staged, as paths inside the models folder."""
    counts: dict[str, int]
    """What it holds (conversations, messages, media files, models…), for the person to see."""
    lock: threading.Lock | None = field(default=None, repr=False)

    @property
    def database(self) -> Path:
        return self.staging / DB_NAME

    @property
    def media(self) -> Path:
        return self.staging / MEDIA_DIR

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        shutil.rmtree(self.models_staging, ignore_errors=True)
        self.release()

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


def check_and_stage(archive: Path | BinaryIO, settings: Settings, *, max_bytes: int = MAX_ARCHIVE_BYTES) \
        -> StagedRestore:
    """Read and check `archive` into the staging folders; AppError(BAD_REQUEST) with a sentence for
    anything refused (DISK_FULL if the disk fills up meanwhile, CONFLICT if another restore is being
    prepared). Whatever a stream raises (an upload cut off) is raised as it is, staging removed."""
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    if (data_dir / JOURNAL_NAME).exists():  # its staged files must stay until it is finished or undone
        raise unfinished_restore()
    lock = _lock_staging(data_dir)
    staging, models_staging = data_dir / STAGING_DIR, settings.model_folder / STAGING_DIR
    try:
        for folder in (staging, models_staging):  # left by a restore that was cut off
            shutil.rmtree(folder, ignore_errors=True)
        staging.mkdir()
        budget = Budget(data_dir, settings.model_folder, max_bytes)
        with _opened(archive) as source:
            manifest, staged = ArchiveReader(staging, models_staging, budget).read(source)
        _match(manifest, staged)
        counts = check_database(staging / DB_NAME)
        model_members = sorted(name.removeprefix(MODELS_DIR + "/") for name in staged
                               if name.startswith(MODELS_DIR + "/"))
        counts |= {"media_files": sum(name.startswith(MEDIA_DIR + "/") for name in staged),
                   "model_files": len(model_members), "models": len(manifest.models),
                   "bytes": sum(size for size, _ in staged.values())}
        for folder in (staging, models_staging):
            _sync_folders(folder)
        return StagedRestore(data_dir=data_dir, staging=staging, models_staging=models_staging, manifest=manifest,
                             model_members=model_members, counts=counts, lock=lock)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(models_staging, ignore_errors=True)
        lock.release()
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise AppError(ErrorCode.DISK_FULL, "The disk filled up while the backup was being read; nothing was "
                                                "changed.") from None
        raise


_staging_locks: dict[Path, threading.Lock] = {}
_staging_locks_guard = threading.Lock()


def _lock_staging(data_dir: Path) -> threading.Lock:
    """One restore at a time per data folder in this process (another process is kept out by the data
    folder's lock, which the server and a restore from the command line hold)."""
    with _staging_locks_guard:
        lock = _staging_locks.setdefault(data_dir.resolve(), threading.Lock())
    if not lock.acquire(blocking=False):
        raise AppError(ErrorCode.CONFLICT, "Another restore is under way; wait for it to finish.")
    return lock


@contextlib.contextmanager
def _opened(archive: Path | BinaryIO) -> Iterator[BinaryIO]:
    if isinstance(archive, Path):
        try:
            fh = archive.open("rb")
        except FileNotFoundError:
            raise AppError(ErrorCode.NOT_FOUND, f"There is no file {archive}.") from None
        with fh:
            yield fh
    else:
        yield archive


def _match(manifest: Manifest, staged: dict[str, tuple[int, str]]) -> None:
    """Every member is listed, with the size and sha256 it has, and every listed file is there."""
    listed = {f.path: f for f in manifest.files}
    if DB_NAME not in staged:
        raise refused("The backup has no database; it is not a gridless backup.")
    for name, (size, digest) in staged.items():
        entry = listed.get(name)
        if entry is None:
            raise refused(f"The backup holds {shown(name)}, which its list of contents does not name: it was "
                          "altered.")
        if entry.size != size:
            raise refused(f"The file {shown(name)} has {size:,} bytes where the backup's list says "
                          f"{entry.size:,}: the backup is damaged or was altered.")
        if entry.sha256 != digest:
            raise refused(f"The file {shown(name)} does not match its checksum: the backup is damaged or was altered.")
    missing = sorted(set(listed) - set(staged))
    if missing:
        raise refused(f"The file {shown(missing[0])} is in the backup's list of contents but not in the backup: it is "
                      "incomplete.")
    for model in manifest.models:
        for member in model.paths.values():
            if member not in staged and not any(name.startswith(member + "/") for name in staged):
                raise refused("The backup's list of models names files it does not hold: it is damaged.")


def _sync_folders(root: Path) -> None:
    """Make the staged files' names durable (each file was synced as it was written)."""
    if not root.is_dir():
        return
    for folder, _, _ in os.walk(root):
        sync_path(Path(folder))
