"""One file's transfer from the hub: the bytes it lacks, asked for with an HTTP Range request
through huggingface-hub's `http_get`, written to its own partial file and checked while they
arrive.

The checksum runs on a second thread (`FollowingHasher`) that reads back what the receiving
thread has written; its state is saved beside the partial file every 64 MB (once those bytes
are on storage), so a resume reads back at most that much. A file is moved to its staged
place only when its checksum matches the hub's LFS sha256 (or its git blob id for small files).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.file_download import http_get
from huggingface_hub.utils import build_hf_headers

from ..core.errors import AppError, ErrorCode
from .checksum import Sha256, drop_checkpoint, load_checkpoint, save_checkpoint

__all__ = ["CHUNK", "DownloadError", "DownloadFile", "Retryable", "TransferStopped", "transfer"]

log = logging.getLogger(__name__)

CHUNK = 512 * 1024
"""Bytes read from the network at a time: progress and pause answer within one chunk (the
library's default is 10 MB)."""
_SYNC_EVERY = 64 * 1024 * 1024


class DownloadError(AppError):
    """A download that cannot start or cannot go on; the message is for people."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.DOWNLOAD_FAILED) -> None:
        super().__init__(code, message)


class TransferStopped(Exception):
    """Raised inside the transfer thread when the download is paused or cancelled."""


class Retryable(Exception):
    """A transfer that may work if tried again (network, server restarts)."""


@dataclass(kw_only=True, slots=True)
class DownloadFile:
    path: str
    size: int
    role: str = "model"
    sha256: str | None = None
    git_sha1: str | None = None
    done: bool = False


def transfer(url: str, f: DownloadFile, part: Path, staged: Path, *, token: str | None, stop: threading.Event,
             on_progress: Callable[[int, int], None]) -> None:
    """Fetch what `part` lacks of `f` from `url` and move the verified file to `staged` (in the
    calling thread). `on_progress(position, received)` is called from this thread as bytes
    arrive. Raises TransferStopped when `stop` is set, Retryable for failures worth another
    try, DownloadError for the rest (a checksum mismatch deletes the partial file)."""
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if have > f.size:  # cannot be ours: start over
        part.unlink()
        have = 0
    saved = load_checkpoint(part, have) if f.sha256 is not None and have else None
    with part.open("r+b" if part.exists() else "w+b", buffering=0) as fh:
        fh.seek(have)
        hasher = FollowingHasher(part, lambda: _new_hasher(f), stop, have, start=saved)
        hasher.start()

        def on_bytes(n: int) -> None:
            on_progress(fh.tell(), max(n, 0))

        writer = PartWriter(fh, hasher, on_bytes, stop)
        try:
            try:
                http_get(url, writer, resume_size=have,  # type: ignore[arg-type]
                         headers=build_hf_headers(token=token), expected_size=f.size,
                         displayed_filename=f.path)
            except BaseException:
                hasher.abandon()
                raise
        except TransferStopped:
            raise
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status in (500, 502, 503, 504):
                raise Retryable(f"the server answered HTTP {status}") from None
            raise DownloadError(f"{f.path}: the hub answered HTTP {status}") from None
        except (httpx2.TransportError, ConnectionError, TimeoutError) as exc:
            log.info("transfer of %s: %r", f.path, exc)
            raise Retryable("the connection was lost") from None
        except OSError as exc:
            if "Consistency check failed" in str(exc):
                raise Retryable("the server sent a different number of bytes than announced") from None
            raise DownloadError(f"{f.path}: cannot write the file: {exc.strerror or exc}") from None
        os.fsync(fh.fileno())
        writer_hash = hasher.result()
    expected = f.sha256 or f.git_sha1 or ""
    if writer_hash != expected and hasher.resumed_from:
        # the saved state may not describe these bytes after all: check the whole file once
        log.warning("checksum from a saved state differs; reading %s again", f.path)
        full = _new_hasher(f)
        _hash_file(part, full, stop)
        writer_hash = full.hexdigest()
    drop_checkpoint(part)
    if writer_hash != expected:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{f.path} failed its checksum (expected {expected[:12]}…, got "
                            f"{writer_hash[:12]}…); the damaged file was deleted. Retry to download "
                            "it again.")
    staged.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, staged)


class FollowingHasher(threading.Thread):
    """Hashes a file while it is being written, on its own thread: it reads back (from the
    page cache) up to what the writer says is there. The receiving thread only receives and
    writes, and on a resume the bytes already on disk are hashed while the rest arrives.
    `hashlib` lets go of the GIL on large blocks, so this really runs beside the transfer."""

    def __init__(self, path: Path, make_hasher: Callable[[], Any], stop: threading.Event, available: int,
                 start: tuple[int, Any] | None = None) -> None:
        super().__init__(name="download-hash", daemon=True)
        self.path, self.make_hasher, self.stop = path, make_hasher, stop
        self.start_at = start
        """A saved (position, hasher) to go on from, instead of reading the file from its start."""
        self.resumed_from = start[0] if start else 0
        self.cond = threading.Condition()
        self.available = available
        self.generation = 0
        self.finished = False
        self.abandoned = False
        self.digest: str | None = None
        self.error: BaseException | None = None

    def advance(self, available: int) -> None:
        with self.cond:
            self.available = available
            self.cond.notify()

    def restart(self, available: int) -> None:
        """The file was cut back (a server that ignored Range): hash it again from the start."""
        with self.cond:
            self.generation += 1
            self.available = available
            self.cond.notify()

    def abandon(self) -> None:
        """The transfer failed: stop without a digest (the bytes on disk stay for a resume)."""
        with self.cond:
            self.abandoned = True
            self.cond.notify()
        self.join()

    def result(self) -> str:
        with self.cond:
            self.finished = True
            self.cond.notify()
        self.join()
        if self.error is not None:
            raise self.error
        if self.digest is None:
            raise TransferStopped
        return self.digest

    def run(self) -> None:
        try:
            self._hash()
        except BaseException as exc:  # handed to the caller of result()
            self.error = exc

    def _hash(self) -> None:
        with self.path.open("rb") as fh:
            hasher, position, generation, synced = self.make_hasher(), 0, 0, 0
            if self.start_at is not None:
                position, hasher = self.start_at
                synced = position
                fh.seek(position)
            while True:
                with self.cond:
                    while (position >= self.available and not self.finished and generation == self.generation
                           and not self.stop.is_set() and not self.abandoned):
                        self.cond.wait(0.25)
                    if self.abandoned:
                        return
                    if generation != self.generation:
                        hasher, position, generation, synced = self.make_hasher(), 0, self.generation, 0
                        self.resumed_from = 0
                        drop_checkpoint(self.path)
                        fh.seek(0)
                    target, finished = self.available, self.finished
                if self.stop.is_set():
                    return
                if finished and position >= target:
                    self.digest = hasher.hexdigest()
                    return
                while position < target:
                    block = fh.read(min(8 * CHUNK, target - position))
                    if not block:
                        break
                    hasher.update(block)
                    position += len(block)
                    if position - synced >= _SYNC_EVERY:
                        # written pages go to storage as we go, so the final fsync has little left;
                        # then the checksum state up to here is saved for a resume
                        os.fdatasync(fh.fileno())
                        synced = position
                        state = hasher.state() if isinstance(hasher, Sha256) else None
                        if state is not None:
                            save_checkpoint(self.path, position, state)


class PartWriter:
    """The file object `http_get` writes into: counts every byte, tells the hasher, and stops
    the transfer when asked. When the server ignores the Range request, `http_get` rewinds
    and truncates; the hasher then starts again."""

    def __init__(self, fh: Any, hasher: FollowingHasher, on_bytes: Callable[[int], None],
                 stop: threading.Event) -> None:
        self.fh, self.hasher, self.on_bytes, self.stop = fh, hasher, on_bytes, stop

    def write(self, data: bytes) -> int:
        if self.stop.is_set():
            raise TransferStopped
        view = memoryview(data)
        while view:  # an unbuffered file may take less than all of it
            view = view[self.fh.write(view):]
        self.hasher.advance(self.fh.tell())
        self.on_bytes(len(data))
        return len(data)

    def tell(self) -> int:
        return int(self.fh.tell())

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self.fh.seek(offset, whence))

    def truncate(self, size: int | None = None) -> int:
        end = int(self.fh.truncate(size))
        self.hasher.restart(end)
        self.on_bytes(0)
        return end

    def flush(self) -> None:
        pass


def _hash_file(path: Path, hasher: Any, stop: threading.Event) -> None:
    with path.open("rb") as fh:
        while block := fh.read(8 * CHUNK):
            if stop.is_set():
                raise TransferStopped
            hasher.update(block)


def _new_hasher(f: DownloadFile) -> Any:
    if f.sha256 is not None:
        return Sha256()
    hasher = hashlib.sha1()
    hasher.update(f"blob {f.size}\0".encode())
    return hasher
