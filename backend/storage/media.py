"""The media folder: files with server-generated names, written whole or not at all.

A file is written to a temporary name in the same folder, fsynced, renamed into place
and its folder fsynced, so a crash leaves either the complete file or nothing under its
final name. Names are made here (a random id and a known extension), never taken from
the client, and every path handed out is checked to stay inside the folder.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

__all__ = ["MediaStore", "MediaTooLarge", "sync_path"]


class MediaTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than {limit:,} bytes")
        self.limit = limit


class MediaStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, relative: str) -> Path:
        """The absolute path of a stored file; ValueError for anything outside the folder."""
        candidate = (self.root / relative).resolve()
        if not candidate.is_relative_to(self.root.resolve()) or candidate == self.root.resolve():
            raise ValueError(f"{relative!r} is not a media file")
        return candidate

    def new_name(self, kind: str, extension: str) -> str:
        if not kind.isalnum() or not extension.isalnum():
            raise ValueError("kind and extension must be alphanumeric")
        return f"{kind}/{secrets.token_hex(12)}.{extension.lower()}"

    async def write_stream(self, chunks: AsyncIterator[bytes], relative: str, max_bytes: int) -> int:
        """Write what `chunks` yields to `relative`; returns the size. Nothing is left behind
        if the stream fails, is cut off or passes `max_bytes`."""
        final = self.path(relative)
        await asyncio.to_thread(final.parent.mkdir, parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.part")
        fh = await asyncio.to_thread(open, tmp, "wb")
        size = 0
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise MediaTooLarge(max_bytes)
                if chunk:
                    await asyncio.to_thread(fh.write, chunk)
            await asyncio.to_thread(_sync_close, fh)
            await asyncio.to_thread(os.replace, tmp, final)
            await asyncio.to_thread(sync_path, final.parent)
        except BaseException:
            fh.close()
            tmp.unlink(missing_ok=True)
            raise
        return size

    async def write_bytes(self, relative: str, data: bytes) -> int:
        """Write `data` to `relative` whole or not at all; returns the size."""
        async def one() -> AsyncIterator[bytes]:
            yield data
        return await self.write_stream(one(), relative, len(data))

    async def move(self, source: str, target: str) -> None:
        """Rename one stored file to another name in the folder (atomic)."""
        final = self.path(target)
        await asyncio.to_thread(final.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(os.replace, self.path(source), final)
        await asyncio.to_thread(sync_path, final.parent)

    def files(self, kind: str, *, partial: bool = False) -> list[str]:
        """Every finished file under `kind/` (or, with `partial`, every file still being written
        or left half-written by a crash), relative to the folder."""
        folder = self.root / kind
        if not folder.is_dir():
            return []
        return [f"{kind}/{p.name}" for p in folder.iterdir()
                if p.is_file() and p.name.startswith(".") == partial and (p.name.endswith(".part") or not partial)]

    def delete(self, relative: str) -> None:
        try:
            self.path(relative).unlink(missing_ok=True)
        except ValueError:
            pass


def _sync_close(fh: object) -> None:
    fh.flush()  # type: ignore[attr-defined]
    os.fsync(fh.fileno())  # type: ignore[attr-defined]
    fh.close()  # type: ignore[attr-defined]


def sync_path(path: Path) -> None:
    """Make a file's bytes, or a folder's names, durable (fsync through a descriptor of its own)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
