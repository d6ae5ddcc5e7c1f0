"""Photo intake: what is accepted, how it comes out (upright, resized, no EXIF), and what is refused."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms, ImageFile

from backend.attachments import images
from backend.attachments.images import PreparedImage, prepare_image
from backend.core import kinds
from backend.core.errors import AppError
from tests.imagefiles import encoded, photo, png_chunk

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


# --- pictures made here ------------------------------------------------------------------------

def screenshot(width: int, height: int) -> Image.Image:
    """Few flat colours, like an app's screen with text bars."""
    image = Image.new("RGB", (width, height), WHITE)
    for top in range(20, height - 20, 40):
        image.paste((30, 30, 30), (20, top, width - 20, top + 12))
    return image


def reopen(prepared: PreparedImage) -> Image.Image:
    image = Image.open(io.BytesIO(prepared.data))
    image.load()
    return image


def close_to(pixel: object, colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


def png_header_only(width: int, height: int) -> bytes:
    """A 1-bit grey PNG of any size whose pixel data is a small zlib stream of zeros (written row by row)."""
    packer = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))


def refused(source: Path | bytes, **limits: int) -> AppError:
    with pytest.raises(AppError) as info:
        prepare_image(source, **limits)  # type: ignore[arg-type]
    return info.value


# --- accepted ----------------------------------------------------------------------------------

def test_jpeg_photo_is_resized_to_the_longer_side() -> None:
    prepared = prepare_image(encoded(photo(3000, 2000), "JPEG", quality=92))
    assert (prepared.mime, prepared.extension, prepared.source_format) == ("image/jpeg", "jpg", "JPEG")
    assert (prepared.width, prepared.height) == (1536, 1024)
    assert (prepared.original_width, prepared.original_height) == (3000, 2000)
    out = reopen(prepared)
    assert (out.format, out.mode, out.size) == ("JPEG", "RGB", (1536, 1024))


def test_small_photo_keeps_its_size_and_max_side_is_honoured() -> None:
    prepared = prepare_image(encoded(photo(640, 480), "JPEG"))
    assert (prepared.width, prepared.height) == (640, 480)
    prepared = prepare_image(encoded(photo(640, 480), "JPEG"), max_side=320)
    assert (prepared.width, prepared.height) == (320, 240)


def test_png_screenshot_stays_png() -> None:
    prepared = prepare_image(encoded(screenshot(800, 1200), "PNG"))
    assert (prepared.mime, prepared.extension, prepared.source_format) == ("image/png", "png", "PNG")
    assert (prepared.width, prepared.height) == (800, 1200)
    out = reopen(prepared)
    assert out.format == "PNG" and out.getpixel((0, 0)) == WHITE and out.getpixel((30, 25)) == (30, 30, 30)


def test_png_photo_becomes_jpeg() -> None:
    prepared = prepare_image(encoded(photo(2000, 1000).convert("RGBA"), "PNG"))  # opaque alpha: not transparency
    assert (prepared.mime, prepared.source_format) == ("image/jpeg", "PNG")
    assert (prepared.width, prepared.height) == (1536, 768)


def test_transparent_png_stays_png_with_alpha() -> None:
    image = Image.new("RGBA", (2000, 500), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (0, 0, 1000, 500))
    prepared = prepare_image(encoded(image, "PNG"))
    assert (prepared.mime, prepared.width, prepared.height) == ("image/png", 1536, 384)
    out = reopen(prepared)
    assert out.mode == "RGBA" and out.getpixel((10, 10)) == (255, 0, 0, 255) and out.getpixel((1500, 10))[3] == 0


def test_webp_photo() -> None:
    prepared = prepare_image(encoded(photo(2048, 1024), "WEBP", quality=85))
    assert (prepared.mime, prepared.source_format, prepared.width, prepared.height) == ("image/jpeg", "WEBP",
                                                                                        1536, 768)


