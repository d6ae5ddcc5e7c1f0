"""A small local stand-in for the Hugging Face Hub that serves real files from disk.

It speaks the subset of the Hub protocol that ``huggingface_hub`` uses to look up and download model files:

* ``HEAD``/``GET /{repo_id}/resolve/{revision}/{path}``: the file, with ``Range`` support (206/416),
  ``X-Repo-Commit``, ``ETag`` and, for LFS files, ``X-Linked-Etag``/``X-Linked-Size``;
* ``GET /api/models/{repo_id}[/revision/{revision}]``: model info (``?blobs=true`` adds sizes and hashes,
  ``expand=...`` selects fields);
* ``GET /api/models/{repo_id}/tree/{revision}[/{path}]``: file listing (``recursive``, ``expand``);
* ``POST /api/models/{repo_id}/paths-info/{revision}``: metadata of given paths;
* ``GET /api/models``: search (``search``, ``filter``, ``author``, ``pipeline_tag``, ``sort``, ``direction``,
  ``limit``, ``full``, ``cardData``, ``config``, ``expand``).

Anything else gets a 404 JSON error. Unknown repos, revisions and files get 404 with the ``X-Error-Code``
(``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) that the library maps to its exceptions.

Faults can be switched at run time from the test thread (``ignore_range``, ``cut_after``/``cut_repeat``,
``throttle_bps``, ``advertise_sha``, ``fail_status``, ``offline``); every request is logged and body bytes
are counted per file.

In-process::

    with HubServer() as hub:
        hub.add_repo("acme/tiny-GGUF", {"tiny-Q4_K_M.gguf": path}, license="apache-2.0")
        hf_hub_download("acme/tiny-GGUF", "tiny-Q4_K_M.gguf", endpoint=hub.url)

As a separate process, so that it can be SIGKILLed and restarted on the same port::

    python -m tests.hubserver --port 8765 --repo acme/tiny-GGUF=/path/to/dir [--throttle-bps N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = ["COMMIT", "HubFile", "HubRepo", "HubServer", "RequestRecord", "main"]

COMMIT = "c0ffee5eed0ddba11deadbeefcafef00dfacade5"
"""The commit every repo is at; accepted as a revision along with ``main``."""

DATE = "2024-05-01T12:00:00.000Z"
CHUNK_SIZE = 64 * 1024
LFS_THRESHOLD = 10 * 1024 * 1024
LFS_SUFFIXES = frozenset(
    ".7z .arrow .bin .bz2 .ckpt .ftz .gguf .gz .h5 .joblib .mlmodel .model .msgpack .npy .npz .onnx .ot"
    " .parquet .pb .pickle .pkl .pt .pth .rar .safetensors .tar .tflite .tgz .wasm .xz .zip .zst".split()
)
"""Suffixes that a Hub repo's default ``.gitattributes`` stores in LFS."""

_JSON = "application/json; charset=utf-8"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_TRUE = {"1", "true", "True", "yes"}
_HASH_CACHE: dict[tuple[str, int, int, bool], tuple[str, str | None]] = {}
_HASH_LOCK = threading.Lock()


