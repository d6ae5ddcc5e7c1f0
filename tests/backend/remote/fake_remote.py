"""An engine server on loopback that can behave well or badly: an asyncio TCP server with its own
event loop in a thread (so it serves async tests and a gridless server process alike), writing
every byte of its answers itself.

It speaks enough HTTP/1.1 for an OpenAI client: `GET …/models` and `POST …/chat/completions` under
any prefix, keep-alive, streams in chunked transfer encoding as llama-server sends them. `mode`
selects how it answers (and can be changed between requests):

- `good`: the model list; answers streamed in llama-server's shape (role chunk, a chunk per word,
  a finish chunk, a usage chunk with empty choices, `[DONE]`), `delay_s` between chunks; a JSON
  completion when the request does not ask for a stream.
- `gzip`: as `good`, but the model list is gzip-compressed whenever the client accepts gzip (as
  cpp-httplib, llama-server's HTTP library, does for JSON).
- `bad_json`, `html` (HTML with status 200), `not_openai` (JSON without `data`).
- `text_plain`: the answer as `text/plain`; `html_stream`: HTML labelled `text/event-stream`.
- `huge`: a body of 1 GiB generated on the fly (JSON for the list, comment lines for a stream);
  `huge_json`: a 1 GiB `application/json` answer to a streamed request.
- `endless`: valid chunks without end; `no_newline`: bytes without end and without a newline.
- `silent`: the headers (and for a stream the role chunk), then nothing, with the connection kept open.
- `die`: `die_after` words, then the connection is closed mid-stream.
- `unauthorized` (401), `error500` (500 with an OpenAI error body of `error_length` characters),
  `redirect` (302 to `/elsewhere/v1/…`, which records it if the client follows).
- `json_answer`: a whole JSON completion even to a streamed request.
- `trickle_error` (500), `trickle_json` (200, JSON): a body sent a byte every 0.1 s.
- `tools`: two tool calls with their arguments cut over many chunks.
- `calculator`: a call of the app's calculator, then, asked again with its result, an answer that says it.

`POST …/embeddings` answers in the good mode with one vector of `embedding_dim` numbers per text
(made from the text, so the same text has the same vector), and a usage with `prompt_tokens` (the
texts' words). It misbehaves with `bad_json`, `html` (HTML with status 200), `huge` (1 GiB of
JSON), and the embedding modes: `embed_shuffled` (the vectors in reverse order, each with its
`index`), `embed_short` (one vector fewer than the texts), `embed_strings`, `embed_bools` and
`embed_nulls` (a vector of strings, of booleans, with a null where a NaN was), `embed_nan` (a
bare `NaN` number, which Python's JSON reader takes), `embed_ragged` (the second vector one number
shorter), `embed_wide` (8 193 numbers each), `embed_zero` (the first vector all zeros) and
`embed_bad_index` (every vector with index 0).

`POST …/audio/transcriptions` reads the whole multipart body (its form fields go to `Seen.form`, its
files to `Seen.files`) and answers in the good mode with OpenAI's `verbose_json` (`text`, `language`,
`duration`, `segments` with `id`, `start`, `end`, `text`) made from `speech_segments`, after `delay_s`
(the time the model takes). It misbehaves with `bad_json`, `html`, `huge` (1 GiB of JSON),
`error500`, and the speech modes: `speech_json` (the plain `json` answer, the text only) and
`speech_no_text` (segments without a `text`).

`POST …/images/generations` (its JSON body goes to `Seen.body`, as every body) answers in the good mode,
after `delay_s` (the time the model takes, cut short when the client leaves: `Seen.closed_at`), with
`{"created", "data": [{"b64_json": …}]}`: `n` real PNGs of the requested `size` (512x512 when none is
given; `image_size` when set), each a colour of its own. It misbehaves with `bad_json`, `html`, `huge`
(1 GiB of JSON), `error500`, and the image modes: `images_url` (links to `image_url`, as OpenAI's default answer),
`images_bad_b64` (text that is not base64), `images_not_picture` (base64 of bytes that are no picture),
`images_bomb` (a PNG of 10 000 × 10 000 pixels, a few kB on the wire: see `bomb_png`), `images_jpeg`
(JPEGs rather than PNGs), `images_none` (an empty `data`) and `images_extra` (one picture more than asked).

With `key` set, a request without `Authorization: Bearer <key>` gets 401. With `tls` (a
certificate and key file), connections are upgraded to TLS in the handler, so connections that
never get past the handshake are counted too (`connections`, `handshakes_failed`) and
`http_bytes` says whether any HTTP reached it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hashlib
import json
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["GIB", "SPEECH_SEGMENTS", "WORDS", "FakeRemote", "Seen", "bomb_png", "llama_chunk", "multipart",
           "picture_bytes"]

GIB = 1024 * 1024 * 1024
BLOCK = 64 * 1024
WORDS = ("Hello", " from", " the", " big", " box", ".")
ERROR_MESSAGE = "The model is overloaded; try again later. "
SPEECH_SEGMENTS = ((0.0, 1.8, " Plant the tomatoes"), (1.8, 3.2, " after the last frost."))
"""(start, end, text) of each segment the good mode hears, in order."""

T = TypeVar("T")


@dataclass
class Seen:
    """One request the fake read."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)
    closed_at: float | None = None
    """When the client closed the connection while this request's answer was being written."""
    form: dict[str, str] = field(default_factory=dict)
    """A multipart body's plain fields."""
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    """A multipart body's files: (file name, bytes) by field name."""

    def json(self) -> Any:
        return json.loads(self.body)


def multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """The fields and files of a `multipart/form-data` body, read byte for byte."""
    boundary = next((p.strip().partition("=")[2].strip('"') for p in content_type.split(";")
                     if p.strip().lower().startswith("boundary=")), "")
    if not content_type.lower().startswith("multipart/form-data") or not boundary:
        raise ValueError(f"not a multipart form: {content_type!r}")
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    delimiter = b"--" + boundary.encode()
    parts = body.split(b"\r\n" + delimiter)
    if not parts[0].startswith(delimiter):
        raise ValueError("the body does not start with its boundary")
    parts[0] = parts[0][len(delimiter):]
    if not parts[-1].startswith(b"--"):
        raise ValueError("the body does not end with its closing boundary")
    for part in parts[:-1]:
        head, separator, content = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("a part without headers")
        disposition = next((line for line in head.decode("utf-8").split("\r\n")
                            if line.lower().startswith("content-disposition:")), "")
        params = {}
        for item in disposition.split(";")[1:]:
            key, _, value = item.strip().partition("=")
            params[key.lower()] = value.strip('"')
        if "filename" in params:
            files[params["name"]] = (params["filename"], content)
        else:
            fields[params["name"]] = content.decode("utf-8")
    return fields, files


def llama_chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """One chunk as llama-server streams it (`choices` empty when `delta` is None)."""
    choices = [] if delta is None else [{"finish_reason": finish, "index": 0, "delta": delta}]
    return {"choices": choices, "created": 1735689600, "id": "chatcmpl-fake", "model": "big-model",
            "system_fingerprint": "b6000-fake", "object": "chat.completion.chunk", **extra}


def _sse(payload: dict[str, Any] | str) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {text}\n\n".encode()


