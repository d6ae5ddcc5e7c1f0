"""One way errors are answered: `AppError` (and the framework's own errors) in the caller's shape.

Routes raise `AppError`; these handlers answer it with `render_error`: OpenAI's error object
under `/v1`, `{"error": {"code", "message"}}` under `/api`, a short page elsewhere. A request
that fails validation is 400 `invalid_value` under `/v1` (OpenAI's clients expect 400) and 422
under `/api`; the framework's own 404/405 take the same shapes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..core.errors import AppError, ErrorCode, ErrorShape, render_error, shape_for

__all__ = ["error_response", "install_error_handlers", "validation_error"]


def error_response(error: AppError, path: str) -> Response:
    body, media_type, headers = render_error(error, path)
    return Response(body, status_code=error.status, media_type=media_type, headers=headers)


def validation_error(errors: list[Any], shape: ErrorShape) -> AppError:
    """The first problem pydantic found, as an AppError naming the field."""
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return AppError(ErrorCode.INVALID_JSON, "the request body is not valid JSON",
                        status=400 if shape is ErrorShape.OPENAI else 422)
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    message = f"{param}: {first.get('msg', 'invalid value')}" if param else first.get("msg", "invalid request")
    return AppError(ErrorCode.INVALID_VALUE, message, param=param, status=400 if shape is ErrorShape.OPENAI else 422)


def install_error_handlers(app: FastAPI) -> None:
    default_validation = app.exception_handlers.get(RequestValidationError)
    default_http = app.exception_handlers.get(StarletteHTTPException)

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        return error_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Any:
        shape = shape_for(request.url.path)
        if shape is ErrorShape.PAGE and default_validation is not None:
            return await default_validation(request, exc)  # type: ignore[misc]
        return error_response(validation_error(list(exc.errors()), shape), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Any:
        if shape_for(request.url.path) is ErrorShape.PAGE and default_http is not None:
            return await default_http(request, exc)  # type: ignore[misc]
        code = ErrorCode.NOT_FOUND if exc.status_code == 404 else ErrorCode.BAD_REQUEST
        return error_response(AppError(code, str(exc.detail), status=exc.status_code), request.url.path)
