"""What the app's own routes (not /v1) share: raw upload bodies and stored media files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import FileResponse

from ..core.errors import AppError, ErrorCode
from ..storage.media import MediaStore

__all__ = ["body_chunks", "disposition", "media_file", "not_found"]


def not_found(message: str) -> AppError:
    return AppError(ErrorCode.NOT_FOUND, message)


async def body_chunks(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        yield chunk


def disposition(name: str, *, inline: bool) -> dict[str, str]:
    """The Content-Disposition header for a file named `name` (any characters)."""
    return {"Content-Disposition": f"{'inline' if inline else 'attachment'}; filename*=UTF-8''{quote(name)}"}


def media_file(media: MediaStore, relative: str, mime: str, headers: dict[str, str], *, missing: str) -> FileResponse:
    """A stored media file as the answer, or 404 with `missing` when its file is gone."""
    path = media.path(relative)
    if not path.is_file():
        raise not_found(missing)
    return FileResponse(path, media_type=mime, headers=headers)
