"""Conversations as the chat page and its API see them: messages sent, edited and answered.

Answers themselves are server tasks (`replies.py`); this module decides what is asked of the
model: the conversation's settings and model, its attachments fitted to the context, and
whether a message asks for a picture instead of words.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..attachments.service import AttachmentService
from ..core.errors import AppError, ErrorCode
from ..core.jobs import Job
from ..engines.llm import MEDIA_MARKER, ChatRequest
from ..engines.reply_format import template_features
from ..images.params import image_request, prompt_from
from ..images.service import ImageService
from ..knowledge.retrieval import sources_block
from ..knowledge.service import KnowledgeService
from ..knowledge.store import Hit, sources_json
from ..models.features import model_features
from ..models.manager import ModelManager
from ..models.registry import ModelRecord
from ..remote.service import is_remote
from ..storage.attachments import Attachment
from ..storage.conversations import Conversation, ConversationStore
from ..storage.projects import ProjectStore
from .engine import ChatEngines
from .params import GenerationSettings
from .prompt import CHARS_PER_TOKEN, document_budget, model_messages
from .replies import ActiveReply, Replies
from .tools import ToolRegistry, builtin_tools
from .tools.documents import SearchDocumentsTool
from .tools.history import SearchConversationsTool

__all__ = ["MAX_ATTACHMENTS", "MAX_MESSAGE_CHARS", "CannotSee", "ConversationService"]


def _with_sources(messages: list[dict[str, Any]], block: str) -> None:
    """Give the model the passages with the question they were found for (the last user turn)."""
    for message in reversed(messages):
        if message["role"] == "user":
            message["content"] = f"{block}\nQuestion: {message['content']}"
            return

TITLE_CHARS = 48
MAX_MESSAGE_CHARS = 100_000
MAX_ATTACHMENTS = 10
SOURCES_K = 5
"""Passages of the person's documents an answer is given."""
SOURCES_SHARE = 0.4
"""Of the model's context, what those passages may fill at most."""
INDEX_WAIT_S = 300.0
"""How long a message waits for a long attached document to be indexed before it is cut instead."""
LONG_DOCUMENT_NOTICE = ("It is too long for the model to read whole, so it was indexed: the answer uses its "
                        "passages that matter to the question.")


class CannotSee(AppError):
    """A photo was sent to a model without a vision projector; `vision` lists the models that can see."""

    def __init__(self, model: ModelRecord | None, vision: list[ModelRecord]) -> None:
        name = model.name if model is not None else "The model in use"
        super().__init__(ErrorCode.MODEL_CANNOT_SEE,
                         f"{name} cannot see photos; choose a vision model for this conversation"
                         if vision else f"{name} cannot see photos, and no vision model is installed")
        self.model, self.vision = model, vision


