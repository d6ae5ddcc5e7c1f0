"""Conversations as the chat page sees them: stored turns, and answers that outlive the tab.

An answer runs as a server task, not as part of a page: closing the tab does not stop
it, and the page that comes back finds it in `active`. The text is saved while it
streams, so a killed server leaves it behind as `interrupted`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ..engines.llm import ChatRequest, PromptReady, TokenDelta
from ..runtime.child import EngineError
from ..runtime.protocol import ErrorCode, JobDone, JobFailed
from ..storage.conversations import Conversation, ConversationStore, Message
from .params import GenerationSettings
from .service import ChatJob, ChatService

__all__ = ["MAX_MESSAGE_CHARS", "ActiveReply", "ConversationError", "ConversationService"]

log = logging.getLogger(__name__)
SAVE_INTERVAL_S = 0.5
TITLE_CHARS = 48
MAX_MESSAGE_CHARS = 100_000


class ConversationError(Exception):
    """Something the person asked for cannot be done (unknown id, already answering...)."""


@dataclass(kw_only=True, slots=True)
class ActiveReply:
    message_id: str
    conversation_id: str
    job: ChatJob
    text: str = ""
    status: str = "streaming"
    error: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    position: int = 0
    version: int = 0
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def touch(self) -> None:
        self.version += 1


class ConversationService:
    def __init__(self, store: ConversationStore, chat: ChatService, context_cap: int) -> None:
        self.store = store
        self.chat = chat
        self.context_cap = context_cap
        self.active: dict[str, ActiveReply] = {}  # by conversation id
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    async def recover(self) -> int:
        return await self.store.mark_interrupted()

    def settings_of(self, conversation: Conversation | None) -> GenerationSettings:
        """A conversation's settings, or the defaults for one not created yet."""
        stored = conversation.settings if conversation is not None else {}
        return GenerationSettings.from_stored(stored, context_cap=self.context_cap)

    async def _require(self, conversation_id: str) -> Conversation:
        conversation = await self.store.get(conversation_id)
        if conversation is None:
            raise ConversationError("this conversation does not exist (it may have been deleted)")
        return conversation

    def _require_idle(self, conversation_id: str) -> None:
        if conversation_id in self.active:
            raise ConversationError("an answer is still being written; stop it first")

    @staticmethod
    def _checked(text: str) -> str:
        text = text.strip()
        if not text:
            raise ConversationError("the message is empty")
        if len(text) > MAX_MESSAGE_CHARS:
            raise ConversationError(f"the message is too long ({len(text):,} characters; "
                                    f"at most {MAX_MESSAGE_CHARS:,})")
        return text

    async def send(self, conversation_id: str, text: str) -> ActiveReply:
        text = self._checked(text)
        conversation = await self._require(conversation_id)
        self._require_idle(conversation_id)
        history = await self.store.messages(conversation_id)
        await self.store.add_message(conversation_id, "user", text)
        if not any(m.role == "user" for m in history) and conversation.title == "New chat":
            title = " ".join(text.split())
            await self.store.update(conversation_id,
                                    title=title if len(title) <= TITLE_CHARS else title[:TITLE_CHARS - 1] + "…")
        return await self._start_reply(conversation)

    async def regenerate(self, conversation_id: str) -> ActiveReply:
        conversation = await self._require(conversation_id)
        self._require_idle(conversation_id)
        history = await self.store.messages(conversation_id)
        last_user = next((m for m in reversed(history) if m.role == "user"), None)
        if last_user is None:
            raise ConversationError("there is no message to answer yet")
        await self.store.truncate_after(conversation_id, last_user.seq)
        return await self._start_reply(conversation)

    async def edit_and_resend(self, message_id: str, text: str) -> ActiveReply:
        message = await self.store.get_message(message_id)
        if message is None or message.role != "user":
            raise ConversationError("only your own messages can be edited")
        text = self._checked(text)
        conversation = await self._require(message.conversation_id)
        self._require_idle(conversation.id)
        await self.store.truncate_after(conversation.id, message.seq)
        await self.store.set_content(message_id, text)
        return await self._start_reply(conversation)

    def stop(self, conversation_id: str) -> bool:
        reply = self.active.get(conversation_id)
        if reply is None:
            return False
        self.chat.cancel(reply.job)
        return True

    async def delete(self, conversation_id: str) -> bool:
        reply = self.active.get(conversation_id)
        if reply is not None:
            self.chat.cancel(reply.job)
            await reply.finished.wait()
        return await self.store.delete(conversation_id)

    def model_messages(self, conversation: Conversation, history: list[Message]) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": conversation.system_prompt.strip()}] \
            if conversation.system_prompt.strip() else []
        for m in history:
            if m.role == "assistant" and (m.status == "error" or not m.content):
                continue
            messages.append({"role": m.role, "content": m.content})
        return messages

    async def _start_reply(self, conversation: Conversation) -> ActiveReply:
        history = await self.store.messages(conversation.id)
        settings = self.settings_of(conversation)
        request = ChatRequest(messages=self.model_messages(conversation, history),
                              max_tokens=settings.max_tokens, temperature=settings.temperature,
                              top_p=settings.top_p, context_limit=settings.context_length,
                              trim_history=True, cache_key=conversation.id)
        message = await self.store.add_message(conversation.id, "assistant", "", status="streaming")
        reply = ActiveReply(message_id=message.id, conversation_id=conversation.id, job=ChatJob())
        self.active[conversation.id] = reply
        task = asyncio.create_task(self._run(reply, request), name=f"reply-{message.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return reply

    async def _run(self, reply: ActiveReply, request: ChatRequest) -> None:
        last_save = time.monotonic()

        def on_position(place: int) -> None:
            reply.position = place
            reply.touch()

        try:
            async for event in self.chat.stream(reply.job, request, on_position=on_position):
                if isinstance(event, TokenDelta):
                    reply.text += event.text
                elif isinstance(event, PromptReady):
                    reply.stats.update(prompt_tokens=event.prompt_tokens, cached_tokens=event.cached_tokens,
                                       trimmed_messages=event.trimmed_messages)
                elif isinstance(event, JobDone):
                    reply.stats.update(event.result)
                    reply.status = "done"
                elif isinstance(event, JobFailed):
                    self._fail(reply, event.code, event.message)
                reply.touch()
                if time.monotonic() - last_save >= SAVE_INTERVAL_S and reply.status == "streaming":
                    await self.store.save_progress(reply.message_id, content=reply.text, status="streaming",
                                                   stats=reply.stats)
                    last_save = time.monotonic()
        except EngineError as exc:
            self._fail(reply, exc.code, exc.message)
        except Exception as exc:
            log.exception("answer %s failed", reply.message_id)
            self._fail(reply, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        finally:
            if reply.status == "streaming":  # the server is shutting down under us
                reply.status = "interrupted"
            try:
                await asyncio.shield(self.store.save_progress(
                    reply.message_id, content=reply.text, status=reply.status,  # type: ignore[arg-type]
                    stats=reply.stats, error=reply.error))
            finally:
                self.active.pop(reply.conversation_id, None)
                reply.touch()
                reply.finished.set()

    def _fail(self, reply: ActiveReply, code: str, message: str) -> None:
        if code == ErrorCode.CANCELLED:
            reply.status = "interrupted" if self._closing else "done"
            reply.stats["finish_reason"] = "cancelled"
            return
        reply.status = "error"
        reply.error = message
        reply.stats["error_code"] = code

    async def shutdown(self) -> None:
        """Server stopping: end running answers now; they are kept as interrupted."""
        self._closing = True
        for reply in list(self.active.values()):
            self.chat.cancel(reply.job)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
