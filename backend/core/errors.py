"""The one error type of the application, its stable codes, and how an error is answered.

Every failure a person or a client program should understand is an `AppError`: a code
from `ErrorCode` (stable, machine-readable, each with its HTTP status) and a message in
plain words. Engines raise it in their worker (it crosses the pipe as code and message),
services and routes raise it, and one renderer answers it in the shape the caller speaks:
OpenAI's error object under `/v1`, the app's own `{"error": {"code", "message"}}` under
`/api`, and a short page elsewhere. Pages show `message` as it is.
"""

from __future__ import annotations

import html
import json
from enum import StrEnum

__all__ = ["AppError", "ErrorCode", "ErrorShape", "render_error", "shape_for"]


class ErrorCode(StrEnum):
    """Stable error codes. A code is a string, so it compares equal to its value and is
    written to JSON as it is; its HTTP status is `status`."""

    # the request itself
    BAD_REQUEST = "bad_request"
    INVALID_VALUE = "invalid_value"
    INVALID_JSON = "invalid_json"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    MODEL_NOT_FOUND = "model_not_found"
    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
    UNSUPPORTED_CONTENT = "unsupported_content"
    INVALID_IMAGE_URL = "invalid_image_url"
    UNSUPPORTED_IMAGE_URL = "unsupported_image_url"
    MODEL_CANNOT_SEE = "model_cannot_see"
    NOTHING_TO_READ = "nothing_to_read"
    NOTHING_TO_SAY = "nothing_to_say"
    NOT_RUNNING = "not_running"
    ANSWER_RUNNING = "answer_running"
    # files sent in
    FILE_TOO_LARGE = "file_too_large"
    REQUEST_TOO_LARGE = "request_too_large"
    LENGTH_REQUIRED = "length_required"
    UPLOAD_INTERRUPTED = "upload_interrupted"
    EMPTY_IMAGE = "empty_image"
    NOT_IMAGE = "not_image"
    UNSUPPORTED_IMAGE = "unsupported_image"
    BROKEN_IMAGE = "broken_image"
    IMAGE_TOO_LARGE = "image_too_large"
    EMPTY_DOCUMENT = "empty_document"
    NOT_A_DOCUMENT = "not_a_document"
    DOCUMENT_TOO_LARGE = "document_too_large"
    BROKEN_PDF = "broken_pdf"
    ENCRYPTED_PDF = "encrypted_pdf"
    NO_TEXT = "no_text"
    EMPTY_AUDIO = "empty_audio"
    NOT_AUDIO = "not_audio"
    INVALID_AUDIO = "invalid_audio"
    AUDIO_TOO_LARGE = "audio_too_large"
    AUDIO_TOO_LONG = "audio_too_long"
    # models
    INVALID_MODEL_FILE = "invalid_model_file"
    MODEL_REFUSED = "model_refused"
    MODEL_LOAD_FAILED = "model_load_failed"
    TEMPLATE_TIMEOUT = "template_timeout"
    DOWNLOAD_FAILED = "download_failed"
    DISK_FULL = "disk_full"
    HUB_UNAVAILABLE = "hub_unavailable"
    REMOTE_UNAVAILABLE = "remote_unavailable"
    """An engine server the owner added cannot be reached, or went away mid-answer."""
    REMOTE_FAILED = "remote_failed"
    """An engine server answered with an error, or with something that is not OpenAI's API."""
    REMOTE_UNTRUSTED = "remote_untrusted"
    """An https engine server's certificate is not trusted (and no fingerprint was pinned for it)."""
    REMOTE_REFUSED = "remote_refused"
    """An engine server refused the key it was given."""
    # engines and capacity
    BUSY = "busy"
    INSUFFICIENT_MEMORY = "insufficient_memory"
    WORKER_CRASHED = "worker_crashed"
    ENGINE_STALLED = "engine_stalled"
    CANCELLED = "cancelled"
    TRANSCRIPTION_FAILED = "transcription_failed"
    # access, pairing and sharing
    UNAUTHORIZED = "unauthorized"
    INVALID_TOKEN = "invalid_token"
    OWNER_ONLY = "owner_only"
    KEY_SCOPE = "key_scope"
    """An app's key was used for something outside the scopes it was given."""
    CROSS_ORIGIN = "cross_origin"
    INVALID_HOST = "invalid_host"
    INVALID_CODE = "invalid_code"
    TOO_MANY_ATTEMPTS = "too_many_attempts"
    TOO_MANY_WAITING = "too_many_waiting"
    UNKNOWN_REQUEST = "unknown_request"
    NOT_SHARING = "not_sharing"
    CANNOT_SHARE = "cannot_share"
    NO_NETWORK = "no_network"
    CERTIFICATE_FAILED = "certificate_failed"
    # anything else
    INTERNAL = "internal_error"

    @property
    def status(self) -> int:
        """The HTTP status this code is answered with unless the error says otherwise."""
        return _STATUS.get(self, 400)


