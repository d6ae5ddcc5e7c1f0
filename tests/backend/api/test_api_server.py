"""/v1 against a real server and the real bundled model, with the official openai client."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import psutil
import pytest

from tests.server import ServerProcess

pytestmark = pytest.mark.engine
MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the tests that ask, are refused and read: none of them changes what the
    next one sees. A test that kills the worker or watches it go idle has its own (`own_server`)."""
    with ServerProcess(data_dir=tmp_path_factory.mktemp("api-server") / "data") as srv:
        yield srv


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(data_dir=tmp_path / "data") as srv:
        yield srv


def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base}/v1", api_key=server.token, max_retries=0, timeout=60)


def test_models_lists_the_bundled_model(server: ServerProcess) -> None:
    ids = [m.id for m in client(server).models.list()]
    assert MODEL in ids


def test_streaming_with_openai_client(server: ServerProcess) -> None:
    stream = client(server).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Write two sentences about cats."}],
        stream=True, max_tokens=30, temperature=0, stream_options={"include_usage": True})
    contents, finish, usage = [], None, None
    for chunk in stream:
        if chunk.choices:
            if chunk.choices[0].delta.content:
                contents.append(chunk.choices[0].delta.content)
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert len(contents) > 3  # streamed in pieces, not one block
    assert finish in ("stop", "length")
    assert usage is not None and usage.completion_tokens <= 30 and usage.prompt_tokens > 5


def test_non_streaming_with_seed_and_stop(server: ServerProcess) -> None:
    c = client(server)
    kwargs = dict(model=MODEL, messages=[{"role": "user", "content": "List five fruits."}], max_tokens=25,
                  temperature=0.9, seed=42)
    first = c.chat.completions.create(**kwargs)  # type: ignore[call-overload]
    second = c.chat.completions.create(**kwargs)  # type: ignore[call-overload]
    assert first.choices[0].message.content == second.choices[0].message.content  # same seed, same text
    assert first.usage is not None and first.usage.total_tokens == first.usage.prompt_tokens + \
        first.usage.completion_tokens
    limited = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Count to 50."}],
                                        max_tokens=3)
    assert limited.choices[0].finish_reason == "length" and limited.usage.completion_tokens == 3  # type: ignore


def error_of(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body["error"]) >= {"message", "type", "code"}
    return body["error"]  # type: ignore[no-any-return]


def post(server: ServerProcess, payload: object, raw: bytes | None = None) -> httpx.Response:
    return httpx.post(f"{server.base}/v1/chat/completions", headers={**server.headers(),
                      "content-type": "application/json"},
                      content=raw if raw is not None else json.dumps(payload).encode(), timeout=60)


