"""Voice through a real server: /v1/audio with the official openai client, the app's
transcript routes (raw body in, NDJSON out), reading an answer aloud, and bad recordings
that must leave nothing behind."""

from __future__ import annotations

import io
import json
import random
import re
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from backend.audio.intake import wav_bytes, wav_header
from backend.storage.conversations import ConversationStore
from backend.storage.db import Database
from tests.audiofiles import PARAGRAPH, SENTENCES, italian_speech, opus_webm, png_bytes, silent_flac, wer, words
from tests.loops import run_alone
from tests.server import ServerProcess

pytestmark = pytest.mark.engine
SPEECH_ID = "whisper-base"
"""The bundled multilingual Whisper base: the speech model used when none was chosen."""
ENGLISH_ONLY_ID = "whisper-tiny-en"
VOICE_ID = "piper-en-us-joe-medium"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module (its engines stay loaded between tests); every test leaves
    it as it found it."""
    with ServerProcess(data_dir=tmp_path_factory.mktemp("audio-server") / "data") as server:
        yield server


def client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base}/v1", api_key=server.token, max_retries=0, timeout=120)


def api(server: ServerProcess, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, f"{server.base}{path}", headers=server.headers(), timeout=120, **kw)


@dataclass(frozen=True)
class Stored:
    transcripts: list[str]
    files: list[str]


def stored(server: ServerProcess) -> Stored:
    """Transcript rows and media files (partial ones included)."""
    media = server.data_dir / "media"
    files = sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file()) if media.exists() else []
    return Stored([t["id"] for t in api(server, "GET", "/api/transcripts").json()], files)


def assert_healthy(server: ServerProcess) -> None:
    assert httpx.get(f"{server.base}/healthz", timeout=10).json()["status"] == "ok"
    log = server.log()
    assert "Traceback" not in log, log[-4000:]


def read_wav(data: bytes) -> tuple[int, bytes]:
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return w.getframerate(), w.readframes(10**9)


@pytest.fixture(scope="module")
def spoken(srv: ServerProcess) -> bytes:
    """SENTENCES read by the server's own voice, as a WAV."""
    return client(srv).audio.speech.create(model="tts-1", voice="alloy", input=SENTENCES,
                                           response_format="wav").content


@pytest.fixture(scope="module")
def spoken_seconds(spoken: bytes) -> float:
    rate, pcm = read_wav(spoken)
    return len(pcm) / 2 / rate


# --- /v1/audio/speech -------------------------------------------------------------------------

def test_speech_wav_with_the_openai_client(srv: ServerProcess) -> None:
    response = client(srv).audio.speech.create(model="tts-1", voice="alloy", input="Good morning. The coffee is ready.",
                                               response_format="wav")
    data = response.content
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 22_050)
        assert w.getnframes() * 2 == len(data) - 44  # whole: the header states the true length
        assert 1.0 < w.getnframes() / w.getframerate() < 6.0


def test_speech_pcm_streams_with_its_rate(srv: ServerProcess) -> None:
    body = {"model": "tts-1", "voice": VOICE_ID, "input": "The first sentence. And then a second one.",
            "response_format": "pcm"}
    with httpx.stream("POST", f"{srv.base}/v1/audio/speech", json=body, headers=srv.headers(), timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "audio/pcm" and r.headers["x-sample-rate"] == "22050"
        pcm = b"".join(r.iter_bytes())
    assert len(pcm) % 2 == 0 and 1.0 < len(pcm) / 2 / 22_050 < 8.0


@pytest.mark.parametrize("body,status,code", [
    ({"input": "Hello.", "response_format": "mp3"}, 400, None),
    ({"input": "Hello.", "response_format": "opus"}, 400, None),
    ({"input": "", "response_format": "wav"}, 400, None),
    ({"input": "Hello.", "model": "no-such-voice"}, 404, "model_not_found"),
    ({"input": "Hello.", "model": SPEECH_ID}, 404, "model_not_found"),  # a speech model is no voice
])
def test_speech_refusals(srv: ServerProcess, body: dict[str, Any], status: int, code: str | None) -> None:
    response = api(srv, "POST", "/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", **body})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"]
    if code:
        assert error["code"] == code
    if body.get("response_format") in ("mp3", "opus"):
        assert error["param"] == "response_format" and "wav" in error["message"]


# --- /v1/audio/transcriptions -----------------------------------------------------------------

