"""Tools and thinking put to real families' chat templates, and their calls read back.

Each published template in `tests/data/templates/` is rendered as the worker renders it
(llama-cpp-python's `Jinja2ChatFormatter`, with `plan_reply`'s messages and template variables)
for a conversation with tools, a past call and its result; the tools, the call and the result
must be where the family puts them, and thinking on or off must change the prompt by the
family's own mechanism. Then what a family writes for a call, cut anywhere, is read back by
`ReplyParser` as that call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from backend.engines.llm import ChatRequest
from backend.engines.reply_format import (
    ParsedCall,
    ReplyParser,
    TemplateFeatures,
    ThinkSwitch,
    ToolSyntax,
    template_features,
)
from backend.engines.reply_plan import TOOLS_PREAMBLE, ReplyPlan, finish_prompt, plan_reply

TEMPLATES = Path(__file__).resolve().parents[2] / "data" / "templates"
FAMILIES = sorted(p.stem for p in TEMPLATES.glob("*.jinja"))
CALL_ID = "abc123XYZ"
"""Nine letters and digits: Mistral's templates refuse any other id."""
SYSTEM = "You are a helpful assistant."
QUESTION = "And in Paris?"

TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "Local time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
]

CONVERSATION: list[dict[str, Any]] = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "What is the weather in Rome?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": CALL_ID, "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]},
    {"role": "tool", "tool_call_id": CALL_ID, "name": "get_weather", "content": '{"temperature": 21}'},
    # Mistral's templates insist that the assistant answers a tool result before the user speaks again
    {"role": "assistant", "content": "It is 21 degrees in Rome."},
    {"role": "user", "content": QUESTION},
]
"""As the /v1 route hands it to the engine: arguments of past calls as objects, a tool message's
call id and function name."""


@cache
def template(family: str) -> str:
    return (TEMPLATES / f"{family}.jinja").read_text(encoding="utf-8")


def features(family: str) -> TemplateFeatures:
    return template_features(template(family))


def render(family: str, plan: ReplyPlan, *, generation_prompt: bool = True) -> tuple[str, bool]:
    """The prompt as `LlmEngine._apply_template` makes it, and whether it starts in a think block."""
    formatter = Jinja2ChatFormatter(template=template(family), eos_token="</s>", bos_token="<s>",
                                    add_generation_prompt=generation_prompt)
    prompt = formatter(messages=plan.messages, **plan.template_kwargs).prompt  # type: ignore[arg-type]
    return finish_prompt(plan, prompt)


def prompt_for(family: str, **request: Any) -> tuple[str, bool]:
    fields: dict[str, Any] = {"messages": CONVERSATION, "tools": TOOLS, **request}
    return render(family, plan_reply(ChatRequest(**fields), features(family)))


# What each template says about itself ---------------------------------------------------------

EXPECTED_FEATURES = {
    # family: (thinking, think_switch, tools, tool_syntax)
    "qwen3": (True, ThinkSwitch.VARIABLE, True, ToolSyntax.HERMES),
    "llama-3.2": (False, ThinkSwitch.NONE, True, ToolSyntax.LLAMA3),
    "mistral-nemo": (False, ThinkSwitch.NONE, True, ToolSyntax.MISTRAL),
    "mistral-small-3.2": (False, ThinkSwitch.NONE, True, ToolSyntax.MISTRAL_ARGS),
    "gpt-oss": (True, ThinkSwitch.EFFORT, True, ToolSyntax.HARMONY),
    "deepseek-r1-distill": (True, ThinkSwitch.EMPTY_BLOCK, False, ToolSyntax.NONE),
    "smollm3": (True, ThinkSwitch.VARIABLE, False, ToolSyntax.NONE),
    "hermes-3": (False, ThinkSwitch.NONE, True, ToolSyntax.HERMES),
    "phi-4-mini": (False, ThinkSwitch.NONE, True, ToolSyntax.PHI),
    "lfm2": (False, ThinkSwitch.NONE, True, ToolSyntax.LFM2),
    "granite-3.3": (None, None, True, ToolSyntax.PHI),  # its thinking is not pinned here: see test below
}


def test_every_template_file_is_covered() -> None:
    assert set(EXPECTED_FEATURES) == set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_features_of_each_family(family: str) -> None:
    found = features(family)
    thinking, switch, tools, syntax = EXPECTED_FEATURES[family]
    assert (found.tools, found.tool_syntax) == (tools, syntax)
    if thinking is not None:
        assert (found.thinking, found.think_switch) == (thinking, switch)
    assert found.labels() == [name for name, on in (("thinking", found.thinking), ("tools", tools)) if on]


