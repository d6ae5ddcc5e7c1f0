"""The Models page in a real Chromium against a real `gridless serve` and a hub stand-in process.

Downloads come from `tests.hubserver` run as a subprocess (so it can be SIGKILLed and started
again on the same port), throttled so that progress is visible for several seconds. The GGUF
files it serves only look like models: they are installed and activated, never chatted with.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.catalogs import chat_entry, write_catalog
from tests.ggufs import write_lm_gguf
from tests.server import ServerProcess

from .conftest import PHONE, wait_live
from .hub_fixtures import HubProcess, sha256_of

pytestmark = pytest.mark.e2e

REPO = "acme/tiny-GGUF"
MAIN_FILE = "tiny-Q4_K_M.gguf"
SECOND_FILE = "tiny-Q8_0.gguf"
MAIN_MB, SECOND_MB = 30, 20
THROTTLE_BPS = 4_000_000
BUNDLED = "smollm2-135m-instruct"
DOWNLOAD_TIMEOUT_MS = 60_000
ANSWER_TIMEOUT_MS = 180_000

ROW = "download-row"
STATUS = "download-status"
SHOWN = re.compile(r"^(\d+(?:\.\d+)?) (B|KB|MB|GB) of (\d+(?:\.\d+)?) (B|KB|MB|GB)")
UNITS = {"B": 1, "KB": 1_000, "MB": 1_000_000, "GB": 1_000_000_000}
DRAWER_BREAKPOINT = 1024
MODEL_CARDS = "[data-testid^='model-']:not([data-testid='model-name'])"


# fixtures ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the hub stand-in serves as `acme/tiny-GGUF`."""
    folder = tmp_path_factory.mktemp("hub-repo")
    write_lm_gguf(folder / MAIN_FILE, size_mb=MAIN_MB, name="tiny main")
    write_lm_gguf(folder / SECOND_FILE, size_mb=SECOND_MB, name="tiny second", seed=2)
    return folder


@dataclass
class ModelsEnv:
    hub: HubProcess
    server: ServerProcess
    hub_folder: Path

    @property
    def models_dir(self) -> Path:
        return self.server.data_dir / "models"

    def installed_file(self, name: str) -> Path:
        return self.models_dir / REPO.replace("/", "__") / name

    def source_sha(self, name: str) -> str:
        return sha256_of(self.hub_folder / name)

    def file_gets(self, name: str) -> int:
        """GET requests for a hub file that the server logged."""
        return sum(1 for line in self.server.log().splitlines()
                   if "HTTP Request: GET" in line and "/resolve/" in line and f"/{name} " in line)


MakeEnv = Callable[..., ModelsEnv]


@pytest.fixture
def make_env(tmp_path: Path, hub_folder: Path) -> Iterator[MakeEnv]:
    """Starts a hub stand-in subprocess and a server using it (and a catalog of its two files);
    both are stopped at teardown, whatever the test did to them."""
    started: list[HubProcess | ServerProcess] = []

    def make(*, throttle_bps: int | None = THROTTLE_BPS, env: dict[str, str] | None = None) -> ModelsEnv:
        hub = HubProcess(repo=REPO, folder=hub_folder, throttle_bps=throttle_bps, log_path=tmp_path / "hub.log")
        started.append(hub)
        hub.start()
        catalog = write_catalog(tmp_path / "catalog.json", [
            chat_entry("tiny-chat", name="Tiny chat", repo=REPO, path=MAIN_FILE, size_mb=MAIN_MB),
            chat_entry("tiny-chat-q8", name="Tiny chat Q8", repo=REPO, path=SECOND_FILE, size_mb=SECOND_MB),
        ])
        server = ServerProcess(data_dir=tmp_path / "data",
                               env={"HF_ENDPOINT": hub.url, "GRIDLESS_CATALOG": str(catalog), **(env or {})})
        started.append(server)
        server.start()
        return ModelsEnv(hub=hub, server=server, hub_folder=hub_folder)

    yield make
    for item in reversed(started):
        item.stop()


@pytest.fixture
def models_env(make_env: MakeEnv) -> ModelsEnv:
    return make_env()


# helpers ----------------------------------------------------------------------------------------

