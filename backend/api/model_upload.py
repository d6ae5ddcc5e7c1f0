"""PUT /api/models/upload: a model file from the owner's device, streamed to disk.

The body is the raw file (no multipart, no base64), written as it arrives into the
models folder's partial area, checked (magic bytes, header), and only then moved into
place and registered. Anything wrong leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.requests import ClientDisconnect

from ..core.errors import AppError, ErrorCode
from ..core.units import format_bytes
from ..models.downloads import free_space_problem
from ..models.names import UnsafeName, safe_relative_path
from .deps import ServicesDep

__all__ = ["UPLOAD_PATH", "router"]

UPLOAD_PATH = "/api/models/upload"
router = APIRouter()


@router.put(UPLOAD_PATH, include_in_schema=False)
async def upload_model(request: Request, services: ServicesDep, filename: str = Query(max_length=200),
                       job: str = Query(default="chat", pattern="^(chat|images)$")) -> Any:
    try:
        name = safe_relative_path(filename)
    except UnsafeName as exc:
        raise AppError(ErrorCode.BAD_REQUEST, str(exc), param="filename") from None
    if "/" in name:
        raise AppError(ErrorCode.BAD_REQUEST, "send a file name without folders", param="filename")
    declared = request.headers.get("content-length", "")
    if not declared.isdigit():
        raise AppError(ErrorCode.LENGTH_REQUIRED, "the upload must say its length (Content-Length)")
    size = int(declared)
    folder = services.settings.model_folder
    problem = await asyncio.to_thread(free_space_problem, folder, size)
    if problem is not None:
        raise AppError(ErrorCode.DISK_FULL, problem)
    staging = folder / ".partial" / f"upload-{uuid.uuid4().hex[:12]}"
    target = staging / name
    try:
        await asyncio.to_thread(staging.mkdir, parents=True)
        received = await _receive(request, target)
        if received != size:
            raise AppError(ErrorCode.UPLOAD_INTERRUPTED,
                           f"the upload stopped after {format_bytes(received)} of {format_bytes(size)}")
        record = await services.models.import_file(target, job, move=True)
    except ClientDisconnect:  # the device went away mid-upload: nothing is kept
        raise AppError(ErrorCode.UPLOAD_INTERRUPTED, "the upload was interrupted") from None
    finally:
        await asyncio.to_thread(shutil.rmtree, staging, True)
    return {"id": record.id, "name": record.name, "job": record.job, "size_bytes": record.size_bytes}


async def _receive(request: Request, target: Path) -> int:
    received = 0
    fh = await asyncio.to_thread(target.open, "wb")
    try:
        async for chunk in request.stream():
            received += len(chunk)
            await asyncio.to_thread(fh.write, chunk)
    finally:
        await asyncio.to_thread(fh.close)
    return received
