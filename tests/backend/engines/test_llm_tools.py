"""The llm worker with tools, structured output and thinking, on the bundled SmolLM2 rewritten
with real families' chat templates (Qwen3's, DeepSeek-R1 distill's): the model is tiny and
knows none of these formats, so what it writes right is what the grammar and the parser make
of it, which is what is tested here."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from backend.core.errors import AppError, ErrorCode
from backend.engines.llm import ChatRequest, ChatResult, LlmConfig, PromptReady, TokenDelta, ToolCallDelta
from backend.runtime.protocol import Event, JobDone, JobFailed
from backend.runtime.worker import WorkerProcess, WorkerSpec
from tests.ggufs import copy_with_chat_template
from tests.threads import ENGINE_THREADS
from tests.tool_schemas import CAT, FORECAST, LOCAL_TIME, NOW, check

pytestmark = [pytest.mark.engine, pytest.mark.asyncio(loop_scope="module")]
"""The module's workers belong to the module's event loop."""

TEMPLATES = Path(__file__).resolve().parents[2] / "data" / "templates"

WEATHER_QUESTION = [{"role": "user", "content": "What will the weather be in Paris for the next 3 days?"}]


def spec(model: Path) -> WorkerSpec:
    return WorkerSpec(name="llm", factory="backend.engines.llm:LlmEngine",
                      config=LlmConfig(model_path=str(model), n_ctx=2048, n_threads=ENGINE_THREADS))


@pytest.fixture(scope="module")
def rewritten(smollm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("families")
    return {family: copy_with_chat_template(smollm_path, folder / f"smollm2-{family}.gguf",
                                            (TEMPLATES / f"{family}.jinja").read_text(encoding="utf-8"))
            for family in ("qwen3", "deepseek-r1-distill")}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def qwen(rewritten: dict[str, Path]) -> AsyncIterator[WorkerProcess]:
    """SmolLM2 with Qwen3's template: tools in the system turn, Hermes calls, `enable_thinking`."""
    worker = WorkerProcess(spec(rewritten["qwen3"]))
    yield worker
    await worker.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def deepseek(rewritten: dict[str, Path]) -> AsyncIterator[WorkerProcess]:
    """SmolLM2 with the DeepSeek-R1 distill's template: its prompt opens a think block."""
    worker = WorkerProcess(spec(rewritten["deepseek-r1-distill"]))
    yield worker
    await worker.stop()


@dataclass
class Reply:
    deltas: list[TokenDelta] = field(default_factory=list)
    calls: list[ToolCallDelta] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    """"reasoning", "text" and "call", in the order the events came."""
    result: ChatResult = field(default_factory=ChatResult)
    ready: PromptReady | None = None

    @property
    def text(self) -> str:
        return "".join(d.text for d in self.deltas)

    @property
    def reasoning(self) -> str:
        return "".join(d.reasoning for d in self.deltas)


async def ask(worker: WorkerProcess, **fields: Any) -> Reply:
    reply = Reply()
    event: Event
    async for event in worker.run(ChatRequest(**{"messages": WEATHER_QUESTION, "max_tokens": 80, **fields})):
        if isinstance(event, TokenDelta):
            reply.deltas.append(event)
            reply.order += ["reasoning"] * bool(event.reasoning) + ["text"] * bool(event.text)
        elif isinstance(event, ToolCallDelta):
            reply.calls.append(event)
            reply.order.append("call")
        elif isinstance(event, JobDone):
            assert isinstance(event.result, ChatResult)
            reply.result = event.result
        elif isinstance(event, JobFailed):
            raise AppError(event.code, event.message)
        else:
            assert isinstance(event, PromptReady)
            reply.ready = event
    return reply


# (a) thinking read apart from the answer -------------------------------------------------------


