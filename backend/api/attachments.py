"""Photos and documents for chat messages: uploaded before the message is sent, served back to pages.

- `POST /api/attachments?name=…` takes the file as the raw request body (what the camera's
  shutter or a file input sends) and answers with the pending attachment: what it is, its
  thumbnail, a table's preview or what was left out of a long document. 4xx with
  `{"error": {"code", "message"}}` for anything refused; nothing is kept then.
- `DELETE /api/attachments/{id}` removes one not sent yet (its uploader only).
- `GET /api/attachments/{id}`, `…/file`, `…/thumb`: the row, the stored file, the thumbnail.
  Files are served with `nosniff` and a sandbox policy, documents other than PDFs as downloads,
  so a stored HTML or SVG-looking text can never run as a page of this app.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.requests import ClientDisconnect

from ..core.errors import AppError, ErrorCode
from ..security.devices import OWNER
from ..security.middleware import principal_of
from ..services import Services
from ..storage.attachments import Attachment
from .deps import ServicesDep
from .responses import body_chunks, disposition, media_file, not_found

__all__ = ["ATTACHMENT_UPLOAD_PATH", "router"]

ATTACHMENT_UPLOAD_PATH = "/api/attachments"
router = APIRouter(include_in_schema=False)
_SAFE_HEADERS = {"Cache-Control": "private, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff",
                 "Content-Security-Policy": "sandbox; default-src 'none'"}


def _uploader(request: Request) -> str:
    return (principal_of(request.scope) or OWNER).key


@router.post(ATTACHMENT_UPLOAD_PATH)
async def upload_attachment(request: Request, services: ServicesDep,
                            name: str = Query(default="", max_length=500)) -> Any:
    try:
        attachment = await services.attachments.accept(body_chunks(request), name=name, uploader=_uploader(request))
    except ClientDisconnect:  # the gate ends a body past the limit as if the client had left
        raise AppError(ErrorCode.FILE_TOO_LARGE, f"The file is larger than the limit of "
                                                 f"{services.settings.max_attachment_mb} MB.") from None
    return JSONResponse(attachment.to_json(), status_code=201)


async def _find(services: Services, attachment_id: str) -> Attachment:
    found = await services.attachments.store.get(attachment_id)
    if found is None:
        raise not_found("There is no attachment with that id.")
    return found


@router.get("/api/attachments/{attachment_id}")
async def attachment(attachment_id: str, services: ServicesDep) -> dict[str, Any]:
    return (await _find(services, attachment_id)).to_json()


@router.get("/api/attachments/{attachment_id}/file")
async def attachment_file(attachment_id: str, services: ServicesDep) -> FileResponse:
    found = await _find(services, attachment_id)
    inline = found.kind == "image" or found.mime == "application/pdf"
    return _file(services, found.path, found.mime, disposition(found.name, inline=inline))


@router.get("/api/attachments/{attachment_id}/thumb")
async def attachment_thumb(attachment_id: str, services: ServicesDep) -> FileResponse:
    found = await _find(services, attachment_id)
    if not found.thumb:
        raise not_found("Only photos have thumbnails.")
    return _file(services, found.thumb, "image/jpeg", {})


def _file(services: Services, relative: str, mime: str, headers: dict[str, str]) -> FileResponse:
    return media_file(services.media, relative, mime, {**_SAFE_HEADERS, **headers},
                      missing="The attachment's file is missing.")


@router.delete("/api/attachments/{attachment_id}")
async def discard(attachment_id: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    if not await services.attachments.discard(attachment_id, _uploader(request)):
        raise not_found("There is no attachment of yours waiting to be sent with that id.")
    return {"id": attachment_id, "deleted": True}
