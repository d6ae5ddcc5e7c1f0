"""Photos attached to a chat message (camera or file), made ready to store and give a vision model.

`prepare_image` takes the bytes as they arrived and returns one upright picture of bounded size:

- **What it is** comes from the content (`kinds.identify`), never from the name or the
  Content-Type, and Pillow is then allowed only the one decoder that kind needs (so a file
  cannot steer it into a rarely used plugin). JPEG, PNG, WebP, HEIC (through pillow-heif),
  AVIF, GIF, BMP and TIFF are read; anything else is refused saying what it is ("This is a
  PDF document, not an image.").
- **Size before pixels**: Pillow reads only the header when it opens a file, so the pixel
  count is checked against `max_pixels` before anything is decoded. Pillow's own guard
  (`Image.MAX_IMAGE_PIXELS`) stays in force too: its `DecompressionBombError` (and its
  warning, where warnings are turned into errors) is the same refusal, and the limit is never
  above it. Nothing here changes the process-wide warning filters (this runs in threads).
- **Damaged files** are refused, never half-read: `ImageFile.LOAD_TRUNCATED_IMAGES` is left
  False, so a cut-off JPEG fails to decode.
- **Upright, resized, re-encoded**: the EXIF orientation is applied to the pixels, the longer
  side is brought down to `max_side` (Lanczos; a JPEG is first decoded at a reduced DCT scale
  when it is at least twice too large), colours with an embedded ICC profile (a phone's
  Display P3) are converted to sRGB, and the first frame of an animation is kept. Photos are
  stored as JPEG (quality 90); PNG is kept for real transparency and for screenshots,
  drawings and text (a lossless source with few colours), which JPEG would smear.
- **No metadata is kept**: the output is encoded from the pixels alone, so EXIF (GPS
  position, time, camera, serial numbers), XMP, IPTC, comments, thumbnails and ICC profiles
  of the original are not in it.

Blocking (it decodes and encodes pictures): call it from a thread.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from PIL import Image, ImageCms, ImageOps

from ..core import kinds
from ..core.errors import AppError, ErrorCode

try:
    from pillow_heif import register_heif_opener
except ImportError:  # pragma: no cover - pillow-heif is a dependency; a build without it refuses HEIC
    HEIF_READABLE = False
else:
    register_heif_opener()
    HEIF_READABLE = True

__all__ = ["HEIF_READABLE", "PreparedImage", "prepare_image"]

JPEG_QUALITY: Final = 90
TEXT_LIKE_COLOURS: Final = 1 << 16
"""A lossless source with at most this many colours is a screenshot, drawing or text: kept as PNG."""

_READS = "JPEG, PNG, WebP, HEIC, AVIF, GIF, BMP or TIFF"
_DECODERS: Final[dict[str, tuple[str, ...]]] = {
    "jpeg": ("JPEG", "MPO"), "png": ("PNG",), "gif": ("GIF",), "webp": ("WEBP",), "bmp": ("BMP",),
    "tiff": ("TIFF",), "heic": ("HEIF",), "avif": ("AVIF",),
}
_DRAFTABLE: Final = frozenset({"JPEG", "MPO"})
_SOURCE_NAMES: Final = {"MPO": "JPEG"}  # a JPEG carrying extra pictures (phones' depth maps): still a JPEG
_LOSSLESS: Final = frozenset({"PNG", "GIF", "BMP", "TIFF"})
_DAMAGED: Final = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, ZeroDivisionError,
                   struct.error, zlib.error, RuntimeError)
"""What Pillow's decoders (and libheif through pillow-heif) raise on a damaged or cut-off file."""


@dataclass(frozen=True, slots=True)
class PreparedImage:
    data: bytes
    """The picture to store and give the model: JPEG, or PNG for transparency and screenshots."""
    mime: str
    extension: str
    width: int
    height: int
    """Size of `data`: upright and resized."""
    original_width: int
    original_height: int
    """The full-size picture, upright (so its shape matches `width` × `height`), before resizing."""
    source_format: str
    """What arrived, as Pillow names it: "JPEG", "PNG", "WEBP", "HEIF", "GIF"…"""


