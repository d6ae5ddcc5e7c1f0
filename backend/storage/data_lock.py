"""One process at a time owns a data folder: the server while it runs, or a restore from the command line.

Two servers on one folder would each sweep the other's new media files as orphans, and a restore
that swaps the database under a running server would be undone by the server's next write. The
lock is an advisory `flock` on `<data dir>/gridless.lock`: the kernel releases it when the process
ends, however it ends, so a killed server never leaves a stale lock behind. The file holds the
owner's process id, for the message a second process shows.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

__all__ = ["LOCK_NAME", "DataFolderBusy", "DataLock"]

LOCK_NAME = "gridless.lock"


class DataFolderBusy(Exception):
    """Another process holds the data folder."""

    def __init__(self, folder: Path, pid: int | None) -> None:
        who = f"process {pid}" if pid else "another process"
        super().__init__(f"{folder} is in use by another gridless ({who}): a server, or a restore from the "
                         "command line. Stop it first.")
        self.folder = folder
        self.pid = pid


class DataLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> None:
        """Take the lock now or raise DataFolderBusy; taking it again while held does nothing."""
        if self._file is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            text = handle.read().strip()
            handle.close()
            raise DataFolderBusy(self.path.parent, int(text) if text.isdigit() else None) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the flock
            self._file = None
