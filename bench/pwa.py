"""Benchmark: loading the chat page in Chromium, first time and again with the service worker
warm, and the server's memory with two connected clients versus none.

    python bench/pwa.py [--runs N]

Each run uses a fresh Chromium profile against one real server on 127.0.0.1:
- first load: the owner link in a new profile (nothing cached), until the page is
  interactive (the composer is shown and the page's websocket is connected);
- repeat load: the same page opened again in that profile, once the service worker is active.
Bytes are those that came from the network (CDP `Network.loadingFinished`, and for what the
service worker fetched from the network, the size it reports), leaving out responses the
service worker's cache or the browser cache served. Goal: the repeat load fetches at
most 20 % of the first load's bytes. Server RSS is read with psutil (the server process
only; no model is loaded).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from playwright.sync_api import BrowserContext, CDPSession, Page, Playwright, sync_playwright  # noqa: E402

from bench.report import save  # noqa: E402
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, PHONE  # noqa: E402
from tests.server import ServerProcess  # noqa: E402

COMPOSER = "textarea[data-testid=composer]"


class NetworkBytes:
    """Bytes received from the network for one page, as Chromium counts them."""

    def __init__(self, cdp: CDPSession) -> None:
        self.total = 0
        self.requests = 0
        self.cached: set[str] = set()
        cdp.send("Network.enable")
        cdp.on("Network.responseReceived", self._response)
        cdp.on("Network.requestServedFromCache", lambda e: self.cached.add(e["requestId"]))
        cdp.on("Network.loadingFinished", self._finished)

    def _response(self, event: dict[str, Any]) -> None:
        response = event["response"]
        if response.get("fromServiceWorker"):
            # the worker fetched it: count it only if that fetch went to the network (pages do)
            self.cached.add(event["requestId"])
            if response.get("serviceWorkerResponseSource") == "network":
                self.total += int(response.get("encodedDataLength", 0))
                self.requests += 1
        elif response.get("fromDiskCache") or response.get("fromPrefetchCache"):
            self.cached.add(event["requestId"])

    def _finished(self, event: dict[str, Any]) -> None:
        if event["requestId"] not in self.cached:
            self.total += int(event.get("encodedDataLength", 0))
            self.requests += 1


def load(context: BrowserContext, url: str) -> tuple[float, int, int, Page]:
    page = context.new_page()
    counter = NetworkBytes(context.new_cdp_session(page))
    started = time.perf_counter()
    page.goto(url)
    page.wait_for_selector(COMPOSER)
    page.wait_for_function("window.did_handshake === true")
    elapsed = time.perf_counter() - started
    page.wait_for_timeout(300)  # late requests (fonts, icons) still count
    return elapsed, counter.total, counter.requests, page


def one_run(playwright: Playwright, server: ServerProcess) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, viewport=PHONE)
        try:
            first_s, first_bytes, first_requests, page = load(context, server.owner_link)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and page.evaluate(
                    "navigator.serviceWorker.ready.then(r => r.active ? r.active.state : 'none')") != "activated":
                page.wait_for_timeout(100)
            page.close()
            repeat_s, repeat_bytes, repeat_requests, page = load(context, f"{server.base}/")
            controlled = bool(page.evaluate("!!navigator.serviceWorker.controller"))
        finally:
            context.close()
    return {"first_s": round(first_s, 3), "first_bytes": first_bytes, "first_requests": first_requests,
            "repeat_s": round(repeat_s, 3), "repeat_bytes": repeat_bytes, "repeat_requests": repeat_requests,
            "repeat_controlled_by_service_worker": controlled}


def clients_rss(playwright: Playwright, server: ServerProcess) -> dict[str, float]:
    assert server.process is not None
    process = psutil.Process(server.process.pid)
    time.sleep(1.0)
    idle = process.memory_info().rss
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
    try:
        pages = []
        for _ in range(2):
            context = browser.new_context(viewport=PHONE)
            page = context.new_page()
            page.goto(server.owner_link)
            page.wait_for_selector(COMPOSER)
            page.wait_for_function("window.did_handshake === true")
            pages.append(page)
        time.sleep(1.0)
        connected = process.memory_info().rss
    finally:
        browser.close()
    return {"rss_0_clients_mb": round(idle / 1e6, 1), "rss_2_clients_mb": round(connected / 1e6, 1),
            "per_client_mb": round((connected - idle) / 2e6, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not CHROMIUM.exists():
        sys.exit("this benchmark needs Debian's chromium at /usr/bin/chromium")
    load_avg = [round(x, 2) for x in psutil.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(data_dir=Path(tmp) / "data") as server, \
            sync_playwright() as playwright:
        runs = [one_run(playwright, server) for _ in range(args.runs)]
        memory = clients_rss(playwright, server)
    median = {k: statistics.median(r[k] for r in runs) for k in ("first_s", "first_bytes", "repeat_s", "repeat_bytes")}
    ratio = median["repeat_bytes"] / median["first_bytes"] if median["first_bytes"] else float("nan")
    result = {"when": datetime.now().isoformat(timespec="seconds"), "load_avg_start": load_avg, "runs": runs,
              "median": median, "repeat_over_first_bytes": round(ratio, 4), "goal": "<=0.2", "memory": memory}
    print(f"load average at start: {' '.join(map(str, load_avg))}")
    print(f"{'':<26}{'seconds':>10}{'KB from network':>18}")
    print(f"{'first load':<26}{median['first_s']:>10.3f}{median['first_bytes'] / 1000:>18.1f}")
    print(f"{'repeat load (worker warm)':<26}{median['repeat_s']:>10.3f}{median['repeat_bytes'] / 1000:>18.1f}")
    print(f"repeat / first bytes: {ratio:.3f} (goal <= 0.2); every repeat load controlled by the service worker: "
          f"{all(r['repeat_controlled_by_service_worker'] for r in runs)}")
    print(f"server RSS: {memory['rss_0_clients_mb']} MB with no client, {memory['rss_2_clients_mb']} MB with 2 "
          f"({memory['per_client_mb']} MB per client)")
    save("pwa", result)


if __name__ == "__main__":
    main()
