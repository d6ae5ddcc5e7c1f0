"""GET /healthz: is the server up (no credential, no secrets)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .. import __version__
from ..services import Services

router = APIRouter()


@router.get("/healthz", include_in_schema=False, response_model=None)
async def healthz(request: Request) -> dict[str, Any] | JSONResponse:
    services: Services = request.app.state.services
    if not services.started.is_set():
        return JSONResponse({"status": "starting", "version": __version__}, status_code=503)
    return {"status": "ok", "version": __version__, "chat_engine": "loaded" if services.chat.loaded_info else "idle"}
