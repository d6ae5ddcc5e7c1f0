"""The installable app in Chromium: manifest, service worker, installability, and the offline
page when the server is not running.

Installability is checked over CDP in a persistent profile: Chromium reports `in-incognito`
for the throwaway contexts the other tests use.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, expect

from tests.server import ServerProcess

from .conftest import CHROMIUM, CHROMIUM_ARGS, PHONE

pytestmark = pytest.mark.e2e

COMPOSER = "textarea[data-testid=composer]"


@pytest.fixture
def profile(playwright: Playwright, tmp_path: Path) -> Iterator[BrowserContext]:
    if not CHROMIUM.exists():
        pytest.skip("end-to-end tests need Debian's chromium at /usr/bin/chromium")
    context = playwright.chromium.launch_persistent_context(
        tmp_path / "profile", executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, viewport=PHONE)
    yield context
    context.close()


def open_app(page: Page, server: ServerProcess) -> None:
    page.goto(server.owner_link)
    expect(page.locator(COMPOSER)).to_be_visible()


def service_worker_state(page: Page, timeout_s: float = 15.0) -> str:
    """The worker's state once it has finished activating (or the last one seen after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    state = "none"
    while time.monotonic() < deadline:
        state = str(page.evaluate("navigator.serviceWorker.ready.then(r => r.active ? r.active.state : 'none')"))
        if state == "activated":
            break
        page.wait_for_timeout(100)
    return state


def test_manifest_and_service_worker_need_no_credential(server: ServerProcess) -> None:
    manifest = httpx.get(f"{server.base}/manifest.webmanifest")
    assert manifest.status_code == 200 and manifest.headers["content-type"].startswith("application/manifest+json")
    data = manifest.json()
    assert data["display"] == "standalone" and data["start_url"] == "/" and data["theme_color"]
    sizes = {(icon["sizes"], icon.get("purpose", "any")) for icon in data["icons"]}
    assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")} <= sizes
    for icon in data["icons"]:
        response = httpx.get(server.base + icon["src"])
        assert response.status_code == 200 and response.content.startswith(b"\x89PNG")
    worker = httpx.get(f"{server.base}/sw.js")
    assert worker.status_code == 200 and "javascript" in worker.headers["content-type"]
    assert worker.headers["service-worker-allowed"] == "/" and "no-cache" in worker.headers["cache-control"]
    assert "__VERSION__" not in worker.text and "__NICEGUI_VERSION__" not in worker.text
    assert httpx.get(f"{server.base}/static/offline.html").status_code == 200
    # the app itself still needs the credential
    assert httpx.get(f"{server.base}/", follow_redirects=False).status_code == 401


def test_chromium_finds_the_app_installable(profile: BrowserContext, server: ServerProcess) -> None:
    page = profile.new_page()
    open_app(page, server)
    assert service_worker_state(page) == "activated"
    cdp = profile.new_cdp_session(page)
    manifest = cdp.send("Page.getAppManifest")
    assert manifest["errors"] == [] and manifest["url"].endswith("/manifest.webmanifest")
    assert cdp.send("Page.getInstallabilityErrors")["installabilityErrors"] == []


def test_a_repeat_load_takes_every_asset_from_a_cache(profile: BrowserContext, server: ServerProcess) -> None:
    """Once the service worker runs, opening the app again fetches only the page itself: the
    app's static files come from the worker's cache, NiceGUI's versioned assets and the elements'
    modules from the browser's (the worker leaves them to it)."""
    page = profile.new_page()
    open_app(page, server)
    assert service_worker_state(page) == "activated"
    page.close()

    page = profile.new_page()
    cdp = profile.new_cdp_session(page)
    cdp.send("Network.enable")
    answers: dict[str, tuple[str, bool]] = {}
    """request id -> (path, whether a cache answered it)"""
    from_memory: set[str] = set()

    def response(event: dict[str, Any]) -> None:
        answer = event["response"]
        cache = bool(answer.get("fromDiskCache") or answer.get("fromPrefetchCache") or (
            answer.get("fromServiceWorker") and answer.get("serviceWorkerResponseSource") != "network"))
        answers[event["requestId"]] = (urlsplit(answer["url"]).path, cache)

    cdp.on("Network.responseReceived", response)
    cdp.on("Network.requestServedFromCache", lambda event: from_memory.add(event["requestId"]))
    page.goto(f"{server.base}/")
    expect(page.locator(COMPOSER)).to_be_visible()
    page.wait_for_function("window.did_handshake === true")
    page.wait_for_timeout(300)  # late requests (fonts, icons) count too

    assets = {rid: (path, cache or rid in from_memory) for rid, (path, cache) in answers.items()
              if path.startswith(("/static/", "/_nicegui/"))}
    fetched = sorted(path for path, cache in assets.values() if not cache)
    assert fetched == [], f"fetched again from the server: {fetched}"
    assert any(path.endswith("/dictation.js") for path, _ in assets.values()), assets  # an element's module


def test_offline_page_when_the_server_is_stopped_and_back_when_it_returns(
        profile: BrowserContext, tmp_path: Path) -> None:
    server = ServerProcess(data_dir=tmp_path / "data").start()
    try:
        page = profile.new_page()
        open_app(page, server)
        assert service_worker_state(page) == "activated"
        page.reload()  # from now on the service worker controls the page
        expect(page.locator(COMPOSER)).to_be_visible()
        assert page.evaluate("!!navigator.serviceWorker.controller")
        # nothing with user data was stored: only the static cache exists, with no page in it
        cached = page.evaluate("""async () => {
            const urls = [];
            for (const name of await caches.keys()) {
                for (const request of await (await caches.open(name)).keys()) urls.push(new URL(request.url).pathname);
            }
            return urls;
        }""")
        assert cached and all(u.startswith("/static/") or u == "/manifest.webmanifest" for u in cached), cached

        server.stop()
        page.goto(f"{server.base}/")
        expect(page.get_by_test_id("offline-title")).to_have_text("gridless is not running")
        expect(page.locator("body")).to_contain_text("gridless serve")

        restarted = ServerProcess(data_dir=server.data_dir, port=server.port).start()
        try:  # the offline page notices and reloads into the app
            expect(page.locator(COMPOSER)).to_be_visible(timeout=15_000)
        finally:
            restarted.stop()
    finally:
        server.stop()
