"""The new device talking to the old one: the address the person typed, the session, and one
file fetched with resume and checked by its sha256.

Everything here blocks (httpx's plain client, file writes, hashing) and runs on a thread of
its own, so a gigabyte moving does not hold up the server's event loop. The only address
ever connected to is the one typed: no redirects are followed and no proxy settings from the
environment are read.
"""

from __future__ import annotations

import concurrent.futures
import errno
import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import httpx

from ..core.errors import AppError, ErrorCode
from ..core.units import format_bytes
from .files import BadManifest, MoveFile

__all__ = ["DEFAULT_PORT", "FetchPolicy", "MoveSource", "Retry", "fetch_file", "parse_address", "wait_a_moment"]

DEFAULT_PORT = 8765
CHUNK = 1 << 20
MAX_ANSWER_BYTES = 4 << 20
"""The old device's session, list of files and errors are a few kilobytes; whatever answers at the
typed address is not trusted with more memory than this."""
TIMEOUT = httpx.Timeout(connect=10.0, read=30.0, write=30.0, pool=10.0)


def parse_address(text: str) -> str:
    """`192.168.43.1:8765`, `http://192.168.43.1:8765/` or a name → the origin to connect to."""
    text = text.strip()
    if not text:
        raise AppError(ErrorCode.INVALID_VALUE, "Type the address the old device shows, like 192.168.43.1:8765.")
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise AppError(ErrorCode.INVALID_VALUE, f"{text} is not an address: {exc}.") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password \
            or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise AppError(ErrorCode.INVALID_VALUE, "Type only the address and port the old device shows, "
                                                "like 192.168.43.1:8765.")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port}"


def _refusal(response: httpx.Response) -> AppError:
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except Exception:
        return AppError(ErrorCode.DOWNLOAD_FAILED, f"The old device answered HTTP {response.status_code}.")
    retry = response.headers.get("retry-after", "")
    return AppError(code, message, status=response.status_code,
                    retry_after=float(retry) if retry.isdigit() else 0.0)


class Retry(Exception):
    """A failure worth trying again after a pause (a dropped connection, a busy old device)."""

    def __init__(self, reason: str, wait: float = 0.0) -> None:
        super().__init__(reason)
        self.wait = wait


