"""The speech (faster-whisper) and voice (Piper) engines with the bundled models, in worker
processes behind their sidecar hosts: Piper speaks known sentences and Whisper writes them down;
espeak-ng speaks Italian, which the bundled Whisper base (the default) understands and tiny.en does not."""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from backend.audio.engines import speech_engine, voice_engine
from backend.audio.intake import wav_bytes, wav_header
from backend.core.config import Settings
from backend.core.errors import AppError
from backend.engines.speech import (
    SAMPLE_RATE,
    SpeechConfig,
    SpeechInfo,
    SpeechSegment,
    TranscribeRequest,
    TranscribeResult,
    decode_bounded,
)
from backend.engines.voice import AudioChunk, SpeakRequest, VoiceConfig
from backend.models.local import bundled_speech_model, bundled_voice
from backend.models.manager import ModelManager
from backend.runtime.host import EngineHost, EngineJob
from backend.runtime.protocol import Event, JobDone, JobFailed
from backend.runtime.residency import MemoryBudget, ResidencyManager
from backend.runtime.worker import WorkerProcess, WorkerSpec
from backend.storage.db import Database
from tests.audiofiles import PARAGRAPH, SENTENCES, italian_speech, opus_webm, png_bytes, wer, words
from tests.threads import ENGINE_THREADS

pytestmark = pytest.mark.engine
in_module_loop = pytest.mark.asyncio(loop_scope="module")
"""The workers started by the module's fixtures belong to the module's event loop."""

@dataclass
class Engines:
    speech: EngineHost
    voice: EngineHost
    manager: ModelManager
    models: Path
    """The models folder (the damaged Whisper folder is there)."""


DAMAGED = "damaged-whisper"
BASE = "whisper-base"
"""The bundled multilingual Whisper base: the speech model when none was chosen."""
TINY_EN = "whisper-tiny-en"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engines(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Engines]:
    bundled = bundled_speech_model()
    assert bundled is not None and bundled_voice() is not None, "the bundled speech and voice models are missing"
    data = tmp_path_factory.mktemp("engines")
    models = data / "models"
    damaged = models / DAMAGED  # a Whisper folder whose model.bin was cut short
    damaged.mkdir(parents=True)
    for name in ("config.json", "vocabulary.txt", "tokenizer.json"):
        shutil.copyfile(bundled / name, damaged / name)
    with (bundled / "model.bin").open("rb") as fh:
        (damaged / "model.bin").write_bytes(fh.read(2_000_000))
    settings = Settings(data_dir=data / "data", models_dir=models, threads=ENGINE_THREADS)
    db = Database(settings.db_path)
    await db.open()
    residency = ResidencyManager(MemoryBudget())
    manager = ModelManager(settings, db, residency)
    await manager.start(run_downloads=False)
    found = Engines(speech=speech_engine(settings, manager, residency),
                    voice=voice_engine(settings, manager, residency),
                    manager=manager, models=models)
    yield found
    await found.speech.close()
    await found.voice.close()
    await manager.stop()
    await residency.stop()
    await db.close()


async def events_of(host: EngineHost, request: TranscribeRequest | SpeakRequest, *, job_id: str | None = None,
                    model_id: str | None = None) -> list[Event]:
    job = EngineJob(id=job_id) if job_id else EngineJob()
    return [event async for event in host.stream(request, job, model_id=model_id)]


async def speak(engines: Engines, text: str, speed: float = 1.0) -> tuple[bytes, int, list[AudioChunk]]:
    events = await events_of(engines.voice, SpeakRequest(text=text, speed=speed))
    assert isinstance(events[-1], JobDone), events[-1]
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    return b"".join(c.pcm for c in chunks), chunks[0].sample_rate, chunks


