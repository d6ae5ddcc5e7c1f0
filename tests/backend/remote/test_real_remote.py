"""A real engine server on a second machine: llama-cpp-python's OpenAI server with the bundled
SmolLM2, in its own network namespace joined to ours by a veth pair (the laptop on the same
Wi-Fi), and a real gridless on our side that adds it through `/api/engines`.

The laptop's uvicorn access log shows each request it is sent (`POST /v1/chat/completions`), so
a test can see that an answer really came from it; `/healthz` shows that gridless's own chat
engine stayed idle meanwhile. The server is killed mid-answer, the link is cut mid-answer, and it
is started again on the same address: the answer so far is kept, the server is marked down, the
conversation goes on with the local model, and local answers never wait for the absent server.

The module's addresses are a private /30 on the veth (`tests/netns.py: SecondHost`, whose blackhole
route keeps anything meant for the laptop from leaving by the default route once the veth is gone).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.llama_server import LlamaServer
from tests.netns import SecondHost, netns_available
from tests.server import ServerProcess

if not netns_available():
    pytest.skip("network namespaces are not available (needs root and `ip netns`)", allow_module_level=True)

pytestmark = [pytest.mark.engine]

ALIAS = "smollm2"
PORT = 8080
NAME = "laptop"
CHAT = "POST /v1/chat/completions"
CHECK = "GET /v1/models"
SILENCE_S = 5
"""How long gridless waits on a server that went silent (a cut link) before leaving it."""
STORY = "Write a very long story about a lighthouse keeper and her cat, in ten chapters with titles."


@dataclass
class Lab:
    """The laptop, the phone's gridless and the owner's clients of it; filled in as the tests go."""

    host: SecondHost
    llama: LlamaServer
    gridless: ServerProcess
    http: httpx.Client
    client: openai.OpenAI
    engine_id: str = ""
    local_model: str = ""
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def remote_model(self) -> str:
        return f"{self.engine_id}/{ALIAS}"

    def health(self) -> dict[str, Any]:
        response = self.http.get("/healthz")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def engine(self) -> dict[str, Any]:
        found = [e for e in self.get("/api/engines")["engines"] if e["id"] == self.engine_id]
        assert len(found) == 1, found
        return found[0]

    def get(self, path: str) -> Any:
        response = self.http.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    def conversation(self, model: str, **settings: Any) -> str:
        made = self.http.post("/api/conversations", json={"title": "remote"})
        assert made.status_code == 201, made.text
        conversation_id = str(made.json()["id"])
        changed = self.http.patch(f"/api/conversations/{conversation_id}",
                                  json={"settings": {"model": model, **settings}})
        assert changed.status_code == 200, changed.text
        assert changed.json()["settings"]["model"] == model
        return conversation_id


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, smollm_path: Path) -> Iterator[Lab]:
    folder = tmp_path_factory.mktemp("real-remote")
    host = SecondHost(index=5)
    llama = LlamaServer(model=smollm_path, alias=ALIAS, log_path=folder / "llama-server.log", host=host,
                        address=host.peer_address, port=PORT)
    gridless = ServerProcess(data_dir=folder / "data",
                             env={"GRIDLESS_REMOTE_CHECK_S": "2", "GRIDLESS_REMOTE_SILENCE_S": str(SILENCE_S)})
    try:
        host.create()
        llama.start()
        gridless.start()
        with httpx.Client(base_url=gridless.base, headers=gridless.headers(), trust_env=False, timeout=60) as http, \
                httpx.Client(trust_env=False) as for_openai:
            client = openai.OpenAI(base_url=f"{gridless.base}/v1", api_key=gridless.token, max_retries=0,
                                   timeout=60, http_client=for_openai)
            yield Lab(host, llama, gridless, http, client)
    finally:
        gridless.stop()
        llama.kill()
        host.destroy()


def events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """The server-sent events of a conversation answer: (event, data)."""
    name, data = "message", []
    for line in response.iter_lines():
        if not line:
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def cut_mid_answer(lab: Lab, conversation_id: str, cut: Any) -> dict[str, Any]:
    """Ask for a long answer, call `cut` once some of it has streamed, and follow the answer to its
    end: the events seen after the cut, the text streamed before it."""
    seen: dict[str, Any] = {"before": "", "error": None, "done": None}
    with lab.http.stream("POST", f"/api/conversations/{conversation_id}/messages",
                         json={"text": STORY}, timeout=60) as response:
        assert response.status_code == 200, response.read()
        cut_at = None
        for name, data in events(response):
            if name == "delta" and cut_at is None:
                seen["before"] += data["text"]
                if len(seen["before"].split()) >= 8:
                    cut()
                    cut_at = time.monotonic()
            elif name == "error":
                seen["error"] = data
            elif name == "done":
                seen["done"] = data
        assert cut_at is not None, f"the answer ended before the cut: {seen}"
        seen["after_s"] = time.monotonic() - cut_at
    return seen


# the tests, in order: each one starts from where the last one left the laptop --------------------

def test_adding_the_server_lists_its_model(lab: Lab) -> None:
    added = lab.http.post("/api/engines", json={"url": f"{lab.host.peer_address}:{PORT}", "name": NAME})
    assert added.status_code == 201, added.text
    engine = added.json()
    lab.engine_id = engine["id"]
    assert engine["url"] == f"{lab.llama.url}/v1"
    assert engine["state"] == "up" and engine["models"] == [ALIAS] and engine["has_key"] is False

    listed = {m["id"]: m for m in lab.get("/v1/models")["data"]}
    assert listed[lab.remote_model]["owned_by"] == NAME
    local = [m for m in listed.values() if "/" not in m["id"]]
    assert local, listed
    lab.local_model = local[0]["id"]
    assert lab.engine()["state"] == "up"


def test_a_conversation_is_answered_by_the_laptop(lab: Lab) -> None:
    assert lab.health()["chat_engine"] == "idle"
    before = lab.llama.requests(CHAT)
    conversation_id = lab.conversation(lab.remote_model, max_tokens=48)

    response = lab.http.post(f"/api/conversations/{conversation_id}/messages", params={"stream": "false"},
                               json={"text": "Name three colours of the sea."})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["role"] == "assistant" and answer["status"] == "done", answer
    assert answer["content"].strip()
    assert answer["stats"]["tokens_per_s"] > 0 and answer["stats"]["completion_tokens"] > 1
    assert answer["stats"]["model"] == lab.remote_model

    assert lab.llama.requests(CHAT) == before + 1  # the laptop was asked…
    assert lab.health()["chat_engine"] == "idle"  # …and gridless's own engine never loaded
    speed = lab.engine()["speed"][ALIAS]
    assert speed["tokens_per_s"] > 0


def test_the_openai_client_through_gridless(lab: Lab) -> None:
    before = lab.llama.requests(CHAT)
    client = lab.client
    whole = client.chat.completions.create(model=lab.remote_model, max_tokens=24, temperature=0,
                                           messages=[{"role": "user", "content": "Say hello to the sea."}])
    assert whole.model == lab.remote_model
    assert (whole.choices[0].message.content or "").strip()
    assert whole.usage is not None and whole.usage.completion_tokens > 0

    pieces, finish = [], None
    for chunk in client.chat.completions.create(model=lab.remote_model, max_tokens=24, temperature=0,
                                                stream=True, stream_options={"include_usage": True},
                                                messages=[{"role": "user", "content": "Say hello to the sea."}]):
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    assert "".join(pieces).strip() and sum(1 for p in pieces if p) > 1
    assert finish in ("stop", "length")
    assert lab.llama.requests(CHAT) == before + 2
    assert lab.health()["chat_engine"] == "idle"


def test_a_long_answer_outlasts_the_regular_checks(lab: Lab) -> None:
    """llama-cpp-python's server ends the stream it is sending when another request reaches it
    (`interrupt_requests`): gridless's regular check (every 2 s here) must leave a server alone
    while an answer streams from it."""
    checks = lab.llama.requests(CHECK)
    started = time.monotonic()
    reply = lab.client.chat.completions.create(model=lab.remote_model, max_tokens=200, temperature=0,
                                               messages=[{"role": "user", "content": STORY}])
    took = time.monotonic() - started
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None and reply.usage.completion_tokens > 60, reply
    if took > 2.5:  # it spanned a check that was left out
        time.sleep(2.5)
        assert lab.llama.requests(CHECK) > checks  # the checks went on after it


def test_killed_mid_answer_keeps_the_text_and_goes_on_locally(lab: Lab) -> None:
    conversation_id = lab.conversation(lab.remote_model, max_tokens=1500)
    seen = cut_mid_answer(lab, conversation_id, lab.llama.kill)
    assert seen["after_s"] < 5, seen  # a closed connection is noticed at once, not after a timeout
    assert seen["done"]["status"] == "error", seen
    assert seen["error"]["code"] == "remote_unavailable", seen
    assert NAME in seen["error"]["message"] and "stopped answering" in seen["error"]["message"], seen

    cut = lab.get(f"/api/conversations/{conversation_id}")["messages"][-1]
    assert cut["role"] == "assistant" and cut["status"] == "error"
    assert cut["content"].strip() and cut["content"].startswith(seen["before"])  # nothing streamed is lost
    assert NAME in cut["error"] and "stopped answering" in cut["error"]

    engine = lab.engine()
    assert engine["state"] == "down" and engine["error"], engine

    # Answer here: the same question, answered again by the phone's own model
    changed = lab.http.patch(f"/api/conversations/{conversation_id}",
                               json={"settings": {"model": lab.local_model, "max_tokens": 48}})
    assert changed.status_code == 200, changed.text
    again = lab.http.post(f"/api/conversations/{conversation_id}/regenerate", params={"stream": "false"})
    assert again.status_code == 200, again.text
    local = again.json()
    assert local["status"] == "done" and local["content"].strip(), local
    assert local["stats"]["model"] != lab.remote_model and local["stats"]["tokens_per_s"] > 0
    assert local["branch"]["count"] == 2 and cut["id"] in local["branch"]["ids"]

    every = lab.get(f"/api/conversations/{conversation_id}?all=true")["messages"]
    answers = {m["id"]: m for m in every if m["role"] == "assistant"}
    assert set(answers) == {cut["id"], local["id"]}
    assert answers[cut["id"]]["parent_id"] == answers[local["id"]]["parent_id"]
    assert answers[cut["id"]]["status"] == "error" and answers[cut["id"]]["content"] == cut["content"]
    shown = lab.get(f"/api/conversations/{conversation_id}")["messages"]
    assert shown[-1]["id"] == local["id"]
    assert lab.health()["chat_engine"] == "loaded"


def test_a_server_that_is_down_never_holds_up_local_answers(lab: Lab) -> None:
    """The laptop's link is down (its side unplugged): connecting to it waits for ARP to give up.
    A check of it runs meanwhile; the local model answers at once and the laptop's model fails
    at once (known down), while the check is still waiting."""
    client = lab.client
    subprocess.run(["ip", "-n", lab.host.name, "link", "set", "eth0", "down"], check=True)
    try:
        checked: dict[str, Any] = {}

        def check() -> None:
            started = time.monotonic()
            checked["state"] = lab.http.post(f"/api/engines/{lab.engine_id}/check").json()["state"]
            checked["s"] = time.monotonic() - started

        checker = threading.Thread(target=check)
        checker.start()
        time.sleep(0.3)  # the check is waiting to connect now

        started = time.monotonic()
        local = client.chat.completions.create(model=lab.local_model, max_tokens=16, temperature=0,
                                               messages=[{"role": "user", "content": "Say hi."}])
        local_s = time.monotonic() - started
        assert (local.choices[0].message.content or "").strip()

        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(model=lab.remote_model, max_tokens=16,
                                           messages=[{"role": "user", "content": "Say hi."}])
        refused_s = time.monotonic() - started
        assert refused.value.status_code == 502
        assert refused.value.body["code"] == "remote_unavailable" and NAME in refused.value.body["message"]
        still_checking = checker.is_alive()
        checker.join(30)
        lab.notes.update(local_s=local_s, refused_s=refused_s, check=checked)
        assert local_s < 2.5, lab.notes
        assert refused_s < 1.0, lab.notes
        assert still_checking and checked["state"] == "down", lab.notes
    finally:
        subprocess.run(["ip", "-n", lab.host.name, "link", "set", "eth0", "up"], check=True)


def test_started_again_it_is_up_after_a_check(lab: Lab) -> None:
    assert lab.engine()["state"] == "down"
    lab.llama.restart()
    checked = lab.http.post(f"/api/engines/{lab.engine_id}/check")
    assert checked.status_code == 200, checked.text
    assert checked.json()["state"] == "up" and checked.json()["error"] is None
    assert checked.json()["latency_ms"] is not None

    before = lab.llama.requests(CHAT)
    reply = lab.client.chat.completions.create(model=lab.remote_model, max_tokens=16, temperature=0,
                                                   messages=[{"role": "user", "content": "Say hi."}])
    assert (reply.choices[0].message.content or "").strip()
    assert lab.llama.requests(CHAT) == before + 1


def test_the_link_cut_mid_answer(lab: Lab) -> None:
    """The hotspot goes away mid-answer: no byte arrives any more, nothing says so; after the
    silence limit the answer ends with its text kept, and the server is down."""
    conversation_id = lab.conversation(lab.remote_model, max_tokens=1500)
    seen = cut_mid_answer(lab, conversation_id, lab.host.host_side_down)
    assert SILENCE_S - 0.5 < seen["after_s"] < SILENCE_S + 5, seen
    assert seen["done"]["status"] == "error" and seen["error"]["code"] == "remote_unavailable", seen
    assert NAME in seen["error"]["message"], seen

    cut = lab.get(f"/api/conversations/{conversation_id}")["messages"][-1]
    assert cut["status"] == "error" and cut["content"].startswith(seen["before"]) and cut["content"].strip()
    assert NAME in cut["error"]
    assert lab.engine()["state"] == "down"

    started = time.monotonic()
    local = lab.client.chat.completions.create(model=lab.local_model, max_tokens=16, temperature=0,
                                                   messages=[{"role": "user", "content": "Say hi."}])
    assert (local.choices[0].message.content or "").strip()
    assert time.monotonic() - started < 2.5
