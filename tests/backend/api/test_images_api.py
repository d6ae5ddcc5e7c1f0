"""`POST /v1/images/generations` through the official `openai` client, and the gallery's routes,
on a real server with the random-weight SDXS model registered."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx
import openai
import pytest
from PIL import Image

from tests.loops import run_alone
from tests.sdmodels import register_image_model
from tests.server import ServerProcess
from tests.threads import ENGINE_THREADS

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sdxs_path: Path) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("images-api") / "data"
    data.mkdir()
    run_alone(register_image_model(data / "gridless.db", sdxs_path))
    srv = ServerProcess(data_dir=data, env={"GRIDLESS_THREADS": str(ENGINE_THREADS)})
    srv.start(timeout=90)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base}/v1", api_key=server.token, timeout=180, max_retries=0)


def png(data: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    picture.load()
    return picture


def post(server: ServerProcess, body: dict[str, Any], *, auth: bool = True) -> httpx.Response:
    return httpx.post(f"{server.base}/v1/images/generations", json=body, timeout=180,
                      headers=server.headers() if auth else {})


def get(server: ServerProcess, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{server.base}{path}", params=params, headers=server.headers(), timeout=30)


def generated(server: ServerProcess, **body: Any) -> list[dict[str, Any]]:
    """Make pictures through the API; the gallery rows of them, in the order made."""
    response = post(server, {"prompt": "a quiet harbour", "size": "128x128", "steps": 1, "response_format": "url",
                             **body})
    assert response.status_code == 200, response.text
    ids = [item["url"].split("/")[-2] for item in response.json()["data"]]
    rows = [get(server, f"/api/images/{i}").json() for i in ids]
    assert [r["id"] for r in rows] == ids
    return rows


def test_two_pictures_with_consecutive_seeds(client: openai.OpenAI) -> None:
    response = client.images.generate(prompt="a red apple on a table", size="128x128", n=2,
                                      extra_body={"steps": 1, "seed": 3})
    assert response.data is not None and len(response.data) == 2
    dumped = response.model_dump()
    assert dumped["size"] == "128x128" and dumped["output_format"] == "png"
    for item, seed in zip(response.data, (3, 4), strict=True):
        assert item.b64_json is not None and item.url is None
        picture = png(base64.b64decode(item.b64_json))
        assert (picture.format, picture.size) == ("PNG", (128, 128))
        assert item.model_dump()["seed"] == seed
        assert picture.info["seed"] == str(seed) and picture.info["software"] == "gridless"
        # the model's suited settings fill in what was not asked for
        assert picture.info["parameters"] == ("a red apple on a table\nSteps: 1, Sampler: euler_a, CFG scale: 1, "
                                              f"Seed: {seed}, Size: 128x128, Model: Tiny SDXS")


def test_extras_are_used(client: openai.OpenAI) -> None:
    response = client.images.generate(prompt="a blue door", size="128x64", extra_body={
        "steps": 2, "seed": 77, "cfg_scale": 2.5, "sampler": "euler", "negative_prompt": "people"})
    assert response.data is not None and len(response.data) == 1 and response.data[0].b64_json is not None
    picture = png(base64.b64decode(response.data[0].b64_json))
    assert picture.size == (128, 64)
    assert picture.info["parameters"] == ("a blue door\nNegative prompt: people\nSteps: 2, Sampler: euler, "
                                          "CFG scale: 2.5, Seed: 77, Size: 128x64, Model: Tiny SDXS")


def test_a_link_serves_the_picture_with_the_credential(client: openai.OpenAI, server: ServerProcess) -> None:
    response = client.images.generate(prompt="a red apple", size="128x128", response_format="url",
                                      extra_body={"steps": 1, "seed": 5})
    assert response.data is not None and len(response.data) == 1
    url = response.data[0].url
    assert url is not None and response.data[0].b64_json is None
    assert url.startswith(f"{server.base}/api/images/") and url.endswith("/file")
    served = httpx.get(url, headers=server.headers(), timeout=30)
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    picture = png(served.content)
    assert picture.size == (128, 128) and picture.info["seed"] == "5"
    assert httpx.get(url, timeout=30).status_code == 401


class JsonResponse(Protocol):
    def json(self) -> Any: ...


def error_of(response: JsonResponse) -> dict[str, Any]:
    """The OpenAI-style error of an answer (from httpx or from the client's exception)."""
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    return error


def test_bad_requests_get_openai_errors(server: ServerProcess, client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(prompt="x", size="100x7")  # type: ignore[arg-type]
    assert caught.value.status_code == 400
    error = error_of(caught.value.response)
    assert (error["param"], error["code"], error["type"]) == ("size", "invalid_value", "invalid_request_error")

    error = error_of(response := post(server, {"prompt": "x", "size": "100x100"}))  # not a multiple of 8
    assert response.status_code == 400 and error["param"] == "size"
    error = error_of(response := post(server, {"prompt": "x", "size": "128x128", "n": 9}))
    assert response.status_code == 400 and error["param"] == "n"
    error = error_of(response := post(server, {"prompt": "", "size": "128x128"}))
    assert response.status_code == 400 and error["param"] == "prompt"
    error = error_of(response := post(server, {"prompt": "   ", "size": "128x128"}))
    assert response.status_code == 400 and error["param"] == "prompt"
    error = error_of(response := post(server, {"prompt": "x", "size": "128x128", "sampler": "warp"}))
    assert response.status_code == 400 and error["param"] == "sampler"

    with pytest.raises(openai.NotFoundError) as missing:
        client.images.generate(prompt="x", size="128x128", model="no-such-model")
    assert missing.value.status_code == 404 and error_of(missing.value.response)["code"] == "model_not_found"

    response = post(server, {"prompt": "x", "size": "128x128"}, auth=False)
    assert response.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.base}/v1", api_key="wrong-token-0123456789", max_retries=0) \
            .images.generate(prompt="x", size="128x128")


def test_the_gallery_lists_newest_first_with_a_cursor(server: ServerProcess) -> None:
    older = generated(server, seed=100)
    batch = generated(server, seed=200, n=3)
    assert [r["seed"] for r in batch] == [200, 201, 202]
    listed = get(server, "/api/images", limit=200).json()
    times = [r["created_at"] for r in listed]
    assert times == sorted(times, reverse=True) and len(set(times)) == len(times)
    assert [r["id"] for r in listed[:4]] == [batch[2]["id"], batch[1]["id"], batch[0]["id"], older[0]["id"]]
    assert listed[0] == batch[2] and "path" not in listed[0] and listed[0]["origin"] == "api"

    pages: list[dict[str, Any]] = []
    page = get(server, "/api/images", limit=2).json()
    while page:
        assert len(page) <= 2
        pages += page
        page = get(server, "/api/images", limit=2, before=page[-1]["created_at"]).json()
    assert pages == listed
    assert get(server, "/api/images", limit=0).status_code == 422
    assert httpx.get(f"{server.base}/api/images", timeout=30).status_code == 401


def test_one_picture_its_file_and_thumbnail(server: ServerProcess) -> None:
    [row] = generated(server, prompt="A Tiny  Red/Apple, on wood!", seed=321)
    assert (row["prompt"], row["seed"], row["width"], row["height"], row["steps"]) == \
        ("A Tiny  Red/Apple, on wood!", 321, 128, 128, 1)
    assert row["model"] == "tiny-sdxs" and row["model_name"] == "Tiny SDXS"
    assert row["url"] == f"/api/images/{row['id']}/file" and row["thumbnail"] == f"/api/images/{row['id']}/thumb"

    inline = get(server, row["url"])
    assert inline.status_code == 200 and inline.headers["content-disposition"].startswith("inline;")
    download = get(server, row["url"], download=1)
    assert download.status_code == 200 and download.headers["content-type"] == "image/png"
    assert download.headers["content-disposition"] == "attachment; filename*=UTF-8''a-tiny-redapple-on-wood-321.png"
    assert download.content == inline.content and png(download.content).info["seed"] == "321"

    thumb = get(server, row["thumbnail"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    picture = png(thumb.content)
    assert picture.format == "JPEG" and picture.size == (128, 128)


def test_delete_one_and_several(server: ServerProcess) -> None:
    one, two, three = generated(server, seed=900, n=3)
    url = f"{server.base}/api/images/{one['id']}"
    deleted = httpx.delete(url, headers=server.headers(), timeout=30)
    assert deleted.status_code == 200 and deleted.json() == {"id": one["id"], "deleted": True}
    for path in ("", "/file", "/thumb"):
        assert get(server, f"/api/images/{one['id']}{path}").status_code == 404
    assert httpx.delete(url, headers=server.headers(), timeout=30).status_code == 404
    assert httpx.delete(url, timeout=30).status_code == 401

    several = httpx.post(f"{server.base}/api/images/delete", headers=server.headers(), timeout=30,
                         json={"ids": [two["id"], three["id"], "no-such-image", one["id"]]})
    assert several.status_code == 200 and several.json() == {"deleted": 2}
    left = {r["id"] for r in get(server, "/api/images", limit=200).json()}
    assert not left & {one["id"], two["id"], three["id"]}
    assert get(server, f"/api/images/{three['id']}/file").status_code == 404
    empty = httpx.post(f"{server.base}/api/images/delete", headers=server.headers(), timeout=30, json={"ids": []})
    assert empty.status_code == 422


def test_unknown_ids_are_404(server: ServerProcess) -> None:
    for path in ("", "/file", "/thumb"):
        response = get(server, f"/api/images/no-such-image{path}")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    response = httpx.delete(f"{server.base}/api/images/no-such-image", headers=server.headers(), timeout=30)
    assert response.status_code == 404
