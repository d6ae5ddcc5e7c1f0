"""GET /v1/models: the chat models this device has, and those of the engine servers the owner added."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ..deps import ServicesDep

router = APIRouter()


@router.get("/models")
async def list_models(services: ServicesDep) -> dict[str, Any]:
    return {"object": "list", "data": [
        {"id": m.id, "object": "model", "created": int(m.added_at),
         "owned_by": m.info.get("engine_name", m.source) if m.source == "remote" else m.source}
        for m in services.answers.language_models()]}
