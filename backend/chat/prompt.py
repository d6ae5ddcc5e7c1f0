"""A conversation as the model reads it: its turns, with documents and photos in their places."""

from __future__ import annotations

import json
from typing import Any

from ..engines.llm import MEDIA_MARKER
from ..storage.attachments import Attachment
from ..storage.conversations import Conversation, Message, MessageStatus
from .params import GenerationSettings

__all__ = ["UNSEEN_PHOTO", "document_budget", "model_messages", "tool_call"]

CHARS_PER_TOKEN = 3
"""A cautious average for sizing documents before the model has read them (English prose is
nearer 4; tables and code fewer)."""
DOCUMENT_SHARE = 0.6
"""Of the context left after the question and the answer's room, what a message's documents may
fill: the rest keeps follow-up questions about them from pushing them out of the context."""
IMAGE_TOKENS = 300
"""Context one photo is taken to use when sizing documents beside it (projectors use 64 to 256)."""
UNSEEN_PHOTO = "[A photo is attached here, but the model in use cannot see photos.]"


def model_messages(conversation: Conversation, history: list[Message],
                   attachments: dict[str, list[Attachment]] | None = None, *,
                   sees: bool = False) -> tuple[list[dict[str, Any]], list[Attachment]]:
    """The conversation as the model reads it, and the photos for its image places in order.
    Documents come before the words of their message, as the model was given them when it
    was sent; photos too, where the model can see them, else a note that one is there."""
    messages = [{"role": "system", "content": conversation.system_prompt.strip()}] \
        if conversation.system_prompt.strip() else []
    photos: list[Attachment] = []
    for m in history:
        if m.role == "assistant" and (m.status == MessageStatus.ERROR or not m.content):
            continue
        if m.stats.get("kind") == "image":  # the model reads that a picture was shown, not its Markdown
            messages.append({"role": "assistant", "content": f"(Here the app showed a picture it made of: "
                                                             f"{m.stats.get('prompt', '')})"})
            continue
        if m.role == "assistant" and m.tools:
            messages.extend(_tool_turns(m.tools))
        parts: list[str] = []
        for a in (attachments or {}).get(m.id, []):
            if a.kind == "document":
                parts.append(_document_part(a))
            elif sees:
                parts.append(MEDIA_MARKER)
                photos.append(a)
            else:
                parts.append(UNSEEN_PHOTO)
        parts.append(m.content)
        message: dict[str, Any] = {"role": m.role, "content": "\n\n".join(p for p in parts if p)}
        if m.reasoning:  # the model's template decides whether it reads its earlier thinking
            message["reasoning_content"] = m.reasoning
        messages.append(message)
    return messages, photos


def tool_call(call: dict[str, Any]) -> dict[str, Any]:
    """A call (`id`, `name`, `arguments` as JSON text) as a message's `tool_calls` entry, with the
    arguments as an object, as chat templates read them (the parser has checked the JSON)."""
    try:
        arguments = json.loads(call["arguments"])
    except (json.JSONDecodeError, TypeError):
        arguments = {}
    return {"id": call["id"], "type": "function",
            "function": {"name": call["name"], "arguments": arguments if isinstance(arguments, dict) else {}}}


def _tool_turns(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The calls an answer made and their results, as the turns the model had when it made them."""
    turns: list[dict[str, Any]] = []
    for call in tools:
        if "result" not in call:
            continue  # stopped before it ran
        turns.append({"role": "assistant", "content": "", "tool_calls": [tool_call(call)]})
        turns.append({"role": "tool", "tool_call_id": call["id"], "name": call["name"], "content": call["result"]})
    return turns


def document_budget(settings: GenerationSettings, model_context: int | None, conversation: Conversation, text: str,
                    attached: list[Attachment]) -> int:
    """Characters each document of a new message may give the model (see DOCUMENT_SHARE)."""
    documents = sum(1 for a in attached if a.kind == "document")
    if not documents:
        return 0
    limit = min(settings.context_length, model_context) if model_context else settings.context_length
    reserve = min(settings.max_tokens, limit // 4)
    used = (len(text) + len(conversation.system_prompt)) // CHARS_PER_TOKEN + 64 + \
        IMAGE_TOKENS * sum(1 for a in attached if a.is_image)
    room = max(0, int((limit - reserve - used) * DOCUMENT_SHARE))
    return room * CHARS_PER_TOKEN // documents


def _document_part(attachment: Attachment) -> str:
    """A document as the model reads it: between lines naming it, saying when it is only a part."""
    name = attachment.name
    text = (attachment.sent_text if attachment.sent_text is not None else attachment.text)
    text = text.replace(MEDIA_MARKER, "").rstrip("\n")
    partial = f"\n(Only part of this file is included. {attachment.sent_notice})" if attachment.sent_notice else ""
    return f"--- {name} ---\n{text}\n--- end of {name} ---{partial}"