def test_granite_reads_think_blocks() -> None:
    """Granite 3.3 writes `<think>…</think>` when its template's `thinking` is set: the parser must
    read such a block as thinking."""
    assert features("granite-3.3").thinking


# Where each family puts the tools, the past call and its result -----------------------------


@dataclass(frozen=True)
class Layout:
    tools_in: tuple[str, str]
    """The tools are offered between these two markers (the first occurrence of each after the start)."""
    call: str | None
    """How the template writes the past call; None when it does not write calls at all."""
    result: str
    ends: str
    """The end of the prompt with thinking left to the model."""


LAYOUTS = {
    "qwen3": Layout(
        ("<|im_start|>system\n", "<|im_end|>"),
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'
        "<|im_end|>",
        '<|im_start|>user\n<tool_response>\n{"temperature": 21}\n</tool_response><|im_end|>',
        "<|im_start|>assistant\n"),
    "llama-3.2": Layout(
        ("<|start_header_id|>user<|end_header_id|>", "<|eot_id|>"),
        '<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "get_weather", "parameters": {"city": "Rome"}}'
        "<|eot_id|>",
        '<|start_header_id|>ipython<|end_header_id|>\n\n"{\\"temperature\\": 21}"<|eot_id|>',
        "<|start_header_id|>assistant<|end_header_id|>\n\n"),
    "mistral-nemo": Layout(
        ("[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]"),
        f'[/INST][TOOL_CALLS][{{"name": "get_weather", "arguments": {{"city": "Rome"}}, "id": "{CALL_ID}"}}]</s>',
        f'[TOOL_RESULTS]{{"content": {{"temperature": 21}}, "call_id": "{CALL_ID}"}}[/TOOL_RESULTS]',
        f"[INST]{SYSTEM}\n\n{QUESTION}[/INST]"),
    "mistral-small-3.2": Layout(
        ("[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]"),
        f'[/INST][TOOL_CALLS]get_weather[CALL_ID]{CALL_ID}[ARGS]{{"city": "Rome"}}</s>',
        f'[TOOL_RESULTS]{CALL_ID}[TOOL_CONTENT]{{"temperature": 21}}[/TOOL_RESULTS]',
        f"[INST]{QUESTION}[/INST]"),
    "gpt-oss": Layout(
        ("<|start|>developer<|message|>", "<|end|>"),
        '<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Rome"}<|call|>',
        '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>"{\\"temperature\\": 21}"<|end|>',
        f"<|start|>user<|message|>{QUESTION}<|end|><|start|>assistant"),
    "deepseek-r1-distill": Layout(  # no tools section: the app describes them in the system text
        ("<s>", "<｜User｜>"),
        '<｜Assistant｜><tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'
        "<｜end▁of▁sentence｜>",
        '<｜User｜><tool_response>\n{"temperature": 21}\n</tool_response><｜Assistant｜>',
        f"<｜User｜>{QUESTION}<｜Assistant｜><think>\n"),
    "smollm3": Layout(  # no tools section either
        ("<|im_start|>system\n", "<|im_end|>"),
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'
        "<|im_end|>",
        '<|im_start|>user\n<tool_response>\n{"temperature": 21}\n</tool_response><|im_end|>',
        "<|im_start|>assistant\n"),
    "hermes-3": Layout(
        ("<|im_start|>system\n", "<|im_end|>"),
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'
        "<|im_end|>",
        '<|im_start|>tool\n<tool_response>\n{"temperature": 21}\n</tool_response>\n<|im_end|>',
        "<|im_start|>assistant\n"),
    "phi-4-mini": Layout(
        ("<|system|>", "<|end|>"),
        '<|assistant|><|tool_call|>{"name": "get_weather", "arguments": {"city": "Rome"}}<|/tool_call|><|end|>',
        '<|tool_response|>"{\\"temperature\\": 21}"<|end|>',
        "<|assistant|>"),
    "lfm2": Layout(
        ("List of tools: <|tool_list_start|>", "<|tool_list_end|>"),
        '<|im_start|>assistant\n<|tool_call_start|>[{"name": "get_weather", "arguments": {"city": "Rome"}, '
        f'"id": "{CALL_ID}"}}]<|tool_call_end|><|im_end|>',
        '<|im_start|>tool\n<|tool_response_start|>{"temperature": 21}<|tool_response_end|><|im_end|>',
        "<|im_start|>assistant\n"),
    "granite-3.3": Layout(
        ("<|start_of_role|>available_tools<|end_of_role|>", "<|end_of_text|>"),
        None,  # the template shows an assistant message's content only
        '<|start_of_role|>tool<|end_of_role|>{"temperature": 21}<|end_of_text|>',
        "<|start_of_role|>assistant<|end_of_role|>"),
}


