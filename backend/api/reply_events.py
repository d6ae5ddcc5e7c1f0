"""An answer followed as server-sent events, for programs that chat through `/api/conversations`.

The answer is a server task (`chat/replies.py`), the same one the chat page follows: the stream
only reads its record, comparing `version` as the page does on its timer. So a client that goes
away stops nothing (the answer is written and saved all the same), and one that comes back
follows it again from the start of the text. Events:

- `message`: the conversation, the user message answered, and the answer's id;
- `delta`: `{text, reasoning}` written since the last one (`reset: true` when the text so far is
  replaced instead, as a picture's progress line is);
- `tool`: a call when the model makes it, then again with its `result` and `ok`;
- `error`: `{code, message}` when the answer failed;
- `done`: `{message_id, status, stats}`, always last. Its text is the stored message's: the
  deltas joined are what was saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ..chat.replies import ActiveReply
from ..core.errors import ErrorCode
from ..storage.conversations import ConversationStore, Message, MessageStatus
from .conversation_views import message_json
from .streaming import ClosingStreamingResponse

__all__ = ["KEEPALIVE_S", "POLL_S", "event_stream", "follow", "sse"]

POLL_S = 0.05
"""How often a stream looks at the answer's record (the page looks every 0.1 s)."""
KEEPALIVE_S = 15.0
"""A comment line this often while nothing is written (a model loading, a place in line), so
that proxies keep the connection and a client that left is noticed."""


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


@dataclass(slots=True)
class _Sent:
    """What a client has been sent of an answer, to send it only what is new."""

    text: str = ""
    reasoning: str = ""
    calls: set[int] = field(default_factory=set)
    results: set[int] = field(default_factory=set)

    def news(self, text: str, reasoning: str, tools: list[dict[str, Any]]) -> list[bytes]:
        out: list[bytes] = []
        delta: dict[str, Any] = {"text": "", "reasoning": ""}
        if text != self.text:
            if text.startswith(self.text):
                delta["text"] = text[len(self.text):]
            else:
                delta.update(text=text, reset=True)
            self.text = text
        if reasoning != self.reasoning:
            delta["reasoning"] = reasoning[len(self.reasoning):] if reasoning.startswith(self.reasoning) else reasoning
            self.reasoning = reasoning
        if delta["text"] or delta["reasoning"] or delta.get("reset"):
            out.append(sse("delta", delta))
        for index, call in enumerate(list(tools)):
            shown = {"index": index, "id": call.get("id"), "name": call.get("name"),
                     "arguments": call.get("arguments")}
            if index not in self.calls:
                self.calls.add(index)
                out.append(sse("tool", shown))
            if "result" in call and index not in self.results:
                self.results.add(index)
                out.append(sse("tool", {**shown, "result": call["result"], "ok": call.get("ok", True)}))
        return out


async def follow(store: ConversationStore, answer: Message, reply: ActiveReply | None) -> AsyncIterator[bytes]:
    """The events of `answer`: while `reply` (its live record) is being written, as it goes;
    then, or at once for an answer already finished, as it was saved."""
    user = await store.get_message(answer.parent_id) if answer.parent_id else None
    yield sse("message", {"conversation_id": answer.conversation_id, "answer_id": answer.id,
                          "user_message": message_json(user) if user is not None else None})
    sent = _Sent()
    if reply is not None:
        seen, last_out = -1, time.monotonic()
        while True:
            finished = reply.finished.is_set()
            if reply.version != seen:
                seen = reply.version
                for event in sent.news(reply.text, reply.reasoning, reply.tools):
                    yield event
                    last_out = time.monotonic()
            if finished:
                break
            if time.monotonic() - last_out >= KEEPALIVE_S:
                yield b": keep-alive\n\n"
                last_out = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reply.finished.wait(), POLL_S)
    stored = await store.get_message(answer.id)
    if stored is None:
        yield sse("error", {"code": ErrorCode.NOT_FOUND, "message": "the conversation was deleted"})
        yield sse("done", {"message_id": answer.id, "status": str(reply.status if reply else answer.status),
                           "stats": {}})
        return
    for event in sent.news(stored.content, stored.reasoning, stored.tools):
        yield event
    if stored.status == MessageStatus.ERROR:
        yield sse("error", {"code": stored.stats.get("error_code") or ErrorCode.INTERNAL,
                            "message": stored.error or "the answer failed"})
    yield sse("done", {"message_id": stored.id, "status": str(stored.status), "stats": stored.stats})


def event_stream(events: AsyncIterator[bytes]) -> ClosingStreamingResponse:
    return ClosingStreamingResponse(events, media_type="text/event-stream",
                                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
