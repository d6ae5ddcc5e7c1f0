"""GET /api/backup and POST /api/restore on a real server, through its security gate."""

from __future__ import annotations

import asyncio
import io
import re
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backend.security.devices import DeviceStore
from backend.storage.backup_format import MANIFEST_NAME, Manifest
from backend.storage.db import Database
from tests.backups import leftovers
from tests.server import ServerProcess

QUIET_ENV = {"HF_ENDPOINT": "http://127.0.0.1:9"}


@pytest.fixture(scope="module")
def device_token(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A data folder with a paired tablet in it (the server reads its devices at start)."""
    data = tmp_path_factory.mktemp("backup-api") / "data"

    async def pair() -> str:
        db = Database(data / "gridless.db")
        await db.open()
        try:
            _, token = await DeviceStore(db, 86400).add("Tablet")
            return token
        finally:
            await db.close()

    return data, asyncio.run(pair())


@pytest.fixture(scope="module")
def server(device_token: tuple[Path, str]) -> Iterator[ServerProcess]:
    with ServerProcess(data_dir=device_token[0], env=QUIET_ENV) as srv:
        yield srv


def api(server: ServerProcess, method: str, path: str, **kwargs: object) -> httpx.Response:
    return httpx.request(method, server.base + path, headers=server.headers(), timeout=60, **kwargs)  # type: ignore[arg-type]


def titles(server: ServerProcess) -> list[str]:
    response = api(server, "GET", "/api/conversations", params={"limit": 200})
    assert response.status_code == 200, response.text
    return sorted(c["title"] for c in response.json()["conversations"])


def create(server: ServerProcess, title: str) -> str:
    response = api(server, "POST", "/api/conversations", json={"title": title})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def download(server: ServerProcess) -> bytes:
    response = api(server, "GET", "/api/backup")
    assert response.status_code == 200, response.text
    return response.content


def test_the_owner_downloads_the_archive_as_it_is_written(server: ServerProcess) -> None:
    create(server, "in the download")
    with httpx.stream("GET", server.base + "/api/backup", headers=server.headers(), timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-tar"
        assert re.fullmatch(r'attachment; filename="gridless-backup-\d{8}-\d{4}\.tar"',
                            response.headers["content-disposition"])
        assert "content-length" not in response.headers and "content-encoding" not in response.headers
        data = b"".join(response.iter_bytes())
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        manifest = Manifest.parse(tar.extractfile(MANIFEST_NAME).read())  # type: ignore[union-attr]
    assert "gridless.db" in names and names[-1] == MANIFEST_NAME
    assert [f.path for f in manifest.files] == names[:-1]


def test_a_paired_device_may_not_back_up_or_restore(server: ServerProcess, device_token: tuple[Path, str]) -> None:
    headers = {"Cookie": f"gridless_device={device_token[1]}", "Origin": server.base}
    assert httpx.get(server.base + "/api/conversations", headers=headers).status_code == 200  # a working cookie
    for method, path in (("GET", "/api/backup"), ("GET", "/api/backup/files/gridless-backup-20260101-0000.tar"),
                         ("POST", "/api/restore"), ("GET", "/backup")):
        body = b"x" if method == "POST" else None
        response = httpx.request(method, server.base + path, headers=headers, content=body)
        assert response.status_code == 403, (path, response.text)
        if path.startswith("/api/"):
            assert response.json()["error"]["code"] == "owner_only"


def test_a_restore_upload_brings_back_what_was_deleted(server: ServerProcess) -> None:
    kept = create(server, "keep me")
    data = download(server)
    assert api(server, "DELETE", f"/api/conversations/{kept}").status_code == 200
    create(server, "made after the backup")
    before = titles(server)

    def chunks() -> Iterator[bytes]:  # sent as it is read, without a length
        for start in range(0, len(data), 64 * 1024):
            yield data[start:start + 64 * 1024]

    response = api(server, "POST", "/api/restore", content=chunks())
    assert response.status_code == 200, response.text
    restored = response.json()["restored"]
    assert restored["conversations"] == len(before)  # what the backup held: "keep me" instead of the late one
    after = titles(server)
    assert "keep me" in after and "made after the backup" not in after
    assert httpx.get(server.base + "/healthz").json()["status"] == "ok"
    assert leftovers_in(server) == []


def leftovers_in(server: ServerProcess) -> list[str]:
    from backend.core.config import Settings

    return leftovers(Settings(data_dir=server.data_dir))


def test_a_bad_archive_is_refused_with_its_reason_and_changes_nothing(server: ServerProcess) -> None:
    before = titles(server)
    for body, reason in ((b"just some text\n" * 100, "not a gridless backup"),
                         (download(server)[:20_000], "incomplete")):
        response = api(server, "POST", "/api/restore", content=body)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "bad_request" and reason in error["message"]
    assert titles(server) == before and leftovers_in(server) == []


def test_requests_during_a_restore_wait_or_are_busy_never_fail(server: ServerProcess) -> None:
    create(server, "steady")
    data = download(server)
    statuses: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=server.base, headers=server.headers(), timeout=60) as client:
            while not stop.is_set():
                statuses.append(client.get("/api/conversations").status_code)

    worker = threading.Thread(target=hammer)
    worker.start()
    try:
        time.sleep(0.2)
        for _ in range(2):
            response = api(server, "POST", "/api/restore", content=data)
            assert response.status_code == 200, response.text
    finally:
        stop.set()
        worker.join()
    assert statuses and set(statuses) <= {200, 503}, sorted(set(statuses))
    assert "steady" in titles(server)


def test_a_client_that_leaves_stops_the_writer(server: ServerProcess) -> None:
    small = download(server)
    big = server.data_dir / "media" / "images" / "0123456789abcdef01234567.png"
    big.parent.mkdir(parents=True, exist_ok=True)
    big.write_bytes(b"\x89PNG" + b"\x01" * 30_000_000)  # more than the queue and the sockets hold
    try:
        with httpx.stream("GET", server.base + "/api/backup", headers=server.headers(), timeout=60) as response:
            assert response.status_code == 200
            next(response.iter_bytes())
        # the writer stopped: its copy of the database is gone, and a restore is not held back by it
        deadline = time.monotonic() + 10
        while list(server.data_dir.glob(".backup-*.db")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not list(server.data_dir.glob(".backup-*.db"))
        # not 409 for long: the writer lets go of the backup's turn right after removing its copy
        response = api(server, "POST", "/api/restore", content=small)
        while response.status_code == 409 and time.monotonic() < deadline:
            time.sleep(0.1)
            response = api(server, "POST", "/api/restore", content=small)
        assert response.status_code == 200, response.text
    finally:
        big.unlink(missing_ok=True)
