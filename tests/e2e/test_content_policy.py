"""The pages load nothing from other origins: an answer whose Markdown points at another
address (a tracking image, say) makes the browser fetch nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from backend.storage.conversations import ConversationStore
from backend.storage.db import Database
from tests.loops import run_alone
from tests.server import ServerProcess, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def elsewhere() -> Iterator[tuple[str, list[str]]]:
    """A server on another loopback address (another origin) that records every request."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.2", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.2:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


async def seed(data_dir: Path, answer: str) -> str:
    db = Database(data_dir / "gridless.db")
    await db.open()
    try:
        store = ConversationStore(db)
        conv = await store.create(title="Pictures")
        await store.add_message(conv.id, "user", "show me")
        await store.add_message(conv.id, "assistant", answer)
        return conv.id
    finally:
        await db.close()


def test_markdown_pointing_elsewhere_fetches_nothing(page: Page, tmp_path: Path,
                                                     elsewhere: tuple[str, list[str]]) -> None:
    base, seen = elsewhere
    data = tmp_path / "data"
    data.mkdir()
    conversation = run_alone(seed(data, f"Here: ![chart]({base}/leak.png?secret=42)\n\n<img src=\"{base}/raw.png\">"))
    with ServerProcess(data_dir=data) as server:
        policy = httpx.get(f"{server.base}/healthz").headers["content-security-policy"]
        assert "default-src 'self'" in policy and "img-src 'self' data: blob:" in policy
        page.goto(server.owner_link)
        violations: list[str] = []
        page.expose_function("reportViolation", lambda uri: violations.append(str(uri)))
        page.add_init_script("document.addEventListener('securitypolicyviolation', e => "
                             "window.reportViolation(e.blockedURI))")
        page.goto(f"{server.base}/c/{conversation}")
        expect(page.locator("[data-testid=assistant-message]").last).to_contain_text("Here")
        page.wait_for_timeout(1000)
        # also straight from a script on the page
        page.evaluate(f"fetch('{base}/fetched').catch(() => null)")
        page.wait_for_timeout(500)
    assert seen == [], f"the browser reached another origin: {seen}"
    assert any(v.startswith(base) for v in violations), f"no blocked request was reported: {violations}"
