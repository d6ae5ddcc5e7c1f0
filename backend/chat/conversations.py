"""Conversations as the chat page sees them: stored turns, and answers that outlive the tab.

An answer runs as a server task, not as part of a page: closing the tab does not stop
it, and the page that comes back finds it in `active`. The text is saved while it
streams, so a killed server leaves it behind as `interrupted`.
"""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass, field
from typing import Any

from ..attachments.service import AttachmentService
from ..engines.llm import MEDIA_MARKER, ChatRequest, PromptReady, TokenDelta
from ..images.service import Generation, ImageParams, ImageService, defaults_for, image_request, prompt_from
from ..models.registry import ModelRecord
from ..runtime.child import EngineError, failures_to
from ..runtime.protocol import ErrorCode, JobDone, JobFailed
from ..storage.attachments import Attachment
from ..storage.conversations import Conversation, ConversationStore, Message
from .params import GenerationSettings
from .service import ChatJob, ChatService

__all__ = ["MAX_ATTACHMENTS", "MAX_MESSAGE_CHARS", "ActiveReply", "CannotSee", "ConversationError",
           "ConversationService"]

SAVE_INTERVAL_S = 0.5
TITLE_CHARS = 48
MAX_MESSAGE_CHARS = 100_000
MAX_ATTACHMENTS = 10
CHARS_PER_TOKEN = 3
"""A cautious average for sizing documents before the model has read them (English prose is
nearer 4; tables and code fewer)."""
DOCUMENT_SHARE = 0.6
"""Of the context left after the question and the answer's room, what a message's documents may
fill: the rest keeps follow-up questions about them from pushing them out of the context."""
IMAGE_TOKENS = 300
"""Context one photo is taken to use when sizing documents beside it (projectors use 64 to 256)."""
UNSEEN_PHOTO = "[A photo is attached here, but the model in use cannot see photos.]"


class ConversationError(Exception):
    """Something the person asked for cannot be done (unknown id, already answering...)."""


class CannotSee(ConversationError):
    """A photo was sent to a model without a vision projector; `vision` lists the models that can see."""

    def __init__(self, model: ModelRecord | None, vision: list[ModelRecord]) -> None:
        name = model.name if model is not None else "The model in use"
        super().__init__(f"{name} cannot see photos; choose a vision model for this conversation"
                         if vision else f"{name} cannot see photos, and no vision model is installed")
        self.model, self.vision = model, vision


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
    generation_id: str | None = None
    """A picture being made instead of words (see ConversationService.make_image)."""

    def touch(self) -> None:
        self.version += 1


