"""The gallery's own routes: list, one image, its PNG and thumbnail, delete (one or several).

- `GET /api/images?limit=&before=`: newest first; `before` is the `created_at` of the last one
  seen, for the next page of an endless list.
- `GET /api/images/{id}`, `…/file` (the PNG with its parameters inside), `…/thumb` (JPEG).
- `DELETE /api/images/{id}`; `POST /api/images/delete` with `{"ids": [...]}` for several.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from ..services import Services
from ..storage.images import ImageRecord
from .deps import ServicesDep
from .responses import disposition, media_file, not_found

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


async def _find(services: Services, image_id: str) -> ImageRecord:
    found = await services.images.store.get(image_id)
    if found is None:
        raise not_found("There is no image with that id.")
    return found


@router.get("/api/images/{image_id}")
async def image(image_id: str, services: ServicesDep) -> dict[str, Any]:
    return (await _find(services, image_id)).to_json()


@router.get("/api/images/{image_id}/file")
async def image_file(image_id: str, services: ServicesDep, download: bool = False) -> FileResponse:
    found = await _find(services, image_id)
    return _file(services, found.path, "image/png", disposition(file_name(found), inline=not download))


@router.get("/api/images/{image_id}/thumb")
async def image_thumb(image_id: str, services: ServicesDep) -> FileResponse:
    return _file(services, (await _find(services, image_id)).thumb, "image/jpeg", {})


def _file(services: Services, relative: str, mime: str, headers: dict[str, str]) -> FileResponse:
    return media_file(services.media, relative, mime, {**_HEADERS, **headers}, missing="The image's file is missing.")


@router.delete("/api/images/{image_id}")
async def delete_image(image_id: str, services: ServicesDep) -> dict[str, Any]:
    if not await services.images.delete([image_id]):
        raise not_found("There is no image with that id.")
    return {"id": image_id, "deleted": True}


@router.post("/api/images/delete")
async def delete_images(body: DeleteBody, services: ServicesDep) -> Any:
    return {"deleted": await services.images.delete(body.ids)}