@dataclass
class Spoken:
    short: Path
    short_seconds: float
    long: Path
    long_seconds: float


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def spoken(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> Spoken:
    """Piper's reading of SENTENCES, and of PARAGRAPH three times over (about a minute)."""
    folder = tmp_path_factory.mktemp("spoken")
    pcm, rate, _ = await speak(engines, SENTENCES)
    short = folder / "sentences.wav"
    short.write_bytes(wav_bytes(pcm, rate))
    paragraph, _, _ = await speak(engines, PARAGRAPH)
    pause = bytes(rate)  # half a second of silence between readings
    long = folder / "paragraphs.wav"
    long.write_bytes(wav_bytes((paragraph + pause) * 3, rate))
    return Spoken(short=short, short_seconds=len(pcm) / 2 / rate, long=long,
                  long_seconds=3 * (len(paragraph) + len(pause)) / 2 / rate)


def test_wer() -> None:
    assert wer("The quick, brown fox!", "the quick brown fox") == 0.0
    assert wer("the quick red fox", "the quick brown fox") == 0.25
    assert wer("quick brown fox", "the quick brown fox") == 0.25
    assert wer("the the quick brown fox", "the quick brown fox") == 0.25
    assert wer("", "the quick brown fox") == 1.0


# --- voice ------------------------------------------------------------------------------------

@in_module_loop
async def test_voice_sends_one_chunk_per_sentence(engines: Engines) -> None:
    text = "The weather is lovely today. Let us go for a walk in the park."
    events = await events_of(engines.voice, SpeakRequest(text=text))
    chunks = [e for e in events if isinstance(e, AudioChunk)]
    done = events[-1]
    assert isinstance(done, JobDone) and done.result.finish_reason == "done"
    assert len(chunks) >= 2
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert {c.sample_rate for c in chunks} == {22_050}
    for chunk in chunks:
        assert len(chunk.pcm) % 2 == 0
        assert 0.5 <= len(chunk.pcm) / 2 / chunk.sample_rate <= 3.0
        assert np.abs(np.frombuffer(chunk.pcm, dtype="<i2")).max() > 1000  # speech, not silence
    total = sum(len(c.pcm) for c in chunks) / 2 / 22_050
    assert done.result.chunks == len(chunks) and done.result.sample_rate == 22_050
    assert done.result.seconds_of_audio == pytest.approx(total)


@in_module_loop
async def test_voice_speed(engines: Engines) -> None:
    text = "Reading faster makes the recording shorter."
    normal, _, _ = await speak(engines, text)
    fast, _, _ = await speak(engines, text, speed=2.0)
    assert 0.35 < len(fast) / len(normal) < 0.7


@in_module_loop
@pytest.mark.parametrize("request_", [SpeakRequest(text="   \n "), SpeakRequest(text="Hello.", speed=10.0)],
                         ids=["empty", "speed"])
async def test_voice_refuses_bad_requests(engines: Engines, request_: SpeakRequest) -> None:
    events = await events_of(engines.voice, request_)
    assert len(events) == 1 and isinstance(events[0], JobFailed)
    assert events[0].code == "bad_request"


# --- speech -----------------------------------------------------------------------------------

@in_module_loop
@pytest.mark.parametrize("model_id", [None, TINY_EN], ids=["default-base", "tiny-en"])
async def test_round_trip_piper_to_whisper(engines: Engines, spoken: Spoken, model_id: str | None) -> None:
    events = await events_of(engines.speech, TranscribeRequest(audio_path=str(spoken.short)), model_id=model_id)
    assert engines.speech.loaded is not None and engines.speech.loaded.id == (model_id or BASE)
    info, *segments, done = events
    assert isinstance(info, SpeechInfo) and isinstance(done, JobDone), events
    assert segments and all(isinstance(s, SpeechSegment) for s in segments)
    assert info.language == "en"
    assert info.duration == pytest.approx(spoken.short_seconds, abs=0.05)
    result = done.result
    assert isinstance(result, TranscribeResult)
    assert result.finish_reason == "done" and result.segments == len(segments)
    assert result.text == "".join(s.text for s in segments if isinstance(s, SpeechSegment)).strip()
    assert wer(result.text, SENTENCES) <= 0.25, result.text
    for segment in segments:
        assert isinstance(segment, SpeechSegment)
        assert 0 <= segment.start < segment.end <= info.duration + 0.5


@in_module_loop
async def test_segments_stream_before_the_end_and_cancel_stops(engines: Engines, spoken: Spoken) -> None:
    """A minute of speech: segments arrive while the rest is still being transcribed, and a
    cancel after the first one ends the job early with finish_reason 'cancelled'."""
    arrivals: list[tuple[float, Event]] = []
    started = time.perf_counter()
    async for event in engines.speech.stream(TranscribeRequest(audio_path=str(spoken.long)), EngineJob()):
        arrivals.append((time.perf_counter() - started, event))
    done_at, done = arrivals[-1]
    assert isinstance(done, JobDone) and done.result.finish_reason == "done"
    segment_times = [t for t, e in arrivals if isinstance(e, SpeechSegment)]
    assert len(segment_times) >= 3
    assert segment_times[0] < done_at * 0.8, (segment_times, done_at)  # not all sent at the end
    assert wer(done.result.text, " ".join([PARAGRAPH] * 3)) <= 0.25, done.result.text

    received: list[SpeechSegment] = []
    result = TranscribeResult()
    job = EngineJob()
    async for event in engines.speech.stream(TranscribeRequest(audio_path=str(spoken.long)), job):
        if isinstance(event, SpeechSegment):
            received.append(event)
            if len(received) == 1:
                engines.speech.cancel(job)
        elif isinstance(event, JobDone) and isinstance(event.result, TranscribeResult):
            result = event.result
    assert result.finish_reason == "cancelled"
    assert result.segments == len(received) < len(segment_times)


@in_module_loop
async def test_english_only_model_refuses_another_language(engines: Engines, spoken: Spoken) -> None:
    events = await events_of(engines.speech, TranscribeRequest(audio_path=str(spoken.short), language="de"),
                             model_id=TINY_EN)
    assert isinstance(events[-1], JobFailed) and events[-1].code == "bad_request"
    assert "English only" in events[-1].message


@pytest.fixture(scope="module")
def italian(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return italian_speech(tmp_path_factory.mktemp("italian") / "roma.wav")


@in_module_loop
async def test_the_default_model_understands_italian(engines: Engines, italian: Path) -> None:
    assert engines.manager.active("speech").id == BASE  # type: ignore[union-attr]
    events = await events_of(engines.speech, TranscribeRequest(audio_path=str(italian)))
    info, done = events[0], events[-1]
    assert isinstance(info, SpeechInfo) and isinstance(done, JobDone), events
    assert info.language == "it" and done.result.language == "it"
    heard = words(done.result.text)
    assert "tempo" in heard and "roma" in heard, done.result.text
    # told the language, it hears the same
    told = await events_of(engines.speech, TranscribeRequest(audio_path=str(italian), language="it"))
    assert isinstance(told[-1], JobDone) and {"tempo", "roma"} <= set(words(told[-1].result.text))


@in_module_loop
async def test_tiny_en_hears_italian_as_english(engines: Engines, italian: Path) -> None:
    """Why Whisper base is the default: tiny.en knows no other language, and writes whatever it
    hears as English."""
    events = await events_of(engines.speech, TranscribeRequest(audio_path=str(italian)), model_id=TINY_EN)
    info, done = events[0], events[-1]
    assert isinstance(info, SpeechInfo) and isinstance(done, JobDone), events
    assert info.language == "en" and done.result.language == "en"


@in_module_loop
async def test_no_duration_recording_is_bounded_in_the_worker(engines: Engines, tmp_path: Path) -> None:
    path = opus_webm(tmp_path / "live.webm", 8.0, live=True)
    events = await events_of(engines.speech, TranscribeRequest(audio_path=str(path), max_seconds=3))
    assert len(events) == 1 and isinstance(events[0], JobFailed)
    assert events[0].code == "audio_too_long" and "3 seconds" in events[0].message


@in_module_loop
async def test_not_audio_fails_in_the_worker_and_it_carries_on(engines: Engines, spoken: Spoken,
                                                               tmp_path: Path) -> None:
    image = tmp_path / "photo.wav"
    image.write_bytes(png_bytes())
    events = await events_of(engines.speech, TranscribeRequest(audio_path=str(image)))
    assert isinstance(events[-1], JobFailed) and events[-1].code == "invalid_audio"
    events = await events_of(engines.speech, TranscribeRequest(audio_path=str(spoken.short)))
    assert isinstance(events[-1], JobDone)


@in_module_loop
async def test_damaged_model_fails_clearly_then_a_good_one_works(engines: Engines, spoken: Spoken) -> None:
    damaged = engines.manager.installed("speech")
    assert DAMAGED in [m.id for m in damaged]
    request = TranscribeRequest(audio_path=str(spoken.short))
    with pytest.raises(AppError) as info:
        await events_of(engines.speech, request, model_id=DAMAGED)
    assert info.value.code == "model_load_failed"
    assert "Whisper model could not be loaded" in info.value.message
    events = await events_of(engines.speech, request)  # the bundled model
    assert isinstance(events[-1], JobDone) and wer(events[-1].result.text, SENTENCES) <= 0.25


@in_module_loop
async def test_folder_without_model_bin(tmp_path: Path) -> None:
    worker = WorkerProcess(WorkerSpec(name="speech", factory="backend.engines.speech:SpeechEngine",
                                      config=SpeechConfig(model_dir=str(tmp_path))))
    with pytest.raises(AppError) as info:
        await worker.start()
    assert info.value.code == "model_load_failed" and "no model.bin" in info.value.message
    assert not worker.alive


@in_module_loop
async def test_damaged_voice_fails_clearly(tmp_path: Path) -> None:
    voice = bundled_voice()
    assert voice is not None
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(voice.read_bytes()[:50_000])
    shutil.copyfile(voice.with_name(voice.name + ".json"), tmp_path / "broken.onnx.json")
    worker = WorkerProcess(WorkerSpec(name="voice", factory="backend.engines.voice:VoiceEngine",
                                      config=VoiceConfig(model_path=str(broken))))
    with pytest.raises(AppError) as info:
        await worker.start()
    assert info.value.code == "model_load_failed" and "could not be loaded" in info.value.message
    lonely = tmp_path / "lonely.onnx"
    shutil.copyfile(broken, lonely)
    worker = WorkerProcess(WorkerSpec(name="voice", factory="backend.engines.voice:VoiceEngine",
                                      config=VoiceConfig(model_path=str(lonely))))
    with pytest.raises(AppError) as info:
        await worker.start()
    assert "side by side" in info.value.message


# --- decode_bounded (in this process) -----------------------------------------------------------

def test_decode_bounded_returns_16k_mono_float(spoken: Spoken) -> None:
    audio = decode_bounded(str(spoken.short), 60)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert audio.size / SAMPLE_RATE == pytest.approx(spoken.short_seconds, abs=0.02)
    assert 0.05 < float(np.abs(audio).max()) <= 1.0


def test_decode_bounded_refuses_a_long_webm_without_duration(tmp_path: Path) -> None:
    path = opus_webm(tmp_path / "live.webm", 6.0, live=True)
    with pytest.raises(AppError) as info:
        decode_bounded(str(path), 2.5)
    assert info.value.code == "audio_too_long" and "2.5 seconds" in info.value.message
    assert decode_bounded(str(path), 7).size == pytest.approx(6 * SAMPLE_RATE, abs=SAMPLE_RATE * 0.05)


def test_decode_bounded_stops_at_the_limit_while_decoding(tmp_path: Path) -> None:
    """A WAV whose sizes say 'streaming' (0xFFFFFFFF) followed by a gigabyte (sparse: no disk
    used) — 9 hours at 16 kHz. Decoding stops at the limit, long before the end."""
    path = tmp_path / "endless.wav"
    with path.open("wb") as fh:
        fh.write(wav_header(SAMPLE_RATE))
        fh.truncate(44 + 1024**3)
    started = time.perf_counter()
    with pytest.raises(AppError):
        decode_bounded(str(path), 10)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("content", [b"", png_bytes(), b"RIFF\x24\x00\x00\x00WAVE" + bytes(200)],
                         ids=["empty", "png", "broken-wav"])
def test_decode_bounded_refuses_what_is_not_audio(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "sound.wav"
    path.write_bytes(content)
    with pytest.raises(AppError) as info:
        decode_bounded(str(path), 60)
    assert info.value.code == "invalid_audio"


def test_decode_bounded_refuses_a_truncated_webm(tmp_path: Path) -> None:
    whole = opus_webm(tmp_path / "whole.webm", 2.0, live=True).read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(whole[:200])
    with pytest.raises(AppError) as info:
        decode_bounded(str(cut), 60)
    assert info.value.code == "invalid_audio"
