"""Answers that think and call the app's tools, with the real engine (the bundled SmolLM2 with
real families' templates) and the real tools."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from backend.chat.prompt import model_messages
from backend.chat.tools.registry import ToolOutcome, ToolRegistry
from backend.services import Services
from backend.storage.conversations import Message

pytestmark = pytest.mark.engine


async def answer(services: Services, model: Path | None, text: str, **settings: object) -> Message:
    chosen = {}
    if model is not None:
        record = await services.models.import_file(model, "chat")
        chosen = {"model": record.id}
    conv = await services.store.create(settings={"temperature": 0, "max_tokens": 60, **chosen, **settings})
    reply = await services.conversations.send(conv.id, text)
    await asyncio.wait_for(reply.finished.wait(), 120)
    message = await services.store.get_message(reply.message_id)
    assert message is not None
    return message


async def test_tools_first_calls_a_tool_runs_it_and_answers_with_its_result(
        services: Services, family_model: Callable[[str], Path]) -> None:
    message = await answer(services, family_model("qwen3"), "What is 12 times 7?", tools="required")
    assert message.status == "done", message.error
    assert message.tools, "no tool was called"
    first = message.tools[0]
    assert first["name"] in services.conversations.tools.names()
    assert isinstance(json.loads(first["arguments"]), dict)  # the grammar made it parse
    assert first["result"] and isinstance(first["ok"], bool)
    # greedy, the 135M model picks the calculator and, held to arithmetic by the grammar, writes 12 * 7
    assert (first["name"], first["ok"]) == ("calculator", True)
    assert first["result"].endswith("= 84"), first
    assert message.stats["finish_reason"] in ("stop", "length")  # the last turn answered instead of calling
    assert "<tool_call>" not in message.content

    # the next turn gives the model its call and the result, as it had them
    conversation = await services.store.get(message.conversation_id)
    assert conversation is not None
    turns, _ = model_messages(conversation, await services.store.messages(conversation.id))
    call_turn = next(t for t in turns if t.get("tool_calls"))
    assert call_turn["tool_calls"][0]["function"]["name"] == first["name"]
    assert isinstance(call_turn["tool_calls"][0]["function"]["arguments"], dict)
    tool_turn = next(t for t in turns if t["role"] == "tool")
    assert tool_turn["content"] == first["result"] and tool_turn["tool_call_id"] == first["id"]


async def test_stop_between_calls_ends_the_answer_before_the_model_goes_on(
        services: Services, family_model: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch) -> None:
    record = await services.models.import_file(family_model("qwen3"), "chat")
    conv = await services.store.create(settings={"temperature": 0, "max_tokens": 60, "model": record.id,
                                                 "tools": "required"})
    running, stopped = asyncio.Event(), asyncio.Event()
    real_call = ToolRegistry.call

    async def held_call(self: ToolRegistry, name: str, arguments: str | dict[str, Any]) -> ToolOutcome:
        running.set()
        await stopped.wait()  # the person presses stop while the tool runs
        return await real_call(self, name, arguments)

    monkeypatch.setattr(ToolRegistry, "call", held_call)
    reply = await services.conversations.send(conv.id, "What is 12 times 7?")
    await asyncio.wait_for(running.wait(), 120)
    services.conversations.stop(conv.id)
    stopped.set()
    await asyncio.wait_for(reply.finished.wait(), 60)
    message = await services.store.get_message(reply.message_id)
    assert message is not None and message.status == "done"
    assert message.stats["finish_reason"] == "cancelled"
    assert len(message.tools) == 1 and message.tools[0]["result"].endswith("= 84")  # the running call finishes
    assert message.content == ""  # and the model is not asked to go on


async def test_a_model_that_cannot_call_tools_answers_with_a_note(services: Services) -> None:
    message = await answer(services, None, "What is 12 times 7?", tools="auto")  # SmolLM2's own ChatML
    assert message.status == "done" and message.content and not message.tools
    assert "cannot call tools" in message.stats["note"]


async def test_thinking_is_kept_apart_from_the_answer_and_can_be_turned_off(
        services: Services, family_model: Callable[[str], Path]) -> None:
    model = family_model("deepseek-r1-distill")  # its prompt opens a think block
    thought = await answer(services, model, "Why is the sky blue?", thinking="on", thinking_budget=24,
                           max_tokens=80)
    assert thought.status == "done" and thought.reasoning.strip()
    assert thought.content.strip(), "the budget closed the think block, so an answer follows"
    assert "<think>" not in thought.content and "</think>" not in thought.content
    assert 0 < thought.stats["reasoning_tokens"] <= 25 and thought.stats["thinking_s"] >= 0
    plain = await answer(services, model, "Why is the sky blue?", thinking="off")
    assert plain.status == "done" and plain.reasoning == "" and plain.content.strip()