def between(text: str, start: str, end: str) -> str:
    assert start in text, f"{start!r} is not in the prompt"
    rest = text[text.index(start) + len(start):]
    assert end in rest, f"{end!r} does not follow {start!r}"
    return rest[:rest.index(end)]


@pytest.mark.parametrize("family", FAMILIES)
def test_tools_call_and_result_are_where_the_family_puts_them(family: str) -> None:
    layout = LAYOUTS[family]
    prompt, _ = prompt_for(family)
    offered = between(prompt, *layout.tools_in)
    for tool in TOOLS:
        assert tool["function"]["name"] in offered
        assert tool["function"]["description"] in offered
    if not features(family).tools:  # the app's own description, in the format the parser reads
        assert TOOLS_PREAMBLE.split("\n")[0] in offered and "<tools>\n" in offered
        for tool in TOOLS:
            assert json.dumps(tool) in offered
    assert SYSTEM in prompt
    assert layout.result in prompt
    if layout.call is not None:
        assert layout.call in prompt
        assert prompt.index(layout.call) < prompt.index(layout.result)
    assert prompt.index(layout.result) < prompt.rindex(QUESTION)
    assert prompt.endswith(layout.ends)


TOOLS_ALWAYS_DEFINED = pytest.mark.xfail(strict=True, raises=TypeError, reason=(
    "the template iterates `tools` whenever it is defined, and Jinja2ChatFormatter always defines it "
    "(as None when there are none); llama.cpp leaves it undefined"))


@pytest.mark.parametrize("family", [pytest.param(f, marks=TOOLS_ALWAYS_DEFINED)
                                    if f in ("phi-4-mini", "hermes-3") else f for f in FAMILIES])
def test_without_tools_nothing_is_offered(family: str) -> None:
    """`tool_choice` "none" (and no tools at all) offers no tools; the past call and result stay."""
    requests: list[dict[str, Any]] = [{"tool_choice": "none"}, {"tools": []}]
    for request in requests:
        prompt, _ = prompt_for(family, **request)
        assert TOOLS[1]["function"]["description"] not in prompt
        assert "get_time" not in prompt
        assert LAYOUTS[family].result in prompt


# Thinking on and off, by each family's mechanism ---------------------------------------------


def test_qwen3_thinking_off_closes_an_empty_think_block() -> None:
    off, starts = prompt_for("qwen3", thinking="off")
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n") and not starts
    on, starts = prompt_for("qwen3", thinking="on")
    assert on.endswith("<|im_start|>assistant\n") and not starts
    assert on == prompt_for("qwen3")[0]  # on is the family's default


def test_smollm3_thinking_off_is_its_no_think_mode() -> None:
    off, _ = prompt_for("smollm3", thinking="off")
    assert "Reasoning Mode: /no_think" in off and "Reasoning Mode: /think" not in off
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n")
    on, starts = prompt_for("smollm3", thinking="on")
    assert "Reasoning Mode: /think" in on and on.endswith("<|im_start|>assistant\n") and not starts
    # the app's tool description stays in the system turn either way
    assert "<tools>" in between(off, "<|im_start|>system\n", "<|im_end|>")


def test_deepseek_starts_in_thinking_and_off_closes_the_block() -> None:
    auto, starts = prompt_for("deepseek-r1-distill")
    assert auto.endswith("<｜Assistant｜><think>\n") and starts
    on, starts = prompt_for("deepseek-r1-distill", thinking="on")
    assert (on, starts) == (auto, True)
    off, starts = prompt_for("deepseek-r1-distill", thinking="off")
    assert off.endswith("<｜Assistant｜><think>\n\n</think>\n\n") and not starts


def test_gpt_oss_reasoning_effort_goes_to_its_system_message() -> None:
    assert "Reasoning: medium" in prompt_for("gpt-oss")[0]  # the template's default
    for effort in ("low", "medium", "high"):
        prompt, _ = prompt_for("gpt-oss", reasoning_effort=effort, thinking="on")
        assert f"Reasoning: {effort}" in between(prompt, "<|start|>system<|message|>", "<|end|>")
    # gpt-oss cannot stop thinking: off asks for as little as it allows
    assert "Reasoning: low" in prompt_for("gpt-oss", thinking="off")[0]


