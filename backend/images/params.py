"""What a picture is made from: its parameters, the settings that suit a model, and a picture
asked for in a chat message."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..engines.diffusion import SAMPLERS
from ..models.registry import ModelRecord

__all__ = ["MAX_BATCH", "MAX_SIDE", "ImageParams", "defaults_for", "image_request", "prompt_from", "size_presets"]

MAX_SIDE = 2048
MAX_BATCH = 8


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
