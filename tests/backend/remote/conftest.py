from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from backend.core.config import Settings
from backend.remote.service import RemoteEngines
from backend.storage.db import Database

from .fake_remote import FakeRemote


@pytest.fixture
def fake() -> Iterator[FakeRemote]:
    """A well-behaved engine server on loopback (tests switch its `mode`)."""
    with FakeRemote() as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", token="t" * 20)


@pytest.fixture
async def engines(db: Database, settings: Settings) -> AsyncIterator[RemoteEngines]:
    """`RemoteEngines` on a real database, started as the server starts it."""
    remote = RemoteEngines(db, settings)
    await remote.start()
    yield remote
    await remote.stop()
