"""How a request is put to a particular model: thinking on or off by the model's own mechanism,
tools in its template (or described by the app when the template has none), and the grammar
that constrains the output when a call or JSON is required."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .reply_format import THINK_CLOSE, THINK_OPEN, TemplateFeatures, ThinkSwitch, ToolSyntax

if TYPE_CHECKING:
    from .llm import ChatRequest

__all__ = ["EFFORT_BUDGETS", "TOOLS_PREAMBLE", "ReplyPlan", "finish_prompt", "plan_reply"]

TOOLS_PREAMBLE = (
    "# Tools\n\nYou may call one of these functions to help with the user's request. To call one, "
    "reply with only:\n<tool_call>\n{\"name\": <function name>, \"arguments\": <arguments as a JSON object>}\n"
    "</tool_call>\nThe result comes back inside <tool_response></tool_response>.\n\n<tools>\n{tools}\n</tools>")
"""For a model whose template has no tools section: the format the parser reads (Hermes)."""


@dataclass(slots=True)
class ReplyPlan:
    messages: list[dict[str, Any]]
    template_kwargs: dict[str, Any] = field(default_factory=dict)
    tools_on: bool = False
    thinking_off: bool = False
    empty_block: bool = False
    """Thinking is off by an empty think block after the generation prompt."""
    thinking_budget: int | None = None
    grammar: str | None = None
    render_special: bool = False


def plan_reply(req: ChatRequest, features: TemplateFeatures) -> ReplyPlan:
    """The messages, template variables and grammar for `req` on a model with `features`.
    Building a grammar needs llama-cpp-python, so only the worker calls this."""
    from .llm_grammar import json_grammar, tool_call_grammar

    tools_on = bool(req.tools) and req.tool_choice != "none"
    syntax = features.tool_syntax if features.tools else ToolSyntax.HERMES
    grammar = req.grammar
    if grammar is None and req.response_format == "json_object":
        grammar = json_grammar(None)
    elif grammar is None and req.response_format == "json_schema":
        grammar = json_grammar(req.json_schema or {})
    elif grammar is None and tools_on and req.tool_choice != "auto":
        chosen = req.tools if req.tool_choice == "required" else \
            [t for t in req.tools if t["function"]["name"] == req.tool_choice]
        grammar = tool_call_grammar(chosen or req.tools, syntax)
    constrained = grammar is not None and req.grammar is None
    thinking = "off" if constrained else req.thinking
    plan = ReplyPlan(messages=_messages(req.messages, req.tools if tools_on else [], features),
                     tools_on=tools_on, grammar=grammar,
                     render_special=features.render_special and (tools_on or syntax == ToolSyntax.HARMONY),
                     thinking_off=thinking == "off",
                     empty_block=thinking == "off" and features.think_switch == ThinkSwitch.EMPTY_BLOCK,
                     thinking_budget=_budget(req, features, thinking))
    if tools_on and features.tools:
        plan.template_kwargs["tools"] = req.tools
    if features.think_switch == ThinkSwitch.VARIABLE and thinking != "auto":
        plan.template_kwargs[features.think_variable] = thinking == "on"
    elif features.think_switch == ThinkSwitch.INSTRUCTION and thinking != "auto":
        _add_to_system(plan.messages, "/think" if thinking == "on" else "/no_think")
    elif features.think_switch == ThinkSwitch.EFFORT and (req.reasoning_effort or thinking == "off"):
        plan.template_kwargs["reasoning_effort"] = "low" if thinking == "off" else req.reasoning_effort
    return plan


EFFORT_BUDGETS = {"low": 1024, "medium": 4096}
"""Thinking tokens a reasoning effort allows a model that has no effort of its own (high: no limit)."""


def _budget(req: ChatRequest, features: TemplateFeatures, thinking: str) -> int | None:
    """Tokens of thinking before the think block is closed for the model. A model that thinks in
    channels (gpt-oss) has its own effort and no think block to close."""
    if thinking == "off" or features.think_switch == ThinkSwitch.EFFORT:
        return None
    if req.thinking_budget:
        return req.thinking_budget
    return EFFORT_BUDGETS.get(req.reasoning_effort or "")


def finish_prompt(plan: ReplyPlan, prompt: str) -> tuple[str, bool]:
    """The rendered prompt with thinking closed when it is off and the template opened it (or
    the model thinks by itself); and whether generation starts inside a think block."""
    opened = prompt.rstrip().endswith(THINK_OPEN)
    if plan.thinking_off and opened:
        return prompt + ("\n" if prompt.endswith("\n") else "\n\n") + THINK_CLOSE + "\n\n", False
    if plan.empty_block and not prompt.rstrip().endswith(THINK_CLOSE):
        return prompt + f"{THINK_OPEN}\n\n{THINK_CLOSE}\n\n", False
    return prompt, opened


def _add_to_system(messages: list[dict[str, Any]], text: str) -> None:
    if messages and messages[0].get("role") == "system":
        content = str(messages[0].get("content") or "")
        messages[0] = {**messages[0], "content": f"{content}\n\n{text}" if content else text}
    else:
        messages.insert(0, {"role": "system", "content": text})


def _messages(messages: list[dict[str, Any]], tools: list[dict[str, Any]],
              features: TemplateFeatures) -> list[dict[str, Any]]:
    """Messages as the template reads them. A template with a tools section gets calls and
    results as they are; for one without, the app describes the tools in the system message,
    writes calls as Hermes blocks and results as the user's words, joining neighbours of the
    same role (such templates insist that user and assistant alternate)."""
    if features.tools:
        return [dict(m) for m in messages]
    out: list[dict[str, Any]] = []
    for m in messages:
        role, content = m.get("role"), str(m.get("content") or "")
        if role == "assistant" and m.get("tool_calls"):
            blocks = [json.dumps({"name": c["function"]["name"], "arguments": c["function"]["arguments"]},
                                 ensure_ascii=False) for c in m["tool_calls"]]
            content = "\n".join([content] * bool(content) + [f"<tool_call>\n{b}\n</tool_call>" for b in blocks])
        elif role == "tool":
            role, content = "user", f"<tool_response>\n{content}\n</tool_response>"
        if out and out[-1]["role"] == role and role in ("user", "tool"):
            out[-1] = {**out[-1], "content": out[-1]["content"] + "\n" + content}
            continue
        kept = {k: v for k, v in m.items() if k not in ("tool_calls", "tool_call_id", "name")}
        out.append({**kept, "role": role, "content": content})
    if tools:
        lines = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
        _add_to_system(out, TOOLS_PREAMBLE.replace("{tools}", lines))
    return out
