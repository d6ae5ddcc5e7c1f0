"""One engine server the owner added: its address, its key and how it is trusted, and the two
things gridless asks of it (its models, a streamed answer), within bounds.

Nothing here goes anywhere but the address it was made with: no proxy from the environment,
no redirects followed, no name looked up but that address's own.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..core.errors import AppError, ErrorCode
from ..core.units import format_limit
from .sse import StreamLimits, server_events

__all__ = ["RemoteClient", "RemoteLimits", "fetch_authority", "fetch_certificate", "fingerprint_of",
           "normalize_fingerprint", "normalize_url"]

SMALL_BODY = 1024 * 1024
"""The model list, an error's body: anything that is not a stream."""
MAX_MODELS = 500
MAX_DIM = 8192
EMBEDDINGS_BODY = 64 * 1024 * 1024
"""Vectors for a batch of texts, as JSON numbers."""
TRANSCRIPT_BODY = 16 * 1024 * 1024
"""A transcript with its segments (an hour of speech is well under 1 MiB)."""
MAX_MODEL_ID = 200


@dataclass(frozen=True, slots=True)
class RemoteLimits:
    connect_s: float = 5.0
    small_s: float = 10.0
    """A whole small request (the model list)."""
    silence_s: float = 300.0
    """No byte for this long, before the first token or between two."""
    stream: StreamLimits = field(default_factory=StreamLimits)


def normalize_url(text: str) -> str:
    """The base of a server's OpenAI API (`http://host:port/v1`) from what a person typed,
    pasted or scanned: `192.168.1.20:8080`, `http://laptop.local:11434`, `https://box/v1/`."""
    text = text.strip()
    if not text or len(text) > 500 or any(c.isspace() for c in text):
        raise AppError(ErrorCode.INVALID_VALUE, "Give the server's address, such as 192.168.1.20:8080.", param="url")
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise AppError(ErrorCode.INVALID_VALUE, f"'{text[:80]}' is not an address.", param="url") from None
    if parts.scheme not in ("http", "https"):
        raise AppError(ErrorCode.INVALID_VALUE, "The address must start with http:// or https://.", param="url")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise AppError(ErrorCode.INVALID_VALUE, "The address needs a host, and no user name or password in it "
                                                "(give the key on its own).", param="url")
    if parts.query or parts.fragment:
        raise AppError(ErrorCode.INVALID_VALUE, "The address must not hold a query (?…) or a fragment (#…).",
                       param="url")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return f"{parts.scheme}://{host.lower()}{f':{port}' if port else ''}{path}"


def normalize_fingerprint(text: str) -> str:
    """A SHA-256 fingerprint in the usual form (`AB:CD:…`), from any case and separators."""
    digits = re.sub(r"[^0-9a-fA-F]", "", text or "")
    if len(digits) != 64:
        raise AppError(ErrorCode.INVALID_VALUE, "A certificate fingerprint is 64 hexadecimal digits (SHA-256).",
                       param="fingerprint")
    return ":".join(digits[i:i + 2] for i in range(0, 64, 2)).upper()


def fingerprint_of(der: bytes) -> str:
    return normalize_fingerprint(hashlib.sha256(der).hexdigest())


async def fetch_certificate(url: str, within_s: float = 5.0) -> bytes:
    """The certificate an https server shows (DER), read without trusting it, to be compared
    with the fingerprint the owner gives."""
    parts = urlsplit(url)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    host = parts.hostname or ""
    try:
        async with asyncio.timeout(within_s):
            _, writer = await asyncio.open_connection(host, parts.port or 443, ssl=context,
                                                      server_hostname=host if not _is_address(host) else None)
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        raise AppError(ErrorCode.REMOTE_UNAVAILABLE, f"Cannot connect to {parts.netloc}: {_reason(exc)}.") from None
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    if not der:
        raise AppError(ErrorCode.REMOTE_UNTRUSTED, f"{parts.netloc} showed no certificate.")
    return bytes(der)


async def fetch_authority(url: str, within_s: float = 5.0) -> bytes | None:
    """The certificate authority another gridless serves publicly (`/ca/gridless-ca.pem`: the one
    its Sharing page shows the fingerprint of), as DER; None when there is none. Read without
    trusting the connection and without the key: it is compared with the fingerprint the owner gives."""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    try:
        async with asyncio.timeout(within_s), httpx.AsyncClient(verify=False, trust_env=False,
                                                                follow_redirects=False) as http:
            async with http.stream("GET", f"{origin}/ca/gridless-ca.pem") as response:
                if response.status_code != 200:
                    return None
                body = await _read(response, 64 * 1024, parts.netloc, quiet=True)
        return ssl.PEM_cert_to_DER_cert(body.decode("ascii"))
    except (httpx.HTTPError, TimeoutError, ValueError, UnicodeDecodeError):
        return None


