"""Images given inline as `data:` URLs (the only form the API accepts: the server never fetches a URL)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from ..core.errors import AppError, ErrorCode

__all__ = ["InlineData", "parse_data_url"]

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)(?P<b64>;base64)?,", re.I)


@dataclass(frozen=True, slots=True)
class InlineData:
    mime: str
    data: bytes


def parse_data_url(url: str, max_bytes: int) -> InlineData:
    """The bytes of a base64 `data:` URL. Any other URL (http, https, file, ftp…) is refused:
    fetching it would let a request make this device reach other addresses."""
    text = url.strip()
    match = _DATA_URL.match(text)
    if match is None:
        scheme = text.split(":", 1)[0].lower() if ":" in text[:16] else ""
        what = f"a {scheme}: URL" if scheme else "not a URL this server accepts"
        raise AppError(ErrorCode.UNSUPPORTED_IMAGE_URL, f"image_url is {what}; send the image inline as a "
                                                        "data: URL (data:image/jpeg;base64,...). This server never "
                                                        "fetches URLs.")
    if not match.group("b64"):
        raise AppError(ErrorCode.INVALID_IMAGE_URL, "the data: URL must be base64 encoded (data:image/...;base64,...)")
    payload = text[match.end():]
    if len(payload) > (max_bytes * 4) // 3 + 4:
        raise AppError(ErrorCode.IMAGE_TOO_LARGE, f"the image is larger than {max_bytes:,} bytes")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise AppError(ErrorCode.INVALID_IMAGE_URL, "the data: URL's base64 is damaged") from None
    if not data:
        raise AppError(ErrorCode.INVALID_IMAGE_URL, "the data: URL holds no data")
    return InlineData(mime=(match.group("mime") or "application/octet-stream").lower(), data=data)
