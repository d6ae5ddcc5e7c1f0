"""Speech and voice engines: small sidecar models, loaded on demand within the memory budget.

Each host keeps at most one worker process (for the model active for its job), starts
it on first use, replaces it when another model is asked for, and lets the residency
manager unload it when idle or when a heavy model needs the room.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import Any

from ..config import Settings
from ..engines.speech import SpeechConfig
from ..engines.voice import AudioChunk, SpeakRequest, VoiceConfig
from ..models.manager import ModelManager
from ..models.registry import ModelRecord
from ..runtime.child import EngineError
from ..runtime.protocol import Event, JobDone, JobFailed, Request
from ..runtime.residency import ResidencyManager, Resident
from ..runtime.scheduler import FifoGate, PositionCallback
from ..runtime.worker import WorkerProcess, WorkerSpec

__all__ = ["NOTHING_TO_SAY", "SidecarHost", "is_multilingual", "speech_host", "spoken", "voice_host"]

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


class NoModel(EngineError):
    def __init__(self, message: str) -> None:
        super().__init__("model_not_found", message)


class SidecarHost:
    def __init__(self, job: str, factory: str, make_config: Callable[[ModelRecord], Any], manager: ModelManager,
                 residency: ResidencyManager, queue_limit: int, *, heavy: bool = False) -> None:
        self.job = job
        self.heavy = heavy
        """A heavy model (language, image) makes other heavy ones unload first when memory is short."""
        self.evicted: list[str] = []
        """What the last load unloaded to make room (slot names: "chat", "speech"…)."""
        self.factory = factory
        self.make_config = make_config
        self.manager = manager
        self.residency = residency
        self.gate = FifoGate(job, queue_limit)
        self._worker: WorkerProcess | None = None
        self._loaded: ModelRecord | None = None

    @property
    def model(self) -> ModelRecord | None:
        return self.manager.active(self.job)

    @property
    def loaded(self) -> ModelRecord | None:
        return self._loaded if self._worker is not None and self._worker.alive else None

    def resolve(self, model_id: str | None) -> ModelRecord:
        if model_id:
            model = self.manager.get(model_id)
            if model is None or model.job != self.job:
                raise NoModel(f"there is no {self.job} model '{model_id}'")
            return model
        model = self.model
        if model is None:
            raise NoModel(f"no {self.job} model is installed")
        return model

    async def _load(self, model: ModelRecord) -> WorkerProcess:
        self.evicted = []  # a model already loaded unloads nothing
        if self._worker is not None and self._loaded is not None and self._loaded.id == model.id \
                and self._loaded.path == model.path:
            return self._worker
        estimate = self.manager.check_fit(model)
        resident = Resident(name=self.job, model=model.id, heavy=self.heavy, estimate=estimate.total,
                            unload=self.unload, pid=lambda: self._worker.pid if self._worker is not None else None)
        self.evicted = await self.residency.admit(self.job, model.name, estimate.total, heavy=self.heavy,
                                                  override=model.memory_override, resident=resident)
        await self._stop_worker()
        self._worker = WorkerProcess(WorkerSpec(name=self.job, factory=self.factory, config=self.make_config(model)))
        self._loaded = model
        return self._worker

    async def warm(self, model_id: str | None = None) -> None:
        """Load the model now (before the first request needs it)."""
        async with self.gate.turn():
            worker = await self._load(self.resolve(model_id))
            await worker.start()

    async def stream(self, request: Request, job_id: str, *, model_id: str | None = None,
                     on_position: PositionCallback | None = None) -> AsyncGenerator[Event, None]:
        """Wait for the engine in FIFO order, then yield the job's events (ending in Done/Failed)."""
        model = self.resolve(model_id)
        async with self.gate.turn(on_position):
            worker = await self._load(model)
            with self.residency.in_use(self.job):
                async for event in worker.run(request, job_id):
                    yield event

    def cancel(self, job_id: str) -> None:
        if self._worker is not None:
            self._worker.cancel(job_id)

    def kill(self) -> None:
        """Stop the worker process at once (an engine that cannot stop by itself); its running
        job ends as cancelled and the next one starts a fresh process."""
        if self._worker is not None:
            self._worker.kill_jobs()

    async def unload(self) -> None:
        self.residency.forget(self.job)
        await self._stop_worker()

    async def _stop_worker(self) -> None:
        worker, self._worker, self._loaded = self._worker, None, None
        if worker is not None:
            await worker.stop()

    async def close(self) -> None:
        await self.unload()


def speech_host(settings: Settings, manager: ModelManager, residency: ResidencyManager) -> SidecarHost:
    return SidecarHost("speech", "backend.engines.speech:SpeechEngine",
                       lambda m: SpeechConfig(model_dir=str(m.path), n_threads=settings.inference_threads),
                       manager, residency, settings.queue_limit)


def voice_host(settings: Settings, manager: ModelManager, residency: ResidencyManager) -> SidecarHost:
    return SidecarHost("voice", "backend.engines.voice:VoiceEngine",
                       lambda m: VoiceConfig(model_path=str(m.path), n_threads=settings.inference_threads),
                       manager, residency, settings.queue_limit)


NOTHING_TO_SAY = "nothing_to_say"


async def spoken(voice: SidecarHost, request: SpeakRequest, *, model_id: str | None = None) \
        -> tuple[int, AsyncIterator[bytes]]:
    """The sample rate and the PCM of each spoken piece as it is ready. It waits for the first
    piece, so that a failure to start (no voice, bad text, no memory) is raised here, while an
    HTTP answer can still say so; a failure later is raised by the iterator."""
    events = voice.stream(request, uuid.uuid4().hex, model_id=model_id)
    first: AudioChunk | None = None
    async for event in events:
        if isinstance(event, JobFailed):
            raise EngineError(event.code, event.message)
        if isinstance(event, AudioChunk | JobDone):
            first = event if isinstance(event, AudioChunk) else None
            break
    if first is None:
        raise EngineError(NOTHING_TO_SAY, "there was nothing to say in the input")

    async def pcm(opening: AudioChunk) -> AsyncIterator[bytes]:
        yield opening.pcm
        async for event in events:
            if isinstance(event, AudioChunk):
                yield event.pcm
            elif isinstance(event, JobFailed):
                raise EngineError(event.code, event.message)
    return first.sample_rate, pcm(first)
