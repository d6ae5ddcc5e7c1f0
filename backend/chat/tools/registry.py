"""Tools a language model may call: the base class, the registry that runs them, and their limits.

A tool gets its arguments as the model wrote them (JSON text or a dict), checked against its
pydantic `Args`; whatever goes wrong comes back as a `ToolOutcome` with `ok=False` and a
sentence the model can read and pass on, never as an exception.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

__all__ = [
    "MAX_ARGUMENTS_CHARS",
    "MAX_RESULT_CHARS",
    "TOOL_TIME_LIMIT_S",
    "Tool",
    "ToolError",
    "ToolOutcome",
    "ToolRegistry",
    "builtin_tools",
]

log = logging.getLogger(__name__)

# The built-in tools answer in milliseconds; the limit is for a tool that waits on something.
TOOL_TIME_LIMIT_S = 5.0
# About 1000 tokens: a result has to fit in the model's context beside the conversation.
MAX_RESULT_CHARS = 4000
# The arguments of the built-in tools are a few dozen characters; far more is a runaway model.
MAX_ARGUMENTS_CHARS = 100_000
CUT_NOTE = "… (cut)"

_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


class ToolError(Exception):
    """A tool refused its input or could not do it; the message, a plain English sentence, is for the model
    and the person."""


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    ok: bool
    text: str  # the result (ok) or the error sentence (not ok), at most MAX_RESULT_CHARS


class Tool(ABC):
    """One tool: its name, a label for people, the description the model reads and its arguments."""

    name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]
    Args: ClassVar[type[BaseModel]]

    @abstractmethod
    async def run(self, args: BaseModel) -> str:
        """The result as text; raise ToolError for input the tool refuses."""

    def spec(self) -> dict[str, Any]:
        """The tool in OpenAI's shape, as chat templates and `/v1` clients expect it."""
        parameters = _without_titles(self.Args.model_json_schema())
        parameters["additionalProperties"] = False
        parameters.setdefault("required", [])
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": parameters}}


class ToolRegistry:
    """The tools on offer, by name, in the order they were registered."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self._specs: list[dict[str, Any]] | None = None
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        name = getattr(tool, "name", None)
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"a tool name must match {_NAME.pattern}, not {name!r}")
        if name in self._tools:
            raise ValueError(f"there is already a tool named {name!r}")
        self._tools[name] = tool
        self._specs = None

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def titles(self) -> dict[str, str]:
        """Each tool's name for people, by its name."""
        return {name: tool.title for name, tool in self._tools.items()}

    def specs(self) -> list[dict[str, Any]]:
        """The tools in OpenAI's shape, made once (every answer with tools on asks for them)."""
        if self._specs is None:
            self._specs = [tool.spec() for tool in self._tools.values()]
        return self._specs

    async def call(self, name: str, arguments: str | dict[str, Any]) -> ToolOutcome:
        """Check the arguments, run the tool under the time limit and turn every failure into a sentence."""
        tool = self._tools.get(name)
        if tool is None:
            return _failed(f"there is no tool named {name!r}")
        try:
            args = tool.Args.model_validate(_arguments_object(arguments))
        except ToolError as exc:
            return _failed(str(exc))
        except ValidationError as exc:
            return _failed(_validation_sentence(tool, exc))
        try:
            async with asyncio.timeout(TOOL_TIME_LIMIT_S):
                text = await tool.run(args)
        except ToolError as exc:
            return _failed(str(exc) or f"{name} refused its input")
        except TimeoutError:
            return _failed(f"the tool took longer than {TOOL_TIME_LIMIT_S:g} s and was stopped")
        except Exception as exc:
            log.exception("tool %s failed", name)
            return _failed(f"the tool failed: {type(exc).__name__}")
        if not isinstance(text, str):
            log.error("tool %s returned %s instead of text", name, type(text).__name__)
            return _failed("the tool failed: it returned no text")
        return ToolOutcome(ok=True, text=_cut(text))


def builtin_tools() -> ToolRegistry:
    """The app's own tools: calculator, date_time and convert_units, in that order."""
    # imported here: the tools' modules import this one
    from .calculator import CalculatorTool
    from .clock import DateTimeTool
    from .units import ConvertUnitsTool

    return ToolRegistry([CalculatorTool(), DateTimeTool(), ConvertUnitsTool()])


def _failed(sentence: str) -> ToolOutcome:
    return ToolOutcome(ok=False, text=_cut(sentence))


def _cut(text: str) -> str:
    if len(text) <= MAX_RESULT_CHARS:
        return text
    return text[: MAX_RESULT_CHARS - len(CUT_NOTE)] + CUT_NOTE


def _arguments_object(arguments: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(arguments, str):
        if len(arguments) > MAX_ARGUMENTS_CHARS:
            raise ToolError(f"the arguments are too long ({len(arguments)} characters)")
        if not arguments.strip():
            return {}  # some models write "" for a tool without arguments
        try:
            arguments = json.loads(arguments)
        except (ValueError, RecursionError) as exc:  # RecursionError: thousands of nested brackets
            raise ToolError(f"the arguments are not valid JSON: {exc}") from None
    if not isinstance(arguments, dict):
        raise ToolError(f"the arguments must be a JSON object, not {_json_kind(arguments)}")
    return arguments


def _json_kind(value: object) -> str:
    kinds = {list: "a list", str: "a string", bool: "true or false", int: "a number", float: "a number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _validation_sentence(tool: Tool, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors()[:3]:
        field = ".".join(str(part) for part in error["loc"]) or "arguments"
        if error["type"] == "missing":
            problems.append(f"'{field}' is missing")
        elif error["type"] == "extra_forbidden":
            problems.append(f"'{field}' is not one of its arguments")
        else:
            problems.append(f"'{field}': {error['msg'][:1].lower()}{error['msg'][1:]}")
    expected = ", ".join(tool.Args.model_fields) or "none"
    return f"wrong arguments for {tool.name}: {'; '.join(problems)} (its arguments: {expected})"


def _without_titles(schema: Any, *, names: bool = False) -> Any:
    """The schema without pydantic's "title" keys; inside "properties" the keys are argument names and stay."""
    if isinstance(schema, dict):
        return {key: _without_titles(value, names=key in ("properties", "$defs") and not names)
                for key, value in schema.items() if names or key != "title"}
    if isinstance(schema, list):
        return [_without_titles(item) for item in schema]
    return schema