def _hash_file(path: Path, *, git_blob: bool) -> tuple[str, str | None]:
    """Return the sha256 of a file and, if asked, its git blob id; cached by path, size and mtime."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, git_blob)
    with _HASH_LOCK:
        cached = _HASH_CACHE.get(key)
    if cached is not None:
        return cached
    sha = hashlib.sha256()
    git = hashlib.sha1(f"blob {st.st_size}\0".encode()) if git_blob else None
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            sha.update(chunk)
            if git is not None:
                git.update(chunk)
    result = (sha.hexdigest(), git.hexdigest() if git is not None else None)
    with _HASH_LOCK:
        _HASH_CACHE[key] = result
    return result


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


def _header_safe(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ").encode("ascii", "backslashreplace").decode("ascii")


@dataclass(frozen=True, slots=True)
class HubFile:
    """One file of a repo: the name clients see and the file on disk whose bytes are served."""

    name: str
    source: Path
    size: int
    sha256: str
    lfs: bool
    blob_id: str
    """Git oid the Hub reports: of the LFS pointer for LFS files, of the content otherwise."""
    pointer_size: int
    verbatim: bool = False
    """Registered with `HubServer.add_listing_entry`: the name is listed as is, outside the folder structure."""

    @classmethod
    def from_path(cls, name: str, source: Path, *, lfs: bool | None = None, verbatim: bool = False) -> HubFile:
        """Hash `source` (in chunks) and describe it as repo file `name`."""
        source = Path(source)
        if not source.is_file():
            raise FileNotFoundError(source)
        size = source.stat().st_size
        if lfs is None:
            lfs = size >= LFS_THRESHOLD or Path(name.replace("\\", "/")).suffix.lower() in LFS_SUFFIXES
        sha256, content_blob = _hash_file(source, git_blob=not lfs)
        if lfs:
            pointer = _lfs_pointer(sha256, size)
            return cls(name, source, size, sha256, True, _git_blob_id(pointer), len(pointer), verbatim)
        assert content_blob is not None
        return cls(name, source, size, sha256, False, content_blob, 0, verbatim)


@dataclass(slots=True)
class HubRepo:
    """A model repo: its files by name, card license, tags and extra model-info fields."""

    repo_id: str
    files: dict[str, HubFile] = field(default_factory=dict)
    license: str | None = None
    tags: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RequestRecord:
    """One request as the server saw it; `status` and `sent` (body bytes) are filled in while it is answered."""

    method: str
    path: str
    range: str | None
    status: int = 0
    sent: int = 0


class _Cut(Exception):
    """Raised to drop a connection in the middle of a response body."""


class _Server(ThreadingHTTPServer):
    """The listening socket; tracks open connections so that they can be cut at once."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], hub: HubServer) -> None:
        self.hub = hub
        self.abort = threading.Event()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without the reverse DNS lookup that `HTTPServer.server_bind` does."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def abort_connections(self) -> None:
        """Wake up and drop every open connection."""
        self.abort.set()
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hubserver/1"
    timeout = 120
    server: _Server
    _record: RequestRecord

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet; requests are recorded in `HubServer.requests`."""

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    # plumbing

    def _dispatch(self) -> None:
        hub = self.server.hub
        self._record = hub._log_request(self.command, self.path, self.headers.get("Range"))
        try:
            body = self._read_body()
            if (status := hub.fail_status) is not None:
                self._send_error(status, None, f"injected failure {status}")
            else:
                self._route(body)
        except (ValueError, KeyError, TypeError) as exc:
            if self._record.status:
                raise
            self._send_error(400, None, f"Bad request: {exc}")
        except (_Cut, ConnectionError, TimeoutError):
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _start(self, status: int, headers: Mapping[str, str | int]) -> None:
        self._record.status = status
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, str(value))
        self.end_headers()

    def _send_json(self, payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self._start(status, {"Content-Type": _JSON, "Content-Length": len(body), **(headers or {})})
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_error(
        self, status: int, code: str | None, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        extra = {"X-Error-Message": _header_safe(message), **(headers or {})}
        if code is not None:
            extra["X-Error-Code"] = code
        self._send_json({"error": message}, status, extra)

    # routing

    def _route(self, body: bytes) -> None:
        split = urlsplit(self.path)
        query = parse_qs(split.query, keep_blank_values=True)
        parts = split.path.split("/")[1:]
        method = self.command
        hub = self.server.hub
        if parts[:2] == ["api", "models"] and method in ("GET", "POST"):
            rest = parts[2:]
            if rest in ([], [""]) and method == "GET":
                self._send_json(hub._search(query))
                return
            if len(rest) >= 2:
                repo_id = f"{unquote(rest[0])}/{unquote(rest[1])}"
                tail = rest[2:]
                if method == "GET" and not tail:
                    self._model_info(repo_id, None, query)
                    return
                if method == "GET" and len(tail) == 2 and tail[0] == "revision":
                    self._model_info(repo_id, unquote(tail[1]), query)
                    return
                if method == "GET" and len(tail) >= 2 and tail[0] == "tree":
                    self._tree(repo_id, unquote(tail[1]), unquote("/".join(tail[2:])), query)
                    return
                if method == "POST" and len(tail) == 2 and tail[0] == "paths-info":
                    self._paths_info(repo_id, unquote(tail[1]), body)
                    return
        elif len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            repo_id = f"{unquote(parts[0])}/{unquote(parts[1])}"
            self._resolve(repo_id, unquote(parts[3]), unquote("/".join(parts[4:])))
            return
        self._send_error(404, None, f"Not found: {method} {split.path}")

    def _repo_at(self, repo_id: str, revision: str | None) -> HubRepo | None:
        """The repo, or None after answering 404 for an unknown repo or revision."""
        repo = self.server.hub._repos.get(repo_id)
        if repo is None:
            self._send_error(404, "RepoNotFound", "Repository not found")
            return None
        if revision is not None and revision not in ("main", COMMIT):
            self._send_error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return None
        return repo

    # endpoints

    def _model_info(self, repo_id: str, revision: str | None, query: dict[str, list[str]]) -> None:
        if (repo := self._repo_at(repo_id, revision)) is None:
            return
        hub = self.server.hub
        info = hub._info_dict(repo, blobs=_flag(query, "blobs"))
        expand = _expand(query)
        if expand:
            info = {k: v for k, v in info.items() if k in ("_id", "id", *expand)}
        self._send_json(info)

    def _tree(self, repo_id: str, revision: str, path: str, query: dict[str, list[str]]) -> None:
        if (repo := self._repo_at(repo_id, revision)) is None:
            return
        entries = self.server.hub._tree(repo, path.strip("/"), _flag(query, "recursive"), _flag(query, "expand"))
        if entries is None:
            self._send_error(404, "EntryNotFound", f"{path} does not exist on {revision}")
        else:
            self._send_json(entries)

    def _paths_info(self, repo_id: str, revision: str, body: bytes) -> None:
        if (repo := self._repo_at(repo_id, revision)) is None:
            return
        if self.headers.get("Content-Type", "").startswith("application/json"):
            form = json.loads(body or b"{}")
            paths, expand = list(form.get("paths", [])), bool(form.get("expand"))
        else:
            fields = parse_qs(body.decode(), keep_blank_values=True)
            paths, expand = fields.get("paths", []), _flag(fields, "expand")
        self._send_json(self.server.hub._paths_info(repo, paths, expand))

    def _resolve(self, repo_id: str, revision: str, path: str) -> None:
        if (repo := self._repo_at(repo_id, revision)) is None:
            return
        hub = self.server.hub
        file = repo.files.get(path)
        if file is None:
            self._send_error(404, "EntryNotFound", f"{path} does not exist on {revision}", {"X-Repo-Commit": COMMIT})
            return
        etag = hub._sha(file) if file.lfs else hub._oid(file)
        basename = file.name.rsplit("/", 1)[-1]
        disposition = f"attachment; filename*=UTF-8''{quote(basename, safe='')}; "
        disposition += f'filename="{_header_safe(basename).replace(chr(34), "")}";'
        headers: dict[str, str | int] = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "ETag": f'"{etag}"',
            "X-Repo-Commit": COMMIT,
            "Content-Disposition": disposition,
        }
        if file.lfs:
            headers["X-Linked-Etag"] = f'"{etag}"'
            headers["X-Linked-Size"] = file.size
        start, end, status = 0, file.size - 1, 200
        requested = self.headers.get("Range")
        if requested and not hub.ignore_range:
            parsed = _parse_range(requested, file.size)
            if parsed == "unsatisfiable":
                self._send_error(416, None, "Range not satisfiable", {"Content-Range": f"bytes */{file.size}"})
                return
            if isinstance(parsed, tuple):
                start, end = parsed
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{file.size}"
        length = max(0, end - start + 1)
        headers["Content-Length"] = length
        self._start(status, headers)
        if self.command == "GET":
            self._stream(repo.repo_id, file, start, length)

    def _stream(self, repo_id: str, file: HubFile, start: int, length: int) -> None:
        """Send `length` bytes of `file` from `start`, honouring the throttle and cut faults."""
        hub = self.server.hub
        limit = hub._take_cut()
        sent = 0
        ready_at = time.monotonic()
        with file.source.open("rb") as fh:
            fh.seek(start)
            while sent < length:
                if limit is not None and sent >= limit:
                    raise _Cut
                bps = hub.throttle_bps
                size = min(hub.chunk_size, length - sent)
                if bps:
                    size = min(size, max(1, bps // 20))
                if limit is not None:
                    size = min(size, limit - sent)
                data = fh.read(size)
                if not data:
                    raise _Cut
                hub._count(repo_id, file.name, len(data), self._record)
                try:
                    self.wfile.write(data)
                except OSError:
                    hub._count(repo_id, file.name, -len(data), self._record)
                    raise
                sent += len(data)
                if bps:
                    ready_at = max(ready_at, time.monotonic() - 0.05) + len(data) / bps
                    delay = ready_at - time.monotonic()
                    if delay > 0 and self.server.abort.wait(delay):
                        raise _Cut


def _flag(query: Mapping[str, list[str]], name: str) -> bool:
    return any(v in _TRUE for v in query.get(name, []))


def _expand(query: Mapping[str, list[str]]) -> list[str]:
    return [v for key in ("expand", "expand[]") for v in query.get(key, []) if v]


def _parse_range(value: str, size: int) -> tuple[int, int] | str | None:
    """Parse a single ``bytes=`` range: (start, end), ``"unsatisfiable"``, or None to ignore it (serve all)."""
    match = _RANGE.fullmatch(value.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return "unsatisfiable"
    end = min(int(last), size - 1) if last else size - 1
    return start, end


def _fake_id(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:24]


class HubServer:
    """A fake Hugging Face Hub on 127.0.0.1, serving registered files with switchable faults.

    Fault switches (plain attributes, safe to change from another thread while requests run):

    * ``ignore_range``: answer Range requests with 200 and the whole file, like a misbehaving CDN.
    * ``cut_after``: the next file GET body stops after that many bytes and the connection is closed (FIN,
      like a killed server); the switch then resets to None, unless ``cut_repeat`` is True.
    * ``throttle_bps``: cap each file body at that many bytes per second.
    * ``advertise_sha``: ``{path: sha}``; advertise that sha instead of the real one (in the ETag headers,
      model info and tree), for any repo holding `path`. For non-LFS files it replaces the git blob id etag.
    * ``fail_status``: answer every request with that HTTP status and a JSON error (e.g. 503).
    * ``offline``: a property; True closes the listening socket and cuts open connections, so clients
      see "connection refused" (httpx ``ConnectError``) as with a host that is unreachable; False listens
      again on the same port.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        chunk_size: int = CHUNK_SIZE,
        throttle_bps: int | None = None,
        ignore_range: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.chunk_size = chunk_size
        self.throttle_bps = throttle_bps
        self.ignore_range = ignore_range
        self.cut_after: int | None = None
        self.cut_repeat = False
        self.advertise_sha: dict[str, str] = {}
        self.fail_status: int | None = None
        self._repos: dict[str, HubRepo] = {}
        self._lock = threading.Lock()
        self._bytes_sent: dict[tuple[str, str], int] = {}
        self._requests: list[RequestRecord] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._started = False
        self._offline = False

    # lifecycle

    @property
    def url(self) -> str:
        """Base URL to pass as ``endpoint=`` (or ``HF_ENDPOINT``)."""
        if not self._started:
            raise RuntimeError("HubServer is not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> HubServer:
        """Listen (on a free port if `port` is 0) and serve from a daemon thread."""
        if not self._started:
            self._listen()
            self._started = True
        return self

    def close(self) -> None:
        """Stop listening and drop open connections."""
        self._stop()
        self._started = False

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def offline(self) -> bool:
        """Whether the server refuses connections (see the class docstring)."""
        return self._offline

    @offline.setter
    def offline(self, value: bool) -> None:
        if value == self._offline:
            return
        self._offline = value
        if self._started:
            if value:
                self._stop()
            else:
                self._listen()

    def _listen(self) -> None:
        server = _Server((self.host, self.port), self)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"hubserver-{self.port}", daemon=True
        )
        self._thread.start()

    def _stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.abort_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    # registration

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, Path | str],
        *,
        license: str | None = None,
        tags: Iterable[str] = (),
        info: Mapping[str, Any] | None = None,
        lfs: bool | None = None,
    ) -> HubRepo:
        """Register (or replace) a repo serving `files` ({name in repo: file on disk}).

        Tags get ``gguf`` when a ``.gguf`` file is present and ``license:<license>``; `info` overrides or adds
        model-info fields (e.g. ``pipeline_tag``, ``downloads``, ``gguf``). `lfs` forces LFS or not for all
        files; by default it follows the Hub (by suffix, or 10 MiB and more).
        """
        if repo_id.count("/") != 1:
            raise ValueError(f"repo id must be owner/name: {repo_id!r}")
        repo = HubRepo(repo_id, license=license, tags=list(tags), info=dict(info or {}))
        for name, source in files.items():
            repo.files[name] = HubFile.from_path(name, Path(source), lfs=lfs)
        if any(name.lower().endswith(".gguf") for name in repo.files) and "gguf" not in repo.tags:
            repo.tags.append("gguf")
        if license and f"license:{license}" not in repo.tags:
            repo.tags.append(f"license:{license}")
        with self._lock:
            self._repos = {**self._repos, repo_id: repo}
        return repo

    def add_file(self, repo_id: str, name: str, source: Path | str, *, lfs: bool | None = None) -> HubFile:
        """Add or replace one file of a registered repo."""
        return self._put(repo_id, HubFile.from_path(name, Path(source), lfs=lfs))

    def add_listing_entry(self, repo_id: str, name: str, source: Path | str) -> HubFile:
        """Add a file whose `name` is returned verbatim (e.g. ``../evil.gguf``, ``C:\\evil.gguf``).

        It is listed at the root of the tree and in model info as is, never split into folders, and it is
        served by ``resolve`` when a request path decodes exactly to `name`.
        """
        return self._put(repo_id, HubFile.from_path(name, Path(source), lfs=True, verbatim=True))

    def remove_file(self, repo_id: str, name: str) -> None:
        """Forget one file of a repo."""
        with self._lock:
            repo = self._repos[repo_id]
            repo.files = {k: v for k, v in repo.files.items() if k != name}

    def _put(self, repo_id: str, file: HubFile) -> HubFile:
        with self._lock:
            repo = self._repos[repo_id]
            repo.files = {**repo.files, file.name: file}
        return file

    @property
    def repos(self) -> dict[str, HubRepo]:
        """Registered repos by id."""
        return dict(self._repos)

    # faults and observation

    def cut(self, after: int | None, *, repeat: bool = False) -> None:
        """Cut the next file body (or every one, with `repeat`) after `after` bytes; None disables."""
        with self._lock:
            self.cut_after = after
            self.cut_repeat = repeat

    def sent(self, repo_id: str, path: str) -> int:
        """Body bytes sent for one file since the last `reset_counters`.

        Counted as they are handed to the socket, so the count is final by the time a client has read them.
        """
        with self._lock:
            return self._bytes_sent.get((repo_id, path), 0)

    @property
    def bytes_sent(self) -> dict[tuple[str, str], int]:
        """Body bytes sent per (repo id, path)."""
        with self._lock:
            return dict(self._bytes_sent)

    @property
    def total_sent(self) -> int:
        """Body bytes sent for all files."""
        with self._lock:
            return sum(self._bytes_sent.values())

    @property
    def requests(self) -> list[RequestRecord]:
        """Requests received, in arrival order (a copy of the list; records fill in as responses go out)."""
        with self._lock:
            return list(self._requests)

    def reset_counters(self) -> None:
        """Clear the byte counters and the request log."""
        with self._lock:
            self._bytes_sent.clear()
            self._requests.clear()

    def _log_request(self, method: str, path: str, range_header: str | None) -> RequestRecord:
        record = RequestRecord(method, path, range_header)
        with self._lock:
            self._requests.append(record)
        return record

    def _count(self, repo_id: str, path: str, n: int, record: RequestRecord) -> None:
        with self._lock:
            self._bytes_sent[(repo_id, path)] = self._bytes_sent.get((repo_id, path), 0) + n
            record.sent += n

    def _take_cut(self) -> int | None:
        with self._lock:
            limit = self.cut_after
            if limit is not None and not self.cut_repeat:
                self.cut_after = None
            return limit

    # payloads

    def _sha(self, file: HubFile) -> str:
        """The sha256 advertised for an LFS file."""
        return self.advertise_sha.get(file.name) or file.sha256

    def _oid(self, file: HubFile) -> str:
        """The git oid advertised for a file (for non-LFS files, also its etag)."""
        return file.blob_id if file.lfs else self.advertise_sha.get(file.name) or file.blob_id

    def _sibling(self, file: HubFile, blobs: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"rfilename": file.name}
        if blobs:
            entry["blobId"] = self._oid(file)
            entry["size"] = file.size
            if file.lfs:
                entry["lfs"] = {"sha256": self._sha(file), "size": file.size, "pointerSize": file.pointer_size}
        return entry

    def _info_dict(self, repo: HubRepo, *, blobs: bool) -> dict[str, Any]:
        owner = repo.repo_id.split("/", 1)[0]
        files = sorted(repo.files.values(), key=lambda f: f.name)
        info: dict[str, Any] = {
            "_id": _fake_id(repo.repo_id),
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "author": owner,
            "sha": COMMIT,
            "lastModified": DATE,
            "createdAt": DATE,
            "private": False,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "trendingScore": 0,
            "library_name": "gguf" if "gguf" in repo.tags else None,
            "pipeline_tag": None,
            "tags": list(repo.tags),
            "siblings": [self._sibling(f, blobs) for f in files],
            "spaces": [],
            "usedStorage": sum(f.size for f in files),
        }
        if repo.license:
            info["cardData"] = {"license": repo.license, "tags": list(repo.tags)}
        info.update(repo.info)
        return info

    def _search(self, query: Mapping[str, list[str]]) -> list[dict[str, Any]]:
        """``GET /api/models``: repos matching every given criterion, as list summaries."""
        search = query.get("search", [""])[0].lower()
        filters = [v.lower() for v in query.get("filter", []) if v]
        author = query.get("author", [""])[0].lower()
        pipeline_tag = query.get("pipeline_tag", [""])[0]
        expand = _expand(query)
        full = _flag(query, "full")
        results: list[dict[str, Any]] = []
        for repo in list(self._repos.values()):
            info = self._info_dict(repo, blobs=False)
            labels = {t.lower() for t in info["tags"]} | {str(info.get("library_name")).lower()}
            if search and search not in repo.repo_id.lower():
                continue
            if any(f not in labels for f in filters):
                continue
            if author and info["author"].lower() != author:
                continue
            if pipeline_tag and info.get("pipeline_tag") != pipeline_tag:
                continue
            results.append(info)
        if sort := query.get("sort", [""])[0]:
            descending = query.get("direction", ["-1"])[0] != "1"
            results.sort(key=lambda i: (i.get(sort) is not None, i.get(sort) or 0), reverse=descending)
        if limit := query.get("limit", [""])[0]:
            results = results[: max(0, int(limit))]
        keep = {"_id", "id", "modelId", "likes", "trendingScore", "private", "downloads", "tags", "pipeline_tag",
                "library_name", "createdAt"}  # fmt: skip
        if full:
            keep |= {"author", "sha", "lastModified", "gated", "disabled", "siblings"}
        if _flag(query, "cardData"):
            keep.add("cardData")
        if _flag(query, "config"):
            keep.add("config")
        if expand:
            keep = {"_id", "id", *expand}
        return [{k: v for k, v in info.items() if k in keep} for info in results]

    def _file_entry(self, file: HubFile, expand: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "oid": self._oid(file), "size": file.size, "path": file.name}
        if file.lfs:
            entry["lfs"] = {"oid": self._sha(file), "size": file.size, "pointerSize": file.pointer_size}
        if expand:
            entry["lastCommit"] = {"id": COMMIT, "title": "Upload", "date": DATE}
            entry["securityFileStatus"] = {"status": "safe", "avScan": {"virusFound": False}, "pickleImportScan": None}
        return entry

    @staticmethod
    def _folder_entry(path: str, expand: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "directory", "oid": _git_blob_id(path.encode()), "size": 0, "path": path}
        if expand:
            entry["lastCommit"] = {"id": COMMIT, "title": "Upload", "date": DATE}
        return entry

    def _tree(self, repo: HubRepo, path: str, recursive: bool, expand: bool) -> list[dict[str, Any]] | None:
        """Tree entries under folder `path` ("" for the root), or None if there is no such folder."""
        prefix = f"{path}/" if path else ""
        files: list[HubFile] = []
        folders: set[str] = set()
        verbatim: list[HubFile] = []
        for file in sorted(repo.files.values(), key=lambda f: f.name):
            if file.verbatim:
                if not path:
                    verbatim.append(file)
                continue
            if not file.name.startswith(prefix):
                continue
            parts = file.name[len(prefix) :].split("/")
            if len(parts) == 1:
                files.append(file)
            elif recursive:
                files.append(file)
                folders.update(prefix + "/".join(parts[:i]) for i in range(1, len(parts)))
            else:
                folders.add(prefix + parts[0])
        if path and not files and not folders:
            return None
        entries = [self._folder_entry(f, expand) for f in sorted(folders)]
        entries += [self._file_entry(f, expand) for f in files + verbatim]
        return entries

    def _paths_info(self, repo: HubRepo, paths: Sequence[str], expand: bool) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        names = list(repo.files)
        for path in paths:
            if (file := repo.files.get(path)) is not None:
                entries.append(self._file_entry(file, expand))
            elif any(name.startswith(path.rstrip("/") + "/") for name in names):
                entries.append(self._folder_entry(path.rstrip("/"), expand))
        return entries


