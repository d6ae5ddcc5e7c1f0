"""PUT /api/models/upload on a real server: checked, streamed to disk, and nothing left behind on refusal."""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backend.security.owner import OwnerCredential
from tests.ggufs import write_lm_gguf, write_oversized_count_gguf
from tests.server import ServerProcess

UPLOAD = "/api/models/upload"
QUIET_ENV = {"HF_ENDPOINT": "http://127.0.0.1:9"}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("upload-files")
    good = write_lm_gguf(folder / "good.gguf", size_mb=0.5, seed=11).read_bytes()
    return {
        "good": good,
        "big": write_lm_gguf(folder / "big.gguf", size_mb=2, seed=12).read_bytes(),
        "text": b"these are notes, not a model\n" * 500,
        "truncated": good[: len(good) // 2],
        "oversized": write_oversized_count_gguf(folder / "oversized.gguf").read_bytes(),
    }


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("upload-server")


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[ServerProcess]:
    with ServerProcess(data_dir=root / "data", env=QUIET_ENV) as srv:
        yield srv


def models_dir(server: ServerProcess) -> Path:
    return server.data_dir / "models"


def snapshot(server: ServerProcess) -> dict[str, int]:
    """Files in the models folder with their sizes (the download lock aside)."""
    folder = models_dir(server)
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")
            if p.is_file() and p.name != ".lock"}


def leftovers(server: ServerProcess) -> list[str]:
    partial = models_dir(server) / ".partial"
    return sorted(p.name for p in partial.iterdir() if p.name != ".lock") if partial.exists() else []


def cookie(server: ServerProcess) -> str:
    return f"gridless_session={OwnerCredential(server.token).session_value}"


def upload(server: ServerProcess, content: bytes | Iterator[bytes], *, headers: dict[str, str] | None = None,
           **params: str) -> httpx.Response:
    return httpx.put(server.base + UPLOAD, params=params, content=content,
                     headers=server.headers() if headers is None else headers, timeout=30)


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next((int(v) for k, _, v in (line.partition(":") for line in lines[1:])
                   if k.strip().lower() == "content-length"), 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), body


def model_ids(server: ServerProcess) -> list[str]:
    response = httpx.get(server.base + "/v1/models", headers=server.headers(), timeout=10)
    assert response.status_code == 200
    return [m["id"] for m in response.json()["data"]]


def error_message(response: httpx.Response) -> str:
    message = response.json()["error"]["message"]
    assert isinstance(message, str) and message
    return message


def test_good_gguf_is_installed_and_listed(server: ServerProcess, files: dict[str, bytes]) -> None:
    response = upload(server, files["good"], job="chat", filename="tiny.gguf")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {"id": "tiny", "name": "tiny", "job": "chat", "size_bytes": len(files["good"])}
    assert "tiny" in model_ids(server)
    assert (models_dir(server) / "imported" / "tiny.gguf").read_bytes() == files["good"]
    assert leftovers(server) == []


def test_same_name_again_is_kept_apart(server: ServerProcess, files: dict[str, bytes]) -> None:
    first = upload(server, files["good"], job="chat", filename="twice.gguf")
    second = upload(server, files["good"], job="chat", filename="twice.gguf")
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] != second.json()["id"]
    ids = model_ids(server)
    assert first.json()["id"] in ids and second.json()["id"] in ids
    imported = models_dir(server) / "imported"
    assert (imported / "twice.gguf").read_bytes() == files["good"]
    assert (imported / "twice-2.gguf").read_bytes() == files["good"]


def test_cookie_session_from_the_same_origin_may_upload(server: ServerProcess, files: dict[str, bytes]) -> None:
    response = upload(server, files["good"], headers={"Cookie": cookie(server), "Origin": server.base},
                      job="chat", filename="from-browser.gguf")
    assert response.status_code == 200, response.text
    assert response.json()["id"] in model_ids(server)
    assert (models_dir(server) / "imported" / "from-browser.gguf").read_bytes() == files["good"]


@pytest.mark.parametrize(("kind", "reason"), [
    ("text", "is not a GGUF model file"),
    ("truncated", "is truncated"),
    ("oversized", "more than the file could hold"),
])
def test_bad_content_is_refused_and_removed(server: ServerProcess, files: dict[str, bytes], kind: str,
                                            reason: str) -> None:
    before, ids = snapshot(server), model_ids(server)
    response = upload(server, files[kind], job="chat", filename=f"{kind}.gguf")
    assert response.status_code == 400
    message = error_message(response)
    assert f"{kind}.gguf" in message and reason in message
    assert snapshot(server) == before
    assert leftovers(server) == []
    assert model_ids(server) == ids


