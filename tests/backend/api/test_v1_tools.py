"""`/v1/chat/completions` with tools, structured output and thinking, through the official `openai`
client against a real server. The models are the bundled SmolLM2 rewritten with Qwen3's template
(tools, Hermes calls) and with the DeepSeek-R1 distill's (its prompt opens a think block), put in
the server's models folder as a person would; what the tiny model writes is noise, but the
grammar makes the calls and the JSON well formed, and the parser and the API carry them."""

from __future__ import annotations

import json
import re
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, cast

import httpx
import openai
import pytest
from openai.types.chat import (
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageParam,
    ChatCompletionNamedToolChoiceParam,
)
from pydantic import BaseModel, Field

from tests.ggufs import copy_with_chat_template
from tests.server import ServerProcess
from tests.tool_schemas import CAT, FORECAST, LOCAL_TIME, check

pytestmark = pytest.mark.engine

TEMPLATES = Path(__file__).resolve().parents[2] / "data" / "templates"
QWEN = "smollm2-qwen3"
DEEPSEEK = "smollm2-deepseek-r1"
BUNDLED = "smollm2-135m-instruct"
QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What will the weather be in Paris for the next 3 days?"}]
TOOLS = cast(list[ChatCompletionFunctionToolParam], [FORECAST, LOCAL_TIME])
FORECAST_RESULT = '{"forecast": ["sun", "sun", "rain"]}'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, smollm_path: Path) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("v1-tools") / "data"
    models = data / "models"
    models.mkdir(parents=True)
    for model_id, family in ((QWEN, "qwen3"), (DEEPSEEK, "deepseek-r1-distill")):
        copy_with_chat_template(smollm_path, models / f"{model_id}.gguf",
                                (TEMPLATES / f"{family}.jinja").read_text(encoding="utf-8"))
    with ServerProcess(data_dir=data) as srv:
        deadline = time.monotonic() + 30  # the models folder is looked through after start-up
        while not {QWEN, DEEPSEEK} <= {m.id for m in client_of(srv).models.list()}:
            assert time.monotonic() < deadline, srv.log()
            time.sleep(0.2)
        yield srv


def client_of(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base}/v1", api_key=server.token, timeout=120, max_retries=0)


@pytest.fixture
def client(server: ServerProcess) -> openai.OpenAI:
    return client_of(server)


def named(name: str) -> ChatCompletionNamedToolChoiceParam:
    return {"type": "function", "function": {"name": name}}


# Tool calls ----------------------------------------------------------------------------------


