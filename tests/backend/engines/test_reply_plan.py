"""Tools and thinking put to real families' chat templates, and their calls read back.

Each published template in `tests/data/templates/` is rendered as the worker renders it
(the worker's `ChatTemplate`, with `plan_reply`'s messages and template variables)
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

from backend.engines.chat_template import ChatTemplate
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
    chat = ChatTemplate(template(family), eos_token="</s>", bos_token="<s>")
    prompt = chat.render(plan.messages, add_generation_prompt=generation_prompt, **plan.template_kwargs)
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


def test_granite_thinking_is_its_thinking_variable() -> None:
    found = features("granite-3.3")
    assert (found.think_switch, found.think_variable) == (ThinkSwitch.VARIABLE, "thinking")
    asked = "Write your thoughts between <think></think>"
    no_system = [m for m in CONVERSATION if m["role"] != "system"]  # its thinking text replaces a default system
    on, _ = prompt_for("granite-3.3", messages=no_system, tools=[], thinking="on")
    off, _ = prompt_for("granite-3.3", messages=no_system, tools=[], thinking="off")
    auto, _ = prompt_for("granite-3.3", messages=no_system, tools=[])
    assert asked in on and asked not in off and auto == off  # off by default, as its makers have it


def test_granites_answer_tags_are_not_part_of_the_answer() -> None:
    """Thinking, Granite 3.3 is asked to write `<think>…</think><response>…</response>`."""
    found = features("granite-3.3")
    assert found.answer_tags and not features("qwen3").answer_tags
    text = "<think>The user greets.</think>\n<response>Hello! How can I help?</response>"
    for cut in range(len(text) + 1):
        parser = ReplyParser(found, tools=False)
        first, second, last = parser.feed(text[:cut]), parser.feed(text[cut:]), parser.finish()
        assert (first.content + second.content + last.content,
                first.reasoning + second.reasoning + last.reasoning) == ("Hello! How can I help?", "The user greets.")


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


@pytest.mark.parametrize("family", FAMILIES)
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
    prompt = ChatTemplate(chatml, eos_token="<|im_end|>", bos_token="<|im_start|>").render(plan.messages)
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


# Grammars, parsed by llama.cpp itself --------------------------------------------------------

FORECAST: dict[str, Any] = {"type": "function", "function": {
    "name": "get_forecast", "description": "The forecast for a city",
    "parameters": {"type": "object", "properties": {
        "city": {"enum": ["Rome", "Paris"]}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["city", "days"]}}}
NO_PARAMETERS: dict[str, Any] = {"type": "function", "function": {"name": "now", "description": "The time"}}
PYDANTIC_STYLE: dict[str, Any] = {"type": "function", "function": {
    "name": "book_trip", "description": "Book a trip",
    "parameters": {"type": "object", "$defs": {"City": {"type": "object", "properties": {
        "name": {"enum": ["Rome", "Paris"]}, "country": {"$ref": "#/$defs/Country"}}, "required": ["name"]},
        "Country": {"type": "string", "maxLength": 40}},
        "properties": {"to": {"$ref": "#/$defs/City"}, "nights": {"type": "integer"}}, "required": ["to"]}}}
"""A nested model as pydantic writes it: definitions under `$defs`, used by local references."""

SCHEMAS: list[dict[str, Any] | None] = [
    None,  # any JSON object
    {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                      "age": {"type": "integer", "minimum": 0, "maximum": 30},
                                      "colour": {"enum": ["black", "white", "ginger"]}},
     "required": ["name", "age", "colour"], "additionalProperties": False},
    {"type": "array", "items": {"anyOf": [{"type": "number"}, {"type": "null"}, {"type": "boolean"}]},
     "minItems": 1, "maxItems": 5},
    {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string",
                                                                          "pattern": "^[a-z]+$"}}}},
    PYDANTIC_STYLE["function"]["parameters"],
]


class Vocab:
    """SmolLM2's tokenizer, loaded alone (no weights), for llama.cpp's grammar sampler."""

    def __init__(self, path: Path) -> None:
        from llama_cpp import llama_cpp

        self.lib = llama_cpp
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self.model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        assert self.model
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.eos = llama_cpp.llama_vocab_eos(self.vocab)

    def tokens(self, text: str) -> list[int]:
        encoded = text.encode()
        out = (self.lib.llama_token * (len(encoded) + 8))()
        n = self.lib.llama_tokenize(self.vocab, encoded, len(encoded), out, len(out), False, True)
        assert n > 0
        return list(out[:n])

    def parses(self, grammar: str) -> bool:
        sampler = self.lib.llama_sampler_init_grammar(self.vocab, grammar.encode(), b"root")
        if sampler:
            self.lib.llama_sampler_free(sampler)
        return bool(sampler)

    def accepts(self, grammar: str, text: str) -> bool:
        """Whether the grammar lets a model write `text` token by token and then stop, as
        `GrammarGate` asks it while sampling."""
        from backend.engines.llm_grammar import GrammarGate

        gate = GrammarGate(self.lib, self.vocab, None, grammar)
        try:
            for token in self.tokens(text):
                if not gate.allows(token):
                    return False
                gate.accept(token)
            return gate.allows(self.eos)
        finally:
            gate.close()

    def close(self) -> None:
        self.lib.llama_model_free(self.model)


@pytest.fixture(scope="module")
def vocab(smollm_path: Path) -> Any:
    loaded = Vocab(smollm_path)
    yield loaded
    loaded.close()


@pytest.mark.parametrize("syntax", list(ToolSyntax))
def test_a_call_grammar_for_each_syntax_parses_in_llama_cpp(vocab: Vocab, syntax: ToolSyntax) -> None:
    from backend.engines.llm_grammar import tool_call_grammar

    for tools in ([FORECAST], [FORECAST, NO_PARAMETERS, PYDANTIC_STYLE], [NO_PARAMETERS]):
        assert vocab.parses(tool_call_grammar(tools, syntax)), (syntax, [t["function"]["name"] for t in tools])


@pytest.mark.parametrize("schema", SCHEMAS, ids=["object", "enum-integer", "array-anyof", "pattern", "refs"])
def test_json_grammars_parse_in_llama_cpp(vocab: Vocab, schema: dict[str, Any] | None) -> None:
    from backend.engines.llm_grammar import json_grammar

    assert vocab.parses(json_grammar(schema))


def test_a_call_grammar_admits_the_call_and_nothing_else(vocab: Vocab) -> None:
    """What the grammar lets through, checked by llama.cpp on SmolLM2's tokens: the family's
    wrapping, the chosen tool's name, values of the enum and integers in range, then the end."""
    from backend.engines.llm_grammar import tool_call_grammar

    hermes = tool_call_grammar([FORECAST], ToolSyntax.HERMES)

    def call(city: str = '"Paris"', days: str = "3", name: str = "get_forecast") -> str:
        return f'<tool_call>\n{{"name": "{name}", "arguments": {{"city": {city}, "days": {days}}}}}\n</tool_call>'

    assert vocab.accepts(hermes, call())
    assert vocab.accepts(hermes, call(city='"Rome"', days="7"))
    assert not vocab.accepts(hermes, call(city='"Berlin"'))
    assert not vocab.accepts(hermes, call(days="2.5"))
    assert not vocab.accepts(hermes, call(days='"3"'))
    assert not vocab.accepts(hermes, call(name="get_time"))
    assert not vocab.accepts(hermes, "Sure! " + call())
    assert not vocab.accepts(hermes, call()[:-3])  # cut short: the end is not allowed yet
    mistral = tool_call_grammar([FORECAST, NO_PARAMETERS], ToolSyntax.MISTRAL_ARGS)
    assert vocab.accepts(mistral, '[TOOL_CALLS]get_forecast[ARGS]{"city": "Rome", "days": 1}')
    assert vocab.accepts(mistral, "[TOOL_CALLS]now[ARGS]{}")
    llama3 = tool_call_grammar([FORECAST], ToolSyntax.LLAMA3)
    assert vocab.accepts(llama3, '{"name": "get_forecast", "parameters": {"city": "Rome", "days": 1}}')
    assert not vocab.accepts(llama3, '{"name": "get_forecast", "arguments": {"city": "Rome", "days": 1}}')


