"""The voice conversation's web socket on a real `gridless serve`: who may open it, what it says
to a client that sends nonsense, and (with the real engines) two spoken turns heard by Whisper,
answered by SmolLM2 and read aloud by Piper as they are written. Also reading an answer aloud over
HTTP while it is still being written.

The microphone is the bundled Piper voice saying known sentences (resampled to 16 kHz), sent in
100 ms messages five times faster than real time, with the silences between turns sent as sound.
"""

from __future__ import annotations

import io
import json
import struct
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from backend.security.owner import OwnerCredential
from tests.audiofiles import wer
from tests.backend.audio.test_vad import pcm, silence, speech
from tests.server import ServerProcess

FIRST = "What is the capital of France?"
SECOND = "How many legs does a spider have?"
MAX_WER = 0.3
TURN_TIMEOUT_S = 180.0
"""From a turn's end to its answer spoken: models loading, on a possibly busy machine."""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module: the engine tests keep its models loaded between them."""
    with ServerProcess(data_dir=tmp_path_factory.mktemp("voice-server") / "data") as server:
        yield server


def api(server: ServerProcess, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, f"{server.base}{path}", headers=server.headers(), timeout=60, **kw)


def url(server: ServerProcess, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}/api/voice{query}"


def open_socket(server: ServerProcess, query: str = "", *, headers: dict[str, str] | None = None,
                origin: str | None = None) -> ClientConnection:
    return connect(url(server, query), additional_headers=server.headers() if headers is None else headers,
                   origin=Origin(origin) if origin else None, proxy=None, open_timeout=10, max_queue=None)


def event(ws: ClientConnection, timeout: float = 30) -> dict[str, Any]:
    """The next JSON event (sound on the way is skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        message = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(message, str):
            found: dict[str, Any] = json.loads(message)
            return found


def closed_with(ws: ClientConnection, timeout: float = 10) -> int | None:
    """The close code the server ended the socket with."""
    deadline = time.monotonic() + timeout
    with pytest.raises(ConnectionClosed) as closed:
        while time.monotonic() < deadline:
            ws.recv(timeout=max(0.01, deadline - time.monotonic()))
    return closed.value.rcvd.code if closed.value.rcvd is not None else None


def refused(server: ServerProcess, **kw: Any) -> None:
    """The socket is not opened: a 401 at the handshake, or closed at once with 4401."""
    try:
        ws = open_socket(server, **kw)
    except InvalidStatus as exc:
        assert exc.response.status_code == 401
        return
    with ws:
        assert closed_with(ws) == 4401


def assert_healthy(server: ServerProcess) -> None:
    assert httpx.get(f"{server.base}/healthz", timeout=10).json()["status"] == "ok"
    # loading ahead is not cut off when a socket closes at once: no worker is left to fail
    failures = server.log().split("Traceback (most recent call last):")[1:]
    assert not failures, failures[0][-4000:]


# who may open it -------------------------------------------------------------------------------

def test_the_socket_needs_the_owner(srv: ServerProcess) -> None:
    refused(srv, headers={})
    refused(srv, headers={"Authorization": "Bearer not-the-owner-token-at-all"})
    refused(srv, headers={"Cookie": "gridless_session=forged"})


def test_a_cross_site_origin_is_refused(srv: ServerProcess) -> None:
    cookie = {"Cookie": f"gridless_session={OwnerCredential(srv.token).session_value}"}
    refused(srv, headers=cookie, origin="http://evil.example")
    refused(srv, origin="http://evil.example")
    refused(srv, headers=cookie, origin=f"http://127.0.0.1:{srv.port + 1}")


def test_an_unknown_conversation_is_an_error_and_4404(srv: ServerProcess) -> None:
    cookie = {"Cookie": f"gridless_session={OwnerCredential(srv.token).session_value}"}
    with open_socket(srv, "?conversation=no-such-conversation", headers=cookie,
                     origin=f"http://127.0.0.1:{srv.port}") as ws:  # as the page opens it
        error = event(ws)
        assert error["type"] == "error" and error["code"] == "not_found" and error["message"]
        assert closed_with(ws) == 4404


# what a client may send -----------------------------------------------------------------------

@pytest.mark.parametrize("message", [
    "not json",
    '{"type": "dance"}',
    "[1, 2, 3]",
    '{"type": "stop"' + " " * 5000 + "}",
    b"\x00\x00" * (32 * 1024 + 1),  # more than 64 KiB of sound in one message
], ids=["bad-json", "unknown-command", "not-an-object", "too-long", "too-much-sound"])
def test_nonsense_is_an_error_event(srv: ServerProcess, message: str | bytes) -> None:
    with open_socket(srv) as ws:
        assert event(ws) == {"type": "listening"}
        ws.send(message)
        error = event(ws)
        assert error["type"] == "error" and error["code"] == "bad_request" and error["message"], error
        assert closed_with(ws) == 4400
    assert httpx.get(f"{srv.base}/healthz", timeout=10).status_code == 200


def test_commands_that_make_sense_are_taken_quietly(srv: ServerProcess) -> None:
    with open_socket(srv, "?language=it") as ws:
        assert event(ws) == {"type": "listening"}
        ws.send(json.dumps({"type": "language", "language": "en"}))
        ws.send(json.dumps({"type": "language", "language": None}))
        ws.send(bytes(3200))  # a tenth of a second of silence
        ws.send(json.dumps({"type": "stop"}))
        assert event(ws) == {"type": "stopped"}
        assert event(ws) == {"type": "listening"}


# with the real engines ------------------------------------------------------------------------

@dataclass
class Heard:
    """What the socket sent during a turn."""

    events: list[dict[str, Any]] = field(default_factory=list)
    sound: list[tuple[int, int, int]] = field(default_factory=list)
    """(turn, rate, bytes of PCM) of each binary message, and where it came among the events."""
    order: list[str] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]


