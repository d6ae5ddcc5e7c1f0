"""The voice conversation from a paired tablet in secure mode: over the LAN listener's https,
from another network namespace, with the tablet's device cookie — and refused without it."""

from __future__ import annotations

import asyncio
import json
import ssl
import struct
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import websockets

from tests.audiofiles import wer
from tests.backend.security.test_lan import Lan, add_second_source, pair, share
from tests.netns import SecondHost, netns_available
from tests.server import ServerProcess

if not netns_available():
    pytest.skip("network namespaces are not available (needs root and `ip netns`)", allow_module_level=True)

pytestmark = pytest.mark.engine

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def secure_lan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lan, ssl.SSLContext]]:
    with SecondHost() as host, ServerProcess(data_dir=tmp_path_factory.mktemp("voice-lan") / "data") as server:
        state = share(server, host.host_address, secure=True)
        lan = Lan(server, host, add_second_source(host), state["origin"], state["port"])
        guide = state["guide_url"].removesuffix("/ca")
        pem = host.run(lambda: httpx.get(guide + "/ca/gridless-ca.pem"))
        assert pem.status_code == 200
        cafile = tmp_path_factory.mktemp("ca") / "ca.pem"
        cafile.write_text(pem.text)
        yield lan, ssl.create_default_context(cafile=str(cafile))


def question_pcm() -> bytes:
    """QUESTION spoken by the bundled Piper voice, at 16 kHz, with silence before and after."""
    from piper import PiperVoice

    from backend.models.local import bundled_voice

    path = bundled_voice()
    assert path is not None, "the bundled Piper voice is not installed"
    voice = PiperVoice.load(str(path))
    rate = voice.config.sample_rate
    spoken = np.frombuffer(b"".join(c.audio_int16_bytes for c in voice.synthesize(QUESTION)), "<i2").astype(float)
    at = np.arange(0, len(spoken) * 16_000 / rate) * rate / 16_000
    resampled = np.interp(at, np.arange(len(spoken)), spoken).astype("<i2")
    silence = np.zeros(16_000, "<i2")
    return np.concatenate([silence, resampled, silence, silence]).tobytes()


async def converse(url: str, headers: dict[str, str], context: ssl.SSLContext, pcm: bytes) -> dict[str, Any]:
    """Send the question in 32 ms messages, a little faster than real time, then silence until
    the answer is in; return the events and how much answer audio came."""
    seen: dict[str, Any] = {"events": [], "audio_bytes": 0, "audio_before_answered": False}
    async with websockets.connect(url, additional_headers=headers, ssl=context) as socket:
        async def feed() -> None:
            for start in range(0, len(pcm), 1024):
                await socket.send(pcm[start:start + 1024])
                await asyncio.sleep(0.02)
            while True:  # the microphone keeps sending quiet
                await socket.send(bytes(1024))
                await asyncio.sleep(0.032)

        feeding = asyncio.create_task(feed())
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline:
                message = await asyncio.wait_for(socket.recv(), deadline - time.monotonic())
                if isinstance(message, bytes):
                    turn, rate = struct.unpack("<II", message[:8])
                    assert turn == 1 and 8000 <= rate <= 48000
                    seen["audio_bytes"] += len(message) - 8
                    continue
                event = json.loads(message)
                seen["events"].append(event)
                if event["type"] == "answered":
                    seen["audio_before_answered"] = seen["audio_bytes"] > 0
                    break
                if event["type"] == "error":
                    break
        finally:
            feeding.cancel()
    return seen


def test_a_paired_tablet_talks_over_https(secure_lan: tuple[Lan, ssl.SSLContext]) -> None:
    lan, trusted = secure_lan
    status, paired = pair(lan, "Voice tablet", verify=trusted)
    assert paired is not None, status.text
    url = lan.origin.replace("https://", "wss://") + "/api/voice"
    headers = {"Cookie": paired.cookie, "Origin": lan.origin}
    seen = lan.host.run(lambda: asyncio.run(converse(url, headers, trusted, question_pcm())), timeout=150)
    kinds = [e["type"] for e in seen["events"]]
    assert "error" not in kinds, seen["events"]
    heard = next(e["text"] for e in seen["events"] if e["type"] == "heard")
    assert wer(heard, QUESTION) <= 0.3, heard
    answered = next(e for e in seen["events"] if e["type"] == "answered")
    assert answered["status"] == "done"
    assert seen["audio_before_answered"] and seen["audio_bytes"] > 16_000, seen["audio_bytes"]
    conversation = next(e["id"] for e in seen["events"] if e["type"] == "conversation")
    messages = httpx.get(f"{lan.server.base}/api/conversations/{conversation}", headers=lan.server.headers()).json()
    roles = [m["role"] for m in messages["messages"]]
    assert roles == ["user", "assistant"], messages
    assert wer(messages["messages"][0]["content"], QUESTION) <= 0.3


def test_the_voice_socket_needs_a_paired_device(secure_lan: tuple[Lan, ssl.SSLContext]) -> None:
    lan, trusted = secure_lan
    url = lan.origin.replace("https://", "wss://") + "/api/voice"

    async def attempt(headers: dict[str, str]) -> str:
        try:
            async with websockets.connect(url, additional_headers=headers, ssl=trusted) as socket:
                await socket.recv()
        except websockets.exceptions.InvalidStatus as refused:
            return f"refused {refused.response.status_code}"
        except websockets.exceptions.ConnectionClosed as closed:
            return f"closed {closed.rcvd.code if closed.rcvd else None}"
        return "open"

    assert lan.host.run(lambda: asyncio.run(attempt({"Origin": lan.origin}))) == "refused 401"
    _, paired = pair(lan, "Another tablet", verify=trusted)
    assert paired is not None
    cross_site = {"Cookie": paired.cookie, "Origin": "https://evil.example"}
    assert lan.host.run(lambda: asyncio.run(attempt(cross_site))) == "refused 401"
