"""Answers as server tasks: written by the language model (or made as a picture), saved while
they stream, and kept when the tab closes or the server stops under them.

An answer runs as a server task, not as part of a page: closing the tab does not stop it,
and the page that comes back finds it in `Replies.active`. The text is saved at least every
`SAVE_INTERVAL_S`, so a killed server leaves it behind as `interrupted`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..core.errors import AppError, ErrorCode
from ..engines.llm import ChatRequest, ChatResult, PromptReady, TokenDelta
from ..images.params import ImageParams, defaults_for, prompt_from
from ..images.service import Generation, GenerationState, ImageService
from ..runtime.host import EngineJob
from ..runtime.protocol import JobDone, JobFailed
from ..runtime.tasks import ServerTask, TaskSet, failures_to
from ..storage.conversations import ConversationStore, MessageStatus
from .engine import ChatEngines
from .prompt import tool_call
from .tools import ToolOutcome, ToolRegistry

__all__ = ["MAX_TOOL_CALLS", "SAVE_INTERVAL_S", "ActiveReply", "Replies"]

SAVE_INTERVAL_S = 0.5
MAX_TOOL_CALLS = 8
"""Tool calls one answer may make; then the model is asked to answer with what it has."""
_SUMMED = ("completion_tokens", "reasoning_tokens", "thinking_s")


@dataclass(kw_only=True, slots=True)
class ActiveReply(ServerTask):
    message_id: str
    conversation_id: str
    job: EngineJob = field(default_factory=EngineJob)
    text: str = ""
    status: MessageStatus = MessageStatus.STREAMING
    stats: dict[str, Any] = field(default_factory=dict)
    position: int = 0
    generation_id: str | None = None
    """A picture being made instead of words (see `Replies.start_picture`)."""
    reasoning: str = ""
    tools: list[dict[str, Any]] = field(default_factory=list)
    """The calls made so far: `id`, `name`, `arguments`, then `result` and `ok` once run."""


class Replies:
    """The answers being written now, one per conversation at most."""

    def __init__(self, store: ConversationStore, chat: ChatEngines, images: ImageService | None) -> None:
        self.store = store
        self.chat = chat
        self.images = images
        self.active: dict[str, ActiveReply] = {}  # by conversation id
        self._tasks = TaskSet()

    async def _new(self, conversation_id: str, **stats: Any) -> ActiveReply:
        message = await self.store.add_message(conversation_id, "assistant", "", status=MessageStatus.STREAMING)
        reply = ActiveReply(message_id=message.id, conversation_id=conversation_id, stats=stats)
        self.active[conversation_id] = reply
        return reply

    async def start_answer(self, conversation_id: str, request: ChatRequest, model_id: str | None,
                           tools: ToolRegistry | None = None,
                           prepare: Callable[[ActiveReply], Awaitable[None]] | None = None,
                           **stats: Any) -> ActiveReply:
        """Answer with the model; with `tools`, run the calls it makes and let it go on with their
        results (at most MAX_TOOL_CALLS, Stop working between them). `prepare` finishes the request
        inside the answer's task, before the model reads it (documents to wait for, passages to find):
        the person's message shows at once, and a failure there is the answer's."""
        reply = await self._new(conversation_id, **stats)
        self._tasks.spawn(self._answer(reply, request, model_id, tools, prepare), name=f"reply-{reply.message_id}")
        return reply

    async def start_picture(self, conversation_id: str, prompt: str) -> ActiveReply:
        reply = await self._new(conversation_id, kind="image", prompt=prompt)
        self._tasks.spawn(self._picture(reply, prompt), name=f"picture-{reply.message_id}")
        return reply

    def cancel(self, reply: ActiveReply) -> None:
        reply.job.cancelled = True
        if reply.generation_id is not None and self.images is not None:
            self.images.cancel(reply.generation_id)
        else:
            self.chat.cancel(reply.job)

    async def _answer(self, reply: ActiveReply, request: ChatRequest, model_id: str | None,
                      tools: ToolRegistry | None,
                      prepare: Callable[[ActiveReply], Awaitable[None]] | None = None) -> None:
        try:
            with failures_to(functools.partial(self._fail, reply), f"answer {reply.message_id}"):
                if prepare is not None:
                    await prepare(reply)
                while True:
                    step = await self._step(reply, request, model_id)
                    if step is None or not step[1].tool_calls or tools is None or reply.job.cancelled:
                        break
                    request = await self._run_tools(reply, request, tools, *step)
                    if reply.job.cancelled:
                        reply.stats["finish_reason"] = "cancelled"
                        break
                    reply.job = EngineJob(unloaded=reply.job.unloaded)
                    reply.status = MessageStatus.STREAMING
        finally:
            await self._settle(reply)

    async def _step(self, reply: ActiveReply, request: ChatRequest, model_id: str | None
                    ) -> tuple[dict[str, Any], ChatResult] | None:
        """One turn of the model: its words and thinking stream into the reply; returns what it
        wrote as a message, and its result (None when it failed)."""
        last_save = time.monotonic()
        written = {"role": "assistant", "content": "", "reasoning_content": ""}
        result: ChatResult | None = None
        gap = "\n\n" if reply.text else ""

        def on_position(place: int) -> None:
            reply.position = place
            reply.touch()

        async for event in self.chat.stream(request, reply.job, model_id=model_id, on_position=on_position):
            if isinstance(event, TokenDelta):
                if event.text:
                    reply.text += gap + event.text
                    written["content"] += event.text
                    gap = ""
                reply.reasoning += event.reasoning
                written["reasoning_content"] += event.reasoning
            elif isinstance(event, PromptReady):
                reply.stats.update(prompt_tokens=event.prompt_tokens, cached_tokens=event.cached_tokens,
                                   trimmed_messages=event.trimmed_messages)
                if reply.job.unloaded:
                    reply.stats["unloaded"] = reply.job.unloaded
            elif isinstance(event, JobDone) and isinstance(event.result, ChatResult):
                result = event.result
                self._add_stats(reply, result)
                reply.status = MessageStatus.DONE
            elif isinstance(event, JobFailed):
                self._fail(reply, event.code, event.message)
            reply.touch()
            if time.monotonic() - last_save >= SAVE_INTERVAL_S and reply.status == MessageStatus.STREAMING:
                await self._save(reply, MessageStatus.STREAMING)
                last_save = time.monotonic()
        return (written, result) if result is not None else None

    @staticmethod
    def _add_stats(reply: ActiveReply, result: ChatResult) -> None:
        """An answer that called tools took several turns: tokens and thinking time add up, the
        time to first token is the first turn's."""
        stats = {k: v for k, v in asdict(result).items() if k != "tool_calls"}
        if "ttft_s" in reply.stats:
            stats["ttft_s"] = reply.stats["ttft_s"]
            for key in _SUMMED:
                stats[key] = round(reply.stats.get(key, 0) + stats[key], 3)
        reply.stats.update(stats)

    async def _run_tools(self, reply: ActiveReply, request: ChatRequest, tools: ToolRegistry,
                         written: dict[str, Any], result: ChatResult) -> ChatRequest:
        """Run the calls the model made, in order, and return the request that gives it their results."""
        calls, answers = [], []
        for call in result.tool_calls:
            if reply.job.cancelled:
                break
            record: dict[str, Any] = {"id": call["id"], "name": call["name"], "arguments": call["arguments"]}
            reply.tools.append(record)
            reply.touch()
            if len(reply.tools) > MAX_TOOL_CALLS:
                outcome = ToolOutcome(ok=False, text=f"The limit of {MAX_TOOL_CALLS} tool calls for one answer "
                                                     "was reached; answer with what you have.")
            else:
                outcome = await tools.call(call["name"], call["arguments"])
            record.update(result=outcome.text, ok=outcome.ok)
            reply.touch()
            calls.append(tool_call(call))
            answers.append({"role": "tool", "tool_call_id": call["id"], "name": call["name"], "content": outcome.text})
        await self._save(reply, MessageStatus.STREAMING)
        spent = len(reply.tools) >= MAX_TOOL_CALLS
        return dataclasses.replace(request, messages=[*request.messages, {**written, "tool_calls": calls}, *answers],
                                   tool_choice="none" if spent else "auto")

    async def _save(self, reply: ActiveReply, status: MessageStatus) -> None:
        await self.store.save_progress(reply.message_id, content=reply.text, status=status, stats=reply.stats,
                                       error=reply.error, reasoning=reply.reasoning, tools=reply.tools)

    async def _picture(self, reply: ActiveReply, prompt: str) -> None:
        """Make the picture with the model's suited settings; the answer's text follows its progress and
        ends as the picture (Markdown pointing at the gallery image)."""
        try:
            with failures_to(functools.partial(self._fail, reply), f"picture {reply.message_id}"):
                if self.images is None or self.images.model is None:
                    raise AppError(ErrorCode.MODEL_NOT_FOUND, "No image model is installed; one can be added on the "
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
        if generation.state == GenerationState.DONE:
            alt = prompt_from(generation.params.prompt, 200).replace("]", ")").replace("[", "(")
            reply.text = "\n\n".join(f"![{alt}](/api/images/{image.id}/file)" for image in generation.images)
            reply.stats.update(images=[image.id for image in generation.images], seed=generation.seed,
                               seconds=round(generation.elapsed, 2), model=generation.model.id)
            reply.status = MessageStatus.DONE
        elif generation.state == GenerationState.CANCELLED:
            reply.text = ""
            reply.stats["finish_reason"] = "cancelled"
            reply.status = MessageStatus.DONE
        else:
            self._fail(reply, generation.error_code or ErrorCode.INTERNAL, generation.error or "it did not work")
            reply.text = ""

    async def _settle(self, reply: ActiveReply) -> None:
        """An answer has ended (or the server is shutting down under it): save it as it is."""
        if reply.status == MessageStatus.STREAMING:
            reply.status = MessageStatus.INTERRUPTED
        try:
            await asyncio.shield(self._save(reply, reply.status))
        finally:
            self.active.pop(reply.conversation_id, None)
            reply.end()

    def _fail(self, reply: ActiveReply, code: ErrorCode, message: str) -> None:
        if code == ErrorCode.CANCELLED:
            reply.status = MessageStatus.INTERRUPTED if self._tasks.closing else MessageStatus.DONE
            reply.stats["finish_reason"] = "cancelled"
            return
        reply.status = MessageStatus.ERROR
        reply.error, reply.error_code = message, code
        reply.stats["error_code"] = code

    async def shutdown(self) -> None:
        """Server stopping: end running answers now; they are kept as interrupted."""
        self._tasks.closing = True
        for reply in list(self.active.values()):
            self.cancel(reply)
        await self._tasks.shutdown(within_s=5)


def _picture_progress(generation: Generation) -> str:
    if generation.state == GenerationState.QUEUED:
        return "*Waiting for the image model…*"
    if generation.state == GenerationState.LOADING:
        return "*Loading the image model…*"
    return f"*Making the picture… step {generation.step} of {generation.total_steps}*"