async def test_a_think_block_is_streamed_as_reasoning_apart_from_the_answer(qwen: WorkerProcess) -> None:
    grammar = r'root ::= "<think>" [a-z ]{12,40} "</think>" "\n\n" [A-Z] [a-z ]{4,30} "."'
    for seed in (1, 2):
        reply = await ask(qwen, grammar=grammar, temperature=0.8, seed=seed)
        assert re.fullmatch(r"[a-z ]{12,40}", reply.reasoning), reply.reasoning
        assert re.fullmatch(r"[A-Z][a-z ]{4,30}\.", reply.text), reply.text
        assert "<think>" not in reply.text and "</think>" not in reply.text + reply.reasoning
        assert reply.order.index("text") > len(reply.order) - reply.order[::-1].index("reasoning") - 1, reply.order
        result = reply.result
        assert result.finish_reason == "stop"
        assert 0 < result.reasoning_tokens < result.completion_tokens
        assert result.thinking_s > 0
        assert result.tool_calls == []


# (b) tool calls a grammar requires ------------------------------------------------------------


async def test_a_named_tool_choice_gives_that_call_with_valid_arguments(qwen: WorkerProcess) -> None:
    for seed in range(5):
        reply = await ask(qwen, tools=[FORECAST, LOCAL_TIME], tool_choice="get_forecast", temperature=1.0, seed=seed)
        assert len(reply.calls) == 1, (seed, reply.text, reply.result)
        call = reply.calls[0]
        assert call.index == 0 and call.name == "get_forecast"
        assert re.fullmatch(r"[A-Za-z0-9]{9}", call.id)
        check(json.loads(call.arguments), FORECAST["function"]["parameters"])
        assert reply.text == "" and reply.reasoning == ""
        assert reply.result.finish_reason == "tool_calls"
        assert reply.result.tool_calls == [{"id": call.id, "name": call.name, "arguments": call.arguments}]
        assert reply.result.reasoning_tokens == 0  # a required call turns thinking off


async def test_tool_choice_required_picks_one_of_the_tools(qwen: WorkerProcess) -> None:
    tools = {t["function"]["name"]: t for t in (FORECAST, LOCAL_TIME, NOW)}
    for seed, question in enumerate(["What time is it in Rome?", "Will it rain in Rome tomorrow?",
                                     "What time is it now in UTC?", "Is it late in Paris?",
                                     "Forecast for Paris for a week, please."]):
        reply = await ask(qwen, messages=[{"role": "user", "content": question}], tools=list(tools.values()),
                          tool_choice="required", temperature=1.0, seed=seed)
        assert len(reply.calls) == 1, (question, reply.text, reply.result)
        call = reply.calls[0]
        assert call.name in tools
        parameters = tools[call.name]["function"].get("parameters", {"type": "object", "properties": {}})
        check(json.loads(call.arguments), parameters | {"additionalProperties": False})
        assert reply.result.finish_reason == "tool_calls"


async def test_a_call_and_its_result_go_back_to_the_model(qwen: WorkerProcess) -> None:
    """The round trip's second half: the assistant's call (arguments as an object) and the tool's
    result are rendered in Qwen3's format and the model goes on from there."""
    call = {"role": "assistant", "content": "", "tool_calls": [{"id": "abc123XYZ", "type": "function", "function": {
        "name": "get_forecast", "arguments": {"city": "Paris", "days": 3}}}]}
    result = {"role": "tool", "tool_call_id": "abc123XYZ", "name": "get_forecast",
              "content": '{"forecast": ["sun", "sun", "rain"]}'}
    asked = await ask(qwen, tools=[FORECAST], thinking="off", temperature=0.0, max_tokens=4)
    answered = await ask(qwen, messages=[*WEATHER_QUESTION, call, result], tools=[FORECAST], thinking="off",
                         temperature=0.0, max_tokens=24)
    assert asked.ready is not None and answered.ready is not None
    # the call and the result (about 40 tokens in SmolLM2's vocabulary) are in the prompt
    assert answered.ready.prompt_tokens > asked.ready.prompt_tokens + 30
    assert answered.text.strip() or answered.calls
    assert answered.result.finish_reason in ("stop", "length", "tool_calls")


# (c) structured output -----------------------------------------------------------------------


