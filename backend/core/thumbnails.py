"""Small JPEG previews of pictures: photos in the chat and generated images in the gallery."""

from __future__ import annotations

import io

from PIL import Image

__all__ = ["jpeg_thumbnail"]


def jpeg_thumbnail(data: bytes, side: int, quality: int) -> bytes:
    """A JPEG at most `side` pixels on its longer side of an encoded picture (transparency on white)."""
    with Image.open(io.BytesIO(data)) as picture:
        picture.thumbnail((side, side), Image.Resampling.LANCZOS)
        flat = Image.new("RGB", picture.size, "white")
        flat.paste(picture, mask=picture.getchannel("A") if picture.mode == "RGBA" else None)
        out = io.BytesIO()
        flat.save(out, "JPEG", quality=quality)
        return out.getvalue()
