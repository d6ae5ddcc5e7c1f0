"""What a file is, from its first bytes, in plain words for messages ("a PDF document").

Intake code first looks for the kinds it accepts and, when a file is something else, says what
it is ("This is a PDF document, not an image.") instead of a bare "unsupported". Only the
content counts: names and Content-Type headers are never asked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["HEAD_BYTES", "Kind", "describe", "identify"]


HEAD_BYTES = 1024
"""How much of the start of a file `identify` looks at (less is fine: then it knows less)."""


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    """Short key: "png", "jpeg", "heic", "pdf", "wav"…"""
    description: str
    """With its article, for a sentence: "a PNG image"."""
    image: bool = False
    """A raster picture format (what a photo or screenshot arrives as)."""


def _image(name: str, description: str) -> Kind:
    return Kind(name, description, image=True)


PNG = _image("png", "a PNG image")
JPEG = _image("jpeg", "a JPEG image")
GIF = _image("gif", "a GIF image")
WEBP = _image("webp", "a WebP image")
HEIC = _image("heic", "a HEIC image")
AVIF = _image("avif", "an AVIF image")
BMP = _image("bmp", "a bitmap image")
TIFF = _image("tiff", "a TIFF image")
SVG = Kind("svg", "an SVG drawing")
PDF = Kind("pdf", "a PDF document")
ZIP = Kind("zip", "a ZIP archive")
GZIP = Kind("gzip", "a gzip archive")
GGUF = Kind("gguf", "a GGUF model")
ELF = Kind("elf", "a program")
WAV = Kind("wav", "a WAV recording")
AVI = Kind("avi", "an AVI video")
OGG = Kind("ogg", "an Ogg recording")
MP3 = Kind("mp3", "an MP3 recording")
FLAC = Kind("flac", "a FLAC recording")
MATROSKA = Kind("matroska", "a WebM or Matroska recording or video")
MP4 = Kind("mp4", "an MP4 recording or video")
WINDOWS_PROGRAM = Kind("exe", "a Windows program")
SEVEN_ZIP = Kind("7z", "a 7-Zip archive")
RAR = Kind("rar", "a RAR archive")
XZ = Kind("xz", "an XZ archive")
BZIP2 = Kind("bz2", "a bzip2 archive")
ZSTD = Kind("zst", "a Zstandard archive")
SQLITE = Kind("sqlite", "an SQLite database")
OLD_OFFICE = Kind("ole", "an old Office file")
FONT = Kind("font", "a web font")
MARKUP = Kind("markup", "an HTML or XML document")
JSON = Kind("json", "JSON text")

_PREFIXES: tuple[tuple[bytes, Kind], ...] = (
    (b"\x89PNG", PNG), (b"\xff\xd8\xff", JPEG), (b"GIF8", GIF), (b"II*\x00", TIFF), (b"MM\x00*", TIFF),
    (b"%PDF", PDF), (b"PK\x03\x04", ZIP), (b"PK\x05\x06", ZIP), (b"\x1f\x8b", GZIP), (b"GGUF", GGUF),
    (b"\x7fELF", ELF), (b"OggS", OGG), (b"ID3", MP3), (b"fLaC", FLAC), (b"\x1a\x45\xdf\xa3", MATROSKA),
    (b"MZ", WINDOWS_PROGRAM), (b"7z\xbc\xaf\x27\x1c", SEVEN_ZIP), (b"Rar!\x1a\x07", RAR),
    (b"\xfd7zXZ\x00", XZ), (b"BZh", BZIP2), (b"(\xb5/\xfd", ZSTD), (b"SQLite format 3\x00", SQLITE),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", OLD_OFFICE), (b"wOFF", FONT), (b"wOF2", FONT), (b"{", JSON),
)
TEXT_KINDS = frozenset({MARKUP, JSON})
"""Kinds named from a text file's first character: a file that is not text is none of these."""
_RIFF = {b"WEBP": WEBP, b"WAVE": WAV, b"AVI ": AVI}
_HEVC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_BRANDS = frozenset({b"mif1", b"msf1", b"mif2"})
"""The generic image-file brands: what the picture is coded in follows among the compatible brands."""


def identify(head: bytes) -> Kind | None:
    """The kind of file that starts with `head`, or None when it is none of those named here."""
    if head[:4] == b"RIFF":
        return _RIFF.get(head[8:12])
    if head[4:8] == b"ftyp":
        return _iso_media(head)
    for magic, kind in _PREFIXES:
        if head.startswith(magic):
            return kind
    if head.startswith(b"BM") and _bitmap_header(head):
        return BMP
    if head.startswith(b"<"):
        return SVG if _svg(head[:HEAD_BYTES].lower()) else MARKUP
    return None


_BITMAP_INFO_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})


def _bitmap_header(head: bytes) -> bool:
    """A bitmap's header, not text that happens to start with "BM" (a CSV column "BMI"): the
    reserved fields are zero and the info header has one of the sizes the format defines."""
    if len(head) < 18:
        return len(head) >= 10 and head[6:10] == b"\0\0\0\0"
    return head[6:10] == b"\0\0\0\0" and int.from_bytes(head[14:18], "little") in _BITMAP_INFO_SIZES


def _svg(lowered: bytes) -> bool:
    """An SVG drawing is markup whose first element is <svg>; an HTML page with an inline icon is not one."""
    for tag in re.finditer(rb"<([a-z!?][^\s>/]*)", lowered):
        name = tag.group(1)
        if name.startswith((b"?", b"!")):  # <?xml ...?>, <!DOCTYPE ...>, <!-- comment -->
            if name == b"!doctype" and b"svg" not in lowered[tag.end():tag.end() + 40]:
                return False
            continue
        return name == b"svg"
    return False


def describe(head: bytes) -> str | None:
    """What the file that starts with `head` is, with its article ("a PNG image"), or None."""
    kind = identify(head)
    return kind.description if kind else None


def _iso_media(head: bytes) -> Kind:
    """HEIC, AVIF or MP4/M4A/3GP: one box layout, told apart by the brands in the `ftyp` box."""
    major = head[8:12]
    end = min(len(head), max(16, int.from_bytes(head[:4], "big")))
    compatible = {head[i:i + 4] for i in range(16, end - 3, 4)}
    if major in _HEVC_BRANDS:
        return HEIC
    if major in _AVIF_BRANDS or (major in _HEIF_BRANDS and compatible & _AVIF_BRANDS):
        return AVIF
    if major in _HEIF_BRANDS or compatible & _HEVC_BRANDS:
        return HEIC
    return MP4
