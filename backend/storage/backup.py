"""Backup and restore of everything a person keeps in gridless: the database, the media folder and,
if asked, the model files. The layout of an archive is in `backup_format.py`.

- `write_backup` writes one uncompressed tar into any stream (a file, a pipe, an HTTP response).
  The database is copied with SQLite's backup API on its own connection, in one step: in WAL mode
  that step reads one consistent snapshot while the app goes on writing (an answer streaming), so
  the copy is never half of one transaction. Each file is read once; its sha256 is computed on a
  second thread while the bytes go out (`tar_writer.py`).
- `check_and_stage` (`backup_check.py`) reads an archive into a staging folder beside the data,
  checking everything, before anything live changes.
- `apply_staged` and `recover_interrupted_restore` (`backup_swap.py`) swap the staged data in,
  all or nothing, even across a kill.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from .. import __version__
from ..core.config import Settings
from ..core.errors import AppError, ErrorCode
from .backup_check import StagedRestore, check_and_stage
from .backup_format import DB_NAME, MANIFEST_NAME, MEDIA_DIR, MODELS_DIR, Manifest, MemberFile, ModelPaths, member_kind
from .backup_swap import apply_staged, recover_interrupted_restore
from .sqlite import connect, sqlite
from .tar_writer import TarWriter

__all__ = ["BackupCancelled", "BackupSummary", "Progress", "StagedRestore", "apply_staged", "check_and_stage",
           "recover_interrupted_restore", "snapshot_database", "write_backup"]

log = logging.getLogger(__name__)

EXTERNAL_MODELS = "from-elsewhere"
Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes in all) as the archive is written; raising in it stops the backup."""


class BackupCancelled(Exception):
    """Raised by a progress callback or an output stream to stop a backup midway."""


@dataclass(kw_only=True, slots=True, frozen=True)
class BackupSummary:
    files: int
    bytes: int
    """The members' bytes (the archive adds 512-byte headers and padding)."""
    models: int
    created_at: str


def write_backup(out: BinaryIO, settings: Settings, *, include_models: bool = False,
                 progress: Progress | None = None) -> BackupSummary:
    """Write the whole backup to `out` (left open). Raises AppError when there is nothing to back
    up, and whatever `out` or `progress` raise; `out` then holds a cut-off archive that a restore
    refuses as incomplete.

    The media files that exist when it starts are written while SQLite copies the database on
    another thread (on 500 MB, copying first and writing after took twice the time of the sqlite3
    shell's `.backup` and `tar cf`); the database follows, then media files that appeared meanwhile,
    so every file the copied database names is in the archive (unless deleted since)."""
    if not settings.db_path.is_file():
        raise AppError(ErrorCode.NOT_FOUND, f"There is no gridless data in {settings.data_dir} to back up.")
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    snapshot = settings.data_dir / f".backup-{secrets.token_hex(6)}.db"
    media = dict(_media_members(settings.media_dir))
    model_files, models = _model_members(settings.db_path, settings.model_folder) if include_models else ([], [])
    manifest = Manifest(app_version=__version__, created_at=created_at, user_version=0, models=models)
    archive = _Archive(out, manifest, progress)
    archive.expect([settings.db_path, *media.values(), *(p for _, p in model_files)])
    try:
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="backup-db") as copier:
            copied = copier.submit(snapshot_database, settings.db_path, snapshot)
            archive.add_files(media.items())
            manifest.user_version = copied.result()
        archive.expect([snapshot], instead_of=[settings.db_path])
        archive.add_files([(DB_NAME, snapshot)])
        archive.add_files((name, path) for name, path in _media_members(settings.media_dir) if name not in media)
        archive.add_files(model_files)
        archive.finish()
    finally:
        archive.close()
        snapshot.unlink(missing_ok=True)
    return BackupSummary(files=len(manifest.files), bytes=sum(f.size for f in manifest.files),
                         models=len(models), created_at=created_at)


def snapshot_database(source: Path, target: Path) -> int:
    """Copy the database at `source` into a new file `target` with SQLite's backup API; returns its
    schema version. The copy is one step (`pages=-1`): a step-by-step copy restarts whenever another
    connection writes, which an answer streaming does twice a second, while one step reads a single
    WAL snapshot and never blocks the app's writers."""
    with open(source, "rb") as fh:
        if not fh.read(16).startswith(b"SQLite format 3\0"):
            raise AppError(ErrorCode.INTERNAL, f"{source} is not a SQLite database; nothing was backed up.")
    src = connect(source, timeout=30)
    try:
        dst = connect(target)
        try:
            src.backup(dst, pages=-1)
            return int(dst.execute("PRAGMA user_version").fetchone()[0])
        finally:
            dst.close()
    except sqlite.Error as exc:
        raise AppError(ErrorCode.INTERNAL, f"The database could not be copied: {exc}.") from None
    finally:
        src.close()