def test_integer_bounds_are_kept(vocab: Vocab) -> None:
    """llama-cpp-python's converter leaves `minimum` and `maximum` out; a bounded range is given to
    it as the list of its values."""
    from backend.engines.llm_grammar import json_grammar, tool_call_grammar

    hermes = tool_call_grammar([FORECAST], ToolSyntax.HERMES)
    assert not vocab.accepts(hermes, '<tool_call>\n{"name": "get_forecast", "arguments": {"city": "Paris", '
                                     '"days": 9}}\n</tool_call>')
    assert not vocab.accepts(json_grammar(SCHEMAS[1]), '{"name": "Tom", "age": 31, "colour": "ginger"}')
    assert vocab.accepts(hermes, '<tool_call>\n{"name": "get_forecast", "arguments": {"city": "Paris", '
                                 '"days": 7}}\n</tool_call>')
    assert vocab.accepts(json_grammar(SCHEMAS[1]), '{"name": "Tom", "age": 30, "colour": "ginger"}')
    assert vocab.accepts(json_grammar(SCHEMAS[1]), '{"name": "Tom", "age": 0, "colour": "ginger"}')
    strict = json_grammar({"type": "integer", "exclusiveMinimum": 2, "exclusiveMaximum": 5.5})
    assert [n for n in range(-1, 8) if vocab.accepts(strict, str(n))] == [3, 4, 5]
    wide = json_grammar({"type": "integer", "minimum": 0, "maximum": 10**9})  # too wide to list: any integer
    assert vocab.accepts(wide, "12345") and vocab.accepts(wide, "-3")


