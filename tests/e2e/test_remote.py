"""Engine servers in a real Chromium against a real `gridless serve`: the owner adds a server
on the Models page, a conversation answers with its model, the server is killed mid-answer
and the answer is made again on this device, and the server is removed.

The server on the other machine is `llama_cpp.server` on loopback (`tests/llama_server.py`),
serving the bundled SmolLM2 as `smollm2`; it runs as a subprocess so it can be SIGKILLed and
started again on the same port, and its access log says which requests reached it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.llama_server import LlamaServer
from tests.server import ServerProcess

from .conftest import wait_live
from .test_chat import (
    ANSWER,
    ASSISTANT,
    COMPLETE_STATS,
    MODEL,
    SEND,
    STATS,
    STOP,
    USER,
    conversation_id,
    send,
    sign_in,
    snapshot,
    wait_complete,
    wait_for_text,
)
from .test_models import open_models

pytestmark = pytest.mark.e2e

ALIAS = "smollm2"
NAME = "Laptop"
OPTION = f"{ALIAS} · {NAME}"
LOCAL = "smollm2-135m-instruct"  # the bundled model's id, shown in the header
LOCAL_NAME = "SmolLM2 135M Instruct"  # and its name
CHAT = "POST /v1/chat/completions"
ANSWER_TIMEOUT_MS = 180_000

DIALOG = ".q-dialog"
ENGINE_CARD = ".q-card[data-testid^='engine-']"
ENGINE_STATE = "[data-testid^='engine-state-']"
BRANCH_LABEL = "[data-testid=branch-label]"


# the server on the other machine ------------------------------------------------------------------

@pytest.fixture(scope="module")
def remote(smollm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    folder = tmp_path_factory.mktemp("remote")
    llama = LlamaServer(model=smollm_path, alias=ALIAS, log_path=folder / "llama-server.log")
    llama.start()
    yield llama
    llama.stop()


# helpers ------------------------------------------------------------------------------------------

def engine_card(page: Page, name: str = NAME) -> Locator:
    return page.locator(ENGINE_CARD).filter(has=page.get_by_text(name, exact=True))


def add_server(page: Page, server: ServerProcess, remote: LlamaServer) -> Locator:
    """On the Models page (Chat tab), add the server as "Laptop"; returns its card."""
    open_models(page, server)
    expect(page.locator(ENGINE_CARD)).to_have_count(0)
    page.get_by_test_id("add-engine").click()
    dialog = page.locator(DIALOG)
    expect(dialog).to_contain_text("Add an engine server")
    page.get_by_test_id("engine-url").fill(remote.netloc)
    page.get_by_test_id("engine-name").fill(NAME)
    page.get_by_test_id("engine-add").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(".q-notification", has_text=f"{NAME} added with 1 model.")).to_be_visible()
    card = engine_card(page)
    expect(card).to_have_count(1)
    expect(card.locator(ENGINE_STATE)).to_have_text(re.compile(r"^Answering \(checked in \d+ ms"))
    expect(card.get_by_text(ALIAS, exact=True)).to_be_visible()
    expect(card).to_contain_text(f"http://{remote.netloc}")
    expect(card).to_contain_text("plain http")
    return card


def open_settings(page: Page) -> Locator:
    page.get_by_test_id("settings").click()
    dialog = page.locator(DIALOG)
    expect(dialog).to_contain_text("Conversation settings")
    return dialog


def model_options(page: Page, dialog: Locator) -> list[str]:
    """The labels the settings dialog's model select offers (its menu is closed again after)."""
    select = dialog.get_by_test_id("settings-model")
    select.click()
    options = page.get_by_role("option")
    expect(options.first).to_be_visible()
    labels = [text.strip() for text in options.all_inner_texts()]
    page.keyboard.press("Escape")
    expect(options).to_have_count(0)
    return labels


def choose(page: Page, select: Locator, option: str) -> None:
    """Pick `option` in a Quasar select, as a person does: open it, click the option."""
    select.click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(select).to_contain_text(option)
    expect(page.get_by_role("option")).to_have_count(0)  # the menu has faded out: it covers the form below


# tests --------------------------------------------------------------------------------------------

