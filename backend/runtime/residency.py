"""Which engines stay loaded, under one memory budget on real figures.

Heavy engines (the language model, the image model) usually exclude each other; speech
and voice are small sidecars. Before an engine loads a model it asks `admit`: if the
model cannot fit the budget at all the request is refused with the reason; if it fits
only without others, the least recently used idle engines are unloaded first (heavy
ones before sidecars when a heavy model comes in). Idle engines unload after a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psutil

from ..core.errors import AppError, ErrorCode
from ..core.units import format_bytes

__all__ = ["MemoryBudget", "MemoryRefused", "ResidencyManager", "Resident"]

log = logging.getLogger(__name__)

class MemoryRefused(AppError):
    """A model that would not fit; `suggestion` says what would."""

    def __init__(self, message: str, *, needed: int = 0, budget: int = 0, suggestion: str | None = None) -> None:
        super().__init__(ErrorCode.INSUFFICIENT_MEMORY, message + (f" {suggestion}" if suggestion else ""))
        self.needed, self.budget, self.suggestion = needed, budget, suggestion


@dataclass(kw_only=True, slots=True, frozen=True)
class MemoryBudget:
    """A fraction of physical RAM, or a fixed number of bytes when configured."""

    fraction: float = 0.75
    fixed_bytes: int | None = None

    @property
    def physical(self) -> int:
        return int(psutil.virtual_memory().total)

    @property
    def limit(self) -> int:
        return self.fixed_bytes if self.fixed_bytes else int(self.physical * self.fraction)

    @staticmethod
    def available() -> int:
        """What the system could give right now without swapping."""
        return int(psutil.virtual_memory().available)


@dataclass(kw_only=True, slots=True)
class Resident:
    name: str
    """The engine slot: "chat", "images", "speech"…"""
    model: str
    heavy: bool
    estimate: int
    unload: Callable[[], Awaitable[None]]
    pid: Callable[[], int | None] = lambda: None
    last_used: float = field(default_factory=time.monotonic)
    busy: int = 0
    loaded_at: float = field(default_factory=time.time)

    def rss(self) -> int | None:
        pid = self.pid()
        if pid is None:
            return None
        try:
            return int(psutil.Process(pid).memory_info().rss)
        except (psutil.Error, OSError):
            return None

    def usage(self) -> int:
        """What it holds, for budgeting: the larger of estimate and measured."""
        return max(self.estimate, self.rss() or 0)


class ResidencyManager:
    def __init__(self, budget: MemoryBudget, idle_unload_s: float = 600.0) -> None:
        self.budget = budget
        self.idle_unload_s = idle_unload_s
        self._residents: dict[str, Resident] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.last_evictions: list[str] = []
        """What the last admission unloaded, for the pages to say so."""

    @property
    def residents(self) -> list[Resident]:
        return list(self._residents.values())

    def get(self, name: str) -> Resident | None:
        return self._residents.get(name)

    async def admit(self, name: str, model: str, estimate: int, *, heavy: bool, override: bool = False,
                    resident: Resident | None = None) -> list[str]:
        """Make room for `model` in slot `name`; returns the slots unloaded for it.

        Raises MemoryRefused when it cannot fit (unless `override`). With `resident`, it is
        registered in the same step, so a second admission at the same time counts it."""
        async with self._lock:
            limit = self.budget.limit
            if estimate > limit and not override:
                raise MemoryRefused(f"{model} needs {format_bytes(estimate)} but the memory budget is "
                                    f"{format_bytes(limit)}.", needed=estimate, budget=limit)
            evicted: list[str] = []
            others = [r for r in self._residents.values() if r.name != name]
            used = sum(r.usage() for r in others)
            if used + estimate > limit:
                # idle ones only, least recently used first; heavy first when a heavy one comes in
                for victim in sorted((r for r in others if not r.busy),
                                     key=lambda r: (r.heavy != heavy, r.last_used)):
                    if used + estimate <= limit:
                        break
                    used -= victim.usage()
                    evicted.append(victim.name)
                    await self._unload(victim, "to make room for " + model)
            if used + estimate > limit and not override:
                busy = ", ".join(r.model for r in self._residents.values() if r.name != name)
                raise MemoryRefused(f"{model} needs {format_bytes(estimate)}; with {busy} working only "
                                    f"{format_bytes(max(0, limit - used))} of the budget is left. Try again "
                                    "when it has finished.", needed=estimate, budget=limit)
            replaced = self._residents.get(name)  # what this slot holds now is freed before loading
            free_now = self.budget.available() + (replaced.usage() if replaced is not None else 0)
            if estimate > free_now and not override:
                raise MemoryRefused(f"{model} needs {format_bytes(estimate)} but the device has only "
                                    f"{format_bytes(free_now)} free right now. Close other apps and try again.",
                                    needed=estimate, budget=free_now)
            self.last_evictions = evicted
            if resident is not None:
                self._residents[name] = resident
            return evicted

    def register(self, resident: Resident) -> None:
        self._residents[resident.name] = resident

    def forget(self, name: str) -> None:
        self._residents.pop(name, None)

    @contextlib.contextmanager
    def in_use(self, name: str) -> Iterator[None]:
        resident = self._residents.get(name)
        if resident is not None:
            resident.busy += 1
        try:
            yield
        finally:
            if resident is not None:
                resident.busy -= 1
                resident.last_used = time.monotonic()

    async def _unload(self, resident: Resident, why: str) -> None:
        log.info("unloading %s (%s) %s", resident.model, resident.name, why)
        self._residents.pop(resident.name, None)
        try:
            await resident.unload()
        except Exception:  # an engine that fails to stop must not block the others
            log.exception("unloading %s failed", resident.name)

    async def unload(self, name: str) -> bool:
        async with self._lock:
            resident = self._residents.get(name)
            if resident is None or resident.busy:
                return False
            await self._unload(resident, "on request")
            return True

    async def unload_idle(self) -> list[str]:
        if self.idle_unload_s <= 0:
            return []
        now = time.monotonic()
        gone: list[str] = []
        async with self._lock:
            for resident in list(self._residents.values()):
                if not resident.busy and now - resident.last_used >= self.idle_unload_s:
                    await self._unload(resident, f"after {self.idle_unload_s:.0f} s idle")
                    gone.append(resident.name)
        return gone

    def snapshot(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [{"name": r.name, "model": r.model, "heavy": r.heavy, "estimate": r.estimate, "rss": r.rss(),
                 "idle_s": 0.0 if r.busy else now - r.last_used, "busy": bool(r.busy)}
                for r in self._residents.values()]

    def start(self, interval_s: float = 5.0) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    await self.unload_idle()
                except Exception:
                    log.exception("idle unloading failed")

        self._task = asyncio.get_running_loop().create_task(loop(), name="residency-idle")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