def test_a_named_tool_choice_is_called_and_its_result_answered(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(model=QWEN, messages=QUESTION, tools=TOOLS,
                                              tool_choice=named("get_forecast"), max_tokens=80, temperature=0)
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    message = choice.message
    assert message.role == "assistant" and message.content is None
    assert message.tool_calls is not None and len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert call.type == "function" and re.fullmatch(r"[A-Za-z0-9]{9}", call.id)
    assert call.function.name == "get_forecast"
    check(json.loads(call.function.arguments), FORECAST["function"]["parameters"])
    assert response.usage is not None and response.usage.completion_tokens > 0
    # the call and its result go back, and the model answers in words
    follow_up: list[ChatCompletionMessageParam] = [
        *QUESTION, cast(ChatCompletionMessageParam, message.model_dump(exclude_none=True)),
        {"role": "tool", "tool_call_id": call.id, "content": FORECAST_RESULT}]
    final = client.chat.completions.create(model=QWEN, messages=follow_up,
                                           tools=TOOLS, tool_choice="none", max_tokens=24,
                                           temperature=0)
    assert final.choices[0].message.content and final.choices[0].message.tool_calls is None
    assert final.choices[0].finish_reason in ("stop", "length")
    alone = client.chat.completions.create(model=QWEN, messages=QUESTION,
                                           tools=TOOLS, tool_choice="none", max_tokens=1)
    assert final.usage is not None and alone.usage is not None
    assert final.usage.prompt_tokens > alone.usage.prompt_tokens + 30  # with the call and its result


def test_a_streamed_tool_call_accumulates_as_the_client_does(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model=QWEN, messages=QUESTION, tools=TOOLS,
                                            tool_choice=named("get_forecast"), max_tokens=80, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    calls: dict[int, dict[str, str]] = {}
    content, finish, usage = "", None, None
    for chunk in stream:
        usage = chunk.usage or usage
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        content += delta.content or ""
        for piece in delta.tool_calls or []:
            call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = piece.id or call["id"]
            if piece.function is not None:
                call["name"] += piece.function.name or ""
                call["arguments"] += piece.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls" and content == ""
    assert list(calls) == [0] and calls[0]["name"] == "get_forecast" and len(calls[0]["id"]) == 9
    check(json.loads(calls[0]["arguments"]), FORECAST["function"]["parameters"])
    assert usage is not None and usage.completion_tokens > 0
    # the client's own stream helper puts the same together
    with client.chat.completions.stream(model=QWEN, messages=QUESTION,
                                        tools=TOOLS[:1], tool_choice=named("get_forecast"), max_tokens=80,
                                        temperature=0) as helper:
        final = helper.get_final_completion()
    assert final.choices[0].finish_reason == "tool_calls"
    tool_calls = final.choices[0].message.tool_calls
    assert tool_calls is not None and tool_calls[0].function.name == "get_forecast"
    assert json.loads(tool_calls[0].function.arguments) == json.loads(calls[0]["arguments"])


class Country(BaseModel):
    name: Literal["Italy", "France"]


class City(BaseModel):
    name: Literal["Rome", "Paris"]
    country: Country


class BookTrip(BaseModel):
    """Book a trip to a city."""

    to: City
    nights: int


def test_a_pydantic_tool_with_nested_models_is_called_when_required(client: openai.OpenAI) -> None:
    """`openai.pydantic_function_tool` writes nested models as `$defs` and references, and marks the
    tool strict; the call the server returns is parsed by the client into the model."""
    tool = openai.pydantic_function_tool(BookTrip)
    assert "$defs" in json.dumps(tool)
    response = client.chat.completions.parse(model=QWEN, tools=[tool], tool_choice="required", max_tokens=80,
                                             temperature=0, messages=[{"role": "user",
                                                                       "content": "Two nights in Rome, please."}])
    tool_calls = response.choices[0].message.tool_calls
    assert response.choices[0].finish_reason == "tool_calls" and tool_calls
    assert tool_calls[0].function.name == "BookTrip"
    assert isinstance(tool_calls[0].function.parsed_arguments, BookTrip)


# Structured output ---------------------------------------------------------------------------


def test_response_format_json_schema_gives_json_that_matches(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model=QWEN, messages=[{"role": "user", "content": "Describe a cat as JSON."}], max_tokens=120,
        temperature=0.7, seed=3, response_format={"type": "json_schema", "json_schema": {"name": "cat", "schema": CAT}})
    assert response.choices[0].finish_reason == "stop"
    check(json.loads(response.choices[0].message.content or ""), CAT)


class Cat(BaseModel):
    name: str = Field(max_length=20)
    colour: Literal["black", "white", "ginger"]
    indoor: bool


def test_the_clients_parse_helper_gets_its_model(client: openai.OpenAI) -> None:
    response = client.chat.completions.parse(model=QWEN, response_format=Cat, max_tokens=120, temperature=0,
                                             messages=[{"role": "user", "content": "Describe a cat."}])
    assert isinstance(response.choices[0].message.parsed, Cat)


def test_response_format_json_object_streams_an_object(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model=QWEN, stream=True, max_tokens=200, temperature=0,
                                            response_format={"type": "json_object"},
                                            messages=[{"role": "user", "content": "Describe a cat as JSON."}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert isinstance(json.loads(text), dict)


# Thinking ------------------------------------------------------------------------------------


def test_reasoning_content_of_a_model_that_starts_thinking(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(model=DEEPSEEK, messages=QUESTION, max_tokens=16, temperature=0)
    message = response.choices[0].message
    assert (message.model_extra or {}).get("reasoning_content")
    assert message.model_dump()["reasoning_content"] == message.model_extra["reasoning_content"]  # type: ignore[index]
    assert response.usage is not None and response.usage.completion_tokens_details is not None
    assert 0 < (response.usage.completion_tokens_details.reasoning_tokens or 0) <= 16
    stream = client.chat.completions.create(model=DEEPSEEK, messages=QUESTION, max_tokens=16, temperature=0,
                                            stream=True)
    deltas = [c.choices[0].delta for c in stream if c.choices]
    streamed = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
    assert streamed == message.model_extra["reasoning_content"]  # type: ignore[index]


@pytest.mark.parametrize("switch", [{"think": False}, {"reasoning_effort": "none"}])
def test_thinking_switched_off_gives_no_reasoning_content(client: openai.OpenAI, switch: dict[str, Any]) -> None:
    response = client.chat.completions.create(model=DEEPSEEK, messages=QUESTION, max_tokens=16, temperature=0,
                                              extra_body=switch)
    message = response.choices[0].message
    assert "reasoning_content" not in (message.model_extra or {}) and message.content
    assert response.usage is not None and response.usage.completion_tokens_details is not None
    assert response.usage.completion_tokens_details.reasoning_tokens == 0
    stream = client.chat.completions.create(model=DEEPSEEK, messages=QUESTION, max_tokens=16, temperature=0,
                                            stream=True, extra_body=switch)
    assert not any("reasoning_content" in (c.choices[0].delta.model_extra or {}) for c in stream if c.choices)


# Hostile input -------------------------------------------------------------------------------


class Listener:
    """A port that counts connections: a schema's remote reference pointing here must not be fetched."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]

    def connected(self, wait_s: float = 0.5) -> bool:
        return bool(select.select([self.socket], [], [], wait_s)[0])

    def close(self) -> None:
        self.socket.close()


def post(server: ServerProcess, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.base}/v1/chat/completions", headers=server.headers(), timeout=60,
                      json={"model": BUNDLED, "max_tokens": 4, **body})


def tool(name: str = "f", parameters: Any = None, **function: Any) -> dict[str, Any]:
    spec = {"name": name, **function}
    if parameters is not None:
        spec["parameters"] = parameters
    return {"type": "function", "function": spec}


HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi"}]
RECURSIVE = {"type": "object", "$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}},
             "properties": {"head": {"$ref": "#/$defs/node"}}}
CALL = {"id": "abc123XYZ", "type": "function", "function": {"name": "f", "arguments": "{}"}}

HOSTILE: dict[str, tuple[dict[str, Any], str, str]] = {
    "parameters-a-number": ({"messages": HI, "tools": [tool(parameters=5)]},
                            "tools.0.function.parameters", "a JSON schema is an object"),
    "parameters-a-string": ({"messages": HI, "tools": [tool(parameters="object")]},
                            "tools.0.function.parameters", "a JSON schema is an object"),
    "unknown-type": ({"messages": HI, "tools": [tool(parameters={"type": "banana"})]},
                     "tools.0.function.parameters", "unknown JSON schema type"),
    "not-an-object": ({"messages": HI, "tools": [tool(parameters={"type": "array"})]},
                      "tools.0.function.parameters", "of type object"),
    "recursive-ref": ({"messages": HI, "tools": [tool(parameters=RECURSIVE)]},
                      "tools.0.function.parameters", "recursive"),
    "root-ref": ({"messages": HI, "tools": [tool(parameters={"type": "object",
                                                             "properties": {"again": {"$ref": "#"}}})]},
                 "tools.0.function.parameters", "nothing is fetched"),
    "dangling-ref": ({"messages": HI, "tools": [tool(parameters={"type": "object",
                                                                 "properties": {"x": {"$ref": "#/$defs/gone"}}})]},
                     "tools.0.function.parameters", "points to nothing"),
    "thousand-tools": ({"messages": HI, "tools": [tool(f"f{i}") for i in range(1000)]}, "tools", "at most 128"),
    "markup-name": ({"messages": HI, "tools": [tool("<tool_call>")]}, "tools.0.function.name", "function name"),
    "empty-name": ({"messages": HI, "tools": [tool("")]}, "tools.0.function.name", "function name"),
    "twice-the-name": ({"messages": HI, "tools": [tool("f"), tool("f")]}, "tools.1.function.name", "two tools"),
    "not-a-function": ({"messages": HI, "tools": [{"type": "code_interpreter"}]}, "tools.0", "function"),
    "long-description": ({"messages": HI, "tools": [tool(description="x" * 5000)]},
                         "tools.0.function.description", "description"),
    "deep-schema": ({"messages": HI, "tools": [tool(parameters=json.loads(
        '{"type": "object", "properties": {"a": ' * 40 + "{}" + "}}" * 40))]},
        "tools.0.function.parameters", "too deep"),
    "huge-enum": ({"messages": HI, "response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"enum": [f"v{i}" for i in range(100_000)]}}}},
        "response_format.json_schema.schema", "too large"),
    "choice-not-in-tools": ({"messages": HI, "tools": [tool("f")], "tool_choice": named("g")},
                            "tool_choice", "not in tools"),
    "choice-without-tools": ({"messages": HI, "tool_choice": named("g")}, "tool_choice", "not in tools"),
    "required-without-tools": ({"messages": HI, "tool_choice": "required"}, "tool_choice", "needs tools"),
    "tool-message-without-id": ({"messages": [*HI, {"role": "assistant", "tool_calls": [CALL]},
                                              {"role": "tool", "content": "42"}]}, "messages.2", "tool_call_id"),
    "arguments-a-list": ({"messages": [*HI, {"role": "assistant", "tool_calls": [
        {**CALL, "function": {"name": "f", "arguments": "[1, 2]"}}]}]},
        "messages.1.tool_calls.0.function.arguments", "JSON object"),
    "arguments-not-json": ({"messages": [*HI, {"role": "assistant", "tool_calls": [
        {**CALL, "function": {"name": "f", "arguments": "city=Rome"}}]}]},
        "messages.1.tool_calls.0.function.arguments", "JSON object"),
    "schema-not-an-object": ({"messages": HI, "response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "banana"}}}}, "response_format.json_schema.schema", "unknown JSON schema"),
    "json-schema-missing": ({"messages": HI, "response_format": {"type": "json_schema"}},
                            "response_format.json_schema", "json_schema"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_tools_and_schemas_are_clear_400s(server: ServerProcess, case: str) -> None:
    body, param, words = HOSTILE[case]
    response = post(server, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "bad_request", error
    assert error["param"] == param, error
    assert words in error["message"], error
    assert len(error["message"]) < 300


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("where", ["tools", "response_format"])
def test_a_remote_reference_is_refused_and_nothing_is_fetched(server: ServerProcess, scheme: str, where: str) -> None:
    listener = Listener()
    try:
        schema = {"type": "object", "properties": {"x": {"$ref": f"{scheme}://127.0.0.1:{listener.port}/s.json"}}}
        body: dict[str, Any] = {"messages": HI}
        if where == "tools":
            body |= {"tools": [tool(parameters=schema)], "tool_choice": "required"}
            param = "tools.0.function.parameters"
        else:
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
            param = "response_format.json_schema.schema"
        response = post(server, body)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["param"] == param and "nothing is fetched" in error["message"]
        assert not listener.connected()
    finally:
        listener.close()


@pytest.mark.parametrize("schema", [
    {"not": {"type": "string"}},  # a valid schema the grammar converter cannot express
    # one llama.cpp refuses to build: 4096 items of up to 4096 characters, spelt out
    {"type": "array", "minItems": 4096, "maxItems": 4096, "items": {"type": "string", "maxLength": 4096}},
])
@pytest.mark.parametrize("stream", [False, True])
def test_a_schema_that_cannot_become_a_grammar_is_a_400(server: ServerProcess, schema: dict[str, Any],
                                                        stream: bool) -> None:
    """Streamed too: the grammar is made before the prompt is read, so the error comes before any event."""
    response = post(server, {"messages": HI, "stream": stream, "response_format": {
        "type": "json_schema", "json_schema": {"name": "x", "schema": schema}}})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_request" and "grammar" in error["message"]


def test_the_server_still_answers_after_the_hostile_requests(server: ServerProcess, client: openai.OpenAI) -> None:
    for body, _, _ in HOSTILE.values():
        post(server, body)
    response = client.chat.completions.create(model=BUNDLED, messages=HI, max_tokens=4)
    assert response.choices[0].message.content is not None