def test_answer_from_a_server_then_here_when_it_goes_away(server: ServerProcess, remote: LlamaServer,
                                                          page: Page) -> None:
    if not remote.running:
        remote.start()
    add_server(page, server, remote)

    # a new chat that answers with the laptop's model
    sign_in(page, server)
    dialog = open_settings(page)
    choose(page, dialog.get_by_test_id("settings-model"), OPTION)
    dialog.get_by_label("Max tokens per answer").fill("1500")  # room for a long story below
    page.get_by_test_id("settings-save").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(MODEL)).to_have_text(re.compile(re.escape(OPTION)))  # the header says where it runs
    conv_id = conversation_id(page)

    before = remote.requests(CHAT)
    send(page, "Say hello in one short sentence.")
    answer = wait_complete(page)
    assert answer, "the laptop's answer is empty"
    expect(page.locator(STATS).last).to_have_text(COMPLETE_STATS)
    assert remote.requests(CHAT) > before, f"the answer did not come from the laptop:\n{remote.log()[-2000:]}"
    expect(page.locator("[data-testid=answer-error]")).to_have_count(0)

    # the laptop goes away while it writes a long story
    send(page, "Write a very long story about a lighthouse keeper and a storm, with many details.")
    wait_for_text(page, 40)
    seen = snapshot(page)
    assert seen["stop"], "the story had already ended before the laptop went away"
    remote.kill()
    written = str(seen["answer"]).strip()

    last = page.locator(ASSISTANT).last
    error = last.get_by_test_id("answer-error")
    expect(error).to_be_visible(timeout=60_000)
    expect(error).to_contain_text(NAME)
    expect(error).to_contain_text("stopped answering")
    expect(page.locator(STOP)).to_be_hidden()
    expect(page.locator(SEND)).to_be_visible()
    cut = last.locator(".gl-answer").inner_text().strip()
    assert len(cut) >= len(written) and cut.startswith(written[:30]), (written, cut)
    here = last.get_by_test_id("answer-here")
    expect(here).to_contain_text(f"Answer here with {LOCAL_NAME}")

    here.click()
    expect(page.locator(ASSISTANT)).to_have_count(2)
    answer_here = page.locator(ASSISTANT).last
    expect(answer_here.locator(BRANCH_LABEL)).to_have_text("2/2", timeout=ANSWER_TIMEOUT_MS)
    local_answer = wait_complete(page)
    expect(answer_here.get_by_test_id("answer-error")).to_have_count(0)
    expect(answer_here.get_by_test_id("answer-here")).to_have_count(0)
    expect(page.locator(USER)).to_have_count(2)
    expect(page.locator(MODEL)).to_contain_text(LOCAL)  # the header names the model that answers now
    assert conversation_id(page) == conv_id

    answer_here.get_by_role("button", name="Previous version").click()  # the cut answer is kept
    expect(answer_here.locator(BRANCH_LABEL)).to_have_text("1/2")
    expect(answer_here.get_by_test_id("answer-error")).to_contain_text("stopped answering")
    assert answer_here.locator(".gl-answer").inner_text().strip() == cut
    answer_here.get_by_role("button", name="Next version").click()
    expect(answer_here.locator(BRANCH_LABEL)).to_have_text("2/2")
    assert page.locator(ANSWER).last.inner_text().strip() == local_answer

    page.reload()  # it stays so, and the conversation now answers here
    wait_live(page)
    expect(page.locator(MODEL)).to_contain_text(LOCAL)
    expect(page.locator(ASSISTANT).last.locator(BRANCH_LABEL)).to_have_text("2/2")
    dialog = open_settings(page)
    expect(dialog.get_by_test_id("settings-model")).to_contain_text("App default")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    open_models(page, server)
    expect(engine_card(page).locator(ENGINE_STATE)).to_have_text(re.compile(r"^Not answering: .*\S"))


def test_remove_a_server(server: ServerProcess, remote: LlamaServer, page: Page) -> None:
    if not remote.running:
        remote.start()
    add_server(page, server, remote)

    sign_in(page, server)
    dialog = open_settings(page)
    assert OPTION in model_options(page, dialog)
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()

    open_models(page, server)
    card = engine_card(page)
    card.get_by_role("button", name="Remove").click()
    confirm = page.locator(DIALOG)
    expect(confirm).to_contain_text(f"Remove {NAME}?")
    confirm.get_by_role("button", name="Cancel").click()  # changing one's mind keeps it
    expect(confirm).to_be_hidden()
    expect(card).to_have_count(1)

    card.get_by_role("button", name="Remove").click()
    expect(confirm).to_contain_text("Its models are no longer offered")
    confirm.get_by_test_id("confirm-ok").click()
    expect(confirm).to_be_hidden()
    expect(page.locator(ENGINE_CARD)).to_have_count(0)
    page.reload()
    wait_live(page)
    expect(page.get_by_test_id("add-engine")).to_be_visible()
    expect(page.locator(ENGINE_CARD)).to_have_count(0)

    sign_in(page, server)
    dialog = open_settings(page)
    options = model_options(page, dialog)
    assert not any(NAME in option for option in options), options
    assert any(LOCAL_NAME in option for option in options), options