def prepare_image(source: Path | bytes, *, max_side: int = 1536, max_pixels: int = 40_000_000,
                  max_bytes: int = 30 * 1024 * 1024) -> PreparedImage:
    """Check, orient, shrink and re-encode a photo (blocking: run it in a thread).

    Raises `ImageRejected`: 400 `empty_image`; 413 `file_too_large` (over `max_bytes`) or
    `image_too_large` (over `max_pixels`, found from the header before any decoding); 415
    `not_image` or `unsupported_image`; 422 `broken_image` for a damaged or incomplete file.
    The result holds no EXIF or other metadata of the original (no GPS position).
    """
    data = _read(source, max_bytes)
    if not data:
        raise AppError(ErrorCode.EMPTY_IMAGE, "The file is empty.")
    decoders = _decoders(data[:kinds.HEAD_BYTES])
    limit = max_pixels if Image.MAX_IMAGE_PIXELS is None else min(max_pixels, Image.MAX_IMAGE_PIXELS)
    try:
        opened = Image.open(io.BytesIO(data), formats=decoders)  # reads the header only
        width, height = opened.size
        _check_pixels(width, height, limit)
        source_format = _SOURCE_NAMES.get(opened.format or "", opened.format or "")
        icc = opened.info.get("icc_profile")
        if opened.format in _DRAFTABLE:
            opened.draft(None, _fit(opened.size, max_side))  # a reduced DCT scale, never below the target
        ImageOps.exif_transpose(opened, in_place=True)  # decodes the pixels (the first frame only)
        if (opened.width - opened.height) * (width - height) < 0:  # turned a quarter: the upright shape
            width, height = height, width
        picture = _to_rgb(opened)
    except AppError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise AppError(ErrorCode.IMAGE_TOO_LARGE, f"The image has too many pixels to open; the limit is "
                                                  f"{_megapixels(limit)}.") from None
    except _DAMAGED as exc:
        raise AppError(ErrorCode.BROKEN_IMAGE, f"The image could not be read: it is damaged or incomplete "
                                               f"({type(exc).__name__}).") from None

    text_like = (source_format in _LOSSLESS or _lossless_webp(data)) and _few_colours(picture)
    picture = _to_srgb(_resize(picture, _fit((width, height), max_side)), icc)
    if picture.mode == "CMYK":
        picture = picture.convert("RGB")
    if picture.mode == "RGBA" and _opaque(picture):
        picture = picture.convert("RGB")
    as_png = picture.mode == "RGBA" or text_like
    picture.info = {}  # nothing of the original's metadata (EXIF, XMP, ICC, text) is written
    out = io.BytesIO()
    if as_png:
        picture.save(out, "PNG", compress_level=6)
    else:
        picture.save(out, "JPEG", quality=JPEG_QUALITY)
    return PreparedImage(data=out.getvalue(), mime="image/png" if as_png else "image/jpeg",
                         extension="png" if as_png else "jpg", width=picture.width, height=picture.height,
                         original_width=width, original_height=height, source_format=source_format)


def _read(source: Path | bytes, max_bytes: int) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    else:
        with open(source, "rb") as file:
            data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise AppError(ErrorCode.FILE_TOO_LARGE, f"The file is larger than {_size(max_bytes)}, the limit for "
                                                 f"a picture.")
    return data


