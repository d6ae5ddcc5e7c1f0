"""Residency under one memory budget, with fake residents that only record their unloads."""

from __future__ import annotations

import os
import time

import pytest

from backend.core.errors import ErrorCode
from backend.runtime.residency import MemoryBudget, MemoryRefused, ResidencyManager, Resident

MB = 1_000_000


@pytest.fixture(autouse=True)
def plenty_available(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's free memory is not what these tests are about."""
    monkeypatch.setattr(MemoryBudget, "available", staticmethod(lambda: 64_000 * MB))


class Fleet:
    def __init__(self, budget_mb: int, idle_unload_s: float = 600.0) -> None:
        self.residency = ResidencyManager(MemoryBudget(fixed_bytes=budget_mb * MB), idle_unload_s=idle_unload_s)
        self.unloaded: list[str] = []

    def add(self, name: str, estimate_mb: int, *, heavy: bool, last_used: float | None = None) -> Resident:
        async def unload() -> None:
            self.unloaded.append(name)

        resident = Resident(name=name, model=f"{name}-model", heavy=heavy, estimate=estimate_mb * MB, unload=unload)
        if last_used is not None:
            resident.last_used = last_used
        self.residency.register(resident)
        return resident

    @property
    def names(self) -> list[str]:
        return sorted(r.name for r in self.residency.residents)


async def test_admit_within_the_budget_evicts_nothing() -> None:
    fleet = Fleet(1000)
    fleet.add("speech", 100, heavy=False)
    fleet.add("voice", 100, heavy=False)
    assert await fleet.residency.admit("chat", "qwen", 700 * MB, heavy=True) == []
    assert fleet.unloaded == [] and fleet.names == ["speech", "voice"]
    assert fleet.residency.last_evictions == []


async def test_a_heavy_model_evicts_the_least_recently_used_heavy_one_first() -> None:
    fleet = Fleet(1000)
    now = time.monotonic()
    fleet.add("images", 400, heavy=True, last_used=now - 50)
    fleet.add("chat", 400, heavy=True, last_used=now - 10)
    fleet.add("speech", 100, heavy=False, last_used=now - 500)
    evicted = await fleet.residency.admit("vision", "smolvlm", 300 * MB, heavy=True)
    assert evicted == ["images"] and fleet.unloaded == ["images"]
    assert fleet.names == ["chat", "speech"], "the sidecar stays though it is older"
    assert fleet.residency.last_evictions == ["images"]


async def test_sidecars_go_only_when_the_heavy_ones_are_not_enough() -> None:
    fleet = Fleet(1000)
    now = time.monotonic()
    fleet.add("speech", 200, heavy=False, last_used=now - 100)
    fleet.add("voice", 200, heavy=False, last_used=now - 1)
    fleet.add("images", 400, heavy=True, last_used=now)
    evicted = await fleet.residency.admit("chat", "qwen", 650 * MB, heavy=True)
    assert evicted == ["images", "speech"], "heavy first, then the least recently used sidecar"
    assert fleet.names == ["voice"]


async def test_a_sidecar_evicts_sidecars_before_heavy_ones() -> None:
    fleet = Fleet(1000)
    now = time.monotonic()
    fleet.add("chat", 500, heavy=True, last_used=now - 100)
    fleet.add("voice", 400, heavy=False, last_used=now)
    assert await fleet.residency.admit("speech", "whisper", 200 * MB, heavy=False) == ["voice"]
    assert fleet.names == ["chat"]


async def test_reloading_a_slot_does_not_count_what_it_holds() -> None:
    fleet = Fleet(1000)
    fleet.add("chat", 800, heavy=True)
    assert await fleet.residency.admit("chat", "bigger", 900 * MB, heavy=True) == []
    assert fleet.unloaded == []


async def test_busy_residents_are_never_evicted() -> None:
    fleet = Fleet(1000)
    now = time.monotonic()
    fleet.add("images", 600, heavy=True, last_used=now - 1000)
    fleet.add("speech", 100, heavy=False, last_used=now - 10)
    with fleet.residency.in_use("images"):
        assert fleet.residency.get("images").busy == 1  # type: ignore[union-attr]
        with pytest.raises(MemoryRefused) as caught:
            await fleet.residency.admit("chat", "qwen", 500 * MB, heavy=True)
        assert await fleet.residency.unload("images") is False
    assert "images-model" in str(caught.value) and "Try again" in str(caught.value)
    assert caught.value.code == ErrorCode.INSUFFICIENT_MEMORY and caught.value.needed == 500 * MB
    assert "images" in fleet.names and "images" not in fleet.unloaded
    assert fleet.residency.get("images").busy == 0  # type: ignore[union-attr]
    assert await fleet.residency.admit("chat", "qwen", 500 * MB, heavy=True) == ["images"]


async def test_in_use_marks_the_resident_as_just_used() -> None:
    fleet = Fleet(1000)
    resident = fleet.add("chat", 100, heavy=True, last_used=time.monotonic() - 1000)
    with fleet.residency.in_use("chat"):
        pass
    assert time.monotonic() - resident.last_used < 5
    with fleet.residency.in_use("absent"):
        pass  # a slot with nothing loaded is no error
    assert resident.busy == 0


async def test_more_than_the_whole_budget_is_refused_unless_overridden() -> None:
    fleet = Fleet(1000)
    fleet.add("speech", 100, heavy=False)
    with pytest.raises(MemoryRefused) as caught:
        await fleet.residency.admit("chat", "huge", 1001 * MB, heavy=True)
    assert caught.value.needed == 1001 * MB and caught.value.budget == 1000 * MB
    assert "memory budget" in caught.value.message and fleet.unloaded == []
    evicted = await fleet.residency.admit("chat", "huge", 1001 * MB, heavy=True, override=True)
    assert evicted == ["speech"], "with the override, everything idle still makes room"


async def test_what_the_device_has_free_right_now(monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = Fleet(1000)
    fleet.add("chat", 300, heavy=True)
    monkeypatch.setattr(MemoryBudget, "available", staticmethod(lambda: 200 * MB))
    with pytest.raises(MemoryRefused, match="free right now"):
        await fleet.residency.admit("images", "sd", 400 * MB, heavy=True)
    assert await fleet.residency.admit("chat", "other", 400 * MB, heavy=True) == [], \
        "the chat slot's own 300 MB come back when it is replaced"
    assert await fleet.residency.admit("images", "sd", 600 * MB, heavy=True, override=True) == []


async def test_unload_idle_only_takes_the_long_idle() -> None:
    fleet = Fleet(1000, idle_unload_s=60)
    now = time.monotonic()
    fleet.add("chat", 100, heavy=True, last_used=now - 120)
    fleet.add("speech", 100, heavy=False, last_used=now - 5)
    fleet.add("images", 100, heavy=True, last_used=now - 3600)
    with fleet.residency.in_use("images"):
        assert await fleet.residency.unload_idle() == ["chat"]
    assert fleet.unloaded == ["chat"] and fleet.names == ["images", "speech"]


async def test_unload_idle_with_zero_keeps_everything() -> None:
    fleet = Fleet(1000, idle_unload_s=0)
    fleet.add("chat", 100, heavy=True, last_used=time.monotonic() - 10**6)
    assert await fleet.residency.unload_idle() == []
    assert fleet.unloaded == [] and fleet.names == ["chat"]


async def test_unload_on_request_and_a_failing_unload() -> None:
    fleet = Fleet(1000)
    fleet.add("chat", 100, heavy=True)

    async def broken() -> None:
        raise RuntimeError("engine stuck")

    fleet.residency.register(Resident(name="images", model="sd", heavy=True, estimate=100 * MB, unload=broken))
    assert await fleet.residency.unload("chat") is True and fleet.unloaded == ["chat"]
    assert await fleet.residency.unload("chat") is False
    assert await fleet.residency.unload("images") is True, "a failing engine is still forgotten"
    assert fleet.residency.residents == []


async def test_snapshot_lists_the_residents() -> None:
    fleet = Fleet(1000)
    fleet.add("chat", 300, heavy=True, last_used=time.monotonic() - 30)
    fleet.add("voice", 50, heavy=False)
    with fleet.residency.in_use("voice"):
        rows = {row["name"]: row for row in fleet.residency.snapshot()}
    assert set(rows) == {"chat", "voice"}
    assert rows["chat"]["model"] == "chat-model" and rows["chat"]["estimate"] == 300 * MB
    assert rows["chat"]["heavy"] is True and rows["chat"]["busy"] is False and rows["chat"]["idle_s"] >= 29
    assert rows["chat"]["rss"] is None
    assert rows["voice"]["busy"] is True and rows["voice"]["idle_s"] == 0.0


async def test_usage_is_the_larger_of_estimate_and_measured() -> None:
    fleet = Fleet(1000)
    resident = fleet.add("chat", 1, heavy=True)
    resident.pid = os.getpid
    rss = resident.rss()
    assert rss is not None and rss > 1 * MB and resident.usage() == rss
    resident.pid = lambda: 2**22 + 12345  # no such process
    assert resident.rss() is None and resident.usage() == 1 * MB


def test_budget_limit() -> None:
    assert MemoryBudget(fixed_bytes=123).limit == 123
    budget = MemoryBudget(fraction=0.5)
    assert budget.limit == int(budget.physical * 0.5) and budget.physical > 0