def say_hi_in_a_new_chat(page: Page, server: ServerProcess) -> None:
    page.goto(f"{server.base}/")
    composer = page.locator("textarea[data-testid=composer]")
    expect(composer).to_be_visible()
    wait_live(page)
    composer.fill("hi")
    composer.press("Enter")


def open_from_drawer(page: Page, server: ServerProcess, name: str) -> None:
    """Sign in with the owner link, then open the page `/name` from the drawer, as a person does."""
    page.goto(server.owner_link)
    expect(page.locator("textarea[data-testid=composer]")).to_be_visible()
    wait_live(page)
    viewport = page.viewport_size
    if viewport is not None and viewport["width"] < DRAWER_BREAKPOINT:  # wider pages show the drawer already
        page.get_by_role("button", name="Conversations").click()
    page.get_by_test_id(f"nav-{name}").click()
    expect(page).to_have_url(f"{server.base}/{name}")


def open_models(page: Page, server: ServerProcess) -> None:
    """Sign in with the owner link, then open the Models page from the drawer."""
    open_from_drawer(page, server, "models")
    expect(page.get_by_test_id("tab-chat")).to_be_visible()
    wait_live(page)


def shown_bytes(text: str) -> int | None:
    """The bytes a status line says are done ("12.6 MB of 30.0 MB · …"), or None if it says no such thing."""
    match = SHOWN.match(text)
    return round(float(match.group(1)) * UNITS[match.group(2)]) if match else None


def download_row(page: Page, name: str) -> Locator:
    return page.get_by_test_id(ROW).filter(has=page.get_by_text(name, exact=True))


def watch_growth(page: Page, status: Locator, values: int, timeout_s: float = 30) -> list[int]:
    """Sample a status line until it has shown `values` byte counts, each larger than the one before."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = status.inner_text()
        assert "installed" not in text, f"finished before it was seen growing: {seen}"
        done = shown_bytes(text)
        if done is not None and (not seen or done > seen[-1]):
            seen.append(done)
            if len(seen) >= values:
                return seen
        page.wait_for_timeout(100)
    raise AssertionError(f"the status did not grow {values - 1} times in {timeout_s} s: {seen}")


def watch_until_installed(page: Page, status: Locator, timeout_s: float = 60) -> list[int]:
    """Byte counts shown until the status says installed."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = status.inner_text()
        if text.endswith("· installed"):
            return seen
        assert "failed" not in text, text
        if (done := shown_bytes(text)) is not None:
            seen.append(done)
        page.wait_for_timeout(100)
    raise AssertionError(f"not installed after {timeout_s} s; last shown: {seen[-5:]}")


def partial_files(env: ModelsEnv) -> list[Path]:
    root = env.models_dir / ".partial"
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != ".lock") if root.is_dir() else []


def healthy(server: ServerProcess) -> bool:
    return httpx.get(f"{server.base}/healthz", timeout=5).status_code == 200


# tests ------------------------------------------------------------------------------------------

def test_download_survives_reload_then_use_it(models_env: ModelsEnv, phone_page: Page) -> None:
    page, env = phone_page, models_env
    open_models(page, env.server)
    expect(page.get_by_test_id(f"model-{BUNDLED}").get_by_test_id("active-chat")).to_be_visible()
    expect(page.get_by_test_id("model-name")).to_have_text(re.compile(BUNDLED))
    catalog_card = page.get_by_test_id("catalog-tiny-chat")
    expect(catalog_card).to_contain_text("30.0 MB download")

    page.get_by_test_id("download-tiny-chat").click()
    row = page.get_by_test_id(ROW)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Tiny chat")
    expect(catalog_card).to_contain_text("downloading")
    status = page.get_by_test_id(STATUS)
    expect(status).to_have_text(re.compile(r"of 30\.0 MB · \d+(\.\d+)? MB/s · \d+ s left"))
    seen = watch_growth(page, status, values=3)
    before_reload = seen[-1]
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    page.reload()
    wait_live(page)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Tiny chat")
    after_reload = watch_until_installed(page, status)
    assert after_reload, "the download was not seen running after the reload"
    assert min(after_reload) >= before_reload, (before_reload, after_reload[:5])
    assert max(after_reload) > before_reload, (before_reload, after_reload[-5:])
    expect(status).to_have_text("30.0 MB · installed")
    expect(catalog_card).to_contain_text("installed")

    installed = env.installed_file(MAIN_FILE)
    assert sha256_of(installed) == env.source_sha(MAIN_FILE)
    assert env.file_gets(MAIN_FILE) == 1, "the file was fetched more than once"
    assert partial_files(env) == []

    card = page.get_by_test_id("model-tiny-chat")
    expect(card).to_contain_text("30.0 MB")
    expect(card).to_contain_text(REPO)
    page.get_by_test_id("activate-tiny-chat").click()
    expect(card.get_by_test_id("active-chat")).to_be_visible()
    expect(page.get_by_test_id(f"model-{BUNDLED}").get_by_test_id("active-chat")).to_have_count(0)
    expect(page.get_by_test_id(f"activate-{BUNDLED}")).to_be_visible()
    page.reload()
    wait_live(page)
    expect(page.get_by_test_id("model-name")).to_have_text(re.compile("tiny-chat"))
    expect(page.get_by_test_id("model-tiny-chat").get_by_test_id("active-chat")).to_be_visible()


