"""A server's speech model: what a model is for (from its name), `RemoteClient.transcription` against a
server on loopback that behaves well or badly, `RemoteEngines.transcribe`, and `SpeechEngines`, which
sends dictation and recordings to a server's speech model while its server answers and to this device's
otherwise. Then transcripts through full `Services`, and `/api/engines`, `/v1/audio/transcriptions` and
`/api/transcripts` through a real gridless server, with the server answering and gone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.audio.engines import SpeechEngines, is_multilingual, speaks_languages, speech_engine
from backend.core.config import Settings
from backend.core.errors import AppError, ErrorCode
from backend.core.jobs import Job
from backend.engines.speech import SpeechInfo, SpeechSegment, TranscribeRequest, TranscribeResult
from backend.models.local import bundled_multilingual_speech_model, bundled_speech_model
from backend.models.manager import ModelManager
from backend.remote.client import TRANSCRIPT_BODY, RemoteClient, RemoteLimits
from backend.remote.service import RemoteEngines
from backend.remote.sse import StreamLimits
from backend.remote.store import RemoteEngine, guess_job
from backend.runtime.host import EngineJob
from backend.runtime.protocol import Event, JobDone, JobFailed
from backend.runtime.residency import MemoryBudget, ResidencyManager
from backend.services import Services
from backend.storage.db import Database
from tests.audiofiles import write_wav
from tests.server import ServerProcess

from .fake_remote import ERROR_MESSAGE, SPEECH_SEGMENTS, FakeRemote
from .gridless import api, gridless_server

WHISPER = "Systran/faster-whisper-large-v3"
LOCAL_SPEECH = "whisper-base"
"""The bundled multilingual Whisper base: this device's speech model when none was chosen."""
FAKE_TEXT = "Plant the tomatoes after the last frost."
MakeClient = Callable[..., RemoteClient]


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    """A short WAV, as a recording is stored."""
    return write_wav(tmp_path / "note.wav", 1.5)


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 16 * 1024):
        yield data[start:start + 16 * 1024]


# what a model is for ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", [
    WHISPER, "whisper-1", "distil-whisper/distil-large-v3", "nvidia/parakeet-tdt-0.6b-v2", "gpt-4o-mini-transcribe",
    "gpt-4o-transcribe", "Systran/faster-distil-whisper-small.en", "openai/whisper-large-v3-turbo",
    "nvidia/canary-1b-flash", "UsefulSensors/moonshine-base", "deepdml/faster-whisper-large-v3-turbo-ct2",
])
def test_speech_models_are_guessed_from_their_names(model: str) -> None:
    assert guess_job(model) == "speech"


@pytest.mark.parametrize(("model", "job"), [
    ("qwen3:14b", "chat"), ("llama3.2:3b", "chat"), ("gpt-4o-mini", "chat"), ("big-model", "chat"),
    ("meta-llama/Llama-3.1-8B-Instruct", "chat"), ("gemma-3-27b-it", "chat"), ("tts-1", "chat"),
    ("nomic-embed-text", "embeddings"), ("bge-m3", "embeddings"), ("text-embedding-3-small", "embeddings"),
])
def test_other_models_are_not_speech(model: str, job: str) -> None:
    assert guess_job(model) == job


# the client ------------------------------------------------------------------------------------------------

@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    made: list[RemoteClient] = []

    def make(url: str, limits: RemoteLimits | None = None) -> RemoteClient:
        client = RemoteClient(url, name="box", limits=limits or RemoteLimits())
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


