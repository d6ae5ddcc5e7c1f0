"""Saved KV states per conversation, so switching chats does not re-read their history.

Like llama-server's prompt cache: the live sequence stays in the context; when a request
needs a different history, the live one is copied out (only its used cells) and the best
saved one is copied back in. Entries are kept in least-recently-used order under a byte
budget.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

__all__ = ["KvStateCache", "SavedState", "common_prefix"]


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass(kw_only=True, slots=True)
class SavedState:
    tokens: list[int]
    blob: Any
    """The engine's copy of the sequence (a ctypes buffer: kept as is to avoid another copy)."""
    nbytes: int


class KvStateCache:
    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self._entries: OrderedDict[str, SavedState] = OrderedDict()

    @property
    def size(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: str, state: SavedState) -> None:
        """Store a state; older states it extends (same chat, fewer turns) are dropped."""
        self._entries.pop(key, None)
        for old_key, old in list(self._entries.items()):
            if common_prefix(old.tokens, state.tokens) == len(old.tokens):
                del self._entries[old_key]
        if state.nbytes > self.budget:
            return
        self._entries[key] = state
        while self.size > self.budget:
            self._entries.popitem(last=False)

    def best_match(self, tokens: list[int]) -> tuple[str, SavedState, int] | None:
        """The saved state sharing the longest prefix with `tokens` (marked as recently used)."""
        best: tuple[str, SavedState, int] | None = None
        for key, entry in self._entries.items():
            shared = common_prefix(entry.tokens, tokens)
            if shared and (best is None or shared > best[2]):
                best = (key, entry, shared)
        if best is not None:
            self._entries.move_to_end(best[0])
        return best

    def drop(self, key: str) -> None:
        self._entries.pop(key, None)