class ConversationService:
    def __init__(self, store: ConversationStore, chat: ChatEngines, models: ModelManager, context_cap: int,
                 attachments: AttachmentService, images: ImageService | None = None,
                 projects: ProjectStore | None = None, knowledge: KnowledgeService | None = None) -> None:
        self.store = store
        self.knowledge = knowledge
        self.projects = projects if projects is not None else ProjectStore(store.db)
        self.chat = chat
        self.models = models
        self.attachments = attachments
        self.images = images
        self.context_cap = context_cap
        self.tools: ToolRegistry = builtin_tools()
        self.tools.register(SearchConversationsTool(store))
        if knowledge is not None:
            self.tools.register(SearchDocumentsTool(knowledge))
        self.replies = Replies(store, chat, images)

    @property
    def active(self) -> dict[str, ActiveReply]:
        """The answers being written now, by conversation id."""
        return self.replies.active

    async def recover(self) -> int:
        return await self.store.mark_interrupted()

    def settings_of(self, conversation: Conversation | None) -> GenerationSettings:
        """A conversation's settings, or the defaults for one not created yet."""
        stored = conversation.settings if conversation is not None else {}
        return GenerationSettings.from_stored(stored, context_cap=self.context_cap)

    async def _require(self, conversation_id: str) -> Conversation:
        conversation = await self.store.get(conversation_id)
        if conversation is None:
            raise AppError(ErrorCode.NOT_FOUND, "this conversation does not exist (it may have been deleted)")
        return conversation

    def _require_idle(self, conversation_id: str) -> None:
        if conversation_id in self.active:
            raise AppError(ErrorCode.ANSWER_RUNNING, "an answer is still being written; stop it first")

    @staticmethod
    def _checked(text: str, *, attached: bool = False) -> str:
        text = text.replace(MEDIA_MARKER, "").strip()
        if not text and not attached:
            raise AppError(ErrorCode.BAD_REQUEST, "the message is empty")
        if len(text) > MAX_MESSAGE_CHARS:
            raise AppError(ErrorCode.BAD_REQUEST, f"the message is too long ({len(text):,} characters; "
                                                  f"at most {MAX_MESSAGE_CHARS:,})")
        return text

    def model_for(self, conversation: Conversation | None) -> ModelRecord | None:
        """The model that answers in a conversation: the one chosen for it (a vision model for
        photos, say) while it is installed, else the app's chat model."""
        chosen = conversation.settings.get("model") if conversation is not None else None
        record = self.chat.get(chosen) if isinstance(chosen, str) else None
        if record is not None and Job(record.job).is_language:
            return record
        return self.models.active(Job.CHAT)

    @staticmethod
    def features_of(model: ModelRecord | None) -> list[str]:
        """What a model can do beyond plain chat: "thinking", "tools", "vision"."""
        if model is None:
            return []
        if is_remote(model):  # what a server's model can do is its owner's word: tools when they said so
            return ["tools"] if model.info.get("tools") else []
        return model_features(model, lambda template: template_features(template).labels())

    def vision_models(self) -> list[ModelRecord]:
        return [m for m in self.models.language_models() if m.projector is not None]

    def check_sees(self, conversation: Conversation | None) -> None:
        """Raise CannotSee when the conversation's model cannot look at a photo."""
        model = self.model_for(conversation)
        if not self.chat.sees(model):
            raise CannotSee(model, self.vision_models())

    async def send(self, conversation_id: str, text: str, attachment_ids: list[str] | tuple[str, ...] = (),
                   *, uploader: str = "owner") -> ActiveReply:
        if len(attachment_ids) > MAX_ATTACHMENTS:
            raise AppError(ErrorCode.BAD_REQUEST, f"at most {MAX_ATTACHMENTS} files can go with one message")
        text = self._checked(text, attached=bool(attachment_ids))
        conversation = await self._require(conversation_id)
        self._require_idle(conversation_id)
        attached = await self.attachments.store.pending(attachment_ids, uploader)
        if len(attached) != len(set(attachment_ids)):
            raise AppError(ErrorCode.NOT_FOUND, "an attached file is no longer there; attach it again")
        if any(a.is_image for a in attached):
            self.check_sees(conversation)
        budget = self._document_budget(conversation, text, attached)
        attached = [self.attachments.fitted(a, budget) for a in attached]
        history = await self.store.messages(conversation_id)
        message = await self.store.add_message(conversation_id, "user", text)
        try:
            await self.attachments.store.link(message.id, attached)
        except LookupError as exc:
            await self.store.delete_message(message.id)
            raise AppError(ErrorCode.NOT_FOUND, "an attached file is no longer there; attach it again") from exc
        if not any(m.role == "user" for m in history) and conversation.title == "New chat":
            title = " ".join(text.split()) or ", ".join(a.name for a in attached)
            await self.store.update(conversation_id,
                                    title=title if len(title) <= TITLE_CHARS else title[:TITLE_CHARS - 1] + "…")
        indexing = await self._index_long_documents(conversation, attached)
        return await self._start_reply(conversation, indexing)

    async def _index_long_documents(self, conversation: Conversation, attached: list[Attachment]) \
            -> list[tuple[Attachment, str]]:
        """Documents too long for the model's context are not only cut: they are queued for indexing
        into the conversation's own hidden collection (turned on for it), whose passages the answer
        then draws on. Returns each with its document id, for the answer to wait for."""
        long = [a for a in attached if a.kind == "document" and a.sent_notice]
        if not long or self.knowledge is None:
            return []
        collection = await self.knowledge.hidden_collection(conversation.id, conversation.title)
        queued = []
        for attachment in long:
            path = self.attachments.media.path(attachment.path)
            try:
                document = await self.knowledge.add_file(collection.id, path, attachment.name)
            except AppError as exc:
                same = await self.knowledge.same_file(collection.id, path) if exc.code == ErrorCode.CONFLICT else None
                if same is None:  # not a kind collections hold: the cut text stays what the model reads
                    continue
                document = same
            queued.append((attachment, document.id))
        return queued

    async def _use_indexed(self, queued: list[tuple[Attachment, str]], reply: ActiveReply) -> bool:
        """Wait for the long documents to be indexed (Stop ends the wait); those that are ready are
        no longer given cut but through their passages (their notice says so). Whether any was."""
        assert self.knowledge is not None
        ids = [i for _, i in queued]
        deadline = time.monotonic() + INDEX_WAIT_S
        documents = await self.knowledge.wait(ids, within=0)
        while any(d.pending for d in documents) and not reply.job.cancelled and time.monotonic() < deadline:
            documents = await self.knowledge.wait(ids, within=1)
        done = {d.id: d for d in documents}
        used = False
        for attachment, document_id in queued:
            indexed = done.get(document_id)
            if indexed is not None and indexed.state == "ready":
                await self.attachments.store.set_sent(attachment.id, "", LONG_DOCUMENT_NOTICE)
                used = True
        return used

    def _document_budget(self, conversation: Conversation, text: str, attached: list[Attachment]) -> int:
        model = self.model_for(conversation)
        return document_budget(self.settings_of(conversation), self.models.context_for(model) if model else None,
                               conversation, text, attached)

    async def regenerate(self, conversation_id: str) -> ActiveReply:
        """A new answer to the last message of yours shown, beside the earlier one (‹ 2/2 ›)."""
        conversation = await self._require(conversation_id)
        self._require_idle(conversation_id)
        history = await self.store.messages(conversation_id)
        last_user = next((m for m in reversed(history) if m.role == "user"), None)
        if last_user is None:
            raise AppError(ErrorCode.BAD_REQUEST, "there is no message to answer yet")
        await self.store.set_leaf(conversation_id, last_user.id)
        return await self._start_reply(conversation)

    async def answer_here(self, conversation_id: str) -> ActiveReply:
        """After an engine server went away: the conversation goes on with this device's chat model,
        and the last question is answered again here (the cut answer stays as the earlier version)."""
        conversation = await self._require(conversation_id)
        self._require_idle(conversation_id)
        if self.models.active(Job.CHAT) is None:
            raise AppError(ErrorCode.MODEL_NOT_FOUND, "No chat model is installed on this device.")
        await self.store.update(conversation_id,
                                settings={k: v for k, v in conversation.settings.items() if k != "model"})
        return await self.regenerate(conversation_id)

    async def edit_and_resend(self, message_id: str, text: str) -> ActiveReply:
        """Your message with new words, as a new version beside the earlier one (which keeps its
        answers), with the same attachments; the model answers it."""
        message = await self.store.get_message(message_id)
        if message is None or message.role != "user":
            raise AppError(ErrorCode.BAD_REQUEST, "only your own messages can be edited")
        attached = (await self.attachments.store.for_conversation(message.conversation_id)).get(message.id, [])
        text = self._checked(text, attached=bool(attached))
        conversation = await self._require(message.conversation_id)
        self._require_idle(conversation.id)
        edited = await self.store.add_message(conversation.id, "user", text, parent_id=message.parent_id)
        await self.attachments.store.copy_to(edited.id, attached)
        return await self._start_reply(conversation)

    async def switch(self, conversation_id: str, message_id: str) -> None:
        """Show the branch holding `message_id` (‹ › on a message with versions, a search hit)."""
        await self._require(conversation_id)
        self._require_idle(conversation_id)
        try:
            await self.store.switch(conversation_id, message_id)
        except LookupError as exc:
            raise AppError(ErrorCode.NOT_FOUND, "that message is not in this conversation") from exc

    async def create(self, *, project_id: str | None = None, title: str = "New chat") -> Conversation:
        """A new conversation; in a project, it starts from the project's system prompt and settings."""
        if project_id is None:
            return await self.store.create(title=title)
        project = await self.projects.get(project_id)
        if project is None:
            raise AppError(ErrorCode.NOT_FOUND, "this project does not exist (it may have been deleted)")
        return await self.store.create(title=title, system_prompt=project.system_prompt,
                                       settings=dict(project.settings), project_id=project.id)

    def stop(self, conversation_id: str) -> bool:
        reply = self.active.get(conversation_id)
        if reply is None:
            return False
        self.replies.cancel(reply)
        return True

    async def delete(self, conversation_id: str) -> bool:
        reply = self.active.get(conversation_id)
        if reply is not None:
            self.replies.cancel(reply)
            await reply.finished.wait()
        files = await self.attachments.store.files_after(conversation_id)
        if self.knowledge is not None:
            hidden = await self.knowledge.store.hidden_collection(conversation_id)
            if hidden is not None:
                await self.knowledge.delete_collection(hidden.id)
        deleted = await self.store.delete(conversation_id)
        self.attachments.delete_files(files)
        return deleted

    async def _start_reply(self, conversation: Conversation,
                           indexing: list[tuple[Attachment, str]] | None = None) -> ActiveReply:
        history = await self.store.messages(conversation.id)
        last_user = next((m for m in reversed(history) if m.role == "user"), None)
        wanted = image_request(last_user.content) if last_user is not None else None
        if wanted is not None:
            return await self.replies.start_picture(conversation.id, wanted)
        settings = self.settings_of(conversation)
        model = self.model_for(conversation)
        attachments = await self.attachments.store.for_conversation(conversation.id)
        messages, photos = model_messages(conversation, history, attachments,
                                          sees=self.chat.sees(model))
        notes: dict[str, str] = {}
        tools = await self._tools_for(conversation) if settings.tools != "off" else None
        if tools is not None and "tools" not in self.features_of(model):
            tools = None
            notes["note"] = f"{model.name if model else 'This model'} cannot call tools; it answered without them."
        request = ChatRequest(messages=messages, images=await self.attachments.image_bytes(photos),
                              max_tokens=settings.max_tokens, temperature=settings.temperature,
                              top_p=settings.top_p, context_limit=settings.context_length,
                              trim_history=True, cache_key=conversation.id,
                              tools=tools.specs() if tools else [], tool_choice=settings.tools,
                              thinking=settings.thinking,
                              thinking_budget=settings.thinking_budget)

        async def prepare(reply: ActiveReply) -> None:
            """Before the model reads: long attached documents indexed, passages found for the question."""
            if indexing and await self._use_indexed(indexing, reply):
                attached = await self.attachments.store.for_conversation(conversation.id)
                request.messages, _ = model_messages(conversation, history, attached,
                                                     sees=self.chat.sees(model))
            if last_user is None:
                return
            sources, note = await self._retrieve(conversation, last_user.content)
            if note:
                reply.stats["sources_note"] = note
            if sources:
                context = self.models.context_for(model) if model else None
                limit = min(settings.context_length, context or settings.context_length)
                block, used = sources_block(sources, max_chars=int(limit * SOURCES_SHARE) * CHARS_PER_TOKEN)
                _with_sources(request.messages, block)
                await self.store.set_sources(reply.message_id, json.loads(sources_json(sources[:used])))
                reply.touch()

        return await self.replies.start_answer(conversation.id, request, model.id if model else None, tools,
                                               prepare=prepare, **notes)

    async def _retrieve(self, conversation: Conversation, question: str) -> tuple[list[Hit], str | None]:
        """The passages of the collections turned on for the conversation (or its project) that
        best answer the question; a search that cannot use meaning falls back to words."""
        if self.knowledge is None:
            return [], None
        collections = await self.knowledge.linked(conversation_id=conversation.id, project_id=conversation.project_id)
        if not collections or not question.strip():
            return [], None
        ids = [c.id for c in collections]
        query = question.strip()[:2000]
        try:
            result = await self.knowledge.search(ids, query, k=SOURCES_K)
        except AppError as exc:
            result = await self.knowledge.search(ids, query, k=SOURCES_K, mode="words")
            result.notice = f"The documents were searched by their words only: {exc.message}"
        return result.hits, result.notice

    async def _tools_for(self, conversation: Conversation) -> ToolRegistry:
        """The tools for one answer: the search leaves out the conversation being answered; the
        documents' search looks in the collections turned on for it."""
        replaced = (SearchConversationsTool.name, SearchDocumentsTool.name)
        own = [tool for name in self.tools.names()
               if name not in replaced and (tool := self.tools.get(name)) is not None]
        tools: list[Any] = [*own, SearchConversationsTool(self.store, leave_out=conversation.id)]
        if self.knowledge is not None:
            linked = await self.knowledge.linked(conversation_id=conversation.id, project_id=conversation.project_id)
            tools.append(SearchDocumentsTool(self.knowledge, [c.id for c in linked]))
        return ToolRegistry(tools)

    async def make_image(self, conversation_id: str, text: str) -> ActiveReply:
        """A picture of what a message says, shown in the conversation as the next answer."""
        conversation = await self._require(conversation_id)
        self._require_idle(conversation_id)
        prompt = prompt_from(text)
        if not prompt:
            raise AppError(ErrorCode.BAD_REQUEST, "there are no words in that message to make a picture of")
        return await self.replies.start_picture(conversation.id, prompt)

    async def shutdown(self) -> None:
        """Server stopping: end running answers now; they are kept as interrupted."""
        await self.replies.shutdown()