@pytest.mark.parametrize("fmt,params", [("GIF", {}), ("WEBP", {"lossless": True})])
def test_animation_gives_its_first_frame_as_png(fmt: str, params: dict[str, object]) -> None:
    frames = [Image.new("RGB", (120, 60), RED), Image.new("RGB", (120, 60), GREEN)]
    data = encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **params)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    prepared = prepare_image(data)
    assert (prepared.mime, prepared.source_format, prepared.width, prepared.height) == ("image/png", fmt, 120, 60)
    assert reopen(prepared).convert("RGB").getpixel((60, 30)) == RED


def test_palette_with_transparency_becomes_rgba() -> None:
    image = Image.new("P", (64, 64), 0)
    image.putpalette([255, 255, 255, 0, 0, 255] + [0] * 762)
    image.paste(1, (0, 0, 32, 64))
    prepared = prepare_image(encoded(image, "GIF", transparency=0))
    out = reopen(prepared)
    assert out.mode == "RGBA" and out.getpixel((5, 5)) == (0, 0, 255, 255) and out.getpixel((60, 5))[3] == 0


@pytest.mark.parametrize("fmt,source", [("BMP", "BMP"), ("TIFF", "TIFF")])
def test_bitmap_and_tiff(fmt: str, source: str) -> None:
    prepared = prepare_image(encoded(screenshot(300, 200), fmt))
    assert (prepared.source_format, prepared.mime, prepared.width, prepared.height) == (source, "image/png", 300, 200)


def test_heic_photo() -> None:
    pytest.importorskip("pillow_heif")
    prepared = prepare_image(encoded(photo(400, 300), "HEIF", quality=80))
    assert (prepared.source_format, prepared.mime, prepared.width, prepared.height) == ("HEIF", "image/jpeg",
                                                                                        400, 300)


def test_cmyk_jpeg_becomes_rgb() -> None:
    prepared = prepare_image(encoded(Image.new("CMYK", (200, 100), (0, 255, 255, 0)), "JPEG"))  # red ink
    out = reopen(prepared)
    assert out.mode == "RGB" and close_to(out.getpixel((100, 50)), RED)


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    grey = Image.frombytes("I;16", (64, 64), np.full((64, 64), 32_768, dtype="<u2").tobytes())
    data = encoded(grey, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    pixel = reopen(prepare_image(data)).convert("RGB").getpixel((10, 10))
    assert close_to(pixel, (128, 128, 128), tolerance=2)


def test_icc_profile_is_applied_and_not_kept() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    prepared = prepare_image(encoded(Image.new("RGB", (100, 100), (200, 120, 40)), "JPEG", icc_profile=srgb))
    out = reopen(prepared)
    assert "icc_profile" not in out.info and close_to(out.getpixel((50, 50)), (200, 120, 40), tolerance=6)


def test_exif_rotated_photo_is_stored_upright_without_exif() -> None:
    stored = Image.new("RGB", (300, 200), BLUE)  # landscape as the sensor wrote it
    stored.paste(RED, (0, 0, 60, 60))  # the marked corner: top-left as stored
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # "turn 90° clockwise to view"
    exif[ExifTags.Base.Make] = "PhoneMaker"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef], gps[ExifTags.GPS.GPSLatitude] = "N", (52.0, 31.0, 12.0)
    data = encoded(stored, "JPEG", exif=exif, quality=95)
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the input does carry GPS

    prepared = prepare_image(data)
    assert (prepared.width, prepared.height) == (200, 300)  # portrait, as the person held the phone
    assert (prepared.original_width, prepared.original_height) == (200, 300)
    out = reopen(prepared)
    assert out.size == (200, 300)
    assert close_to(out.getpixel((195, 4)), RED)  # stored top-left is now top-right
    for corner in ((4, 4), (4, 295), (195, 295)):
        assert close_to(out.getpixel(corner), BLUE)
    assert not out.getexif() and "exif" not in out.info
    assert b"Exif" not in prepared.data and b"PhoneMaker" not in prepared.data


