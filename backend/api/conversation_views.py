"""Conversations, messages and search hits as the `/api` routes answer them (plain JSON, no HTML)."""

from __future__ import annotations

from typing import Any

from ..chat.replies import ActiveReply
from ..storage.attachments import Attachment
from ..storage.conversations import MARK_END, MARK_START, Branches, Conversation, Message, SearchHit

__all__ = ["conversation_json", "hit_json", "message_json", "summary_json", "unmarked"]


def summary_json(conversation: Conversation) -> dict[str, Any]:
    """What a list shows of a conversation."""
    return {"id": conversation.id, "title": conversation.title, "project_id": conversation.project_id,
            "pinned": conversation.pinned, "archived": conversation.archived,
            "created_at": conversation.created_at, "updated_at": conversation.updated_at}


def conversation_json(conversation: Conversation, messages: list[dict[str, Any]],
                      reply: ActiveReply | None) -> dict[str, Any]:
    return {**summary_json(conversation), "system_prompt": conversation.system_prompt,
            "settings": conversation.settings, "leaf_id": conversation.leaf_id,
            "answering": reply.message_id if reply is not None and not reply.finished.is_set() else None,
            "messages": messages}


def message_json(message: Message, attachments: list[Attachment] | None = None,
                 branch: Branches | None = None, reply: ActiveReply | None = None) -> dict[str, Any]:
    """A message; the answer being written now is taken from its live record, which is newer than
    what was last saved (at most half a second old)."""
    live = reply is not None and reply.message_id == message.id and not reply.finished.is_set()
    found: dict[str, Any] = {
        "id": message.id, "parent_id": message.parent_id, "role": message.role,
        "content": reply.text if live and reply else message.content,
        "reasoning": reply.reasoning if live and reply else message.reasoning,
        "tools": list(reply.tools) if live and reply else message.tools,
        "status": str(message.status), "error": message.error,
        "stats": dict(reply.stats) if live and reply else message.stats,
        "created_at": message.created_at, "updated_at": message.updated_at,
        "attachments": [{"id": a.id, "name": a.name, "kind": a.kind} for a in attachments or ()],
    }
    if branch is not None:
        found["branch"] = {"index": branch.index, "count": len(branch.ids), "ids": list(branch.ids)}
    return found


def unmarked(snippet: str) -> tuple[str, list[list[int]]]:
    """A snippet whose matched words are between MARK_START and MARK_END, as its plain text and
    the [start, end) character ranges of the matches: a client marks them up its own way, and no
    markup from a message can ever reach a page as HTML."""
    plain: list[str] = []
    ranges: list[list[int]] = []
    start: int | None = None
    for char in snippet:
        if char == MARK_START:
            start = len(plain)
        elif char == MARK_END:
            if start is not None and len(plain) > start:
                ranges.append([start, len(plain)])
            start = None
        else:
            plain.append(char)
    return "".join(plain), ranges


def hit_json(hit: SearchHit) -> dict[str, Any]:
    snippet, highlights = unmarked(hit.snippet)
    return {"conversation_id": hit.conversation_id, "title": hit.title, "message_id": hit.message_id,
            "role": hit.role, "snippet": snippet, "highlights": highlights, "created_at": hit.created_at,
            "archived": hit.archived}
