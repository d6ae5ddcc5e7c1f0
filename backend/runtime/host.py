"""The one engine host: every engine — language, speech, voice, images — runs through it.

A host owns one engine slot (`Job.CHAT`, `Job.SPEECH`…): at most one worker process, for
the model its last job asked for. A job goes through the same steps whatever the engine:

1. resolve: the model it names, or the active one for the slot's job;
2. wait its turn in the slot's FIFO line (bounded: "busy" beyond it);
3. admit: the residency manager makes room under the memory budget, unloading idle models,
   or refuses with the reason; the worker of another model is stopped first;
4. start the worker (spawned on first use) and stream the job's events to the caller;
5. cancel between steps (`cancel`), or stop the process at once (`kill`);
6. unload: the worker stops and all of its memory goes back to the system, when asked,
   when idle too long, or when a heavier model needs the room.

What differs between engines is declared in an `EngineSpec`: the worker factory, the jobs
it serves, whether it is heavy, and how a model becomes the worker's configuration.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..core.errors import AppError, ErrorCode
from ..core.jobs import Job
from .protocol import Event, JobFailed, Request
from .residency import ResidencyManager, Resident
from .scheduler import FifoGate, PositionCallback
from .worker import WorkerProcess, WorkerSpec

__all__ = ["EngineHost", "EngineJob", "EngineSpec", "HostedModel", "ModelSource"]


class HostedModel(Protocol):
    """What the host needs to know of an installed model."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def job(self) -> str: ...
    @property
    def path(self) -> Path: ...
    @property
    def memory_override(self) -> bool: ...


class Estimate(Protocol):
    @property
    def total(self) -> int: ...


class ModelSource(Protocol):
    """Where the host finds models and their memory needs (the model manager)."""

    def get(self, model_id: str) -> Any: ...
    def active(self, job: str) -> Any: ...
    def check_fit(self, record: Any, n_ctx: int | None = None) -> Estimate: ...


@dataclass(kw_only=True, slots=True)
class EngineSpec:
    slot: Job
    """The residency slot and the name of the queue; also the worker's name in messages."""
    factory: str
    """`module:Class` of the engine, built in the worker with the configuration."""
    configure: Callable[[Any, int], Any]
    """The worker's configuration for a model, given the memory estimate's total in bytes."""
    jobs: Sequence[Job] = ()
    """The model jobs it runs; the slot's own job when empty."""
    heavy: bool = False
    """A heavy model (language, image) makes other heavy ones unload first when memory is short."""
    context: Callable[[Any], int | None] = lambda _model: None
    """The context a language model is loaded with: a different one needs a new worker."""
    stall_timeout_s: float = 300.0

    @property
    def served(self) -> tuple[Job, ...]:
        return tuple(self.jobs) or (self.slot,)


@dataclass(kw_only=True, slots=True)
class EngineJob:
    """One request's handle: its id, and a cancel that works whether it waits or runs."""

    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    cancelled: bool = False
    unloaded: list[str] = field(default_factory=list)
    """Slots unloaded to make room for the model this job loaded ("images"…)."""


