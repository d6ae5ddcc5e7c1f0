"""The routes a tablet uses before it is paired: the pair page, asking, waiting, and the CA.

They need no credential (that is their purpose) and carry nothing of the owner's: the
pairing code arrives in a request body, never a URL, and the answer comes back as an
HttpOnly cookie.
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.applications import Starlette
from starlette.routing import Route

from ..core.errors import AppError, ErrorCode
from ..core.resources import STATIC_DIR
from ..security.certs import LocalCA
from ..security.devices import DeviceStore
from ..security.middleware import principal_of
from ..security.pairing import COLLECT_WITHIN_S
from ..security.policy import cookie_header
from .deps import ServicesDep

__all__ = ["CA_PATHS", "PAIR_PATHS", "guide_app", "router"]

PAIRING_COOKIE = "gridless_pairing"
PAIR_PATHS = {"/pair", "/api/pair", "/api/pair/status"}
CA_PATHS = {"/ca", "/ca/gridless-ca.crt", "/ca/gridless-ca.pem", "/ca/style.css"}
router = APIRouter(include_in_schema=False)


class PairAsk(BaseModel):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(default="", max_length=200)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


@router.get("/pair")
async def pair_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "pair.html", media_type="text/html", headers={"Cache-Control": "no-store"})


@router.post("/api/pair")
async def ask(request: Request, services: ServicesDep) -> Any:
    principal = principal_of(request.scope)
    if principal is not None and not principal.is_owner:
        return {"state": "approved", "name": principal.name}  # already paired: the code stays unused
    try:
        body = PairAsk.model_validate_json(await request.body())
    except ValidationError:
        raise AppError(ErrorCode.BAD_REQUEST,
                       "Send the pairing code as JSON: {\"code\": \"…\", \"name\": \"…\"}.") from None
    client = request.client.host if request.client else ""
    asked = services.pairing.ask(body.code, body.name, client, request.headers.get("user-agent", ""))
    response = JSONResponse({"state": asked.state, "confirm": asked.confirm, "name": asked.name})
    response.headers["set-cookie"] = cookie_header(PAIRING_COOKIE, asked.id, secure=_secure(request),
                                                   path="/api/pair", max_age=int(services.pairing.ttl_s
                                                                                 + COLLECT_WITHIN_S))
    return response


@router.get("/api/pair/status")
async def status(request: Request, services: ServicesDep) -> Any:
    request_id = request.cookies.get(PAIRING_COOKIE)
    asked = services.pairing.status(request_id)
    if asked is None or request_id is None:
        raise AppError(ErrorCode.UNKNOWN_REQUEST, "There is no pairing request from this browser; scan the QR "
                                                  "code again.")
    body = {"state": asked.state, "confirm": asked.confirm, "name": asked.name}
    if asked.state != "approved":
        return body
    collected = await services.pairing.collect(request_id)
    if collected is None:
        raise AppError(ErrorCode.UNKNOWN_REQUEST, "This request was already completed.")
    device, token = collected
    response = JSONResponse({**body, "name": device.name})
    response.headers.append("set-cookie", cookie_header(DeviceStore.COOKIE, token, secure=_secure(request)))
    response.headers.append("set-cookie", cookie_header(PAIRING_COOKIE, "", secure=_secure(request),
                                                        path="/api/pair", max_age=0))
    return response


# the certificate authority, for secure mode

def _guide(certs: LocalCA, https_origin: str | None) -> str:
    fingerprint = html.escape(certs.fingerprint())
    next_step = (f"<p>Then open <a href='{html.escape(https_origin)}/pair'>{html.escape(https_origin)}</a> "
                 f"or scan the pairing QR code again.</p>") if https_origin else ""
    return (STATIC_DIR / "ca.html").read_text(encoding="utf-8") \
        .replace("{{fingerprint}}", fingerprint).replace("{{next}}", next_step)


def _ca_routes(certs: LocalCA, https_origin: Any) -> list[Route]:
    async def guide(request: Request) -> Response:
        return Response(_guide(certs, https_origin()), media_type="text/html",
                        headers={"Cache-Control": "no-store"})

    async def der(request: Request) -> Response:
        return Response(certs.ca_der(), media_type="application/x-x509-ca-cert",
                        headers={"Content-Disposition": 'attachment; filename="gridless-ca.crt"',
                                 "Cache-Control": "no-store"})

    async def pem(request: Request) -> Response:
        return Response(certs.ca_pem(), media_type="application/x-pem-file",
                        headers={"Content-Disposition": 'attachment; filename="gridless-ca.pem"',
                                 "Cache-Control": "no-store"})

    async def style(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "standalone.css", media_type="text/css")

    return [Route("/ca", guide), Route("/ca/gridless-ca.crt", der), Route("/ca/gridless-ca.pem", pem),
            Route("/ca/style.css", style)]


def add_ca_routes(app: Any, certs: LocalCA, https_origin: Any) -> None:
    for route in _ca_routes(certs, https_origin):
        app.router.routes.append(route)


def guide_app(certs: LocalCA, https_origin: Any) -> Starlette:
    """The plain-HTTP listener beside an HTTPS share: the CA and how to install it, nothing else."""
    return Starlette(routes=_ca_routes(certs, https_origin))
