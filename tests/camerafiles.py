"""Pictures the tests make: a video for Chromium's fake camera, small photos, and files that only pretend
to be photos."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from PIL import Image, ImageStat

__all__ = ["CAMERA_HEIGHT", "CAMERA_SIZE", "CAMERA_WIDTH", "camera_pattern_problems", "jpeg_bytes",
           "write_y4m", "zip_bytes"]

CAMERA_WIDTH, CAMERA_HEIGHT = 320, 240
CAMERA_SIZE = (CAMERA_WIDTH, CAMERA_HEIGHT)

# the camera sees a white left half and a strong blue right half (YCbCr, full range as C420jpeg says)
_WHITE = (255, 128, 128)
_BLUE = (29, 255, 107)


def write_y4m(path: Path, frames: int = 10) -> Path:
    """A Y4M video for `--use-file-for-fake-video-capture`: CAMERA_WIDTH × CAMERA_HEIGHT, 10 frames a
    second, every frame white on the left half and blue on the right half."""
    w, h = CAMERA_WIDTH, CAMERA_HEIGHT

    def plane(width: int, height: int, left: int, right: int) -> bytes:
        return (bytes([left]) * (width // 2) + bytes([right]) * (width - width // 2)) * height

    frame = b"FRAME\n" + b"".join(plane(width, height, left, right) for (width, height), left, right in (
        ((w, h), _WHITE[0], _BLUE[0]), ((w // 2, h // 2), _WHITE[1], _BLUE[1]),
        ((w // 2, h // 2), _WHITE[2], _BLUE[2])))
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(frame)
    return path


def camera_pattern_problems(data: bytes) -> list[str]:
    """What is wrong with `data` as a photo of the fake camera's picture (empty when it is one):
    its size, and the colours of its two halves (a margin left out around the edge between them)."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    problems = []
    if image.size != CAMERA_SIZE:
        problems.append(f"the photo is {image.size[0]} × {image.size[1]}, not {CAMERA_WIDTH} × {CAMERA_HEIGHT}")
    w, h = image.size
    margin = w // 10

    def mean(box: tuple[int, int, int, int]) -> tuple[float, float, float]:
        r, g, b = ImageStat.Stat(image.crop(box)).mean
        return r, g, b

    left = mean((margin, margin, w // 2 - margin, h - margin))
    right = mean((w // 2 + margin, margin, w - margin, h - margin))
    if min(left) < 200:
        problems.append(f"the left half is not white: mean RGB {tuple(round(c) for c in left)}")
    if not (right[2] > 180 and right[0] < 80 and right[1] < 80):
        problems.append(f"the right half is not blue: mean RGB {tuple(round(c) for c in right)}")
    return problems


def jpeg_bytes(width: int = 64, height: int = 48, colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A small JPEG photo of one colour."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG", quality=90)
    return out.getvalue()


def zip_bytes() -> bytes:
    """A ZIP archive with one text file in it."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("notes.txt", "Not a photo.\n")
    return out.getvalue()


