"""Thinking and tool calls in the chat, in a real Chromium against a real `gridless serve`: the
collapsible thinking block above an answer (streaming, then "Thought for …"), the thinking turned
off in the conversation settings, a tool called first with its arguments and result shown, and
both kept with the answer across a reload.

The models are the bundled SmolLM2 with two published families' chat templates, put in the
server's models folder before it starts: DeepSeek-R1-Distill's (its prompt opens a think block, so
the model thinks until `</think>` or the budget) and Qwen3's (which offers tools). Their words are
those of a 135M model; what is checked is where they go and how they are shown. The temperature is
set to 0 in the settings dialog, so each run asks the model the same thing and gets the same answer.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.server import ServerProcess

from .conftest import wait_live
from .test_chat import ANSWER_TIMEOUT_MS, ASSISTANT, MODEL, SEND, STATS, STOP, send, sign_in

pytestmark = pytest.mark.e2e

THINKER = "smollm2-deepseek-r1-distill"
TOOL_USER = "smollm2-qwen3"
FAMILIES = {THINKER: "deepseek-r1-distill", TOOL_USER: "qwen3"}

SETTINGS = "[data-testid=settings]"
DIALOG = ".q-dialog"
SETTINGS_MODEL = "[data-testid=settings-model]"
SETTINGS_THINKING = "[data-testid=settings-thinking]"
SETTINGS_BUDGET = "[data-testid=settings-thinking-budget]"
SETTINGS_TOOLS = "[data-testid=settings-tools]"
SETTINGS_SAVE = "[data-testid=settings-save]"
THINKING = "[data-testid=thinking]"
THINKING_TEXT = "[data-testid=thinking-text]"
TOOL_CALLS = "[data-testid=tool-calls]"
TOOL_CALL = "[data-testid=tool-call]"
TOOL_RESULT = "[data-testid=tool-result]"
ANSWER_MD = ".gl-answer"
HEADER = ".q-expansion-item__container > .q-item"  # an expansion's clickable title line

THOUGHT = re.compile(r"^Thought for (a moment|\d+ s|\d+ min)$")
TOOL_TITLE = re.compile(r"^(Calculator|Date and time|Unit converter): ")
QUESTION = "Name three colours."
"""Asked of the thinking model. At temperature 0 with Why is the sky blue? the 135M model thinks a
sentence, and then answers by repeating that sentence word for word: whether the page put the
thinking in the answer could not be told from the answer. To this question it answers other words."""
MAX_TOKENS = 120  # short answers: the 135M model at temperature 0 tends to repeat itself until the limit

# What the page showed while the next answer was written, recorded at every change of the page (a
# poll from the test could miss a state that lasts a tenth of a second): its thinking block's titles,
# whether the block was there before any answer text, and whether a tool call line showed while the
# Stop button was up.
WATCH_JS = """() => {
  const seen = window.glSeen = {titles: [], thinkingBeforeText: false, toolsWhileStreaming: false};
  const before = document.querySelectorAll('[data-testid=assistant-message]').length;
  const look = () => {  // the new answer: the one after those shown before
    const message = document.querySelectorAll('[data-testid=assistant-message]')[before];
    if (!message) return;
    const block = message.querySelector('[data-testid=thinking]');
    const title = block?.querySelector('.q-item__label')?.textContent.trim();
    if (title && seen.titles.at(-1) !== title) seen.titles.push(title);
    const text = message.querySelector('.gl-answer')?.innerText.trim() ?? '';
    if (block && !text) seen.thinkingBeforeText = true;
    const stop = document.querySelector('[data-testid=stop]');
    const calls = message.querySelectorAll('[data-testid=tool-call]');
    if (calls.length && stop && stop.checkVisibility()) seen.toolsWhileStreaming = true;
  };
  window.glObserver?.disconnect();
  window.glObserver = new MutationObserver(look);
  window.glObserver.observe(document.body, {subtree: true, childList: true, characterData: true,
                                            attributes: true});
  look();
}"""


# the server ---------------------------------------------------------------------------------------

def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _wait_listed(server: ServerProcess, model_ids: set[str], timeout: float = 60) -> None:
    """The server looks through its models folder at start, partly in the background: wait until
    it lists the models put there."""
    deadline = time.monotonic() + timeout
    listed: set[str] = set()
    while time.monotonic() < deadline:
        response = httpx.get(f"{server.base}/v1/models", headers=server.headers(), timeout=10)
        listed = {m["id"] for m in response.json()["data"]} if response.status_code == 200 else set()
        if model_ids <= listed:
            return
        time.sleep(0.2)
    raise AssertionError(f"the server lists {sorted(listed)}, not {sorted(model_ids)}:\n{server.log()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, family_model: Callable[[str], Path]) -> Iterator[ServerProcess]:
    """One server for the module, with the thinking and the tool-calling models in its models folder
    (the bundled SmolLM2 stays the app's default)."""
    data = tmp_path_factory.mktemp("thinking-tools") / "data"
    models = data / "models"
    models.mkdir(parents=True)
    for model_id, family in FAMILIES.items():
        _link_or_copy(family_model(family), models / f"{model_id}.gguf")
    with ServerProcess(data_dir=data) as srv:
        _wait_listed(srv, set(FAMILIES))
        yield srv


# helpers ------------------------------------------------------------------------------------------

def choose(page: Page, select: Locator, option: str) -> None:
    """Pick `option` in a Quasar select, as a person does: open it, click the option."""
    select.click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(select).to_contain_text(option)
    expect(page.get_by_role("option")).to_have_count(0)  # the menu has faded out: it covers the form below


def set_up(page: Page, *, model: str | None = None, thinking: str | None = None, budget: int | None = None,
           tools: str | None = None) -> None:
    """Change the conversation's settings in the ⚙ dialog: the model, the temperature to 0, short
    answers, and the thinking and tools as given (None: left as they are); save."""
    page.locator(SETTINGS).click()
    dialog = page.locator(DIALOG)
    expect(dialog).to_contain_text("Conversation settings")
    if model is not None:
        choose(page, dialog.locator(SETTINGS_MODEL), model)
    temperature = dialog.get_by_role("slider").first  # the first slider is the temperature's
    track = temperature.locator(".q-slider__track-container")  # what takes the keyboard
    track.focus()
    for _ in range(3):
        track.press("PageDown")  # 10 steps of 0.05 down, stopping at 0
    expect(temperature).to_have_attribute("aria-valuenow", "0")
    expect(dialog).to_contain_text("Temperature 0.00")  # the server has the value (it writes the label)
    dialog.get_by_label("Max tokens per answer").fill(str(MAX_TOKENS))
    if thinking is not None:
        choose(page, dialog.locator(SETTINGS_THINKING), thinking)
    budget_field = dialog.locator(SETTINGS_BUDGET)
    if budget is not None:
        expect(budget_field).to_be_visible()  # shown for "at most a number of tokens" only
        budget_field.fill(str(budget))
    elif thinking is not None:
        expect(budget_field).to_be_hidden()
    if tools is not None:
        choose(page, dialog.locator(SETTINGS_TOOLS), tools)
    dialog.locator(SETTINGS_SAVE).click()
    expect(dialog).to_be_hidden()
    if model is not None:
        expect(page.locator(MODEL)).to_contain_text(model)


def watch(page: Page) -> None:
    """Start recording what the next answer shows while it is written (`seen`)."""
    page.evaluate(WATCH_JS)


def seen(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate("window.glSeen")
    return result


def wait_finished(page: Page, answers: int) -> Locator:
    """Wait until the page shows `answers` answers and the last is finished (its stats with tok/s,
    the Send button back); returns the last answer."""
    expect(page.locator(ASSISTANT)).to_have_count(answers)
    expect(page.locator(STATS).last).to_contain_text("tok/s", timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator(STOP)).to_be_hidden()
    expect(page.locator(SEND)).to_be_visible()
    return page.locator(ASSISTANT).last


def title_of(block: Locator) -> Locator:
    return block.locator(HEADER).first.locator(".q-item__label").first


def expand(block: Locator) -> None:
    """Open a collapsed thinking block or tool call line by its title line."""
    header = block.locator(HEADER).first
    expect(header).to_have_attribute("aria-expanded", "false")
    header.click()
    expect(header).to_have_attribute("aria-expanded", "true")


def plain(text: str) -> str:
    return " ".join(text.split())


def thinking_of(message: Locator) -> tuple[str, str]:
    """The title and the text of an answer's thinking block, opening it to read the text."""
    block = message.locator(THINKING)
    expect(block).to_have_count(1)
    expect(title_of(block)).to_have_text(THOUGHT)
    text = block.locator(THINKING_TEXT)
    expect(text).to_be_hidden()  # collapsed: the answer comes first
    expand(block)
    expect(text).to_be_visible()
    shown = plain(text.inner_text())
    assert shown, "the thinking block is empty"
    return title_of(block).inner_text().strip(), shown


def tool_calls_of(message: Locator) -> list[tuple[str, dict[str, Any], str]]:
    """Each tool call line of an answer: its title, and (opening it) its arguments and result."""
    lines = message.locator(f"{TOOL_CALLS} {TOOL_CALL}")
    calls = []
    for i in range(lines.count()):
        line = lines.nth(i)
        title = title_of(line).inner_text().strip()
        expand(line)
        code = line.locator("code").first
        expect(code).to_be_visible()
        arguments = json.loads(code.inner_text())
        assert isinstance(arguments, dict), arguments
        result = line.locator(TOOL_RESULT)
        expect(result).to_be_visible()
        calls.append((title, arguments, result.inner_text().strip()))
    return calls


# tests --------------------------------------------------------------------------------------------

def test_thinking_streams_into_a_block_above_the_answer_and_can_be_turned_off(
        server: ServerProcess, page: Page) -> None:
    sign_in(page, server)
    set_up(page, model=THINKER, thinking="Think, at most a number of tokens", budget=20)
    watch(page)
    send(page, QUESTION)
    message = wait_finished(page, 1)
    live = seen(page)
    print(f"while the first answer was written: {live}")
    assert live["titles"], "no thinking block was shown while the answer was written"
    assert THOUGHT.match(live["titles"][-1]), live
    assert all(t == "Thinking…" or THOUGHT.match(t) for t in live["titles"]), live
    if "Thinking…" not in live["titles"]:  # a short think may be over before the page's next look
        print("the thinking was over before the page showed it as live (Thinking…)")

    answer = message.locator(ANSWER_MD)
    answer_text = plain(answer.inner_text())
    assert answer_text, "the budget closes the think block, so an answer follows it"
    block = message.locator(THINKING)
    block_box, answer_box = block.bounding_box(), answer.bounding_box()
    assert block_box and answer_box and block_box["y"] + block_box["height"] <= answer_box["y"] + 1, \
        "the thinking block is not above the answer"
    title, thought = thinking_of(message)
    assert thought not in answer_text, "the thinking is repeated in the answer"
    assert "<think>" not in answer_text and "</think>" not in answer_text, answer_text

    set_up(page, thinking="Answer without thinking")
    watch(page)
    send(page, "Why is the grass green?")
    plain_answer = wait_finished(page, 2)
    assert plain(plain_answer.locator(ANSWER_MD).inner_text()), "the answer without thinking is empty"
    expect(plain_answer.locator(THINKING)).to_have_count(0)
    assert seen(page)["titles"] == [], "a thinking block showed while the answer without thinking was written"

    page.reload()  # both kept as they were shown
    wait_live(page)
    expect(page.locator(ASSISTANT)).to_have_count(2)
    first, second = page.locator(ASSISTANT).first, page.locator(ASSISTANT).last
    assert thinking_of(first) == (title, thought)
    assert plain(first.locator(ANSWER_MD).inner_text()) == answer_text
    expect(second.locator(THINKING)).to_have_count(0)


def test_a_tool_called_first_shows_its_arguments_and_result_and_is_kept(server: ServerProcess, page: Page) -> None:
    sign_in(page, server)
    set_up(page, model=TOOL_USER, tools="Always use one first (for small models)")
    watch(page)
    send(page, "What is 12 times 7?")
    line = page.locator(ASSISTANT).last.locator(TOOL_CALL).first
    expect(line).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    message = wait_finished(page, 1)
    live = seen(page)
    print(f"while the answer was written: {live}")
    if not live["toolsWhileStreaming"]:
        print("the tool call line was not seen before the answer was finished")

    calls = tool_calls_of(message)
    print(f"tool calls: {calls}")
    assert calls, "no tool call line"
    for title, arguments, result in calls:
        assert TOOL_TITLE.match(title), title
        assert result, f"the call {title} shows no result"
        assert all(plain(str(v)) in title for v in arguments.values()), f"{title} does not show {arguments}"
        if title.startswith("Calculator") and re.fullmatch(r"\s*12\s*[*×x]\s*7\s*", arguments.get("expression", "")):
            assert "84" in result, result
    thinking = [t.inner_text().strip() for t in message.locator(f"{THINKING} {HEADER} .q-item__label").all()]
    answer_text = plain(message.locator(ANSWER_MD).inner_text())
    assert answer_text, "no answer after the tool's result"

    page.reload()  # the calls (and any thinking) are kept with the answer
    wait_live(page)
    expect(page.locator(ASSISTANT)).to_have_count(1)
    message = page.locator(ASSISTANT).last
    expect(message.locator(TOOL_CALL)).to_have_count(len(calls))
    assert tool_calls_of(message) == calls
    expect(message.locator(THINKING)).to_have_count(len(thinking))
    if thinking:
        assert thinking_of(message)[0] == thinking[0]
    assert plain(message.locator(ANSWER_MD).inner_text()) == answer_text
    expect(page.locator(MODEL)).to_contain_text(TOOL_USER)
