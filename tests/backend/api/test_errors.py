"""One handler answers every route's errors in the caller's shape."""

from __future__ import annotations

import httpx
from fastapi import FastAPI, Query

from backend.api.errors import install_error_handlers
from backend.core.errors import AppError, ErrorCode


def app() -> FastAPI:
    application = FastAPI()
    install_error_handlers(application)

    @application.get("/v1/thing")
    async def v1_thing(n: int = Query(ge=1)) -> dict[str, int]:
        if n == 7:
            raise AppError(ErrorCode.BUSY, "the engine is busy", retry_after=5)
        return {"n": n}

    @application.get("/api/thing")
    async def api_thing(n: int = Query(ge=1)) -> dict[str, int]:
        if n == 7:
            raise AppError(ErrorCode.NOT_FOUND, "There is no thing 7.")
        return {"n": n}

    @application.get("/page")
    async def page() -> dict[str, str]:
        raise AppError(ErrorCode.OWNER_ONLY, "Only the owner <b>may</b>.")

    return application


async def get(path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app()), base_url="http://test") as client:
        return await client.get(path)


async def test_an_app_error_under_v1_is_an_openai_error_with_its_status_and_retry() -> None:
    response = await get("/v1/thing?n=7")
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.json() == {"error": {"message": "the engine is busy", "type": "server_error", "param": None,
                                         "code": "busy"}}


async def test_an_app_error_under_api_is_the_apps_own_shape() -> None:
    response = await get("/api/thing?n=7")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "There is no thing 7."}}


async def test_validation_is_400_under_v1_and_422_under_api_naming_the_field() -> None:
    v1 = await get("/v1/thing?n=0")
    assert v1.status_code == 400 and v1.json()["error"]["code"] == "invalid_value"
    assert v1.json()["error"]["param"] == "query.n"
    api = await get("/api/thing?n=zero")
    assert api.status_code == 422 and api.json()["error"]["code"] == "invalid_value"
    assert api.json()["error"]["message"].startswith("query.n:")


async def test_unknown_routes_answer_in_the_shape_of_their_path() -> None:
    assert (await get("/v1/nothing")).json()["error"]["code"] == "not_found"
    assert (await get("/api/nothing")).json() == {"error": {"code": "not_found", "message": "Not Found"}}


async def test_an_error_on_a_page_is_a_short_escaped_page() -> None:
    response = await get("/page")
    assert response.status_code == 403 and response.headers["content-type"].startswith("text/html")
    assert "Only the owner &lt;b&gt;may&lt;/b&gt;." in response.text
