"""What makes the web app installable: the manifest, the service worker and the icons.
These need no credential (the browser fetches them without cookies in some cases).

The manifest's description (what an install prompt and the phone's app list show) is in the
browser's language: its choice of language when the request carries it, else its
Accept-Language. In English it is `static/manifest.webmanifest` as it is."""

from __future__ import annotations

import json
from functools import cache

from fastapi import APIRouter, Request
from fastapi.responses import Response
from nicegui import __version__ as nicegui_version

from backend import __version__
from backend.core.i18n import COOKIE, DEFAULT, _, negotiate, use_locale
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


@cache
def _manifest(language: str) -> bytes:
    source = (STATIC_DIR / "manifest.webmanifest").read_bytes()
    if language == DEFAULT:
        return source
    data = json.loads(source)
    with use_locale(DEFAULT):
        english = _description()
    if data.get("description") == english:  # a description changed in the file alone stays as written
        with use_locale(language):
            data["description"] = _description()
    data["lang"] = language
    return json.dumps(data, ensure_ascii=False, indent=2).encode()


def _description() -> str:
    return _("Private AI that lives on your phone: chat, photos, voice and images, all on the device.")


@router.get("/manifest.webmanifest", include_in_schema=False)
async def manifest(request: Request) -> Response:
    language = negotiate(request.headers.get("accept-language"), request.cookies.get(COOKIE))
    return Response(_manifest(language), media_type="application/manifest+json",
                    headers={"Cache-Control": "no-cache", "Vary": "Accept-Language, Cookie"})