def _media_members(media_dir: Path) -> Iterator[tuple[str, Path]]:
    """Every finished media file (not the hidden ones being written), in a stable order."""
    if not media_dir.is_dir():
        return
    for folder, dirs, files in os.walk(media_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            if name.startswith(".") or path.is_symlink() or not path.is_file():
                continue
            member = f"{MEDIA_DIR}/{path.relative_to(media_dir).as_posix()}"
            if _usable(member, "media"):
                yield member, path


def _model_members(database: Path, model_folder: Path) -> tuple[list[tuple[str, Path]], list[ModelPaths]]:
    """The files of every installed model but the bundled ones (they come with the app), named by
    their place in the models folder, and for each model where its files were."""
    conn = connect(database, timeout=30)
    try:
        rows = conn.execute("SELECT id, path, projector, folder, info FROM models WHERE source != 'bundled'"
                            " ORDER BY added_at").fetchall()
    except sqlite.Error as exc:  # a database from before models were kept
        log.warning("no models to back up: %s", exc)
        rows = []
    finally:
        conn.close()
    members: dict[str, Path] = {}
    models: list[ModelPaths] = []
    root = model_folder.resolve()
    for model_id, path, projector, folder, info in rows:
        companions = json.loads(info or "{}").get("companions", [])
        paths: dict[str, str] = {}
        for original in [p for p in (path, projector, folder, *companions) if isinstance(p, str) and p]:
            found = _files_of(Path(original), root, model_id)
            if not found:
                continue
            paths[original] = _base_name(Path(original), root, model_id)
            for name, p in found:
                members.setdefault(name, p)
        if paths:
            models.append(ModelPaths(id=model_id, paths=paths))
    return list(members.items()), models


def _base_name(source: Path, root: Path, model_id: str) -> str:
    """A model file's (or folder's) member name: its place in the models folder, or for one kept
    elsewhere a place of its own under `from-elsewhere/<model id>/`."""
    resolved = source.resolve()
    if resolved.is_relative_to(root):
        return f"{MODELS_DIR}/{resolved.relative_to(root).as_posix()}"
    return f"{MODELS_DIR}/{EXTERNAL_MODELS}/{model_id}/{source.name}"


def _files_of(source: Path, root: Path, model_id: str) -> list[tuple[str, Path]]:
    base = _base_name(source, root, model_id)
    if source.is_file():
        found = [(base, source)]
    elif source.is_dir():
        found = [(f"{base}/{p.relative_to(source).as_posix()}", p) for p in sorted(source.rglob("*")) if p.is_file()]
    else:  # gone: the model manager forgets it at its next start
        found = []
    return [(name, p) for name, p in found if _usable(name, "model")]


def _usable(member: str, kind: str) -> bool:
    """Whether a restore will take `member` as a file of `kind`; a file it would refuse is left out
    (and logged) rather than making the whole backup unrestorable."""
    try:
        ok, why = member_kind(member) == kind, "it has no place in a backup"
    except ValueError as exc:
        ok, why = False, str(exc)
    if not ok:
        log.warning("left out of the backup: %r (%s)", member, why)
    return ok


class _Archive:
    """The members written so far, their manifest, and the progress reported."""

    def __init__(self, out: BinaryIO, manifest: Manifest, progress: Progress | None) -> None:
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="backup-sha256")
        self.tar = TarWriter(out, self.pool)
        self.manifest = manifest
        self.progress = progress
        self.done = 0
        self.total = 0

    def expect(self, paths: Sequence[Path], *, instead_of: Sequence[Path] = ()) -> None:
        """Count these files into the total (for the database, its copy instead of the estimate)."""
        self.total += sum(_size(p) for p in paths) - sum(_size(p) for p in instead_of)
        self.advance(0)

    def advance(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done, max(self.total, self.done))

    def add_files(self, members: Iterable[tuple[str, Path]]) -> None:
        for name, path in members:
            try:
                fh = path.open("rb")
            except FileNotFoundError:  # deleted since it was listed: its row went with it
                continue
            with fh:
                size, digest = self.tar.add_file(name, fh, self.advance)
            self.manifest.files.append(MemberFile(path=name, size=size, sha256=digest))

    def finish(self) -> None:
        self.tar.add_bytes(MANIFEST_NAME, self.manifest.to_json(), int(datetime.now(UTC).timestamp()))
        self.tar.close()

    def close(self) -> None:
        self.pool.shutdown()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
