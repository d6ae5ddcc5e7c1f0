"""The old device's move routes: the code for a session, the manifest, and files served by byte range."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from backend.api import move as move_api
from backend.api.errors import install_error_handlers
from backend.models.registry import ModelRegistry
from backend.move.offer import MoveOffer, MoveOffers, OfferState
from backend.storage.db import Database

ARCHIVE = bytes(range(256)) * 4096 + b"tail"


async def write_archive(out: Path, progress: Callable[[int, int], None]) -> None:
    out.write_bytes(ARCHIVE)


class Old:
    def __init__(self, client: httpx.AsyncClient, offers: MoveOffers, offer: MoveOffer) -> None:
        self.client, self.offers, self.offer = client, offers, offer
        self.token = ""

    async def session(self) -> dict[str, str]:
        response = await self.client.post("/api/move/session", json={"code": self.offer.code})
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        self.token = response.json()["token"]
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
async def old(db: Database, tmp_path: Path) -> AsyncIterator[Old]:
    registry = ModelRegistry(db)
    await registry.load()
    offers = MoveOffers(tmp_path / "move-out", registry, write_archive)

    async def ready() -> None:
        pass

    app = FastAPI()
    app.state.services = SimpleNamespace(moves=SimpleNamespace(offers=offers), ready=ready)
    app.include_router(move_api.router)
    install_error_handlers(app)
    offer = await offers.create()
    while offer.state is OfferState.PREPARING:
        await asyncio.sleep(0.01)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield Old(client, offers, offer)


async def test_the_manifest_needs_the_session(old: Old) -> None:
    refused = await old.client.get("/api/move/manifest")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    headers = await old.session()
    files = (await old.client.get("/api/move/manifest", headers=headers)).json()["files"]
    assert files == [{"id": "archive", "kind": "archive", "name": "gridless-move.tar", "size": len(ARCHIVE),
                      "sha256": hashlib.sha256(ARCHIVE).hexdigest(), "model": None}]


async def test_a_wrong_code_gets_no_session(old: Old) -> None:
    wrong = f"{(int(old.offer.code) + 1) % 10 ** 8:08d}"
    response = await old.client.post("/api/move/session", json={"code": wrong})
    assert response.status_code == 403 and response.json()["error"]["code"] == "invalid_code"
    oversized = await old.client.post("/api/move/session", content=b'{"code": "' + b"1" * 5000 + b'"}')
    assert oversized.status_code == 413
    garbled = await old.client.post("/api/move/session", content=b"code=1")
    assert garbled.status_code == 400


async def test_a_whole_file(old: Old) -> None:
    headers = await old.session()
    response = await old.client.get("/api/move/files/archive", headers=headers)
    assert response.status_code == 200 and response.content == ARCHIVE
    assert response.headers["accept-ranges"] == "bytes"
    assert int(response.headers["content-length"]) == len(ARCHIVE)
    assert old.offer.served_bytes == len(ARCHIVE)


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=1000-", 1000, len(ARCHIVE) - 1), ("bytes=5-9", 5, 9), ("bytes=-4", len(ARCHIVE) - 4, len(ARCHIVE) - 1),
    (f"bytes={len(ARCHIVE) - 1}-", len(ARCHIVE) - 1, len(ARCHIVE) - 1),
])
async def test_byte_ranges(old: Old, header: str, start: int, end: int) -> None:
    headers = await old.session()
    response = await old.client.get("/api/move/files/archive", headers=headers | {"Range": header})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{end}/{len(ARCHIVE)}"
    assert response.content == ARCHIVE[start:end + 1]
    assert old.offer.files[0].served == end + 1


@pytest.mark.parametrize("header", [f"bytes={len(ARCHIVE)}-", "bytes=9-5", "bytes=0-1,5-6", "lines=1-2"])
async def test_bad_ranges_are_416(old: Old, header: str) -> None:
    headers = await old.session()
    response = await old.client.get("/api/move/files/archive", headers=headers | {"Range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(ARCHIVE)}"


async def test_files_need_the_session_and_exist(old: Old) -> None:
    assert (await old.client.get("/api/move/files/archive")).status_code == 401
    assert (await old.client.get("/api/move/files/archive",
                                 headers={"Authorization": "Bearer nope"})).status_code == 401
    headers = await old.session()
    assert (await old.client.get("/api/move/files/m9", headers=headers)).status_code == 404


async def test_finished_ends_the_offer(old: Old) -> None:
    headers = await old.session()
    assert (await old.client.post("/api/move/finished", headers=headers)).status_code == 200
    assert old.offer.state is OfferState.FINISHED
    assert (await old.client.get("/api/move/manifest", headers=headers)).status_code == 401