def test_exif_rotation_with_resize() -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 8
    prepared = prepare_image(encoded(photo(4000, 2000), "JPEG", exif=exif))
    assert (prepared.width, prepared.height, prepared.original_width, prepared.original_height) == (768, 1536,
                                                                                                   2000, 4000)


def test_twelve_megapixel_photo() -> None:
    data = encoded(photo(4000, 3000), "JPEG", quality=90)
    started = time.perf_counter()
    prepared = prepare_image(data)
    elapsed = time.perf_counter() - started
    print(f"\n12 MP JPEG ({len(data) / 1e6:.1f} MB) prepared in {elapsed * 1000:.0f} ms "
          f"→ {prepared.width}×{prepared.height}, {len(prepared.data) / 1e3:.0f} kB")
    assert (prepared.width, prepared.height, prepared.mime) == (1536, 1152, "image/jpeg")


# --- refused -----------------------------------------------------------------------------------

def test_huge_png_is_refused_from_its_header_fast() -> None:
    data = png_header_only(20_000, 20_000)
    assert len(data) < 200_000  # 400 megapixels in a small file
    started = time.perf_counter()
    error = refused(data)
    assert time.perf_counter() - started < 0.5
    assert (error.status, error.code) == (413, "image_too_large")


def test_too_many_pixels_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    error = refused(png_header_only(8_000, 6_000))  # 48 MP: under Pillow's own guard, over ours
    assert (error.status, error.code) == (413, "image_too_large")
    assert "8,000 × 6,000" in error.message and "40 megapixels" in error.message


def test_pillow_bomb_guard_is_the_same_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    with pytest.warns(Image.DecompressionBombWarning):  # over the guard: Pillow warns, the limit follows it
        error = refused(encoded(screenshot(110, 100), "PNG"), max_pixels=10**9)
    assert (error.status, error.code) == (413, "image_too_large")
    error = refused(encoded(screenshot(300, 300), "PNG"), max_pixels=10**9)  # twice over: Pillow's error
    assert (error.status, error.code) == (413, "image_too_large")


def test_truncated_jpeg_is_broken() -> None:
    data = encoded(photo(800, 600), "JPEG")
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    for cut in (len(data) // 2, len(data) - 2, 400):
        error = refused(data[:cut])
        assert (error.status, error.code) == (422, "broken_image"), cut


def test_damaged_png_is_broken() -> None:
    data = bytearray(encoded(photo(200, 100), "PNG"))
    data[200:260] = bytes(60)
    assert refused(bytes(data)).code == "broken_image"
    assert refused(b"\x89PNG\r\n\x1a\n").code == "broken_image"


def test_pdf_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "holiday.jpg"
    path.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    error = refused(path)
    assert (error.status, error.code, error.message) == (415, "not_image", "This is a PDF document, not an image.")


@pytest.mark.parametrize("data,what", [
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "a WAV recording"),
    (b"PK\x03\x04\x14\x00\x00\x00", "a ZIP archive"),
    (b"GGUF\x03\x00\x00\x00", "a GGUF model"),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "a WebM or Matroska recording or video"),
])
def test_other_kinds_are_named(data: bytes, what: str) -> None:
    assert refused(data).message == f"This is {what}, not an image."