@pytest.mark.parametrize("family", [f for f in FAMILIES if EXPECTED_FEATURES[f][1] == ThinkSwitch.NONE])
def test_families_without_thinking_get_the_same_prompt_either_way(family: str) -> None:
    auto = prompt_for(family)
    assert prompt_for(family, thinking="on") == auto
    assert prompt_for(family, thinking="off") == auto


def test_a_required_call_turns_thinking_off_so_the_grammar_starts_at_the_call() -> None:
    prompt, starts = prompt_for("qwen3", tool_choice="get_weather", thinking="on")
    assert prompt.endswith("<think>\n\n</think>\n\n") and not starts
    prompt, starts = prompt_for("deepseek-r1-distill", tool_choice="required")
    assert prompt.endswith("</think>\n\n") and not starts


# Calls read back ------------------------------------------------------------------------------


def parse(parser: ReplyParser, pieces: list[str]) -> tuple[str, str, list[ParsedCall]]:
    content = reasoning = ""
    calls: list[ParsedCall] = []
    for piece in [*pieces, None]:
        out = parser.feed(piece) if piece is not None else parser.finish()
        content, reasoning, calls = content + out.content, reasoning + out.reasoning, calls + out.calls
    return content, reasoning, calls


def read_every_cut(family: str, text: str, *, starts_thinking: bool = False) -> tuple[str, str, list[ParsedCall]]:
    """The parser's reading of `text` whole, checked to be the same cut at every position and
    fed one character at a time."""
    def parser() -> ReplyParser:
        return ReplyParser(features(family), tools=True, starts_thinking=starts_thinking)

    whole = parse(parser(), [text])
    for i in range(len(text) + 1):
        assert parse(parser(), [text[:i], text[i:]]) == whole, f"cut at {i}"
    assert parse(parser(), list(text)) == whole, "one character at a time"
    return whole


PARIS = ParsedCall("get_weather", '{"city": "Paris"}')

