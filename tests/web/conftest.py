"""Page tests with NiceGUI's User fixture: pages built and driven in this process, no browser.

Each test gets the whole app (`tests/web/app_main.py`) with its own data folder: the settings
are read from `GRIDLESS_*` variables when the main file runs, so `data_dir` sets them before
NiceGUI's `user` fixture runs it (the `user` below asks for `data_dir` first for that reason).

The security gate is not relaxed for these tests. The fixture's httpx client talks to the app
in-process (ASGI) from the loopback address, and its requests pass through the same gate as a
browser's. It is pointed at the app's own origin, because the gate answers 400 to a Host that is
not one of the server's names (httpx's default is `test`), and it signs in as a person does: it
opens the owner link with the token, keeps the session cookie the gate sets, and sends it with
every page it opens afterwards. `test_gate.py` checks that a page is refused without it. Only a
page's first request goes over HTTP: the simulated user then handles the page's events directly,
without the websocket (that path is covered by `test_socket_guard.py` and the browser tests).

NiceGUI fails a test that logged any ERROR, and the rule stays on. A page that catches an error
(an AppError from a service) shows a notification or a message and logs no ERROR, which is what
these tests check; an uncaught exception in a handler is logged as ERROR and fails the test. A
future test that expects a service to log an ERROR (an engine that fails) should assert that
record and remove just it from `caplog.get_records("call")`, the list the rule reads at teardown,
rather than turn the rule off.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from nicegui import Client, app
from nicegui.testing import User

from backend.security.owner import OwnerCredential
from backend.services import Services

OWNER_TOKEN = "page-test-owner-token-0123456789"
ORIGIN = "http://127.0.0.1:8765"
"""Where the person opens the app (the default address of `gridless serve`)."""


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh data folder for this test's app, and no other `GRIDLESS_*` setting from outside.

    Each test builds the app on NiceGUI's one `app` again, and FastAPI wraps the app's lifespan
    once more for every router included: the wrapping is undone afterwards, or after a few
    hundred page tests in one process starting the app would exceed Python's recursion limit."""
    for name in [n for n in os.environ if n.startswith("GRIDLESS_")]:
        monkeypatch.delenv(name)
    folder = tmp_path / "data"
    monkeypatch.setenv("GRIDLESS_DATA_DIR", str(folder))
    monkeypatch.setenv("GRIDLESS_TOKEN", OWNER_TOKEN)
    lifespan = app.router.lifespan_context
    yield folder
    app.router.lifespan_context = lifespan


@pytest.fixture
async def user(data_dir: Path, user: User) -> AsyncIterator[User]:
    """NiceGUI's User on the app's own origin, not signed in, once the app has started (as a
    person opens the link after the server printed it). NiceGUI runs start-up hooks as background
    tasks: a test that ended first would stop the app while its database was still opening.

    Afterwards its pages are closed as when the browser leaves: NiceGUI's reset between tests
    forgets the clients without deleting them, and their timers and refreshable elements would
    keep working on the dead pages of earlier tests."""
    user.http_client.base_url = httpx.URL(ORIGIN)
    running: Services = app.state.services
    await running.ready()
    yield user
    for client in list(Client.instances.values()):
        client.delete()


@pytest.fixture
async def owner(user: User) -> User:
    """The User signed in as the phone's owner, with the link `gridless serve` prints."""
    response = await user.http_client.get("/", params={"token": OWNER_TOKEN})
    assert response.status_code == 200, response.text
    assert user.http_client.cookies.get(OwnerCredential.COOKIE), "the owner link set no session cookie"
    return user


@pytest.fixture
def services(user: User) -> Services:
    """The running app's services, for arranging what a page will show."""
    running: Services = app.state.services
    return running