@pytest.mark.parametrize("payload,status,code", [
    ({"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}, 404, "model_not_found"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": -5}, 400, "invalid_value"),
    ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10**12}, 400, "invalid_value"),
    ({"model": MODEL, "messages": []}, 400, "invalid_value"),
    ({"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}, 400, "model_cannot_see"),
    ({"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]}, 400, "unsupported_content"),
    ({"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]}, 400, "unsupported_image_url"),
])
def test_bad_requests_get_error_objects(server: ServerProcess, payload: object, status: int, code: str) -> None:
    response = post(server, payload)
    assert response.status_code == status, response.text
    assert error_of(response)["code"] == code
    assert httpx.get(f"{server.base}/healthz").status_code == 200


def test_malformed_json(server: ServerProcess) -> None:
    response = post(server, None, raw=b'{"model": "x", "messages": [')
    assert response.status_code == 400 and error_of(response)["code"] == "invalid_json"


@pytest.mark.parametrize("stream", [False, True])
def test_prompt_longer_than_context(server: ServerProcess, stream: bool) -> None:
    response = post(server, {"model": MODEL, "stream": stream,
                             "messages": [{"role": "user", "content": "lorem ipsum " * 5000}]})
    assert response.status_code == 400
    assert error_of(response)["code"] == "context_length_exceeded"
    ok = post(server, {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})
    assert ok.status_code == 200


def test_worker_killed_mid_answer_then_next_request_works(own_server: ServerProcess) -> None:
    c = client(own_server)
    c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    workers = psutil.Process(own_server.process.pid).children()  # type: ignore[union-attr]
    assert len(workers) == 1

    def kill_after_first_tokens() -> None:
        time.sleep(0.3)
        os.kill(workers[0].pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_after_first_tokens)
    stream = c.chat.completions.create(model=MODEL, stream=True, max_tokens=2000, temperature=0.8,
                                       messages=[{"role": "user", "content": "Write a very long story."}])
    killer.start()
    with pytest.raises(openai.APIError) as info:
        for _ in stream:
            pass
    killer.join()
    assert "unexpectedly" in str(info.value)
    again = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert again.choices[0].message.content
    assert psutil.Process(own_server.process.pid).children()[0].pid != workers[0].pid  # type: ignore[union-attr]


def test_a_second_client_waits_its_turn(own_server: ServerProcess) -> None:
    c = client(own_server)
    results: list[str] = []

    def ask(text: str) -> None:
        r = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}], max_tokens=20)
        results.append(r.choices[0].finish_reason)

    threads = [threading.Thread(target=ask, args=(f"Say something about number {i}.",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3  # nobody was cancelled by another client


def test_a_file_that_is_not_a_model_is_a_clear_error(tmp_path: Path, smollm_path: Path) -> None:
    fake = tmp_path / "notes.gguf"
    fake.write_text("these are my shopping notes, not a model")
    models = tmp_path / "models"
    models.mkdir()
    damaged = models / "damaged.gguf"
    shutil.copyfile(smollm_path, damaged)
    with ServerProcess(data_dir=tmp_path / "data", extra_args=["--model", str(fake)],
                       env={"GRIDLESS_MODELS_DIR": str(models)}) as srv:
        # refused when found: never listed, never loaded
        assert "notes" not in [m.id for m in client(srv).models.list()]
        response = post(srv, {"model": "notes", "messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code == 404 and error_of(response)["code"] == "model_not_found"
        # a model whose file is damaged after it was registered fails to load, clearly
        with damaged.open("r+b") as fh:
            fh.truncate(100_000)
        response = post(srv, {"model": "damaged", "messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code == 500
        error = error_of(response)
        assert error["code"] == "model_load_failed" and "truncated" in str(error["message"])
        streamed = post(srv, {"model": "damaged", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
        assert streamed.status_code == 500 and error_of(streamed)["code"] == "model_load_failed"
        assert httpx.get(f"{srv.base}/healthz").json()["status"] == "ok"
        bundled = post(srv, {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3})
        assert bundled.status_code == 200  # the other models still work


def test_full_queue_answers_busy(tmp_path: Path) -> None:
    with ServerProcess(data_dir=tmp_path / "data", env={"GRIDLESS_QUEUE_LIMIT": "1"}) as srv:
        long = {"model": MODEL, "max_tokens": 300, "messages": [{"role": "user", "content": "Write a long story."}]}
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(post(srv, long).status_code)) for _ in range(2)]
        for t in threads:
            t.start()
            time.sleep(0.3)  # the first runs, the second waits in line
        busy = post(srv, long)
        assert busy.status_code == 503 and error_of(busy)["code"] == "busy"
        assert int(busy.headers["retry-after"]) > 0
        for t in threads:
            t.join()
        assert results == [200, 200]


def test_client_that_disconnects_stops_the_generation(own_server: ServerProcess) -> None:
    c = client(own_server)
    c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    worker = psutil.Process(own_server.process.pid).children()[0]  # type: ignore[union-attr]
    stream = c.chat.completions.create(model=MODEL, stream=True, max_tokens=4000,
                                       messages=[{"role": "user", "content": "Write a very long story."}])
    for i, _ in enumerate(stream):
        if i == 5:
            break
    stream.close()
    time.sleep(1.0)
    before = sum(worker.cpu_times()[:2])
    time.sleep(1.0)
    assert sum(worker.cpu_times()[:2]) - before < 0.2  # the worker is idle, not writing 4000 tokens


def test_oversize_body_is_refused(server: ServerProcess) -> None:
    huge = {"model": MODEL, "messages": [{"role": "user", "content": "x" * (5 * 1024 * 1024)}]}
    response = post(server, huge)
    assert response.status_code == 413 and error_of(response)["code"] == "request_too_large"
    assert httpx.get(f"{server.base}/healthz").status_code == 200


def test_an_image_url_is_never_fetched(server: ServerProcess) -> None:
    """An http(s) image URL is refused without the server asking for it (here: a local listener
    that records any connection)."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    connected: list[object] = []

    def watch() -> None:
        try:
            connected.append(listener.accept())
        except OSError:
            pass

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for url in (f"http://127.0.0.1:{port}/photo.jpg", f"https://127.0.0.1:{port}/photo.jpg"):
            response = post(server, {"model": MODEL, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is in this photo?"},
                {"type": "image_url", "image_url": {"url": url}}]}]})
            assert response.status_code == 400, response.text
            error = error_of(response)
            assert error["code"] == "unsupported_image_url" and "never fetches" in error["message"]
    finally:
        watcher.join()
        listener.close()
    assert connected == []