class ConversationService:
    def __init__(self, store: ConversationStore, chat: ChatService, context_cap: int,
                 attachments: AttachmentService, images: ImageService | None = None) -> None:
        self.store = store
        self.chat = chat
        self.attachments = attachments
        self.images = images
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
    def _checked(text: str, *, attached: bool = False) -> str:
        text = text.replace(MEDIA_MARKER, "").strip()
        if not text and not attached:
            raise ConversationError("the message is empty")
        if len(text) > MAX_MESSAGE_CHARS:
            raise ConversationError(f"the message is too long ({len(text):,} characters; "
                                    f"at most {MAX_MESSAGE_CHARS:,})")
        return text

    def model_for(self, conversation: Conversation | None) -> ModelRecord | None:
        """The model that answers in a conversation: the one chosen for it (a vision model for
        photos, say) while it is installed, else the app's chat model."""
        chosen = conversation.settings.get("model") if conversation is not None else None
        record = self.chat.manager.get(chosen) if isinstance(chosen, str) else None
        if record is not None and record.job in ("chat", "vision"):
            return record
        return self.chat.manager.active("chat")

    def vision_models(self) -> list[ModelRecord]:
        return [m for m in self.chat.chat_models() if m.projector is not None]

    def check_sees(self, conversation: Conversation | None) -> None:
        """Raise CannotSee when the conversation's model cannot look at a photo."""
        model = self.model_for(conversation)
        if model is None or model.projector is None:
            raise CannotSee(model, self.vision_models())

    async def send(self, conversation_id: str, text: str, attachment_ids: list[str] | tuple[str, ...] = (),
                   *, uploader: str = "owner") -> ActiveReply:
        if len(attachment_ids) > MAX_ATTACHMENTS:
            raise ConversationError(f"at most {MAX_ATTACHMENTS} files can go with one message")
        text = self._checked(text, attached=bool(attachment_ids))
        conversation = await self._require(conversation_id)
        self._require_idle(conversation_id)
        attached = await self.attachments.store.pending(attachment_ids, uploader)
        if len(attached) != len(set(attachment_ids)):
            raise ConversationError("an attached file is no longer there; attach it again")
        if any(a.is_image for a in attached):
            self.check_sees(conversation)
        budget = self._document_budget(conversation, text, attached)
        attached = [self.attachments.fitted(a, budget) for a in attached]
        history = await self.store.messages(conversation_id)
        message = await self.store.add_message(conversation_id, "user", text)
        try:
            await self.attachments.store.link(message.id, attached)
        except LookupError as exc:
            await self.store.truncate_after(conversation_id, message.seq - 1)
            raise ConversationError("an attached file is no longer there; attach it again") from exc
        if not any(m.role == "user" for m in history) and conversation.title == "New chat":
            title = " ".join(text.split()) or ", ".join(a.name for a in attached)
            await self.store.update(conversation_id,
                                    title=title if len(title) <= TITLE_CHARS else title[:TITLE_CHARS - 1] + "…")
        return await self._start_reply(conversation)

    def _document_budget(self, conversation: Conversation, text: str, attached: list[Attachment]) -> int:
        """Characters each document of a new message may give the model (see DOCUMENT_SHARE)."""
        documents = sum(1 for a in attached if a.kind == "document")
        if not documents:
            return 0
        settings = self.settings_of(conversation)
        model = self.model_for(conversation)
        limit = min(settings.context_length, self.chat.manager.context_for(model)) if model else \
            settings.context_length
        reserve = min(settings.max_tokens, limit // 4)
        used = (len(text) + len(conversation.system_prompt)) // CHARS_PER_TOKEN + 64 + \
            IMAGE_TOKENS * sum(1 for a in attached if a.is_image)
        room = max(0, int((limit - reserve - used) * DOCUMENT_SHARE))
        return room * CHARS_PER_TOKEN // documents

    async def regenerate(self, conversation_id: str) -> ActiveReply:
        conversation = await self._require(conversation_id)
        self._require_idle(conversation_id)
        history = await self.store.messages(conversation_id)
        last_user = next((m for m in reversed(history) if m.role == "user"), None)
        if last_user is None:
            raise ConversationError("there is no message to answer yet")
        await self._truncate(conversation_id, last_user.seq)
        return await self._start_reply(conversation)

    async def edit_and_resend(self, message_id: str, text: str) -> ActiveReply:
        message = await self.store.get_message(message_id)
        if message is None or message.role != "user":
            raise ConversationError("only your own messages can be edited")
        attached = (await self.attachments.store.for_conversation(message.conversation_id)).get(message.id, [])
        text = self._checked(text, attached=bool(attached))
        conversation = await self._require(message.conversation_id)
        self._require_idle(conversation.id)
        await self._truncate(conversation.id, message.seq)
        await self.store.set_content(message_id, text)
        return await self._start_reply(conversation)

    def stop(self, conversation_id: str) -> bool:
        reply = self.active.get(conversation_id)
        if reply is None:
            return False
        self._cancel(reply)
        return True

    def _cancel(self, reply: ActiveReply) -> None:
        reply.job.cancelled = True
        if reply.generation_id is not None and self.images is not None:
            self.images.cancel(reply.generation_id)
        else:
            self.chat.cancel(reply.job)

    async def delete(self, conversation_id: str) -> bool:
        reply = self.active.get(conversation_id)
        if reply is not None:
            self._cancel(reply)
            await reply.finished.wait()
        files = await self.attachments.store.files_after(conversation_id)
        deleted = await self.store.delete(conversation_id)
        self.attachments.delete_files(files)
        return deleted

    async def _truncate(self, conversation_id: str, seq: int) -> None:
        """Delete the messages after position `seq`, and the files attached to them."""
        files = await self.attachments.store.files_after(conversation_id, seq)
        await self.store.truncate_after(conversation_id, seq)
        self.attachments.delete_files(files)

    def model_messages(self, conversation: Conversation, history: list[Message],
                       attachments: dict[str, list[Attachment]] | None = None, *,
                       sees: bool = False) -> tuple[list[dict[str, str]], list[Attachment]]:
        """The conversation as the model reads it, and the photos for its image places in order.
        Documents come before the words of their message, as the model was given them when it
        was sent; photos too, where the model can see them, else a note that one is there."""
        messages = [{"role": "system", "content": conversation.system_prompt.strip()}] \
            if conversation.system_prompt.strip() else []
        photos: list[Attachment] = []
        for m in history:
            if m.role == "assistant" and (m.status == "error" or not m.content):
                continue
            if m.stats.get("kind") == "image":  # the model reads that a picture was shown, not its Markdown
                messages.append({"role": "assistant", "content": f"(Here the app showed a picture it made of: "
                                                                 f"{m.stats.get('prompt', '')})"})
                continue
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
            messages.append({"role": m.role, "content": "\n\n".join(p for p in parts if p)})
        return messages, photos

    async def _start_reply(self, conversation: Conversation) -> ActiveReply:
        history = await self.store.messages(conversation.id)
        last_user = next((m for m in reversed(history) if m.role == "user"), None)
        wanted = image_request(last_user.content) if last_user is not None else None
        if wanted is not None:
            return await self._start_image(conversation, wanted)
        settings = self.settings_of(conversation)
        model = self.model_for(conversation)
        attachments = await self.attachments.store.for_conversation(conversation.id)
        messages, photos = self.model_messages(conversation, history, attachments,
                                               sees=model is not None and model.projector is not None)
        request = ChatRequest(messages=messages, images=await self.attachments.image_bytes(photos),
                              max_tokens=settings.max_tokens, temperature=settings.temperature,
                              top_p=settings.top_p, context_limit=settings.context_length,
                              trim_history=True, cache_key=conversation.id)
        message = await self.store.add_message(conversation.id, "assistant", "", status="streaming")
        reply = ActiveReply(message_id=message.id, conversation_id=conversation.id, job=ChatJob())
        self.active[conversation.id] = reply
        task = asyncio.create_task(self._run(reply, request, model.id if model else None), name=f"reply-{message.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return reply

    async def make_image(self, conversation_id: str, text: str) -> ActiveReply:
        """A picture of what a message says, shown in the conversation as the next answer."""
        conversation = await self._require(conversation_id)
        self._require_idle(conversation_id)
        prompt = prompt_from(text)
        if not prompt:
            raise ConversationError("there are no words in that message to make a picture of")
        return await self._start_image(conversation, prompt)

    async def _start_image(self, conversation: Conversation, prompt: str) -> ActiveReply:
        message = await self.store.add_message(conversation.id, "assistant", "", status="streaming")
        reply = ActiveReply(message_id=message.id, conversation_id=conversation.id, job=ChatJob(),
                            stats={"kind": "image", "prompt": prompt})
        self.active[conversation.id] = reply
        task = asyncio.create_task(self._run_image(reply, prompt), name=f"picture-{message.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return reply

    async def _run_image(self, reply: ActiveReply, prompt: str) -> None:
        """Make the picture with the model's suited settings; the answer's text follows its progress and
        ends as the picture (Markdown pointing at the gallery image)."""
        try:
            with failures_to(functools.partial(self._fail, reply), f"picture {reply.message_id}"):
                if self.images is None or self.images.model is None:
                    raise EngineError("model_not_found", "No image model is installed; one can be added on the "
                                                         "Models page (Images).")
                suited = defaults_for(self.images.model)
                params = ImageParams(prompt=prompt[:4000], width=suited["base"], height=suited["base"],
                                     steps=suited["steps"], cfg_scale=suited["cfg_scale"],
                                     sampler=suited["sampler"])
                generation = await self.images.generate(params, origin="chat",
                                                        conversation_id=reply.conversation_id)
                reply.generation_id = generation.id
                if reply.job.cancelled:
                    self.images.cancel(generation.id)
                seen = -1
                while not generation.finished.is_set():
                    if generation.version != seen:
                        seen = generation.version
                        reply.text = _picture_progress(generation)
                        reply.touch()
                    await asyncio.sleep(0.1)
                self._picture_done(reply, generation)
        finally:
            await self._settle(reply)

    def _picture_done(self, reply: ActiveReply, generation: Generation) -> None:
        if generation.state == "done":
            alt = prompt_from(generation.params.prompt, 200).replace("]", ")").replace("[", "(")
            reply.text = "\n\n".join(f"![{alt}](/api/images/{image.id}/file)" for image in generation.images)
            reply.stats.update(images=[image.id for image in generation.images], seed=generation.seed,
                               seconds=round(generation.elapsed, 2), model=generation.model.id)
            reply.status = "done"
        elif generation.state == "cancelled":
            reply.text = ""
            reply.stats["finish_reason"] = "cancelled"
            reply.status = "done"
        else:
            self._fail(reply, generation.error_code or ErrorCode.INTERNAL, generation.error or "it did not work")
            reply.text = ""

    async def _run(self, reply: ActiveReply, request: ChatRequest, model_id: str | None) -> None:
        last_save = time.monotonic()

        def on_position(place: int) -> None:
            reply.position = place
            reply.touch()

        try:
            with failures_to(functools.partial(self._fail, reply), f"answer {reply.message_id}"):
                async for event in self.chat.stream(reply.job, request, model_id=model_id, on_position=on_position):
                    if isinstance(event, TokenDelta):
                        reply.text += event.text
                    elif isinstance(event, PromptReady):
                        reply.stats.update(prompt_tokens=event.prompt_tokens, cached_tokens=event.cached_tokens,
                                           trimmed_messages=event.trimmed_messages)
                        if reply.job.unloaded:
                            reply.stats["unloaded"] = reply.job.unloaded
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
        finally:
            await self._settle(reply)

    async def _settle(self, reply: ActiveReply) -> None:
        """An answer has ended (or the server is shutting down under it): save it as it is."""
        if reply.status == "streaming":
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
            self._cancel(reply)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)


def _document_part(attachment: Attachment) -> str:
    """A document as the model reads it: between lines naming it, saying when it is only a part."""
    name = attachment.name
    text = (attachment.sent_text if attachment.sent_text is not None else attachment.text)
    text = text.replace(MEDIA_MARKER, "").rstrip("\n")
    partial = f"\n(Only part of this file is included. {attachment.sent_notice})" if attachment.sent_notice else ""
    return f"--- {name} ---\n{text}\n--- end of {name} ---{partial}"


def _picture_progress(generation: Generation) -> str:
    if generation.state == "queued":
        return "*Waiting for the image model…*"
    if generation.state == "loading":
        return "*Loading the image model…*"
    return f"*Making the picture… step {generation.step} of {generation.total_steps}*"
