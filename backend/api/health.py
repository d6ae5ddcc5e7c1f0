"""GET /healthz: is the server up (no credential, no secrets)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .. import __version__
from .deps import ServicesDep

router = APIRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz(services: ServicesDep) -> dict[str, Any]:
    return {"status": "ok", "version": __version__, "chat_engine": "loaded" if services.chat.loaded_info else "idle"}