@pytest.mark.parametrize("filename", ["../evil.gguf", "a/b.gguf", "C:\\evil.gguf", "/evil.gguf", "..", ""])
def test_unsafe_file_names_are_refused(server: ServerProcess, root: Path, files: dict[str, bytes],
                                       filename: str) -> None:
    before = snapshot(server)
    response = upload(server, files["good"], job="chat", filename=filename)
    assert response.status_code in (400, 422)
    assert response.status_code == 422 or error_message(response)
    assert snapshot(server) == before
    assert leftovers(server) == []
    assert not [p for p in root.rglob("*") if p.name in ("evil.gguf", "b.gguf", "C:\\evil.gguf")]


@pytest.mark.parametrize("job", ["speech", "voice", "vision", "CHAT", "chat\nimages"])
def test_invalid_job_is_refused(server: ServerProcess, files: dict[str, bytes], job: str) -> None:
    before = snapshot(server)
    response = upload(server, files["good"], job=job, filename="job.gguf")
    assert response.status_code in (400, 422)
    assert snapshot(server) == before
    assert leftovers(server) == []


def test_upload_without_length_is_411(server: ServerProcess, files: dict[str, bytes]) -> None:
    data = files["good"]

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), 64 * 1024):
            yield data[start:start + 64 * 1024]

    before = snapshot(server)
    response = upload(server, chunks(), job="chat", filename="chunked.gguf")
    assert response.status_code == 411
    assert "Content-Length" in error_message(response)
    assert snapshot(server) == before
    assert leftovers(server) == []


def test_without_credentials_is_401(server: ServerProcess, files: dict[str, bytes]) -> None:
    before = snapshot(server)
    response = upload(server, files["good"], headers={}, job="chat", filename="anonymous.gguf")
    assert response.status_code == 401
    wrong = upload(server, files["good"], headers={"Authorization": "Bearer not-the-owner-token-000"},
                   job="chat", filename="anonymous.gguf")
    assert wrong.status_code == 401
    assert snapshot(server) == before
    assert "anonymous" not in model_ids(server)


def test_cookie_from_another_site_is_403(server: ServerProcess, files: dict[str, bytes]) -> None:
    before = snapshot(server)
    response = upload(server, files["good"], headers={"Cookie": cookie(server), "Origin": "http://evil.example"},
                      job="chat", filename="cross-site.gguf")
    assert response.status_code == 403
    fetch_site = upload(server, files["good"], headers={"Cookie": cookie(server), "Sec-Fetch-Site": "cross-site"},
                        job="chat", filename="cross-site.gguf")
    assert fetch_site.status_code == 403
    assert snapshot(server) == before
    assert "cross-site" not in model_ids(server)


def test_client_leaving_mid_upload_leaves_nothing(server: ServerProcess, files: dict[str, bytes]) -> None:
    before = snapshot(server)
    data = files["good"]
    head = (f"PUT {UPLOAD}?job=chat&filename=cut.gguf HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Authorization: Bearer {server.token}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head + data[: len(data) // 3])
        deadline = time.monotonic() + 5
        while not leftovers(server) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert leftovers(server), "the upload never started"
    deadline = time.monotonic() + 5
    while leftovers(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers(server) == []
    assert snapshot(server) == before
    assert httpx.get(server.base + "/healthz", timeout=5).status_code == 200
    assert "cut" not in model_ids(server)
    after = upload(server, data, job="chat", filename="after-cut.gguf")
    assert after.status_code == 200, after.text


def test_upload_over_the_size_limit_is_413(tmp_path: Path, files: dict[str, bytes]) -> None:
    with ServerProcess(data_dir=tmp_path / "data", env={**QUIET_ENV, "GRIDLESS_MAX_MODEL_UPLOAD_MB": "1"}) as srv:
        response = upload(srv, files["big"], job="chat", filename="big.gguf")
        assert response.status_code == 413
        assert "larger than the limit of 1 MB" in response.text
        assert snapshot(srv) == {}
        assert leftovers(srv) == []
        assert "big" not in model_ids(srv)
        small = upload(srv, files["good"], job="chat", filename="small.gguf")
        assert small.status_code == 200, small.text
        assert snapshot(srv) == {"imported/small.gguf": len(files["good"])}


def test_upload_larger_than_the_free_space_is_507(tmp_path: Path) -> None:
    with ServerProcess(data_dir=tmp_path / "data",
                       env={**QUIET_ENV, "GRIDLESS_MAX_MODEL_UPLOAD_MB": str(10**9)}) as srv:
        declared = shutil.disk_usage(tmp_path).free * 2
        head = (f"PUT {UPLOAD}?job=chat&filename=huge.gguf HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
                f"Authorization: Bearer {srv.token}\r\nContent-Length: {declared}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            sock.sendall(head + b"GGUF")
            status, body = read_response(sock)
        assert status == 507
        assert b"not enough free space" in body
        assert snapshot(srv) == {}
        assert leftovers(srv) == []
        assert httpx.get(srv.base + "/healthz", timeout=5).status_code == 200
