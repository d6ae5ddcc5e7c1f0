"""POST /v1/images/generations: OpenAI's shape, on the same image service as the Images page.

`prompt`, `n` (1–8), `size` ("WxH"; the model's own size when left out), `response_format`
(`b64_json`, the default, or `url`: a link to the picture in the app, usable with the same
credential), `model`; and, beyond OpenAI, `negative_prompt`, `steps`, `cfg_scale`, `seed`
and `sampler` (the model's suited defaults when left out). The pictures are kept in the
gallery; each item names its gallery `id` and `seed`. A client that goes away cancels the generation.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from ...core.errors import AppError, ErrorCode
from ...images.params import MAX_BATCH, ImageParams, defaults_for
from ...images.service import GenerationState
from ..deps import ServicesDep

router = APIRouter()
_SIZE = re.compile(r"^(\d{2,4})x(\d{2,4})$")


class ImageGenerationBody(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI's quality, style, user… mean nothing here

    prompt: Annotated[str, StringConstraints(min_length=1, max_length=4000)]
    model: str | None = None
    n: int = Field(default=1, ge=1, le=MAX_BATCH)
    size: str | None = None
    response_format: Literal["b64_json", "url"] = "b64_json"
    output_format: Literal["png"] = "png"
    negative_prompt: str = Field(default="", max_length=4000)
    steps: int | None = Field(default=None, ge=1, le=150)
    cfg_scale: float | None = Field(default=None, ge=0.0, le=30.0)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    sampler: str | None = None


def _size(value: str | None, base: int) -> tuple[int, int]:
    if value is None or value == "auto":
        return base, base
    match = _SIZE.match(value)
    if not match:
        raise AppError(ErrorCode.INVALID_VALUE, f"size must look like 512x512, not '{value}'", param="size")
    return int(match.group(1)), int(match.group(2))


@router.post("/images/generations")
async def generate(body: ImageGenerationBody, request: Request, services: ServicesDep) -> dict[str, Any]:
    images = services.images
    model = images.host.resolve(body.model)
    suited = defaults_for(model)
    width, height = _size(body.size, suited["base"])
    try:
        params = ImageParams(prompt=body.prompt, negative_prompt=body.negative_prompt, width=width, height=height,
                             steps=body.steps or suited["steps"],
                             cfg_scale=suited["cfg_scale"] if body.cfg_scale is None else body.cfg_scale,
                             sampler=body.sampler or suited["sampler"], seed=body.seed, batch_count=body.n,
                             model=model.id)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else None
        param = {"width": "size", "height": "size", "batch_count": "n"}.get(field or "", field)
        raise AppError(ErrorCode.INVALID_VALUE, f"{param}: {first['msg']}", param=param) from None
    generation = await images.generate(params, origin="api")
    try:
        await generation.finished.wait()
    except asyncio.CancelledError:  # the client went away
        images.cancel(generation.id)
        raise
    if generation.state != GenerationState.DONE:
        raise AppError(generation.error_code or ErrorCode.CANCELLED, generation.error or "the generation was cancelled")
    data: list[dict[str, Any]] = []
    for record in generation.images:
        item: dict[str, Any] = {"revised_prompt": None, "seed": record.seed, "id": record.id}
        if body.response_format == "url":
            item["url"] = f"{str(request.base_url).rstrip('/')}/api/images/{record.id}/file"
        else:
            png = await asyncio.to_thread(services.media.path(record.path).read_bytes)
            item["b64_json"] = base64.b64encode(png).decode()
        data.append(item)
    return {"created": int(time.time()), "data": data, "output_format": "png",
            "size": f"{width}x{height}"}
