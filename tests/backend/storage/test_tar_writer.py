"""The tar writer writes, byte for byte, what tarfile's stream mode writes, into a file, a pipe or a
Python stream, and the sha256 of each file it reports is that of its bytes."""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import os
import tarfile
import threading
from pathlib import Path

import pytest

from backend.storage import tar_writer
from backend.storage.tar_writer import TarWriter

CONTENTS = {
    "gridless.db": os.urandom(9 * 1024 * 1024 + 123),  # more than one window
    "media/images/empty.png": b"",
    "media/documents/" + "città-" * 30 + ".txt": b"a long name that needs a pax header\n" * 40,
}


@pytest.fixture
def files(tmp_path: Path) -> list[tuple[str, Path]]:
    made = []
    for n, (name, data) in enumerate(CONTENTS.items()):
        path = tmp_path / f"source-{n}"
        path.write_bytes(data)
        os.utime(path, (1_700_000_000, 1_700_000_000))
        made.append((name, path))
    return made


def by_tarfile(files: list[tuple[str, Path]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, path in files:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = path.stat().st_size, 1_700_000_000, 0o644
            with path.open("rb") as fh:
                tar.addfile(info, fh)
        info = tarfile.TarInfo("gridless-backup.json")
        info.size, info.mtime, info.mode = 2, 1_700_000_000, 0o644
        tar.addfile(info, io.BytesIO(b"{}"))
    return out.getvalue()


def write(out: object, files: list[tuple[str, Path]]) -> list[tuple[int, str]]:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        writer = TarWriter(out, pool)  # type: ignore[arg-type]
        sums = []
        for name, path in files:
            with path.open("rb") as fh:
                sums.append(writer.add_file(name, fh, lambda n: None))
        writer.add_bytes("gridless-backup.json", b"{}", 1_700_000_000)
        writer.close()
    return sums


def expected_sums() -> list[tuple[int, str]]:
    return [(len(data), hashlib.sha256(data).hexdigest()) for data in CONTENTS.values()]


def test_into_a_python_stream(files: list[tuple[str, Path]]) -> None:
    out = io.BytesIO()
    assert write(out, files) == expected_sums()
    assert out.getvalue() == by_tarfile(files)


def test_into_a_file_the_kernel_copies(files: list[tuple[str, Path]], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[int] = []
    real = os.sendfile
    monkeypatch.setattr(tar_writer.os, "sendfile", lambda *a: sent.append(a[3]) or real(*a))
    target = tmp_path / "out.tar"
    with target.open("wb") as out:
        out.write(b"")  # a caller's buffered writes come first
        assert write(out, files) == expected_sums()
    assert target.read_bytes() == by_tarfile(files)
    assert sent and max(sent) <= tar_writer.WINDOW  # copied by the kernel, a window at a time


def test_into_a_pipe(files: list[tuple[str, Path]]) -> None:
    read_fd, write_fd = os.pipe()
    received = bytearray()

    def drain() -> None:
        with os.fdopen(read_fd, "rb") as pipe:
            while chunk := pipe.read(65536):
                received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    with os.fdopen(write_fd, "wb") as out:
        assert write(out, files) == expected_sums()
    reader.join()
    assert bytes(received) == by_tarfile(files)


def test_without_sendfile_it_copies_itself(files: list[tuple[str, Path]], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def unsupported(*args: object) -> int:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(tar_writer.os, "sendfile", unsupported)
    target = tmp_path / "out.tar"
    with target.open("wb") as out:
        assert write(out, files) == expected_sums()
    assert target.read_bytes() == by_tarfile(files)


@pytest.mark.parametrize("into", ["stream", "file"])
def test_a_file_that_shrinks_while_written_is_an_error(into: str, tmp_path: Path) -> None:
    path = tmp_path / "shrinks"
    path.write_bytes(b"x" * (tar_writer.WINDOW + 3 * tar_writer.CHUNK))
    with path.open("rb") as fh, (tmp_path / "out.tar").open("wb") as target, \
            concurrent.futures.ThreadPoolExecutor(1) as pool:
        writer = TarWriter(io.BytesIO() if into == "stream" else target, pool)
        with pytest.raises(OSError, match="ended before"):
            writer.add_file("media/x", fh, lambda n: os.truncate(path, 10))  # type: ignore[arg-type]