def transcribe(server: ServerProcess, audio: bytes, name: str = "speech.wav", **kw: Any) -> Any:
    return client(server).audio.transcriptions.create(model=kw.pop("model", "whisper-1"),
                                                      file=(name, audio, "audio/wav"), **kw)


def test_transcription_json(srv: ServerProcess, spoken: bytes) -> None:
    before = stored(srv)
    result = transcribe(srv, spoken)
    assert wer(result.text, SENTENCES) <= 0.25, result.text
    assert stored(srv) == before  # an API caller's audio is not kept


def test_transcription_text(srv: ServerProcess, spoken: bytes) -> None:
    text = transcribe(srv, spoken, response_format="text")
    assert isinstance(text, str) and text.endswith("\n")
    assert wer(text, SENTENCES) <= 0.25, text


def test_transcription_verbose_json(srv: ServerProcess, spoken: bytes, spoken_seconds: float) -> None:
    result = transcribe(srv, spoken, response_format="verbose_json", timestamp_granularities=["segment", "word"])
    assert result.language == "english"
    assert result.duration == pytest.approx(spoken_seconds, abs=0.1)
    assert wer(result.text, SENTENCES) <= 0.25, result.text
    assert result.segments
    assert "".join(s.text for s in result.segments).strip() == result.text
    previous_end = 0.0
    for n, segment in enumerate(result.segments):
        assert segment.id == n
        assert previous_end - 0.01 <= segment.start < segment.end <= result.duration + 0.5
        previous_end = segment.end
    assert result.words and wer(" ".join(w.word for w in result.words), SENTENCES) <= 0.25
    assert all(w.start <= w.end for w in result.words)


CUE = re.compile(r"(\d\d):(\d\d):(\d\d)([,.])(\d\d\d) --> (\d\d):(\d\d):(\d\d)([,.])(\d\d\d)")


def cues(body: str, separator: str) -> list[tuple[float, float, str]]:
    """(start, end, text) of each cue of a SubRip or WebVTT body."""
    found = []
    lines = body.splitlines()
    for i, line in enumerate(lines):
        match = CUE.fullmatch(line)
        if match:
            g = match.groups()
            assert g[3] == g[8] == separator
            start = int(g[0]) * 3600 + int(g[1]) * 60 + int(g[2]) + int(g[4]) / 1000
            end = int(g[5]) * 3600 + int(g[6]) * 60 + int(g[7]) + int(g[9]) / 1000
            found.append((start, end, lines[i + 1]))
    return found


@pytest.mark.parametrize("kind", ["srt", "vtt"])
def test_transcription_subtitles(srv: ServerProcess, spoken: bytes, spoken_seconds: float, kind: str) -> None:
    body = transcribe(srv, spoken, response_format=kind)
    assert isinstance(body, str)
    found = cues(body, "," if kind == "srt" else ".")
    assert found
    if kind == "vtt":
        assert body.startswith("WEBVTT\n")
    else:
        numbers = [line for line, after in zip(body.splitlines(), body.splitlines()[1:], strict=False)
                   if CUE.fullmatch(after)]
        assert numbers == [str(n) for n in range(1, len(found) + 1)]
    for (start, end, _), (next_start, _, _) in zip(found, [*found[1:], (spoken_seconds + 1, 0, "")], strict=True):
        assert 0 <= start < end <= next_start + 0.01 and end <= spoken_seconds + 0.5
    assert wer(" ".join(text for _, _, text in found), SENTENCES) <= 0.25


def test_transcription_model_and_language(srv: ServerProcess, spoken: bytes) -> None:
    assert wer(transcribe(srv, spoken, model=ENGLISH_ONLY_ID).text, SENTENCES) <= 0.25  # an installed model by id
    with pytest.raises(openai.NotFoundError) as missing:
        transcribe(srv, spoken, model="no-such-whisper")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as german:
        transcribe(srv, spoken, model=ENGLISH_ONLY_ID, language="de")
    assert "English only" in german.value.message
    english = transcribe(srv, spoken, language="en", response_format="verbose_json")  # the multilingual default
    assert wer(english.text, SENTENCES) <= 0.25 and english.language == "english"
    assert_healthy(srv)


def test_italian_is_understood_out_of_the_box(srv: ServerProcess, tmp_path: Path) -> None:
    audio = italian_speech(tmp_path / "roma.wav").read_bytes()
    result = transcribe(srv, audio, response_format="verbose_json")
    assert result.language == "italian", result
    assert {"tempo", "roma"} <= set(words(result.text)), result.text