def picture_bytes(width: int, height: int, index: int = 0, kind: str = "PNG") -> bytes:
    """A real picture of `width` × `height` (PNG or JPEG), a colour of its own for each `index`, with a
    stripe so it is not one flat colour."""
    import io

    from PIL import Image, ImageDraw

    colour = ((60 + 70 * index) % 256, (200 - 40 * index) % 256, (90 + 25 * index) % 256)
    picture = Image.new("RGB", (width, height), colour)
    ImageDraw.Draw(picture).rectangle((0, height // 3, width - 1, height // 2), fill=(250, 250, 240))
    out = io.BytesIO()
    picture.save(out, kind)
    return out.getvalue()


def bomb_png(side: int = 10_000) -> bytes:
    """A valid PNG of `side` × `side` black pixels (1 bit each), written chunk by chunk without ever
    holding the picture: about 13 kB for 10 000 pixels a side, 12.5 MB once decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\0" * (1 + (side + 7) // 8)  # filter byte 0, then the row's bits
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1 bit, greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


class _Closed(Exception):
    """The client closed the connection."""


class FakeRemote:
    def __init__(self, *, mode: str = "good", key: str | None = None,
                 models: Sequence[str] = ("big-model", "small-model"), words: Sequence[str] = WORDS,
                 delay_s: float = 0.0, tls: tuple[Path, Path] | None = None, port: int = 0,
                 die_after: int = 3, error_length: int = 1000, owned_by: str = "llamacpp",
                 authority: bytes | None = None, embedding_dim: int = 8,
                 speech_segments: Sequence[tuple[float, float, str]] = SPEECH_SEGMENTS,
                 speech_language: str = "en", image_url: str = "http://127.0.0.1:9/files/picture.png",
                 image_size: tuple[int, int] | None = None) -> None:
        self.mode = mode
        self.image_size = image_size
        """The size of every picture it makes, whatever is asked (a model with sizes of its own)."""
        self.image_url = image_url
        """Where `images_url` says its pictures are (never fetched by a client that behaves)."""
        self.speech_segments = list(speech_segments)
        self.speech_language = speech_language
        """As the server names it: faster-whisper's servers say "en", OpenAI says "english"."""
        self.embedding_dim = embedding_dim
        self.authority = authority
        """A PEM certificate served at /ca/gridless-ca.pem without a key, as another gridless does."""
        self.key = key
        self.models = list(models)
        self.words = list(words)
        self.delay_s = delay_s
        self.die_after = die_after
        self.error_length = error_length
        self.owned_by = owned_by
        self.port = port
        self.seen: list[Seen] = []
        self.connections = 0
        self.handshakes_failed = 0
        self.http_bytes = 0
        self.sent = 0
        """Body bytes written."""
        self._tls: ssl.SSLContext | None = None
        self._set_tls(tls)
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # running -------------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self.host}"

    def start(self) -> FakeRemote:
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-remote", daemon=True)
        self._thread.start()
        self._call(self._listen)
        return self

    def close(self) -> None:
        if self._thread is None:
            return
        self._call(self._shut)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
        self._loop.close()

    def __enter__(self) -> FakeRemote:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def down(self) -> None:
        """Stop listening and cut every open connection (the machine went away)."""
        self._call(self._shut)

    def up(self, tls: tuple[Path, Path] | None = None) -> None:
        """Listen again on the same port (with another certificate, if given)."""
        if tls is not None:
            self._set_tls(tls)
        self._call(self._listen)

    def requests(self, suffix: str) -> list[Seen]:
        return [s for s in list(self.seen) if s.path.endswith(suffix)]

    def _set_tls(self, tls: tuple[Path, Path] | None) -> None:
        if tls is None:
            return
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls[0]), str(tls[1]))
        self._tls = context

    def _call(self, make: Callable[[], Awaitable[T]], timeout: float = 10.0) -> T:
        async def run() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    # a connection -------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            if self._tls is not None:
                try:
                    await writer.start_tls(self._tls)
                except (ssl.SSLError, OSError):
                    self.handshakes_failed += 1
                    return
            while True:
                request = await self._request(reader)
                if request is None:
                    return
                self.seen.append(request)
                if not await self._answer(request, reader, writer):
                    return
        except (_Closed, ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _request(self, reader: asyncio.StreamReader) -> Seen | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            self.http_bytes += len(exc.partial)
            return None
        self.http_bytes += len(head)
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                body += await reader.readexactly(size + 2)
                body = body[:-2]
                if size == 0:
                    break
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.http_bytes += len(body)
        seen = Seen(method, path, headers, body)
        if headers.get("content-type", "").lower().startswith("multipart/form-data"):
            seen.form, seen.files = multipart(headers["content-type"], body)
        return seen

    async def _answer(self, seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Write the answer; whether the connection stays open for another request."""
        mode = self.mode
        if seen.method == "GET" and seen.path == "/ca/gridless-ca.pem" and self.authority is not None:
            return await self._raw(writer, 200, "application/x-pem-file", self.authority)
        if seen.path.startswith("/elsewhere/"):
            return await self._json(writer, 200, {"object": "list", "data": [{"id": "redirected"}]})
        if self.key is not None and seen.headers.get("authorization") != f"Bearer {self.key}":
            mode = "unauthorized"
        if mode == "unauthorized":
            return await self._json(writer, 401, {"error": {"code": 401, "message": "Invalid API Key",
                                                            "type": "authentication_error"}})
        if mode == "error500":
            message = (ERROR_MESSAGE * (self.error_length // len(ERROR_MESSAGE) + 1))[:self.error_length]
            return await self._json(writer, 500, {"error": {"code": 500, "message": message,
                                                            "type": "server_error"}})
        if mode in ("trickle_error", "trickle_json"):  # a body a byte at a time, slower than any limit
            status = 500 if mode == "trickle_error" else 200
            await self._head(writer, status, "application/json", length=10_000)
            for _ in range(10_000):
                writer.write(b" ")
                self.sent += 1
                await writer.drain()
                await asyncio.sleep(0.1)
            return False
        if mode == "redirect":
            await self._head(writer, 302, "text/plain", length=0,
                             extra={"location": f"/elsewhere{seen.path}"})
            return True
        if seen.method == "GET" and seen.path.endswith("/models"):
            if mode == "silent":  # the headers, then nothing until the client leaves
                await self._head(writer, 200, "application/json", length=100)
                await reader.read(1)
                seen.closed_at = time.monotonic()
                return False
            return await self._models(seen, writer, mode)
        if seen.method == "POST" and seen.path.endswith("/chat/completions"):
            return await self._chat(seen, reader, writer, mode)
        if seen.method == "POST" and seen.path.endswith("/embeddings"):
            return await self._embeddings(seen, writer, mode)
        if seen.method == "POST" and seen.path.endswith("/audio/transcriptions"):
            return await self._transcription(seen, writer, mode)
        if seen.method == "POST" and seen.path.endswith("/images/generations"):
            return await self._images(seen, reader, writer, mode)
        return await self._json(writer, 404, {"error": {"code": 404, "message": "File Not Found",
                                                        "type": "not_found_error"}})

    async def _models(self, seen: Seen, writer: asyncio.StreamWriter, mode: str) -> bool:
        if mode == "bad_json":
            return await self._raw(writer, 200, "application/json", b'{"object": "list", "data": [{"id": "big')
        if mode in ("html", "html_stream"):
            return await self._raw(writer, 200, "text/html; charset=utf-8",
                                   b"<!DOCTYPE html>\n<html><body><h1>Router login</h1></body></html>\n")
        if mode == "not_openai":
            return await self._json(writer, 200, {"models": [{"name": m} for m in self.models]})
        if mode == "huge":
            await self._head(writer, 200, "application/json", length=GIB)
            await self._endless_body(writer, b'{"object": "list", "data": [' + b" " * (BLOCK - 28), GIB)
            return False
        listing = {"object": "list", "data": [{"id": m, "object": "model", "created": 1735689600,
                                               "owned_by": self.owned_by} for m in self.models]}
        if mode == "gzip" and "gzip" in seen.headers.get("accept-encoding", ""):
            body = gzip.compress(json.dumps(listing).encode())
            return await self._raw(writer, 200, "application/json", body, extra={"content-encoding": "gzip"})
        return await self._json(writer, 200, listing)

    async def _chat(self, seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    mode: str) -> bool:
        streamed = bool(seen.json().get("stream"))
        if mode == "json_answer" or (mode == "good" and not streamed):
            return await self._json(writer, 200, self._completion())
        if mode == "text_plain":
            return await self._raw(writer, 200, "text/plain; charset=utf-8", "".join(self.words).encode())
        if mode == "huge_json":
            await self._head(writer, 200, "application/json", length=GIB)
            await self._endless_body(writer, b'{"choices": [' + b" " * (BLOCK - 13), GIB)
            return False
        if mode == "calculator":  # a model that calls the app's calculator, then answers with its result
            messages = seen.json().get("messages", [])
            if messages and messages[-1].get("role") == "tool":
                self.words = ["It is ", str(messages[-1].get("content")), "."]
                mode = "good"
            else:
                mode = "calculator_call"
        await self._head(writer, 200, "text/event-stream", chunked=True)
        closed = asyncio.Event()

        async def watch() -> None:  # the client sends nothing while it reads: EOF is it leaving
            with contextlib.suppress(ConnectionError, OSError):
                await reader.read(1)
            seen.closed_at = time.monotonic()
            closed.set()

        watcher = asyncio.create_task(watch())
        try:
            await self._stream(writer, mode, closed)
        finally:
            if not watcher.done():
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        return mode not in ("die", "huge", "endless", "no_newline", "silent")

    async def _stream(self, writer: asyncio.StreamWriter, mode: str, closed: asyncio.Event) -> None:
        async def send(data: bytes) -> None:
            if closed.is_set():
                raise _Closed
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.sent += len(data)
            await writer.drain()

        async def pause(seconds: float) -> None:
            if seconds > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(closed.wait(), seconds)
            if closed.is_set():
                raise _Closed

        if mode == "html_stream":
            await send(b"<!DOCTYPE html>\n<html><body><h1>Router login</h1></body></html>\n")
        elif mode == "huge":
            line = b": " + b"x" * 1021 + b"\n"
            while True:
                await send(line * 64)
        elif mode == "no_newline":
            block = b"data: " + b"x" * (16 * 1024 - 6)
            await send(block)
            while True:
                await send(b"x" * 16 * 1024)
        elif mode == "endless":
            await send(_sse(llama_chunk({"role": "assistant", "content": None})))
            while True:
                await send(_sse(llama_chunk({"content": " and"})))
                await pause(0.01)
        elif mode == "silent":
            await send(_sse(llama_chunk({"role": "assistant", "content": None})))
            await pause(3600)
        elif mode in ("tools", "calculator_call"):
            for part in _tool_chunks() if mode == "tools" else _calculator_chunks():
                await send(_sse(part))
                await pause(self.delay_s)
            await send(_sse("[DONE]"))
        else:  # good, die
            await send(_sse(llama_chunk({"role": "assistant", "content": None})))
            for index, word in enumerate(self.words):
                if mode == "die" and index == self.die_after:
                    writer.transport.abort()
                    return
                await pause(self.delay_s)
                await send(_sse(llama_chunk({"content": word})))
            await send(_sse(llama_chunk({}, "stop")))
            await send(_sse(llama_chunk(None, usage={"completion_tokens": len(self.words), "prompt_tokens": 9,
                                                     "total_tokens": 9 + len(self.words)},
                                        timings={"predicted_per_second": 42.0})))
            await send(_sse("[DONE]"))
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    def vector(self, text: str, dim: int | None = None) -> list[float]:
        """The vector the good mode gives for `text`: numbers in [-1, 1) made from its hash."""
        size = self.embedding_dim if dim is None else dim
        seed = hashlib.sha256(text.encode()).digest()
        numbers: list[float] = []
        counter = 0
        while len(numbers) < size:
            block = hashlib.sha256(seed + counter.to_bytes(4, "little")).digest()
            numbers += [b / 128.0 - 1.0 for b in block]
            counter += 1
        return numbers[:size]

    async def _embeddings(self, seen: Seen, writer: asyncio.StreamWriter, mode: str) -> bool:
        if mode == "bad_json":
            return await self._raw(writer, 200, "application/json", b'{"object": "list", "data": [{"embedding": [0.1')
        if mode in ("html", "html_stream"):
            return await self._raw(writer, 200, "text/html; charset=utf-8",
                                   b"<!DOCTYPE html>\n<html><body><h1>Router login</h1></body></html>\n")
        if mode == "huge":
            await self._head(writer, 200, "application/json", length=GIB)
            await self._endless_body(writer, b'{"object": "list", "data": [' + b" " * (BLOCK - 28), GIB)
            return False
        given = seen.json().get("input")
        texts = [given] if isinstance(given, str) else [str(t) for t in given or []]
        dim = 8193 if mode == "embed_wide" else None
        rows: list[Any] = [self.vector(text, dim) for text in texts]
        if mode == "embed_strings" and rows:
            rows[0] = [str(x) for x in rows[0]]
        elif mode == "embed_bools" and rows:
            rows[0] = [x > 0 for x in rows[0]]
        elif mode == "embed_nulls" and rows:
            rows[0] = [None, *rows[0][1:]]
        elif mode == "embed_nan" and rows:
            rows[0] = [float("nan"), *rows[0][1:]]
        elif mode == "embed_ragged" and len(rows) > 1:
            rows[1] = rows[1][:-1]
        elif mode == "embed_zero" and rows:
            rows[0] = [0.0] * len(rows[0])
        data = [{"object": "embedding", "index": 0 if mode == "embed_bad_index" else i, "embedding": row}
                for i, row in enumerate(rows)]
        if mode == "embed_short":
            data = data[:-1]
        elif mode == "embed_shuffled":
            data.reverse()
        words = sum(len(text.split()) for text in texts)
        return await self._json(writer, 200, {"object": "list", "model": seen.json().get("model"), "data": data,
                                              "usage": {"prompt_tokens": words, "total_tokens": words}})

    @property
    def speech_text(self) -> str:
        """The whole text the good mode answers."""
        return "".join(text for _, _, text in self.speech_segments).strip()

    async def _transcription(self, seen: Seen, writer: asyncio.StreamWriter, mode: str) -> bool:
        if "file" not in seen.files:
            return await self._json(writer, 400, {"error": {"code": 400, "message": "No file was sent",
                                                            "type": "invalid_request_error"}})
        if mode == "bad_json":
            return await self._raw(writer, 200, "application/json", b'{"text": " Plant the tom')
        if mode in ("html", "html_stream"):
            return await self._raw(writer, 200, "text/html; charset=utf-8",
                                   b"<!DOCTYPE html>\n<html><body><h1>Router login</h1></body></html>\n")
        if mode == "huge":
            await self._head(writer, 200, "application/json", length=GIB)
            await self._endless_body(writer, b'{"text": "' + b"a" * (BLOCK - 10), GIB)
            return False
        if self.delay_s > 0:
            await asyncio.sleep(self.delay_s)
        if mode == "speech_json":
            return await self._json(writer, 200, {"text": self.speech_text})
        segments = [{"id": i, "seek": 0, "start": start, "end": end, "text": text, "tokens": [], "temperature": 0.0,
                     "avg_logprob": -0.2, "compression_ratio": 1.1, "no_speech_prob": 0.01}
                    for i, (start, end, text) in enumerate(self.speech_segments)]
        answer: dict[str, Any] = {"task": "transcribe", "language": self.speech_language,
                                  "duration": self.speech_segments[-1][1] if self.speech_segments else 0.0,
                                  "text": self.speech_text, "segments": segments}
        if mode == "speech_no_text":
            del answer["text"]
        return await self._json(writer, 200, answer)

    async def _images(self, seen: Seen, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      mode: str) -> bool:
        if mode == "bad_json":
            return await self._raw(writer, 200, "application/json", b'{"created": 1735689600, "data": [{"b64_')
        if mode in ("html", "html_stream"):
            return await self._raw(writer, 200, "text/html; charset=utf-8",
                                   b"<!DOCTYPE html>\n<html><body><h1>Router login</h1></body></html>\n")
        if mode == "huge":
            await self._head(writer, 200, "application/json", length=GIB)
            await self._endless_body(writer, b'{"data": [{"b64_json": "' + b"A" * (BLOCK - 24), GIB)
            return False
        if self.delay_s > 0:  # the model at work; a client that leaves ends the wait
            try:
                await asyncio.wait_for(reader.read(1), self.delay_s)
            except TimeoutError:
                pass
            else:
                seen.closed_at = time.monotonic()
                return False
        asked = seen.json()
        count = int(asked.get("n") or 1)
        width, _, height = str(asked.get("size") or "512x512").partition("x")
        size = self.image_size or (int(width), int(height))
        if mode == "images_extra":
            count += 1
        data: list[dict[str, Any]] = []
        for index in range(0 if mode == "images_none" else count):
            if mode == "images_url":
                data.append({"url": f"{self.image_url}?n={index}", "revised_prompt": asked.get("prompt")})
                continue
            if mode == "images_bad_b64":
                encoded = "this is not base64: ¿?"
            elif mode == "images_not_picture":
                encoded = base64.b64encode(b"%PDF-1.7 not a picture at all " * 20).decode()
            elif mode == "images_bomb":
                encoded = base64.b64encode(bomb_png()).decode()
            else:
                kind = "JPEG" if mode == "images_jpeg" else "PNG"
                encoded = base64.b64encode(picture_bytes(*size, index=index, kind=kind)).decode()
            data.append({"b64_json": encoded})
        return await self._json(writer, 200, {"created": 1735689600, "data": data})

    def _completion(self) -> dict[str, Any]:
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 1735689600, "model": "big-model",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "".join(self.words)}}],
                "usage": {"completion_tokens": len(self.words), "prompt_tokens": 9,
                          "total_tokens": 9 + len(self.words)}}

    # writing ------------------------------------------------------------------------------------

    async def _head(self, writer: asyncio.StreamWriter, status: int, kind: str, *, length: int | None = None,
                    chunked: bool = False, extra: dict[str, str] | None = None) -> None:
        reason = {200: "OK", 302: "Found", 401: "Unauthorized", 404: "Not Found", 500: "Internal Server Error"}
        lines = [f"HTTP/1.1 {status} {reason.get(status, 'Status')}", f"Content-Type: {kind}",
                 "Server: fake-remote", "Keep-Alive: timeout=5, max=100"]
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        elif length is not None:
            lines.append(f"Content-Length: {length}")
        lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()

    async def _raw(self, writer: asyncio.StreamWriter, status: int, kind: str, body: bytes, *,
                   extra: dict[str, str] | None = None) -> bool:
        await self._head(writer, status, kind, length=len(body), extra=extra)
        writer.write(body)
        self.sent += len(body)
        await writer.drain()
        return True

    async def _json(self, writer: asyncio.StreamWriter, status: int, payload: Any) -> bool:
        return await self._raw(writer, status, "application/json; charset=utf-8", json.dumps(payload).encode())

    async def _endless_body(self, writer: asyncio.StreamWriter, block: bytes, total: int) -> None:
        """`total` bytes made of `block` again and again, never held whole."""
        view = memoryview(block)
        written = 0
        while written < total:
            piece = view[:min(len(view), total - written)]
            writer.write(piece)
            written += len(piece)
            self.sent += len(piece)
            await writer.drain()


def _calculator_chunks() -> list[dict[str, Any]]:
    return [llama_chunk({"role": "assistant", "content": None}),
            llama_chunk({"tool_calls": [{"index": 0, "id": "call_calc", "type": "function",
                                         "function": {"name": "calculator", "arguments": '{"expression": '}}]}),
            llama_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"6*7"}'}}]}),
            llama_chunk({}, "tool_calls")]


def _tool_chunks() -> list[dict[str, Any]]:
    """Two tool calls streamed as llama-server and OpenAI do: the id and name first, then the
    arguments a few characters at a time, each under its call's index."""
    chunks = [llama_chunk({"role": "assistant", "content": None})]
    for index, (call_id, name, arguments) in enumerate([
            ("call_weather", "get_weather", '{"city": "Zürich", "unit": "celsius"}'),
            ("call_time", "get_time", '{"zone": "Europe/Zurich"}')]):
        chunks.append(llama_chunk({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                                   "function": {"name": name, "arguments": ""}}]}))
        for start in range(0, len(arguments), 4):
            chunks.append(llama_chunk({"tool_calls": [{"index": index,
                                                       "function": {"arguments": arguments[start:start + 4]}}]}))
    chunks.append(llama_chunk({}, "tool_calls"))
    chunks.append(llama_chunk(None, usage={"completion_tokens": 30, "prompt_tokens": 50, "total_tokens": 80}))
    return chunks