async def test_transcription_sends_the_recording_whole_with_its_fields(fake: FakeRemote, make_client: MakeClient,
                                                                        recording: Path) -> None:
    client = make_client(fake.url + "/v1")
    said = await client.transcription(WHISPER, recording, language="de", prompt="Tomatoes, frost.")
    assert said["text"] == FAKE_TEXT and said["language"] == "en" and said["duration"] == SPEECH_SEGMENTS[-1][1]
    assert [(s["start"], s["end"], s["text"]) for s in said["segments"]] == list(SPEECH_SEGMENTS)
    [sent] = fake.requests("/v1/audio/transcriptions")
    assert sent.method == "POST" and sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert int(sent.headers["content-length"]) == len(sent.body)
    assert sent.form == {"model": WHISPER, "language": "de", "prompt": "Tomatoes, frost.",
                         "response_format": "verbose_json", "temperature": "0.0"}
    name, data = sent.files["file"]
    assert name == "note.wav" and data == recording.read_bytes() and len(data) > 40_000
    assert sent.headers["accept-encoding"] == "identity"

    # no language (detect it) and no prompt: neither is sent
    await client.transcription("whisper-1", recording)
    assert fake.requests("/v1/audio/transcriptions")[-1].form == {
        "model": "whisper-1", "response_format": "verbose_json", "temperature": "0.0"}


async def test_transcription_with_the_key(make_client: MakeClient, recording: Path) -> None:
    with FakeRemote(key="sesame") as fake:
        client = RemoteClient(fake.url + "/v1", "sesame", name="box")
        try:
            assert (await client.transcription(WHISPER, recording))["text"] == FAKE_TEXT
        finally:
            await client.aclose()
        with pytest.raises(AppError) as refused:
            await make_client(fake.url + "/v1").transcription(WHISPER, recording)
        assert refused.value.code == ErrorCode.REMOTE_REFUSED and "Invalid API Key" in refused.value.message


async def test_a_plain_json_answer_is_taken(fake: FakeRemote, make_client: MakeClient, recording: Path) -> None:
    fake.mode = "speech_json"
    assert await make_client(fake.url + "/v1").transcription(WHISPER, recording) == {"text": FAKE_TEXT}


@pytest.mark.parametrize(("mode", "code", "words"), [
    ("bad_json", ErrorCode.REMOTE_FAILED, "not JSON"),
    ("speech_no_text", ErrorCode.REMOTE_FAILED, "did not answer with a transcript"),
    ("html", ErrorCode.REMOTE_FAILED, "text/html"),
    ("not_openai", None, None),
])
async def test_answers_that_are_no_transcript(fake: FakeRemote, make_client: MakeClient, recording: Path,
                                              mode: str, code: ErrorCode | None, words: str | None) -> None:
    fake.mode = mode
    client = make_client(fake.url + "/v1")
    if code is None or words is None:  # a mode that only changes the model list: the transcript is read as usual
        assert (await client.transcription(WHISPER, recording))["text"] == FAKE_TEXT
        return
    with pytest.raises(AppError) as failed:
        await client.transcription(WHISPER, recording)
    assert failed.value.code == code and words in failed.value.message, failed.value.message
    assert failed.value.message.startswith("box ")


async def test_a_server_error_says_its_message(fake: FakeRemote, make_client: MakeClient, recording: Path) -> None:
    fake.mode, fake.error_length = "error500", 80
    with pytest.raises(AppError) as failed:
        await make_client(fake.url + "/v1").transcription(WHISPER, recording)
    assert failed.value.code == ErrorCode.REMOTE_FAILED
    assert "HTTP 500" in failed.value.message and ERROR_MESSAGE.strip() in failed.value.message, failed.value.message


async def test_a_huge_body_is_stopped_at_its_limit(fake: FakeRemote, make_client: MakeClient,
                                                   recording: Path) -> None:
    fake.mode = "huge"
    with pytest.raises(AppError) as failed:
        await make_client(fake.url + "/v1").transcription(WHISPER, recording)
    assert failed.value.code == ErrorCode.REMOTE_FAILED, failed.value.message
    assert "more than 16 MB" in failed.value.message, failed.value.message
    await asyncio.sleep(0.2)
    assert fake.sent < TRANSCRIPT_BODY + 8 * 1024 * 1024  # the rest of the GiB was not read


