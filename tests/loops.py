"""Running a coroutine from synchronous test code."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_alone"]

T = TypeVar("T")


def run_alone(coroutine: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """Run a coroutine on a fresh event loop in its own thread. The browser tests' Playwright
    keeps a loop running in the main thread for the whole session, where `asyncio.run` fails."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result(timeout)
