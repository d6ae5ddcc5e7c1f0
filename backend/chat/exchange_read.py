"""Reading a conversation export safely: bytes to checked drafts, nothing written.

An import is a file someone chose, possibly made by hand or by a program gone wrong, so
everything is checked before anything is stored: the size before parsing, the nesting depth
before Python's recursive JSON decoder sees it (a file of ten thousand `[` would otherwise
end in RecursionError), every value's type where it is read, the message tree (parents that
exist, no cycles, no duplicate ids), counts, times and roles. What comes out is a list of
`Draft`s that the service can store as they are; every refusal is an `AppError` that says
where in the file the problem is.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from ..core.errors import AppError, ErrorCode
from ..storage.conversations import MessageStatus, Role

__all__ = ["MAX_CONVERSATIONS", "MAX_DEPTH", "MAX_FILES", "MAX_IMPORT_BYTES", "MAX_MESSAGES", "Draft", "DraftFile",
           "DraftTurn", "Reader", "load_json", "ordered", "refuse"]

MAX_IMPORT_BYTES = 50 * 1024 * 1024
MAX_DEPTH = 64
"""Deeper than any real export (ChatGPT's metadata reaches about 12), far below Python's recursion limit."""
MAX_CONVERSATIONS = 5000
MAX_MESSAGES = 5000
"""Per conversation: months of daily chats in one thread stay well below it."""
MAX_FILES = 1000
"""Attachments in one file: each becomes a stored file, checked as an upload is."""
MAX_TIME = 253402300799.0
"""The last second of the year 9999: any later time is a mistake (milliseconds taken for seconds, say)."""
ROLES: tuple[Role, ...] = ("user", "assistant", "system")

_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[][{}]')
"""A string (or what is left of the file after an unterminated one: matching it whole keeps the scan
linear, where retrying at each later quote would take quadratic time), or a bracket."""


def refuse(message: str) -> NoReturn:
    raise AppError(ErrorCode.BAD_REQUEST, message)


def load_json(data: bytes) -> Any:
    """The file's JSON value, or an AppError saying why it cannot be read (too large, not UTF-8,
    not JSON, nested too deeply, a key twice in one object)."""
    if len(data) > MAX_IMPORT_BYTES:
        raise AppError(ErrorCode.FILE_TOO_LARGE, f"The file is {len(data) / 1024 / 1024:.1f} MB; an import can be "
                                                 f"at most {MAX_IMPORT_BYTES // 1024 // 1024} MB.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        refuse(f"The file is not UTF-8 text (invalid byte at position {e.start}), so it is not a conversation "
               "export gridless can read.")
    _check_depth(text)
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        refuse(f"This is not a conversation export gridless can read (it is not JSON: {e.msg} at line {e.lineno}, "
               f"column {e.colno}).")
    except RecursionError:  # the depth check should make this impossible; never let it become a 500
        refuse(f"The file's JSON is nested more than {MAX_DEPTH} levels deep.")
    except ValueError as e:  # NaN or Infinity, a key twice, a number with thousands of digits
        refuse(f"The file's JSON cannot be read: {e}.")


def _check_depth(text: str) -> None:
    """Brackets are counted outside strings; a string is skipped as one token."""
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                refuse(f"The file's JSON is nested more than {MAX_DEPTH} levels deep; no conversation export is.")
        elif token in "]}":
            depth -= 1


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):  # json would keep the last silently: a second message under one id, say
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"the key {key[:80]!r} appears twice in one object")
            seen.add(key)
    return found


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number JSON allows")


# --- what comes out ---------------------------------------------------------------------------

@dataclass(kw_only=True, slots=True)
class DraftFile:
    name: str
    kind: str
    data: bytes | None
    """The file itself (inlined in the export), or None when it was referenced by name only."""
    text: str = ""


@dataclass(kw_only=True, slots=True)
class DraftTurn:
    key: str
    """The message's id in the file (new ids are made when it is stored)."""
    parent: str | None
    role: Role
    content: str
    created_at: float | None
    reasoning: str = ""
    tools: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    status: MessageStatus = MessageStatus.DONE
    error: str | None = None
    files: list[DraftFile] = field(default_factory=list)


