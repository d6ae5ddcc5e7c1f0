"""The old device's side of a move: a one-time code, the files it offers, and who is pulling.

The code is 8 digits, typed on the new device. It is valid for 15 minutes and works once: it
is exchanged for a session token that the new device sends with every request after it.
Guesses are held back per source address (`FailureLimiter`) and the offer ends after
`MAX_WRONG` wrong codes from anywhere, so 10^8 codes leave a guesser no real chance in its
15 minutes. Only one offer exists at a time.

Preparing the offer writes the backup archive (conversations, media, settings; never the
models) into `<data>/move-out/` and lists the model files with their sha256, computed once
and kept for later offers while the file is unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ..core.errors import AppError, ErrorCode
from ..models.registry import ModelRecord, ModelRegistry
from ..runtime.tasks import ServerTask, TaskSet, failures_to
from ..security.ratelimit import FailureLimiter
from .files import MOVABLE_JOBS, MoveFile, file_sha256

__all__ = ["ArchiveWriter", "MoveOffer", "MoveOffers", "OfferState", "ServedFile"]

log = logging.getLogger(__name__)

CODE_DIGITS = 8
OFFER_TTL_S = 15 * 60.0
SESSION_IDLE_S = 30 * 60.0
"""A session the new device has not used for this long ends (it resumes with a new offer)."""
MAX_WRONG = 20
ARCHIVE_NAME = "gridless-move.tar"

ArchiveWriter = Callable[[Path, Callable[[int, int], None]], Awaitable[None]]
"""Writes the backup archive (no models) to a path, reporting (bytes done, bytes in all)."""


class OfferState(StrEnum):
    PREPARING = "preparing"
    READY = "ready"
    PULLING = "pulling"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAILED = "failed"

    @property
    def open(self) -> bool:
        return self in (OfferState.PREPARING, OfferState.READY, OfferState.PULLING)


@dataclass(kw_only=True, slots=True)
class ServedFile:
    file: MoveFile
    path: Path
    served: int = 0
    """The furthest byte the new device has asked for and been sent (how far it got)."""


@dataclass(kw_only=True, slots=True)
class MoveOffer(ServerTask):
    id: str
    code: str
    expires_at: float
    """Until when the code can be used (clock seconds)."""
    state: OfferState = OfferState.PREPARING
    prepared: int = 0
    prepare_total: int = 0
    files: list[ServedFile] = field(default_factory=list)
    session: str | None = None
    last_seen: float = 0.0
    puller: str | None = None
    """The address the new device pulls from."""
    wrong: int = 0

    @property
    def shown_code(self) -> str:
        return f"{self.code[:4]} {self.code[4:]}"

    @property
    def total_bytes(self) -> int:
        return sum(f.file.size for f in self.files)

    @property
    def served_bytes(self) -> int:
        return sum(min(f.served, f.file.size) for f in self.files)

    def file(self, file_id: str) -> ServedFile | None:
        return next((f for f in self.files if f.file.id == file_id), None)

    def fail(self, code: ErrorCode, message: str) -> None:
        self.state = OfferState.FAILED
        self.error_code, self.error = code, message
        self.end()


class Withdrawn(Exception):
    """The offer ended while its archive was being written."""


def _normal_code(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


class MoveOffers:
    def __init__(self, out_dir: Path, registry: ModelRegistry, write_archive: ArchiveWriter | None, *,
                 limiter: FailureLimiter | None = None, clock: Callable[[], float] = time.monotonic,
                 ttl_s: float = OFFER_TTL_S, session_idle_s: float = SESSION_IDLE_S) -> None:
        self.out_dir = out_dir
        self.registry = registry
        self.write_archive = write_archive
        self.limiter = limiter or FailureLimiter(limit=5, window_s=60.0)
        self.clock = clock
        self.ttl_s = ttl_s
        self.session_idle_s = session_idle_s
        self.offer: MoveOffer | None = None
        self._hashes: dict[tuple[str, int, int], str] = {}
        self._tasks = TaskSet()
        self._preparing: asyncio.Task[None] | None = None

    # ----- the owner's side ------------------------------------------------------------

    def current(self) -> MoveOffer | None:
        """The offer, with its state brought up to date (an unused code expires; an unused
        session ends)."""
        offer = self.offer
        if offer is not None and offer.state.open:
            now = self.clock()
            if offer.session is None and now >= offer.expires_at:
                self._close(offer, OfferState.EXPIRED)
            elif offer.session is not None and now - offer.last_seen >= self.session_idle_s:
                self._close(offer, OfferState.EXPIRED)
        return offer

    async def create(self) -> MoveOffer:
        """A new offer (ending any other) whose files are prepared in the background."""
        await self.cancel()
        offer = MoveOffer(id=uuid.uuid4().hex[:12], code=f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}",
                          expires_at=self.clock() + self.ttl_s)
        self.offer = offer
        self._preparing = self._tasks.spawn(self._prepare(offer), name=f"move offer {offer.id}")
        return offer

    async def cancel(self) -> None:
        offer = self.offer
        if offer is not None and offer.state.open:
            self._close(offer, OfferState.CANCELLED)
        preparing, self._preparing = self._preparing, None
        if preparing is not None and not preparing.done():
            preparing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await preparing
        await asyncio.to_thread(shutil.rmtree, self.out_dir, True)

    async def stop(self) -> None:
        await self.cancel()
        await self._tasks.shutdown(cancel=True)

    def _close(self, offer: MoveOffer, state: OfferState) -> None:
        offer.state = state
        offer.session = None
        offer.end()

    async def _prepare(self, offer: MoveOffer) -> None:
        with failures_to(offer.fail, "preparing a move"):
            if self.write_archive is None:
                raise AppError(ErrorCode.INTERNAL, "Backups are not available in this build.")
            folder = self.out_dir / offer.id
            await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
            archive = folder / ARCHIVE_NAME

            def progress(done: int, total: int) -> None:  # on the writer's thread
                if not offer.state.open:
                    raise Withdrawn()  # stops the writer
                offer.prepared, offer.prepare_total = done, total
                offer.touch()

            try:
                await self.write_archive(archive, progress)
            except Withdrawn:
                return
            size = (await asyncio.to_thread(archive.stat)).st_size
            digest = await asyncio.to_thread(file_sha256, archive)
            files = [ServedFile(file=MoveFile(id="archive", kind="archive", name=ARCHIVE_NAME, size=size,
                                              sha256=digest), path=archive)]
            files += await self._model_files()
            if not offer.state.open:
                return
            offer.files = files
            offer.state = OfferState.PULLING if offer.session else OfferState.READY
            offer.touch()
            log.info("move offer ready: %d files, %d bytes", len(files), offer.total_bytes)

    async def _model_files(self) -> list[ServedFile]:
        served: list[ServedFile] = []
        for record in self.registry.all():
            if record.job not in MOVABLE_JOBS or not record.deletable:
                continue  # bundled models come with the app on the new device too
            parts = [(record.path, "model")] + ([(record.projector, "projector")] if record.projector else [])
            for path, role in parts:
                if not await asyncio.to_thread(path.is_file):
                    continue
                size = (await asyncio.to_thread(path.stat)).st_size
                digest = await self._sha256(record, path, role)
                served.append(ServedFile(path=path, file=MoveFile(
                    id=f"m{len(served) + 1}", kind="model", name=path.name, size=size, sha256=digest,
                    model=_model_details(record, role))))
        return served

    async def _sha256(self, record: ModelRecord, path: Path, role: str) -> str:
        """The registry's sha256 when it has one for this file (a hub download), else computed
        once and kept while the file's size and time stay the same."""
        known = record.sha256
        if role == "model" and known and len(known) == 64:
            return known.lower()
        stat = await asyncio.to_thread(path.stat)
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._hashes:
            self._hashes[key] = await asyncio.to_thread(file_sha256, path)
        return self._hashes[key]

    # ----- the new device's side --------------------------------------------------------

    def redeem(self, code: str, source: str) -> str:
        """Exchange the code for a session token: once, within its time, for a source not
        held back by too many wrong guesses."""
        wait = self.limiter.retry_after(source)
        if wait > 0:
            raise AppError(ErrorCode.TOO_MANY_ATTEMPTS, f"Too many wrong codes; try again in {int(wait) + 1} s.",
                           retry_after=wait)
        offer = self.current()
        typed = _normal_code(code)
        if offer is None or not offer.state.open or offer.session is not None:
            self.limiter.failed(source)
            if offer is not None and offer.state is OfferState.EXPIRED and hmac.compare_digest(typed, offer.code):
                raise AppError(ErrorCode.INVALID_CODE, "This move code has expired. Make a new one on the old device.")
            raise AppError(ErrorCode.INVALID_CODE, "That move code is not valid. On the old device, open Move to "
                                                   "a new device and type the code it shows.")
        if not hmac.compare_digest(typed, offer.code):
            self.limiter.failed(source)
            offer.wrong += 1
            if offer.wrong >= MAX_WRONG:
                self._close(offer, OfferState.CANCELLED)
                offer.error = "Too many wrong codes were typed, so this offer ended. Make a new one."
                offer.error_code = ErrorCode.TOO_MANY_ATTEMPTS
            raise AppError(ErrorCode.INVALID_CODE, "That move code is not right. Check it on the old device.")
        offer.session = secrets.token_urlsafe(32)
        offer.last_seen = self.clock()
        offer.puller = source
        if offer.state is OfferState.READY:
            offer.state = OfferState.PULLING
        offer.touch()
        return offer.session

    def authorize(self, authorization: str | None) -> MoveOffer:
        """The offer a request's `Authorization: Bearer <session>` belongs to."""
        token = (authorization or "")[7:].strip() if (authorization or "")[:7].lower() == "bearer " else ""
        offer = self.current()
        if not token or offer is None or offer.session is None \
                or not hmac.compare_digest(token.encode(), offer.session.encode()):
            raise AppError(ErrorCode.UNAUTHORIZED, "This move has ended on the old device. Make a new offer there "
                                                   "and type its code; what was already moved is kept.")
        offer.last_seen = self.clock()
        return offer

    def manifest(self, offer: MoveOffer) -> list[MoveFile]:
        if offer.state is OfferState.PREPARING:
            raise AppError(ErrorCode.BUSY, "The old device is still preparing the move.", retry_after=2)
        return [f.file for f in offer.files]

    def served(self, offer: MoveOffer, served: ServedFile, end: int) -> None:
        if end > served.served:
            served.served = end
            offer.touch()

    def finished(self, offer: MoveOffer) -> None:
        """The new device says it has everything."""
        offer.state = OfferState.FINISHED
        offer.session = None
        offer.end()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.out_dir / offer.id)


def _model_details(record: ModelRecord, role: str) -> dict[str, object]:
    return {"id": record.id, "job": str(record.job), "name": record.name, "role": role, "format": record.format,
            "quantization": record.quantization, "license": record.license, "repo": record.repo,
            "revision": record.revision, "memory_override": record.memory_override,
            "context_choice": record.context_choice}
