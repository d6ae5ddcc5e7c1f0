"""Image generation in a worker process: stable-diffusion.cpp through stable-diffusion-cpp-python.

- **Loading** takes one file (`.safetensors` or `.gguf` holding the diffusion model, text
  encoder and autoencoder) or separate files where the model type needs them (a diffusion
  model with its VAE and text encoders). The binding does not raise on a file it cannot
  use: it logs errors and fails later with "NULL pointer access". So the library's log is
  captured while loading, and any error it reports (a missing tensor, an unknown version)
  makes the load fail here, with the library's first complaint in the message.
- **Progress and previews**: the library calls back after every sampling step (and with a
  cheap projection of the latent as a preview); both go to the server as events.
- **Cancel**: the library cannot stop a generation. The server stops the worker process
  instead (see `backend/images/service.py`); nothing is written by the worker, so nothing
  is left half-written.
- **Output**: PNG; the server adds the parameters of each picture as text chunks.
"""

from __future__ import annotations

import ctypes
import io
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from ..core.errors import AppError, ErrorCode
from ..runtime.child import JobContext
from ..runtime.protocol import Event, Request, Result

__all__ = ["SAMPLERS", "DiffusionConfig", "DiffusionEngine", "GenerateRequest", "GenerateResult", "Preview", "Progress"]

log = logging.getLogger(__name__)

SAMPLERS = ("default", "euler", "euler_a", "heun", "dpm2", "dpm++2s_a", "dpm++2m", "dpm++2mv2", "ipndm",
            "ipndm_v", "lcm", "ddim_trailing", "tcd")
"""The samplers offered (the library's names); "default" is the model's own choice."""
PREVIEW_SIDE = 256
_ERROR, _WARN, _INFO = 3, 2, 1
_VERSION = re.compile(r"Version: (.+)$")


@dataclass(kw_only=True, slots=True)
class DiffusionConfig:
    model_path: str = ""
    """One file with all parts; or leave empty and give `diffusion_model_path` and the others."""
    diffusion_model_path: str = ""
    vae_path: str = ""
    clip_l_path: str = ""
    clip_g_path: str = ""
    t5xxl_path: str = ""
    llm_path: str = ""
    n_threads: int = -1


@dataclass(kw_only=True, slots=True)
class GenerateRequest(Request):
    prompt: str
    negative_prompt: str = ""
    width: int = 512
    height: int = 512
    steps: int = 20
    cfg_scale: float = 7.0
    sampler: str = "default"
    seed: int = 0
    batch_count: int = 1
    init_image: bytes | None = None
    """Image-to-image: the picture to start from (encoded), resized to width × height."""
    strength: float = 0.75
    """Image-to-image: how much of the start picture is replaced (1: all of it)."""
    preview_every: int = 1
    """Send a preview every this many steps (0: none)."""


@dataclass(kw_only=True, slots=True)
class Progress(Event):
    """Step `step` of `steps` is done (per picture of a batch); step 0: sampling begins."""

    step: int
    steps: int
    step_seconds: float


@dataclass(kw_only=True, slots=True)
class Preview(Event):
    step: int
    jpeg: bytes


@dataclass(kw_only=True, slots=True)
class GenerateResult(Result):
    images: list[bytes] = field(default_factory=list)
    """PNGs, one per picture of the batch."""
    seeds: list[int] = field(default_factory=list)
    seconds: float = 0.0
    width: int = 0
    height: int = 0