def _is_address(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _trust(url: str, certificate: str | None) -> ssl.SSLContext | bool:
    if not url.startswith("https://"):
        return False
    if certificate:
        # the pinned certificate is the only trust anchor; home servers are reached by address,
        # so the name is not checked: the certificate itself is
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=certificate)
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        return context
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def _reason(exc: BaseException) -> str:
    """Why a connection failed, in words."""
    text = str(exc) or exc.__class__.__name__
    if isinstance(exc, (TimeoutError, httpx.TimeoutException)):
        return "it did not answer in time"
    if "refused" in text.lower() or "all connection attempts failed" in text.lower():
        return "nothing answers at that port (is the server running?)"
    if "unreachable" in text.lower() or "no route" in text.lower():
        return "that address cannot be reached from here (same network?)"
    if "name or service not known" in text.lower() or "nodename nor servname" in text.lower() \
            or "temporary failure in name resolution" in text.lower():
        return "that name is not known on this network"
    return text[:200]


def _certificate_problem(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class RemoteClient:
    """The connection to one server (kept open between requests)."""

    def __init__(self, url: str, api_key: str = "", certificate: str | None = None, *, name: str = "",
                 limits: RemoteLimits = RemoteLimits()) -> None:
        self.url = url
        self.name = name or (urlsplit(url).hostname or url)
        self.limits = limits
        # bodies are read raw (the limits count what arrives): ask for them uncompressed, or a
        # server that compresses when asked (llama-server's HTTP library does) sends gzip
        headers = {"accept": "application/json", "accept-encoding": "identity"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        self._http = httpx.AsyncClient(
            verify=_trust(url, certificate), trust_env=False, follow_redirects=False, headers=headers,
            timeout=httpx.Timeout(limits.silence_s, connect=limits.connect_s, write=30.0, pool=limits.connect_s),
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=4))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def models(self) -> list[str]:
        """The ids of the models the server offers."""
        payload = await self._json_call("GET", "/models", None, limit=SMALL_BODY, within_s=self.limits.small_s,
                                        what="list its models")
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            raise AppError(ErrorCode.REMOTE_FAILED, f"{self.name} did not answer with a list of models "
                                                    "(is it a server with OpenAI's API?).")
        ids = []
        for entry in data[:MAX_MODELS]:
            model = entry.get("id") if isinstance(entry, dict) else None
            if isinstance(model, str) and 0 < len(model) <= MAX_MODEL_ID and model.isprintable():
                ids.append(model)
        return ids

    async def chat(self, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """POST /chat/completions with `stream` on: each chunk's JSON, in order. A server that
        answers without streaming is read as one whole answer (a single chunk of its shape)."""
        try:
            async with self._http.stream("POST", f"{self.url}/chat/completions", json=payload,
                                         headers={"accept": "text/event-stream"}) as response:
                await self._check(response)
                kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if kind == "application/json":
                    limit_s = self.limits.stream.max_seconds
                    try:
                        async with asyncio.timeout(limit_s):  # each read is bounded; the whole too
                            body = await _read(response, self.limits.stream.max_line, self.name)
                    except TimeoutError:
                        raise AppError(ErrorCode.REMOTE_FAILED, f"{self.name} was still sending its answer after "
                                                                f"{limit_s:.0f} s; it was stopped.") from None
                    yield _whole_answer(_json(body, self.name))
                    return
                if kind != "text/event-stream":
                    raise AppError(ErrorCode.REMOTE_FAILED, f"{self.name} answered with {kind or 'no content type'}, "
                                                            "not an event stream.")
                async for data in server_events(response.aiter_raw(), self.limits.stream, self.name):
                    chunk = _json(data.encode(), self.name)
                    if not isinstance(chunk, dict):
                        raise AppError(ErrorCode.REMOTE_FAILED, f"{self.name} sent an event that is not an object.")
                    yield chunk
        except httpx.HTTPError as exc:
            raise self._transport(exc) from None

    async def embeddings(self, model: str, texts: list[str]) -> tuple[list[list[float]], int]:
        """POST /embeddings: one vector per text, in order, and the tokens the server counted."""
        payload = await self._json_call("POST", "/embeddings",
                                        {"model": model, "input": texts, "encoding_format": "float"},
                                        limit=min(EMBEDDINGS_BODY, SMALL_BODY + len(texts) * MAX_DIM * 24),
                                        within_s=self.limits.silence_s, what="give the vectors")
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list) or len(data) != len(texts):
            raise AppError(ErrorCode.REMOTE_FAILED, f"{self.name} did not give one vector for each text.")
        rows: list[tuple[int, list[float]]] = []
        for position, item in enumerate(data):
            vector = item.get("embedding") if isinstance(item, dict) else None
            index = item.get("index", position) if isinstance(item, dict) else position
            if not isinstance(vector, list) or not 0 < len(vector) <= MAX_DIM or not isinstance(index, int) \
                    or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in vector):
                raise AppError(ErrorCode.REMOTE_FAILED, f"{self.name} sent a vector gridless cannot read.")
            rows.append((index, [float(x) for x in vector]))
        rows.sort(key=lambda row: row[0])
        if [i for i, _ in rows] != list(range(len(texts))) or len({len(v) for _, v in rows}) != 1:
            raise AppError(ErrorCode.REMOTE_FAILED, f"{self.name} sent vectors that do not match the texts.")
        usage = payload.get("usage") if isinstance(payload, dict) else None
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return [v for _, v in rows], tokens if isinstance(tokens, int) and tokens >= 0 else 0

    async def transcription(self, model: str, audio: Path, *, language: str | None = None, prompt: str | None = None,
                            temperature: float = 0.0) -> dict[str, Any]:
        """POST /audio/transcriptions with the recording: OpenAI's `verbose_json` answer (text, language,
        duration, segments), or the plain `json` one (text) from a server that gives no more."""
        fields = {"model": model, "response_format": "verbose_json", "temperature": str(temperature)}
        if language:
            fields["language"] = language
        if prompt:
            fields["prompt"] = prompt
        # nothing comes back before the model has heard the whole recording: the answer's bound is the
        # only one, not the silence allowed between two tokens
        within_s = self.limits.stream.max_seconds
        with audio.open("rb") as fh:
            payload = await self._json_call("POST", "/audio/transcriptions", None, limit=TRANSCRIPT_BODY,
                                            within_s=within_s, what="transcribe the recording",
                                            files={"file": (audio.name, fh, "application/octet-stream")},
                                            data=fields, silence_s=within_s)
        if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
            raise AppError(ErrorCode.REMOTE_FAILED, f"{self.name} did not answer with a transcript.")
        return payload

    async def images(self, model: str, prompt: str, *, width: int, height: int, count: int,
                     extra: dict[str, Any]) -> list[bytes]:
        """POST /images/generations: the pictures, as the server encoded them (`b64_json`; a server that
        answers with links is refused, as gridless fetches no address a server names)."""
        body = {"model": model, "prompt": prompt, "n": count, "size": f"{width}x{height}",
                "response_format": "b64_json", **extra}
        # nothing comes back before the pictures are made: the answer's bound is the only one, as for a
        # transcription
        within_s = self.limits.stream.max_seconds
        payload = await self._json_call("POST", "/images/generations", body,
                                        limit=SMALL_BODY + count * width * height * 6,
                                        within_s=within_s, what="make the picture", silence_s=within_s)
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list) or not data or len(data) > count:
            raise AppError(ErrorCode.REMOTE_FAILED, f"{self.name} did not answer with pictures.")
        pictures = []
        for item in data:
            encoded = item.get("b64_json") if isinstance(item, dict) else None
            if not isinstance(encoded, str):
                raise AppError(ErrorCode.REMOTE_FAILED, f"{self.name} answered with links to its pictures, not the "
                                                        "pictures themselves; gridless does not fetch them.")
            try:
                pictures.append(base64.b64decode(encoded, validate=True))
            except ValueError:
                raise AppError(ErrorCode.REMOTE_FAILED, f"{self.name} sent a picture gridless cannot read.") from None
        return pictures

    async def _json_call(self, method: str, path: str, body: dict[str, Any] | None, *, limit: int, within_s: float,
                         what: str, files: dict[str, Any] | None = None, data: dict[str, str] | None = None,
                         silence_s: float | None = None) -> Any:
        """A request answered with JSON of at most `limit` bytes, all within `within_s` (and no byte
        awaited longer than `silence_s`, the client's limit unless given)."""
        timeout = httpx.USE_CLIENT_DEFAULT if silence_s is None else httpx.Timeout(
            silence_s, connect=self.limits.connect_s, write=30.0, pool=self.limits.connect_s)
        try:
            async with asyncio.timeout(within_s):
                async with self._http.stream(method, f"{self.url}{path}", json=body, files=files,
                                             data=data, timeout=timeout) as response:
                    await self._check(response)
                    self._content_type(response, "application/json")
                    raw = await _read(response, limit, self.name)
        except TimeoutError:
            raise AppError(ErrorCode.REMOTE_UNAVAILABLE,
                           f"{self.name} did not {what} within {within_s:.0f} s.") from None
        except httpx.HTTPError as exc:
            raise self._transport(exc) from None
        return _json(raw, self.name)

    def _transport(self, exc: httpx.HTTPError) -> AppError:
        if _certificate_problem(exc):
            return AppError(ErrorCode.REMOTE_UNTRUSTED,
                            f"The certificate of {self.name} is not trusted (it is not the one pinned, or not "
                            "signed by a known authority).")
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return AppError(ErrorCode.REMOTE_UNAVAILABLE, f"Cannot connect to {self.name}: {_reason(exc)}.")
        if isinstance(exc, httpx.ReadTimeout):
            return AppError(ErrorCode.REMOTE_UNAVAILABLE,
                            f"{self.name} sent nothing for {self.limits.silence_s:.0f} s and was left.")
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError | httpx.CloseError):
            return AppError(ErrorCode.REMOTE_UNAVAILABLE, f"{self.name} stopped answering (the connection was closed).")
        if isinstance(exc, httpx.TooManyRedirects | httpx.UnsupportedProtocol | httpx.DecodingError):
            return AppError(ErrorCode.REMOTE_FAILED, f"{self.name} answered in a way gridless cannot read.")
        return AppError(ErrorCode.REMOTE_UNAVAILABLE, f"{self.name} cannot be reached: {_reason(exc)}.")

    async def _check(self, response: httpx.Response) -> None:
        if response.status_code == 200:
            return
        try:
            async with asyncio.timeout(self.limits.small_s):  # an error's body, as the model list
                body = await _read(response, SMALL_BODY, self.name, quiet=True)
        except TimeoutError:
            body = b""
        said = _said(body)
        detail = f": {said}" if said else ""
        if response.status_code in (401, 403):
            raise AppError(ErrorCode.REMOTE_REFUSED, f"{self.name} refused the key (HTTP {response.status_code})"
                                                     f"{detail}. Check the key given for it.")
        if 300 <= response.status_code < 400:
            raise AppError(ErrorCode.REMOTE_FAILED, f"{self.name} sent a redirect; give the address it points to "
                                                    "instead.")
        raise AppError(ErrorCode.REMOTE_FAILED, f"{self.name} answered with HTTP {response.status_code}{detail}.")

    def _content_type(self, response: httpx.Response, expected: str) -> None:
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != expected:
            raise AppError(ErrorCode.REMOTE_FAILED, f"{self.name} answered with {kind or 'no content type'}, not "
                                                    "JSON (is it a server with OpenAI's API?).")


