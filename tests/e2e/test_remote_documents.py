"""A collection indexed by an engine server's embedding model, in a real Chromium against a real
`gridless serve`: the owner adds the server on the Models page, its model is offered for
documents, a new collection on the Documents page is indexed with it, a Markdown file becomes
Ready and a search finds its passage, all embedded by the server (its access log says so). Then
the server goes away: a document added meanwhile says it waits for the server, and becomes Ready
by itself once the server is back.

The server on the other machine is `llama_cpp.server` on loopback (`tests/llama_server.py`) serving
the bundled all-MiniLM-L6-v2 that gridless writes into its cache folder, with `--embedding true`.
gridless checks its servers, and tries a waiting document again, every 2 s here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.backend.remote.test_real_remote_embeddings import written_model
from tests.llama_server import LlamaServer
from tests.server import ServerProcess

from .test_models import open_from_drawer, open_models
from .test_remote import DIALOG, ENGINE_CARD, ENGINE_STATE, choose, engine_card

pytestmark = pytest.mark.e2e

ALIAS = "all-minilm-l6-v2"
NAME = "Box"
OPTION = f"{ALIAS} · {NAME}"
EMBEDDINGS = "POST /v1/embeddings"
CHECK_S = 2
INDEX_TIMEOUT_MS = 30_000

GARDEN = """# Garden notes

## Tomatoes

Tomato seedlings go outside once the nights stay above twelve degrees, usually in mid May.

## Roses

Prune the climbing roses in late winter, just above an outward-facing bud.
"""
KITCHEN = """# Kitchen

## Bread

