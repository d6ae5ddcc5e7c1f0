"""One file fetched from the old device: resumed after a cut connection or a restart, fetched again
when its checksum is wrong, refused clearly when it cannot come. The old device here is a small
HTTP server that serves a file with Range and injects faults."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from backend.core.errors import AppError, ErrorCode
from backend.move.files import MoveFile
from backend.move.source import FetchPolicy, MoveSource, fetch_file, parse_address
from tests.server import free_port

DATA = os.urandom(3 * 1024 * 1024 + 123)
QUICK = FetchPolicy(retry_delays=(0.01, 0.01), max_mismatches=2)


class OldDevice(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.data = DATA
        self.cut_after: list[int] = []
        """Per request, in order: send this many bytes of the body, then drop the connection."""
        self.corrupt = 0
        """This many whole-file answers have one byte changed."""
        self.ignore_range = False
        self.status: int | None = None
        self.ranges: list[str | None] = []
        self.sent = 0

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: OldDevice

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        old = self.server
        old.ranges.append(self.headers.get("Range"))
        assert self.headers.get("Authorization") == "Bearer session-token"
        if old.status is not None:
            body = b'{"error": {"code": "unauthorized", "message": "This move has ended on the old device."}}'
            self.send_response(old.status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        data = bytearray(old.data)
        if old.corrupt:
            old.corrupt -= 1
            data[len(data) // 2] ^= 0xFF
        start = 0
        if self.headers.get("Range") and not old.ignore_range:
            start = int(self.headers["Range"].removeprefix("bytes=").rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = bytes(data[start:])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if old.cut_after:
            body = body[:old.cut_after.pop(0)]
            self.wfile.write(body)
            old.sent += len(body)
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)
        old.sent += len(body)


@pytest.fixture
def old() -> Iterator[OldDevice]:
    server = OldDevice()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


FILE = MoveFile(id="m1", kind="model", name="tiny.gguf", size=len(DATA), sha256=hashlib.sha256(DATA).hexdigest(),
                model={"id": "tiny", "job": "chat", "name": "Tiny", "role": "model"})


def fetch(old: OldDevice, part: Path, policy: FetchPolicy = QUICK) -> list[int]:
    seen: list[int] = []
    source = MoveSource(old.origin, "session-token")
    try:
        fetch_file(source, FILE, part, progress=seen.append, stop=threading.Event(), policy=policy)
    finally:
        source.close()
    return seen


def test_a_whole_file_arrives_checked(old: OldDevice, tmp_path: Path) -> None:
    seen = fetch(old, tmp_path / "f.part")
    assert (tmp_path / "f.part").read_bytes() == DATA
    assert old.ranges == [None] and seen[-1] == len(DATA)


def test_a_dropped_connection_resumes_where_it_stopped(old: OldDevice, tmp_path: Path) -> None:
    old.cut_after = [1_000_000, 500_000]
    fetch(old, tmp_path / "f.part")
    assert (tmp_path / "f.part").read_bytes() == DATA
    assert old.ranges[0] is None
    first, second = (int(str(r).removeprefix("bytes=").rstrip("-")) for r in old.ranges[1:])
    # each retry asks only for what had not arrived (a cut may lose what was still in flight)
    assert 0 < first <= 1_000_000 and first < second <= first + 500_000
    assert len(old.ranges) == 3


def test_a_partial_file_from_an_earlier_run_is_continued(old: OldDevice, tmp_path: Path) -> None:
    part = tmp_path / "f.part"
    part.write_bytes(DATA[:2_000_000])  # a restart: the partial file is all that is left
    fetch(old, part)
    assert part.read_bytes() == DATA
    assert old.ranges == ["bytes=2000000-"] and old.sent == len(DATA) - 2_000_000


def test_a_wrong_checksum_fetches_the_file_again(old: OldDevice, tmp_path: Path) -> None:
    old.corrupt = 1
    seen = fetch(old, tmp_path / "f.part")
    assert (tmp_path / "f.part").read_bytes() == DATA
    assert old.ranges == [None, None] and 0 in seen  # the damaged bytes were thrown away


def test_a_file_damaged_every_time_is_refused(old: OldDevice, tmp_path: Path) -> None:
    old.corrupt = 5
    with pytest.raises(AppError) as refused:
        fetch(old, tmp_path / "f.part")
    assert refused.value.code is ErrorCode.DOWNLOAD_FAILED and "sha256" in refused.value.message
    assert not (tmp_path / "f.part").exists()


def test_a_server_that_ignores_range_restarts_the_file_cleanly(old: OldDevice, tmp_path: Path) -> None:
    part = tmp_path / "f.part"
    part.write_bytes(DATA[:1000])
    old.ignore_range = True
    fetch(old, part)
    assert part.read_bytes() == DATA


def test_a_partial_file_that_is_wrong_is_fetched_again(old: OldDevice, tmp_path: Path) -> None:
    part = tmp_path / "f.part"
    part.write_bytes(b"x" * 1000)  # not the file's first bytes: the checksum catches it at the end
    fetch(old, part)
    assert part.read_bytes() == DATA


def test_an_old_device_that_is_gone_is_said_so(tmp_path: Path) -> None:
    source = MoveSource(f"http://127.0.0.1:{free_port()}", "session-token")
    with pytest.raises(AppError) as gone:
        fetch_file(source, FILE, tmp_path / "f.part", progress=lambda n: None, stop=threading.Event(),
                   policy=QUICK)
    assert gone.value.code is ErrorCode.DOWNLOAD_FAILED and "stopped answering" in gone.value.message


def test_an_ended_session_is_not_retried(old: OldDevice, tmp_path: Path) -> None:
    old.status = 401
    with pytest.raises(AppError) as ended:
        fetch(old, tmp_path / "f.part")
    assert ended.value.status == 401 and "ended" in ended.value.message
    assert len(old.ranges) == 1


def test_stopping_keeps_what_arrived(old: OldDevice, tmp_path: Path) -> None:
    stop = threading.Event()
    part = tmp_path / "f.part"

    def progress(n: int) -> None:
        if n > 1_000_000:
            stop.set()

    source = MoveSource(old.origin, "session-token")
    with pytest.raises(AppError) as stopped:
        fetch_file(source, FILE, part, progress=progress, stop=stop, policy=QUICK)
    source.close()
    assert stopped.value.code is ErrorCode.CANCELLED
    assert 1_000_000 < part.stat().st_size < len(DATA) and DATA.startswith(part.read_bytes())


@pytest.mark.parametrize(("typed", "origin"), [
    ("192.168.43.1:8765", "http://192.168.43.1:8765"),
    (" 192.168.43.1 ", "http://192.168.43.1:8765"),
    ("http://10.0.0.5:9000/", "http://10.0.0.5:9000"),
    ("https://phone.local:8443", "https://phone.local:8443"),
    ("[fe80::1]:8765", "http://[fe80::1]:8765"),
])
def test_addresses_people_type(typed: str, origin: str) -> None:
    assert parse_address(typed) == origin


@pytest.mark.parametrize("typed", ["", "ftp://1.2.3.4", "http://user:pw@1.2.3.4:8765", "1.2.3.4:8765/api/x",
                                   "1.2.3.4:99999", "1.2.3.4:8765?x=1", "http://"])
def test_addresses_refused(typed: str) -> None:
    with pytest.raises(AppError) as refused:
        parse_address(typed)
    assert refused.value.code is ErrorCode.INVALID_VALUE


def test_an_endless_answer_where_a_list_of_files_belongs_is_refused(old: OldDevice) -> None:
    """Whatever answers at the typed address is not trusted with memory: a list of files or a
    session larger than any gridless sends ends the move with a sentence."""
    old.data = b"[" * (5 * 1024 * 1024)
    source = MoveSource(old.origin, "session-token")
    try:
        with pytest.raises(AppError, match="far larger than a list of files") as refused:
            source.manifest()
        assert refused.value.code == ErrorCode.DOWNLOAD_FAILED
        source.finished()  # the end of a move is not ours to fail
    finally:
        source.close()
