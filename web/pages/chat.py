"""The chat page: `/` starts a new conversation, `/c/<id>` opens one."""

from __future__ import annotations

from nicegui import ui

from backend.chat.conversations import MAX_MESSAGE_CHARS, CannotSee
from backend.chat.replies import ActiveReply
from backend.core.errors import AppError, ErrorCode
from backend.core.i18n import _, ngettext
from backend.models.registry import ModelRecord
from backend.services import Services
from backend.storage.conversations import Branches, Conversation, Message, MessageStatus
from backend.storage.projects import Project

from ..components.aria import named
from ..components.attachments import ComposerAttachments
from ..components.dictation import DictationStatus
from ..components.knowledge_citations import sources_list
from ..components.knowledge_links import conversation_choice
from ..components.message_jump import scroll_to_message_js, show_message
from ..components.message_view import answer_markdown, branch_switcher, stats_text, user_bubble
from ..components.reply_parts import ThinkingBlock, ToolCallsBlock
from ..components.settings_dialog import edit_settings, model_choices
from ..components.speaker import Speaker
from ..components.voice import auto_read_button, dictation, read_url, speak_button
from ..components.voice_mode import VoiceMode
from ..frame import current_principal, frame, not_found
from . import projects

__all__ = ["register"]

REMOTE_FAILURES = {ErrorCode.REMOTE_UNAVAILABLE, ErrorCode.REMOTE_FAILED, ErrorCode.REMOTE_UNTRUSTED,
                   ErrorCode.REMOTE_REFUSED}
"""An answer from an engine server that ended this way can be given again by this device's model."""

SCROLL_JS = "if (innerHeight + scrollY >= document.body.scrollHeight - 160) scrollTo(0, document.body.scrollHeight)"