The sourdough starter is fed every morning with flour and water.
"""
READY = re.compile(r"^Ready · \d+ passages?$")
COLLECTION_URL = re.compile(r"/knowledge/([0-9a-f]{32})$")


# the servers --------------------------------------------------------------------------------------

@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """gridless with its own cache folder (where it writes the bundled embedding model) and quick
    checks of its servers."""
    env = {"GRIDLESS_CACHE_DIR": str(tmp_path / "cache"), "GRIDLESS_REMOTE_CHECK_S": str(CHECK_S)}
    with ServerProcess(data_dir=tmp_path / "data", env=env) as srv:
        yield srv


@pytest.fixture
def box(server: ServerProcess, tmp_path: Path) -> Iterator[LlamaServer]:
    llama = LlamaServer(model=written_model(tmp_path / "cache"), alias=ALIAS, log_path=tmp_path / "llama.log",
                        embedding=True, n_ctx=512)
    llama.start()
    yield llama
    llama.kill()


# helpers ------------------------------------------------------------------------------------------

def add_box(page: Page, server: ServerProcess, box: LlamaServer) -> Locator:
    """On the Models page (Chat tab), add the server as "Box"; returns its card."""
    open_models(page, server)
    page.get_by_test_id("add-engine").click()
    dialog = page.locator(DIALOG)
    expect(dialog).to_contain_text("Add an engine server")
    page.get_by_test_id("engine-url").fill(box.netloc)
    page.get_by_test_id("engine-name").fill(NAME)
    page.get_by_test_id("engine-add").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(".q-notification", has_text=f"{NAME} added with 1 model.")).to_be_visible()
    card = engine_card(page, NAME)
    expect(card).to_have_count(1)
    expect(card.locator(ENGINE_STATE)).to_have_text(re.compile(r"^Answering \(checked in \d+ ms"))
    expect(card.get_by_text(ALIAS, exact=True)).to_be_visible()
    return card


def upload(page: Page, path: Path) -> None:
    with page.expect_file_chooser() as chooser_info:
        page.get_by_test_id("add-documents").click()
    chooser_info.value.set_files(path)


def state_of(page: Page, name: str) -> Locator:
    card = page.get_by_test_id("document").filter(has=page.get_by_test_id("document-name").get_by_text(name,
                                                                                                      exact=True))
    return card.get_by_test_id("document-state")


# the test -----------------------------------------------------------------------------------------

def test_a_collection_indexed_by_a_servers_model(server: ServerProcess, box: LlamaServer, page: Page,
                                                 tmp_path: Path) -> None:
    garden = tmp_path / "garden.md"
    garden.write_text(GARDEN, encoding="utf-8")
    kitchen = tmp_path / "kitchen.md"
    kitchen.write_text(KITCHEN, encoding="utf-8")

    # the server's model is taken for documents, from its name
    card = add_box(page, server, box)
    engine_id = (card.get_attribute("data-testid") or "").removeprefix("engine-")
    assert engine_id, "the server's card has no id"
    expect(card.get_by_test_id(f"engine-job-{engine_id}-0")).to_have_text("for documents")

    # a collection indexed with it
    open_from_drawer(page, server, "knowledge")
    expect(page.get_by_test_id("collections-empty")).to_be_visible()
    page.get_by_test_id("new-collection").click()
    dialog = page.locator(DIALOG)
    expect(dialog).to_contain_text("New collection")
    page.get_by_test_id("collection-name-input").fill("Garden")
    embedder = dialog.get_by_test_id("collection-embedder")
    expect(embedder).to_contain_text("This device's model")
    choose(page, embedder, OPTION)
    expect(dialog).to_contain_text("Passages and questions are sent to the server")
    page.get_by_test_id("collection-name-ok").click()
    expect(page).to_have_url(COLLECTION_URL)
    expect(page.get_by_test_id("collection-title")).to_have_text("Garden")
    collection_url = page.url

    upload(page, garden)
    expect(state_of(page, "garden.md")).to_have_text(READY, timeout=INDEX_TIMEOUT_MS)
    indexed = box.requests(EMBEDDINGS)
    assert indexed > 0, f"the passages were not embedded by the server:\n{box.log()[-2000:]}"

    search = page.get_by_test_id("knowledge-search")
    search.fill("when can young tomato plants go out")
    search.press("Enter")
    results = page.get_by_test_id("search-result")
    expect(results.first).to_be_visible()
    expect(results.first.get_by_test_id("search-result-text")).to_contain_text("twelve degrees")
    expect(results.first).to_contain_text("garden.md")
    expect(page.get_by_test_id("search-notice")).to_have_count(0)  # searched by meaning too
    assert box.requests(EMBEDDINGS) > indexed, "the question was not embedded by the server"

    # the server goes away: a document added meanwhile waits for it
    box.kill()
    asked = box.requests(EMBEDDINGS)
    upload(page, kitchen)
    waiting = state_of(page, "kitchen.md")
    expect(waiting).to_contain_text("Waiting for the server", timeout=INDEX_TIMEOUT_MS)
    expect(waiting).to_contain_text(NAME)
    expect(state_of(page, "garden.md")).to_have_text(READY)  # what was indexed stays

    open_models(page, server)
    card = engine_card(page, NAME)
    expect(card.locator(ENGINE_STATE)).to_have_text(re.compile(r"^Not answering: .*\S"))

    # back again: Check now says so, and the waiting document is indexed by itself
    box.restart()
    card.get_by_role("button", name="Check now").click()
    expect(page.locator(".q-notification", has_text=f"{NAME}: Answering")).to_be_visible()
    expect(card.locator(ENGINE_STATE)).to_have_text(re.compile(r"^Answering \(checked in \d+ ms"))
    expect(page.locator(ENGINE_CARD)).to_have_count(1)

    open_from_drawer(page, server, "knowledge")
    page.get_by_test_id("collection-item").filter(has_text="Garden").click()
    expect(page).to_have_url(collection_url)
    expect(page.get_by_test_id("collection-title")).to_have_text("Garden")
    expect(state_of(page, "kitchen.md")).to_have_text(READY, timeout=INDEX_TIMEOUT_MS)
    expect(state_of(page, "garden.md")).to_have_text(READY)
    assert box.requests(EMBEDDINGS) > asked, "the waiting document was not embedded by the server"
