from __future__ import annotations

import asyncio

import pytest

from backend.core.errors import AppError
from backend.runtime.scheduler import FifoGate


async def test_fifo_order_and_positions() -> None:
    gate = FifoGate("test", limit=10)
    order: list[str] = []
    positions: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    release = asyncio.Event()

    async def job(name: str) -> None:
        async with gate.turn(positions[name].append):
            order.append(name)
            await release.wait()

    tasks = [asyncio.create_task(job(n)) for n in "abc"]
    await asyncio.sleep(0.01)
    assert gate.busy and gate.waiting == 2
    assert positions["a"] == [0]
    assert positions["b"][-1] == 1 and positions["c"][-1] == 2
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["a", "b", "c"]
    assert positions["c"][-2:] == [1, 0]  # moved up, then ran
    assert not gate.busy


async def test_full_line_is_busy() -> None:
    gate = FifoGate("test", limit=1)
    hold = asyncio.Event()

    async def holder() -> None:
        async with gate.turn():
            await hold.wait()

    first = asyncio.create_task(holder())
    second = asyncio.create_task(holder())
    await asyncio.sleep(0.01)
    with pytest.raises(AppError) as info:
        async with gate.turn():
            pass
    assert info.value.code == "busy" and info.value.retry_after > 0
    hold.set()
    await asyncio.gather(first, second)


async def test_waiter_that_gives_up_leaves_the_line() -> None:
    gate = FifoGate("test", limit=5)
    hold = asyncio.Event()
    ran: list[str] = []

    async def job(name: str) -> None:
        async with gate.turn():
            ran.append(name)
            await hold.wait()

    a = asyncio.create_task(job("a"))
    b = asyncio.create_task(job("b"))
    c = asyncio.create_task(job("c"))
    await asyncio.sleep(0.01)
    b.cancel()
    await asyncio.sleep(0.01)
    assert gate.waiting == 1
    hold.set()
    await asyncio.gather(a, c)
    assert ran == ["a", "c"]
    assert not gate.busy