async def test_a_model_that_takes_long_is_waited_for(fake: FakeRemote, make_client: MakeClient,
                                                     recording: Path) -> None:
    """A transcript comes whole when the model has finished: nothing arrives before, however long the
    recording. Only the bound of a whole answer applies, not the silence allowed between two tokens."""
    fake.delay_s = 1.0
    limits = RemoteLimits(silence_s=0.3, stream=StreamLimits(max_seconds=10.0))
    assert (await make_client(fake.url + "/v1", limits).transcription(WHISPER, recording))["text"] == FAKE_TEXT

    fake.delay_s = 3.0
    limits = RemoteLimits(silence_s=0.3, stream=StreamLimits(max_seconds=1.0))
    with pytest.raises(AppError) as late:
        await make_client(fake.url + "/v1", limits).transcription(WHISPER, recording)
    assert late.value.code == ErrorCode.REMOTE_UNAVAILABLE and "did not transcribe the recording within 1 s" \
        in late.value.message, late.value.message


async def test_a_server_that_is_not_there(make_client: MakeClient, recording: Path) -> None:
    with FakeRemote() as fake:
        url = fake.url
    with pytest.raises(AppError) as failed:
        await make_client(url + "/v1").transcription(WHISPER, recording)
    assert failed.value.code == ErrorCode.REMOTE_UNAVAILABLE and "is the server running?" in failed.value.message


# the events of a transcription -------------------------------------------------------------------------------

async def transcribe(engines: RemoteEngines, model_id: str, recording: Path, **kw: Any) -> list[Event]:
    model = engines.get(model_id)
    assert model is not None and model.job is Job.SPEECH
    return await engines.transcribe(model, TranscribeRequest(audio_path=str(recording), **kw), EngineJob(id="j1"))


async def test_transcribe_gives_the_events_of_the_local_engine(engines: RemoteEngines, fake: FakeRemote,
                                                              recording: Path) -> None:
    fake.models = ["qwen3:14b", WHISPER]
    engine = await engines.add(fake.host, name="Laptop")
    events = await transcribe(engines, f"{engine.id}/{WHISPER}", recording, prompt="Garden notes")
    info, *segments, done = events
    assert isinstance(info, SpeechInfo) and info.job_id == "j1"
    assert (info.language, info.duration) == ("en", SPEECH_SEGMENTS[-1][1])
    heard = [s for s in segments if isinstance(s, SpeechSegment)]
    assert heard == segments
    assert [(s.index, s.start, s.end, s.text) for s in heard] == [(i, *s) for i, s in enumerate(SPEECH_SEGMENTS)]
    assert isinstance(done, JobDone) and isinstance(done.result, TranscribeResult)
    result = done.result
    assert (result.text, result.language, result.duration, result.segments) == (FAKE_TEXT, "en", 3.2, 2)
    assert 0 <= result.seconds < 5 and not result.cancelled
    sent = fake.requests("/audio/transcriptions")[-1]
    assert sent.form["model"] == WHISPER and sent.form["prompt"] == "Garden notes" and "language" not in sent.form


async def test_a_plain_json_answer_becomes_one_segment(engines: RemoteEngines, fake: FakeRemote,
                                                       recording: Path) -> None:
    fake.models = [WHISPER]
    engine = await engines.add(fake.host, name="Laptop")
    fake.mode = "speech_json"
    info, segment, done = await transcribe(engines, f"{engine.id}/{WHISPER}", recording, language="de")
    assert isinstance(info, SpeechInfo) and (info.language, info.duration) == ("de", 0.0)  # the hint, as said
    assert isinstance(segment, SpeechSegment) and (segment.index, segment.start, segment.text) == (0, 0.0, FAKE_TEXT)
    assert isinstance(done, JobDone) and isinstance(done.result, TranscribeResult)
    assert (done.result.text, done.result.segments) == (FAKE_TEXT, 1)
    assert fake.requests("/audio/transcriptions")[-1].form["language"] == "de"


async def test_silence_gives_no_segment(engines: RemoteEngines, recording: Path) -> None:
    with FakeRemote(models=[WHISPER], speech_segments=()) as fake:
        engine = await engines.add(fake.host, name="Laptop")
        info, done = await transcribe(engines, f"{engine.id}/{WHISPER}", recording)
        assert isinstance(info, SpeechInfo) and isinstance(done, JobDone) and isinstance(done.result, TranscribeResult)
        assert (done.result.text, done.result.segments) == ("", 0)


