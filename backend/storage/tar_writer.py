"""A tar written as a stream, with the sha256 of each file computed on the way.

The archive is what tarfile's stream mode (`w|`) writes: tarfile makes each header (PAX format),
and the same padding and end blocks follow. The data does not go through tarfile's stream buffer,
which copies every block several times (on 500 MB that buffer more than doubled the time).

Each file is read once, in order, and hashed on a second thread while it is written, so hashing
and copying overlap on two cores:

- into a file or a pipe, the kernel copies it (`sendfile`: no copy through Python) in windows of
  8 MiB while the hashing thread reads the same window into a buffer it reuses; the two stay
  within two windows of each other, so the page cache serves the second read even of a model of
  many gigabytes.
- into anything else (an HTTP response), the bytes read are hashed on the other thread while they
  are written.

Files a backup holds do not change while it runs (media and model files are written once under new
names, and the database is a copy made for it); if one did anyway, its checksum would not match
and a restore would refuse the archive rather than take a mix.
"""

from __future__ import annotations

import concurrent.futures
import errno
import hashlib
import io
import os
import stat
import tarfile
import threading
from collections.abc import Callable
from typing import BinaryIO

__all__ = ["CHUNK", "TarWriter"]

CHUNK = 1024 * 1024
"""Bytes per read and write when Python copies: large enough that the per-call cost vanishes, small
enough to keep memory flat."""
WINDOW = 8 * 1024 * 1024
"""Bytes the kernel copies, and the hashing thread hashes, at a time."""
_NO_SENDFILE = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV}


def _descriptor(out: BinaryIO) -> int | None:
    """The descriptor behind `out` when the kernel can copy into it (a file or a pipe)."""
    try:
        fd = out.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None
    mode = os.fstat(fd).st_mode
    return fd if stat.S_ISREG(mode) or stat.S_ISFIFO(mode) else None


class TarWriter:
    def __init__(self, out: BinaryIO, pool: concurrent.futures.Executor) -> None:
        self.out = out
        self.pool = pool
        """One thread, for hashing."""
        self.offset = 0
        self.fd = _descriptor(out)
        if self.fd is not None:
            out.flush()  # what the caller wrote before goes first; from here on the descriptor is written

    def add_file(self, name: str, fh: BinaryIO, advance: Callable[[int], None]) -> tuple[int, str]:
        """Add the open file `fh` as `name`; returns its size and sha256."""
        st = os.fstat(fh.fileno())
        self._header(name, st.st_size, int(st.st_mtime))
        if self.fd is not None:
            digest = self._copy_by_kernel(fh.fileno(), st.st_size, advance)
        else:
            digest = self._copy_by_python(fh, st.st_size, advance)
        self._write(tarfile.NUL * (-st.st_size % tarfile.BLOCKSIZE))
        return st.st_size, digest

    def add_bytes(self, name: str, data: bytes, mtime: int) -> None:
        self._header(name, len(data), mtime)
        self._write(data + tarfile.NUL * (-len(data) % tarfile.BLOCKSIZE))

    def close(self) -> None:
        """The two empty blocks that end an archive, then padding to a whole record, as tarfile does."""
        self._write(tarfile.NUL * 2 * tarfile.BLOCKSIZE)
        self._write(tarfile.NUL * (-self.offset % tarfile.RECORDSIZE))

    def _header(self, name: str, size: int, mtime: int) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode, info.type = size, mtime, 0o644, tarfile.REGTYPE
        self._write(info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape"))

    def _write(self, data: bytes | memoryview) -> None:
        if not data:
            return
        if self.fd is None:
            self.out.write(data)
        else:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view):]
        self.offset += len(data)

    def _copy_by_python(self, fh: BinaryIO, size: int, advance: Callable[[int], None]) -> str:
        sha = hashlib.sha256()
        pending: concurrent.futures.Future[None] | None = None
        left = size
        while left:
            chunk = fh.read(min(CHUNK, left))
            if not chunk:
                raise OSError(f"a file ended before its {size} bytes")
            if pending is not None:
                pending.result()
            pending = self.pool.submit(sha.update, chunk)  # hashed while it is written
            self._write(chunk)
            advance(len(chunk))
            left -= len(chunk)
        if pending is not None:
            pending.result()
        return sha.hexdigest()

    def _copy_by_kernel(self, src: int, size: int, advance: Callable[[int], None]) -> str:
        assert self.fd is not None
        sha = hashlib.sha256()
        pending: concurrent.futures.Future[None] | None = None
        for start in range(0, size, WINDOW):
            length = min(WINDOW, size - start)
            hashed = self.pool.submit(_hash_range, sha, src, start, length)  # in order: one thread
            self._send(src, start, length)
            advance(length)
            if pending is not None:
                pending.result()
            pending = hashed
        if pending is not None:
            pending.result()
        return sha.hexdigest()

    def _send(self, src: int, start: int, length: int) -> None:
        assert self.fd is not None
        end = start + length
        while start < end:
            try:
                sent = os.sendfile(self.fd, src, start, end - start)
            except OSError as exc:
                if exc.errno not in _NO_SENDFILE:
                    raise
                sent = len(data := os.pread(src, min(CHUNK, end - start), start))
                self._write(data)
                self.offset -= sent  # counted once, below
            if sent == 0:
                raise OSError("a file ended before the size it had when the backup began")
            start += sent
            self.offset += sent


def _hash_range(sha: hashlib._Hash, fd: int, start: int, length: int) -> None:
    """Hash bytes [start, start + length) of the file, read into one buffer reused for every window.
    (Not through a memory map: a file cut short while mapped kills the process with SIGBUS.)"""
    buffer = _buffer()
    end = start + length
    while start < end:
        view = memoryview(buffer)[: min(CHUNK, end - start)]
        got = os.preadv(fd, [view], start)
        if not got:
            raise OSError("a file ended before the size it had when the backup began")
        sha.update(view[:got])
        start += got


_local = threading.local()


def _buffer() -> bytearray:
    """The hashing thread's buffer (the pool has one thread), made once."""
    buffer: bytearray | None = getattr(_local, "buffer", None)
    if buffer is None:
        buffer = _local.buffer = bytearray(CHUNK)
    return buffer
