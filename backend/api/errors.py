"""OpenAI-style error objects for everything under /v1."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..runtime.child import EngineError
from ..runtime.protocol import ErrorCode
from ..runtime.scheduler import EngineBusy

__all__ = ["ApiError", "error_body", "error_type", "install_error_handlers", "status_for"]

_STATUS = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.CONTEXT_LENGTH_EXCEEDED: 400,
    "model_not_found": 404,
    ErrorCode.MODEL_LOAD_FAILED: 500,
    ErrorCode.WORKER_CRASHED: 500,
    ErrorCode.BUSY: 503,
    ErrorCode.INSUFFICIENT_MEMORY: 503,
    ErrorCode.CANCELLED: 499,
    ErrorCode.INTERNAL: 500,
}


def error_type(status: int) -> str:
    return "invalid_request_error" if status < 500 else "server_error"


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 type_: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.type = type_ or error_type(status)


def error_body(message: str, *, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def status_for(code: str) -> int:
    return _STATUS.get(code, 500)


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=body, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Only /v1 paths get OpenAI-shaped errors; other routes keep the framework's handling."""
    default_validation = app.exception_handlers.get(RequestValidationError)
    default_http = app.exception_handlers.get(StarletteHTTPException)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _json(exc.status, error_body(exc.message, type_=exc.type, code=exc.code, param=exc.param))

    @app.exception_handler(EngineError)
    async def _engine_error(_: Request, exc: EngineError) -> JSONResponse:
        status = status_for(exc.code)
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, EngineBusy) else None
        return _json(status, error_body(exc.message, code=exc.code, type_=error_type(status)), headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Any:
        if not request.url.path.startswith("/v1/"):
            if default_validation is not None:
                return await default_validation(request, exc)  # type: ignore[misc]
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            return _json(400, error_body("the request body is not valid JSON", type_="invalid_request_error",
                                         code="invalid_json"))
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = ".".join(loc) or None
        message = f"{param}: {first.get('msg', 'invalid value')}" if param else first.get("msg", "invalid request")
        return _json(400, error_body(message, type_="invalid_request_error", code="invalid_value", param=param))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Any:
        if not request.url.path.startswith("/v1/") and default_http is not None:
            return await default_http(request, exc)  # type: ignore[misc]
        return _json(exc.status_code, error_body(str(exc.detail), type_="invalid_request_error",
                                                 code="not_found" if exc.status_code == 404 else None))