def _parse_repo_arg(value: str) -> tuple[str, Path]:
    repo_id, sep, directory = value.partition("=")
    if not sep or repo_id.count("/") != 1 or not directory:
        raise argparse.ArgumentTypeError(f"expected owner/name=DIR, got {value!r}")
    path = Path(directory)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"not a directory: {directory}")
    return repo_id, path


def main(argv: Sequence[str] | None = None) -> int:
    """Serve every regular file of each ``--repo owner/name=DIR`` until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m tests.hubserver", description="A fake Hugging Face Hub.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--repo", type=_parse_repo_arg, action="append", default=[], metavar="OWNER/NAME=DIR")
    parser.add_argument("--license", default="apache-2.0", help="license of every repo")
    parser.add_argument("--tag", action="append", default=[], help="extra tag for every repo (repeatable)")
    parser.add_argument("--throttle-bps", type=int, default=None, help="cap each file body at N bytes/second")
    parser.add_argument("--ignore-range", action="store_true", help="answer Range requests with the whole file")
    args = parser.parse_args(argv)

    hub = HubServer(args.host, args.port, throttle_bps=args.throttle_bps, ignore_range=args.ignore_range)
    for repo_id, directory in args.repo:
        files = {p.name: p for p in sorted(directory.iterdir()) if p.is_file()}
        hub.add_repo(repo_id, files, license=args.license, tags=args.tag)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with hub:
        print(f"READY {hub.url}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