class ChatPage:
    def __init__(self, services: Services, conversation: Conversation | None, *, project: Project | None = None,
                 focus: str | None = None) -> None:
        self.services = services
        self.conversation = conversation
        self.project = project
        """A new chat started in this project (`/?project=<id>`): it starts from the project's settings."""
        self.focus = focus
        """The message to scroll to once the page is drawn (`?m=<id>`)."""
        self.reply: ActiveReply | None = None
        self.seen_version = -1
        self.live_md: ui.markdown | None = None
        self.live_stats: ui.label | None = None
        self.live_parts: ui.column | None = None
        self.live_thinking: ThinkingBlock | None = None
        self.live_tools: ToolCallsBlock | None = None
        self.speak_buttons: dict[str, Speaker] = {}
        self.read_live: set[str] = set()
        """Answers whose reading aloud while they are written was asked for (once each)."""

    async def build(self) -> None:
        conv = self.conversation
        self.principal = current_principal()
        async with frame(self.services, current=conv.id if conv else None, title=conv.title if conv else "") as page:
            self.frame = page
            with page.header:
                self.auto_read = auto_read_button()
                # on a phone the header has no room: the new chat and the drawer's menu offer it there
                named(ui.button(icon="library_books", on_click=self.choose_documents).classes("gt-xs")
                      .props("flat round dense data-testid=chat-documents"), _("Documents")).tooltip(_("Documents"))
                named(ui.button(icon="tune", on_click=self.open_settings)
                      .props("flat round dense data-testid=settings"), _("Settings"))
            self.messages_box = ui.column().classes("w-full gap-4 q-pt-md")
        self.show_model()
        with ui.footer().classes("bg-white q-pa-sm border-t"), ui.column().classes("gl-composer gap-1 text-grey-9"):
            status = DictationStatus().classes("w-full")
            self.linked_box = ui.row().classes("w-full items-center no-wrap gap-1 text-caption text-grey-8") \
                .props("data-testid=linked-collections")
            self.linked_box.set_visibility(False)
            self.attachments = ComposerAttachments(self.services, self.principal, lambda: self.conversation,
                                                   self.choose_model)
            with ui.row().classes("w-full no-wrap items-end gap-1"):
                self.attachments.buttons()
                self.input = named(ui.textarea(placeholder=_("Message")).props(
                    f"autogrow outlined dense rows=1 maxlength={MAX_MESSAGE_CHARS} data-testid=composer"),
                    _("Message")).classes("col").style("max-height: 40vh; overflow-y: auto; min-width: 0")
                self.input.on("keydown", self.send, js_handler=(
                    "(e) => { if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) "
                    "{ e.preventDefault(); emit(); } }"))
                dictation(self.services, self.input, status)
                VoiceMode(self.conversation.id if self.conversation else None, on_closed=self.voice_closed)
                self.send_button = named(ui.button(icon="arrow_upward", on_click=self.send)
                                         .props("round unelevated data-testid=send"), _("Send"))
                self.stop_button = named(ui.button(icon="stop", on_click=self.stop, color="negative")
                                         .props("round unelevated data-testid=stop"), _("Stop"))
        self.timer = ui.timer(0.1, self.poll, active=False)
        await self.show_linked()
        if conv is not None:
            self.reply = self.services.conversations.active.get(conv.id)
            if self.focus is not None:
                notice = await show_message(self.services, conv.id, self.focus)
                if notice is not None:
                    ui.notify(notice, type="warning")
                    self.focus = None
        await self.render()

    # rendering ------------------------------------------------------------------------------

    async def render(self) -> None:
        # whether an answer is followed is decided before reading: one that ends while the messages are
        # read keeps the timer going, which sees it ended and draws it again as it was saved
        following = self.reply is not None and not self.reply.finished.is_set()
        messages = await self.services.store.messages(self.conversation.id) if self.conversation else []
        attached = await self.services.attachments.store.for_conversation(self.conversation.id) \
            if self.conversation else {}
        branches = await self.services.store.branches(self.conversation.id) if self.conversation else {}
        self.messages_box.clear()
        self.live_md = self.live_stats = None
        self.live_parts = self.live_thinking = self.live_tools = None
        self.speak_buttons.clear()
        last_assistant = next((m.id for m in reversed(messages) if m.role == "assistant"), None)
        with self.messages_box:
            if not messages:
                with ui.column().classes("w-full items-center q-mt-xl text-grey-7"):
                    ui.icon("forum", size="48px")
                    ui.label(_("Ask anything. It stays on this device.")).classes("text-subtitle1")
                    if self.project is not None:
                        ui.chip(_("New chat in {project}", project=self.project.name), icon="folder") \
                            .props("outline data-testid=new-chat-project")
                    if await self.services.knowledge.collections():
                        ui.button(_("Answer from your documents"), icon="library_books",
                                  on_click=self.choose_documents) \
                            .props("flat no-caps dense data-testid=chat-documents-start")
            for message in messages:
                if message.role == "user":
                    user_bubble(message, self.edit_and_resend, attached.get(message.id),
                                branches.get(message.id), self.switch)
                elif message.role == "assistant":
                    self.render_answer(message, is_last=message.id == last_assistant,
                                       branches=branches.get(message.id))
        self.send_button.set_visibility(not following)
        self.stop_button.set_visibility(following)
        self.timer.active = following
        self.seen_version = -1
        focus, self.focus = self.focus, None
        with self.messages_box:  # a button that asked for this render may have been replaced by it
            ui.run_javascript(scroll_to_message_js(focus) if focus else "scrollTo(0, document.body.scrollHeight)")

    def render_answer(self, message: Message, *, is_last: bool, branches: Branches | None = None) -> None:
        live = self.reply is not None and self.reply.message_id == message.id and not self.reply.finished.is_set()
        with ui.column().classes("w-full gap-1").props(f"data-testid=assistant-message data-message-id={message.id}"):
            reply = self.reply if live else None
            with ui.column().classes("w-full gap-1") as parts:
                reasoning = reply.reasoning if reply else message.reasoning
                thinking = ThinkingBlock(reasoning, message.stats.get("thinking_s"), live=live) \
                    if reasoning else None
                tools = ToolCallsBlock(self.services.conversations.tools.titles())
                tools.update(reply.tools if reply else message.tools)
            md = answer_markdown(reply.text if reply else message.content, message.sources)
            if message.sources:
                sources_list(message.sources)
            if message.stats.get("note"):
                ui.label(message.stats["note"]).classes("text-sm text-grey-8").props("data-testid=answer-note")
            if message.status == MessageStatus.ERROR:
                ui.label(message.error or _("The answer failed.")).classes("text-negative text-sm") \
                    .props("data-testid=answer-error")
                local = self.services.chat.model
                if is_last and local is not None and message.stats.get("error_code") in REMOTE_FAILURES:
                    ui.button(_("Answer here with {model}", model=local.name), icon="phone_android",
                              on_click=lambda: self.run_action("here")) \
                        .props("outline dense no-caps data-testid=answer-here")
            with ui.row().classes("items-center gap-1 w-full"):
                if branches is not None:
                    branch_switcher(branches, self.switch)
                stats = ui.label(stats_text(message.stats, message.status)).classes("gl-stats") \
                    .props("data-testid=answer-stats")
                if message.status == MessageStatus.INTERRUPTED:
                    ui.badge(_("interrupted"), color="orange").props("outline data-testid=interrupted")
                ui.space()
                if live and reply is not None and reply.generation_id is None:  # it can be heard as it is written
                    self.speak_buttons[message.id] = speak_button(message.id)
                if not live:
                    picture = message.stats.get("kind") == "image"
                    if message.content.strip() and not picture:
                        self.speak_buttons[message.id] = speak_button(message.id)
                        if self.services.images.model is not None:
                            named(ui.button(icon="image", on_click=lambda m=message: self.make_image(m))
                                  .props("flat round dense size=sm data-testid=make-picture"),
                                  _("Make a picture of this")).classes("text-grey-6") \
                                .tooltip(_("Make a picture of this"))
                    named(ui.button(icon="content_copy", on_click=lambda m=message: self.copy(m.content))
                          .props("flat round dense size=sm"), _("Copy")).classes("text-grey-6")
                    if is_last:
                        named(ui.button(icon="refresh", on_click=self.regenerate)
                              .props("flat round dense size=sm data-testid=regenerate"), _("Regenerate")) \
                            .classes("text-grey-6")
        if live:
            if message.id not in self.read_live:
                self.read_live.add(message.id)
                self.auto_read.read_live(read_url(message.id))
            md.classes("gl-caret")
            self.live_md, self.live_stats = md, stats
            self.live_parts, self.live_thinking, self.live_tools = parts, thinking, tools

    def update_parts(self, reply: ActiveReply) -> None:
        """The live answer's thinking and tool calls follow the reply."""
        thinking_live = bool(reply.reasoning) and not reply.text and not reply.tools
        if reply.reasoning and self.live_thinking is None and self.live_parts is not None:
            with self.live_parts:
                self.live_thinking = ThinkingBlock("", None, live=True)
                self.live_thinking.expansion.move(target_index=0)
        if self.live_thinking is not None:
            seconds = reply.stats.get("thinking_s")
            self.live_thinking.update(reply.reasoning, seconds, live=thinking_live)
        if self.live_tools is not None:
            self.live_tools.update(reply.tools)

    def poll(self) -> None:
        reply = self.reply
        if reply is None:
            self.timer.active = False
            return
        if reply.finished.is_set():
            self.timer.active = False
            self.reply = None
            ui.timer(0, lambda: self.after_reply(reply.message_id), once=True)
            return
        if reply.version == self.seen_version or self.live_md is None or self.live_stats is None:
            return
        self.seen_version = reply.version
        self.live_md.set_content(reply.text)
        self.update_parts(reply)
        if not reply.text:
            self.live_stats.set_text(ngettext("Waiting for the model… {n} ahead of you",
                                              "Waiting for the model… {n} ahead of you", reply.position)
                                     if reply.position > 0 else _("Thinking…") if reply.reasoning
                                     else _("Using a tool…") if reply.tools
                                     else _("Writing…") if "prompt_tokens" in reply.stats else _("Reading…"))
        else:
            self.live_stats.set_text(stats_text(reply.stats))
        ui.run_javascript(SCROLL_JS)

    async def after_reply(self, message_id: str | None = None) -> None:
        await self.render()
        await self.refresh_names()
        speaker = self.speak_buttons.get(message_id or "")
        if speaker is not None:  # read the new answer aloud when this device asked for that (and is not already)
            speaker.read_new()

    async def refresh_names(self) -> None:
        """The header, tab title and drawer follow the conversation's current name."""
        if self.conversation is not None:
            self.conversation = await self.services.store.get(self.conversation.id) or self.conversation
            self.frame.set_title(self.conversation.title)
        self.frame.drawer.current = self.conversation.id if self.conversation else None
        self.frame.drawer.refresh()

    # actions --------------------------------------------------------------------------------

    async def ensure_conversation(self) -> Conversation:
        if self.conversation is None:
            project_id = self.project.id if self.project is not None else None
            self.conversation = await self.services.conversations.create(project_id=project_id)
            ui.navigate.history.replace(f"/c/{self.conversation.id}")
        return self.conversation

    async def forget_if_empty(self, new_chat: bool) -> None:
        """A first message that was refused leaves no empty "New chat" behind: the page is a new
        chat again (in its project, if any) until a message is sent."""
        if not new_chat or self.conversation is None or await self.services.store.messages(self.conversation.id):
            return
        await self.services.conversations.delete(self.conversation.id)
        self.conversation = None
        ui.navigate.history.replace(f"/?project={self.project.id}" if self.project is not None else "/")

    def draft(self) -> Conversation | None:
        """The conversation, or for a new chat in a project what it will start from."""
        if self.conversation is not None or self.project is None:
            return self.conversation
        project = self.project
        return Conversation(id="", title="", system_prompt=project.system_prompt, settings=dict(project.settings),
                            created_at=0.0, updated_at=0.0, project_id=project.id)

    def show_model(self) -> None:
        """The header names the model that answers here (a conversation may have its own)."""
        model = self.services.conversations.model_for(self.draft())
        # a server's model by its name, which says where it runs ("qwen3:14b · Laptop")
        self.frame.show_model((model.name if model.source == "remote" else model.id) if model else None)

    async def choose_model(self, model: ModelRecord) -> None:
        """Answer this conversation with `model` from now on (a vision model for photos)."""
        conv = await self.ensure_conversation()
        await self.services.store.update(conv.id, settings={**conv.settings, "model": model.id})
        self.conversation = await self.services.store.get(conv.id) or conv
        self.show_model()
        ui.notify(_("This conversation now uses {model}.", model=model.name), timeout=1500)
        self.attachments.render_offer()  # removes the button that was pressed: last

    async def run_action(self, action: str, text: str = "", message: Message | None = None) -> None:
        new_chat = self.conversation is None
        try:
            if action == "send":
                conv = await self.ensure_conversation()
                self.reply = await self.services.conversations.send(conv.id, text, self.attachments.ids,
                                                                    uploader=self.principal.key)
                self.attachments.clear()
            elif action == "regenerate" and self.conversation:
                self.reply = await self.services.conversations.regenerate(self.conversation.id)
            elif action == "here" and self.conversation:
                self.reply = await self.services.conversations.answer_here(self.conversation.id)
            elif action == "edit" and message is not None:
                self.reply = await self.services.conversations.edit_and_resend(message.id, text)
            elif action == "picture" and message is not None and self.conversation:
                self.reply = await self.services.conversations.make_image(self.conversation.id, message.content)
        except CannotSee as exc:
            await self.forget_if_empty(new_chat)
            self.attachments.render_offer()
            ui.notify(exc.message, type="warning")
            self.input.value = self.input.value or text
            return
        except AppError as exc:
            ui.notify(exc.message, type="warning")
            if action == "send":
                await self.forget_if_empty(new_chat)
                self.input.value = self.input.value or text
            return
        with self.messages_box:  # the button pressed may be one the render replaces
            await self.render()
            await self.refresh_names()
            if action == "here":  # the conversation's own model was dropped: the header names this device's
                self.show_model()

    async def send(self) -> None:
        text = (self.input.value or "").strip()
        if self.attachments.busy:
            ui.notify(_("Wait until the files are attached."), type="info")
            return
        if not text and not self.attachments.pending:
            return
        if self.reply is not None and not self.reply.finished.is_set():
            ui.notify(_("Wait for the answer, or stop it first."), type="info")
            return
        self.input.value = ""
        await self.run_action("send", text)

    async def make_image(self, message: Message) -> None:
        if self.reply is not None and not self.reply.finished.is_set():
            ui.notify(_("Wait for the answer, or stop it first."), type="info")
            return
        await self.run_action("picture", message=message)

    async def regenerate(self) -> None:
        await self.run_action("regenerate")

    async def edit_and_resend(self, message: Message, text: str) -> None:
        await self.run_action("edit", text, message)

    async def switch(self, message_id: str) -> None:
        """Show another version of a message; the conversation goes on from the branch shown."""
        if self.conversation is None:
            return
        try:
            await self.services.conversations.switch(self.conversation.id, message_id)
        except AppError as exc:
            ui.notify(exc.message, type="warning")
            return
        with self.messages_box:  # the button pressed is replaced by the render
            await self.render()

    def stop(self) -> None:
        if self.conversation is not None:
            self.services.conversations.stop(self.conversation.id)

    def voice_closed(self, conversation_id: str | None) -> None:
        """The voice conversation was closed: show its turns here (the conversation it made, if new)."""
        if conversation_id:
            ui.navigate.to(f"/c/{conversation_id}")

    async def copy(self, text: str) -> None:
        ui.clipboard.write(text)
        ui.notify(_("Copied"), position="bottom", timeout=1000)

    async def show_linked(self) -> None:
        """Under the composer, the collections that answers here use (its own and its project's)."""
        draft = self.draft()
        linked = await self.services.knowledge.linked(
            conversation_id=self.conversation.id if self.conversation else None,
            project_id=draft.project_id if draft else None)
        names = [c.name for c in linked if not c.hidden]
        self.linked_box.clear()
        self.linked_box.set_visibility(bool(names))
        with self.linked_box:
            ui.icon("library_books", size="16px")
            ui.label(_("Answers use: {names}", names=", ".join(names))).classes("ellipsis cursor-pointer") \
                .style("min-width: 0").props("data-testid=linked-names").on("click", self.choose_documents)

    async def choose_documents(self) -> None:
        """Turn collections on or off for this conversation (those of its project stay on)."""
        draft = self.draft()
        chosen = await conversation_choice(self.services, self.conversation.id if self.conversation else None,
                                           draft.project_id if draft else None)
        if chosen is None:
            return
        conv = await self.ensure_conversation()
        try:
            await self.services.knowledge.link(chosen, conversation_id=conv.id)
        except AppError as exc:
            ui.notify(exc.message, type="warning")
            return
        await self.show_linked()
        ui.notify(_("Saved"), timeout=1000)
        await self.refresh_names()

    async def open_settings(self) -> None:
        conv = self.draft()
        settings = self.services.conversations.settings_of(conv)
        models, cannot_call = model_choices(self.services)
        chosen = conv.settings.get("model") if conv else None
        result = await edit_settings(conv.system_prompt if conv else "", settings,
                                     self.services.settings.context_length, models=models,
                                     model=chosen if isinstance(chosen, str) else None, cannot_call=cannot_call)
        if result is None:
            return
        conv = await self.ensure_conversation()
        system_prompt, values = result
        merged = {k: v for k, v in {**conv.settings, **values}.items() if v is not None}
        await self.services.store.update(conv.id, system_prompt=system_prompt, settings=merged)
        self.conversation = await self.services.store.get(conv.id) or conv
        self.show_model()
        self.attachments.render_offer()
        ui.notify(_("Settings saved"), timeout=1000)
        await self.refresh_names()


def register(services: Services) -> None:
    @ui.page("/")
    async def new_chat(project: str | None = None) -> None:
        """`?project=<id>`: the new chat starts in that project, from its system prompt and settings."""
        await services.ready()
        found = await services.projects.get(project) if project else None
        await ChatPage(services, None, project=found).build()
        if project and found is None:
            ui.notify(_("That project does not exist any more; this chat is in no project."), type="warning")

    @ui.page("/c/{conversation_id}")
    async def open_chat(conversation_id: str, m: str | None = None) -> None:
        """`?m=<message id>`: opened at that message (a search hit), on the branch that holds it."""
        await services.ready()
        conversation = await services.store.get(conversation_id)
        if conversation is None:
            await not_found(services, _("This conversation does not exist. It may have been deleted."))
            return
        await ChatPage(services, conversation, focus=m or None).build()

    projects.register(services)