def test_header_chip_follows_use_without_reload(models_env: ModelsEnv, phone_page: Page,
                                                tmp_path: Path) -> None:
    page = phone_page
    model = write_lm_gguf(tmp_path / "pocket.gguf", size_mb=1)
    open_models(page, models_env.server)
    page.get_by_test_id("import-chat").click()
    page.get_by_test_id("import-file-chat").set_input_files(str(model))
    page.get_by_test_id("upload-chat").click()
    expect(page.get_by_test_id("model-pocket")).to_be_visible()
    page.get_by_test_id("activate-pocket").click()
    expect(page.get_by_test_id("model-pocket").get_by_test_id("active-chat")).to_be_visible()
    expect(page.get_by_test_id("model-name")).to_have_text(re.compile("pocket"), timeout=5_000)


def test_hub_killed_mid_download_then_back(models_env: ModelsEnv, page: Page) -> None:
    env = models_env
    open_models(page, env.server)
    page.get_by_test_id("download-tiny-chat").click()
    status = page.get_by_test_id(STATUS)
    seen = watch_growth(page, status, values=2)
    while seen[-1] < 5_000_000:
        seen = watch_growth(page, status, values=2)
    env.hub.kill()
    killed_at = seen[-1]

    expect(status).to_have_text(re.compile(r"of 30\.0 MB · .*(connection|retry)", re.I), timeout=30_000)
    message = status.inner_text()
    assert (shown_bytes(message) or 0) >= killed_at, message
    assert "failed" not in message and "unexpected" not in message, message
    expect(status).not_to_have_class(re.compile(r"text-negative"))
    expect(page.get_by_test_id("download-resume")).to_have_count(0)
    assert healthy(env.server)

    env.hub.start()
    after = watch_until_installed(page, status)
    assert min(after, default=killed_at) >= killed_at, after[:5]
    expect(status).to_have_text("30.0 MB · installed")
    expect(page.get_by_test_id("model-tiny-chat")).to_be_visible()
    assert sha256_of(env.installed_file(MAIN_FILE)) == env.source_sha(MAIN_FILE)
    assert env.file_gets(MAIN_FILE) >= 2, "the download was not resumed with a new request"
    assert partial_files(env) == []


