from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from backend.core.errors import AppError
from backend.runtime.protocol import JobDone, JobFailed
from backend.runtime.worker import WorkerProcess, WorkerSpec

from .echo_engine import Count, Counted, Crash, Fail, Hang, Tick

FACTORY = "tests.backend.runtime.echo_engine:EchoEngine"


@pytest.fixture
async def worker() -> AsyncIterator[WorkerProcess]:
    w = WorkerProcess(WorkerSpec(name="echo", factory=FACTORY, config={}))
    yield w
    await w.stop()


async def drain(worker: WorkerProcess, request: object, job_id: str | None = None) -> list[object]:
    return [event async for event in worker.run(request, job_id)]  # type: ignore[arg-type]


async def test_events_arrive_in_order_and_end_with_done(worker: WorkerProcess) -> None:
    events = await drain(worker, Count(n=5))
    assert [e.i for e in events if isinstance(e, Tick)] == [0, 1, 2, 3, 4]
    assert isinstance(events[-1], JobDone) and events[-1].result == Counted(finish_reason="stop", count=5)
    assert worker.alive and worker.info["pid"] == worker.pid


async def test_engine_error_is_reported_and_worker_survives(worker: WorkerProcess) -> None:
    events = await drain(worker, Fail())
    assert isinstance(events[-1], JobFailed) and events[-1].code == "bad_request"
    pid = worker.pid
    assert isinstance((await drain(worker, Count(n=1)))[-1], JobDone)
    assert worker.pid == pid


async def test_cancel_between_steps(worker: WorkerProcess) -> None:
    seen: list[object] = []
    async for event in worker.run(Count(n=10_000, delay_s=0.001), "job-1"):
        seen.append(event)
        if len(seen) == 3:
            worker.cancel("job-1")
    done = seen[-1]
    assert isinstance(done, JobDone) and done.result.finish_reason == "cancelled"
    assert 3 <= done.result.count < 10_000


async def test_crash_fails_the_job_clearly_and_next_job_restarts(worker: WorkerProcess) -> None:
    await worker.start()
    first_pid = worker.pid
    events = await drain(worker, Crash(after=2))
    assert [e.i for e in events if isinstance(e, Tick)] == [0, 1]
    failed = events[-1]
    assert isinstance(failed, JobFailed) and failed.code == "worker_crashed"
    assert "exit code 3" in failed.message
    assert isinstance((await drain(worker, Count(n=2)))[-1], JobDone)
    assert worker.pid != first_pid


async def test_hard_kill_ends_running_job_as_cancelled(worker: WorkerProcess) -> None:
    async def kill_soon() -> None:
        await asyncio.sleep(0.3)
        worker.kill_jobs()

    killer = asyncio.create_task(kill_soon())
    events = await drain(worker, Count(n=100_000, delay_s=0.01))
    await killer
    assert isinstance(events[-1], JobFailed) and events[-1].code == "cancelled"
    assert isinstance((await drain(worker, Count(n=1)))[-1], JobDone)


async def test_start_failure_is_a_clear_error() -> None:
    w = WorkerProcess(WorkerSpec(name="echo", factory=FACTORY, config={"refuse": True}))
    with pytest.raises(AppError) as info:
        await w.start()
    assert info.value.code == "model_load_failed" and "on purpose" in info.value.message
    assert not w.alive


async def test_unknown_factory_fails_to_start() -> None:
    w = WorkerProcess(WorkerSpec(name="echo", factory="tests.nowhere:Nothing", config={}))
    with pytest.raises(AppError, match="ModuleNotFoundError"):
        await w.start()


async def test_cancel_while_the_engine_is_starting_is_not_lost(worker: WorkerProcess) -> None:
    assert not worker.alive
    worker.cancel("early")
    events = await drain(worker, Count(n=100_000, delay_s=0.01), "early")
    done = events[-1]
    assert isinstance(done, JobDone) and done.result.finish_reason == "cancelled"
    assert done.result.count == 0


async def test_a_reader_that_goes_away_cancels_the_job(worker: WorkerProcess) -> None:
    events = worker.run(Count(n=100_000, delay_s=0.01))
    for _ in range(3):
        assert isinstance(await anext(events), Tick)
    await events.aclose()  # type: ignore[attr-defined]
    # the abandoned job would take 1000 s; the next one only runs this soon if it was stopped
    finished = await asyncio.wait_for(drain(worker, Count(n=1)), 10)
    assert isinstance(finished[-1], JobDone)


async def test_a_job_that_stops_responding_is_ended_and_the_next_one_runs() -> None:
    w = WorkerProcess(WorkerSpec(name="echo", factory=FACTORY, config={}, stall_timeout_s=1.0))
    try:
        events = await asyncio.wait_for(drain(w, Hang()), 30)
        assert isinstance(events[0], Tick)
        stalled = events[-1]
        assert isinstance(stalled, JobFailed) and stalled.code == "engine_stalled"
        assert "stopped responding for 1 s" in stalled.message
        assert not w.alive
        assert isinstance((await drain(w, Count(n=2)))[-1], JobDone)
    finally:
        await w.stop()