def speak(ws: ClientConnection, *parts: np.ndarray) -> None:
    """Send sound as the page does, 100 ms to a message, five times faster than it is spoken."""
    data = pcm(*parts)
    for at in range(0, len(data), 3200):
        ws.send(data[at:at + 3200])
        time.sleep(0.02)


def follow_turn(ws: ClientConnection, turn: int, timeout: float = TURN_TIMEOUT_S) -> Heard:
    """Everything the socket sends until the turn is over (its timings, then `listening`)."""
    heard = Heard()
    deadline = time.monotonic() + timeout
    while True:
        message = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(message, bytes):
            number, rate = struct.unpack("<II", message[:8])
            heard.sound.append((number, rate, len(message) - 8))
            heard.order.append("sound")
            continue
        found = json.loads(message)
        heard.events.append(found)
        heard.order.append(found["type"])
        assert found["type"] != "error", found
        if found["type"] == "listening" and heard.of("timings"):
            return heard


def assert_heard(text: str, said: str) -> None:
    error = wer(text, said)
    assert error <= MAX_WER, f"heard {text!r} for {said!r} (word error rate {error:.2f})"


@pytest.mark.engine
def test_two_spoken_turns_are_heard_answered_and_kept(srv: ServerProcess) -> None:
    made = api(srv, "POST", "/api/conversations", json={"title": "Voice"})
    assert made.status_code == 201, made.text
    conversation = made.json()["id"]
    changed = api(srv, "PATCH", f"/api/conversations/{conversation}",
                  json={"system_prompt": "Answer in one short sentence.",
                        "settings": {"max_tokens": 40, "temperature": 0}})
    assert changed.status_code == 200, changed.text

    turns: list[Heard] = []
    with open_socket(srv, f"?conversation={conversation}&language=en") as ws:
        assert event(ws) == {"type": "listening"}
        for number, sentence in enumerate((FIRST, SECOND), start=1):
            speak(ws, silence(0.5), speech(sentence), silence(1.0))
            turns.append(follow_turn(ws, number))

    for number, (sentence, turn) in enumerate(zip((FIRST, SECOND), turns, strict=True), start=1):
        kinds = [k for i, k in enumerate(turn.order) if k not in ("answer", "sound")
                 or turn.order[i - 1] != k]
        assert [k for k in kinds if k not in ("answer", "sound")] == [
            "hearing", "thinking", "heard", "answered", "timings", "listening"], kinds
        assert all(e["turn"] == number for e in turn.events if "turn" in e)
        assert_heard(turn.of("heard")[0]["text"], sentence)
        answered = turn.of("answered")[0]
        assert answered["status"] == "done", answered
        answer = turn.of("answer")[-1]
        assert answer["text"].strip() and answer["message_id"] == answered["message_id"]
        # the answer's sound: binary messages with the turn and the voice's rate, before `answered`
        assert turn.sound and {(n, rate) for n, rate, _ in turn.sound} == {(number, 22_050)}
        assert all(size > 0 and size % 2 == 0 for _, _, size in turn.sound)
        assert turn.order.index("sound") < turn.order.index("answered")
        assert "sound" not in turn.order[turn.order.index("answered"):]
        timings = turn.of("timings")[0]
        assert {"vad", "heard", "first_audio", "answered"} <= set(timings)
        assert 0 < timings["vad"] <= timings["heard"] <= timings["first_audio"] <= timings["answered"]
        print(f"\nturn {number}: heard {turn.of('heard')[0]['text']!r}, answered {answer['text']!r}; {timings}")

    shown = api(srv, "GET", f"/api/conversations/{conversation}").json()
    messages = [(m["role"], m["content"], m["status"]) for m in shown["messages"]]
    assert [role for role, _, _ in messages] == ["user", "assistant", "user", "assistant"]
    assert [content for role, content, _ in messages if role == "user"] == \
        [t.of("heard")[0]["text"] for t in turns]
    assert [content for role, content, _ in messages if role == "assistant"] == \
        [t.of("answer")[-1]["text"] for t in turns]
    assert {status for _, _, status in messages} == {"done"} and shown["answering"] is None
    assert not [p for p in (srv.data_dir / "media").rglob("*") if p.is_file()]  # no recording is kept
    assert_healthy(srv)


