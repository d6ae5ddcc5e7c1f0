"""Keys for other apps, the owner's only (`/api/keys` is among the gate's admin prefixes).

- `GET /api/keys`: every key, live ones first: id, name, scopes, prefix (the first 8 characters of
  the secret, to recognise it), created_at, last_used_at, requests, revoked (and revoked_at).
- `POST /api/keys` with `{"name", "scopes"}`: 201, the key as listed plus `key`, its secret. This is
  the only answer that ever holds it.
- `DELETE /api/keys/{id}`: revokes it; its next request is 401. 404 for an unknown id.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ..core.errors import AppError, ErrorCode
from ..security.keys import SCOPES
from .deps import ServicesDep
from .responses import not_found

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

ScopeName = Literal["chat", "images", "audio", "embeddings", "conversations"]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    """Shown on the Sharing page; cut to 60 characters."""
    scopes: list[ScopeName] = Field(min_length=1, max_length=2 * len(SCOPES))


@router.get("/api/keys")
async def list_keys(services: ServicesDep) -> dict[str, Any]:
    return {"keys": [k.to_json() for k in services.keys.list()]}


@router.post("/api/keys")
async def create_key(body: KeyCreate, services: ServicesDep) -> JSONResponse:
    try:
        key, secret = await services.keys.create(body.name, body.scopes)
    except AppError as exc:
        if exc.code is ErrorCode.INVALID_VALUE:  # as the other bodies /api checks
            raise AppError(exc.code, exc.message, param=exc.param, status=422) from None
        raise
    return JSONResponse({**key.to_json(), "key": secret}, status_code=201,
                        headers={"Cache-Control": "no-store"})


@router.delete("/api/keys/{key_id}")
async def revoke_key(key_id: str, services: ServicesDep) -> dict[str, Any]:
    key = await services.keys.revoke(key_id)
    if key is None:
        raise not_found("There is no key with that id.")
    return key.to_json()