def test_pause_resume_and_cancel(models_env: ModelsEnv, phone_page: Page) -> None:
    page, env = phone_page, models_env
    open_models(page, env.server)
    page.get_by_test_id("download-tiny-chat").click()
    first = download_row(page, "Tiny chat")
    first_status = first.get_by_test_id(STATUS)
    watch_growth(page, first_status, values=2)
    first.get_by_test_id("download-pause").click()
    expect(first_status).to_have_text(re.compile(r"of 30\.0 MB · paused$"))
    expect(first.get_by_test_id("download-resume")).to_be_visible()
    paused_at = shown_bytes(first_status.inner_text())
    assert paused_at is not None and 0 < paused_at < MAIN_MB * 1_000_000
    parts = partial_files(env)
    assert len(parts) == 1
    part_size = parts[0].stat().st_size
    assert abs(part_size - paused_at) <= 100_000, (part_size, paused_at)
    page.wait_for_timeout(1_500)
    expect(first_status).to_have_text(re.compile(r"of 30\.0 MB · paused$"))
    assert shown_bytes(first_status.inner_text()) == paused_at
    assert parts[0].stat().st_size == part_size, "bytes kept arriving while paused"

    page.get_by_test_id("download-tiny-chat-q8").click()
    second = download_row(page, "Tiny chat Q8")
    expect(second).to_have_count(1)
    watch_growth(page, second.get_by_test_id(STATUS), values=2)
    second.get_by_test_id("download-cancel").click()
    expect(second).to_have_count(0)
    expect(page.get_by_test_id(ROW)).to_have_count(1)
    expect(page.get_by_test_id("download-tiny-chat-q8")).to_be_visible()
    expect(page.get_by_test_id("model-tiny-chat-q8")).to_have_count(0)
    deadline = time.monotonic() + 10
    while len(partial_files(env)) != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert partial_files(env) == parts, "the cancelled download left files behind"

    first.get_by_test_id("download-resume").click()
    expect(first_status).to_have_text(re.compile(r"of 30\.0 MB · \d"))
    after = watch_until_installed(page, first_status)
    assert after and min(after) >= paused_at, (paused_at, after[:5])
    expect(first_status).to_have_text("30.0 MB · installed")
    expect(page.get_by_test_id("model-tiny-chat")).to_be_visible()
    expect(page.get_by_test_id("model-tiny-chat-q8")).to_have_count(0)
    assert sha256_of(env.installed_file(MAIN_FILE)) == env.source_sha(MAIN_FILE)
    assert not env.installed_file(SECOND_FILE).exists()
    assert partial_files(env) == []


def test_import_through_the_file_chooser_then_delete(models_env: ModelsEnv, phone_page: Page,
                                                      tmp_path: Path) -> None:
    page, env = phone_page, models_env
    model = write_lm_gguf(tmp_path / "my-tiny.gguf", size_mb=2, name="my tiny")
    notes = tmp_path / "notes.gguf"
    notes.write_text("not a model at all\n" * 1000)
    open_models(page, env.server)
    cards = page.locator(MODEL_CARDS)
    expect(cards).to_have_count(1)

    page.get_by_test_id("import-chat").click()
    chooser = page.get_by_test_id("import-file-chat")
    chooser.set_input_files(str(model))
    page.get_by_test_id("upload-chat").click()
    card = page.get_by_test_id("model-my-tiny")
    expect(card).to_be_visible()
    expect(card).to_contain_text("imported")
    expect(cards).to_have_count(2)
    imported = env.models_dir / "imported" / "my-tiny.gguf"
    assert sha256_of(imported) == sha256_of(model)

    if not chooser.is_visible():  # the list was rebuilt with the section closed
        page.get_by_test_id("import-chat").click()
    chooser.set_input_files(str(notes))
    page.get_by_test_id("upload-chat").click()
    refusal = "notes.gguf is not a GGUF model file"
    expect(page.get_by_test_id("import-chat").get_by_text(refusal, exact=True)).to_be_visible()
    expect(page.locator(".q-notification").filter(has_text=refusal)).to_be_visible()
    expect(cards).to_have_count(2)
    assert not (env.models_dir / "imported" / "notes.gguf").exists()
    assert partial_files(env) == []

    page.get_by_test_id("delete-my-tiny").click()
    page.get_by_test_id("confirm-ok").click()
    expect(card).to_have_count(0)
    expect(cards).to_have_count(1)
    assert not imported.exists()
    models = httpx.get(f"{env.server.base}/v1/models", headers=env.server.headers(), timeout=10).json()
    assert [m["id"] for m in models["data"]] == [BUNDLED]