def test_listed_integer_ranges_are_bounded_in_all(vocab: Vocab) -> None:
    """900 ranges of 1001 values would list 900 901 of them (a grammar of megabytes): ranges past
    the grammar's allowance keep only their type."""
    from backend.engines.llm_grammar import MAX_GRAMMAR_CHARS, MAX_LISTED_INTEGERS, json_grammar

    many = {"type": "object", "properties": {f"p{i}": {"type": "integer", "minimum": 0, "maximum": 1000}
                                             for i in range(900)}, "required": ["p0", "p899"]}
    grammar = json_grammar(many)
    assert len(grammar) < MAX_GRAMMAR_CHARS // 5
    assert MAX_LISTED_INTEGERS < 900 * 1001
    assert not vocab.accepts(grammar, '{"p0": 1001, "p899": 5}')  # listed: bounded
    assert vocab.accepts(grammar, '{"p0": 3, "p899": 5000}')  # past the allowance: any integer


def test_a_grammar_too_large_to_check_at_every_step_is_refused() -> None:
    from backend.core.errors import AppError
    from backend.engines.llm_grammar import json_grammar

    with pytest.raises(AppError, match="too large"):
        json_grammar({"enum": [f"v{i}" for i in range(100_000)]})


def test_tool_parameters_with_local_references_make_a_call_grammar(vocab: Vocab) -> None:
    """Pydantic writes nested models as `$defs` and `#/$defs/…` references inside the parameters:
    the references point into the parameters, wherever the grammar puts them."""
    from backend.engines.llm_grammar import tool_call_grammar

    before = json.dumps(PYDANTIC_STYLE)
    trip = '{"to": {"name": "Rome", "country": "Italy"}, "nights": 2}'
    written = {
        ToolSyntax.HERMES: f'<tool_call>\n{{"name": "book_trip", "arguments": {trip}}}\n</tool_call>',
        ToolSyntax.LLAMA3: f'{{"name": "book_trip", "parameters": {trip}}}',
        ToolSyntax.MISTRAL: f'[TOOL_CALLS][{{"name": "book_trip", "arguments": {trip}}}]',
        ToolSyntax.MISTRAL_ARGS: f"[TOOL_CALLS]book_trip[ARGS]{trip}",
        ToolSyntax.LFM2: f'<|tool_call_start|>[{{"name": "book_trip", "arguments": {trip}}}]<|tool_call_end|>',
        ToolSyntax.PHI: f'<|tool_call|>{{"name": "book_trip", "arguments": {trip}}}<|/tool_call|>',
    }
    for syntax, text in written.items():
        grammar = tool_call_grammar([PYDANTIC_STYLE], syntax)
        assert vocab.accepts(grammar, text), syntax
        assert not vocab.accepts(grammar, text.replace('"Rome"', '"Oslo"')), syntax
    assert json.dumps(PYDANTIC_STYLE) == before  # the tools shown to the model keep their references as written


