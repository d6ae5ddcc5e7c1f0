"""A clock tests move by hand, for code that takes `clock=` (time.time or time.monotonic)."""

from __future__ import annotations

__all__ = ["FakeClock"]


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
