"""The fake Hub in tests/hubserver.py, checked against the real huggingface_hub client."""

from __future__ import annotations

import hashlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import httpx2
import pytest
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import http_get
from huggingface_hub.hf_api import RepoFile, RepoFolder

from tests.hubserver import COMMIT, HubServer

ROOT = Path(__file__).resolve().parents[3]
REPO = "acme/tiny-GGUF"
MODEL = "tiny-Q4_K_M.gguf"
MMPROJ = "mmproj-tiny-f16.gguf"
README = "README.md"
SIZE = 3 * 1024 * 1024
EVIL_NAMES = ["../evil.gguf", "..\\evil.gguf", "/etc/passwd", "C:\\evil.gguf"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A model, a projector and a small text file, written once for the module."""
    directory = tmp_path_factory.mktemp("repo")
    contents = {MODEL: os.urandom(SIZE), MMPROJ: os.urandom(200_000), README: b"# tiny\nA test model.\n"}
    for name, data in contents.items():
        (directory / name).write_bytes(data)
    return {name: directory / name for name in contents}


@pytest.fixture
def hub(files: dict[str, Path]) -> Iterator[HubServer]:
    with HubServer() as server:
        server.add_repo(REPO, files, license="apache-2.0", tags=["text-generation"])
        yield server


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def file_url(hub: HubServer, name: str = MODEL, repo: str = REPO, revision: str | None = None) -> str:
    return hf_hub_url(repo, name, revision=revision, endpoint=hub.url)


# metadata and listings


def test_file_metadata_reports_size_sha256_and_commit(hub: HubServer, files: dict[str, Path]) -> None:
    meta = get_hf_file_metadata(file_url(hub), endpoint=hub.url)
    assert meta.size == SIZE
    assert meta.etag == sha256(files[MODEL])
    assert meta.commit_hash == COMMIT
    assert meta.location == file_url(hub)

    readme = get_hf_file_metadata(file_url(hub, README, revision=COMMIT), endpoint=hub.url)
    assert readme.size == files[README].stat().st_size
    assert readme.etag == git_blob_id(files[README].read_bytes())


def test_head_headers_and_no_body(hub: HubServer, files: dict[str, Path]) -> None:
    response = httpx.head(file_url(hub))
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Length"] == str(SIZE)
    assert response.headers["X-Linked-Size"] == str(SIZE)
    assert response.headers["X-Linked-Etag"] == f'"{sha256(files[MODEL])}"'
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert hub.sent(REPO, MODEL) == 0
    assert [(r.method, r.status, r.sent) for r in hub.requests] == [("HEAD", 200, 0)]


def test_model_info_with_files_metadata(hub: HubServer, files: dict[str, Path]) -> None:
    info = HfApi(endpoint=hub.url).model_info(REPO, files_metadata=True)
    assert info.id == REPO
    assert info.sha == COMMIT
    assert info.card_data is not None and info.card_data.license == "apache-2.0"
    assert info.tags is not None and {"gguf", "text-generation", "license:apache-2.0"} <= set(info.tags)
    assert info.siblings is not None
    siblings = {s.rfilename: s for s in info.siblings}
    assert set(siblings) == {MODEL, MMPROJ, README}
    for name in (MODEL, MMPROJ):
        lfs = siblings[name].lfs
        assert siblings[name].size == files[name].stat().st_size
        assert lfs is not None and lfs.sha256 == sha256(files[name]) and lfs.size == siblings[name].size
    assert siblings[README].lfs is None
    assert siblings[README].blob_id == git_blob_id(files[README].read_bytes())


def test_model_info_without_blobs_and_at_commit(hub: HubServer) -> None:
    info = HfApi(endpoint=hub.url).model_info(REPO, revision=COMMIT)
    assert info.siblings is not None
    assert sorted(s.rfilename for s in info.siblings) == sorted([MODEL, MMPROJ, README])
    assert all(s.size is None and s.lfs is None for s in info.siblings)
    assert hub.requests[-1].path == f"/api/models/{REPO}/revision/{COMMIT}"


def test_list_repo_tree(hub: HubServer, files: dict[str, Path]) -> None:
    hub.add_file(REPO, "extra/more.gguf", files[MMPROJ])
    api = HfApi(endpoint=hub.url)
    entries = list(api.list_repo_tree(REPO, recursive=True))
    by_path = {e.path: e for e in entries}
    assert set(by_path) == {MODEL, MMPROJ, README, "extra", "extra/more.gguf"}
    assert isinstance(by_path["extra"], RepoFolder)
    model = by_path[MODEL]
    assert isinstance(model, RepoFile)
    assert model.size == SIZE
    assert model.lfs is not None and model.lfs.sha256 == sha256(files[MODEL]) and model.lfs.size == SIZE
    readme = by_path[README]
    assert isinstance(readme, RepoFile) and readme.lfs is None

    top = {e.path for e in api.list_repo_tree(REPO)}
    assert top == {MODEL, MMPROJ, README, "extra"}
    sub = list(api.list_repo_tree(REPO, path_in_repo="extra", expand=True))
    assert [e.path for e in sub] == ["extra/more.gguf"]
    assert isinstance(sub[0], RepoFile) and sub[0].last_commit is not None and sub[0].last_commit.oid == COMMIT


def test_list_models_search_filter_limit(hub: HubServer, files: dict[str, Path]) -> None:
    hub.add_repo("acme/tiny-2-GGUF", {MODEL: files[MODEL]})
    hub.add_repo("other/big-model", {"model.safetensors": files[MMPROJ]})
    api = HfApi(endpoint=hub.url)

    found = list(api.list_models(search="tiny", filter="gguf", limit=5))
    assert sorted(m.id for m in found) == sorted([REPO, "acme/tiny-2-GGUF"])
    assert all(m.tags is not None and "gguf" in m.tags for m in found)
    assert len(list(api.list_models(search="TINY", filter="gguf", limit=1))) == 1
    assert list(api.list_models(search="nothing-like-this", filter="gguf")) == []
    assert list(api.list_models(search="tiny", filter="safetensors")) == []
    assert [m.id for m in api.list_models(search="big")] == ["other/big-model"]
    full = list(api.list_models(search="tiny-GGUF", filter=["gguf", "text-generation"], full=True, sort="downloads"))
    assert [m.id for m in full] == [REPO]
    assert full[0].siblings is not None and len(full[0].siblings) == 3
    assert "limit=5" in next(r.path for r in hub.requests if r.path.startswith("/api/models?"))


# downloads


def test_hf_hub_download_is_byte_identical(hub: HubServer, files: dict[str, Path], tmp_path: Path) -> None:
    path = hf_hub_download(REPO, MODEL, endpoint=hub.url, cache_dir=tmp_path / "cache")
    assert Path(path).read_bytes() == files[MODEL].read_bytes()
    assert COMMIT in path
    assert hub.sent(REPO, MODEL) == SIZE


def test_range_requests(hub: HubServer, files: dict[str, Path]) -> None:
    data = files[MODEL].read_bytes()
    with httpx.Client() as client:
        part = client.get(file_url(hub), headers={"Range": "bytes=100-199"})
        assert part.status_code == 206
        assert part.content == data[100:200]
        assert part.headers["Content-Range"] == f"bytes 100-199/{SIZE}"
        assert part.headers["Content-Length"] == "100"

        tail = client.get(file_url(hub), headers={"Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == data[-10:]

        beyond = client.get(file_url(hub), headers={"Range": f"bytes={SIZE}-"})
        assert beyond.status_code == 416
        assert beyond.headers["Content-Range"] == f"bytes */{SIZE}"
    assert hub.sent(REPO, MODEL) == 110
    assert [(r.range, r.status) for r in hub.requests] == [
        ("bytes=100-199", 206),
        ("bytes=-10", 206),
        (f"bytes={SIZE}-", 416),
    ]


def resume_with_http_get(hub: HubServer, files: dict[str, Path], target: Path, done: int) -> None:
    target.write_bytes(files[MODEL].read_bytes()[:done])
    hub.reset_counters()
    with target.open("r+b") as fh:
        fh.seek(0, os.SEEK_END)
        http_get(file_url(hub), fh, resume_size=done, headers={})


def test_http_get_resume_sends_only_the_rest(hub: HubServer, files: dict[str, Path], tmp_path: Path) -> None:
    done = 1_000_000
    target = tmp_path / "partial.gguf"
    resume_with_http_get(hub, files, target, done)
    assert target.read_bytes() == files[MODEL].read_bytes()
    assert hub.sent(REPO, MODEL) == SIZE - done
    assert [(r.method, r.range, r.status) for r in hub.requests] == [("GET", f"bytes={done}-", 206)]


def test_http_get_resume_when_range_is_ignored(hub: HubServer, files: dict[str, Path], tmp_path: Path) -> None:
    hub.ignore_range = True
    target = tmp_path / "partial.gguf"
    resume_with_http_get(hub, files, target, 1_000_000)
    assert target.read_bytes() == files[MODEL].read_bytes()
    assert hub.sent(REPO, MODEL) == SIZE
    assert [(r.range, r.status) for r in hub.requests] == [("bytes=1000000-", 200)]


def test_cut_after_drops_the_connection_once(hub: HubServer) -> None:
    hub.cut_after = 100_000
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", file_url(hub)) as response:
        assert response.headers["Content-Length"] == str(SIZE)
        for chunk in response.iter_bytes():
            received += chunk
    assert len(received) == 100_000
    assert hub.sent(REPO, MODEL) == 100_000
    assert hub.requests[-1].sent == 100_000
    assert hub.cut_after is None

    assert len(httpx.get(file_url(hub)).content) == SIZE
    assert hub.sent(REPO, MODEL) == 100_000 + SIZE


def test_cut_repeat_cuts_every_body(hub: HubServer) -> None:
    hub.cut(5000, repeat=True)
    for _ in range(2):
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(file_url(hub))
    assert hub.sent(REPO, MODEL) == 10_000
    assert httpx.head(file_url(hub)).status_code == 200
    hub.cut(None)
    assert len(httpx.get(file_url(hub)).content) == SIZE


def test_http_get_recovers_from_a_cut(hub: HubServer, files: dict[str, Path], tmp_path: Path) -> None:
    hub.cut_after = 700_000
    target = tmp_path / "model.gguf"
    with target.open("wb") as fh:
        http_get(file_url(hub), fh, headers={})
    assert target.read_bytes() == files[MODEL].read_bytes()
    first, retry = hub.requests
    assert (first.range, first.sent) == (None, 700_000)
    # the library buffers up to DOWNLOAD_CHUNK_SIZE (10 MB) before writing, so a cut that early loses the part
    resumed_from = int(retry.range[len("bytes=") : -1]) if retry.range else 0
    assert retry.sent == SIZE - resumed_from
    assert hub.sent(REPO, MODEL) == 700_000 + SIZE - resumed_from


def test_throttle_limits_throughput(hub: HubServer) -> None:
    hub.throttle_bps = 400_000
    start = time.monotonic()
    response = httpx.get(file_url(hub), headers={"Range": "bytes=0-199999"})
    elapsed = time.monotonic() - start
    assert response.status_code == 206 and len(response.content) == 200_000
    assert 0.4 <= elapsed < 3


def test_advertise_sha_lies_everywhere(hub: HubServer, files: dict[str, Path], tmp_path: Path) -> None:
    wrong = "0" * 64
    hub.advertise_sha[MODEL] = wrong
    assert get_hf_file_metadata(file_url(hub)).etag == wrong
    info = HfApi(endpoint=hub.url).model_info(REPO, files_metadata=True)
    assert info.siblings is not None
    assert {s.rfilename: s.lfs.sha256 for s in info.siblings if s.lfs}[MODEL] == wrong
    tree = {e.path: e for e in HfApi(endpoint=hub.url).list_repo_tree(REPO)}
    model = tree[MODEL]
    assert isinstance(model, RepoFile) and model.lfs is not None and model.lfs.sha256 == wrong
    assert httpx.get(file_url(hub)).content == files[MODEL].read_bytes()


def test_offline_refuses_connections_then_comes_back(hub: HubServer) -> None:
    url = hub.url
    hub.offline = True
    with pytest.raises(httpx.ConnectError):
        httpx.head(file_url(hub))
    with pytest.raises(httpx2.ConnectError):
        get_hf_file_metadata(file_url(hub))
    hub.offline = False
    assert hub.url == url
    assert get_hf_file_metadata(file_url(hub)).size == SIZE


def test_fail_status(hub: HubServer) -> None:
    hub.fail_status = 503
    response = httpx.get(file_url(hub))
    assert response.status_code == 503 and "error" in response.json()
    hub.fail_status = None
    assert httpx.head(file_url(hub)).status_code == 200


def test_close_drops_a_download_in_progress(hub: HubServer) -> None:
    hub.throttle_bps = 100_000
    errors: list[BaseException] = []
    started = threading.Event()

    def download() -> None:
        try:
            with httpx.stream("GET", file_url(hub), timeout=10) as response:
                for _ in response.iter_bytes():
                    started.set()
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=download)
    thread.start()
    assert started.wait(5)
    start = time.monotonic()
    hub.close()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - start < 2
    assert len(errors) == 1
    assert hub.sent(REPO, MODEL) < SIZE


# errors


def test_unknown_repo_file_and_revision(hub: HubServer, tmp_path: Path) -> None:
    api = HfApi(endpoint=hub.url)
    with pytest.raises(RepositoryNotFoundError):
        get_hf_file_metadata(file_url(hub, repo="acme/missing"))
    with pytest.raises(RemoteEntryNotFoundError):
        get_hf_file_metadata(file_url(hub, "missing.gguf"))
    with pytest.raises(RevisionNotFoundError):
        get_hf_file_metadata(file_url(hub, revision="v9"))
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("acme/missing")
    with pytest.raises(RepositoryNotFoundError):
        list(api.list_repo_tree("acme/missing"))
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "missing.gguf", endpoint=hub.url, cache_dir=tmp_path)

    response = httpx.get(f"{hub.url}/api/spaces/acme/x")
    assert response.status_code == 404 and "error" in response.json()
    missing = httpx.get(file_url(hub, "missing.gguf"))
    assert missing.status_code == 404
    assert missing.headers["X-Error-Code"] == "EntryNotFound"
    assert missing.headers["X-Repo-Commit"] == COMMIT


def test_malicious_names_are_listed_verbatim(hub: HubServer, files: dict[str, Path]) -> None:
    for name in EVIL_NAMES:
        hub.add_listing_entry(REPO, name, files[README])
    api = HfApi(endpoint=hub.url)
    tree = [e.path for e in api.list_repo_tree(REPO, recursive=True)]
    assert set(EVIL_NAMES) <= set(tree)
    assert set(EVIL_NAMES) <= {e.path for e in api.list_repo_tree(REPO)}
    info = api.model_info(REPO, files_metadata=True)
    assert info.siblings is not None
    assert set(EVIL_NAMES) <= {s.rfilename for s in info.siblings}
    served = httpx.get(file_url(hub, "..\\evil.gguf"))
    assert served.status_code == 200 and served.content == files[README].read_bytes()
    assert hub.sent(REPO, "..\\evil.gguf") == files[README].stat().st_size


# separate process


def start_cli(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.hubserver", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("READY "):
        proc.kill()
        pytest.fail(f"hubserver did not start: {line!r}")
    return proc, line.split()[1]


def test_subprocess_survives_sigkill_and_restarts_on_same_port(files: dict[str, Path], tmp_path: Path) -> None:
    directory = files[MODEL].parent
    proc, url = start_cli("--port", "0", "--repo", f"{REPO}={directory}", "--throttle-bps", "1000000")
    try:
        assert get_hf_file_metadata(hf_hub_url(REPO, MODEL, endpoint=url)).etag == sha256(files[MODEL])
        received = bytearray()
        with pytest.raises(httpx.TransportError), httpx.stream("GET", hf_hub_url(REPO, MODEL, endpoint=url)) as r:
            for chunk in r.iter_bytes():
                received += chunk
                if len(received) >= 200_000 and proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
        assert 200_000 <= len(received) < SIZE
        with pytest.raises(httpx.ConnectError):
            httpx.head(hf_hub_url(REPO, MODEL, endpoint=url))
    finally:
        proc.kill()
        proc.wait(10)

    port = url.rsplit(":", 1)[1]
    proc, again = start_cli("--port", port, "--repo", f"{REPO}={directory}")
    try:
        assert again == url
        rest = httpx.get(hf_hub_url(REPO, MODEL, endpoint=url), headers={"Range": f"bytes={len(received)}-"})
        assert rest.status_code == 206
        assert bytes(received) + rest.content == files[MODEL].read_bytes()
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