@pytest.mark.engine
def test_an_answer_is_read_aloud_while_it_is_written(srv: ServerProcess) -> None:
    made = api(srv, "POST", "/api/conversations", json={"title": "Read as written"})
    conversation = made.json()["id"]
    api(srv, "PATCH", f"/api/conversations/{conversation}", json={"settings": {"max_tokens": 600}})
    with httpx.stream("POST", f"{srv.base}/api/conversations/{conversation}/messages", headers=srv.headers(),
                      json={"text": "Write a long story about a lighthouse keeper and a storm."},
                      timeout=60) as started:
        assert started.status_code == 200
        first = next(line for line in started.iter_lines() if line.startswith("data:"))
        answer = json.loads(first[5:])["answer_id"]  # the answer goes on once this client has gone

    begun = time.monotonic()
    data = b""
    with httpx.stream("GET", f"{srv.base}/api/speech/messages/{answer}", headers=srv.headers(),
                      timeout=120) as response:
        assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
        chunks = response.iter_bytes()
        while len(data) <= 44:
            data += next(chunks)
        first_sound_s = time.monotonic() - begun
        shown = api(srv, "GET", f"/api/conversations/{conversation}").json()
        assert shown["answering"] == answer, "the answer was finished before its first sound came"
        stopped = api(srv, "POST", f"/api/conversations/{conversation}/stop")  # no need to hear it all
        assert stopped.status_code == 200
        data += b"".join(chunks)  # the reading ends with the answer's last piece
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 22_050)
        sound = w.readframes(10**9)
    assert len(sound) / 2 / 22_050 > 0.5
    assert np.abs(np.frombuffer(sound, dtype="<i2")).max() > 1000  # speech, not silence
    saved = api(srv, "GET", f"/api/conversations/{conversation}").json()["messages"][-1]
    assert saved["id"] == answer and saved["status"] == "done" and saved["content"]
    print(f"\nfirst sound {first_sound_s * 1000:.0f} ms after the request, while the answer was written")
    assert_healthy(srv)
