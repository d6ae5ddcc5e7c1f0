"""What the app's own routes (not /v1) share: their error shape, raw upload bodies, stored media files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import FileResponse, JSONResponse

from ..storage.media import MediaStore

__all__ = ["body_chunks", "disposition", "error_response", "media_file"]


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def body_chunks(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        yield chunk


def disposition(name: str, *, inline: bool) -> dict[str, str]:
    """The Content-Disposition header for a file named `name` (any characters)."""
    return {"Content-Disposition": f"{'inline' if inline else 'attachment'}; filename*=UTF-8''{quote(name)}"}


def media_file(media: MediaStore, relative: str, mime: str, headers: dict[str, str], *, missing: str) -> Any:
    """A stored media file as the answer, or 404 with `missing` when its file is gone."""
    path = media.path(relative)
    if not path.is_file():
        return error_response(404, "not_found", missing)
    return FileResponse(path, media_type=mime, headers=headers)
