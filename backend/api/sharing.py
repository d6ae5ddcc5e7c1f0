"""The owner's controls for sharing, pairing and devices, as JSON (the pages use the same services).

All under admin prefixes: a paired device is refused before it gets here.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ..core.errors import AppError, ErrorCode
from ..security.devices import Device
from ..security.interfaces import lan_interfaces, preselect
from ..security.sharing import ShareState
from ..services import Services
from .deps import ServicesDep
from .responses import not_found

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


class ShareStart(BaseModel):
    address: str | None = Field(default=None, max_length=64)
    port: int | None = Field(default=None, ge=1, le=65535)
    secure: bool = False


def _state(state: ShareState | None, services: Services) -> dict[str, Any]:
    if state is None:
        return {"sharing": False, "stopped_reason": services.share().stopped_reason}
    return {"sharing": True, "address": state.address, "port": state.port, "secure": state.secure,
            "origin": state.origin, "guide_url": state.guide_url,
            "ca_fingerprint": services.certs.fingerprint() if state.secure else None}


def _device(device: Device) -> dict[str, Any]:
    return {"id": device.id, "name": device.name, "address": device.address, "created_at": device.created_at,
            "last_seen": device.last_seen}


@router.get("/api/sharing")
async def sharing_state(services: ServicesDep) -> Any:
    interfaces = await asyncio.to_thread(lan_interfaces)
    return {**_state(services.share().state, services),
            "interfaces": [{"name": i.name, "address": i.address, "kind": i.kind} for i in interfaces]}


@router.post("/api/sharing")
async def start_sharing(body: ShareStart, services: ServicesDep) -> Any:
    address = body.address
    if address is None:
        chosen = preselect(await asyncio.to_thread(lan_interfaces))
        if chosen is None:
            raise AppError(ErrorCode.NO_NETWORK,
                           "This device has no network address; turn on the hotspot or Wi-Fi.")
        address = chosen.address
    port = body.port or services.settings.share_port or services.settings.port
    return _state(await services.share().start(address, port, body.secure), services)


@router.delete("/api/sharing")
async def stop_sharing(services: ServicesDep) -> Any:
    await services.share().stop()
    return _state(None, services)


@router.get("/api/pairing/code")
async def pairing_code(services: ServicesDep) -> Any:
    """The code the QR carries, for the owner's own screen or a script of theirs."""
    state = services.share().state
    code, left = services.pairing.code()
    assert state is not None
    return {"code": code, "expires_in": round(left, 1), "link": f"{state.origin}/pair#{code}"}


@router.get("/api/pairing/requests")
async def pairing_requests(services: ServicesDep) -> Any:
    return [{"id": r.id, "name": r.name, "confirm": r.confirm, "address": r.address}
            for r in services.pairing.waiting()]


@router.post("/api/pairing/requests/{request_id}/{answer}")
async def answer_request(request_id: str, answer: str, services: ServicesDep) -> Any:
    if answer not in ("approve", "deny"):
        raise not_found("Answer with approve or deny.")
    if answer == "approve":
        services.pairing.approve(request_id)
    else:
        services.pairing.deny(request_id)
    return {"id": request_id, "state": "approved" if answer == "approve" else "denied"}


@router.get("/api/devices")
async def devices(services: ServicesDep) -> Any:
    return [_device(d) for d in services.devices.list()]


@router.delete("/api/devices/{device_id}")
async def revoke(device_id: str, services: ServicesDep) -> Any:
    if not await services.devices.revoke(device_id):
        raise not_found("No paired device has that id.")
    return {"id": device_id, "revoked": True}
