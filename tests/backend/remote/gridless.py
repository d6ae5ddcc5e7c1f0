"""A real gridless server for the engine-server tests, and the owner's requests to it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.server import ServerProcess

__all__ = ["api", "gridless_server"]


@contextmanager
def gridless_server(tmp_path_factory: pytest.TempPathFactory, name: str, **env: str) -> Iterator[ServerProcess]:
    """A server whose regular check of engine servers never comes in the middle of a test (`env` adds
    other settings, such as short stream limits)."""
    data = tmp_path_factory.mktemp(name) / "data"
    with ServerProcess(data_dir=data, env={"GRIDLESS_REMOTE_CHECK_S": "3600", **env}) as server:
        yield server


def api(server: ServerProcess, method: str, path: str, **kw: Any) -> httpx.Response:
    """A request as the owner (the bearer token)."""
    return httpx.request(method, server.base + path, headers=server.headers(), timeout=60, **kw)
