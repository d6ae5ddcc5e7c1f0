"""Text inside a PNG: each generated picture carries the parameters it was made with, added as
iTXt chunks without re-encoding the picture, so any tool (and gridless itself) can read how
it was made."""

from __future__ import annotations

import struct
import zlib

from .params import ImageParams

__all__ = ["png_chunk", "png_text", "with_text"]


def png_text(p: ImageParams, seed: int, model_name: str) -> dict[str, str]:
    """One picture's parameters as PNG text: a key each, and the "parameters" line other tools read."""
    fields = {"prompt": p.prompt, "negative_prompt": p.negative_prompt, "steps": str(p.steps),
              "cfg_scale": f"{p.cfg_scale:g}", "sampler": p.sampler, "seed": str(seed),
              "width": str(p.width), "height": str(p.height), "model": model_name,
              "software": "gridless"}
    if p.source_image:
        fields["strength"] = f"{p.strength:g}"
    line = (f"{p.prompt}\nNegative prompt: {p.negative_prompt}\n" if p.negative_prompt else f"{p.prompt}\n") + \
        f"Steps: {p.steps}, Sampler: {p.sampler}, CFG scale: {p.cfg_scale:g}, Seed: {seed}, " \
        f"Size: {p.width}x{p.height}, Model: {model_name}"
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
