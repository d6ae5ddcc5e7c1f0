"""`RemoteClient` against a real HTTP server on loopback that behaves well or badly: every answer
is bounded, and a misbehaving server ends with the error that says what was wrong, quickly."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import psutil
import pytest

from backend.core.errors import AppError, ErrorCode
from backend.engines.llm import ChatResult
from backend.remote.client import (
    RemoteClient,
    RemoteLimits,
    fingerprint_of,
    normalize_fingerprint,
    normalize_url,
)
from backend.remote.convert import ChunkReader
from backend.remote.sse import StreamLimits
from backend.runtime.protocol import JobDone
from tests.server import free_port

from .answers import soon
from .fake_remote import WORDS, FakeRemote, llama_chunk

PAYLOAD = {"model": "big-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
TEXT = "".join(WORDS)
MB = 1024 * 1024

MakeClient = Callable[..., RemoteClient]


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    made: list[RemoteClient] = []

    def make(url: str, key: str = "", *, limits: RemoteLimits | None = None) -> RemoteClient:
        client = RemoteClient(url, key, name="box", limits=limits or RemoteLimits())
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


async def chat(client: RemoteClient, into: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    chunks = [] if into is None else into
    async for chunk in client.chat(PAYLOAD):
        chunks.append(chunk)
    return chunks


async def refused(call: Any, code: ErrorCode, *words: str, within_s: float = 5.0) -> AppError:
    started = time.monotonic()
    with pytest.raises(AppError) as caught:
        await call
    assert caught.value.code == code, caught.value.message
    for word in words:
        assert word in caught.value.message
    assert time.monotonic() - started < within_s
    return caught.value


# addresses and fingerprints ----------------------------------------------------------------------------

@pytest.mark.parametrize(("typed", "url"), [
    ("192.168.1.20:8080", "http://192.168.1.20:8080/v1"),
    ("  192.168.1.20:8080  ", "http://192.168.1.20:8080/v1"),
    ("http://laptop.local:11434", "http://laptop.local:11434/v1"),
    ("http://Laptop.LOCAL:11434/", "http://laptop.local:11434/v1"),
    ("https://box:8443/v1", "https://box:8443/v1"),
    ("https://box:8443/v1///", "https://box:8443/v1"),
    ("HTTPS://box/v1/", "https://box/v1"),
    ("http://box/api", "http://box/api/v1"),
    ("http://box/llm/v1/", "http://box/llm/v1"),
    ("[::1]:8080", "http://[::1]:8080/v1"),
    ("http://[fe80::1]/", "http://[fe80::1]/v1"),
    ("localhost", "http://localhost/v1"),
])
def test_normalize_url(typed: str, url: str) -> None:
    assert normalize_url(typed) == url
    assert normalize_url(url) == url  # already normal


@pytest.mark.parametrize("typed", [
    "", "   ", "ftp://box/v1", "file:///etc/passwd", "http://user:pass@box:8080", "http://user@box",
    "http://box:8080/v1?key=1", "http://box/#top", "http://box name:8080", "http://box:99999",
    "http://[::1", "http://", "x" * 600,
])
def test_normalize_url_refuses(typed: str) -> None:
    with pytest.raises(AppError) as caught:
        normalize_url(typed)
    assert caught.value.code == ErrorCode.INVALID_VALUE and caught.value.param == "url"


def test_fingerprints() -> None:
    digest = hashlib.sha256(b"certificate").hexdigest()
    usual = ":".join(digest[i:i + 2] for i in range(0, 64, 2)).upper()
    assert fingerprint_of(b"certificate") == usual
    assert normalize_fingerprint(digest) == usual
    assert normalize_fingerprint(usual.lower()) == usual
    assert normalize_fingerprint(" ".join(digest[i:i + 4] for i in range(0, 64, 4))) == usual
    for wrong in ("", digest[:-2], digest + "00", "zz" * 32):
        with pytest.raises(AppError) as caught:
            normalize_fingerprint(wrong)
        assert caught.value.code == ErrorCode.INVALID_VALUE and caught.value.param == "fingerprint"


# a good server ------------------------------------------------------------------------------------------

async def test_models_and_a_streamed_answer(fake: FakeRemote, make_client: MakeClient) -> None:
    client = make_client(fake.url + "/v1")
    assert await client.models() == ["big-model", "small-model"]
    chunks = await chat(client)
    assert chunks[0] == llama_chunk({"role": "assistant", "content": None})
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == TEXT
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == len(WORDS)
    sent = fake.requests("/chat/completions")[0]
    assert sent.path == "/v1/chat/completions" and sent.json() == PAYLOAD
    assert sent.headers["accept"] == "text/event-stream"
    assert "authorization" not in sent.headers  # no key, none sent
    # and it reads as the engine's events
    reader = ChunkReader("j", "e/big-model", "box")
    events = [e for c in chunks for e in reader.feed(c)] + reader.finish()
    assert isinstance(events[-1], JobDone) and events[-1].result.finish_reason == "stop"


async def test_a_server_that_compresses_when_asked(fake: FakeRemote, make_client: MakeClient) -> None:
    fake.mode = "gzip"
    assert await make_client(fake.url + "/v1").models() == ["big-model", "small-model"]


async def test_the_key(make_client: MakeClient) -> None:
    with FakeRemote(key="sk-secret") as fake:
        assert await make_client(fake.url + "/v1", "sk-secret").models() == ["big-model", "small-model"]
        assert fake.seen[-1].headers["authorization"] == "Bearer sk-secret"
        assert "".join(c["choices"][0]["delta"].get("content") or ""
                       for c in await chat(make_client(fake.url + "/v1", "sk-secret")) if c["choices"]) == TEXT
        for client in (make_client(fake.url + "/v1"), make_client(fake.url + "/v1", "sk-wrong")):
            error = await refused(client.models(), ErrorCode.REMOTE_REFUSED, "HTTP 401", "Invalid API Key")
            assert "sk-wrong" not in error.message and "sk-secret" not in error.message
            await refused(chat(client), ErrorCode.REMOTE_REFUSED, "refused the key")


async def test_model_ids_are_bounded(fake: FakeRemote, make_client: MakeClient) -> None:
    fake.models = ["ok", "x" * 201, "bad\nname", "", *[f"m{i}" for i in range(600)]]
    ids = await make_client(fake.url + "/v1").models()
    assert ids[0] == "ok" and "x" * 201 not in ids and "bad\nname" not in ids and "" not in ids
    assert len(ids) <= 500


async def test_nothing_at_that_port(make_client: MakeClient) -> None:
    client = make_client(f"http://127.0.0.1:{free_port()}/v1")
    await refused(client.models(), ErrorCode.REMOTE_UNAVAILABLE, "nothing answers at that port")
    await refused(chat(client), ErrorCode.REMOTE_UNAVAILABLE, "Cannot connect to box")


# misbehaving servers ------------------------------------------------------------------------------------

async def test_bad_json_in_the_model_list(fake: FakeRemote, make_client: MakeClient) -> None:
    fake.mode = "bad_json"
    await refused(make_client(fake.url + "/v1").models(), ErrorCode.REMOTE_FAILED, "not JSON")
    fake.mode = "not_openai"
    await refused(make_client(fake.url + "/v1").models(), ErrorCode.REMOTE_FAILED, "list of models")


async def test_html_with_200(fake: FakeRemote, make_client: MakeClient) -> None:
    fake.mode = "html"
    client = make_client(fake.url + "/v1")
    await refused(client.models(), ErrorCode.REMOTE_FAILED, "text/html")
    fake.mode = "html_stream"  # labelled an event stream, but a page
    await refused(chat(client), ErrorCode.REMOTE_FAILED, "did not answer with an event stream")


async def test_a_stream_that_is_plain_text(fake: FakeRemote, make_client: MakeClient) -> None:
    fake.mode = "text_plain"
    await refused(chat(make_client(fake.url + "/v1")), ErrorCode.REMOTE_FAILED, "text/plain",
                  "not an event stream")


def rss() -> int:
    return int(psutil.Process().memory_info().rss)


@pytest.mark.parametrize(("call", "mode", "limit"), [
    ("models", "huge", "1 MB"), ("chat", "huge", "32 MB"), ("chat", "huge_json", "1 MB")])
async def test_a_gigabyte(fake: FakeRemote, make_client: MakeClient, call: str, mode: str, limit: str) -> None:
    fake.mode = mode
    client = make_client(fake.url + "/v1")
    before = rss()
    await refused(client.models() if call == "models" else chat(client), ErrorCode.REMOTE_FAILED,
                  f"more than {limit}", within_s=8.0)
    assert rss() - before < 150 * MB
    assert fake.sent < 200 * MB  # it stopped reading: the server could not send it all
    # the connection was let go and the next request is answered
    fake.mode = "good"
    assert await client.models() == ["big-model", "small-model"]


async def test_an_endless_stream_of_valid_chunks(fake: FakeRemote, make_client: MakeClient) -> None:
    fake.mode = "endless"
    client = make_client(fake.url + "/v1", limits=RemoteLimits(stream=StreamLimits(max_seconds=1.0)))
    chunks: list[dict[str, Any]] = []
    await refused(chat(client, chunks), ErrorCode.REMOTE_FAILED, "still streaming after", within_s=4.0)
    assert len(chunks) > 10  # what came in its time was read


async def test_endless_bytes_without_a_newline(fake: FakeRemote, make_client: MakeClient) -> None:
    fake.mode = "no_newline"
    before = rss()
    await refused(chat(make_client(fake.url + "/v1")), ErrorCode.REMOTE_FAILED, "line longer than 1 MB")
    assert rss() - before < 100 * MB


async def test_a_server_that_goes_silent(fake: FakeRemote, make_client: MakeClient) -> None:
    fake.mode = "silent"
    client = make_client(fake.url + "/v1", limits=RemoteLimits(silence_s=1.0))
    chunks: list[dict[str, Any]] = []
    await refused(chat(client, chunks), ErrorCode.REMOTE_UNAVAILABLE, "sent nothing for", within_s=3.0)
    assert chunks == [llama_chunk({"role": "assistant", "content": None})]
    # the model list has its own time in all, shorter than the silence a stream may keep
    listing = make_client(fake.url + "/v1", limits=RemoteLimits(silence_s=30.0, small_s=1.0))
    await refused(listing.models(), ErrorCode.REMOTE_UNAVAILABLE, "did not list its models within", within_s=3.0)
    await soon(lambda: all(s.closed_at is not None for s in fake.seen))  # gridless closed both connections


async def test_a_connection_closed_mid_stream(fake: FakeRemote, make_client: MakeClient) -> None:
    fake.mode = "die"
    chunks: list[dict[str, Any]] = []
    await refused(chat(make_client(fake.url + "/v1"), chunks), ErrorCode.REMOTE_UNAVAILABLE, "stopped answering")
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "".join(WORDS[:3])


async def test_an_error_status_says_the_servers_message(fake: FakeRemote, make_client: MakeClient) -> None:
    fake.mode = "error500"
    client = make_client(fake.url + "/v1")
    for call in (client.models(), chat(client)):
        error = await refused(call, ErrorCode.REMOTE_FAILED, "HTTP 500", "The model is overloaded")
        said = error.message.split("HTTP 500: ", 1)[1]
        assert len(said.rstrip(".")) <= 300


@pytest.mark.parametrize(("mode", "words"), [("trickle_error", ("HTTP 500",)), ("trickle_json", ("still sending",))])
async def test_a_body_that_trickles(fake: FakeRemote, make_client: MakeClient, mode: str,
                                    words: tuple[str, ...]) -> None:
    """A byte now and then keeps each read within the silence allowed: the time in all is bounded too
    (an error's body as the model list is; a whole answer as a stream is)."""
    fake.mode = mode
    limits = RemoteLimits(silence_s=5.0, small_s=1.0, stream=StreamLimits(max_seconds=1.0))
    client = make_client(fake.url + "/v1", limits=limits)
    await refused(asyncio.wait_for(chat(client), 20), ErrorCode.REMOTE_FAILED, *words, within_s=4.0)
    if mode == "trickle_error":
        await refused(client.models(), ErrorCode.REMOTE_UNAVAILABLE, "did not list its models", within_s=4.0)


async def test_a_redirect_is_not_followed(fake: FakeRemote, make_client: MakeClient) -> None:
    fake.mode = "redirect"
    client = make_client(fake.url + "/v1")
    await refused(client.models(), ErrorCode.REMOTE_FAILED, "redirect")
    await refused(chat(client), ErrorCode.REMOTE_FAILED, "redirect")
    assert [s.path for s in fake.seen] == ["/v1/models", "/v1/chat/completions"]


async def test_a_whole_answer_to_a_streamed_request(fake: FakeRemote, make_client: MakeClient) -> None:
    fake.mode = "json_answer"
    chunks = await chat(make_client(fake.url + "/v1"))
    assert len(chunks) == 1
    assert chunks[0]["choices"][0]["delta"]["content"] == TEXT
    reader = ChunkReader("j", "e/big-model", "box")
    events = reader.feed(chunks[0]) + reader.finish()
    done = events[-1]
    assert isinstance(done, JobDone) and isinstance(done.result, ChatResult)
    assert done.result.finish_reason == "stop" and done.result.completion_tokens == len(WORDS)
    assert "".join(getattr(e, "text", "") for e in events) == TEXT


# nothing but the address ------------------------------------------------------------------------------

async def test_no_proxy_from_the_environment(fake: FakeRemote, make_client: MakeClient,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeRemote(models=("from-the-proxy",)) as proxy:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy.url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        client = make_client(fake.url + "/v1")
        assert await client.models() == ["big-model", "small-model"]
        assert "".join(c["choices"][0]["delta"].get("content") or "" for c in await chat(client)
                       if c["choices"]) == TEXT
        assert [s.path for s in fake.seen] == ["/v1/models", "/v1/chat/completions"]
        assert proxy.connections == 0 and proxy.seen == []
