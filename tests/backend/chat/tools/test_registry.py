"""The tool registry: specs in OpenAI's shape, and every way a call can go, as an outcome and not an exception."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict, Field

from backend.chat.tools import (
    MAX_RESULT_CHARS,
    CalculatorTool,
    ConvertUnitsTool,
    DateTimeTool,
    Tool,
    ToolError,
    ToolOutcome,
    ToolRegistry,
    builtin_tools,
)
from backend.chat.tools import registry as registry_module


class EchoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(description="A field named like the schema keyword pydantic adds.")
    times: int = Field(default=1, ge=1, le=10_000, description="How many times.")


class Echo(Tool):
    name: ClassVar[str] = "echo"
    title: ClassVar[str] = "Echo"
    description: ClassVar[str] = "Says the title again."
    Args: ClassVar[type[BaseModel]] = EchoArgs

    async def run(self, args: BaseModel) -> str:
        assert isinstance(args, EchoArgs)
        if args.title == "refuse":
            raise ToolError("echo does not say that")
        if args.title == "break":
            raise RuntimeError("a bug")
        if args.title == "sleep":
            await asyncio.sleep(10)
        if args.title == "nothing":
            return None  # type: ignore[return-value]
        return args.title * args.times


def _keys(value: Any, *, in_properties: bool = False) -> set[str]:
    """Every key of the schema except the argument names under "properties"."""
    if isinstance(value, dict):
        keys = set() if in_properties else set(value)
        for key, item in value.items():
            keys |= _keys(item, in_properties=key == "properties" and not in_properties)
        return keys
    if isinstance(value, list):
        return set().union(*(_keys(item) for item in value))
    return set()


def test_builtin_tools_in_order() -> None:
    tools = builtin_tools()
    assert tools.names() == ["calculator", "date_time", "convert_units"]
    assert isinstance(tools.get("calculator"), CalculatorTool)
    assert isinstance(tools.get("date_time"), DateTimeTool)
    assert isinstance(tools.get("convert_units"), ConvertUnitsTool)
    assert tools.get("nope") is None
    assert [t.title for t in map(tools.get, tools.names()) if t] == ["Calculator", "Date and time", "Unit converter"]


def test_specs_are_openai_tools() -> None:
    specs = builtin_tools().specs()
    json.dumps(specs)  # plain JSON all the way down
    assert [s["function"]["name"] for s in specs] == ["calculator", "date_time", "convert_units"]
    required = {"calculator": ["expression"], "date_time": [], "convert_units": ["value", "from_unit", "to_unit"]}
    for spec in specs:
        assert spec["type"] == "function"
        assert set(spec["function"]) == {"name", "description", "parameters"}
        assert 20 < len(spec["function"]["description"]) < 300
        parameters = spec["function"]["parameters"]
        assert parameters["type"] == "object"
        assert parameters["additionalProperties"] is False
        assert parameters["required"] == required[spec["function"]["name"]]
        assert "title" not in _keys(parameters)
        for name, schema in parameters["properties"].items():
            assert schema["description"], name
    calculator = specs[0]["function"]["parameters"]["properties"]["expression"]
    assert calculator["type"] == "string" and calculator["maxLength"] == 500


def test_an_argument_called_title_is_kept() -> None:
    parameters = Echo().spec()["function"]["parameters"]
    assert parameters == {
        "type": "object",
        "properties": {
            "title": {"type": "string", "description": "A field named like the schema keyword pydantic adds."},
            "times": {"type": "integer", "default": 1, "minimum": 1, "maximum": 10_000,
                      "description": "How many times."},
        },
        "required": ["title"],
        "additionalProperties": False,
    }


@pytest.mark.parametrize("name", ["", "Echo", "1echo", "echo-tool", "echo tool", "é", "e" * 65])
def test_bad_names_are_refused(name: str) -> None:
    tool = Echo()
    tool.name = name  # type: ignore[misc]
    with pytest.raises(ValueError, match="a tool name must match"):
        ToolRegistry([tool])


def test_names_up_to_64_characters_and_no_twins() -> None:
    long = Echo()
    long.name = "e" * 64  # type: ignore[misc]
    tools = ToolRegistry([long, Echo()])
    assert tools.names() == ["e" * 64, "echo"]
    with pytest.raises(ValueError, match="there is already a tool named 'echo'"):
        tools.register(Echo())


@pytest.mark.parametrize(
    ("arguments", "outcome"),
    [
        ('{"title": "ab", "times": 3}', ToolOutcome(ok=True, text="ababab")),
        ({"title": "ab"}, ToolOutcome(ok=True, text="ab")),
        ('{"title": "ab", "times": "2"}', ToolOutcome(ok=True, text="abab")),
        ("refuse",
         ToolOutcome(ok=False, text="the arguments are not valid JSON: Expecting value: line 1 column 1 (char 0)")),
        ('["ab"]', ToolOutcome(ok=False, text="the arguments must be a JSON object, not a list")),
        ("null", ToolOutcome(ok=False, text="the arguments must be a JSON object, not null")),
        ('"ab"', ToolOutcome(ok=False, text="the arguments must be a JSON object, not a string")),
        ("", ToolOutcome(ok=False, text="wrong arguments for echo: 'title' is missing (its arguments: title, times)")),
        ('{"title": "ab", "loud": true}',
         ToolOutcome(ok=False, text="wrong arguments for echo: 'loud' is not one of its arguments "
                                    "(its arguments: title, times)")),
        ('{"title": "ab", "times": 0}',
         ToolOutcome(ok=False, text="wrong arguments for echo: 'times': input should be greater than or equal to 1 "
                                    "(its arguments: title, times)")),
        ('{"title": "ab", "times": "many"}',
         ToolOutcome(ok=False, text="wrong arguments for echo: 'times': input should be a valid integer, unable to "
                                    "parse string as an integer (its arguments: title, times)")),
        ({"title": "refuse"}, ToolOutcome(ok=False, text="echo does not say that")),
        ({"title": "nothing"}, ToolOutcome(ok=False, text="the tool failed: it returned no text")),
    ],
)
async def test_calls(arguments: str | dict[str, Any], outcome: ToolOutcome) -> None:
    assert await ToolRegistry([Echo()]).call("echo", arguments) == outcome


async def test_unknown_tool() -> None:
    assert await builtin_tools().call("weather", "{}") == ToolOutcome(ok=False, text="there is no tool named 'weather'")


async def test_runaway_arguments() -> None:
    tools = ToolRegistry([Echo()])
    nested = await tools.call("echo", "[" * 99_999)
    assert not nested.ok and nested.text.startswith("the arguments are not valid JSON")
    long = await tools.call("echo", json.dumps({"title": "x" * 100_000}))
    assert long == ToolOutcome(ok=False, text="the arguments are too long (100013 characters)")


async def test_a_failing_tool_is_named_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger=registry_module.__name__):
        outcome = await ToolRegistry([Echo()]).call("echo", {"title": "break"})
    assert outcome == ToolOutcome(ok=False, text="the tool failed: RuntimeError")
    assert "tool echo failed" in caplog.text and "a bug" in caplog.text


async def test_a_slow_tool_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    assert registry_module.TOOL_TIME_LIMIT_S == 5.0
    monkeypatch.setattr(registry_module, "TOOL_TIME_LIMIT_S", 0.05)
    start = time.monotonic()
    outcome = await ToolRegistry([Echo()]).call("echo", {"title": "sleep"})
    assert outcome == ToolOutcome(ok=False, text="the tool took longer than 0.05 s and was stopped")
    assert time.monotonic() - start < 2


async def test_cancelling_the_call_cancels_the_tool() -> None:
    call = asyncio.create_task(ToolRegistry([Echo()]).call("echo", {"title": "sleep"}))
    await asyncio.sleep(0.01)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_long_results_are_cut() -> None:
    tools = ToolRegistry([Echo()])
    exact = await tools.call("echo", {"title": "x", "times": MAX_RESULT_CHARS})
    assert exact == ToolOutcome(ok=True, text="x" * MAX_RESULT_CHARS)
    cut = await tools.call("echo", {"title": "ab", "times": 5000})
    assert cut.ok and len(cut.text) == MAX_RESULT_CHARS
    assert cut.text == "ab" * 1996 + "a… (cut)"


async def test_builtin_tools_through_the_registry() -> None:
    tools = ToolRegistry([CalculatorTool(), DateTimeTool(now=lambda: datetime(2026, 12, 7, 13, 3, 12, tzinfo=UTC)),
                          ConvertUnitsTool()])
    assert await tools.call("calculator", '{"expression": "2+3*4"}') == ToolOutcome(ok=True, text="2 + 3 * 4 = 14")
    assert await tools.call("calculator", '{"expression": "1/0"}') == ToolOutcome(ok=False, text="division by zero")
    assert await tools.call("date_time", '{"timezone": "Europe/Rome"}') == ToolOutcome(
        ok=True, text="Monday 7 December 2026, 14:03:12 in Europe/Rome (UTC+01:00); ISO 2026-12-07T14:03:12+01:00"
    )
    assert (await tools.call("date_time", "")).ok
    assert await tools.call("convert_units", {"value": "5", "from_unit": "km", "to_unit": "mi"}) == ToolOutcome(
        ok=True, text="5 km = 3.10686 mi"
    )
    refused = await tools.call("convert_units", '{"value": NaN, "from_unit": "km", "to_unit": "mi"}')
    assert not refused.ok and refused.text.startswith("wrong arguments for convert_units: 'value': input should be")
    too_long = await tools.call("calculator", {"expression": "1+" * 300 + "1"})
    assert too_long == ToolOutcome(
        ok=False, text="wrong arguments for calculator: 'expression': string should have at most 500 characters "
        "(its arguments: expression)"
    )
