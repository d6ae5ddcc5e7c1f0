"""`/api/engines`, `/v1` and a conversation through a real gridless server process, with an engine
server on loopback that behaves well or badly: the key never comes back, refusals have their
codes, answers stream through, and after a misbehaving answer the server is as healthy as before."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server import ServerProcess, free_port

from .fake_remote import WORDS, FakeRemote
from .gridless import api, gridless_server

KEY = "sk-laptop-0123456789"
TEXT = "".join(WORDS)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeRemote]:
    with FakeRemote(key=KEY) as server:
        yield server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # a short stream limit for the endless answer
    with gridless_server(tmp_path_factory, "engines-api", GRIDLESS_REMOTE_STREAM_S="2",
                         GRIDLESS_REMOTE_SILENCE_S="5") as server:
        yield server


@pytest.fixture(autouse=True)
def behaving(fake: FakeRemote) -> Iterator[None]:
    fake.mode = "good"
    yield
    fake.mode = "good"



def added(server: ServerProcess, fake: FakeRemote) -> dict[str, Any]:
    """The fake, added once for the module (as "Laptop")."""
    listed = api(server, "GET", "/api/engines").json()["engines"]
    found = [e for e in listed if e["url"] == f"{fake.url}/v1"]
    if found:
        return dict(found[0])
    made = api(server, "POST", "/api/engines", json={"url": fake.host, "key": KEY, "name": "Laptop"})
    assert made.status_code == 201, made.text
    return dict(made.json())


def streamed(response: httpx.Response) -> tuple[str, list[dict[str, Any]]]:
    """The text of a `/v1` stream and its events (which must end with [DONE])."""
    lines = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    assert lines and lines[-1] == "[DONE]", response.text[-500:]
    events = [json.loads(line) for line in lines[:-1]]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))
    return text, events


def chat(server: ServerProcess, model: str, *, stream: bool, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{server.base}/v1/chat/completions", headers=headers or server.headers(), timeout=60,
                      json={"model": model, "messages": [{"role": "user", "content": "Say hello."}],
                            "stream": stream})


def healthy(server: ServerProcess) -> None:
    health = httpx.get(f"{server.base}/healthz", timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_add_list_check_remove(srv: ServerProcess, fake: FakeRemote) -> None:
    made = api(srv, "POST", "/api/engines", json={"url": f"http://{fake.host}/", "key": KEY, "name": "Laptop"})
    assert made.status_code == 201, made.text
    engine = made.json()
    assert engine["url"] == f"{fake.url}/v1" and engine["name"] == "Laptop"
    assert engine["has_key"] is True and engine["state"] == "up" and engine["secure"] is False
    assert engine["models"] == ["big-model", "small-model"]
    assert fake.seen[-1].headers["authorization"] == f"Bearer {KEY}"

    again = api(srv, "POST", "/api/engines", json={"url": fake.host, "key": KEY})
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    listed = api(srv, "GET", "/api/engines")
    assert listed.status_code == 200
    assert [e["id"] for e in listed.json()["engines"]] == [engine["id"]]
    checked = api(srv, "POST", f"/api/engines/{engine['id']}/check")
    assert checked.status_code == 200 and checked.json()["state"] == "up"
    assert checked.json()["latency_ms"] is not None
    for response in (made, listed, checked):
        assert KEY not in response.text and "api_key" not in response.text

    gone = api(srv, "DELETE", f"/api/engines/{engine['id']}")
    assert gone.status_code == 200 and gone.json() == {"removed": engine["id"]}
    assert api(srv, "GET", "/api/engines").json()["engines"] == []
    assert api(srv, "DELETE", f"/api/engines/{engine['id']}").status_code == 404
    assert api(srv, "POST", f"/api/engines/{engine['id']}/check").status_code == 404


def test_refusals(srv: ServerProcess, fake: FakeRemote) -> None:
    before = api(srv, "GET", "/api/engines").json()["engines"]
    nothing = api(srv, "POST", "/api/engines", json={"url": f"127.0.0.1:{free_port()}"})
    assert nothing.status_code == 502 and nothing.json()["error"]["code"] == "remote_unavailable"
    wrong_key = api(srv, "POST", "/api/engines", json={"url": fake.host, "key": "sk-wrong"})
    assert wrong_key.status_code == 502 and wrong_key.json()["error"]["code"] == "remote_refused"
    assert "sk-wrong" not in wrong_key.text
    fake.mode = "html"
    html = api(srv, "POST", "/api/engines", json={"url": fake.host, "key": KEY})
    assert html.status_code == 502 and html.json()["error"]["code"] == "remote_failed"
    for body in ({}, {"url": ""}, {"url": "ftp://box/v1"}, {"url": "http://u:p@box"}, {"url": "box", "extra": 1},
                 {"url": "box name"}, {"url": 5}):
        response = api(srv, "POST", "/api/engines", json=body)
        assert response.status_code == 422, (body, response.text)
    assert httpx.post(f"{srv.base}/api/engines", content=b"not json", timeout=30,
                      headers={**srv.headers(), "content-type": "application/json"}).status_code == 422
    assert api(srv, "GET", "/api/engines").json()["engines"] == before  # nothing kept


def test_v1_through_gridless(srv: ServerProcess, fake: FakeRemote) -> None:
    engine = added(srv, fake)
    model = f"{engine['id']}/big-model"
    listed = api(srv, "GET", "/v1/models").json()["data"]
    remote = {m["id"]: m for m in listed if m["id"].startswith(engine["id"] + "/")}
    assert set(remote) == {model, f"{engine['id']}/small-model"}
    assert all(m["owned_by"] == "Laptop" and m["object"] == "model" for m in remote.values())

    response = chat(srv, model, stream=True)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    text, events = streamed(response)
    assert text == TEXT
    assert events[-1]["choices"][0]["finish_reason"] == "stop" and events[-1]["model"] == model
    sent = fake.requests("/chat/completions")[-1].json()
    assert sent["model"] == "big-model" and sent["stream"] is True
    assert sent["messages"][-1] == {"role": "user", "content": "Say hello."}

    whole = chat(srv, model, stream=False)
    assert whole.status_code == 200, whole.text
    answer = whole.json()
    assert answer["choices"][0]["message"]["content"] == TEXT and answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"]["completion_tokens"] == len(WORDS) and answer["model"] == model

    health = httpx.get(f"{srv.base}/healthz", timeout=5).json()
    assert health["chat_engine"] == "idle"  # the local engine did not run


def test_app_keys_cannot_open_engines(srv: ServerProcess, fake: FakeRemote) -> None:
    engine = added(srv, fake)
    made = api(srv, "POST", "/api/keys", json={"name": "t", "scopes": ["chat"]})
    assert made.status_code == 201, made.text
    key = {"Authorization": f"Bearer {made.json()['key']}"}
    for method, path, body in (("GET", "/api/engines", None), ("POST", "/api/engines", {"url": "127.0.0.1:1"}),
                               ("POST", f"/api/engines/{engine['id']}/check", None),
                               ("DELETE", f"/api/engines/{engine['id']}", None)):
        response = httpx.request(method, srv.base + path, headers=key, json=body, timeout=30)
        assert response.status_code == 403, (method, path, response.text)
        assert KEY not in response.text
    assert [e["id"] for e in api(srv, "GET", "/api/engines").json()["engines"]] == [engine["id"]]
    # but its scope lets it use the server's models through gridless
    text, _ = streamed(chat(srv, f"{engine['id']}/big-model", stream=True, headers=key))
    assert text == TEXT


@pytest.mark.parametrize(("mode", "stream"), [("huge", True), ("huge_json", False), ("no_newline", True),
                                              ("endless", True), ("endless", False), ("html_stream", True),
                                              ("die", True)])
def test_healthy_after_a_misbehaving_answer(srv: ServerProcess, fake: FakeRemote, mode: str, stream: bool) -> None:
    engine = added(srv, fake)
    model = f"{engine['id']}/big-model"
    fake.mode = mode
    response = chat(srv, model, stream=stream)
    if response.status_code == 200 and stream:  # it failed after the first piece: an error event, then [DONE]
        _, events = streamed(response)
        error = events[-1]["error"]
    else:
        assert response.status_code == 502, response.text
        error = response.json()["error"]
    expected = "remote_unavailable" if mode == "die" else "remote_failed"
    assert error["code"] == expected, error
    if mode == "endless":
        assert "still streaming" in error["message"]
    healthy(srv)
    fake.mode = "good"
    if mode == "die":  # marked down: a check finds it back
        assert api(srv, "POST", f"/api/engines/{engine['id']}/check").json()["state"] == "up"
    text, _ = streamed(chat(srv, model, stream=True))
    assert text == TEXT
    healthy(srv)


def test_a_conversation_with_a_server_model(srv: ServerProcess, fake: FakeRemote) -> None:
    engine = added(srv, fake)
    model = f"{engine['id']}/small-model"
    made = api(srv, "POST", "/api/conversations", json={"title": "Remote"})
    assert made.status_code in (200, 201), made.text
    cid = made.json()["id"]
    changed = api(srv, "PATCH", f"/api/conversations/{cid}", json={"settings": {"model": model}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["settings"]["model"] == model
    sent = api(srv, "POST", f"/api/conversations/{cid}/messages", params={"stream": "false"},
               json={"text": "Say hello."})
    assert sent.status_code == 200, sent.text
    message = sent.json()
    assert message["role"] == "assistant" and message["content"] == TEXT
    assert message["status"] == "done" and message["stats"]["tokens_per_s"] >= 0
    assert fake.requests("/chat/completions")[-1].json()["model"] == "small-model"
    stored = api(srv, "GET", f"/api/conversations/{cid}").json()["messages"]
    assert [(m["role"], m["content"], m["status"]) for m in stored][-1] == ("assistant", TEXT, "done")
    assert "tokens_per_s" in stored[-1]["stats"]