class DiffusionEngine:
    def __init__(self, config: DiffusionConfig) -> None:
        import stable_diffusion_cpp as sd_cpp
        from stable_diffusion_cpp import StableDiffusion

        self.config = config
        self.messages: list[tuple[int, str]] = []
        self.errors: list[str] = []
        """The library's first error messages since the last load or generation began (kept whole:
        the first is the one that explains the rest)."""
        self.error_count = 0

        @sd_cpp.sd_log_callback  # type: ignore[misc]
        def on_log(level: int, text: bytes, _data: ctypes.c_void_p) -> None:
            message = text.decode("utf-8", errors="replace").strip()
            self.messages.append((level, message))
            del self.messages[:-200]
            if level >= _ERROR:
                self.error_count += 1
                if len(self.errors) < 20:
                    self.errors.append(message)
                    log.error("stable-diffusion.cpp: %s", message)

        self._on_log = on_log  # the library keeps only the pointer: the callback must stay alive
        sd_cpp.sd_set_log_callback(on_log, ctypes.c_void_p(0))
        started = time.perf_counter()
        try:
            self.sd = StableDiffusion(
                model_path=config.model_path, diffusion_model_path=config.diffusion_model_path,
                vae_path=config.vae_path, clip_l_path=config.clip_l_path, clip_g_path=config.clip_g_path,
                t5xxl_path=config.t5xxl_path, llm_path=config.llm_path, n_threads=config.n_threads,
                vae_decode_only=False, verbose=False)
        except ValueError as exc:  # a path that does not exist, or a context the library refused
            raise AppError(ErrorCode.MODEL_LOAD_FAILED, f"the image model could not be loaded: {exc}") from None
        if self.errors:
            more = self.error_count - 1
            raise AppError(ErrorCode.MODEL_LOAD_FAILED,
                           f"the image model could not be loaded: {_plain(self.errors[0])}"
                           + (f" (and {more} more problems)" if more else ""))
        self.load_seconds = time.perf_counter() - started
        self.version = next((match.group(1).strip() for _, m in self.messages
                             if (match := _VERSION.search(m))), "unknown")

    def info(self) -> dict[str, Any]:
        return {"version": self.version, "load_seconds": round(self.load_seconds, 3)}

    def run(self, request: Request, ctx: JobContext) -> GenerateResult:
        if not isinstance(request, GenerateRequest):
            raise AppError(ErrorCode.BAD_REQUEST, f"the image engine cannot run {type(request).__name__}")
        req = request
        if ctx.cancelled():  # cancelled while it waited its turn
            raise AppError(ErrorCode.CANCELLED, "cancelled before it began")
        init = _open(req.init_image, req.width, req.height) if req.init_image else None
        step_started = time.perf_counter()
        last_step = [0]

        def on_progress(step: int, steps: int, seconds: float) -> None:
            nonlocal step_started
            now = time.perf_counter()
            if step > 0 and step != last_step[0]:  # each step once it is done (0 at the start; 1.. again per image)
                ctx.emit(Progress(job_id=ctx.job_id, step=step, steps=steps, step_seconds=now - step_started))
            last_step[0] = step
            step_started = now

        def on_preview(step: int, frames: list[Image.Image], _noisy: bool) -> None:
            if frames:
                ctx.emit(Preview(job_id=ctx.job_id, step=step, jpeg=_jpeg(frames[0])))

        self.messages.clear()
        self.errors.clear()
        self.error_count = 0
        ctx.emit(Progress(job_id=ctx.job_id, step=0, steps=req.steps, step_seconds=0.0))  # the model is ready
        started = time.perf_counter()
        try:
            images = self.sd.generate_image(
                prompt=req.prompt, negative_prompt=req.negative_prompt, width=req.width, height=req.height,
                sample_steps=req.steps, cfg_scale=req.cfg_scale,
                sample_method=None if req.sampler == "default" else req.sampler, seed=req.seed,
                batch_count=req.batch_count, init_image=init, strength=req.strength,
                progress_callback=on_progress,
                preview_method="proj" if req.preview_every > 0 else "none",
                preview_interval=max(1, req.preview_every),
                preview_callback=on_preview)  # always: the library keeps the last one set, freed after its call
        except ValueError as exc:  # "NULL pointer access": the library made nothing
            raise AppError(ErrorCode.INTERNAL, "the image could not be generated: "
                              + (_plain(self.errors[0]) if self.errors else str(exc))) from None
        seconds = time.perf_counter() - started
        if len(images) != req.batch_count or any(image is None for image in images):
            raise AppError(ErrorCode.INTERNAL, f"the model made {len(images)} of {req.batch_count} images")
        pngs = [_png(image) for image in images]
        return GenerateResult(images=pngs, seeds=[req.seed + i for i in range(len(pngs))], seconds=seconds,
                              width=images[0].width, height=images[0].height)

    def idle(self) -> None:
        pass

    def close(self) -> None:
        self.sd.close()


def _plain(message: str) -> str:
    """The library's message without its source location ("model.cpp:1067 - ")."""
    return re.sub(r"^[\w./-]+:\d+\s*-\s*", "", message)


def _open(data: bytes, width: int, height: int) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as source:
            picture = source.convert("RGB")
    except (OSError, ValueError) as exc:
        raise AppError(ErrorCode.BAD_REQUEST, f"the starting picture could not be read: {exc}") from None
    if picture.size != (width, height):  # cover the frame, centred
        scale = max(width / picture.width, height / picture.height)
        resized = picture.resize((max(width, round(picture.width * scale)), max(height, round(picture.height * scale))),
                                 Image.Resampling.LANCZOS)
        left, top = (resized.width - width) // 2, (resized.height - height) // 2
        picture = resized.crop((left, top, left + width, top + height))
    return picture


def _jpeg(frame: Image.Image) -> bytes:
    picture = frame.convert("RGB")
    picture.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=70)
    return out.getvalue()


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "PNG", compress_level=6)
    return out.getvalue()
