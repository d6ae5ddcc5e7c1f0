"""The engine host with a real worker process running the echo engine: resolve, queue, admit,
replace, cancel, unload and the stall watchdog, as every engine goes through them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from backend.core.errors import AppError, ErrorCode
from backend.core.jobs import Job
from backend.runtime.host import EngineHost, EngineJob, EngineSpec
from backend.runtime.protocol import Event, JobDone, JobFailed
from backend.runtime.residency import MemoryBudget, MemoryRefused, ResidencyManager

from .echo_engine import Count, Counted, Hang, Tick

FACTORY = "tests.backend.runtime.echo_engine:EchoEngine"
MB = 1_000_000


@dataclass(frozen=True)
class Model:
    id: str
    job: str = "speech"
    size: int = 10 * MB
    memory_override: bool = False

    @property
    def name(self) -> str:
        return self.id.title()

    @property
    def path(self) -> Path:
        return Path("/models") / self.id


@dataclass
class Estimate:
    total: int


@dataclass
class Models:
    """The host's view of the model manager: a few records and a memory estimate each."""

    records: dict[str, Model] = field(default_factory=dict)
    active_id: str | None = None

    def get(self, model_id: str) -> Model | None:
        return self.records.get(model_id)

    def active(self, job: str) -> Model | None:
        return self.records.get(self.active_id or "")

    def check_fit(self, record: Model, n_ctx: int | None = None) -> Estimate:
        return Estimate(record.size)


@pytest.fixture
async def setup() -> AsyncIterator[tuple[EngineHost, Models, ResidencyManager]]:
    models = Models({m.id: m for m in (Model("small"), Model("other"), Model("huge", size=10_000 * MB),
                                       Model("voice-one", job="voice"))}, active_id="small")
    residency = ResidencyManager(MemoryBudget(fixed_bytes=1000 * MB))
    configured: list[tuple[str, int]] = []

    def configure(model: Model, estimate: int) -> dict[str, Any]:
        configured.append((model.id, estimate))
        return {}

    spec = EngineSpec(slot=Job.SPEECH, factory=FACTORY, configure=configure, stall_timeout_s=1.0)
    host = EngineHost(spec, models, residency, queue_limit=1)
    yield host, models, residency
    await host.close()


async def run(host: EngineHost, request: Any, job: EngineJob | None = None,
              model_id: str | None = None) -> list[Event]:
    return [event async for event in host.stream(request, job or EngineJob(), model_id=model_id)]


async def test_a_job_runs_on_the_active_model_and_stays_resident(setup: Any) -> None:
    host, _, residency = setup
    events = await run(host, Count(n=3))
    assert [e.i for e in events if isinstance(e, Tick)] == [0, 1, 2]
    assert isinstance(events[-1], JobDone) and events[-1].result == Counted(finish_reason="stop", count=3)
    assert host.loaded is not None and host.loaded.id == "small"
    resident = residency.get("speech")
    assert resident is not None and resident.model == "small" and resident.estimate == 10 * MB and not resident.busy


async def test_another_model_replaces_the_worker(setup: Any) -> None:
    host, _, residency = setup
    await run(host, Count(n=1))
    first_pid = host.worker_pid
    await run(host, Count(n=1), model_id="other")
    assert host.loaded.id == "other" and host.worker_pid != first_pid
    assert residency.get("speech").model == "other"


async def test_models_are_resolved_by_id_and_job(setup: Any) -> None:
    host, models, _ = setup
    with pytest.raises(AppError) as unknown:
        host.resolve("nope")
    with pytest.raises(AppError) as wrong_job:
        host.resolve("voice-one")
    assert unknown.value.code == wrong_job.value.code == ErrorCode.MODEL_NOT_FOUND
    assert unknown.value.status == 404 and "no speech model 'nope'" in unknown.value.message
    models.active_id = None
    with pytest.raises(AppError, match="no speech model is installed"):
        host.resolve(None)


async def test_a_model_over_the_budget_is_refused_before_any_worker_starts(setup: Any) -> None:
    host, _, residency = setup
    with pytest.raises(MemoryRefused) as refused:
        await run(host, Count(n=1), model_id="huge")
    assert refused.value.code == ErrorCode.INSUFFICIENT_MEMORY and refused.value.status == 503
    assert host.loaded is None and residency.get("speech") is None


async def test_a_full_line_answers_busy_and_a_job_cancelled_while_waiting_never_runs(setup: Any) -> None:
    host, _, _ = setup
    running = EngineJob()
    first = asyncio.create_task(run(host, Count(n=200, delay_s=0.01), running))
    while not host.gate.busy:
        await asyncio.sleep(0.01)
    waiting = EngineJob()
    second = asyncio.create_task(run(host, Count(n=5), waiting))
    while host.gate.waiting < 1:
        await asyncio.sleep(0.01)
    with pytest.raises(AppError) as busy:  # the line holds one
        await run(host, Count(n=1))
    assert busy.value.code == ErrorCode.BUSY and busy.value.status == 503 and busy.value.retry_after == 5
    host.cancel(waiting)
    host.cancel(running)
    ran, never = await asyncio.gather(first, second)
    assert isinstance(ran[-1], JobDone) and ran[-1].result.finish_reason == "cancelled"
    assert [type(e) for e in never] == [JobFailed] and never[0].code == ErrorCode.CANCELLED


async def test_unloading_stops_the_worker_and_frees_the_slot(setup: Any) -> None:
    host, _, residency = setup
    await run(host, Count(n=1))
    pid = host.worker_pid
    assert await residency.unload("speech") is True
    assert host.loaded is None and host.worker_pid is None and residency.get("speech") is None
    events = await run(host, Count(n=1))
    assert isinstance(events[-1], JobDone) and host.worker_pid != pid


async def test_a_stalled_job_is_ended_so_the_line_moves_on(setup: Any) -> None:
    host, _, _ = setup
    stuck = asyncio.create_task(run(host, Hang()))
    while not host.gate.busy:
        await asyncio.sleep(0.01)
    behind = asyncio.create_task(run(host, Count(n=2)))
    stalled, after = await asyncio.wait_for(asyncio.gather(stuck, behind), 30)
    assert isinstance(stalled[-1], JobFailed) and stalled[-1].code == ErrorCode.ENGINE_STALLED
    assert isinstance(after[-1], JobDone) and after[-1].result.count == 2