_STATUS: dict[ErrorCode, int] = {
    ErrorCode.NOT_FOUND: 404, ErrorCode.MODEL_NOT_FOUND: 404, ErrorCode.UNKNOWN_REQUEST: 404,
    ErrorCode.CONFLICT: 409, ErrorCode.NOT_RUNNING: 409, ErrorCode.ANSWER_RUNNING: 409, ErrorCode.CANNOT_SHARE: 409,
    ErrorCode.NO_NETWORK: 409, ErrorCode.NOT_SHARING: 409,
    ErrorCode.LENGTH_REQUIRED: 411,
    ErrorCode.FILE_TOO_LARGE: 413, ErrorCode.REQUEST_TOO_LARGE: 413, ErrorCode.IMAGE_TOO_LARGE: 413,
    ErrorCode.DOCUMENT_TOO_LARGE: 413, ErrorCode.AUDIO_TOO_LARGE: 413, ErrorCode.AUDIO_TOO_LONG: 413,
    ErrorCode.NOT_IMAGE: 415, ErrorCode.UNSUPPORTED_IMAGE: 415, ErrorCode.NOT_A_DOCUMENT: 415,
    ErrorCode.NOT_AUDIO: 415, ErrorCode.INVALID_AUDIO: 415,
    ErrorCode.BROKEN_IMAGE: 422, ErrorCode.BROKEN_PDF: 422, ErrorCode.ENCRYPTED_PDF: 422, ErrorCode.NO_TEXT: 422,
    ErrorCode.UNAUTHORIZED: 401, ErrorCode.INVALID_TOKEN: 401,
    ErrorCode.OWNER_ONLY: 403, ErrorCode.KEY_SCOPE: 403, ErrorCode.CROSS_ORIGIN: 403, ErrorCode.INVALID_CODE: 403,
    ErrorCode.TOO_MANY_ATTEMPTS: 429, ErrorCode.TOO_MANY_WAITING: 429,
    ErrorCode.CANCELLED: 499,
    ErrorCode.MODEL_LOAD_FAILED: 500, ErrorCode.TEMPLATE_TIMEOUT: 500, ErrorCode.WORKER_CRASHED: 500,
    ErrorCode.ENGINE_STALLED: 500,
    ErrorCode.TRANSCRIPTION_FAILED: 500, ErrorCode.CERTIFICATE_FAILED: 500, ErrorCode.INTERNAL: 500,
    ErrorCode.HUB_UNAVAILABLE: 502, ErrorCode.REMOTE_UNAVAILABLE: 502, ErrorCode.REMOTE_FAILED: 502,
    ErrorCode.REMOTE_UNTRUSTED: 502, ErrorCode.REMOTE_REFUSED: 502,
    ErrorCode.BUSY: 503, ErrorCode.INSUFFICIENT_MEMORY: 503,
    ErrorCode.DISK_FULL: 507,
}


class AppError(Exception):
    """A failure with a stable code and a message for people.

    `status` overrides the code's own HTTP status where the same failure means something else
    to a route (a missing pairing request is 404, the same code while sharing is off 409);
    `param` names the request field at fault (OpenAI's `param`); `retry_after` (seconds) is
    sent as `Retry-After`.
    """

    def __init__(self, code: ErrorCode | str, message: str, *, status: int | None = None,
                 param: str | None = None, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.code = _as_code(code)
        self.message = message
        self.status = status if status is not None else self.code.status
        self.param = param
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[object, ...]:
        # errors cross process boundaries in tests and tools; keep every field
        return (_rebuild, (type(self), self.code.value, self.message, self.status, self.param, self.retry_after))


def _rebuild(kind: type[AppError], code: str, message: str, status: int, param: str | None,
             retry_after: float) -> AppError:
    error = AppError.__new__(kind)
    AppError.__init__(error, code, message, status=status, param=param, retry_after=retry_after)
    return error


def _as_code(code: ErrorCode | str) -> ErrorCode:
    try:
        return ErrorCode(code)
    except ValueError:
        # a code this build does not know (a newer worker's, say) is still an error to report
        return ErrorCode.INTERNAL


class ErrorShape(StrEnum):
    OPENAI = "openai"
    APP = "app"
    PAGE = "page"


def shape_for(path: str) -> ErrorShape:
    """Which shape an error on `path` is answered in."""
    if path == "/v1" or path.startswith("/v1/"):
        return ErrorShape.OPENAI
    if path.startswith("/api/"):
        return ErrorShape.APP
    return ErrorShape.PAGE


def render_error(error: AppError, path: str) -> tuple[bytes, str, dict[str, str]]:
    """The body, content type and extra headers that answer `error` on `path`."""
    headers: dict[str, str] = {}
    if error.retry_after > 0:
        headers["Retry-After"] = str(int(error.retry_after) + (0 if error.retry_after == int(error.retry_after) else 1))
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="gridless"'
    shape = shape_for(path)
    if shape is ErrorShape.OPENAI:
        kind = ("authentication_error" if error.status == 401
                else "invalid_request_error" if error.status < 500 else "server_error")
        body = {"error": {"message": error.message, "type": kind, "param": error.param, "code": error.code.value}}
        return json.dumps(body).encode(), "application/json", headers
    if shape is ErrorShape.APP:
        return (json.dumps({"error": {"code": error.code.value, "message": error.message}}).encode(),
                "application/json", headers)
    page = (f"<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
            f"<title>gridless</title><h1>gridless</h1><p>{html.escape(error.message)}</p>")
    return page.encode(), "text/html; charset=utf-8", headers
