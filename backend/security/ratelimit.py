"""Failed attempts per source address: after too many in a window the source waits.

Only failures count (a wrong pairing code, a wrong owner token), and only per address, so
somebody guessing on the network never locks out the owner or another tablet, and a
valid credential already held (a cookie) is checked before this limit applies.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

__all__ = ["FailureLimiter"]


class FailureLimiter:
    def __init__(self, limit: int = 10, window_s: float = 60.0, max_sources: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_sources = max_sources
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, source: str) -> float:
        """Seconds until `source` may try again; 0 when it may now."""
        times = self._recent(source)
        if times is None or len(times) < self.limit:
            return 0.0
        return max(0.0, times[0] + self.window_s - self.clock())

    def failed(self, source: str) -> None:
        times = self._recent(source)
        if times is None:
            times = self._failures[source] = deque(maxlen=self.limit)
            while len(self._failures) > self.max_sources:  # bounded memory: forget the oldest sources
                self._failures.popitem(last=False)
        times.append(self.clock())
        self._failures.move_to_end(source)

    def _recent(self, source: str) -> deque[float] | None:
        times = self._failures.get(source)
        if times is None:
            return None
        cutoff = self.clock() - self.window_s
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._failures[source]
            return None
        return times
