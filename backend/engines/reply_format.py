"""What a model's chat template says about its replies, and a streaming parser for them.

A model that thinks writes its thinking between markers (`<think>` … `</think>` for Qwen3,
DeepSeek-R1 distills and SmolLM3; harmony channels for gpt-oss); a model that calls tools
writes its calls in its family's own syntax. Both are read from the template text (the same
text the prompt is rendered with), so no list of model names is kept. `ReplyParser` turns the
generated text, cut anywhere, into thinking, answer text and tool calls; anything it cannot
read stays answer text, so an unknown format gives a plain message, never a broken one.

Pure Python: the server uses `template_features` for what the Models page shows; the worker
parses with it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .llm_text import held_back

__all__ = ["ANSWER_CLOSE", "ANSWER_OPEN", "THINK_CLOSE", "THINK_OPEN", "ParsedCall", "ReplyParser",
           "TemplateFeatures", "ThinkSwitch", "ToolSyntax", "template_features"]

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<response>", "</response>"


class ToolSyntax(StrEnum):
    """How a family writes a tool call."""

    HERMES = "hermes"
    """`<tool_call>{"name": …, "arguments": {…}}</tool_call>`, one block per call (Qwen, Hermes, SmolLM3)."""
    LLAMA3 = "llama3"
    """The whole answer is `{"name": …, "parameters": {…}}` (Llama 3.1–3.3), maybe after `<|python_tag|>`."""
    MISTRAL = "mistral"
    """`[TOOL_CALLS][{"name": …, "arguments": {…}}, …]` (Mistral v3, Nemo, Ministral)."""
    MISTRAL_ARGS = "mistral_args"
    """`[TOOL_CALLS]name[ARGS]{…}`, repeated (Mistral Small 3.2, Magistral, Devstral)."""
    LFM2 = "lfm2"
    """`<|tool_call_start|>[{"name": …, "arguments": {…}}]<|tool_call_end|>` (LFM2)."""
    PHI = "phi"
    """`<|tool_call|>{…}<|/tool_call|>` (Phi-4-mini), or a JSON list after `<|tool_call|>` (Granite)."""
    HARMONY = "harmony"
    """gpt-oss: `<|channel|>commentary to=functions.name … <|message|>{…}<|call|>`."""
    NONE = "none"
    """The template has no tools section: the app describes the tools itself and reads Hermes blocks."""


class ThinkSwitch(StrEnum):
    """How thinking is turned on or off for a model, best first."""

    VARIABLE = "variable"  # the template reads `enable_thinking` (Qwen3, SmolLM3)
    INSTRUCTION = "instruction"  # `/think` and `/no_think` in the system prompt
    EFFORT = "effort"  # `reasoning_effort` low/medium/high (gpt-oss); cannot be turned off
    EMPTY_BLOCK = "empty_block"  # an empty think block after the generation prompt
    NONE = "none"


@dataclass(frozen=True, slots=True)
class TemplateFeatures:
    thinking: bool
    """The model writes its thinking in a form the parser reads."""
    think_switch: ThinkSwitch
    tools: bool
    """The template has a tools section and the family's call syntax is known."""
    tool_syntax: ToolSyntax
    render_special: bool
    """Markers the parser needs are control tokens, so generated text must keep them."""
    think_variable: str = "enable_thinking"
    """The template variable that switches thinking (Granite's is `thinking`)."""
    answer_tags: bool = False
    """The template asks for the answer between `<response>` and `</response>` (Granite 3.3
    thinking): the tags are not part of the answer."""

    def labels(self) -> list[str]:
        return [name for name, on in (("thinking", self.thinking), ("tools", self.tools)) if on]


_TOOLS_USED = re.compile(r"\b(tools|custom_tools)\b")
_THINKING_VARIABLE = re.compile(r"{%-?\s*(?:el)?if\s+thinking\b")