def _decoders(head: bytes) -> list[str]:
    """The one Pillow decoder for what `head` is, or the refusal that says what it is instead."""
    kind = kinds.identify(head)
    if kind is None:
        raise AppError(ErrorCode.NOT_IMAGE, f"This is not an image this app can read ({_READS}).")
    if kind is kinds.SVG:
        raise AppError(ErrorCode.UNSUPPORTED_IMAGE, "SVG drawings cannot be read here; send the drawing as a PNG "
                                                    "or JPEG (a screenshot of it will do).")
    if not kind.image:
        raise AppError(ErrorCode.NOT_IMAGE, f"This is {kind.description}, not an image.")
    Image.init()
    decoders = [name for name in _DECODERS[kind.name] if name in Image.OPEN]
    if not decoders:
        if kind is kinds.HEIC:
            raise AppError(ErrorCode.UNSUPPORTED_IMAGE, "HEIC photos cannot be read here; set the camera to "
                                                        "“Most Compatible” (JPEG) or share the photo as JPEG.")
        raise AppError(ErrorCode.UNSUPPORTED_IMAGE, f"This is {kind.description}, which cannot be read here; "
                                                    f"send it as a JPEG or PNG.")
    return decoders


def _check_pixels(width: int, height: int, limit: int) -> None:
    if width * height > limit:
        raise AppError(ErrorCode.IMAGE_TOO_LARGE, f"The image is {width:,} × {height:,} pixels "
                                                  f"({_megapixels(width * height)}); the limit is "
                                                  f"{_megapixels(limit)}.")


def _fit(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """`size` scaled so the longer side is at most `max_side`, same shape."""
    width, height = size
    longer = max(width, height)
    if longer <= max_side:
        return width, height
    return max(1, round(width * max_side / longer)), max(1, round(height * max_side / longer))


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB, or RGBA where the source can be transparent (CMYK is kept for its ICC profile, see `_to_srgb`)."""
    if image.mode in ("RGBA", "CMYK") or (image.mode == "RGB" and "transparency" not in image.info):
        return image
    if image.mode in ("I", "F") or image.mode.startswith("I;"):
        return _eight_bit(image).convert("RGB")
    if "transparency" in image.info or image.mode in ("LA", "La", "PA", "RGBa"):
        return image.convert("RGBA")
    return image.convert("RGB")


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit (or 32-bit) grey scaled to 8 bits; a plain conversion would clip everything above 255 to white."""
    if image.mode == "F":
        high = image.getextrema()[1]
        return image.point(lambda v: v * 255) if isinstance(high, float) and high <= 1.0 else image
    wide = image if image.mode == "I" else image.convert("I")
    high = wide.getextrema()[1]
    if image.mode.startswith("I;16") or (isinstance(high, int) and high > 255):
        return wide.point(lambda v: v * (1 / 257))
    return wide


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    if image.size == size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _to_srgb(image: Image.Image, icc: object) -> Image.Image:
    """Colours converted from the embedded ICC profile (e.g. Display P3, or a printer's CMYK) to sRGB,
    which is what a picture without a profile is taken to be; unchanged if there is no usable profile."""
    if not isinstance(icc, bytes) or not icc or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if profile.profile.xcolor_space.strip() != ("CMYK" if image.mode == "CMYK" else "RGB"):
            return image
        converted = ImageCms.profileToProfile(image, profile, ImageCms.createProfile("sRGB"),
                                              outputMode="RGB" if image.mode == "CMYK" else image.mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image
    return converted if converted is not None else image


def _opaque(image: Image.Image) -> bool:
    low = image.getchannel("A").getextrema()[0]
    return low == 255


def _few_colours(image: Image.Image) -> bool:
    """A screenshot, drawing or page of text rather than a photo (stops counting early on a photo)."""
    return image.getcolors(TEXT_LIKE_COLOURS) is not None


def _lossless_webp(data: bytes) -> bool:
    return data[12:16] == b"VP8L" or (data[12:16] == b"VP8X" and b"VP8L" in data[30:4096])


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:.3g} megapixels"


def _size(count: int) -> str:
    return f"{count / (1024 * 1024):.3g} MB" if count >= 1024 * 1024 else f"{count:,} bytes"