def test_search_the_hub_and_download_a_file(make_env: MakeEnv, phone_page: Page) -> None:
    page, env = phone_page, make_env(throttle_bps=10_000_000)
    open_models(page, env.server)
    search = page.get_by_test_id("search-chat")
    search.click()
    search.get_by_role("textbox").fill("tiny")
    search.get_by_role("button", name="Search", exact=True).click()
    result = page.get_by_test_id("search-result")
    expect(result).to_have_count(1)
    expect(result).to_contain_text(REPO)
    result.click()

    dialog = page.locator(".q-dialog")
    expect(dialog).to_contain_text(REPO)
    expect(dialog.get_by_text("Q4_K_M", exact=True)).to_be_visible()
    expect(dialog.get_by_text("Q8_0", exact=True)).to_be_visible()
    main_row = dialog.locator(".nicegui-row").filter(has=page.get_by_text(MAIN_FILE, exact=True))
    second_row = dialog.locator(".nicegui-row").filter(has=page.get_by_text(SECOND_FILE, exact=True))
    expect(main_row).to_contain_text("30.0 MB")
    expect(second_row).to_contain_text("20.0 MB")
    expect(dialog.get_by_test_id("repo-file-download")).to_have_count(2)
    main_row.get_by_test_id("repo-file-download").click()

    expect(dialog).to_be_hidden()
    row = download_row(page, "tiny-Q4_K_M")
    expect(row).to_have_count(1)
    expect(page.get_by_test_id("catalog-tiny-chat")).to_contain_text("downloading")
    status = row.get_by_test_id(STATUS)
    expect(status).to_have_text("30.0 MB · installed", timeout=DOWNLOAD_TIMEOUT_MS)
    card = page.get_by_test_id("model-tiny-q4_k_m")
    expect(card).to_be_visible()
    expect(card).to_contain_text(REPO)
    expect(page.get_by_test_id("catalog-tiny-chat")).to_contain_text("installed")
    assert sha256_of(env.installed_file(MAIN_FILE)) == env.source_sha(MAIN_FILE)


def test_memory_refusal_in_the_chat_then_load_anyway(make_env: MakeEnv, page: Page) -> None:
    env = make_env(env={"GRIDLESS_MEMORY_BUDGET_MB": "150"})
    open_models(page, env.server)
    card = page.get_by_test_id(f"model-{BUNDLED}")
    expect(card).to_contain_text("Needs about 376 MB")
    expect(card.locator(".text-negative").first).to_be_visible()
    expect(card).to_contain_text("turn on “Load anyway” below")
    switch = card.get_by_test_id("override")
    expect(switch).to_be_visible()
    expect(switch).to_contain_text("Load anyway")
    expect(switch).to_have_attribute("aria-checked", "false")

    say_hi_in_a_new_chat(page, env.server)
    error = page.get_by_test_id("answer-error")
    expect(error).to_contain_text("memory budget", timeout=60_000)
    expect(error).to_contain_text("376 MB")
    expect(page.get_by_test_id("send")).to_be_visible()
    assert healthy(env.server)

    open_models(page, env.server)
    switch = page.get_by_test_id(f"model-{BUNDLED}").get_by_test_id("override")
    switch.click()
    expect(page.get_by_test_id(f"model-{BUNDLED}").get_by_test_id("override")) \
        .to_have_attribute("aria-checked", "true")

    say_hi_in_a_new_chat(page, env.server)
    stats = page.get_by_test_id("answer-stats").last
    expect(stats).to_contain_text("tok/s", timeout=ANSWER_TIMEOUT_MS)
    answer = page.locator("[data-testid=assistant-message] .gl-answer").last.inner_text().strip()
    assert answer, "the answer is empty"
    expect(page.get_by_test_id("answer-error")).to_have_count(0)
    assert healthy(env.server)


def test_a_shorter_context_makes_the_model_fit(make_env: MakeEnv, page: Page) -> None:
    env = make_env(env={"GRIDLESS_MEMORY_BUDGET_MB": "350"})  # 4096 tokens need about 376 MB
    open_models(page, env.server)
    card = page.get_by_test_id(f"model-{BUNDLED}")
    expect(card).to_contain_text("Try a context of 2048 tokens")
    page.get_by_test_id(f"context-{BUNDLED}").click()
    page.get_by_role("option", name="2,048 tokens").click()
    card = page.get_by_test_id(f"model-{BUNDLED}")
    expect(card).to_contain_text("KV cache 47.2 MB for 2048 tokens")
    expect(card.get_by_test_id("override")).to_have_count(0)  # it fits: nothing to override

    say_hi_in_a_new_chat(page, env.server)
    expect(page.get_by_test_id("answer-stats").last).to_contain_text("tok/s", timeout=ANSWER_TIMEOUT_MS)
    expect(page.get_by_test_id("answer-error")).to_have_count(0)
    assert healthy(env.server)
