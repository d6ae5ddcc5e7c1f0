"""The backups the Backup page makes: written by a thread into `<data>/backups/`, with progress the page
follows, then downloaded by the browser.

Writing on the server first, rather than straight into the download, gives the page real progress
(bytes written of the total) and leaves a finished file that can be downloaded again if the
browser's download fails. Only the newest is kept: when a backup is finished the older ones are
removed, so backups never pile up on the device. One is written at a time, and none while a
restore is being put in place (`paused`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..core.config import Settings
from ..core.errors import AppError, ErrorCode
from .backup import BackupCancelled, write_backup

__all__ = ["BACKUPS_DIR", "BackupRun", "Backups", "backup_name"]

log = logging.getLogger(__name__)

BACKUPS_DIR = "backups"
_NAME = re.compile(r"gridless-backup-\d{8}-\d{4}(-\d{1,3})?\.tar")


def backup_name(when: datetime | None = None) -> str:
    """The file name a backup made now is given (local time, to the minute)."""
    return f"gridless-backup-{(when or datetime.now()).strftime('%Y%m%d-%H%M')}.tar"


@dataclass(kw_only=True, slots=True)
class BackupRun:
    """One backup being written, as a page follows it (its fields change on the writing thread)."""

    include_models: bool
    started_at: float = field(default_factory=time.time)
    done: int = 0
    total: int = 0
    finished: bool = False
    file: Path | None = None
    """The finished backup."""
    error: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


class Backups:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.folder = settings.data_dir / BACKUPS_DIR
        self.current: BackupRun | None = None
        self.paused = False
        """Set while a restore is put in place: no backup starts."""
        self.streams = 0
        """Backups being streamed straight to a client (`GET /api/backup`)."""
        self._thread: threading.Thread | None = None

    def busy(self) -> bool:
        return self.streams > 0 or (self.current is not None and not self.current.finished)

    def start(self, include_models: bool) -> BackupRun:
        """Start writing a backup into the folder, or return the one being written."""
        self._refuse_if_paused()
        if self.current is not None and not self.current.finished:
            return self.current
        run = self.current = BackupRun(include_models=include_models)
        self._thread = threading.Thread(target=self._write, args=(run,), name="backup", daemon=True)
        self._thread.start()
        return run

    @contextlib.contextmanager
    def streaming(self) -> Iterator[None]:
        """Around a backup written straight into a response."""
        self._refuse_if_paused()
        self.streams += 1
        try:
            yield
        finally:
            self.streams -= 1

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the backup being written (blocking: call from a thread) and wait for its thread."""
        if self.current is not None:
            self.current.stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def clean(self) -> None:
        """At start: remove what a backup cut off by a kill left behind (its part file, and its copy of
        the database once it is a day old: a backup from the command line may be running)."""
        for part in self.folder.glob(".gridless-backup-*.part") if self.folder.is_dir() else []:
            part.unlink(missing_ok=True)
        for copy in self.settings.data_dir.glob(".backup-*.db"):
            with contextlib.suppress(FileNotFoundError):
                if time.time() - copy.stat().st_mtime > 86400:
                    copy.unlink()

    def latest(self) -> Path | None:
        """The newest finished backup in the folder."""
        found = sorted((p for p in self.folder.glob("gridless-backup-*.tar") if _NAME.fullmatch(p.name)),
                       key=lambda p: p.stat().st_mtime) if self.folder.is_dir() else []
        return found[-1] if found else None

    def file(self, name: str) -> Path | None:
        """The finished backup called `name`, if there is one (names are checked, never joined blindly)."""
        path = self.folder / name
        return path if _NAME.fullmatch(name) and path.is_file() else None

    def _refuse_if_paused(self) -> None:
        if self.paused:
            raise AppError(ErrorCode.BUSY, "A backup is being restored; back up again in a moment.", retry_after=5)

    def _write(self, run: BackupRun) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = backup_name()
        n = 2
        while (self.folder / name).exists():
            name = f"{backup_name().removesuffix('.tar')}-{n}.tar"
            n += 1
        final = self.folder / name
        part = self.folder / f".{name}.part"

        def progress(done: int, total: int) -> None:
            if run.stop.is_set():
                raise BackupCancelled
            run.done, run.total = done, total

        try:
            with part.open("wb") as out:
                write_backup(out, self.settings, include_models=run.include_models, progress=progress)
                out.flush()
                os.fsync(out.fileno())
            os.replace(part, final)
            run.file = final
            for older in self.folder.glob("gridless-backup-*.tar"):
                if older != final and _NAME.fullmatch(older.name):
                    older.unlink(missing_ok=True)
        except BackupCancelled:
            run.error = "The backup was stopped."
        except AppError as exc:
            run.error = exc.message
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                log.exception("writing a backup failed")
            run.error = ("The device ran out of space while writing the backup; nothing was kept. Leave the models "
                         "out, or make some room." if exc.errno == errno.ENOSPC
                         else f"The backup could not be written: {exc}.")
        except Exception as exc:
            log.exception("writing a backup failed")
            run.error = f"The backup could not be written: {exc}."
        finally:
            part.unlink(missing_ok=True)
            run.finished = True
