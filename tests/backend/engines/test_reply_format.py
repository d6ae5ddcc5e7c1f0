"""The reply parser: thinking, answer text and tool calls from text cut anywhere."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.engines.reply_format import (
    ParsedCall,
    ReplyParser,
    TemplateFeatures,
    ThinkSwitch,
    ToolSyntax,
    template_features,
)

HERMES = TemplateFeatures(thinking=True, think_switch=ThinkSwitch.VARIABLE, tools=True,
                          tool_syntax=ToolSyntax.HERMES, render_special=False)
LLAMA3 = TemplateFeatures(thinking=False, think_switch=ThinkSwitch.NONE, tools=True,
                          tool_syntax=ToolSyntax.LLAMA3, render_special=True)
MISTRAL = TemplateFeatures(thinking=False, think_switch=ThinkSwitch.NONE, tools=True,
                           tool_syntax=ToolSyntax.MISTRAL, render_special=True)
MISTRAL_ARGS = TemplateFeatures(thinking=True, think_switch=ThinkSwitch.EMPTY_BLOCK, tools=True,
                                tool_syntax=ToolSyntax.MISTRAL_ARGS, render_special=True)
HARMONY = TemplateFeatures(thinking=True, think_switch=ThinkSwitch.EFFORT, tools=True,
                           tool_syntax=ToolSyntax.HARMONY, render_special=True)
LFM2 = TemplateFeatures(thinking=False, think_switch=ThinkSwitch.NONE, tools=True,
                        tool_syntax=ToolSyntax.LFM2, render_special=True)
PHI = TemplateFeatures(thinking=False, think_switch=ThinkSwitch.NONE, tools=True,
                       tool_syntax=ToolSyntax.PHI, render_special=True)
PLAIN = TemplateFeatures(thinking=False, think_switch=ThinkSwitch.NONE, tools=False,
                         tool_syntax=ToolSyntax.NONE, render_special=False)


def run(features: TemplateFeatures, pieces: list[str], *, tools: bool = True,
        starts_thinking: bool = False) -> tuple[str, str, list[ParsedCall]]:
    parser = ReplyParser(features, tools=tools, starts_thinking=starts_thinking)
    content = reasoning = ""
    calls: list[ParsedCall] = []
    for piece in pieces:
        out = parser.feed(piece)
        content, reasoning, calls = content + out.content, reasoning + out.reasoning, calls + out.calls
    out = parser.finish()
    return content + out.content, reasoning + out.reasoning, calls + out.calls


def every_cut(features: TemplateFeatures, text: str, **kw: bool) -> tuple[str, str, list[ParsedCall]]:
    """Parse whole, then cut at every position and at every pair of positions; all must agree."""
    whole = run(features, [text], **kw)
    for i in range(len(text) + 1):
        assert run(features, [text[:i], text[i:]], **kw) == whole, f"cut at {i}"
    assert run(features, list(text), **kw) == whole, "one character at a time"
    return whole


CASES = [
    (HERMES, "<think>\nLet me add.\n</think>\n\nIt is 4.", "It is 4.", "\nLet me add.\n", []),
    (HERMES, "<think>\nhm\n</think>\n\n<tool_call>\n{\"name\": \"calculator\", \"arguments\": {\"expression\": "
             "\"2+2\"}}\n</tool_call>", "", "\nhm\n", [ParsedCall("calculator", '{"expression": "2+2"}')]),
    (HERMES, "Sure.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n"
             "{\"name\": \"b\", \"arguments\": \"{\\\"x\\\": 1}\"}\n</tool_call>\n",
     "Sure.\n", "", [ParsedCall("a", "{}"), ParsedCall("b", '{"x": 1}')]),
    (HERMES, "<tool_call>not json</tool_call> done", "<tool_call>not json</tool_call> done", "", []),
    (HERMES, "a < b and <tool_ca", "a < b and <tool_ca", "", []),
    (HERMES, "x <tool_call>{\"name\": \"a\"", "x <tool_call>{\"name\": \"a\"", "", []),
    (LLAMA3, '{"name": "get_weather", "parameters": {"city": "Rome"}}', "", "",
     [ParsedCall("get_weather", '{"city": "Rome"}')]),
    (LLAMA3, '<|python_tag|>{"name": "f", "parameters": {}}', "", "", [ParsedCall("f", "{}")]),
    (LLAMA3, '{"answer": 4}', '{"answer": 4}', "", []),
    # a JSON answer with a "name" is not a call: Llama 3 writes its calls with "parameters"
    (LLAMA3, '{"name": "Rome", "population": 2800000}', '{"name": "Rome", "population": 2800000}', "", []),
    (LLAMA3, '{"name": "f", "arguments": {"a": 1}}', "", "", [ParsedCall("f", '{"a": 1}')]),
    (LLAMA3, '{"name": "f", "parameters": {}}; {"name": "g", "parameters": {"b": 2}}', "", "",
     [ParsedCall("f", "{}"), ParsedCall("g", '{"b": 2}')]),
    (LLAMA3, "The answer is {4}.", "The answer is {4}.", "", []),
    (MISTRAL, '[TOOL_CALLS][{"name": "f", "arguments": {"a": 1}}, {"name": "g", "arguments": {}}]', "", "",
     [ParsedCall("f", '{"a": 1}'), ParsedCall("g", "{}")]),
    (MISTRAL, "[TOOL_CALLS] oops", "[TOOL_CALLS] oops", "", []),
    (MISTRAL_ARGS, '[TOOL_CALLS]get_weather[ARGS]{"city": "Rome"}[TOOL_CALLS]f[ARGS]{}', "", "",
     [ParsedCall("get_weather", '{"city": "Rome"}'), ParsedCall("f", "{}")]),
    (HARMONY, "<|channel|>analysis<|message|>User asks.<|end|><|start|>assistant<|channel|>final<|message|>Hi!",
     "Hi!", "User asks.", []),
    (HARMONY, "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary "
              "to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Rome\"}<|call|>",
     "", "Need weather.", [ParsedCall("get_weather", '{"city": "Rome"}')]),
    (MISTRAL_ARGS, '[TOOL_CALLS]f[CALL_ID]abcdefghi[ARGS]{"a": 1}', "", "", [ParsedCall("f", '{"a": 1}')]),
    (LFM2, 'Ok <|tool_call_start|>[{"name": "f", "arguments": {"a": 1}}]<|tool_call_end|>', "Ok ", "",
     [ParsedCall("f", '{"a": 1}')]),
    (PHI, '<|tool_call|>{"name": "f", "arguments": {}}<|/tool_call|>', "", "", [ParsedCall("f", "{}")]),
    (PHI, '<|tool_call|>[{"name": "f", "arguments": {}}, {"name": "g", "arguments": {"b": 2}}]', "", "",
     [ParsedCall("f", "{}"), ParsedCall("g", '{"b": 2}')]),
    (PLAIN, "<think>x</think>y", "y", "x", []),
    (PLAIN, "Plain <b>text</b> with <tool_call> left alone", "Plain <b>text</b> with <tool_call> left alone", "", []),
]


@pytest.mark.parametrize(("features", "text", "content", "reasoning", "calls"), CASES)
def test_replies_parse_the_same_however_they_are_cut(features: TemplateFeatures, text: str, content: str,
                                                     reasoning: str, calls: list[ParsedCall]) -> None:
    assert every_cut(features, text) == (content, reasoning, calls)


def test_a_prompt_that_opened_the_think_block_starts_in_thinking() -> None:
    assert every_cut(HERMES, "Okay, 2+2.\n</think>\n\n4", starts_thinking=True) == ("4", "Okay, 2+2.\n", [])


def test_an_unclosed_think_block_stays_thinking_and_the_answer_is_empty() -> None:
    assert every_cut(HERMES, "<think>still going") == ("", "still going", [])


def test_without_tools_call_markup_is_text() -> None:
    text = '<tool_call>{"name": "a", "arguments": {}}</tool_call>'
    assert every_cut(HERMES, text, tools=False) == (text, "", [])


def test_a_template_without_tools_reads_the_apps_own_hermes_blocks() -> None:
    assert run(PLAIN, ['<tool_call>{"name": "a", "arguments": {"x": 1}}</tool_call>']) == \
        ("", "", [ParsedCall("a", '{"x": 1}')])


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("<>/{}[]\":, thinkool_caTOLS|ARGS\n")), max_size=80),
       st.sampled_from([HERMES, LLAMA3, MISTRAL, MISTRAL_ARGS, LFM2, PHI, HARMONY, PLAIN]), st.integers(0, 80))
def test_any_text_parses_without_error_and_keeps_its_characters(text: str, features: TemplateFeatures,
                                                                 cut: int) -> None:
    content, reasoning, calls = run(features, [text[:cut], text[cut:]])
    if not calls:  # nothing is added: what is kept is the text less markers and the space around blocks
        assert len("".join((content + reasoning).split())) <= len("".join(text.split()))
    for call in calls:
        assert isinstance(json.loads(call.arguments), dict)


def test_features_come_from_the_template_text() -> None:
    qwen = template_features("{% if tools %}<tool_call>{% endif %}{% if enable_thinking is false %}"
                             "<think>\n\n</think>{% endif %}")
    assert (qwen.thinking, qwen.think_switch, qwen.tools, qwen.tool_syntax) == \
        (True, ThinkSwitch.VARIABLE, True, ToolSyntax.HERMES)
    chatml = template_features("{% for m in messages %}<|im_start|>{{ m.content }}{% endfor %}")
    assert (chatml.thinking, chatml.tools, chatml.labels()) == (False, False, [])
    assert template_features(None).tool_syntax == ToolSyntax.NONE


def test_bytes_cut_anywhere_through_the_stop_check_parse_the_same() -> None:
    """As the worker feeds it: token bytes (a character may be split between tokens) through the
    stop check, then the parser; every cut gives the same thinking, answer and call."""
    from backend.engines.llm_text import StopStreamer

    text = ("<think>\nPerché? Più è meglio — 🚀.\n</think>\n\nCerto: <tool_call>\n"
            '{"name": "convert_units", "arguments": {"value": 5, "from_unit": "km", "to_unit": "mi"}}\n'
            "</tool_call>\nEcco il risultato: 3,1 mi. 👍")
    data = text.encode("utf-8")

    def parse(pieces: list[bytes]) -> tuple[str, str, list[ParsedCall]]:
        stops, parser = StopStreamer([]), ReplyParser(HERMES, tools=True)
        content = reasoning = ""
        calls: list[ParsedCall] = []
        for piece in [*pieces, None]:
            out = parser.feed(stops.feed(piece)) if piece is not None else parser.feed(stops.flush())
            content, reasoning, calls = content + out.content, reasoning + out.reasoning, calls + out.calls
        out = parser.finish()
        return content + out.content, reasoning + out.reasoning, calls + out.calls

    whole = parse([data])
    assert whole == ("Certo: Ecco il risultato: 3,1 mi. 👍", "\nPerché? Più è meglio — 🚀.\n",
                     [ParsedCall("convert_units", '{"value": 5, "from_unit": "km", "to_unit": "mi"}')])
    for i in range(len(data) + 1):
        assert parse([data[:i], data[i:]]) == whole, f"cut at byte {i}"
    assert parse([data[i:i + 1] for i in range(len(data))]) == whole


def test_a_think_block_closed_again_in_the_answer_leaves_no_marker() -> None:
    """After a budget closed the block for it, a small model may write `</think>` again."""
    assert every_cut(HERMES, "<think>a</think>\n\nRed, green.\n</think>\n\nBlue.") == ("Red, green.\nBlue.", "a", [])
    assert every_cut(PLAIN, "Red </think> blue") == ("Red </think> blue", "", [])  # not a thinking model: text


class _Recorder:
    """What the worker's job context is to a reply: somewhere to send events."""

    job_id = "job"

    def __init__(self) -> None:
        self.events: list[object] = []

    def emit(self, event: object) -> None:
        self.events.append(event)


@pytest.mark.parametrize("cancelled", [False, True])
def test_a_stopped_turn_drops_what_the_parser_held_back(cancelled: bool) -> None:
    from backend.engines.llm import TokenDelta, _Reply

    ctx = _Recorder()
    reply = _Reply(ctx, ReplyParser(HERMES, tools=True), interval_s=0.0)  # type: ignore[arg-type]
    reply.feed("The answer is 84. <tool", 0.0)
    reply.close(cancelled=cancelled)
    shown = "".join(e.text for e in ctx.events if isinstance(e, TokenDelta))
    # stopped: what was shown is the answer; finished: the held-back text was not a call after all
    assert shown == ("The answer is 84. " if cancelled else "The answer is 84. <tool")