def test_unknown_svg_and_unreadable_heic(monkeypatch: pytest.MonkeyPatch) -> None:
    error = refused(b"just some notes")
    assert (error.status, error.code) == (415, "not_image") and "JPEG" in error.message
    error = refused(b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>')
    assert (error.status, error.code) == (415, "unsupported_image") and "SVG" in error.message
    Image.init()
    monkeypatch.delitem(Image.OPEN, "HEIF", raising=False)
    error = refused(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")
    assert (error.status, error.code) == (415, "unsupported_image")
    assert error.message.startswith("HEIC photos cannot be read here; ")


def test_empty(tmp_path: Path) -> None:
    assert (refused(b"").status, refused(b"").code) == (400, "empty_image")
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert refused(tmp_path / "empty.jpg").code == "empty_image"


def test_too_many_bytes(tmp_path: Path) -> None:
    data = encoded(photo(400, 300), "JPEG")
    error = refused(data, max_bytes=len(data) - 1)
    assert (error.status, error.code) == (413, "file_too_large")
    (tmp_path / "big.jpg").write_bytes(data)
    assert refused(tmp_path / "big.jpg", max_bytes=1000).code == "file_too_large"
    assert prepare_image(tmp_path / "big.jpg", max_bytes=len(data)).source_format == "JPEG"


def test_heif_opener_is_registered() -> None:
    pytest.importorskip("pillow_heif")
    assert images.HEIF_READABLE and "HEIF" in Image.OPEN


# --- kinds -------------------------------------------------------------------------------------

@pytest.mark.parametrize("head,what,image", [
    (b"\x89PNG\r\n\x1a\n", "a PNG image", True),
    (b"\xff\xd8\xff\xe1\x00\x10Exif", "a JPEG image", True),
    (b"GIF89a", "a GIF image", True),
    (b"RIFF\x00\x10\x00\x00WEBPVP8 ", "a WebP image", True),
    (b"\x00\x00\x00\x1cftypheic\x00\x00\x00\x00mif1heic", "a HEIC image", True),
    (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00heic", "a HEIC image", True),
    (b"\x00\x00\x00\x20ftypavif\x00\x00\x00\x00avifmif1miaf", "an AVIF image", True),
    (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00avif", "an AVIF image", True),
    (b"BM\x36\x00\x0c\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00", "a bitmap image", True),
    (b"II*\x00\x08\x00", "a TIFF image", True),
    (b"MM\x00*\x00\x00", "a TIFF image", True),
    (b"%PDF-1.4", "a PDF document", False),
    (b"PK\x03\x04", "a ZIP archive", False),
    (b"GGUF\x03\x00", "a GGUF model", False),
    (b"\x7fELF\x02", "a program", False),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "a WAV recording", False),
    (b"OggS\x00\x02", "an Ogg recording", False),
    (b"ID3\x04\x00", "an MP3 recording", False),
    (b"fLaC\x00\x00", "a FLAC recording", False),
    (b"\x1a\x45\xdf\xa3\x9f", "a WebM or Matroska recording or video", False),
    (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00", "an MP4 recording or video", False),
    (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00", "an MP4 recording or video", False),
    (b'<?xml version="1.0"?>\n<svg width="10">', "an SVG drawing", False),
    (b"<!DOCTYPE html><html>", "an HTML or XML document", False),
    (b'{"a": 1}', "JSON text", False),
])
def test_kinds_describe(head: bytes, what: str, image: bool) -> None:
    assert kinds.describe(head) == what
    kind = kinds.identify(head)
    assert kind is not None and kind.image is image


@pytest.mark.parametrize("head", [b"BMI,age\n22.1,30\n", b"BMW sales rose in 2020\n", b"BM"])
def test_text_that_starts_like_a_bitmap_is_not_one(head: bytes) -> None:
    assert kinds.identify(head) is None


@pytest.mark.parametrize(("head", "kind"), [
    (b"<!doctype html>\n<html><body><header><svg viewBox='0 0 1 1'></svg> Home</header>", kinds.MARKUP),
    (b"<!-- icon -->\n<svg xmlns='http://www.w3.org/2000/svg'/>", kinds.SVG),
    (b"<!DOCTYPE svg PUBLIC '-//W3C//DTD SVG 1.1//EN'>\n<svg>", kinds.SVG),
    (b"<div><svg></svg></div>", kinds.MARKUP),
])
def test_svg_is_markup_whose_first_element_is_svg(head: bytes, kind: kinds.Kind) -> None:
    assert kinds.identify(head) is kind


@pytest.mark.parametrize("head", [b"", b"hello", b"RIFF\x00\x00\x00\x00XYZW", b"\x00\x00\x00\x00"])
def test_kinds_unknown(head: bytes) -> None:
    assert kinds.describe(head) is None and kinds.identify(head) is None