# which speech model: SpeechEngines ---------------------------------------------------------------------------

@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    """The whole app on a folder of its own: the bundled speech model is installed, never started here."""
    built = Services.build(Settings(data_dir=tmp_path / "data", token="t" * 20, remote_check_s=3600))
    await built.start()
    yield built
    await built.stop()


async def run(speech: SpeechEngines, recording: Path, **kw: Any) -> list[Event]:
    job = EngineJob()
    return [e async for e in speech.stream(TranscribeRequest(audio_path=str(recording)), job, **kw)]


def test_which_models_speak_languages() -> None:
    box = RemoteEngine(id="e1", url="http://box:8000/v1", name="Box",
                       models=["whisper-large-v3", "whisper-small.en", "distil-large-v3-en", "whisper-1"])
    records = {m: RemoteEngines._record(box, m) for m in box.models}
    assert speaks_languages(records["whisper-large-v3"]) is True
    assert speaks_languages(records["whisper-1"]) is True
    assert speaks_languages(records["whisper-small.en"]) is False
    assert speaks_languages(records["distil-large-v3-en"]) is False
    local = bundled_speech_model()
    assert local is not None and is_multilingual(local) is False  # Whisper tiny.en
    base = bundled_multilingual_speech_model()
    assert base is not None and is_multilingual(base) is True  # Whisper base


async def test_a_server_speech_model_is_used_while_its_server_answers(services: Services, recording: Path) -> None:
    speech = services.speech
    assert speech.model is not None and speech.model.id == LOCAL_SPEECH and speaks_languages(speech.model)
    with FakeRemote(models=["qwen3:14b", "whisper-large-v3"]) as fake:
        engine = await services.remote.add(fake.host, name="Laptop")
        remote_id = f"{engine.id}/whisper-large-v3"
        assert speech.model.id == remote_id and speaks_languages(speech.model)
        assert speech.loaded.id == remote_id
        await speech.warm()  # nothing to load here
        assert speech.local.worker_pid is None

        events = await run(speech, recording)
        done = events[-1]
        assert isinstance(done, JobDone) and isinstance(done.result, TranscribeResult)
        assert done.result.text == FAKE_TEXT
        assert [e.text for e in events if isinstance(e, SpeechSegment)] == [s[2] for s in SPEECH_SEGMENTS]
        assert len(fake.requests("/audio/transcriptions")) == 1
        assert speech.local.worker_pid is None  # the local speech engine never started

        # a server that answers badly fails the transcription, and stays the one used
        fake.mode = "error500"
        [failed] = await run(speech, recording)
        assert isinstance(failed, JobFailed) and failed.code == ErrorCode.REMOTE_FAILED and "HTTP 500" in failed.message
        assert services.remote.engine(engine.id).state == "up" and speech.model.id == remote_id

        # a cancelled job never reaches it
        fake.mode = "good"
        job = EngineJob()
        speech.cancel(job)
        cancelled = [e async for e in speech.stream(TranscribeRequest(audio_path=str(recording)), job)]
        assert len(cancelled) == 1 and isinstance(cancelled[0], JobFailed)
        assert cancelled[0].code == ErrorCode.CANCELLED
        assert len(fake.requests("/audio/transcriptions")) == 2

        # the owner says the model is for something else: this device's model again
        await services.remote.set_job(engine.id, "whisper-large-v3", "chat")
        assert speech.model.id == LOCAL_SPEECH
        await services.remote.set_job(engine.id, "qwen3:14b", "speech")  # any model the owner marks
        assert speech.model.id == f"{engine.id}/qwen3:14b"
        await services.remote.set_job(engine.id, "qwen3:14b", "chat")
        await services.remote.set_job(engine.id, "whisper-large-v3", "speech")
        assert speech.model.id == remote_id

        # its server found down (here by the regular check): this device's model, until it is found up
        fake.down()
        assert (await services.remote.check(engine.id)).state == "down"
        assert speech.model.id == LOCAL_SPEECH and speech.loaded is None
        fake.up()
        assert (await services.remote.check(engine.id)).state == "up"
        assert speech.model.id == remote_id
        assert speech.local.worker_pid is None


