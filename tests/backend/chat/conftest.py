"""The services with the real engines, as the chat tests use them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from backend.core.config import Settings
from backend.services import Services
from tests.threads import ENGINE_THREADS


@asynccontextmanager
async def running_services(data_dir: Path) -> AsyncIterator[Services]:
    built = Services.build(Settings(data_dir=data_dir, token="t" * 20, context_length=2048, threads=ENGINE_THREADS))
    await built.start()
    try:
        yield built
    finally:
        await built.stop()


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    async with running_services(tmp_path) as built:
        yield built
