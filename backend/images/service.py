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
import re
import secrets
import struct
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..attachments.images import jpeg_thumbnail
from ..audio.engines import SidecarHost
from ..config import Settings
from ..engines.diffusion import SAMPLERS, DiffusionConfig, GenerateRequest, Preview, Progress
from ..models.manager import ModelManager
from ..models.registry import ModelRecord
from ..runtime.child import EngineError, failures_to
from ..runtime.protocol import ErrorCode, JobDone, JobFailed
from ..runtime.residency import ResidencyManager, slot_name
from ..storage.attachments import AttachmentStore
from ..storage.images import ImageRecord, ImageStore
from ..storage.media import MediaStore

__all__ = ["CANCEL_GRACE_S", "Generation", "ImageParams", "ImageService", "defaults_for", "image_host",
           "image_request", "prompt_from"]

log = logging.getLogger(__name__)

MEDIA_KIND = "images"
THUMB_SIDE = 384
CANCEL_GRACE_S = 1.0
MAX_SIDE = 2048
MAX_BATCH = 8
KEEP_FINISHED = 20
"""Finished generations kept in memory for pages that come back to them."""


_IMAGE_REQUEST = re.compile(
    r"^\s*(?:/(?:image|imagine|draw)\s+(?P<command>.+?)|(?:(?:please|can you|could you|would you)\s+)?"
    r"(?:generate|create|make|draw|paint|render|produce)\s+(?:me\s+|us\s+)?(?:an?\s+|the\s+|some\s+)?"
    r"(?:image|picture|photo|drawing|painting|illustration|sketch)s?\s+(?:of|showing|with|depicting)\s+"
    r"(?P<what>.+?))[\s.!?]*$", re.IGNORECASE | re.DOTALL)


def image_request(text: str) -> str | None:
    """The picture asked for when a chat message asks for one ("generate an image of a red fox in the
    snow", "/image a red fox"), else None."""
    match = _IMAGE_REQUEST.match(text)
    if match is None:
        return None
    wanted = (match.group("command") or match.group("what") or "").strip()
    return wanted or None


_MARKUP = re.compile(r"```.*?```|`|[*_#>~]+|!?\[([^\]]*)\]\([^)]*\)", re.DOTALL)


def prompt_from(text: str, limit: int = 1000) -> str:
    """A message's text as an image prompt: Markdown left out, one line, at most `limit` characters."""
    plain = _MARKUP.sub(lambda m: m.group(1) or " ", text)
    words = " ".join(plain.split())
    return words if len(words) <= limit else words[:limit].rsplit(" ", 1)[0]


