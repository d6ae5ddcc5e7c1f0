"""The new device's side of a move: pull everything from the old device, check it, put it in place.

A pull is a server task (closing the page does not stop it). It exchanges the code for a
session, reads the old device's list of files, leaves out the models this device already has
(same sha256), and fetches the rest into `<data>/move-in/` with resume (`source.fetch_file`).
Then the backup archive is verified and applied (conversations, media and settings replace
this device's), and the models are installed through the model import path, so they appear on
the Models page. Partial files are named by their sha256 and kept when a pull fails or is
stopped: the next pull, even from a new offer, continues where this one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..core.errors import AppError, ErrorCode
from ..core.jobs import Job
from ..core.units import format_bytes
from ..models.manager import ModelManager
from ..runtime.tasks import ServerTask, TaskSet, failures_to
from .files import MoveFile, file_sha256
from .source import FetchPolicy, MoveSource, Retry, fetch_file, parse_address, wait_a_moment

__all__ = ["ArchiveApplier", "MovePull", "MovePulls", "PullFile", "PullState"]

log = logging.getLogger(__name__)

ArchiveApplier = Callable[[Path], Awaitable[None]]
"""Verifies a backup archive into a staging folder and applies it to the running server."""
SESSION_FILE = "session.json"
PREPARE_WAIT_S = 30 * 60.0
DISK_MARGIN = 64 * 1024 * 1024
ACTIVE_KEY = "active_model:"
"""The settings key of the model chosen for a job (the moved settings carry the old device's choice)."""


class PullState(StrEnum):
    CONNECTING = "connecting"
    PULLING = "pulling"
    APPLYING = "applying"
    INSTALLING = "installing"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(kw_only=True, slots=True)
class PullFile:
    file: MoveFile
    received: int = 0
    state: str = "waiting"
    """waiting, pulling, checked, skipped (this device has it), installed, failed"""


@dataclass(kw_only=True, slots=True)
class MovePull(ServerTask):
    origin: str
    state: PullState = PullState.CONNECTING
    files: list[PullFile] = field(default_factory=list)
    note: str = "Connecting to the old device…"
    speed: float = 0.0
    """Bytes a second, over the last few seconds."""
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def wanted(self) -> list[PullFile]:
        return [f for f in self.files if f.state != "skipped"]

    @property
    def total_bytes(self) -> int:
        return sum(f.file.size for f in self.wanted)

    @property
    def received_bytes(self) -> int:
        return sum(min(f.received, f.file.size) for f in self.wanted)

    def fail(self, code: ErrorCode, message: str) -> None:
        self.state = PullState.CANCELLED if code is ErrorCode.CANCELLED else PullState.FAILED
        self.error_code, self.error = code, message
        self.end()


class MovePulls:
    def __init__(self, in_dir: Path, models: ModelManager, apply_archive: ArchiveApplier | None, *,
                 policy: FetchPolicy | None = None, verify: Any = True) -> None:
        self.in_dir = in_dir
        self.models = models
        self.apply_archive = apply_archive
        self.policy = policy or FetchPolicy()
        self.verify = verify
        self.current: MovePull | None = None
        self._hashes: dict[tuple[str, int, int], str] = {}
        self._present: dict[str, str] = {}
        """sha256 → id of the model here that has a file with it (found before the pull)."""
        self._tasks = TaskSet()

    async def start(self, address: str, code: str) -> MovePull:
        origin = parse_address(address)
        if self.current is not None and not self.current.finished.is_set():
            raise AppError(ErrorCode.CONFLICT, "A move is already running on this device.")
        pull = MovePull(origin=origin)
        self.current = pull
        self._tasks.spawn(self._run(pull, code), name="move pull")
        return pull

    async def cancel(self) -> None:
        pull = self.current
        if pull is not None and not pull.finished.is_set():
            pull.stop.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pull.finished.wait(), 10)

    async def stop(self) -> None:
        if self.current is not None:
            self.current.stop.set()
        await self._tasks.shutdown(within_s=10)

    # ----- the task ----------------------------------------------------------------------

    async def _run(self, pull: MovePull, code: str) -> None:
        ticker = asyncio.create_task(self._tick(pull))
        source = MoveSource(pull.origin, self._saved_token(pull.origin), verify=self.verify)
        try:
            with failures_to(pull.fail, "moving from another device"):
                files = await asyncio.to_thread(self._connect, source, code, pull)
                pull.files = [PullFile(file=f) for f in files]
                await self._leave_out_present(pull)
                await asyncio.to_thread(self._check_space, pull)
                pull.state, pull.note = PullState.PULLING, "Moving…"
                pull.touch()
                paths: dict[str, Path] = {}
                for item in sorted(pull.wanted, key=lambda f: f.file.kind != "archive"):
                    paths[item.file.id] = await self._fetch(source, pull, item)
                await self._apply(pull, paths)
                await asyncio.to_thread(source.finished)
                await asyncio.to_thread(shutil.rmtree, self.in_dir, True)
                pull.state, pull.note = PullState.DONE, "Everything is on this device."
                pull.end()
        finally:
            ticker.cancel()
            await asyncio.to_thread(source.close)
            if not pull.finished.is_set():  # cancelled from outside (shutdown)
                pull.fail(ErrorCode.CANCELLED, "The move was stopped; start it again to continue.")

    async def _tick(self, pull: MovePull) -> None:
        """Redraw the page's progress and keep the speed (bytes a second) current."""
        last, then = pull.received_bytes, time.monotonic()
        while True:
            await asyncio.sleep(0.5)
            now, received = time.monotonic(), pull.received_bytes
            pull.speed = 0.5 * pull.speed + 0.5 * max(0.0, received - last) / max(now - then, 1e-3)
            last, then = received, now
            pull.touch()

    def _saved_token(self, origin: str) -> str | None:
        try:
            saved = json.loads((self.in_dir / SESSION_FILE).read_text())
        except (OSError, ValueError):
            return None
        return saved.get("token") if isinstance(saved, dict) and saved.get("origin") == origin else None

    def _connect(self, source: MoveSource, code: str, pull: MovePull) -> list[MoveFile]:
        """A session (the one saved by an earlier pull from the same device, else the code's) and
        the list of files, waiting while the old device is still preparing it."""
        deadline, failures = time.monotonic() + PREPARE_WAIT_S, 0
        while True:
            if source.token is None:
                source.open_session(code)
                self.in_dir.mkdir(parents=True, exist_ok=True)
                (self.in_dir / SESSION_FILE).write_text(json.dumps({"origin": source.origin, "token": source.token}))
            try:
                return source.manifest()
            except Retry as exc:
                failures = 0 if exc.wait else failures + 1
                if failures > len(self.policy.retry_delays) or time.monotonic() > deadline:
                    raise AppError(ErrorCode.DOWNLOAD_FAILED, str(exc)) from exc
                pull.note = str(exc) if exc.wait else "Waiting for the old device…"
                wait_a_moment(exc.wait or self.policy.retry_delays[failures - 1], pull.stop)
            except AppError as exc:
                if exc.status != 401 or not code:
                    raise
                source.token = None  # the saved session ended: use the code typed now

    async def _leave_out_present(self, pull: MovePull) -> None:
        """Models whose file this device already has (same sha256) are not fetched again."""
        wanted = {f.file.size for f in pull.files if f.file.kind == "model"}
        present = self._present = {}
        for record in self.models.installed():
            for path in record.files:
                if await asyncio.to_thread(_sized, path, wanted):
                    present[await self._sha256(path)] = record.id
        skipped_models = {str((f.file.model or {}).get("id")) for f in pull.files
                          if f.file.kind == "model" and (f.file.model or {}).get("role") == "model"
                          and f.file.sha256 in present}
        for item in pull.files:
            if item.file.kind == "model" and str((item.file.model or {}).get("id")) in skipped_models:
                item.state = "skipped"

    async def _sha256(self, path: Path) -> str:
        stat = await asyncio.to_thread(path.stat)
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = await asyncio.to_thread(file_sha256, path)
        return self._hashes[key]

    def _part(self, file: MoveFile) -> Path:
        return self.in_dir / f"{file.sha256}.part"

    def _final(self, file: MoveFile) -> Path:
        return self.in_dir / file.sha256 / file.name

    def _check_space(self, pull: MovePull) -> None:
        """Refuse before the first byte when the rest cannot fit (the archive is unpacked once more
        to be checked, so it counts twice)."""
        self.in_dir.mkdir(parents=True, exist_ok=True)
        needed = 0
        for item in pull.wanted:
            if self._final(item.file).is_file():
                continue
            part = self._part(item.file)
            needed += item.file.size - (part.stat().st_size if part.is_file() else 0)
            needed += item.file.size if item.file.kind == "archive" else 0
        free = shutil.disk_usage(self.in_dir).free
        if needed + DISK_MARGIN > free:
            raise AppError(ErrorCode.DISK_FULL, f"This device has {format_bytes(free)} free but the move needs "
                                                f"{format_bytes(needed + DISK_MARGIN)}. Free some space and try again.")

    async def _fetch(self, source: MoveSource, pull: MovePull, item: PullFile) -> Path:
        final = self._final(item.file)
        if await asyncio.to_thread(final.is_file):  # checked by an earlier pull
            item.received, item.state = item.file.size, "checked"
            return final
        item.state = "pulling"
        pull.touch()

        def progress(received: int) -> None:
            item.received = received

        await asyncio.to_thread(fetch_file, source, item.file, self._part(item.file), progress=progress,
                                stop=pull.stop, policy=self.policy)
        await asyncio.to_thread(final.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(self._part(item.file).replace, final)
        item.state = "checked"
        pull.touch()
        return final

    async def _apply(self, pull: MovePull, paths: dict[str, Path]) -> None:
        archive = next((f for f in pull.wanted if f.file.kind == "archive"), None)
        if archive is not None:
            if self.apply_archive is None:
                raise AppError(ErrorCode.INTERNAL, "Restoring backups is not available in this build.")
            pull.state, pull.note = PullState.APPLYING, "Putting the conversations in place…"
            pull.touch()
            await self.apply_archive(paths[archive.file.id])
            archive.state = "installed"
            await self._forget_old_rows(pull)
        pull.state, pull.note = PullState.INSTALLING, "Installing the models…"
        pull.touch()
        problems = []
        for item in pull.wanted:
            details = item.file.model or {}
            if item.file.kind != "model" or details.get("role") != "model":
                continue
            projector = next((f for f in pull.wanted if f.file.kind == "model" and f.file.model
                              and f.file.model.get("id") == details.get("id")
                              and f.file.model.get("role") == "projector"), None)
            try:
                await self._install(item, paths, projector)
            except AppError as exc:
                item.state = "failed"
                problems.append(f"{details.get('name')}: {exc.message}")
        if problems:
            raise AppError(ErrorCode.INVALID_MODEL_FILE, "The conversations arrived, but these models could not be "
                                                         "installed: " + "; ".join(problems))

    async def _forget_old_rows(self, pull: MovePull) -> None:
        """The restored database lists the old device's models where they were on the old device.
        Those rows go (never any file): the models are installed here from the files that came, or
        were already here."""
        folder = self.models.folder.resolve()
        for item in pull.files:
            details = item.file.model or {}
            record = self.models.get(str(details.get("id"))) if details.get("role") == "model" else None
            if record is None or record.source == "bundled":
                continue
            here = record.path.resolve().is_relative_to(folder) and all(p.exists() for p in record.files)
            if not here:
                await self.models.registry.remove(record.id)
            if item.state == "skipped":  # the old device's choice of it, given to the same file here
                await self._keep_choice(details, self._present.get(item.file.sha256))

    async def _keep_choice(self, details: dict[str, Any], model_id: str | None) -> None:
        job = Job(details["job"])
        if model_id is not None and model_id != details["id"] \
                and await self.models.registry.get_setting(ACTIVE_KEY + job) == details["id"]:
            await self.models.activate(job, model_id)

    async def _install(self, item: PullFile, paths: dict[str, Path], projector: PullFile | None) -> None:
        details = item.file.model or {}
        record = await self.models.import_file(
            paths[item.file.id], Job(details["job"]), name=str(details["name"]), move=True,
            projector=paths[projector.file.id] if projector is not None else None)
        if details.get("memory_override"):
            await self.models.set_memory_override(record.id, True)
        if details.get("context_choice"):
            await self.models.set_context(record.id, int(details["context_choice"]))
        await self._keep_choice(details, record.id)  # the old device's choice, under the id it has here
        for done in (item, projector):
            if done is not None:
                done.state = "installed"
        log.info("moved model %s in as %s", details.get("id"), record.id)


def _sized(path: Path, sizes: set[int]) -> bool:
    return path.is_file() and path.stat().st_size in sizes
