"""A model's chat template, rendered as the model's makers render it, in a sandbox.

The template is Jinja code from the model file: it runs in Jinja's immutable sandbox (no
attribute access to Python internals, no changes to what it is given), with the helpers chat
templates expect (`raise_exception`, `strftime_now`, a `tojson` that keeps non-ASCII text and
HTML characters as they are, the `{% generation %}` tag ignored). Only the variables a request
sets are defined: templates test `tools is defined`, and one given `tools=None` fails on it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["ChatTemplate"]


def _raise(message: str) -> None:
    raise ValueError(message)


def _strftime_now(pattern: str) -> str:
    return datetime.now().strftime(pattern)


class ChatTemplate:
    def __init__(self, source: str, *, bos_token: str, eos_token: str) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        environment = ImmutableSandboxedEnvironment(
            loader=jinja2.BaseLoader(), trim_blocks=True, lstrip_blocks=True,
            extensions=[Jinja2ChatFormatter.IgnoreGenerationTags, jinja2.ext.loopcontrols])
        environment.filters["tojson"] = Jinja2ChatFormatter.tojson
        environment.globals.update(raise_exception=_raise, strftime_now=_strftime_now)
        self.template = environment.from_string(source)
        self.bos_token, self.eos_token = bos_token, eos_token

    def render(self, messages: list[dict[str, Any]], *, add_generation_prompt: bool = True, **variables: Any) -> str:
        return self.template.render(messages=messages, bos_token=self.bos_token, eos_token=self.eos_token,
                                    add_generation_prompt=add_generation_prompt, **variables)