def template_features(template: str | None) -> TemplateFeatures:
    """What a chat template (Jinja text from the GGUF) shows about thinking and tools."""
    text = template or ""
    if "<|channel|>" in text:
        return TemplateFeatures(thinking=True, think_switch=ThinkSwitch.EFFORT, tools=True,
                                tool_syntax=ToolSyntax.HARMONY, render_special=True)
    if "<tool_call>" in text:
        syntax = ToolSyntax.HERMES
    elif "<|tool_call_start|>" in text:
        syntax = ToolSyntax.LFM2
    elif "<|tool_call|>" in text:
        syntax = ToolSyntax.PHI
    elif "[TOOL_CALLS]" in text:
        syntax = ToolSyntax.MISTRAL_ARGS if "[ARGS]" in text else ToolSyntax.MISTRAL
    elif "<|start_header_id|>" in text and '"parameters": ' in text:
        syntax = ToolSyntax.LLAMA3
    else:
        syntax = ToolSyntax.NONE
    tools = syntax != ToolSyntax.NONE and bool(_TOOLS_USED.search(text))
    thinking = THINK_OPEN in text or THINK_CLOSE in text or "enable_thinking" in text
    if not thinking:
        switch = ThinkSwitch.NONE
    elif "enable_thinking" in text or _THINKING_VARIABLE.search(text):
        switch = ThinkSwitch.VARIABLE
    elif "/no_think" in text:
        switch = ThinkSwitch.INSTRUCTION
    else:
        switch = ThinkSwitch.EMPTY_BLOCK
    variable = "thinking" if switch == ThinkSwitch.VARIABLE and "enable_thinking" not in text else "enable_thinking"
    return TemplateFeatures(thinking=thinking, think_switch=switch, tools=tools, think_variable=variable,
                            answer_tags=thinking and ANSWER_OPEN in text and ANSWER_CLOSE in text,
                            tool_syntax=syntax if tools else ToolSyntax.NONE,
                            render_special=syntax not in (ToolSyntax.HERMES, ToolSyntax.NONE))


BLOCKS = {ToolSyntax.HERMES: ("<tool_call>", "</tool_call>"),
          ToolSyntax.LFM2: ("<|tool_call_start|>", "<|tool_call_end|>"),
          ToolSyntax.PHI: ("<|tool_call|>", "<|/tool_call|>")}
"""Syntaxes that write each call (or a JSON list of calls) between an opening and a closing marker."""


@dataclass(frozen=True, slots=True)
class ParsedCall:
    name: str
    arguments: str
    """The arguments as JSON text (OpenAI's shape), as the model wrote them."""


@dataclass(slots=True)
class Parsed:
    """What one piece of generated text turned into."""

    content: str = ""
    reasoning: str = ""
    calls: list[ParsedCall] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.content or self.reasoning or self.calls)


class _Mode(StrEnum):
    START = "start"  # before the answer's first visible character: a think block may open here
    THINK = "think"
    CONTENT = "content"
    CALL = "call"  # inside a Hermes block or after a Mistral marker
    JSON = "json"  # a Llama 3 answer that may be a call, held until it is known
    HARMONY = "harmony"


_HARMONY_MARKERS = ("<|channel|>", "<|message|>", "<|end|>", "<|start|>", "<|call|>", "<|return|>", "<|constrain|>")


