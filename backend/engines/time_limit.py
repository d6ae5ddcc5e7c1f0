"""A time limit for Python work on a worker's main thread, such as rendering a chat template.

A chat template is code that comes with the model file; Jinja compiles it to Python, and the
sandbox bounds each `range` (100000 items) but not loops inside loops, so a template can run
for ever and hold the worker. SIGALRM interrupts Python code between bytecodes; it does not
interrupt one long call into C, which is what the server-side watchdog (stopping the worker
process) is for.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["TimeLimitExceeded", "time_limit"]


class TimeLimitExceeded(BaseException):
    """The block ran past its time limit. A BaseException, as KeyboardInterrupt is, so that no
    `except Exception` in the interrupted code (a template engine's) can swallow it."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TimeLimitExceeded in the block if it runs longer than `seconds`.

    Only the main thread receives signals: elsewhere the block runs without a limit. The
    previous SIGALRM handler is restored after, and a timer that was pending goes on with
    what it had left."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeLimitExceeded(seconds)

    previous = signal.signal(signal.SIGALRM, expire)
    pending, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:  # the alarm may still arrive here, just as the block ends: restore all the same
            signal.signal(signal.SIGALRM, previous)
            if pending:
                signal.setitimer(signal.ITIMER_REAL, max(pending - (time.monotonic() - started), 0.001))