async def test_a_server_gone_with_no_model_here(db: Database, settings: Settings, engines: RemoteEngines,
                                               recording: Path) -> None:
    """With no speech model on this device, a recording for a server that cannot be reached fails and
    says why; the server is left from then on."""
    residency = ResidencyManager(MemoryBudget(fixed_bytes=1024 * 1024 * 1024))
    speech = SpeechEngines(speech_engine(settings, ModelManager(settings, db, residency), residency), engines)
    with FakeRemote(models=["whisper-large-v3"]) as fake:
        engine = await engines.add(fake.host, name="Laptop")
        fake.down()
        assert speech.model is not None and speech.model.id == f"{engine.id}/whisper-large-v3"  # not known yet
        [failed] = await run(speech, recording)
        assert isinstance(failed, JobFailed) and failed.code == ErrorCode.REMOTE_UNAVAILABLE
        assert failed.message == "Cannot connect to Laptop: nothing answers at that port (is the server running?)."
        assert engines.engine(engine.id).state == "down" and speech.model is None


@pytest.mark.engine
async def test_a_recording_for_a_server_gone_is_transcribed_here(services: Services, recording: Path) -> None:
    """The server is found gone by the recording that needed it: this device's model transcribes that one
    and the next; a caller that names the server's model is told it cannot be reached."""
    with FakeRemote(models=["whisper-large-v3"]) as fake:
        engine = await services.remote.add(fake.host, name="Laptop")
        remote_id = f"{engine.id}/whisper-large-v3"
        fake.down()
        assert services.speech.model.id == remote_id  # not known yet
        events = await run(services.speech, recording)
        assert isinstance(events[0], SpeechInfo) and events[0].language == "en" and events[0].duration == 1.5
        assert isinstance(events[-1], JobDone) and isinstance(events[-1].result, TranscribeResult), events
        assert services.remote.engine(engine.id).state == "down"
        assert services.speech.local.worker_pid is not None
        assert services.speech.model.id == LOCAL_SPEECH  # the next recordings too

        [failed] = await run(services.speech, recording, model_id=remote_id)
        assert isinstance(failed, JobFailed) and failed.code == ErrorCode.REMOTE_UNAVAILABLE
        assert "Cannot connect to Laptop" in failed.message


# transcripts through the whole app ---------------------------------------------------------------------------

async def follow(services: Services, transcript_id: str) -> list[dict[str, Any]]:
    async with asyncio.timeout(30):
        return [event async for event in services.transcripts.follow(transcript_id)]


async def test_a_recording_is_transcribed_by_the_server(services: Services, recording: Path) -> None:
    with FakeRemote(models=["qwen3:14b", WHISPER]) as fake:
        engine = await services.remote.add(fake.host, name="Laptop")
        remote_id = f"{engine.id}/{WHISPER}"
        data = recording.read_bytes()
        transcript = await services.transcripts.accept(chunks(data), name="Garden", language="en")
        assert transcript.model == remote_id
        events = await follow(services, transcript.id)
        kinds = [e["type"] for e in events]
        assert kinds[0] == "transcript" and kinds[-1] == "done" and kinds.count("segment") == 2, events
        assert events[-1]["state"] == "done" and events[-1]["text"] == FAKE_TEXT and events[-1]["language"] == "en"
        assert events[-1]["duration"] == 3.2

        stored = await services.transcripts.store.get(transcript.id)
        assert stored is not None and stored.state == "done" and stored.text == FAKE_TEXT
        assert stored.segments == [{"index": i, "start": s, "end": e, "text": t}
                                   for i, (s, e, t) in enumerate(SPEECH_SEGMENTS)]
        assert (stored.language, stored.duration, stored.model, stored.error) == ("en", 3.2, remote_id, None)
        assert services.media.path(stored.audio).read_bytes() == data  # the recording is kept here

        sent = fake.requests("/audio/transcriptions")[-1]
        assert sent.form["model"] == WHISPER and sent.form["language"] == "en"
        assert sent.files["file"][1] == data
        assert services.speech.local.worker_pid is None


