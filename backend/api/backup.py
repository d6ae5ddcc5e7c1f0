"""Backup and restore over HTTP (the owner's only: the paths are in the gate's admin prefixes).

- `GET /api/backup?models=0|1` streams the archive as it is written: `write_backup` runs in a thread
  and writes into a bounded queue that the response drains (a slow client slows the writer, nothing
  waits in a temporary file); a client that leaves stops the writer.
- `POST /api/restore` takes the archive as the raw request body, streamed into the staging step as
  it arrives (never held in memory), then puts it in place live; answers `{"restored": {counts}}`.
- `GET /api/backup/files/{name}` downloads a backup the Backup page had the server write.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.requests import ClientDisconnect

from ..core.config import Settings
from ..core.errors import AppError, ErrorCode
from ..storage.backup import check_and_stage, write_backup
from ..storage.backup_folder import backup_name
from .byte_bridge import LoopReader, LoopWriter
from .deps import ServicesDep
from .responses import not_found
from .streaming import ClosingStreamingResponse

__all__ = ["BACKUP_PATH", "RESTORE_PATH", "router"]

log = logging.getLogger(__name__)

BACKUP_PATH = "/api/backup"
RESTORE_PATH = "/api/restore"
TAR = "application/x-tar"
DRAIN_S = 30.0
router = APIRouter(include_in_schema=False)


def _attachment(name: str) -> dict[str, str]:
    # the names are ours (digits and dashes): no quoting needed
    return {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}


def _write(out: LoopWriter, settings: Settings, include_models: bool) -> None:
    """On a worker thread: the whole backup into the bridge; its end, or its error, last."""
    try:
        write_backup(out, settings, include_models=include_models)  # type: ignore[arg-type]
    except BaseException as exc:
        out.finish(exc)
    else:
        out.finish()


@router.get(BACKUP_PATH)
async def download_backup(services: ServicesDep, models: int = Query(default=0, ge=0, le=1)) -> Any:
    streaming = services.backups.streaming()
    streaming.__enter__()  # refused while a restore is put in place
    out = LoopWriter(asyncio.get_running_loop(), max_chunks=8)
    writer = asyncio.create_task(asyncio.to_thread(_write, out, services.settings, bool(models)))

    async def end() -> None:
        out.abandon()
        with contextlib.suppress(Exception):
            await writer
        streaming.__exit__(None, None, None)

    try:  # the first piece (after the database is copied), so that nothing to back up is still a plain error
        first = await out.next()
    except BaseException:
        await end()
        raise

    async def body() -> AsyncIterator[bytes]:
        try:
            piece = first
            while piece is not None:
                yield piece
                piece = await out.next()
        except Exception:  # the headers are gone: all a client can be told is a cut-off archive
            log.exception("a backup stream failed")
            raise
        finally:
            await end()

    return ClosingStreamingResponse(body(), media_type=TAR, headers=_attachment(backup_name()))


@router.get(BACKUP_PATH + "/files/{name}")
async def backup_file(name: str, services: ServicesDep) -> FileResponse:
    path = services.backups.file(name)
    if path is None:
        raise not_found("There is no backup with that name (only the newest one is kept).")
    return FileResponse(path, media_type=TAR, headers=_attachment(name))


@router.post(RESTORE_PATH)
async def restore_backup(request: Request, services: ServicesDep) -> dict[str, Any]:
    try:
        services.check_can_restore()  # before the whole upload is read
    except AppError:
        with contextlib.suppress(TimeoutError, ClientDisconnect):
            async with asyncio.timeout(DRAIN_S):  # read what is on its way, so the refusal reaches the client
                async for _ in request.stream():
                    pass
        raise
    reader = LoopReader(asyncio.get_running_loop())
    feeder = asyncio.create_task(reader.feed(request.stream()))
    try:
        staged = await asyncio.to_thread(check_and_stage, io.BufferedReader(reader, 1024 * 1024),
                                         services.settings)
    except ClientDisconnect:
        raise AppError(ErrorCode.UPLOAD_INTERRUPTED, "The upload was interrupted; nothing was changed.") from None
    finally:
        reader.abandon()
        try:  # the rest of a refused upload, so the refusal reaches the client
            await asyncio.wait_for(feeder, DRAIN_S)
        except (TimeoutError, ClientDisconnect):
            pass
    return {"restored": await services.restore(staged)}