# --- bad recordings ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Bad:
    name: str
    data: bytes
    status: int
    codes: tuple[str, ...]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Bad]:
    folder = tmp_path_factory.mktemp("bad-audio")
    three_hours = silent_flac(folder / "three-hours.flac", 3 * 3600).read_bytes()
    assert len(three_hours) < 100_000
    recording = opus_webm(folder / "recording.webm", 3.0, live=True).read_bytes()
    noise = random.Random(7).randbytes(50_000)
    return {b.name: b for b in (
        Bad("empty.wav", b"", 400, ("empty_audio",)),
        Bad("noise.wav", noise, 415, ("not_audio", "invalid_audio")),
        Bad("photo.png", png_bytes(), 415, ("not_audio",)),
        Bad("report.wav", b"%PDF-1.7\n" + bytes(5000), 415, ("not_audio",)),
        Bad("three-hours.flac", three_hours, 413, ("audio_too_long",)),
        Bad("cut.webm", recording[:200], 415, ("invalid_audio",)),
        Bad("silent.wav", wav_header(16_000, 0), 415, ("invalid_audio",)),
    )}


BAD = ["empty.wav", "noise.wav", "photo.png", "report.wav", "three-hours.flac", "cut.webm", "silent.wav"]


@pytest.mark.parametrize("name", BAD)
def test_bad_recording_through_v1(srv: ServerProcess, bad_inputs: dict[str, Bad], name: str) -> None:
    bad = bad_inputs[name]
    before = stored(srv)
    with pytest.raises(openai.APIStatusError) as info:
        transcribe(srv, bad.data, name=bad.name)
    assert info.value.status_code == bad.status and info.value.code in bad.codes, info.value.body
    assert info.value.message
    assert stored(srv) == before
    assert_healthy(srv)


@pytest.mark.parametrize("name", BAD)
def test_bad_recording_through_the_app(srv: ServerProcess, bad_inputs: dict[str, Bad], name: str) -> None:
    bad = bad_inputs[name]
    before = stored(srv)
    response = api(srv, "POST", "/api/transcripts?stream=1", content=bad.data)
    assert response.status_code == bad.status, response.text
    error = response.json()["error"]
    assert error["code"] in bad.codes and error["message"]
    if name == "report.wav":
        assert "PDF" in error["message"]  # says what was sent, whatever its name
    if name == "three-hours.flac":
        assert "3 h 00 min" in error["message"]
    assert stored(srv) == before
    assert_healthy(srv)


# --- the app's transcripts --------------------------------------------------------------------

def ndjson(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.iter_lines() if line]


def test_recording_streams_segments_then_is_kept(srv: ServerProcess, spoken: bytes, spoken_seconds: float) -> None:
    before = stored(srv)
    with httpx.stream("POST", f"{srv.base}/api/transcripts?stream=1&name=Morning%20note", content=spoken,
                      headers=srv.headers(), timeout=120) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        events = ndjson(response)
    kinds = [e["type"] for e in events]
    first, done = events[0], events[-1]
    assert first["type"] == "transcript" and first["audio_url"] == f"/api/transcripts/{first['id']}/audio"
    assert kinds.count("info") == 1 and kinds.index("info") < kinds.index("segment")
    segments = [e for e in events if e["type"] == "segment"]
    assert segments and [s["index"] for s in segments] == list(range(len(segments)))
    assert done["type"] == "done" and done["state"] == "done" and done["language"] == "en"
    assert wer(done["text"], SENTENCES) <= 0.25, done["text"]
    assert done["duration"] == pytest.approx(spoken_seconds, abs=0.1)
    transcript_id = first["id"]

    found = api(srv, "GET", f"/api/transcripts/{transcript_id}").json()
    assert (found["state"], found["name"], found["mime"], found["bytes"]) == ("done", "Morning note", "audio/wav",
                                                                            len(spoken))
    assert found["text"] == done["text"] and len(found["segments"]) == len(segments)
    assert transcript_id in stored(srv).transcripts
    assert len(stored(srv).files) == len(before.files) + 1
    audio = api(srv, "GET", f"/api/transcripts/{transcript_id}/audio")
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    assert audio.content == spoken
    # a player seeking in a long recording asks for a range
    part = httpx.get(f"{srv.base}/api/transcripts/{transcript_id}/audio",
                     headers={**srv.headers(), "Range": "bytes=100-199"}, timeout=30)
    assert part.status_code == 206 and part.content == spoken[100:200]

    with httpx.stream("GET", f"{srv.base}/api/transcripts/{transcript_id}/events", headers=srv.headers(),
                      timeout=30) as replay:
        again = ndjson(replay)
    assert [e["type"] for e in again] == ["transcript", "info", *["segment"] * len(segments), "done"]
    assert again[-1]["text"] == done["text"]

    deleted = api(srv, "DELETE", f"/api/transcripts/{transcript_id}")
    assert deleted.json() == {"id": transcript_id, "deleted": True}
    assert api(srv, "GET", f"/api/transcripts/{transcript_id}").status_code == 404
    assert api(srv, "GET", f"/api/transcripts/{transcript_id}/audio").status_code == 404
    assert stored(srv) == before
    assert_healthy(srv)


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/api/transcripts/{id}", 404), ("GET", "/api/transcripts/{id}/audio", 404),
    ("GET", "/api/transcripts/{id}/events", 404), ("DELETE", "/api/transcripts/{id}", 404),
    ("POST", "/api/transcripts/{id}/cancel", 409),
])
def test_unknown_transcript(srv: ServerProcess, method: str, path: str, status: int) -> None:
    response = api(srv, method, path.format(id="0123456789abcdef0123456789abcdef"))
    assert response.status_code == status
    assert response.json()["error"]["code"] in ("not_found", "not_running")


