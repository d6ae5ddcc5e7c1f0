"""The gallery's own routes: list, one image, its PNG and thumbnail, delete (one or several).

- `GET /api/images?limit=&before=`: newest first; `before` is the `created_at` of the last one
  seen, for the next page of an endless list.
- `GET /api/images/{id}`, `…/file` (the PNG with its parameters inside), `…/thumb` (JPEG).
- `DELETE /api/images/{id}`; `POST /api/images/delete` with `{"ids": [...]}` for several.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ..storage.images import ImageRecord
from .deps import ServicesDep
from .responses import disposition, error_response, media_file

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_HEADERS = {"Cache-Control": "private, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"}


class DeleteBody(BaseModel):
    ids: list[str] = Field(min_length=1, max_length=500)


def file_name(record: ImageRecord) -> str:
    words = "-".join("".join(c for c in w if c.isalnum()) for w in record.prompt.lower().split()[:6]).strip("-")
    return f"{words or 'image'}-{record.seed}.png"


@router.get("/api/images")
async def images(services: ServicesDep, limit: int = Query(default=30, ge=1, le=200),
                 before: float | None = None) -> Any:
    return [r.to_json() for r in await services.images.store.recent(limit, before)]


async def _find(services: Any, image_id: str) -> ImageRecord | Any:
    found = await services.images.store.get(image_id)
    return found if found is not None else error_response(404, "not_found", "There is no image with that id.")


@router.get("/api/images/{image_id}")
async def image(image_id: str, services: ServicesDep) -> Any:
    found = await _find(services, image_id)
    return found.to_json() if isinstance(found, ImageRecord) else found


@router.get("/api/images/{image_id}/file")
async def image_file(image_id: str, services: ServicesDep, download: bool = False) -> Any:
    found = await _find(services, image_id)
    if not isinstance(found, ImageRecord):
        return found
    return _file(services, found.path, "image/png", disposition(file_name(found), inline=not download))


@router.get("/api/images/{image_id}/thumb")
async def image_thumb(image_id: str, services: ServicesDep) -> Any:
    found = await _find(services, image_id)
    return _file(services, found.thumb, "image/jpeg", {}) if isinstance(found, ImageRecord) else found


def _file(services: Any, relative: str, mime: str, headers: dict[str, str]) -> Any:
    return media_file(services.media, relative, mime, {**_HEADERS, **headers}, missing="The image's file is missing.")


@router.delete("/api/images/{image_id}")
async def delete_image(image_id: str, services: ServicesDep) -> Any:
    if not await services.images.delete([image_id]):
        return error_response(404, "not_found", "There is no image with that id.")
    return {"id": image_id, "deleted": True}


@router.post("/api/images/delete")
async def delete_images(body: DeleteBody, services: ServicesDep) -> Any:
    return {"deleted": await services.images.delete(body.ids)}