def test_a_required_call_with_references_is_planned_and_offers_the_tools_as_written() -> None:
    req = ChatRequest(messages=[{"role": "user", "content": "Book me two nights in Rome."}],
                      tools=[PYDANTIC_STYLE, FORECAST], tool_choice="required")
    plan = plan_reply(req, features("qwen3"))
    assert plan.grammar and "book_trip" in plan.grammar and "get_forecast" in plan.grammar
    assert plan.template_kwargs["tools"][0]["function"]["parameters"]["properties"]["to"] == {"$ref": "#/$defs/City"}


def test_a_json_schema_with_references_is_left_as_written() -> None:
    from backend.engines.llm_grammar import json_grammar

    schema = json.loads(json.dumps(PYDANTIC_STYLE["function"]["parameters"]))
    json_grammar(schema)
    assert schema == PYDANTIC_STYLE["function"]["parameters"]


def test_json_grammars_admit_only_matching_json(vocab: Vocab) -> None:
    from backend.engines.llm_grammar import json_grammar

    cat = json_grammar(SCHEMAS[1])
    assert vocab.accepts(cat, '{"name": "Tom", "age": 3, "colour": "ginger"}')
    assert not vocab.accepts(cat, '{"name": "Tom", "age": 3, "colour": "blue"}')
    assert not vocab.accepts(cat, '{"name": "Tom", "age": 3}')
    assert not vocab.accepts(cat, '{"name": "To\nm", "age": 3, "colour": "ginger"}')  # raw new line in a string
    anything = json_grammar(None)
    assert vocab.accepts(anything, '{"a": [1, {"b": null}], "c": "d"}')
    assert not vocab.accepts(anything, "[1, 2]")
    assert not vocab.accepts(anything, "Here is your JSON: {}")


def test_reasoning_effort_limits_thinking_by_the_models_own_means() -> None:
    """A model with a think block gets a budget for low and medium effort; gpt-oss its own effort
    variable and never a budget (it has no think block to close)."""
    from backend.engines.reply_plan import EFFORT_BUDGETS

    def plan(family: str, **request: Any) -> ReplyPlan:
        return plan_reply(ChatRequest(messages=CONVERSATION, **request), features(family))

    for effort, budget in (("low", EFFORT_BUDGETS["low"]), ("medium", EFFORT_BUDGETS["medium"]), ("high", None)):
        assert plan("qwen3", thinking="on", reasoning_effort=effort).thinking_budget == budget
        gpt = plan("gpt-oss", thinking="on", reasoning_effort=effort)
        assert gpt.thinking_budget is None and gpt.template_kwargs["reasoning_effort"] == effort
    assert plan("qwen3", thinking="on", reasoning_effort="low", thinking_budget=50).thinking_budget == 50
    assert plan("qwen3", thinking="off", reasoning_effort="low").thinking_budget is None
    assert plan("gpt-oss", thinking="on", thinking_budget=50).thinking_budget is None
