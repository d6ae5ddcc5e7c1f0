"""The media folder: whole files or nothing, and no path outside it."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest

from backend.storage.media import MediaStore, MediaTooLarge


@pytest.fixture
def media(tmp_path: Path) -> MediaStore:
    return MediaStore(tmp_path / "media")


async def chunks(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        await asyncio.sleep(0)
        yield part


def everything_under(folder: Path) -> list[str]:
    """Every file, hidden ones (partial writes) included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


async def test_write_stream_writes_the_whole_file(media: MediaStore) -> None:
    name = media.new_name("audio", "webm")
    parts = [b"a" * 1000, b"", b"b" * 5000, b"c"]
    size = await media.write_stream(chunks(parts), name, max_bytes=10_000)
    assert size == 6001
    assert media.path(name).read_bytes() == b"".join(parts)
    assert everything_under(media.root) == [name]  # no partial file left beside it


async def test_final_name_appears_only_when_complete(media: MediaStore) -> None:
    name = media.new_name("audio", "wav")
    final = media.path(name)
    seen: list[tuple[bool, list[str]]] = []

    async def watched() -> AsyncIterator[bytes]:
        yield b"first part "
        await asyncio.sleep(0.05)
        seen.append((final.exists(), everything_under(media.root)))
        yield b"second part"

    await media.write_stream(watched(), name, max_bytes=1000)
    (existed, during), = seen
    assert not existed
    assert during == [str(Path(name).parent / f".{final.name}.part")]  # written under a hidden name
    assert final.read_bytes() == b"first part second part"


async def test_over_the_limit_leaves_nothing(media: MediaStore) -> None:
    name = media.new_name("audio", "ogg")
    with pytest.raises(MediaTooLarge) as info:
        await media.write_stream(chunks([b"x" * 600, b"y" * 600]), name, max_bytes=1000)
    assert info.value.limit == 1000
    assert everything_under(media.root) == []


async def test_exactly_the_limit_is_accepted(media: MediaStore) -> None:
    name = media.new_name("audio", "ogg")
    assert await media.write_stream(chunks([b"x" * 500, b"y" * 500]), name, max_bytes=1000) == 1000


async def test_a_failing_stream_leaves_nothing(media: MediaStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"some audio"
        raise ConnectionResetError("the phone went away")

    with pytest.raises(ConnectionResetError):
        await media.write_stream(broken(), media.new_name("audio", "webm"), max_bytes=1000)
    assert everything_under(media.root) == []


async def test_a_cancelled_upload_leaves_nothing(media: MediaStore) -> None:
    started = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"the start"
        started.set()
        await asyncio.sleep(60)
        yield b"never"

    task = asyncio.create_task(media.write_stream(slow(), media.new_name("audio", "webm"), max_bytes=1000))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert everything_under(media.root) == []


async def test_a_failed_rewrite_keeps_the_old_file(media: MediaStore) -> None:
    name = media.new_name("audio", "wav")
    await media.write_stream(chunks([b"old recording"]), name, max_bytes=1000)
    with pytest.raises(MediaTooLarge):
        await media.write_stream(chunks([b"n" * 2000]), name, max_bytes=1000)
    assert media.path(name).read_bytes() == b"old recording"
    assert everything_under(media.root) == [name]


def test_new_names_are_random_and_plain(media: MediaStore) -> None:
    names = {media.new_name("audio", "WebM") for _ in range(50)}
    assert len(names) == 50
    assert all(re.fullmatch(r"audio/[0-9a-f]{24}\.webm", n) for n in names)
    for kind, extension in (("../audio", "webm"), ("audio", "../webm"), ("audio", "we.bm"), ("", "webm")):
        with pytest.raises(ValueError):
            media.new_name(kind, extension)


@pytest.mark.parametrize("relative", ["../x", "audio/../../x", "/etc/passwd", "", ".", "audio/..", "./"])
def test_path_refuses_anything_outside(media: MediaStore, relative: str) -> None:
    media.root.mkdir(parents=True)
    with pytest.raises(ValueError):
        media.path(relative)


def test_path_refuses_a_link_that_leads_out(media: MediaStore, tmp_path: Path) -> None:
    (media.root / "audio").mkdir(parents=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("not media")
    os.symlink(secret, media.root / "audio" / "link.wav")
    with pytest.raises(ValueError):
        media.path("audio/link.wav")


def test_path_inside(media: MediaStore) -> None:
    assert media.path("audio/abc.webm") == (media.root / "audio" / "abc.webm").resolve()


def test_delete_stays_inside(media: MediaStore, tmp_path: Path) -> None:
    outside = tmp_path / "keep.txt"
    outside.write_text("mine")
    media.root.mkdir()
    media.delete("../keep.txt")
    assert outside.read_text() == "mine"
    media.delete("audio/never-written.webm")  # nothing there: no error