class ImageParams(BaseModel):
    """What to generate; the same fields as the Images page, `/v1/images/generations` and the PNG's text."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=4000)
    negative_prompt: str = Field(default="", max_length=4000)
    width: int = Field(default=512, ge=64, le=MAX_SIDE, multiple_of=8)
    height: int = Field(default=512, ge=64, le=MAX_SIDE, multiple_of=8)
    steps: int = Field(default=20, ge=1, le=150)
    cfg_scale: float = Field(default=7.0, ge=0.0, le=30.0)
    sampler: str = "default"
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    """None: a random seed, recorded with the image."""
    batch_count: int = Field(default=1, ge=1, le=MAX_BATCH)
    source_image: str | None = None
    """Image-to-image: a gallery image's id, or an attached photo's."""
    strength: float = Field(default=0.75, ge=0.0, le=1.0)
    model: str | None = None

    @field_validator("prompt")
    @classmethod
    def _has_words(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the prompt is empty")
        return value.strip()

    @field_validator("sampler")
    @classmethod
    def _known_sampler(cls, value: str) -> str:
        if value not in SAMPLERS:
            raise ValueError(f"unknown sampler '{value}'; one of {', '.join(SAMPLERS)}")
        return value


def defaults_for(model: ModelRecord | None) -> dict[str, Any]:
    """Settings that suit the model: one-step distilled models (turbo, SDXS, LCM) want 1–4 steps and
    no guidance; SDXL-sized models make 1024-pixel pictures; SD 1.x/2.x 512."""
    name = f"{model.name} {model.path.name} {model.info.get('version', '')}".lower() if model else ""
    base = 1024 if any(k in name for k in ("xl", "sd3", "flux")) and "sdxs" not in name else 512
    if any(k in name for k in ("turbo", "sdxs", "lightning", "hyper")):
        steps, cfg, sampler = 1, 1.0, "euler_a"
    elif "lcm" in name:
        steps, cfg, sampler = 4, 1.0, "lcm"
    else:
        steps, cfg, sampler = 20, 7.0, "default"
    return {"steps": steps, "cfg_scale": cfg, "sampler": sampler, "base": base,
            "sizes": size_presets(base)}


def size_presets(base: int) -> dict[str, tuple[int, int]]:
    small, mid = base // 2, base * 3 // 4
    return {f"{small} × {small}": (small, small), f"{mid} × {mid}": (mid, mid), f"{base} × {base}": (base, base),
            f"Portrait {mid} × {base}": (mid, base), f"Landscape {base} × {mid}": (base, mid)}


@dataclass(kw_only=True, slots=True)
class Generation:
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    params: ImageParams
    seed: int
    model: ModelRecord
    origin: str = "page"
    conversation_id: str | None = None
    state: str = "queued"
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
    error: str | None = None
    error_code: str | None = None
    unloaded: list[str] = field(default_factory=list)
    """Models unloaded to make room for the image model (their names)."""
    cancel_requested: bool = False
    version: int = 0
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def touch(self) -> None:
        self.version += 1

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


def image_host(settings: Settings, manager: ModelManager, residency: ResidencyManager) -> SidecarHost:
    return SidecarHost("images", "backend.engines.diffusion:DiffusionEngine",
                       lambda m: DiffusionConfig(model_path=str(m.path), n_threads=settings.inference_threads,
                                                 **m.info.get("components", {})),
                       manager, residency, settings.queue_limit, heavy=True)


class ImageService:
    def __init__(self, settings: Settings, host: SidecarHost, store: ImageStore, media: MediaStore,
                 attachments: AttachmentStore | None = None) -> None:
        self.settings = settings
        self.host = host
        self.store = store
        self.media = media
        self.attachments = attachments
        self.generations: dict[str, Generation] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def model(self) -> ModelRecord | None:
        return self.host.model

    def active(self) -> list[Generation]:
        return [g for g in self.generations.values() if not g.finished.is_set()]

    async def generate(self, params: ImageParams, *, origin: str = "page",
                       conversation_id: str | None = None) -> Generation:
        """Queue a generation and return at once; raises EngineError for a model or source image that
        is not there."""
        model = self.host.resolve(params.model)
        if params.source_image is not None:
            await self._source_path(params.source_image)
        seed = params.seed if params.seed is not None else secrets.randbelow(2**31)
        generation = Generation(params=params, seed=seed, model=model, origin=origin,
                                conversation_id=conversation_id)
        self.generations[generation.id] = generation
        self._forget_old()
        task = asyncio.create_task(self._run(generation), name=f"image-{generation.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
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
        raise EngineError(ErrorCode.BAD_REQUEST, "the picture to start from is not there any more")

    async def _run(self, generation: Generation) -> None:
        def on_position(place: int) -> None:
            generation.position = place
            generation.touch()

        try:
            with failures_to(functools.partial(self._fail, generation), f"image generation {generation.id}"):
                request = await self._request(generation)
                generation.state = "loading" if self.host.loaded is None else "running"
                async for event in self.host.stream(request, generation.id, model_id=generation.model.id,
                                                    on_position=on_position):
                    if generation.running_since is None:
                        generation.running_since = time.time()
                        generation.unloaded = [slot_name(s) for s in self.host.evicted]
                    if isinstance(event, Progress):
                        generation.state = "running"
                        generation.steps = event.steps * generation.params.batch_count
                        if event.step > 0:
                            generation.step += 1
                            generation.step_seconds.append(event.step_seconds)
                    elif isinstance(event, Preview):
                        generation.preview = event.jpeg
                    elif isinstance(event, JobDone):
                        if event.result.get("finish_reason") == "cancelled" or "images" not in event.result:
                            generation.state = "cancelled"
                        else:
                            generation.images = await self._store(generation, event.result)
                            generation.state = "done"
                    elif isinstance(event, JobFailed):
                        self._fail(generation, event.code, event.message)
                    generation.touch()
        finally:
            if generation.state not in ("done", "error", "cancelled"):
                generation.state = "cancelled"
            generation.finished_at = time.time()
            generation.touch()
            generation.finished.set()

    @staticmethod
    def _fail(generation: Generation, code: str, message: str) -> None:
        if code == ErrorCode.CANCELLED or generation.cancel_requested:  # stopping the worker may look like a crash
            generation.state = "cancelled"
            return
        generation.state, generation.error, generation.error_code = "error", message, code

    async def _store(self, generation: Generation, result: dict[str, Any]) -> list[ImageRecord]:
        p = generation.params
        pngs: list[bytes] = result["images"]
        records: list[ImageRecord] = []
        written: list[str] = []
        try:
            for plain, seed in zip(pngs, result["seeds"], strict=True):
                png = with_text(plain, png_text(generation, seed))
                path = self.media.new_name(MEDIA_KIND, "png")
                thumb = self.media.new_name(MEDIA_KIND, "jpg")
                await self.media.write_bytes(path, png)
                written.append(path)
                await self.media.write_bytes(thumb, await asyncio.to_thread(_thumbnail, png))
                written.append(thumb)
                records.append(ImageRecord(
                    prompt=p.prompt, negative_prompt=p.negative_prompt, width=result["width"],
                    height=result["height"], steps=p.steps, cfg_scale=p.cfg_scale, sampler=p.sampler, seed=seed,
                    model=generation.model.id, model_name=generation.model.name,
                    seconds=result["seconds"] / len(pngs), path=path, thumb=thumb, bytes=len(png),
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
        self.host.cancel(generation.id)
        if generation.state in ("loading", "running"):
            task = asyncio.create_task(self._stop_after_grace(generation))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
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
            self.host.cancel(generation.id)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=CANCEL_GRACE_S + 1)
        await self.host.close()


def png_text(generation: Generation, seed: int) -> dict[str, str]:
    """One picture's parameters as PNG text: a key each, and the "parameters" line other tools read."""
    p = generation.params
    fields = {"prompt": p.prompt, "negative_prompt": p.negative_prompt, "steps": str(p.steps),
              "cfg_scale": f"{p.cfg_scale:g}", "sampler": p.sampler, "seed": str(seed),
              "width": str(p.width), "height": str(p.height), "model": generation.model.name,
              "software": "gridless"}
    if p.source_image:
        fields["strength"] = f"{p.strength:g}"
    line = (f"{p.prompt}\nNegative prompt: {p.negative_prompt}\n" if p.negative_prompt else f"{p.prompt}\n") + \
        f"Steps: {p.steps}, Sampler: {p.sampler}, CFG scale: {p.cfg_scale:g}, Seed: {seed}, " \
        f"Size: {p.width}x{p.height}, Model: {generation.model.name}"
    return {**fields, "parameters": line}


def with_text(png: bytes, text: dict[str, str]) -> bytes:
    """`png` with an uncompressed iTXt chunk per entry, placed before the picture data where readers
    look first (no re-encoding)."""
    end = png.find(b"IDAT") - 4
    if end < 8 or not png.startswith(b"\x89PNG"):
        raise ValueError("not a PNG")
    chunks = b"".join(png_chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8"))
                      for key, value in text.items())
    return png[:end] + chunks + png[end:]


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _thumbnail(png: bytes) -> bytes:
    """The gallery's thumbnail of a picture."""
    return jpeg_thumbnail(png, THUMB_SIDE, 85)