@dataclass(kw_only=True, slots=True)
class Draft:
    title: str
    turns: list[DraftTurn]
    """Parents before children (see `ordered`)."""
    leaf: str | None
    """The key of the last message of the branch shown; None: the newest branch."""
    system_prompt: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    created_at: float | None = None
    updated_at: float | None = None


# --- reading values with the place they came from ---------------------------------------------

class Reader:
    """Typed access to one JSON object, with errors that say where it is in the file."""

    def __init__(self, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            refuse(f"{where} should be a JSON object, not {_kind(value)}.")
        self.value: dict[str, Any] = value
        self.where = where

    def get(self, key: str) -> Any:
        return self.value.get(key)

    def obj(self, key: str) -> Reader:
        return Reader(self.value.get(key), f"{self.where}: {key!r}")

    def items(self, key: str, limit: int, what: str) -> list[Any]:
        value = self.value.get(key)
        if not isinstance(value, list):
            refuse(f"{self.where}: {key!r} should be a list, not {_kind(value)}.")
        if len(value) > limit:
            refuse(f"{self.where} has {len(value):,} {what}; at most {limit:,} can be imported from one file.")
        return value

    def text(self, key: str, default: str | None = None) -> str:
        value = self.value.get(key)
        if value is None and default is not None:
            return default
        return checked_text(value, f"{self.where}: {key!r}")

    def optional_text(self, key: str) -> str | None:
        return None if self.value.get(key) is None else self.text(key)

    def time(self, key: str) -> float | None:
        return checked_time(self.value.get(key), f"{self.where}: {key!r}")

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.value.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            refuse(f"{self.where}: {key!r} should be a JSON object, not {_kind(value)}.")
        return value


def checked_text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        refuse(f"{where} should be text, not {_kind(value)}.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate written as "\\ud800": not a character, cannot be stored
        refuse(f"{where} holds text that is not valid Unicode.")
    return value


def checked_time(value: Any, where: str) -> float | None:
    """Seconds since 1970, or None when there is none."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        refuse(f"{where} should be a time in seconds, not {_kind(value)}.")
    if not math.isfinite(value) or not 0 <= value <= MAX_TIME:
        refuse(f"{where}: the time {value!r} is out of range (seconds since 1970, before the year 10000).")
    return float(value)


def checked_role(value: Any, where: str, *, also: Callable[[str], bool] = lambda _: False) -> Role | None:
    """One of gridless's roles; None for a role `also` accepts (to be skipped)."""
    if value in ROLES:
        return value  # type: ignore[no-any-return]
    if isinstance(value, str) and also(value):
        return None
    refuse(f"{where}: the role {str(value)[:40]!r} is not one gridless knows (user, assistant or system).")


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "text", bool: "true or false", type(None): "null",
             int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


# --- the tree -----------------------------------------------------------------------------------

def ordered(nodes: list[tuple[str, str | None]], where: str) -> list[tuple[str, int]]:
    """Message keys with their depth (1 for a first message), parents before children; refuses
    duplicate keys, parents that are not there and cycles of parent links."""
    children: dict[str | None, list[str]] = {}
    known: set[str] = set()
    for key, parent in nodes:
        if key in known:
            refuse(f"{where}: the message id {key[:80]!r} appears twice.")
        known.add(key)
        children.setdefault(parent, []).append(key)
    for key, parent in nodes:
        if parent is not None and parent not in known:
            refuse(f"{where}: message {key[:80]!r} follows {parent[:80]!r}, which is not in the file.")
    out: list[tuple[str, int]] = []
    level, depth = children.get(None, []), 1
    while level:
        out.extend((key, depth) for key in level)
        level, depth = [c for key in level for c in children.get(key, [])], depth + 1
    if len(out) != len(known):  # every parent exists, so what no first message leads to is a loop
        loop = sorted(known - {key for key, _ in out})[0]
        refuse(f"{where}: message {loop[:80]!r} is its own ancestor (its parent links go round in a circle).")
    return out