class EngineHost:
    def __init__(self, spec: EngineSpec, models: ModelSource, residency: ResidencyManager, *,
                 queue_limit: int) -> None:
        self.spec = spec
        self.models = models
        self.residency = residency
        self.gate = FifoGate(spec.slot.value, queue_limit)
        self._worker: WorkerProcess | None = None
        self._loaded: Any = None
        self._loaded_key: tuple[Any, ...] | None = None
        self._running: dict[str, EngineJob] = {}

    @property
    def slot(self) -> Job:
        return self.spec.slot

    @property
    def model(self) -> Any:
        """The model jobs run on: the loaded one while a job runs, else the active one."""
        if self._running and self._loaded is not None:
            return self._loaded
        return self.models.active(self.spec.served[0])

    @property
    def loaded(self) -> Any:
        return self._loaded if self._worker is not None and self._worker.alive else None

    @property
    def loaded_info(self) -> dict[str, Any]:
        return self._worker.info if self._worker is not None and self._worker.alive else {}

    @property
    def worker_pid(self) -> int | None:
        return self._worker.pid if self._worker is not None else None

    def resolve(self, model_id: str | None) -> Any:
        """The model a job names (it must be one this engine runs), else the active one."""
        if model_id:
            model = self.models.get(model_id)
            if model is None or model.job not in self.spec.served:
                raise AppError(ErrorCode.MODEL_NOT_FOUND, self._unknown(model_id))
            return model
        model = self.model
        if model is None:
            raise AppError(ErrorCode.MODEL_NOT_FOUND, f"no {self.spec.served[0].value} model is installed")
        return model

    def _unknown(self, model_id: str) -> str:
        if self.spec.slot is Job.CHAT:
            return f"the model '{model_id}' does not exist; GET /v1/models lists them"
        return f"there is no {self.spec.slot.value} model '{model_id}'"

    async def _load(self, model: HostedModel, job: EngineJob | None) -> WorkerProcess:
        """The worker for `model`, replacing the loaded one; refuses what does not fit."""
        n_ctx = self.spec.context(model)
        key = (model.id, model.path, n_ctx)
        if self._worker is not None and self._loaded_key == key:
            return self._worker
        estimate = self.models.check_fit(model, n_ctx).total
        resident = Resident(name=self.spec.slot.value, model=model.id, heavy=self.spec.heavy, estimate=estimate,
                            unload=self.unload, pid=lambda: self.worker_pid)
        unloaded = await self.residency.admit(self.spec.slot.value, model.name, estimate, heavy=self.spec.heavy,
                                              override=model.memory_override, resident=resident)
        if job is not None:
            job.unloaded = unloaded
        await self._stop_worker()
        self._worker = WorkerProcess(WorkerSpec(name=self.spec.slot.value, factory=self.spec.factory,
                                                config=self.spec.configure(model, estimate),
                                                stall_timeout_s=self.spec.stall_timeout_s))
        self._loaded, self._loaded_key = model, key
        return self._worker

    async def warm(self, model_id: str | None = None) -> None:
        """Load the model now (before the first request needs it)."""
        async with self.gate.turn():
            worker = await self._load(self.resolve(model_id), None)
            await worker.start()

    async def stream(self, request: Request, job: EngineJob, *, model_id: str | None = None,
                     on_position: PositionCallback | None = None) -> AsyncGenerator[Event, None]:
        """Wait for the engine in FIFO order, then yield the job's events (ending in JobDone or
        JobFailed). A job cancelled while it waited ends as cancelled without starting."""
        model = self.resolve(model_id)
        async with self.gate.turn(on_position):
            worker = None if job.cancelled else await self._load(model, job)
            if worker is None or job.cancelled:  # cancelled while it waited, or while its model loaded
                yield JobFailed(job_id=job.id, code=ErrorCode.CANCELLED, message="cancelled before it started")
                return
            self._running[job.id] = job
            try:
                with self.residency.in_use(self.spec.slot.value):
                    async for event in worker.run(request, job.id):
                        yield event
            finally:
                self._running.pop(job.id, None)

    def cancel(self, job: EngineJob) -> None:
        """Ask the engine to stop the job between steps (or not to start it)."""
        job.cancelled = True
        if job.id in self._running and self._worker is not None:
            self._worker.cancel(job.id)

    def kill(self) -> None:
        """Stop the worker process at once (an engine that cannot stop by itself); its running
        job ends as cancelled and the next one starts a fresh process."""
        if self._worker is not None:
            self._worker.kill_jobs()

    async def unload(self) -> None:
        """Stop the worker: all of the model's memory goes back to the system."""
        self.residency.forget(self.spec.slot.value)
        await self._stop_worker()

    async def _stop_worker(self) -> None:
        worker, self._worker, self._loaded, self._loaded_key = self._worker, None, None, None
        if worker is not None:
            await worker.stop()

    async def close(self) -> None:
        await self.unload()
