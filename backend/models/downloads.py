"""Background downloads from the hub that survive reloads, restarts and lost networks.

Each download keeps its own partial files under `<models>/.partial/<id>/`, named by the
download and not by a random suffix, so after a restart it asks the server only for the
bytes it lacks (`transfer.py` fetches and checks one file). The queue here runs one
download at a time, retries what the network lost, pauses, resumes and cancels, and hands
the verified files to the model manager, which registers them only when their contents
are a model this app accepts.

State lives in the `downloads` table; progress is also kept in memory for the pages,
and written to the table about once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from huggingface_hub import constants as hf_constants
from huggingface_hub import hf_hub_url
from huggingface_hub.utils import disable_progress_bars

from ..core.errors import ErrorCode
from ..core.units import format_bytes
from ..storage.db import Database
from .hub import RemoteFile
from .names import safe_relative_path, safe_repo_id
from .transfer import CHUNK, DownloadError, DownloadFile, Retryable, TransferStopped, transfer

__all__ = ["DISK_MARGIN", "Download", "DownloadError", "DownloadFile", "DownloadManager", "DownloadState",
           "free_space_problem"]

log = logging.getLogger(__name__)

DISK_MARGIN = 64 * 1024 * 1024
"""Free space left over after a download, so the phone is not filled to the last byte."""
_RETRY_DELAYS = (2.0, 5.0, 15.0, 30.0)
STALLED_AFTER_S = 3.0


class DownloadState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        """Waiting its turn or receiving bytes."""
        return self in (DownloadState.QUEUED, DownloadState.RUNNING)

    @property
    def kept(self) -> bool:
        """Still holds partial files or a place in the queue (not done, not cancelled)."""
        return self not in (DownloadState.DONE, DownloadState.CANCELLED)


@dataclass(kw_only=True, slots=True)
class Download:
    id: str
    repo: str
    revision: str
    job: str
    name: str
    files: list[DownloadFile]
    state: DownloadState = DownloadState.QUEUED
    bytes_done: int = 0
    bytes_total: int = 0
    error: str | None = None
    model_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    speed: float = 0.0
    """Bytes per second, smoothed; 0 when not running."""
    fetched: int = 0
    """Bytes received from the network in this process (not counting what was on disk)."""
    last_byte_at: float = 0.0
    """`time.monotonic()` when bytes last arrived."""

    @property
    def stalled(self) -> bool:
        """Running, but nothing has arrived for a few seconds (the network is gone, or slow to answer)."""
        return self.state == DownloadState.RUNNING and time.monotonic() - self.last_byte_at > STALLED_AFTER_S

    @property
    def eta_s(self) -> float | None:
        if self.state != DownloadState.RUNNING or self.speed <= 0 or self.stalled:
            return None
        return max(0.0, (self.bytes_total - self.bytes_done) / self.speed)

    @property
    def fraction(self) -> float:
        return self.bytes_done / self.bytes_total if self.bytes_total else 0.0


class DownloadManager:
    """Runs one download at a time in a thread; others wait in order."""

    def __init__(self, db: Database, models_folder: Path, *, endpoint: str | None = None,
                 token: str | None = None,
                 install: Callable[[Download, Path], Awaitable[str]] | None = None) -> None:
        self.db = db
        self.folder = models_folder
        self.partial_root = models_folder / ".partial"
        self.endpoint = endpoint
        self.token = token
        self.install = install
        """Called with the download and the folder of its verified files; registers the model
        and returns its id. Raising there fails the download with the exception's message."""
        self._downloads: dict[str, Download] = {}
        self._stops: dict[str, threading.Event] = {}
        self._stop_signals: dict[str, asyncio.Event] = {}
        self._saving: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._lock_file: Any = None
        self._closing = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[Download], None]] = []
        disable_progress_bars()
        # Progress and pause answer within one chunk; the library's default chunk is 10 MB.
        hf_constants.DOWNLOAD_CHUNK_SIZE = CHUNK

    # ----- state -------------------------------------------------------------------------

    async def load(self) -> None:
        rows = await self.db.fetch_all("SELECT * FROM downloads ORDER BY created_at")
        self._downloads = {}  # loaded again after a restore: the table is the truth
        for row in rows:
            files = [DownloadFile(**f) for f in json.loads(row["files"])]
            dl = Download(id=row["id"], repo=row["repo"], revision=row["revision"], job=row["job"], name=row["name"],
                          files=files, state=DownloadState(row["state"]), bytes_done=row["bytes_done"],
                          bytes_total=row["bytes_total"], error=row["error"], model_id=row["model_id"],
                          options=json.loads(row["options"]), created_at=row["created_at"],
                          updated_at=row["updated_at"])
            if dl.state == DownloadState.RUNNING:  # the server stopped while it ran: carry on from the partial files
                dl.state = DownloadState.QUEUED
            self._downloads[dl.id] = dl

    def clean_leftovers(self) -> list[Path]:
        """Partial folders no download owns (header probes, uploads and imports cut short)."""
        if not self.partial_root.is_dir():
            return []
        owned = {d.id for d in self._downloads.values() if d.state.kept}
        gone = [p for p in self.partial_root.iterdir() if p.is_dir() and p.name not in owned]
        for path in gone:
            shutil.rmtree(path, ignore_errors=True)
        return gone

    def start(self) -> bool:
        """Run downloads in this process, unless another process (the server, or the command
        line) already does: both writing the same partial files would corrupt them."""
        self.partial_root.mkdir(parents=True, exist_ok=True)
        lock = (self.partial_root / ".lock").open("a+")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            log.warning("another gridless process is running the downloads in %s", self.folder)
            return False
        self._lock_file = lock
        self._closing = False  # started again after `stop` (a restore)
        self._wake.clear()
        self._task = asyncio.get_running_loop().create_task(self._runner(), name="downloads")
        return True

    def require_runner(self) -> None:
        """Refuse to start or change downloads that another process runs."""
        if self._task is None:
            raise DownloadError("another gridless process (the server or the command line) is running the "
                                "downloads for this models folder; use that one")

    async def stop(self) -> None:
        """Stop transferring; a running download stays 'running' in the table and goes on
        at the next start. The lock is given up only once the transfer thread has let go of
        its files (it stops at its next chunk, or when the library gives up on a dead
        connection)."""
        self._closing = True
        for download_id in list(self._stops):
            self._signal_stop(download_id)
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 120)
            except TimeoutError:
                log.warning("a download did not stop in time; its files stay locked until exit")
                return
            except Exception:
                log.exception("the download runner failed")
            self._task = None
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock
            self._lock_file = None

    def all(self) -> list[Download]:
        return sorted(self._downloads.values(), key=lambda d: d.created_at, reverse=True)

    def get(self, download_id: str) -> Download | None:
        return self._downloads.get(download_id)

    def active_for(self, repo: str, path: str) -> Download | None:
        return next((d for d in self._downloads.values() if d.repo == repo and d.state.kept
                     and any(f.path == path for f in d.files)), None)

    def subscribe(self, listener: Callable[[Download], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def partial_bytes(self) -> int:
        if not self.partial_root.is_dir():
            return 0
        return sum(p.stat().st_size for p in self.partial_root.rglob("*") if p.is_file())

    async def _save(self, dl: Download) -> None:
        dl.updated_at = time.time()
        await self.db.execute(
            "INSERT INTO downloads (id, repo, revision, job, name, files, state, bytes_done, bytes_total, error,"
            " model_id, options, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET files = excluded.files, state = excluded.state,"
            " bytes_done = excluded.bytes_done, error = excluded.error, model_id = excluded.model_id,"
            " updated_at = excluded.updated_at",
            (dl.id, dl.repo, dl.revision, dl.job, dl.name, json.dumps([asdict(f) for f in dl.files]), dl.state,
             dl.bytes_done, dl.bytes_total, dl.error, dl.model_id, json.dumps(dl.options), dl.created_at,
             dl.updated_at))
        self._notify(dl)

    def _notify(self, dl: Download) -> None:
        for listener in list(self._listeners):
            try:
                listener(dl)
            except Exception:
                log.exception("download listener failed")

    # ----- commands ----------------------------------------------------------------------

    async def add(self, *, repo: str, job: str, name: str, files: list[tuple[RemoteFile, str]],
                  options: dict[str, Any] | None = None, starts: dict[str, Path] | None = None) -> Download:
        """Queue a download of `files` (each with its role) whose metadata came from the hub.

        `starts` maps a file to a local copy of its first bytes (read to check its header);
        the download carries on from there instead of fetching them again."""
        self.require_runner()
        repo = safe_repo_id(repo)
        revisions = {f.revision for f, _ in files}
        if len(revisions) != 1 or None in revisions:
            raise DownloadError("the hub did not give one commit for all files")
        entries = []
        for remote, role in files:
            safe_relative_path(remote.path)
            if remote.sha256 is None and remote.git_sha1 is None:
                raise DownloadError(f"the hub gave no checksum for {remote.path}; it cannot be verified")
            entries.append(DownloadFile(path=remote.path, size=remote.size, role=role, sha256=remote.sha256,
                                        git_sha1=remote.git_sha1 if remote.sha256 is None else None))
        total = sum(f.size for f in entries)
        self.check_disk(total)
        dl = Download(id=uuid.uuid4().hex[:12], repo=repo, revision=str(revisions.pop()), job=job, name=name,
                      files=entries, bytes_total=total, options=options or {})
        self._downloads[dl.id] = dl
        await self._save(dl)  # first the row, so no partial file exists that nothing knows of
        for index, f in enumerate(entries):
            start = (starts or {}).get(f.path)
            if start is not None and start.exists():
                part = self._part(dl, index)
                part.parent.mkdir(parents=True, exist_ok=True)
                os.replace(start, part)
                dl.bytes_done += min(part.stat().st_size, f.size)
        self._wake.set()
        return dl

    def check_disk(self, needed: int, already: int = 0) -> None:
        problem = free_space_problem(self.folder, needed - already)
        if problem is not None:
            raise DownloadError(problem)

    async def pause(self, download_id: str) -> Download:
        dl = self._require(download_id)
        self.require_runner()
        if dl.state.active:
            self._signal_stop(download_id)
            dl.state, dl.speed = DownloadState.PAUSED, 0.0
            await self._save(dl)
        return dl

    async def resume(self, download_id: str) -> Download:
        dl = self._require(download_id)
        self.require_runner()
        if dl.state in (DownloadState.PAUSED, DownloadState.FAILED):
            self.check_disk(dl.bytes_total, self._bytes_on_disk(dl))
            dl.state, dl.error = DownloadState.QUEUED, None
            await self._save(dl)
            self._wake.set()
        return dl

    async def cancel(self, download_id: str) -> Download:
        dl = self._require(download_id)
        self.require_runner()
        if dl.state != DownloadState.DONE:
            running = download_id in self._stops
            self._signal_stop(download_id)
            dl.state, dl.speed = DownloadState.CANCELLED, 0.0
            await self._save(dl)
            if not running:  # nothing else will clean up
                await asyncio.to_thread(shutil.rmtree, self._partial_dir(dl), True)
        return dl

    async def forget(self, download_id: str) -> None:
        """Remove a finished, failed or cancelled download from the list."""
        dl = self._require(download_id)
        self.require_runner()
        if dl.state.active or dl.state == DownloadState.PAUSED:
            raise DownloadError("cancel the download first")
        self._downloads.pop(download_id, None)
        await self.db.execute("DELETE FROM downloads WHERE id = ?", (download_id,))
        await asyncio.to_thread(shutil.rmtree, self._partial_dir(dl), True)

    def _stop_signal(self, download_id: str) -> asyncio.Event:
        return self._stop_signals.setdefault(download_id, asyncio.Event())

    def _signal_stop(self, download_id: str) -> None:
        if download_id in self._stops:
            self._stops[download_id].set()
        self._stop_signal(download_id).set()

    def _require(self, download_id: str) -> Download:
        dl = self._downloads.get(download_id)
        if dl is None:
            raise DownloadError("that download no longer exists", ErrorCode.NOT_FOUND)
        return dl

    # ----- running -----------------------------------------------------------------------

    def _partial_dir(self, dl: Download) -> Path:
        return self.partial_root / dl.id

    def _part(self, dl: Download, index: int) -> Path:
        return self._partial_dir(dl) / f"{index}.part"

    def _staged(self, dl: Download, f: DownloadFile) -> Path:
        return self._partial_dir(dl) / "verified" / f.path

    def _bytes_on_disk(self, dl: Download) -> int:
        total = 0
        for i, f in enumerate(dl.files):
            if f.done:
                total += f.size
            elif (part := self._part(dl, i)).exists():
                total += min(part.stat().st_size, f.size)
        return total

    async def _runner(self) -> None:
        while not self._closing:
            queued = [d for d in self._downloads.values() if d.state == DownloadState.QUEUED]
            if not queued:
                self._wake.clear()
                await self._wake.wait()
                continue
            dl = min(queued, key=lambda d: d.created_at)
            try:
                await self._run(dl)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._closing:
                    return
                log.exception("download %s failed", dl.id)
                dl.state, dl.error, dl.speed = DownloadState.FAILED, f"unexpected error: {exc}", 0.0
                await self._save(dl)

    async def _run(self, dl: Download) -> None:
        stop = threading.Event()
        dl.last_byte_at = time.monotonic()
        self._stops[dl.id] = stop
        self._stop_signals[dl.id] = asyncio.Event()
        self._idle.clear()
        dl.state, dl.error, dl.fetched = DownloadState.RUNNING, None, 0
        dl.bytes_done = self._bytes_on_disk(dl)
        await self._save(dl)
        attempt = 0
        try:
            for index, f in enumerate(dl.files):
                while not f.done:
                    try:
                        await self._fetch(dl, index, f, stop)
                        attempt = 0
                    except TransferStopped:
                        return
                    except Retryable as exc:
                        if attempt >= len(_RETRY_DELAYS):
                            dl.state, dl.speed = DownloadState.FAILED, 0.0
                            dl.error = (f"{exc} — {format_bytes(dl.bytes_done)} of {format_bytes(dl.bytes_total)} "
                                        "are kept; Resume continues from there")
                            return
                        log.warning("download %s: %s; retrying in %.0f s", dl.id, exc, _RETRY_DELAYS[attempt])
                        dl.speed = 0.0
                        dl.error = f"{exc}; retrying…"
                        self._notify(dl)
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._stop_signal(dl.id).wait(), _RETRY_DELAYS[attempt])
                        if stop.is_set():
                            return
                        attempt += 1
                    except DownloadError as exc:
                        dl.state, dl.error, dl.speed = DownloadState.FAILED, str(exc), 0.0
                        return
                    await self._save(dl)
            await self._finish(dl)
        finally:
            if dl.state == DownloadState.CANCELLED:
                await asyncio.to_thread(shutil.rmtree, self._partial_dir(dl), True)
            await self._save(dl)  # before anyone waiting for idle may close the database
            self._stops.pop(dl.id, None)
            self._stop_signals.pop(dl.id, None)
            if not self._stops:
                self._idle.set()

    async def _fetch(self, dl: Download, index: int, f: DownloadFile, stop: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        base = sum(x.size for x in dl.files[:index])
        window: list[tuple[float, int]] = [(time.monotonic(), 0)]
        last_save = [time.monotonic()]

        def progress(position: int, received: int) -> None:  # on the loop
            dl.bytes_done = base + position
            dl.fetched += received
            now = time.monotonic()
            if received:
                dl.last_byte_at = now
            window.append((now, dl.fetched))
            while len(window) > 2 and now - window[0][0] > 3.0:
                window.pop(0)
            span = now - window[0][0]
            if span > 0.2:
                dl.speed = (dl.fetched - window[0][1]) / span
            self._notify(dl)
            if now - last_save[0] >= 1.0 and dl.state == DownloadState.RUNNING:
                last_save[0] = now
                task = loop.create_task(self._save(dl))
                self._saving.add(task)
                task.add_done_callback(self._saving.discard)

        def on_progress(position: int, received: int) -> None:  # in the transfer's thread
            loop.call_soon_threadsafe(progress, position, received)

        url = hf_hub_url(dl.repo, f.path, revision=dl.revision, endpoint=self.endpoint)
        try:
            await asyncio.to_thread(transfer, url, f, self._part(dl, index), self._staged(dl, f), token=self.token,
                                    stop=stop, on_progress=on_progress)
        except DownloadError:
            dl.bytes_done = self._bytes_on_disk(dl)
            raise
        f.done = True
        dl.bytes_done = base + f.size

    async def _finish(self, dl: Download) -> None:
        if self.install is None:
            raise DownloadError("nothing can install downloaded models")
        staging = self._partial_dir(dl) / "verified"
        try:
            dl.model_id = await self.install(dl, staging)
        except Exception as exc:  # the files are not a usable model: say why, keep nothing
            dl.state, dl.error, dl.speed = DownloadState.FAILED, str(exc), 0.0
            for f in dl.files:
                f.done = False
            dl.bytes_done = 0
            await asyncio.to_thread(shutil.rmtree, self._partial_dir(dl), True)
            return
        dl.state, dl.speed, dl.bytes_done = DownloadState.DONE, 0.0, dl.bytes_total
        await asyncio.to_thread(shutil.rmtree, self._partial_dir(dl), True)


def free_space_problem(folder: Path, needed: int) -> str | None:
    """Why `needed` more bytes do not fit in `folder` (leaving DISK_MARGIN free), or None."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed + DISK_MARGIN <= free:
        return None
    return (f"not enough free space: {format_bytes(needed)} are needed but only {format_bytes(free)} "
            f"is free in {folder}")