@pytest.fixture(scope="module")
def long_speech(srv: ServerProcess) -> bytes:
    """PARAGRAPH three times over (about a minute), as a WAV."""
    pcm = client(srv).audio.speech.create(model="tts-1", voice="alloy", input=PARAGRAPH,
                                          response_format="pcm").content
    return wav_bytes((pcm + bytes(22_050)) * 3, 22_050)


def test_cancel_a_transcription(srv: ServerProcess, long_speech: bytes) -> None:
    before = stored(srv)
    accepted = api(srv, "POST", "/api/transcripts", content=long_speech)
    assert accepted.status_code == 202 and accepted.json()["state"] == "queued"
    transcript_id = accepted.json()["id"]
    events: list[dict[str, Any]] = []
    with httpx.stream("GET", f"{srv.base}/api/transcripts/{transcript_id}/events", headers=srv.headers(),
                      timeout=120) as response:
        for line in response.iter_lines():
            if not line:
                continue
            events.append(json.loads(line))
            if events[-1]["type"] == "segment" and sum(e["type"] == "segment" for e in events) == 1:
                assert api(srv, "POST", f"/api/transcripts/{transcript_id}/cancel").json()["cancelling"] is True
    assert events[-1]["type"] == "done" and events[-1]["state"] == "cancelled"
    found = api(srv, "GET", f"/api/transcripts/{transcript_id}").json()
    assert found["state"] == "cancelled" and found["segments"]  # what was heard is kept
    assert api(srv, "POST", f"/api/transcripts/{transcript_id}/cancel").status_code == 409
    api(srv, "DELETE", f"/api/transcripts/{transcript_id}")
    assert stored(srv) == before


def test_a_transcription_cut_off_by_a_restart_is_finished_after_it(tmp_path: Path, long_speech: bytes) -> None:
    first = ServerProcess(data_dir=tmp_path / "data")
    with first:
        transcript_id = api(first, "POST", "/api/transcripts", content=long_speech).json()["id"]
        with httpx.stream("GET", f"{first.base}/api/transcripts/{transcript_id}/events", headers=first.headers(),
                          timeout=120) as response:
            for line in response.iter_lines():
                if line and json.loads(line)["type"] == "segment":
                    break  # under way: now the process group gets SIGTERM (a service manager, or Ctrl+C)
    assert first.process is not None and first.process.returncode is not None
    with ServerProcess(data_dir=tmp_path / "data") as second:
        with httpx.stream("GET", f"{second.base}/api/transcripts/{transcript_id}/events", headers=second.headers(),
                          timeout=120) as response:
            events = ndjson(response)
        assert events[-1]["type"] == "done" and events[-1]["state"] == "done"
        assert wer(events[-1]["text"], " ".join([PARAGRAPH] * 3)) <= 0.25
        assert stored(second).transcripts == [transcript_id]
        assert_healthy(second)


def test_engines_can_be_warmed(srv: ServerProcess) -> None:
    assert api(srv, "POST", "/api/transcripts/warm").json() == {"loaded": SPEECH_ID}
    assert api(srv, "POST", "/api/speech/warm").json() == {"loaded": VOICE_ID}


