"""Moving to a new device over the local network.

The old device's files are served to whoever holds the move's session: `POST /api/move/session`
exchanges the one-time code for it, then `GET /api/move/manifest` lists the files and
`GET /api/move/files/{id}` serves one, with `Range` for resuming. These are public paths for the
security gate (the new device is not paired; the session is its credential), which still checks
the Host and Origin. The owner's controls (`/api/move/offer`, `/api/move/pull`) are admin paths.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from ..core.errors import AppError, ErrorCode
from ..move.files import RangeNotSatisfiable, parse_range
from ..move.offer import MoveOffer, MoveOffers, ServedFile
from ..move.pull import MovePull
from ..move.service import ensure_sharing
from ..services import Services
from .deps import ServicesDep
from .responses import not_found

__all__ = ["MOVE_FILES_PREFIX", "MOVE_PUBLIC_PATHS", "offer_state", "pull_state", "router"]

MOVE_PUBLIC_PATHS = {"/api/move/session", "/api/move/manifest", "/api/move/finished"}
MOVE_FILES_PREFIX = "/api/move/files/"
CHUNK = 1 << 20
SESSION_BODY_MAX = 1024
NO_STORE = {"Cache-Control": "no-store"}
router = APIRouter(include_in_schema=False)


class CodeBody(BaseModel):
    code: str = Field(min_length=1, max_length=32)


class PullBody(BaseModel):
    address: str = Field(min_length=1, max_length=200)
    code: str = Field(default="", max_length=32)


# ----- the owner of the old device ------------------------------------------------------------


def offer_state(offer: MoveOffer | None, services: Services) -> dict[str, Any]:
    if offer is None:
        return {"state": None}
    state = services.share().state
    return {"state": offer.state.value, "code": offer.shown_code if offer.state.open and not offer.session else None,
            "address": f"{state.address}:{state.port}" if state else None,
            "expires_in": max(0.0, round(offer.expires_at - services.moves.offers.clock(), 1)),
            "prepared": offer.prepared, "prepare_total": offer.prepare_total, "total_bytes": offer.total_bytes,
            "served_bytes": offer.served_bytes, "puller": offer.puller, "error": offer.error,
            "files": [{**f.file.to_json(), "served": f.served} for f in offer.files]}


@router.post("/api/move/offer")
async def create_offer(services: ServicesDep) -> Any:
    problem = await ensure_sharing(services.share(), services.models.registry,
                                   services.settings.share_port or services.settings.port)
    offer = await services.moves.offers.create()
    return {**offer_state(offer, services), "sharing_problem": problem}


@router.get("/api/move/offer")
async def get_offer(services: ServicesDep) -> Any:
    return offer_state(services.moves.offers.current(), services)


@router.delete("/api/move/offer")
async def cancel_offer(services: ServicesDep) -> Any:
    await services.moves.offers.cancel()
    return offer_state(services.moves.offers.current(), services)


# ----- the new device, asking the old one ----------------------------------------------------


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


@router.post("/api/move/session")
async def open_session(request: Request, services: ServicesDep) -> Any:
    # read here, under a small cap: the security gate does not limit bodies on public paths
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > SESSION_BODY_MAX:
            raise AppError(ErrorCode.REQUEST_TOO_LARGE, "A move code is a few digits.")
    try:
        code = CodeBody.model_validate_json(bytes(body)).code
    except ValidationError as exc:
        raise AppError(ErrorCode.INVALID_VALUE, "Send the move code as {\"code\": \"12345678\"}.") from exc
    token = services.moves.offers.redeem(code, _client(request))
    return JSONResponse({"token": token}, headers=NO_STORE)


@router.get("/api/move/manifest")
async def manifest(request: Request, services: ServicesDep) -> Any:
    offers = services.moves.offers
    offer = offers.authorize(request.headers.get("authorization"))
    return JSONResponse({"files": [f.to_json() for f in offers.manifest(offer)]}, headers=NO_STORE)


@router.post("/api/move/finished")
async def finished(request: Request, services: ServicesDep) -> Any:
    offers = services.moves.offers
    offers.finished(offers.authorize(request.headers.get("authorization")))
    return JSONResponse({"state": "finished"}, headers=NO_STORE)


@router.get("/api/move/files/{file_id}")
async def move_file(file_id: str, request: Request, services: ServicesDep) -> Response:
    offers = services.moves.offers
    offer = offers.authorize(request.headers.get("authorization"))
    served = offer.file(file_id)
    if served is None or not await asyncio.to_thread(served.path.is_file):
        raise not_found("The old device has no such file in this move.")
    size = served.file.size
    try:
        span = parse_range(request.headers.get("range"), size)
    except RangeNotSatisfiable as exc:
        return JSONResponse({"error": {"code": ErrorCode.INVALID_VALUE.value,
                                       "message": f"That byte range cannot be served: {exc}."}},
                            status_code=416, headers={**NO_STORE, "Content-Range": f"bytes */{size}"})
    start, end = span if span is not None else (0, size - 1)
    headers = {**NO_STORE, "Accept-Ranges": "bytes", "Content-Length": str(end - start + 1),
               # identity: keeps the compression layer off a file sent by byte ranges
               "Content-Encoding": "identity"}
    if span is not None:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(_chunks(offers, offer, served, start, end), status_code=206 if span else 200,
                             media_type="application/octet-stream", headers=headers)


async def _chunks(offers: MoveOffers, offer: MoveOffer, served: ServedFile, start: int, end: int) \
        -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(_open_at, served.path, start)
    try:
        position = start
        while position <= end:
            block = await asyncio.to_thread(handle.read, min(CHUNK, end - position + 1))
            if not block:
                return  # the file shrank under us; the new device sees a short body and retries
            yield block
            position += len(block)
            offers.served(offer, served, position)
    finally:
        await asyncio.to_thread(handle.close)


def _open_at(path: Path, start: int) -> Any:
    handle = path.open("rb")
    handle.seek(start)
    return handle


# ----- the owner of the new device -------------------------------------------------------------


def pull_state(pull: MovePull | None) -> dict[str, Any]:
    if pull is None:
        return {"state": None}
    return {"state": pull.state.value, "origin": pull.origin, "note": pull.note, "error": pull.error,
            "error_code": pull.error_code, "total_bytes": pull.total_bytes, "received_bytes": pull.received_bytes,
            "speed": round(pull.speed), "finished": pull.finished.is_set(),
            "files": [{**f.file.to_json(), "received": f.received, "state": f.state} for f in pull.files]}


@router.post("/api/move/pull")
async def start_pull(body: PullBody, services: ServicesDep) -> Any:
    return pull_state(await services.moves.pulls.start(body.address, body.code))


@router.get("/api/move/pull")
async def get_pull(services: ServicesDep) -> Any:
    return pull_state(services.moves.pulls.current)


@router.delete("/api/move/pull")
async def cancel_pull(services: ServicesDep) -> Any:
    await services.moves.pulls.cancel()
    return pull_state(services.moves.pulls.current)
