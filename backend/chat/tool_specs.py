"""Tools and JSON schemas from outside, checked before a model sees them.

A schema becomes a grammar in the engine worker; one that is huge, deep, recursive or points
elsewhere (a `$ref` to an address) is refused here with a clear sentence, and nothing is ever
fetched. The limits are far above what real tools use: OpenAI allows 128 tools a request.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..core.errors import AppError, ErrorCode

__all__ = ["MAX_SCHEMA_DEPTH", "MAX_TOOLS", "TOOL_NAME", "check_schema", "check_tools"]

MAX_TOOLS = 128
MAX_SCHEMA_DEPTH = 24
MAX_SCHEMA_NODES = 4000
MAX_TOOLS_BYTES = 256 * 1024
MAX_DESCRIPTION = 4096
TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""OpenAI's rule for function names; it leaves no room for markup in a prompt."""

_TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SUBSCHEMAS = ("items", "additionalProperties", "not", "contains", "propertyNames")


def check_tools(tools: list[Any], param: str = "tools") -> list[dict[str, Any]]:
    """OpenAI tool specs, checked, in the shape the engine reads."""
    if len(tools) > MAX_TOOLS:
        raise AppError(ErrorCode.BAD_REQUEST, f"at most {MAX_TOOLS} tools a request ({len(tools)} given)", param=param)
    if len(json.dumps(tools)) > MAX_TOOLS_BYTES:
        raise AppError(ErrorCode.BAD_REQUEST, f"the tools are too large (at most {MAX_TOOLS_BYTES // 1024} KiB "
                                              "of JSON in all)", param=param)
    names: set[str] = set()
    checked: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        where = f"{param}.{i}"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function" \
                or not isinstance(tool.get("function"), dict):
            raise AppError(ErrorCode.BAD_REQUEST, "a tool is {\"type\": \"function\", \"function\": {…}}", param=where)
        function = tool["function"]
        name = function.get("name")
        if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
            raise AppError(ErrorCode.BAD_REQUEST, "a function name is 1 to 64 letters, digits, '_' or '-'",
                           param=f"{where}.function.name")
        if name in names:
            raise AppError(ErrorCode.BAD_REQUEST, f"two tools are named '{name}'", param=f"{where}.function.name")
        names.add(name)
        description = function.get("description", "")
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
            raise AppError(ErrorCode.BAD_REQUEST, f"a description is text of at most {MAX_DESCRIPTION} characters",
                           param=f"{where}.function.description")
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        check_schema(parameters, f"{where}.function.parameters")
        if parameters.get("type", "object") != "object":
            raise AppError(ErrorCode.BAD_REQUEST, "a function's parameters are a JSON schema of type object",
                           param=f"{where}.function.parameters")
        spec: dict[str, Any] = {"name": name, "description": description, "parameters": parameters}
        checked.append({"type": "function", "function": spec})
    return checked


def check_schema(schema: Any, param: str) -> None:
    """Raise a 400 unless `schema` is a JSON schema the grammar converter can use safely."""
    if not isinstance(schema, dict):
        raise AppError(ErrorCode.BAD_REQUEST, "a JSON schema is an object", param=param)
    nodes = [0]
    _walk(schema, schema, param, 0, nodes, ())


def _walk(node: Any, root: dict[str, Any], param: str, depth: int, nodes: list[int], refs: tuple[str, ...]) -> None:
    if not isinstance(node, dict):
        if isinstance(node, bool):
            return  # `true` / `false` are schemas too
        raise AppError(ErrorCode.BAD_REQUEST, f"not a JSON schema: {json.dumps(node)[:60]}", param=param)
    values = node.get("enum")
    nodes[0] += 1 + (len(values) if isinstance(values, list) else 0)  # each listed value is a part of the grammar
    if depth > MAX_SCHEMA_DEPTH or nodes[0] > MAX_SCHEMA_NODES:
        raise AppError(ErrorCode.BAD_REQUEST, f"the JSON schema is too deep or too large (at most "
                                              f"{MAX_SCHEMA_DEPTH} levels and {MAX_SCHEMA_NODES} parts)", param=param)
    kind = node.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
    if any(not isinstance(k, str) or k not in _TYPES for k in kinds):
        raise AppError(ErrorCode.BAD_REQUEST, f"unknown JSON schema type {json.dumps(kind)[:60]}", param=param)
    ref = node.get("$ref")
    if ref is not None:
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise AppError(ErrorCode.BAD_REQUEST, "only references inside the schema (\"#/…\") are allowed; "
                                                  "nothing is fetched", param=param)
        if ref in refs:
            raise AppError(ErrorCode.BAD_REQUEST, f"recursive schemas are not supported ({ref} refers to itself)",
                           param=param)
        _walk(_resolve(root, ref, param), root, param, depth + 1, nodes, (*refs, ref))
    for key in _SUBSCHEMA_LISTS:
        value = node.get(key)
        if value is not None:
            if not isinstance(value, list):
                raise AppError(ErrorCode.BAD_REQUEST, f"'{key}' is a list of schemas", param=param)
            for item in value:
                _walk(item, root, param, depth + 1, nodes, refs)
    for key in _SUBSCHEMA_MAPS:
        value = node.get(key)
        if value is not None:
            if not isinstance(value, dict):
                raise AppError(ErrorCode.BAD_REQUEST, f"'{key}' maps names to schemas", param=param)
            if key in ("$defs", "definitions"):
                continue  # definitions are checked where they are used
            for item in value.values():
                _walk(item, root, param, depth + 1, nodes, refs)
    for key in _SUBSCHEMAS:
        if key in node:
            _walk(node[key], root, param, depth + 1, nodes, refs)
    for key in ("required", "enum"):
        if key in node and not isinstance(node[key], list):
            raise AppError(ErrorCode.BAD_REQUEST, f"'{key}' is a list", param=param)
    pattern = node.get("pattern")
    if pattern is not None and (not isinstance(pattern, str) or len(pattern) > 1000):
        raise AppError(ErrorCode.BAD_REQUEST, "'pattern' is a regular expression of at most 1000 characters",
                       param=param)
    for key in ("minLength", "maxLength", "minItems", "maxItems"):
        if key in node and (not isinstance(node[key], int) or isinstance(node[key], bool) or
                            not 0 <= node[key] <= 4096):
            raise AppError(ErrorCode.BAD_REQUEST, f"'{key}' is a whole number from 0 to 4096", param=param)


def _resolve(root: dict[str, Any], ref: str, param: str) -> Any:
    target: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, dict) or part not in target:
            raise AppError(ErrorCode.BAD_REQUEST, f"the reference {ref} points to nothing", param=param)
        target = target[part]
    return target
