"""Speech and voice engines: small sidecar models, loaded on demand within the memory budget
by their engine hosts (see `backend.runtime.host`), which the residency manager unloads when
idle or when a heavy model needs the room.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

from ..core.config import Settings
from ..core.errors import AppError, ErrorCode
from ..core.jobs import Job
from ..engines.speech import SpeechConfig, TranscribeRequest, TranscribeResult
from ..engines.voice import AudioChunk, SpeakRequest, VoiceConfig
from ..models.manager import ModelManager
from ..models.registry import ModelRecord
from ..remote.routing import RoutedEngines
from ..remote.service import RemoteEngines, is_remote, relay
from ..runtime.host import EngineHost, EngineJob, EngineSpec
from ..runtime.protocol import Event, JobDone, JobFailed
from ..runtime.residency import ResidencyManager

__all__ = ["SpeechEngines", "is_multilingual", "speaks_languages", "speech_engine", "spoken", "voice_engine"]

ENGLISH_ONLY_VOCABULARY = 51864
"""Whisper's English-only models have this many tokens; the multilingual ones have more."""


@functools.cache
def is_multilingual(model_dir: Path) -> bool:
    """Whether a Whisper model (CTranslate2 folder) understands languages other than English."""
    vocabulary = model_dir / "vocabulary.txt"
    try:
        if vocabulary.is_file():
            with vocabulary.open("rb") as fh:
                return sum(1 for _ in fh) > ENGLISH_ONLY_VOCABULARY
        tokenizer = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
        size = len(tokenizer["model"]["vocab"]) + len(tokenizer.get("added_tokens", []))
        return size > ENGLISH_ONLY_VOCABULARY
    except (OSError, ValueError, KeyError, TypeError):
        return not model_dir.name.endswith((".en", "-en", "_en"))


def speaks_languages(model: ModelRecord) -> bool:
    """Whether a speech model understands more than English: a server's unless its name says English
    only (`….en`), this device's from its vocabulary."""
    if is_remote(model):
        return not str(model.info.get("remote_model", "")).lower().endswith((".en", "-en", "_en"))
    return is_multilingual(model.path)


def speech_engine(settings: Settings, manager: ModelManager, residency: ResidencyManager) -> EngineHost:
    spec = EngineSpec(slot=Job.SPEECH, factory="backend.engines.speech:SpeechEngine",
                      configure=lambda m, _estimate: SpeechConfig(model_dir=str(m.path),
                                                                  n_threads=settings.inference_threads),
                      stall_timeout_s=settings.engine_stall_s)
    return EngineHost(spec, manager, residency, queue_limit=settings.queue_limit)


class SpeechEngines(RoutedEngines):
    """The speech models: a server's speech model when one is marked for dictation and its server is not
    known to be down (a large multilingual Whisper on a laptop), else this device's, which also takes
    over a recording when the server cannot be reached."""

    def __init__(self, local: EngineHost, remote: RemoteEngines) -> None:
        super().__init__(local, remote, Job.SPEECH)

    async def stream(self, request: TranscribeRequest, job: EngineJob, *, model_id: str | None = None
                     ) -> AsyncGenerator[Event, None]:
        remote = self._remote(model_id)
        if remote is None:
            async for event in self._here(request, job, model_id):
                yield event
            return
        gone = False
        async with contextlib.aclosing(relay(self.remote.transcribe(remote, request, job), job, self._running,
                                             TranscribeResult(finish_reason="cancelled"))) as events:
            async for event in events:
                if isinstance(event, JobFailed) and model_id is None and event.code == ErrorCode.REMOTE_UNAVAILABLE \
                        and self.local.model is not None:
                    gone = True  # the server went away: this device's model transcribes it rather than lose it
                    break
                yield event
        if gone:
            async for event in self._here(request, job, None):
                yield event


def voice_engine(settings: Settings, manager: ModelManager, residency: ResidencyManager) -> EngineHost:
    spec = EngineSpec(slot=Job.VOICE, factory="backend.engines.voice:VoiceEngine",
                      configure=lambda m, _estimate: VoiceConfig(model_path=str(m.path),
                                                                 n_threads=settings.inference_threads),
                      stall_timeout_s=settings.engine_stall_s)
    return EngineHost(spec, manager, residency, queue_limit=settings.queue_limit)


async def spoken(voice: EngineHost, request: SpeakRequest, *, model_id: str | None = None) \
        -> tuple[int, AsyncIterator[bytes]]:
    """The sample rate and the PCM of each spoken piece as it is ready. It waits for the first
    piece, so that a failure to start (no voice, bad text, no memory) is raised here, while an
    HTTP answer can still say so; a failure later is raised by the iterator."""
    events = voice.stream(request, EngineJob(), model_id=model_id)
    first: AudioChunk | None = None
    async for event in events:
        if isinstance(event, JobFailed):
            raise AppError(event.code, event.message)
        if isinstance(event, AudioChunk | JobDone):
            first = event if isinstance(event, AudioChunk) else None
            break
    if first is None:
        raise AppError(ErrorCode.NOTHING_TO_SAY, "there was nothing to say in the input")

    async def pcm(opening: AudioChunk) -> AsyncIterator[bytes]:
        yield opening.pcm
        async for event in events:
            if isinstance(event, AudioChunk):
                yield event.pcm
            elif isinstance(event, JobFailed):
                raise AppError(event.code, event.message)
    return first.sample_rate, pcm(first)
