"""Tools and a JSON schema for the tests of tool calls and structured output, and a check of a
value against such a schema (the parts of JSON Schema used here: `jsonschema` is not a dependency)."""

from __future__ import annotations

from typing import Any

__all__ = ["CAT", "FORECAST", "LOCAL_TIME", "NOW", "check"]

FORECAST: dict[str, Any] = {"type": "function", "function": {
    "name": "get_forecast", "description": "The weather forecast for a city",
    "parameters": {"type": "object", "properties": {
        "city": {"enum": ["Rome", "Paris"]}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["city", "days"]}}}
LOCAL_TIME: dict[str, Any] = {"type": "function", "function": {
    "name": "local_time", "description": "The time now in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}},
                   "required": ["city"], "additionalProperties": False}}}
NOW: dict[str, Any] = {"type": "function", "function": {"name": "utc_now", "description": "The time in UTC"}}
CAT: dict[str, Any] = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 20}, "age": {"type": "integer", "minimum": 0, "maximum": 30},
    "colour": {"enum": ["black", "white", "ginger"]}, "indoor": {"type": "boolean"}},
    "required": ["name", "age", "colour", "indoor"], "additionalProperties": False}


def check(value: Any, schema: dict[str, Any], where: str = "$") -> None:
    """Raise AssertionError unless `value` matches `schema`. Integer bounds are not checked: the
    grammar does not keep them yet (test_reply_plan.py: test_integer_bounds_are_kept)."""
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} is not one of {schema['enum']}"
    kind = schema.get("type")
    if kind == "object":
        assert isinstance(value, dict), f"{where}: {value!r} is not an object"
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            assert name in value, f"{where}: '{name}' is missing"
        if schema.get("additionalProperties") is False:
            assert set(value) <= set(properties), f"{where}: unexpected {set(value) - set(properties)}"
        for name, item in value.items():
            if name in properties:
                check(item, properties[name], f"{where}.{name}")
    elif kind == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {value!r} is not an integer"
    elif kind == "boolean":
        assert isinstance(value, bool), f"{where}: {value!r} is not a boolean"
    elif kind == "string":
        assert isinstance(value, str), f"{where}: {value!r} is not a string"
        assert len(value) <= schema.get("maxLength", len(value)), f"{where}: {value!r} is too long"