async def test_response_format_json_schema_matches_the_schema(qwen: WorkerProcess) -> None:
    messages = [{"role": "user", "content": "Describe a cat as JSON."}]
    for seed in range(3):
        reply = await ask(qwen, messages=messages, response_format="json_schema", json_schema=CAT,
                          temperature=0.8, seed=seed, max_tokens=120)
        assert reply.result.finish_reason == "stop", reply.text
        check(json.loads(reply.text), CAT)
        assert reply.calls == [] and reply.reasoning == ""


async def test_response_format_json_object_is_an_object(qwen: WorkerProcess) -> None:
    reply = await ask(qwen, messages=[{"role": "user", "content": "Describe a cat as JSON."}],
                      response_format="json_object", temperature=0.0, max_tokens=200)
    assert reply.result.finish_reason == "stop", reply.text
    assert isinstance(json.loads(reply.text), dict)


# (d) thinking budget and thinking off ---------------------------------------------------------


async def test_the_thinking_budget_closes_the_block_and_the_answer_follows(deepseek: WorkerProcess) -> None:
    reply = await ask(deepseek, thinking_budget=20, temperature=0.0, max_tokens=80)
    result = reply.result
    assert 0 < result.reasoning_tokens <= 21, result
    assert reply.reasoning.strip() and reply.text.strip()
    assert result.completion_tokens > result.reasoning_tokens  # the answer came before max_tokens
    assert reply.order[0] == "reasoning" and "text" in reply.order
    # without a budget the same model thinks on
    unbounded = await ask(deepseek, temperature=0.0, max_tokens=40)
    assert 21 < unbounded.result.reasoning_tokens <= unbounded.result.completion_tokens == 40


async def test_reasoning_tokens_are_the_tokens_written_while_thinking(deepseek: WorkerProcess) -> None:
    """Every token sampled inside the think block counts once; nothing else does (the end of
    generation is not a token, even when the answer ends inside the block)."""
    for max_tokens in (1, 5, 16):
        reply = await ask(deepseek, temperature=0.0, max_tokens=max_tokens)
        result = reply.result
        assert result.finish_reason == "length" and result.completion_tokens == max_tokens
        if not reply.text:  # still thinking when it was cut off
            assert result.reasoning_tokens == max_tokens, result
        assert result.reasoning_tokens <= result.completion_tokens, result


async def test_thinking_off_closes_the_opened_block(deepseek: WorkerProcess) -> None:
    reply = await ask(deepseek, thinking="off", temperature=0.0, max_tokens=30)
    assert reply.result.reasoning_tokens == 0 and reply.reasoning == ""
    assert reply.text.strip()


# (e) what cannot be a grammar ------------------------------------------------------------------


async def test_a_bad_grammar_fails_the_request_and_the_worker_answers_the_next(qwen: WorkerProcess) -> None:
    with pytest.raises(AppError) as failed:
        await ask(qwen, grammar="root ::= (")
    assert failed.value.code == ErrorCode.BAD_REQUEST and "grammar" in failed.value.message
    assert qwen.alive
    reply = await ask(qwen, temperature=0.0, max_tokens=8)
    assert reply.text.strip()


@pytest.mark.parametrize("fields", [
    {"response_format": "json_schema", "json_schema": {"not": {"type": "string"}}},
    {"response_format": "json_schema", "json_schema": {"type": "string", "pattern": "(unclosed"}},
    # llama.cpp refuses the grammar: 4096 items of up to 4096 characters each, spelt out
    {"response_format": "json_schema", "json_schema": {"type": "array", "minItems": 4096, "maxItems": 4096,
                                                       "items": {"type": "string", "maxLength": 4096}}},
    {"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"not": {}}}}}}], "tool_choice": "required"},
])
async def test_a_schema_the_grammar_cannot_use_is_a_bad_request(qwen: WorkerProcess, fields: dict[str, Any]) -> None:
    with pytest.raises(AppError) as failed:
        await ask(qwen, max_tokens=8, **fields)
    assert failed.value.code == ErrorCode.BAD_REQUEST
    assert (await ask(qwen, temperature=0.0, max_tokens=4)).text