async def test_a_transcript_the_server_fails(services: Services, recording: Path) -> None:
    with FakeRemote(models=[WHISPER], error_length=60) as fake:
        await services.remote.add(fake.host, name="Laptop")
        fake.mode = "error500"
        transcript = await services.transcripts.accept(chunks(recording.read_bytes()))
        events = await follow(services, transcript.id)
        assert events[-1]["type"] == "error" and events[-1]["code"] == ErrorCode.TRANSCRIPTION_FAILED
        assert "Laptop answered with HTTP 500" in events[-1]["message"]
        stored = await services.transcripts.store.get(transcript.id)
        assert stored is not None and stored.state == "error" and "HTTP 500" in (stored.error or "")
        assert services.media.path(stored.audio).is_file()  # the recording stays: it can be transcribed again


# through a real gridless server ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shared_fake() -> Iterator[FakeRemote]:
    with FakeRemote(models=["qwen3:14b", WHISPER]) as server:
        yield server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with gridless_server(tmp_path_factory, "remote-speech") as server:
        yield server


@pytest.fixture(scope="module")
def wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_wav(tmp_path_factory.mktemp("remote-speech-audio") / "note.wav", 1.5).read_bytes()



def engine_id(server: ServerProcess, fake: FakeRemote) -> str:
    listed = api(server, "GET", "/api/engines").json()["engines"]
    if listed:
        return str(listed[0]["id"])
    made = api(server, "POST", "/api/engines", json={"url": fake.host, "name": "Laptop"})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def dictate(server: ServerProcess, data: bytes, **params: str) -> list[dict[str, Any]]:
    with httpx.stream("POST", f"{server.base}/api/transcripts", params={"stream": "1", **params}, content=data,
                      headers=server.headers(), timeout=120) as response:
        assert response.status_code == 200, response.read()
        return [json.loads(line) for line in response.iter_lines() if line]


def v1_transcription(server: ServerProcess, data: bytes, **fields: str) -> httpx.Response:
    return api(server, "POST", "/v1/audio/transcriptions", files={"file": ("note.wav", data, "audio/wav")},
               data=fields)


def test_dictation_through_the_server(srv: ServerProcess, shared_fake: FakeRemote, wav: bytes) -> None:
    eid = engine_id(srv, shared_fake)
    remote_id = f"{eid}/{WHISPER}"
    [listed] = api(srv, "GET", "/api/engines").json()["engines"]
    assert listed["jobs"] == {"qwen3:14b": "chat", WHISPER: "speech"} and listed["state"] == "up"
    chat_models = {m["id"] for m in api(srv, "GET", "/v1/models").json()["data"]}
    assert f"{eid}/qwen3:14b" in chat_models and remote_id not in chat_models
    assert api(srv, "POST", "/api/transcripts/warm").json() == {"loaded": remote_id}

    # /v1/audio/transcriptions, naming the server's model
    answered = v1_transcription(srv, wav, model=remote_id, response_format="verbose_json", language="en")
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert body["text"] == FAKE_TEXT and body["language"] == "english" and body["duration"] == 3.2
    assert [(s["id"], s["start"], s["end"], s["text"]) for s in body["segments"]] == \
        [(i, *s) for i, s in enumerate(SPEECH_SEGMENTS)]
    sent = shared_fake.requests("/audio/transcriptions")[-1]
    assert sent.form["model"] == WHISPER and sent.form["language"] == "en" and sent.files["file"][1] == wav
    # OpenAI's name of a model: the speech model in use, the server's
    plain = v1_transcription(srv, wav, model="whisper-1")
    assert plain.status_code == 200 and plain.json() == {"text": FAKE_TEXT}, plain.text
    assert len(shared_fake.requests("/audio/transcriptions")) == 2
    # the server's chat model is no speech model
    refused = v1_transcription(srv, wav, model=f"{eid}/qwen3:14b")
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "model_not_found"
    assert len(shared_fake.requests("/audio/transcriptions")) == 2

    # the app's own route, as the microphone sends it
    events = dictate(srv, wav, name="Garden")
    assert events[0]["type"] == "transcript" and events[-1]["type"] == "done", events
    assert events[-1]["text"] == FAKE_TEXT and [e["text"] for e in events if e["type"] == "segment"] == \
        [s[2] for s in SPEECH_SEGMENTS]
    found = api(srv, "GET", f"/api/transcripts/{events[0]['id']}").json()
    assert (found["state"], found["text"], found["model"], found["name"]) == ("done", FAKE_TEXT, remote_id, "Garden")
    assert len(found["segments"]) == 2
    assert shared_fake.requests("/audio/transcriptions")[-1].files["file"][1] == wav
    assert "Traceback" not in srv.log()