class MoveSource:
    """The old device, reached at `origin`; `token` once a code has been exchanged for it."""

    def __init__(self, origin: str, token: str | None = None, *, verify: Any = True) -> None:
        self.origin = origin
        self.token = token
        # identity: gzip on a model file would cost CPU on both sides and break byte ranges
        self.client = httpx.Client(base_url=origin, timeout=TIMEOUT, follow_redirects=False, trust_env=False,
                                   verify=verify, headers={"Accept-Encoding": "identity"})

    def close(self) -> None:
        self.client.close()

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _unreachable(self, exc: Exception) -> AppError:
        return AppError(ErrorCode.DOWNLOAD_FAILED,
                        f"Cannot reach the old device at {self.origin} ({type(exc).__name__}). Check the address "
                        "and that both devices are on the same network.")

    def _small(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An answer read whole, at most MAX_ANSWER_BYTES of it once decoded."""
        with self.client.stream(method, path, **kwargs) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    raise AppError(ErrorCode.DOWNLOAD_FAILED, "The old device sent an answer far larger than a "
                                                              "list of files; is it running gridless?")
        headers = [(k, v) for k, v in response.headers.items()
                   if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
        return httpx.Response(response.status_code, headers=headers, content=bytes(body))

    def open_session(self, code: str) -> str:
        try:
            response = self._small("POST", "/api/move/session", json={"code": code})
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code != 200:
            raise _refusal(response)
        token = response.json().get("token")
        if not isinstance(token, str) or not token:
            raise AppError(ErrorCode.DOWNLOAD_FAILED, "The old device gave no session; is it running gridless?")
        self.token = token
        return token

    def manifest(self) -> list[MoveFile]:
        try:
            response = self._small("GET", "/api/move/manifest", headers=self.auth_headers())
        except httpx.TransportError as exc:
            raise Retry(str(self._unreachable(exc))) from exc
        if response.status_code == 503:
            raise Retry("The old device is still preparing the move.", _retry_after(response, 2.0))
        if response.status_code != 200:
            raise _refusal(response)
        try:
            files = [MoveFile.from_json(f) for f in response.json()["files"]]
        except (BadManifest, KeyError, TypeError, ValueError) as exc:
            raise AppError(ErrorCode.DOWNLOAD_FAILED, f"The old device's list of files is not usable: {exc}") from exc
        if len({f.id for f in files}) != len(files) or sum(f.kind == "archive" for f in files) > 1:
            raise AppError(ErrorCode.DOWNLOAD_FAILED, "The old device's list of files names a file twice.")
        return files

    def finished(self) -> None:
        """Tell the old device that everything arrived (it ends the offer); a failure here is not ours."""
        try:
            self._small("POST", "/api/move/finished", headers=self.auth_headers())
        except (httpx.HTTPError, AppError):
            pass


def _retry_after(response: httpx.Response, default: float) -> float:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else default


@dataclass(kw_only=True, slots=True, frozen=True)
class FetchPolicy:
    retry_delays: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 15.0)
    """Pauses before each new try after a failure that made no progress; then the old device is gone."""
    max_mismatches: int = 2
    """A file whose checksum is wrong is fetched again, this many times in all."""


@dataclass(slots=True)
class _Partial:
    """A partial file and the sha256 of what it holds so far."""

    path: Path
    hasher: Any = None
    hashed: int = 0

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def reset(self) -> None:
        self.path.unlink(missing_ok=True)
        self.hasher, self.hashed = hashlib.sha256(), 0

    def catch_up(self) -> int:
        """Hash what is on disk if it is not what was hashed (a partial file from an earlier run)."""
        have = self.size()
        if self.hasher is None or self.hashed != have:
            self.hasher, self.hashed = hashlib.sha256(), 0
            with self.path.open("rb") if have else open(os.devnull, "rb") as fh:
                while block := fh.read(CHUNK):
                    self.hasher.update(block)
                    self.hashed += len(block)
        return self.hashed


def fetch_file(source: MoveSource, file: MoveFile, part: Path, *, progress: Callable[[int], None],
               stop: threading.Event, policy: FetchPolicy | None = None) -> None:
    """Bring `file` into `part` (resuming what is there), checked against its sha256. Returns when
    the bytes are complete and right; raises AppError when they cannot be."""
    policy = policy or FetchPolicy()
    partial = _Partial(part)
    failures = mismatches = 0
    while True:
        if stop.is_set():
            raise AppError(ErrorCode.CANCELLED, "The move was stopped.")
        before = partial.size()
        try:
            _transfer(source, file, partial, progress, stop)
        except Retry as exc:
            made_progress = partial.size() > before
            failures = 0 if made_progress else failures + 1
            if failures > len(policy.retry_delays):
                raise AppError(ErrorCode.DOWNLOAD_FAILED,
                               f"The old device stopped answering ({exc}). Check that it is still on and on the "
                               "same network, then start the move again: it continues where it stopped.") from exc
            stop.wait(max(exc.wait, policy.retry_delays[failures - 1] if failures else 0.0))
            continue
        if partial.hasher.hexdigest() == file.sha256:
            return
        mismatches += 1
        partial.reset()
        progress(0)
        if mismatches >= policy.max_mismatches:
            raise AppError(ErrorCode.DOWNLOAD_FAILED,
                           f"{file.name} arrived damaged {mismatches} times (its sha256 does not match). The file "
                           "may be damaged on the old device.")


def _transfer(source: MoveSource, file: MoveFile, partial: _Partial, progress: Callable[[int], None],
              stop: threading.Event) -> None:
    """One request for the bytes still missing; raises Retry when it should be tried again."""
    have = partial.catch_up()
    if have > file.size:
        partial.reset()
        have = 0
    progress(have)
    if have == file.size:
        return
    headers = source.auth_headers() | {"Range": f"bytes={have}-"} if have else source.auth_headers()
    try:
        with source.client.stream("GET", f"/api/move/files/{file.id}", headers=headers) as response:
            if response.status_code == 416:
                partial.reset()
                raise Retry("the old device refused the byte range")
            if response.status_code in (502, 503, 504):
                raise Retry(f"the old device is busy (HTTP {response.status_code})", _retry_after(response, 2.0))
            if response.status_code not in (200, 206):
                response.read()
                raise _refusal(response)
            if response.status_code == 200 and have:  # the range was not honoured: start over
                partial.reset()
                have = 0
            elif response.status_code == 206 and not response.headers.get("content-range", "").startswith(
                    f"bytes {have}-"):
                raise Retry("the old device sent another part of the file")
            _write(response, file, partial, have, progress, stop)
    except httpx.TransportError as exc:
        raise Retry(f"{type(exc).__name__}: {exc}") from exc


def _write(response: httpx.Response, file: MoveFile, partial: _Partial, have: int,
           progress: Callable[[int], None], stop: threading.Event) -> None:
    # Pieces are gathered to 1 MiB, then written while the sha256 of the previous one runs on a second
    # thread (hashlib releases the GIL): hashing each 64 kB read in line made a 1 GB move twice as
    # slow as curl, and a hand-over per read cost more than it saved.
    pending: concurrent.futures.Future[None] | None = None
    buffer: list[bytes] = []
    buffered = 0

    def flush(out: BinaryIO, pool: concurrent.futures.Executor) -> None:
        nonlocal pending, buffered
        block = b"".join(buffer)
        buffer.clear()
        buffered = 0
        out.write(block)
        if pending is not None:
            pending.result()
        pending = pool.submit(partial.hasher.update, block)

    try:
        with partial.path.open("ab") as out, concurrent.futures.ThreadPoolExecutor(1) as pool:
            try:
                for chunk in response.iter_raw():  # as it arrives: a cut connection loses nothing received
                    if have + len(chunk) > file.size:
                        buffer.clear()
                        partial.reset()
                        raise Retry("the old device sent more bytes than the file has")
                    buffer.append(chunk)
                    buffered += len(chunk)
                    have += len(chunk)
                    if buffered >= CHUNK:
                        flush(out, pool)
                        progress(have)
                    if stop.is_set():
                        raise AppError(ErrorCode.CANCELLED, "The move was stopped.")
            finally:
                if buffer:
                    flush(out, pool)
                if pending is not None:
                    pending.result()
                partial.hashed = have
                progress(have)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise AppError(ErrorCode.DISK_FULL, f"This device is full: {file.name} needs "
                                                f"{format_bytes(file.size - have)} more. Free some space and "
                                                "start the move again; it continues where it stopped.") from exc
        raise
    if have < file.size:
        raise Retry(f"the connection ended after {format_bytes(have)} of {format_bytes(file.size)}")


def wait_a_moment(seconds: float, stop: threading.Event) -> None:
    """Sleep unless stopped (used between polls of an old device that is still preparing)."""
    stop.wait(seconds)
    if stop.is_set():
        raise AppError(ErrorCode.CANCELLED, "The move was stopped.")
