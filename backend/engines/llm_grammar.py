"""Constrained generation: grammars built from JSON schemas, and a sampler that applies one cheaply.

The grammar is GBNF, llama.cpp's grammar format, made from JSON schemas by llama-cpp-python's
converter. A call the model must make is wrapped in its family's own syntax, so a required
call reads to the model and to the parser exactly as one it chose to make.

Applying a grammar to every candidate of a 150 000-token vocabulary at every step costs
more than the rest of sampling. `GrammarGate` does what llama.cpp's own server does: it
samples as usual, asks the grammar about that one token, and only when the grammar refuses it
samples again with the grammar over the whole vocabulary.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..core.errors import AppError, ErrorCode
from .reply_format import BLOCKS, ToolSyntax

__all__ = ["GrammarGate", "json_grammar", "tool_call_grammar"]

_CALL_ORDER = {"name": 0, "arguments": 1, "parameters": 1}
_JSON_CHAR = r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'
"""A character of a JSON string. The converter's own rule lets raw control characters (a new
line) into strings, which is not JSON; a small model then writes on inside an unclosed string."""


MAX_INTEGER_CHOICES = 1024
"""An integer range up to this wide becomes the list of its values, which the converter does
write as a grammar (it leaves `minimum` and `maximum` out). Real tools' ranges (days 1–7, a
count up to 100, a percentage) are far smaller; a wider range keeps only its type."""
MAX_LISTED_INTEGERS = 4096
"""Values all of a grammar's ranges may list together; ranges past it keep only their type."""
MAX_GRAMMAR_CHARS = 1_000_000
"""A grammar larger than this is refused: llama.cpp would take seconds to build it and check it
at every step. Real tools' grammars are a few kilobytes."""


