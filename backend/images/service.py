"""Image generation as server tasks: queued in order, followed by pages, stored in the gallery.

A `Generation` runs as a server task (closing the page does not stop it) and keeps what a
page shows: its place in the queue, step k of n with the time per step, the latest preview,
and, when done, the stored images. The image model runs in its own worker process under the
residency manager as a heavy model: when memory is short the language model is unloaded
first (and the other way round), and the generation records what was unloaded so the page
can say so.

Cancel asks the worker to stop and, since stable-diffusion.cpp cannot stop a generation,
stops the worker process when it has not finished within `CANCEL_GRACE_S`; the worker never
writes files, so nothing is left half-written, and the next generation starts a fresh one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..core.config import Settings
from ..core.errors import AppError, ErrorCode
from ..core.jobs import Job
from ..core.thumbnails import jpeg_thumbnail
from ..engines.diffusion import GenerateRequest, GenerateResult, Preview, Progress
from ..models.registry import ModelRecord
from ..runtime.host import EngineJob
from ..runtime.protocol import JobDone, JobFailed
from ..runtime.tasks import ServerTask, TaskSet, failures_to
from ..storage.attachments import AttachmentStore
from ..storage.images import ImageRecord, ImageStore
from ..storage.media import MediaStore
from .engine import ImageEngines
from .params import ImageParams
from .png_text import png_text, with_text

__all__ = ["CANCEL_GRACE_S", "Generation", "GenerationState", "ImageService"]

log = logging.getLogger(__name__)

MEDIA_KIND = "images"
THUMB_SIDE = 384
CANCEL_GRACE_S = 1.0
KEEP_FINISHED = 20
"""Finished generations kept in memory for pages that come back to them."""


class GenerationState(StrEnum):
    QUEUED = "queued"
    LOADING = "loading"
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        return self in (GenerationState.DONE, GenerationState.ERROR, GenerationState.CANCELLED)


@dataclass(kw_only=True, slots=True)
class Generation(ServerTask):
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    params: ImageParams
    seed: int
    model: ModelRecord
    origin: str = "page"
    conversation_id: str | None = None
    state: GenerationState = GenerationState.QUEUED
    """queued → loading → running → done | error | cancelled"""
    position: int = 0
    step: int = 0
    steps: int = 0
    step_seconds: list[float] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    running_since: float | None = None
    finished_at: float | None = None
    preview: bytes | None = None
    images: list[ImageRecord] = field(default_factory=list)
    unloaded: list[str] = field(default_factory=list)
    """Models unloaded to make room for the image model (their names)."""
    cancel_requested: bool = False
    job: EngineJob = field(init=False)

    def __post_init__(self) -> None:
        self.job = EngineJob(id=self.id)

    @property
    def total_steps(self) -> int:
        return self.steps or self.params.steps * self.params.batch_count

    @property
    def elapsed(self) -> float:
        return (self.finished_at or time.time()) - (self.running_since or self.started_at)

    @property
    def remaining(self) -> float | None:
        """Seconds left, from the mean time of the steps done so far."""
        if not self.step_seconds:
            return None
        return max(0.0, (self.total_steps - self.step) * sum(self.step_seconds) / len(self.step_seconds))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "position": self.position, "step": self.step,
                "steps": self.total_steps, "elapsed_s": round(self.elapsed, 2),
                "remaining_s": None if self.remaining is None else round(self.remaining, 2),
                "seed": self.seed, "images": [i.to_json() for i in self.images], "error": self.error,
                "unloaded": self.unloaded}


class ImageService:
    def __init__(self, settings: Settings, host: ImageEngines, store: ImageStore, media: MediaStore,
                 attachments: AttachmentStore | None = None) -> None:
        self.settings = settings
        self.host = host
        self.store = store
        self.media = media
        self.attachments = attachments
        self.generations: dict[str, Generation] = {}
        self._tasks = TaskSet()

    @property
    def model(self) -> ModelRecord | None:
        return self.host.model

    def active(self) -> list[Generation]:
        return [g for g in self.generations.values() if not g.finished.is_set()]

    async def generate(self, params: ImageParams, *, origin: str = "page",
                       conversation_id: str | None = None) -> Generation:
        """Queue a generation and return at once; raises AppError for a model or source image that
        is not there."""
        model = self.host.resolve(params.model, from_picture=params.source_image is not None)
        if params.source_image is not None:
            await self._source_path(params.source_image)
        seed = params.seed if params.seed is not None else secrets.randbelow(2**31)
        generation = Generation(params=params, seed=seed, model=model, origin=origin,
                                conversation_id=conversation_id)
        self.generations[generation.id] = generation
        self._forget_old()
        self._tasks.spawn(self._run(generation), name=f"image-{generation.id}")
        return generation

    def _forget_old(self) -> None:
        finished = [g for g in self.generations.values() if g.finished.is_set()]
        for old in finished[:-KEEP_FINISHED]:
            self.generations.pop(old.id, None)

    async def _request(self, generation: Generation) -> GenerateRequest:
        p = generation.params
        init = None
        if p.source_image is not None:
            init = await asyncio.to_thread((await self._source_path(p.source_image)).read_bytes)
        return GenerateRequest(prompt=p.prompt, negative_prompt=p.negative_prompt, width=p.width, height=p.height,
                               steps=p.steps, cfg_scale=p.cfg_scale, sampler=p.sampler, seed=generation.seed,
                               batch_count=p.batch_count, init_image=init, strength=p.strength,
                               preview_every=max(1, p.steps // 8))

    async def _source_path(self, source_id: str) -> Path:
        """The file of the picture to start from: a gallery image, or a photo attached for the purpose."""
        record = await self.store.get(source_id)
        if record is not None:
            return self.media.path(record.path)
        attached = await self.attachments.get(source_id) if self.attachments is not None else None
        if attached is not None and attached.kind == "image":
            return self.media.path(attached.path)
        raise AppError(ErrorCode.BAD_REQUEST, "the picture to start from is not there any more")

    async def _run(self, generation: Generation) -> None:
        def on_position(place: int) -> None:
            generation.position = place
            generation.touch()

        try:
            with failures_to(functools.partial(self._fail, generation), f"image generation {generation.id}"):
                request = await self._request(generation)
                generation.state = GenerationState.LOADING if self.host.loaded is None else GenerationState.RUNNING
                async for event in self.host.stream(request, generation.job, model_id=generation.model.id,
                                                    on_position=on_position):
                    if generation.running_since is None:
                        generation.running_since = time.time()
                        generation.unloaded = [Job(s).engine_name for s in generation.job.unloaded]
                    if isinstance(event, Progress):
                        generation.state = GenerationState.RUNNING
                        generation.steps = event.steps * generation.params.batch_count
                        if event.step > 0:
                            generation.step += 1
                            generation.step_seconds.append(event.step_seconds)
                    elif isinstance(event, Preview):
                        generation.preview = event.jpeg
                    elif isinstance(event, JobDone):
                        result = event.result
                        if not isinstance(result, GenerateResult) or result.cancelled or not result.images:
                            generation.state = GenerationState.CANCELLED
                        else:
                            generation.images = await self._store(generation, result)
                            generation.state = GenerationState.DONE
                    elif isinstance(event, JobFailed):
                        self._fail(generation, event.code, event.message)
                    generation.touch()
        finally:
            if not generation.state.ended:
                generation.state = GenerationState.CANCELLED
            generation.finished_at = time.time()
            generation.end()

    @staticmethod
    def _fail(generation: Generation, code: ErrorCode, message: str) -> None:
        if code == ErrorCode.CANCELLED or generation.cancel_requested:  # stopping the worker may look like a crash
            generation.state = GenerationState.CANCELLED
            return
        generation.state, generation.error, generation.error_code = GenerationState.ERROR, message, code

    async def _store(self, generation: Generation, result: GenerateResult) -> list[ImageRecord]:
        p = generation.params
        pngs = result.images
        records: list[ImageRecord] = []
        written: list[str] = []
        try:
            for plain, seed in zip(pngs, result.seeds, strict=True):
                png = with_text(plain, png_text(p, seed, generation.model.name))
                path = self.media.new_name(MEDIA_KIND, "png")
                thumb = self.media.new_name(MEDIA_KIND, "jpg")
                await self.media.write_bytes(path, png)
                written.append(path)
                await self.media.write_bytes(thumb, await asyncio.to_thread(_thumbnail, png))
                written.append(thumb)
                records.append(ImageRecord(
                    prompt=p.prompt, negative_prompt=p.negative_prompt, width=result.width,
                    height=result.height, steps=p.steps, cfg_scale=p.cfg_scale, sampler=p.sampler, seed=seed,
                    model=generation.model.id, model_name=generation.model.name,
                    seconds=result.seconds / len(pngs), path=path, thumb=thumb, bytes=len(png),
                    source_image=p.source_image, strength=p.strength if p.source_image else None,
                    conversation_id=generation.conversation_id, origin=generation.origin))
            await self.store.add_all(records)
        except BaseException:
            for relative in written:
                self.media.delete(relative)
            raise
        return records

    def cancel(self, generation_id: str) -> bool:
        """Stop a generation: at once if it waits; a running one is given CANCEL_GRACE_S to stop,
        then its worker process is stopped."""
        generation = self.generations.get(generation_id)
        if generation is None or generation.finished.is_set():
            return False
        generation.cancel_requested = True
        self.host.cancel(generation.job)
        if generation.state in (GenerationState.LOADING, GenerationState.RUNNING):
            self._tasks.spawn(self._stop_after_grace(generation), name=f"image-stop-{generation.id}")
        return True

    async def _stop_after_grace(self, generation: Generation) -> None:
        try:
            await asyncio.wait_for(generation.finished.wait(), CANCEL_GRACE_S)
        except TimeoutError:
            log.info("image generation %s did not stop by itself; stopping its worker", generation.id)
            self.host.kill()

    async def delete(self, ids: list[str]) -> int:
        records = await self.store.delete(ids)
        for record in records:
            self.media.delete(record.path)
            self.media.delete(record.thumb)
        return len(records)

    async def sweep(self) -> int:
        """Remove image files no row names (a crash between writing and recording them)."""
        known = await self.store.all_files()
        orphans = [p for p in self.media.files(MEDIA_KIND) if p not in known] + \
            self.media.files(MEDIA_KIND, partial=True)
        for relative in orphans:
            self.media.delete(relative)
        return len(orphans)

    async def shutdown(self) -> None:
        for generation in self.active():
            self.host.cancel(generation.job)
        await self._tasks.shutdown(within_s=CANCEL_GRACE_S + 1)
        await self.host.close()
        self.generations.clear()  # as a restart would: a restore may bring other pictures


def _thumbnail(png: bytes) -> bytes:
    """The gallery's thumbnail of a picture."""
    return jpeg_thumbnail(png, THUMB_SIDE, 85)
