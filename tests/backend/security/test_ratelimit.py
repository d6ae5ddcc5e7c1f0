from __future__ import annotations

import pytest

from backend.security.ratelimit import FailureLimiter
from tests.clocks import FakeClock as Clock


@pytest.fixture
def clock() -> Clock:
    return Clock(500.0)


def test_limit_and_retry_after(clock: Clock) -> None:
    limiter = FailureLimiter(limit=3, window_s=60, clock=clock)
    assert limiter.retry_after("a") == 0
    limiter.failed("a")
    clock.now += 10
    limiter.failed("a")
    assert limiter.retry_after("a") == 0  # two of three
    clock.now += 10
    limiter.failed("a")
    assert limiter.retry_after("a") == pytest.approx(40)  # the first failure leaves the window in 40 s
    clock.now += 39.5
    assert limiter.retry_after("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.retry_after("a") == 0
    limiter.failed("a")  # the second and third are still in the window
    assert limiter.retry_after("a") == pytest.approx(10)
    assert limiter.retry_after("b") == 0


def test_window_slides(clock: Clock) -> None:
    limiter = FailureLimiter(limit=3, window_s=60, clock=clock)
    for _ in range(3):
        limiter.failed("a")
        clock.now += 30
    # failures at 0, 30, 60; now 90: the one at 0 and the one at 30 have left the window
    assert limiter.retry_after("a") == 0
    limiter.failed("a")
    limiter.failed("a")
    # failures at 60, 90, 90: limited until the one at 60 leaves
    assert limiter.retry_after("a") == pytest.approx(30)
    clock.now += 60
    assert limiter.retry_after("a") == 0
    assert "a" not in limiter._failures  # a source with nothing in the window is forgotten


def test_failures_while_limited_keep_the_newest(clock: Clock) -> None:
    limiter = FailureLimiter(limit=2, window_s=10, clock=clock)
    for _ in range(5):
        limiter.failed("a")
        clock.now += 1
    # failures at 0..4, only the latest two count: those at 3 and 4; now 5
    assert limiter.retry_after("a") == pytest.approx(8)
    assert len(limiter._failures["a"]) == 2


def test_sources_are_independent(clock: Clock) -> None:
    limiter = FailureLimiter(limit=2, window_s=60, clock=clock)
    limiter.failed("10.0.0.1")
    limiter.failed("10.0.0.1")
    limiter.failed("10.0.0.2")
    assert limiter.retry_after("10.0.0.1") > 0
    assert limiter.retry_after("10.0.0.2") == 0
    assert limiter.retry_after("10.0.0.3") == 0


def test_number_of_sources_is_bounded(clock: Clock) -> None:
    limiter = FailureLimiter(limit=1, window_s=60, max_sources=3, clock=clock)
    for source in ("a", "b", "c"):
        limiter.failed(source)
    limiter.failed("a")  # "a" is now the most recent
    limiter.failed("d")  # so "b", the oldest, is forgotten
    assert set(limiter._failures) == {"a", "c", "d"}
    assert limiter.retry_after("b") == 0
    assert all(limiter.retry_after(s) > 0 for s in ("a", "c", "d"))
    for i in range(100):
        limiter.failed(f"10.0.{i}.1")
    assert len(limiter._failures) == 3
    assert set(limiter._failures) == {"10.0.97.1", "10.0.98.1", "10.0.99.1"}


def test_defaults() -> None:
    limiter = FailureLimiter()
    for _ in range(9):
        limiter.failed("x")
    assert limiter.retry_after("x") == 0
    limiter.failed("x")
    assert 59 < limiter.retry_after("x") <= 60