class _Grammar:
    """One grammar being made from JSON schemas with llama-cpp-python's converter."""

    def __init__(self) -> None:
        from llama_cpp.llama_grammar import SchemaConverter

        self.converter = SchemaConverter(prop_order=dict(_CALL_ORDER), allow_fetch=False, dotall=False,
                                         raw_pattern=False)
        self.integers_left = MAX_LISTED_INTEGERS

    def resolve(self, schema: dict[str, Any], url: str) -> dict[str, Any]:
        """A copy of `schema` with its integer ranges listed and its local references (`#/…`)
        resolved within it and named by `url`, so they still hold where the schema is put inside
        another (the converter rewrites references in place; the request's own schema is what the
        model is shown)."""
        try:
            return dict(self.converter.resolve_refs(self._integer_ranges(schema), url))
        except (AssertionError, KeyError, ValueError, TypeError, RecursionError) as exc:
            raise AppError(ErrorCode.BAD_REQUEST, f"the JSON schema cannot be used as a grammar: {exc}") from exc

    def visit(self, resolved: dict[str, Any], name: str) -> str:
        """The rule for a resolved schema (its name; "" makes it the root)."""
        try:
            return str(self.converter.visit(resolved, name))
        except (AssertionError, KeyError, ValueError, TypeError, RecursionError) as exc:
            raise AppError(ErrorCode.BAD_REQUEST, f"the JSON schema cannot be used as a grammar: {exc}") from exc

    def text(self, root: str | None = None) -> str:
        rules = self.converter._rules
        if root is not None:
            rules["root"] = root
        if "char" in rules:
            rules["char"] = _JSON_CHAR
        grammar = str(self.converter.format_grammar())
        if len(grammar) > MAX_GRAMMAR_CHARS:
            raise AppError(ErrorCode.BAD_REQUEST, "the JSON schema is too large to hold an answer to (its grammar "
                                                  f"would be {len(grammar) // 1000:,} kB; at most "
                                                  f"{MAX_GRAMMAR_CHARS // 1000:,} kB)")
        return grammar

    def _integer_ranges(self, node: Any) -> Any:
        """`node` with each bounded integer range written as the list of its values."""
        if isinstance(node, list):
            return [self._integer_ranges(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {key: self._integer_ranges(value) for key, value in node.items()}
        if out.get("type") == "integer" and "enum" not in out and "const" not in out:
            low = _bound(out, "minimum", "exclusiveMinimum", 1)
            high = _bound(out, "maximum", "exclusiveMaximum", -1)
            if low is not None and high is not None and 0 <= high - low < min(MAX_INTEGER_CHOICES,
                                                                              self.integers_left):
                out["enum"] = list(range(low, high + 1))
                self.integers_left -= len(out["enum"])
        return out


def _bound(node: dict[str, Any], inclusive: str, exclusive: str, step: int) -> int | None:
    value, strict = node.get(inclusive), node.get(exclusive)
    if isinstance(strict, int | float) and not isinstance(strict, bool):
        value, strict_step = strict, step
    else:
        strict_step = 0
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return None
    edge = math.ceil(value) if step > 0 else math.floor(value)
    return int(edge + strict_step if edge == value else edge)


def json_grammar(schema: dict[str, Any] | None) -> str:
    """Output that is one JSON value matching `schema` (any JSON object when None)."""
    grammar = _Grammar()
    grammar.visit(grammar.resolve(schema if schema is not None else {"type": "object"}, "schema"), "")
    return grammar.text()


def _literal(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def tool_call_grammar(tools: list[dict[str, Any]], syntax: ToolSyntax) -> str:
    """Output that is one call of one of `tools` (OpenAI tool specs), written in `syntax`."""
    grammar = _Grammar()
    alternatives: list[str] = []
    for i, tool in enumerate(tools):
        function = tool["function"]
        name = function["name"]
        parameters = grammar.resolve(function.get("parameters") or {"type": "object", "properties": {}}, f"tool{i}")
        if syntax in (ToolSyntax.MISTRAL_ARGS, ToolSyntax.HARMONY):
            args = grammar.visit(parameters, f"args{i}")
            opener = (f"{name}[ARGS]" if syntax == ToolSyntax.MISTRAL_ARGS
                      else f"{name} <|constrain|>json<|message|>")
            alternatives.append(f"{_literal(opener)} {args}")
            continue
        key = "parameters" if syntax == ToolSyntax.LLAMA3 else "arguments"
        call = {"type": "object", "properties": {"name": {"const": name}, key: parameters},
                "required": ["name", key], "additionalProperties": False}
        alternatives.append(grammar.visit(call, f"call{i}"))
    body = " | ".join(alternatives)
    opener, closer = BLOCKS.get(syntax, BLOCKS[ToolSyntax.HERMES])
    return grammar.text({
        ToolSyntax.LLAMA3: f"({body})",
        ToolSyntax.MISTRAL: f'"[TOOL_CALLS][" ({body}) "]"',
        ToolSyntax.MISTRAL_ARGS: f'"[TOOL_CALLS]" ({body})',
        ToolSyntax.HARMONY: f'"<|channel|>commentary to=functions." ({body})',
        ToolSyntax.LFM2: f'{_literal(opener)} "[" ({body}) "]" {_literal(closer)}',
        ToolSyntax.PHI: f'{_literal(opener)} ({body}) {_literal(closer)}',
    }.get(syntax, f'{_literal(opener + chr(10))} ({body}) {_literal(chr(10) + closer)}'))


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


class GrammarGate:
    """A grammar sampler beside the usual chain: checks each sampled token, resamples when refused."""

    def __init__(self, lib: Any, vocab: Any, ctx: Any, grammar: str) -> None:
        self.lib, self.ctx = lib, ctx
        with _quiet_stderr():  # llama.cpp prints a grammar it refuses, and it may hold request text
            self.sampler = lib.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
        if not self.sampler:
            raise AppError(ErrorCode.BAD_REQUEST, "the grammar could not be parsed")
        self.n_vocab = lib.llama_vocab_n_tokens(vocab)
        self.one = lib.llama_token_data_array()
        self.one_data = (lib.llama_token_data * 1)()
        self.one.data = ctypes.cast(self.one_data, ctypes.POINTER(lib.llama_token_data))
        self.all = np.zeros(self.n_vocab, dtype=np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")]))
        self.all["id"] = np.arange(self.n_vocab, dtype=np.int32)
        self.all_array = lib.llama_token_data_array()
        self.all_array.data = self.all.ctypes.data_as(ctypes.POINTER(lib.llama_token_data))
        self.resampled = 0

    def allows(self, token: int) -> bool:
        self.one_data[0].id, self.one_data[0].logit, self.one_data[0].p = token, 0.0, 0.0
        self.one.size, self.one.selected, self.one.sorted = 1, -1, False
        self.lib.llama_sampler_apply(self.sampler, ctypes.byref(self.one))
        return bool(np.isfinite(self.one_data[0].logit))

    def resample(self, chain: Any) -> int:
        """Sample again with the grammar over the whole vocabulary, then the chain."""
        self.resampled += 1
        logits = np.ctypeslib.as_array(self.lib.llama_get_logits_ith(self.ctx, -1), shape=(self.n_vocab,))
        self.all["logit"] = logits
        self.all["p"] = 0.0
        self.all_array.size, self.all_array.selected, self.all_array.sorted = self.n_vocab, -1, False
        self.lib.llama_sampler_apply(self.sampler, ctypes.byref(self.all_array))
        self.lib.llama_sampler_apply(chain, ctypes.byref(self.all_array))
        if self.all_array.selected < 0:
            raise AppError(ErrorCode.INTERNAL, "the grammar left no token to choose")
        token = int(self.all_array.data[self.all_array.selected].id)
        # the chain may have sorted the candidates in place: put the ids back for the next time
        self.all["id"] = np.arange(self.n_vocab, dtype=np.int32)
        return token

    def accept(self, token: int) -> None:
        self.lib.llama_sampler_accept(self.sampler, token)

    def close(self) -> None:
        if self.sampler:
            self.lib.llama_sampler_free(self.sampler)
            self.sampler = None
