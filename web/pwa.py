"""What makes the web app installable: the manifest, the service worker and the icons.
These need no credential (the browser fetches them without cookies in some cases)."""

from __future__ import annotations

from functools import cache

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response
from nicegui import __version__ as nicegui_version

from backend import __version__
from backend.core.resources import STATIC_DIR

__all__ = ["PUBLIC_PATHS", "STATIC_DIR", "router"]

PUBLIC_PATHS = {"/manifest.webmanifest", "/sw.js", "/favicon.ico"}
router = APIRouter()


@cache
def _service_worker() -> bytes:
    source = (STATIC_DIR / "sw.js").read_text(encoding="utf-8")
    return source.replace("__VERSION__", f"{__version__}-{nicegui_version}-{_static_stamp()}").encode()


def _static_stamp() -> str:
    """Changes when any file in static/ changes, so an update replaces the cached copies."""
    newest = max(p.stat().st_mtime_ns for p in STATIC_DIR.rglob("*") if p.is_file())
    return format(newest // 1_000_000_000, "x")


@router.get("/sw.js", include_in_schema=False)
async def service_worker() -> Response:
    # served from the root so that its scope is the whole app
    return Response(_service_worker(), media_type="text/javascript",
                    headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"})


@router.get("/manifest.webmanifest", include_in_schema=False)
async def manifest() -> FileResponse:
    return FileResponse(STATIC_DIR / "manifest.webmanifest", media_type="application/manifest+json",
                        headers={"Cache-Control": "no-cache"})
