import json
import pickle
import re
from pathlib import Path

import pytest

from backend.core.errors import AppError, ErrorCode, ErrorShape, render_error, shape_for


def test_every_code_has_a_status_and_the_error_takes_it() -> None:
    assert ErrorCode.NOT_FOUND.status == 404 and ErrorCode.BUSY.status == 503
    assert ErrorCode.INVALID_AUDIO.status == 415 and ErrorCode.BAD_REQUEST.status == 400
    assert all(100 <= code.status < 600 for code in ErrorCode)
    error = AppError(ErrorCode.FILE_TOO_LARGE, "too big")
    assert (error.code, error.status, error.message) == (ErrorCode.FILE_TOO_LARGE, 413, "too big")
    assert str(error) == "too big"
    assert AppError(ErrorCode.NOT_SHARING, "off", status=403).status == 403


def test_codes_are_strings_and_unknown_ones_become_internal() -> None:
    assert ErrorCode.NOT_FOUND == "not_found" and json.dumps({"c": ErrorCode.NOT_FOUND}) == '{"c": "not_found"}'
    assert AppError("not_found", "x").code is ErrorCode.NOT_FOUND
    assert AppError("a_code_from_elsewhere", "x").code is ErrorCode.INTERNAL


def test_an_error_survives_pickling_with_its_fields() -> None:
    error = AppError(ErrorCode.TOO_MANY_ATTEMPTS, "wait", param="code", retry_after=12.5)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.code, copy.message, copy.status, copy.param, copy.retry_after) == \
        (ErrorCode.TOO_MANY_ATTEMPTS, "wait", 429, "code", 12.5)


@pytest.mark.parametrize(("path", "shape"), [("/v1/chat/completions", ErrorShape.OPENAI), ("/v1", ErrorShape.OPENAI),
                                             ("/api/images", ErrorShape.APP), ("/", ErrorShape.PAGE),
                                             ("/v1x", ErrorShape.PAGE), ("/models", ErrorShape.PAGE)])
def test_the_shape_follows_the_path(path: str, shape: ErrorShape) -> None:
    assert shape_for(path) is shape


def test_rendering_in_each_shape() -> None:
    error = AppError(ErrorCode.MODEL_NOT_FOUND, "no <such> model", param="model")
    body, media, headers = render_error(error, "/v1/chat/completions")
    assert media == "application/json" and headers == {}
    assert json.loads(body) == {"error": {"message": "no <such> model", "type": "invalid_request_error",
                                          "param": "model", "code": "model_not_found"}}
    body, _, _ = render_error(error, "/api/images/x")
    assert json.loads(body) == {"error": {"code": "model_not_found", "message": "no <such> model"}}
    body, media, _ = render_error(error, "/c/abc")
    assert media.startswith("text/html") and b"no &lt;such&gt; model" in body and b"<such>" not in body


def test_server_errors_authentication_and_retry_after() -> None:
    body, _, _ = render_error(AppError(ErrorCode.WORKER_CRASHED, "gone"), "/v1/x")
    assert json.loads(body)["error"]["type"] == "server_error"
    body, _, headers = render_error(AppError(ErrorCode.UNAUTHORIZED, "who?"), "/v1/x")
    assert json.loads(body)["error"]["type"] == "authentication_error" and "WWW-Authenticate" in headers
    assert render_error(AppError(ErrorCode.BUSY, "busy", retry_after=5), "/api/x")[2]["Retry-After"] == "5"
    assert render_error(AppError(ErrorCode.BUSY, "busy", retry_after=4.2), "/api/x")[2]["Retry-After"] == "5"


def test_every_code_is_documented_with_its_status() -> None:
    """docs/api.md's table of errors has a row for each code, naming its status."""
    text = (Path(__file__).resolve().parents[3] / "docs" / "api.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| ([0-9 /]+) \|", text, re.MULTILINE))
    for code in ErrorCode:
        assert code.value in rows, f"{code.value} is not in docs/api.md's table of errors"
        assert str(code.status) in rows[code.value], (code.value, code.status, rows[code.value])