async def _read(response: httpx.Response, limit: int, who: str, *, quiet: bool = False) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) > limit:
            if quiet:
                return bytes(body[:limit])
            raise AppError(ErrorCode.REMOTE_FAILED, f"{who} sent more than {format_limit(limit)}; it was not read.")
    return bytes(body)


def _json(body: bytes, who: str) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise AppError(ErrorCode.REMOTE_FAILED, f"{who} sent something that is not JSON.") from None


def _said(body: bytes) -> str:
    """What an error body says, short and printable (OpenAI's `error.message`, or the text)."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        text = body.decode("utf-8", "replace")
    else:
        error = payload.get("error") if isinstance(payload, dict) else None
        message = error.get("message") if isinstance(error, dict) else error if isinstance(error, str) else None
        if message is None and isinstance(payload, dict):
            message = payload.get("detail") or payload.get("message")
        text = message if isinstance(message, str) else ""
    text = "".join(c for c in " ".join(text.split()) if c.isprintable())
    return text[:300]


def _whole_answer(payload: Any) -> dict[str, Any]:
    """A non-streamed completion as one chunk: its message becomes the delta."""
    if not isinstance(payload, dict):
        return {}
    choices = payload.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        first = dict(choices[0])
        message = first.pop("message", None)
        if isinstance(message, dict):
            calls = message.get("tool_calls")
            if isinstance(calls, list):
                message = {**message, "tool_calls": [{**c, "index": i} for i, c in enumerate(calls)
                                                      if isinstance(c, dict)]}
            first["delta"] = message
        return {**payload, "choices": [first]}
    return payload
