"""Engine servers the owner added, the owner's only (`/api/engines` is among the gate's admin prefixes).

- `GET /api/engines`: every server with its state, models, last check and speeds (never its key).
- `POST /api/engines` with `{"url", "key"?, "fingerprint"?, "name"?}`: the server is asked for its
  models first; 201 with it, or the reason it cannot be used (nothing is kept then).
- `PATCH /api/engines/{id}` with `{"jobs": {"<model>": "chat" | "embeddings" | "speech" | "images"},
  "tools": bool}`: what its models are used for, and whether its chat models can call tools.
- `POST /api/engines/{id}/check`: ask it again now.
- `DELETE /api/engines/{id}`: forget it (answers streaming from it stop).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ..core.errors import AppError, ErrorCode
from .deps import ServicesDep

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


class EngineAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    key: Annotated[str, StringConstraints(strip_whitespace=True, max_length=4096)] = ""
    fingerprint: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None


@router.get("/api/engines")
async def list_engines(services: ServicesDep) -> dict[str, Any]:
    return {"engines": [e.public() for e in services.remote.servers()]}


@router.post("/api/engines")
async def add_engine(body: EngineAdd, services: ServicesDep) -> JSONResponse:
    try:
        engine = await services.remote.add(body.url, body.key, fingerprint=body.fingerprint or None, name=body.name)
    except AppError as exc:
        if exc.code is ErrorCode.INVALID_VALUE:  # as the other bodies /api checks
            raise AppError(exc.code, exc.message, param=exc.param, status=422) from None
        raise
    return JSONResponse(engine.public(), status_code=201)


class EngineChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: dict[Annotated[str, StringConstraints(max_length=200)], Literal["chat", "embeddings", "speech", "images"]] = \
        Field(default_factory=dict, max_length=500)
    """What some of its models are used for here: "chat", "embeddings", "speech" or "images" (guessed from
    their names otherwise)."""
    tools: bool | None = None
    """Whether its chat models can call tools (conversations then offer them the tools)."""


@router.patch("/api/engines/{engine_id}")
async def change_engine(engine_id: str, body: EngineChange, services: ServicesDep) -> dict[str, Any]:
    engine = services.remote.engine(engine_id)
    for model, job in body.jobs.items():
        engine = await services.remote.set_job(engine_id, model, job)
    if body.tools is not None:
        engine = await services.remote.set_tools(engine_id, body.tools)
    return engine.public()


@router.post("/api/engines/{engine_id}/check")
async def check_engine(engine_id: str, services: ServicesDep) -> dict[str, Any]:
    return (await services.remote.check(engine_id)).public()


@router.delete("/api/engines/{engine_id}")
async def remove_engine(engine_id: str, services: ServicesDep) -> dict[str, Any]:
    await services.remote.remove(engine_id)
    return {"removed": engine_id}
