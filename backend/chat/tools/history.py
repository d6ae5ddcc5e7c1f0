"""The search_conversations tool: the model looks through the person's earlier conversations.

It reads what the drawer's search finds (every conversation and branch on this device, newest
first), as short passages with their conversation's title and date; nothing leaves the device.
"""

from __future__ import annotations

import time
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ...storage.conversations import MARK_END, MARK_START, ConversationStore
from .registry import Tool, ToolError

__all__ = ["SearchConversationsTool"]

PASSAGE_WORDS = 40
ROLES = {"user": "the person wrote", "assistant": "the answer was", "system": "the instructions were",
         "title": "titled"}


class SearchConversationsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=200,
                       description="Words to look for, e.g. 'carbonara recipe' or 'flight Rome'")
    limit: int = Field(default=5, ge=1, le=10, description="How many passages to return")


class SearchConversationsTool(Tool):
    name: ClassVar[str] = "search_conversations"
    title: ClassVar[str] = "Search conversations"
    description: ClassVar[str] = (
        "Search the person's earlier conversations in this app for words, and get the passages that hold them, "
        "newest first, with each conversation's title and date. Use it when the person refers to something "
        "discussed before.")
    Args: ClassVar[type[BaseModel]] = SearchConversationsArgs

    def __init__(self, store: ConversationStore, *, leave_out: str | None = None) -> None:
        self.store = store
        self.leave_out = leave_out
        """The conversation being answered: its own words are not "earlier conversations"."""

    async def run(self, args: BaseModel) -> str:
        assert isinstance(args, SearchConversationsArgs)
        if not any(c.isalnum() for c in args.query):
            raise ToolError("the query has no words to look for")
        hits = await self.store.search(args.query, limit=args.limit, snippet_words=PASSAGE_WORDS,
                                       leave_out=self.leave_out)
        if not hits:
            return f"No conversation mentions {args.query!r}."
        lines = []
        for hit in hits[:args.limit]:
            day = time.strftime("%Y-%m-%d", time.localtime(hit.created_at))
            passage = hit.snippet.replace(MARK_START, "").replace(MARK_END, "")
            lines.append(f"- In “{hit.title}” ({day}), {ROLES.get(hit.role, hit.role)}: {passage}")
        return "\n".join(lines)
