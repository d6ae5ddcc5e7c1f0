"""The time limit that stops a chat template that never ends (SIGALRM on the main thread)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

import pytest

from backend.engines.time_limit import TimeLimitExceeded, time_limit

HANG_GUARD_S = 20


def spin() -> None:
    """Pure Python work that ends only when interrupted (or fails the test after HANG_GUARD_S)."""
    deadline = time.monotonic() + HANG_GUARD_S
    while time.monotonic() < deadline:
        pass
    pytest.fail("the time limit did not interrupt the loop")


def own_handler(signum: int, frame: FrameType | None) -> None:
    raise AssertionError("the previous handler must not run")


@pytest.fixture
def previous_handler() -> Iterator[object]:
    before = signal.signal(signal.SIGALRM, own_handler)
    yield own_handler
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, before)


def test_a_loop_that_never_ends_is_interrupted(previous_handler: object) -> None:
    with pytest.raises(TimeLimitExceeded), time_limit(0.2):
        spin()
    assert signal.getsignal(signal.SIGALRM) is previous_handler
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_an_exception_that_catches_everything_but_base_exceptions_does_not_swallow_it() -> None:
    caught: list[Exception] = []
    with pytest.raises(TimeLimitExceeded), time_limit(0.2):
        try:
            spin()
        except Exception as exc:  # what library code between the template and the limit may do
            caught.append(exc)
    assert caught == []


def test_work_that_ends_in_time_is_left_alone(previous_handler: object) -> None:
    with time_limit(30):
        total = sum(range(1000))
    assert total == 499500
    assert signal.getsignal(signal.SIGALRM) is previous_handler
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_pending_timer_goes_on_after_the_block(previous_handler: object) -> None:
    signal.setitimer(signal.ITIMER_REAL, 60)
    with time_limit(30):
        pass
    remaining, _ = signal.getitimer(signal.ITIMER_REAL)
    assert 0 < remaining <= 60
    assert signal.getsignal(signal.SIGALRM) is previous_handler


def test_off_the_main_thread_the_block_runs_without_a_limit() -> None:
    """Signals reach only the main thread; elsewhere no handler can be installed."""
    outcome: list[object] = []

    def work() -> None:
        try:
            with time_limit(0.01):
                outcome.append(sum(range(1000)))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(HANG_GUARD_S)
    assert outcome == [499500]