WRITTEN_CALLS = [  # (family, what it writes, the thinking read from it)
    ("qwen3", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', ""),
    ("qwen3", '<think>\nThe user wants Paris.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": '
              '{"city": "Paris"}}\n</tool_call>', "\nThe user wants Paris.\n"),
    ("hermes-3", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', ""),
    ("llama-3.2", '{"name": "get_weather", "parameters": {"city": "Paris"}}', ""),
    ("llama-3.2", '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}', ""),
    ("mistral-nemo", f'[TOOL_CALLS][{{"name": "get_weather", "arguments": {{"city": "Paris"}}, "id": "{CALL_ID}"}}]',
     ""),
    ("mistral-small-3.2", '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}', ""),
    ("mistral-small-3.2", f'[TOOL_CALLS]get_weather[CALL_ID]{CALL_ID}[ARGS]{{"city": "Paris"}}', ""),
    ("gpt-oss", '<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>commentary '
                'to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}<|call|>', "Need the weather."),
    ("gpt-oss", ' to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Paris"}<|call|>', ""),
    ("phi-4-mini", '<|tool_call|>{"name": "get_weather", "arguments": {"city": "Paris"}}<|/tool_call|>', ""),
    ("granite-3.3", '<|tool_call|>[{"name": "get_weather", "arguments": {"city": "Paris"}}]', ""),
    ("lfm2", '<|tool_call_start|>[{"name": "get_weather", "arguments": {"city": "Paris"}}]<|tool_call_end|>', ""),
    ("smollm3", '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', ""),
]


@pytest.mark.parametrize(("family", "text", "reasoning"), WRITTEN_CALLS)
def test_a_call_as_the_family_writes_it_is_read_however_it_is_cut(family: str, text: str, reasoning: str) -> None:
    assert read_every_cut(family, text) == ("", reasoning, [PARIS])


def test_deepseek_thinks_then_calls_in_the_apps_format() -> None:
    text = 'They ask about Paris.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}' \
           "\n</tool_call>"
    assert read_every_cut("deepseek-r1-distill", text, starts_thinking=True) == \
        ("", "They ask about Paris.\n", [PARIS])


END_MARKERS = ("</s>", "<|im_end|>", "<|eot_id|>", "<|end|>", "<｜end▁of▁sentence｜>")
"""End-of-turn tokens: generation stops at them, so the parser never sees them."""


@pytest.mark.parametrize("family", [f for f in FAMILIES if LAYOUTS[f].call is not None])
def test_the_parser_reads_back_the_call_the_template_writes(family: str) -> None:
    """The round trip: the conversation up to the assistant's turn, and again with its call; what the
    second adds is what the family writes for a call, and the parser must read exactly that call."""
    question = [{"role": "user", "content": "What is the weather in Paris?"}]
    call = {"role": "assistant", "content": "", "tool_calls": [
        {"id": CALL_ID, "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}
    asked = plan_reply(ChatRequest(messages=question, tools=TOOLS), features(family))
    answered = plan_reply(ChatRequest(messages=[*question, call], tools=TOOLS), features(family))
    before, _ = render(family, asked)
    after, _ = render(family, answered, generation_prompt=False)
    before = before.removesuffix("<think>\n")  # DeepSeek opens a think block that past turns leave out
    assert after.startswith(before), "the template writes the assistant's turn after its generation prompt"
    written = after[len(before):].rstrip()
    while written.endswith(END_MARKERS):
        written = written[:written.rindex(next(m for m in END_MARKERS if written.endswith(m)))].rstrip()
    content, reasoning, calls = read_every_cut(family, written)
    assert calls == [PARIS], written
    assert content.strip() == "" and reasoning.strip() == ""


# A template without a tools section -----------------------------------------------------------


@pytest.fixture(scope="module")
def chatml(smollm_path: Path) -> str:
    from tests.ggufs import chat_template_of

    return chat_template_of(smollm_path)


def test_a_template_without_tools_gets_the_apps_description_and_tool_turns_as_the_users(chatml: str) -> None:
    found = template_features(chatml)
    assert (found.tools, found.thinking, found.tool_syntax) == (False, False, ToolSyntax.NONE)
    messages = [m for m in CONVERSATION if m["role"] != "assistant" or m.get("tool_calls")]  # user after tool
    plan = plan_reply(ChatRequest(messages=messages, tools=TOOLS), found)
    assert plan.tools_on and "tools" not in plan.template_kwargs
    roles = [m["role"] for m in plan.messages]
    assert roles == ["system", "user", "assistant", "user"]  # the result and the next question are one turn
    system, _, call, result = plan.messages
    assert system["content"].startswith(SYSTEM + "\n\n# Tools\n")
    for tool in TOOLS:
        assert json.dumps(tool) in system["content"]
    assert call["content"] == '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'
    assert result["content"] == f'<tool_response>\n{{"temperature": 21}}\n</tool_response>\n{QUESTION}'
    assert not any({"tool_calls", "tool_call_id", "name"} & set(m) for m in plan.messages)
    assert CONVERSATION[2]["tool_calls"] and CONVERSATION[3]["role"] == "tool"  # the request is left as it was
    prompt = Jinja2ChatFormatter(template=chatml, eos_token="<|im_end|>", bos_token="<|im_start|>")(
        messages=plan.messages).prompt  # type: ignore[arg-type]
    assert prompt.startswith(f"<|im_start|>system\n{SYSTEM}\n\n# Tools")
    assert "<|im_start|>tool" not in prompt and prompt.endswith("<|im_start|>assistant\n")
    # and the parser reads the format the description asks for
    parser = ReplyParser(found, tools=True)
    assert parse(parser, ['<tool_call>\n{"name": "get_time", "arguments": {"city": "Oslo"}}\n</tool_call>'])[2] == \
        [ParsedCall("get_time", '{"city": "Oslo"}')]


def test_without_a_system_message_the_description_is_one(chatml: str) -> None:
    plan = plan_reply(ChatRequest(messages=[{"role": "user", "content": "Hi"}], tools=TOOLS[:1]),
                      template_features(chatml))
    assert plan.messages[0]["role"] == "system" and plan.messages[0]["content"].startswith("# Tools\n")
    assert plan.messages[1] == {"role": "user", "content": "Hi"}


def test_tool_choice_none_describes_no_tools_but_keeps_past_calls_readable(chatml: str) -> None:
    plan = plan_reply(ChatRequest(messages=CONVERSATION, tools=TOOLS, tool_choice="none"), template_features(chatml))
    assert not plan.tools_on and "# Tools" not in plan.messages[0]["content"]
    assert "<tool_call>" in plan.messages[2]["content"] and plan.messages[3]["role"] == "user"