class ReplyParser:
    """Generated text in, thinking / answer text / tool calls out, for text cut anywhere.

    Text that could be the start of a marker is held back until it is known, as a stop
    string is. `finish()` releases what is left: an unclosed call or a call that is not
    JSON becomes answer text.
    """

    def __init__(self, features: TemplateFeatures, *, tools: bool, starts_thinking: bool = False) -> None:
        self.features = features
        self.syntax = features.tool_syntax if tools else ToolSyntax.NONE
        if tools and features.tool_syntax == ToolSyntax.NONE:
            self.syntax = ToolSyntax.HERMES  # the app's own description asks for Hermes blocks
        self.tools = tools
        self.mode = _Mode.THINK if starts_thinking else _Mode.START
        if features.tool_syntax == ToolSyntax.HARMONY:
            self.mode = _Mode.HARMONY
        self.buffer = ""
        self.call_text = ""
        self.calls: list[ParsedCall] = []
        self.harmony_channel = ""
        self.harmony_target = ""
        self.in_message = False
        self.after_block = False

    @property
    def thinking(self) -> bool:
        """The text now being written is thinking."""
        if self.mode == _Mode.HARMONY:
            return self.in_message and self.harmony_channel == "analysis"
        return self.mode == _Mode.THINK

    # --------------------------------------------------------------------------------------

    def feed(self, text: str) -> Parsed:
        out = Parsed()
        self.buffer += text
        while self.buffer:
            before = (self.mode, len(self.buffer))
            self._step(out, final=False)
            if (self.mode, len(self.buffer)) == before:
                break  # waiting for more text
        return out

    def finish(self) -> Parsed:
        out = Parsed()
        while self.buffer:
            before = (self.mode, len(self.buffer))
            self._step(out, final=True)
            if (self.mode, len(self.buffer)) == before:
                break
        if self.mode == _Mode.CALL and self.syntax in BLOCKS:
            self._close_block(out, final=True)
        elif self.mode == _Mode.CALL:
            self._close_mistral(out, final=True)
        elif self.mode == _Mode.JSON:
            self._close_json(out, final=True)
        elif self.mode == _Mode.HARMONY and self.in_message:
            self._harmony_end(out)
        if self.buffer:
            self._emit(out, self.buffer)
            self.buffer = ""
        return out

    # --------------------------------------------------------------------------------------

    def _emit(self, out: Parsed, text: str) -> None:
        if not text:
            return
        if self.mode == _Mode.THINK or (self.mode == _Mode.HARMONY and self.harmony_channel == "analysis"):
            out.reasoning += text
            return
        if self.after_block:  # the space between calls, and after the last, is not part of the answer
            text = text.lstrip()
            if not text:
                return
            self.after_block = False
        out.content += text

    def _fallback(self, out: Parsed, text: str) -> None:
        self.mode = _Mode.CONTENT
        self.after_block = False
        out.content += text
        self.call_text = ""

    def _take_until(self, out: Parsed, markers: tuple[str, ...], final: bool) -> str | None:
        """Emit the buffer up to the first of `markers`; return that marker (consumed), or None
        after emitting all that cannot be the start of one."""
        first, found = len(self.buffer), None
        for marker in markers:
            at = self.buffer.find(marker)
            if 0 <= at < first:
                first, found = at, marker
        if found is not None:
            self._emit(out, self.buffer[:first])
            self.buffer = self.buffer[first + len(found):]
            return found
        keep = 0 if final else held_back(self.buffer, markers)
        self._emit(out, self.buffer[:len(self.buffer) - keep])
        self.buffer = self.buffer[len(self.buffer) - keep:]
        return None

    def _call_opener(self) -> str:
        if self.syntax in BLOCKS:
            return BLOCKS[self.syntax][0]
        return "[TOOL_CALLS]" if self.syntax in (ToolSyntax.MISTRAL, ToolSyntax.MISTRAL_ARGS) else ""

    def _step(self, out: Parsed, *, final: bool) -> None:
        if self.mode == _Mode.START:
            stripped = self.buffer.lstrip()
            if not stripped:
                if final:
                    self.buffer = ""
                return
            if stripped.startswith(THINK_OPEN):
                self.buffer = stripped[len(THINK_OPEN):]
                self.mode = _Mode.THINK
            elif THINK_OPEN.startswith(stripped) and not final:
                return
            elif self.syntax == ToolSyntax.LLAMA3 and (stripped.startswith("{") or
                                                        stripped.startswith("<|python_tag|>")):
                self.buffer = stripped.removeprefix("<|python_tag|>")
                self.mode = _Mode.JSON
            elif self.syntax == ToolSyntax.LLAMA3 and "<|python_tag|>".startswith(stripped) and not final:
                return
            else:
                self.buffer = stripped
                self.mode = _Mode.CONTENT
        elif self.mode == _Mode.THINK:
            if self._take_until(out, (THINK_CLOSE,), final) is not None:
                self.mode = _Mode.START
                self.buffer = self.buffer.lstrip()
        elif self.mode == _Mode.CONTENT:
            if self.syntax == ToolSyntax.LLAMA3 and self.after_block:  # after a call: '; ' and another may follow
                stripped = self.buffer.lstrip()
                if stripped.startswith(";"):
                    self.buffer, self.mode = stripped[1:].lstrip(), _Mode.JSON
                    return
                if not stripped and not final:
                    return
            opener = self._call_opener()
            # a model that thinks may close its think block a second time (after a budget closed
            # it for the model, it copies what it saw): the marker is not part of the answer
            markers = tuple(m for m in (opener, THINK_CLOSE if self.features.thinking else "",
                                        *((ANSWER_OPEN, ANSWER_CLOSE) if self.features.answer_tags else ())) if m)
            found = self._take_until(out, markers, final) if markers else None
            if found in (THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE):
                self.after_block = True  # and the space after it
            elif found is not None:
                self.mode, self.call_text = _Mode.CALL, ""
            elif not markers:
                self._emit(out, self.buffer)
                self.buffer = ""
        elif self.mode in (_Mode.CALL, _Mode.JSON):
            self.call_text += self.buffer
            # a JSON object or list can only be complete once a '}' or ']' has come: trying to
            # read it after every other token would read a long call again and again
            closed = final or "}" in self.buffer or "]" in self.buffer
            self.buffer = ""
            if self.syntax in BLOCKS:
                self._close_block(out, final=final)
            elif not closed and self.syntax != ToolSyntax.MISTRAL_ARGS:  # that one also looks for [ARGS]
                return
            elif self.mode == _Mode.JSON:
                self._close_json(out, final=final)
            else:
                self._close_mistral(out, final=final)
        elif self.mode == _Mode.HARMONY:
            self._harmony_step(out, final)

    # Hermes ---------------------------------------------------------------------------------

    def _close_block(self, out: Parsed, *, final: bool) -> None:
        """A call block: one call, or a JSON list of calls, up to the closing marker (or, at the
        end of the answer, up to the end: Granite writes no closing marker)."""
        opener, closer = BLOCKS[self.syntax]
        at = self.call_text.find(closer)
        if at < 0 and not final:
            return
        body, rest = (self.call_text[:at], self.call_text[at + len(closer):]) if at >= 0 else (self.call_text, "")
        value = _json_or_none(body.strip())
        calls = [_call_from(item) for item in (value if isinstance(value, list) else [value])]
        if not calls or any(c is None for c in calls):
            self._fallback(out, opener + body + (closer if at >= 0 else ""))
        else:
            for call in calls:
                assert call is not None
                self._add_call(out, call)
            self.mode, self.call_text = _Mode.CONTENT, ""
        self.buffer = rest + self.buffer

    def _add_call(self, out: Parsed, call: ParsedCall) -> None:
        out.calls.append(call)
        self.calls.append(call)
        self.after_block = True

    # Mistral --------------------------------------------------------------------------------

    def _close_mistral(self, out: Parsed, *, final: bool) -> None:
        if self.syntax == ToolSyntax.MISTRAL_ARGS:
            self._close_mistral_args(out, final=final)
            return
        text = self.call_text.lstrip()
        try:
            value, end = json.JSONDecoder().raw_decode(text)
        except json.JSONDecodeError:
            if final:
                self._fallback(out, "[TOOL_CALLS]" + self.call_text)
            return
        items = value if isinstance(value, list) else [value]
        calls = [_call_from(item) for item in items]
        if not calls or any(c is None for c in calls):
            self._fallback(out, "[TOOL_CALLS]" + self.call_text)
            return
        for call in calls:
            assert call is not None
            self._add_call(out, call)
        self.mode, self.buffer, self.call_text = _Mode.CONTENT, text[end:] + self.buffer, ""

    def _close_mistral_args(self, out: Parsed, *, final: bool) -> None:
        at = self.call_text.find("[ARGS]")
        if at < 0:
            if final or len(self.call_text) > 256:
                self._fallback(out, "[TOOL_CALLS]" + self.call_text)
            return
        name, args = self.call_text[:at].strip(), self.call_text[at + len("[ARGS]"):].lstrip()
        name = name.split("[CALL_ID]")[0].strip()  # Mistral Small 3.2 may name the call's id first
        try:
            value, end = json.JSONDecoder().raw_decode(args)
        except json.JSONDecodeError:
            if final:
                self._fallback(out, "[TOOL_CALLS]" + self.call_text)
            return
        call = _call_from({"name": name, "arguments": value})
        if call is None:
            self._fallback(out, "[TOOL_CALLS]" + self.call_text)
            return
        self._add_call(out, call)
        self.mode, self.buffer, self.call_text = _Mode.CONTENT, args[end:] + self.buffer, ""

    # Llama 3 --------------------------------------------------------------------------------

    def _close_json(self, out: Parsed, *, final: bool) -> None:
        text = self.call_text.lstrip()
        try:
            value, end = json.JSONDecoder().raw_decode(text)
        except json.JSONDecodeError:
            if final:
                self._fallback(out, self.call_text)
            return
        # a JSON answer that has a "name" is not a call: a call has its arguments too
        is_call = isinstance(value, dict) and ("parameters" in value or "arguments" in value)
        call = _call_from(value, arguments_key="parameters") if is_call else None
        if call is None:
            self._fallback(out, self.call_text)
            return
        self._add_call(out, call)
        rest = text[end:].lstrip()
        self.call_text = ""
        if rest.startswith(";"):  # several calls, separated as the family's examples do
            self.buffer, self.mode = rest[1:].lstrip() + self.buffer, _Mode.JSON
        else:
            self.buffer, self.mode = rest + self.buffer, _Mode.CONTENT

    # harmony (gpt-oss) ----------------------------------------------------------------------

    def _harmony_step(self, out: Parsed, final: bool) -> None:
        if not self.in_message:  # a header: `<|start|>assistant to=… <|channel|>name …<|message|>`
            at = self.buffer.find("<|message|>")
            if at < 0:
                if final:
                    self.mode = _Mode.CONTENT  # not harmony after all: plain text
                    self.buffer = self.buffer.replace("<|start|>assistant", "")
                elif len(self.buffer) > 512 and "<|channel|>" not in self.buffer:
                    self.mode = _Mode.CONTENT
                return
            header, self.buffer = self.buffer[:at], self.buffer[at + len("<|message|>"):]
            channel = re.search(r"<\|channel\|>\s*(\w+)", header)
            target = re.search(r"to=functions\.([\w.-]+)", header)
            self.harmony_channel = channel.group(1) if channel else "final"
            self.harmony_target = target.group(1) if target else ""
            self.in_message, self.call_text = True, ""
            return
        ends = ("<|end|>", "<|call|>", "<|return|>", "<|start|>")
        if self.harmony_target:
            first = min((i for i in (self.buffer.find(m) for m in ends) if i >= 0), default=-1)
            if first < 0:
                keep = 0 if final else held_back(self.buffer, ends)
                self.call_text += self.buffer[:len(self.buffer) - keep]
                self.buffer = self.buffer[len(self.buffer) - keep:]
                return
            self.call_text += self.buffer[:first]
            self.buffer = self.buffer[first:]
            self._harmony_end(out)
            return
        found = self._take_until(out, ends, final)
        if found is not None:
            self.buffer = (found + self.buffer) if found == "<|start|>" else self.buffer
            self._harmony_end(out)

    def _harmony_end(self, out: Parsed) -> None:
        if self.harmony_target:
            call = _call_from({"name": self.harmony_target, "arguments": _json_or_none(self.call_text.strip())})
            if call is not None:
                out.calls.append(call)
                self.calls.append(call)
        self.in_message, self.harmony_channel, self.harmony_target, self.call_text = False, "", "", ""
        for marker in ("<|end|>", "<|call|>", "<|return|>"):
            if self.buffer.startswith(marker):
                self.buffer = self.buffer[len(marker):]
        self.buffer = self.buffer.removeprefix("<|start|>").removeprefix("assistant")


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None


def _call_from(value: Any, *, arguments_key: str = "arguments") -> ParsedCall | None:
    """A call from its JSON object; None when it is not one. Arguments written as a JSON
    string are kept as written; an object is written out as JSON."""
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):  # {"type": "function", "function": {...}}
        value = value["function"]
    name = value.get("name")
    args = value.get(arguments_key, value.get("arguments", value.get("parameters")))
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        return None
    if args is None:
        args = {}
    if isinstance(args, str):
        parsed = _json_or_none(args)
        if not isinstance(parsed, dict):
            return None
        return ParsedCall(name=name, arguments=args)
    if not isinstance(args, dict):
        return None
    return ParsedCall(name=name, arguments=json.dumps(args, ensure_ascii=False))