# --- reading an answer aloud ------------------------------------------------------------------

def add_messages(server: ServerProcess, messages: list[tuple[str, str]]) -> list[str]:
    """Messages written to the server's database, as the chat page would store them."""
    async def add() -> list[str]:
        db = Database(server.data_dir / "gridless.db")
        await db.open()
        try:
            store = ConversationStore(db)
            conversation = await store.create(title="Read aloud")
            return [(await store.add_message(conversation.id, role, content)).id  # type: ignore[arg-type]
                    for role, content in messages]
        finally:
            await db.close()
    return run_alone(add())


def test_read_an_answer_aloud(srv: ServerProcess) -> None:
    question, answer, empty = add_messages(srv, [
        ("user", "How do I list files?"),
        ("assistant", "Use the **ls** command:\n```sh\nls -la /tmp\n```\nIt lists every file. "
                      "See [the manual](https://example.com/ls) for more."),
        ("assistant", "***"),  # markup only: nothing to say
    ])
    with httpx.stream("GET", f"{srv.base}/api/speech/messages/{answer}", headers=srv.headers(),
                      timeout=60) as response:
        assert response.status_code == 200 and response.headers["content-type"] == "audio/wav"
        data = b"".join(response.iter_bytes())
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    rate, pcm = read_wav(data)  # a stream's header: the reader takes what came
    assert rate == 22_050 and 2.0 < len(pcm) / 2 / rate < 15.0
    faster = api(srv, "GET", f"/api/speech/messages/{answer}?speed=2")
    assert faster.status_code == 200 and len(faster.content) < len(data) * 0.75
    assert api(srv, "GET", f"/api/speech/messages/{question}").status_code == 404  # not an answer
    assert api(srv, "GET", "/api/speech/messages/no-such-message").status_code == 404
    nothing = api(srv, "GET", f"/api/speech/messages/{empty}")
    assert nothing.status_code == 400 and nothing.json()["error"]["code"] == "nothing_to_read"
    assert api(srv, "GET", f"/api/speech/messages/{answer}?speed=9").status_code == 422
    assert_healthy(srv)


# --- limits -----------------------------------------------------------------------------------

def test_limits_on_size_and_length(tmp_path: Path) -> None:
    """A 1 MB and 5 s server: larger uploads are refused whether or not they state their
    length; a recording without a stated duration is refused by the worker as it decodes."""
    with ServerProcess(data_dir=tmp_path / "data", env={"GRIDLESS_MAX_AUDIO_UPLOAD_MB": "1",
                                                       "GRIDLESS_MAX_AUDIO_SECONDS": "5"}) as small:
        before = stored(small)
        big = wav_bytes(bytes(2 * 1024 * 1024), 16_000)
        stated = api(small, "POST", "/api/transcripts", content=big)
        assert stated.status_code == 413  # refused from its Content-Length, before any of it is read

        def chunked() -> Iterator[bytes]:
            for start in range(0, len(big), 64 * 1024):
                yield big[start:start + 64 * 1024]
        unstated = api(small, "POST", "/api/transcripts?stream=1", content=chunked())
        assert unstated.status_code == 413 and unstated.json()["error"]["code"] == "audio_too_large"

        just_over = wav_bytes(bytes(1024 * 1024), 16_000)  # within the multipart allowance, over the file limit
        with pytest.raises(openai.APIStatusError) as info:
            transcribe(small, just_over)
        assert info.value.status_code == 413 and info.value.code == "audio_too_large"
        with pytest.raises(openai.APIStatusError) as info:
            transcribe(small, big)
        assert info.value.status_code == 413
        assert stored(small) == before

        live = opus_webm(tmp_path / "live.webm", 8.0, live=True).read_bytes()  # no duration in its header
        with pytest.raises(openai.APIStatusError) as info:
            transcribe(small, live, name="live.webm")
        assert info.value.status_code == 413 and info.value.code == "audio_too_long"
        streamed = api(small, "POST", "/api/transcripts?stream=1", content=live)
        assert streamed.status_code == 200
        events = [json.loads(line) for line in streamed.text.splitlines()]
        assert events[0]["type"] == "transcript"
        assert events[-1] == {"type": "error", "code": "audio_too_long", "deleted": True,
                              "message": "the recording is longer than the limit of 5 seconds"}
        assert api(small, "GET", f"/api/transcripts/{events[0]['id']}").status_code == 404
        assert stored(small) == before
        assert_healthy(small)