@pytest.mark.engine
def test_dictation_when_the_server_has_gone(srv: ServerProcess, shared_fake: FakeRemote, wav: bytes) -> None:
    """The server is found gone by the recording that needed it: this device's bundled model transcribes
    that one and the next ones, until the server is found again."""
    eid = engine_id(srv, shared_fake)
    remote_id = f"{eid}/{WHISPER}"
    asked = len(shared_fake.requests("/audio/transcriptions"))
    shared_fake.down()
    try:
        first = dictate(srv, wav)
        assert first[-1]["type"] == "done" and first[-1]["state"] == "done", first
        assert "error" not in [e["type"] for e in first]
        assert (first[-1]["language"], first[-1]["duration"]) == ("en", 1.5)  # as this device's Whisper base heard it
        [listed] = api(srv, "GET", "/api/engines").json()["engines"]
        assert listed["state"] == "down" and "Cannot connect" in listed["error"]
        assert api(srv, "POST", "/api/transcripts/warm").json() == {"loaded": LOCAL_SPEECH}

        second = dictate(srv, wav)
        assert second[-1]["type"] == "done" and second[-1]["state"] == "done", second
        again = api(srv, "GET", f"/api/transcripts/{second[0]['id']}").json()
        assert (again["model"], again["state"], again["error"]) == (LOCAL_SPEECH, "done", None)

        # named by its id, it is still asked for, and the caller is told it cannot be reached
        named = v1_transcription(srv, wav, model=remote_id)
        assert named.status_code == 502 and named.json()["error"]["code"] == "remote_unavailable", named.text
        assert "Cannot connect to Laptop" in named.json()["error"]["message"]
        assert v1_transcription(srv, wav, model="whisper-1").status_code == 200
    finally:
        shared_fake.up()
    assert len(shared_fake.requests("/audio/transcriptions")) == asked  # nothing reached it while it was down

    # found again by a check: its model is used again
    assert api(srv, "POST", f"/api/engines/{eid}/check").json()["state"] == "up"
    assert api(srv, "POST", "/api/transcripts/warm").json() == {"loaded": remote_id}
    assert dictate(srv, wav)[-1]["text"] == FAKE_TEXT
    assert "Traceback" not in srv.log()


async def test_openai_language_names_become_codes(engines: RemoteEngines, recording: Path) -> None:
    with FakeRemote(models=[WHISPER], speech_language="italian") as fake:
        engine = await engines.add(fake.host, name="Laptop")
        info, *_ = await transcribe(engines, f"{engine.id}/{WHISPER}", recording)
        assert isinstance(info, SpeechInfo) and info.language == "it"


async def test_stopping_a_transcription_on_the_server_ends_it_at_once(services: Services, recording: Path) -> None:
    with FakeRemote(models=["whisper-large-v3"], delay_s=30) as fake:
        await services.remote.add(fake.host, name="Laptop")
        job = EngineJob()
        events: list[Event] = []

        async def follow() -> None:
            async for event in services.speech.stream(TranscribeRequest(audio_path=str(recording)), job):
                events.append(event)

        running = asyncio.create_task(follow())
        deadline = asyncio.get_running_loop().time() + 10
        while not fake.requests("/audio/transcriptions"):
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        stopped = asyncio.get_running_loop().time()
        services.speech.cancel(job)
        await asyncio.wait_for(running, 5)
        assert asyncio.get_running_loop().time() - stopped < 2
        [done] = events
        assert isinstance(done, JobDone) and isinstance(done.result, TranscribeResult) and done.result.cancelled
