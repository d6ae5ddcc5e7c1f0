"""Between the engine's own request and events and OpenAI's chat completions: what is sent to an
engine server, and how its streamed chunks become the events a local engine would have sent."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field, replace
from typing import Any

from ..core.errors import AppError, ErrorCode
from ..engines.llm import MEDIA_MARKER, ChatRequest, ChatResult, TokenDelta, ToolCallDelta
from ..runtime.protocol import Event, JobDone

__all__ = ["ChunkReader", "ThinkSplitter", "openai_request", "trimmed"]

MAX_TOOL_CALLS = 16
CHARS_PER_TOKEN = 3
"""Characters a token is taken to hold when the server's tokenizer is not known (fewer than most
tokenizers give in English or Italian, so the estimate is long rather than short)."""
PHOTO_TOKENS = 768
MAX_ARGUMENTS = 256 * 1024


def _image_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/jpeg"


def _content(text: str, images: list[bytes]) -> str | list[dict[str, Any]]:
    """A message's text with its photos in the places of their markers, as content parts."""
    if MEDIA_MARKER not in text:
        return text
    parts: list[dict[str, Any]] = []
    pieces = text.split(MEDIA_MARKER)
    for index, piece in enumerate(pieces):
        if piece:
            parts.append({"type": "text", "text": piece})
        if index < len(pieces) - 1 and images:
            data = images.pop(0)
            url = f"data:{_image_type(data)};base64,{base64.b64encode(data).decode()}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def trimmed(request: ChatRequest) -> tuple[ChatRequest, int]:
    """For a conversation that asks for it (`trim_history`), its oldest turns left out until the
    prompt fits the context it may use, as the local engine does, here estimated from characters
    (the server's tokenizer is not known here; the estimate errs on the long side). A turn goes
    whole (a question with its answer, tool calls and their results) with its photos; the system
    message and the last turn always stay. Returns the request and how many messages were left out."""
    if not request.trim_history or not request.context_limit:
        return request, 0
    budget = max(0, request.context_limit - (request.max_tokens or 0)) * CHARS_PER_TOKEN
    messages = request.messages
    lead = 1 if messages and messages[0].get("role") == "system" else 0
    starts = [i for i in range(lead, len(messages)) if messages[i].get("role") == "user"]
    if len(starts) < 2:
        return request, 0
    sizes = [_size(m) for m in messages]
    total, cut = sum(sizes), lead
    for start in starts[1:]:  # drop whole turns from the oldest, never the last
        if total <= budget:
            break
        total -= sum(sizes[cut:start])
        cut = start
    if cut == lead:
        return request, 0
    dropped_images = sum(_text_of(m).count(MEDIA_MARKER) for m in messages[lead:cut])
    kept = [*messages[:lead], *messages[cut:]]
    return replace(request, messages=kept, images=list(request.images[dropped_images:])), cut - lead


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""


def _size(message: dict[str, Any]) -> int:
    """Characters a message adds to the prompt, a photo counted as a few hundred tokens."""
    text = _text_of(message)
    calls = json.dumps(message.get("tool_calls") or [], ensure_ascii=False) if message.get("tool_calls") else ""
    return len(text) + len(calls) + 16 + text.count(MEDIA_MARKER) * PHOTO_TOKENS * CHARS_PER_TOKEN


def openai_request(request: ChatRequest, model: str) -> dict[str, Any]:
    """The body of `POST /v1/chat/completions` for `request` on the server's `model`."""
    images = list(request.images)
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        role = message.get("role", "user")
        out: dict[str, Any] = {"role": role}
        content = message.get("content")
        out["content"] = _content(content, images) if isinstance(content, str) else content
        if role == "assistant" and message.get("tool_calls"):
            out["tool_calls"] = [
                {"id": call.get("id", ""), "type": "function",
                 "function": {"name": call.get("function", {}).get("name", ""),
                              "arguments": _arguments_text(call.get("function", {}).get("arguments"))}}
                for call in message["tool_calls"]]
        if role == "tool":
            out["tool_call_id"] = message.get("tool_call_id", "")
        messages.append(out)
    body: dict[str, Any] = {"model": model, "messages": messages, "stream": True,
                            "stream_options": {"include_usage": True},
                            "temperature": request.temperature, "top_p": request.top_p}
    if request.top_k:
        body["top_k"] = request.top_k
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.seed is not None:
        body["seed"] = request.seed
    if request.stop:
        body["stop"] = request.stop[:4]
    if request.tools:
        body["tools"] = request.tools
        choice = request.tool_choice
        body["tool_choice"] = choice if choice in ("auto", "none", "required") else \
            {"type": "function", "function": {"name": choice}}
    if request.response_format == "json_object":
        body["response_format"] = {"type": "json_object"}
    elif request.response_format == "json_schema" and request.json_schema is not None:
        body["response_format"] = {"type": "json_schema", "json_schema": request.json_schema}
    if request.thinking != "auto":
        # llama-server, vLLM and LM Studio pass these to the model's template (Qwen 3, SmolLM 3…)
        body["chat_template_kwargs"] = {"enable_thinking": request.thinking == "on"}
    if request.reasoning_effort:
        body["reasoning_effort"] = request.reasoning_effort
    return body


def _arguments_text(arguments: Any) -> str:
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)


class ThinkSplitter:
    """Thinking a server leaves inside the answer text (`<think>…</think>` at its start, as some
    servers pass Qwen 3 and DeepSeek R1 through) told apart from the answer, cut anywhere."""

    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self) -> None:
        self._state = "start"  # start → thinking → answer
        self._held = ""
        self._trim = False
        """The blank lines after the closing tag are left out, whichever pieces they come in."""

    def feed(self, text: str) -> tuple[str, str]:
        """(answer text, thinking) of the next piece."""
        text = self._held + text
        self._held = ""
        if self._state == "start":
            stripped = text.lstrip()
            if self.OPEN.startswith(stripped) and len(stripped) < len(self.OPEN):
                self._held = text  # could still become the opening tag
                return "", ""
            if stripped.startswith(self.OPEN):
                self._state = "thinking"
                text = stripped[len(self.OPEN):]
            else:
                self._state = "answer"
                return text, ""
        if self._state == "thinking":
            end = text.find(self.CLOSE)
            if end >= 0:
                self._state, self._trim = "answer", True
                return self._answer(text[end + len(self.CLOSE):]), text[:end]
            keep = _partial_suffix(text, self.CLOSE)
            self._held = text[len(text) - keep:] if keep else ""
            return "", text[:len(text) - keep]
        return self._answer(text), ""

    def _answer(self, text: str) -> str:
        if self._trim:
            text = text.lstrip("\n")
            self._trim = not text
        return text

    def finish(self) -> tuple[str, str]:
        held, self._held = self._held, ""
        return (held, "") if self._state != "thinking" else ("", held)


def _partial_suffix(text: str, tag: str) -> int:
    """How many characters at the end of `text` could be the start of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


@dataclass(slots=True)
class _Call:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    size: int = 0


class ChunkReader:
    """A stream's chunks into `TokenDelta`s as they come, and at the end the tool calls and the
    answer's `ChatResult` (tokens from the server's `usage` where it gives them)."""

    def __init__(self, job_id: str, model_id: str, who: str, started: float | None = None, *,
                 trimmed_messages: int = 0) -> None:
        self.job_id = job_id
        self.trimmed_messages = trimmed_messages
        self.model_id = model_id
        self.who = who
        self.started = time.monotonic() if started is None else started
        self.first: float | None = None
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] = {}
        self.pieces = 0
        self._calls: dict[int, _Call] = {}
        self._think = ThinkSplitter()

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        error = chunk.get("error")
        if error is not None:
            message = error.get("message") if isinstance(error, dict) else error
            text = " ".join(str(message).split())[:300] if message else "an error"
            raise AppError(ErrorCode.REMOTE_FAILED, f"{self.who} stopped with an error: {text}")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices:
            return []
        choice = choices[0]
        if not isinstance(choice, dict):
            raise AppError(ErrorCode.REMOTE_FAILED, f"{self.who} sent a chunk that is not OpenAI's shape.")
        if choice.get("finish_reason"):
            self.finish_reason = str(choice["finish_reason"])[:40]
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return []
        content = delta.get("content")
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        text, thought = self._think.feed(content) if isinstance(content, str) and content else ("", "")
        if isinstance(reasoning, str):
            thought += reasoning
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            self._calls_delta(calls)
        if not text and not thought:
            return []
        if self.first is None:
            self.first = time.monotonic()
        self.pieces += 1
        return [TokenDelta(job_id=self.job_id, text=text, reasoning=thought)]

    def _calls_delta(self, calls: list[Any]) -> None:
        for part in calls:
            if not isinstance(part, dict):
                continue
            index = part.get("index", len(self._calls))
            if not isinstance(index, int) or not 0 <= index < MAX_TOOL_CALLS:
                raise AppError(ErrorCode.REMOTE_FAILED, f"{self.who} sent more tool calls than gridless reads.")
            call = self._calls.setdefault(index, _Call())
            if self.first is None:
                self.first = time.monotonic()
            if isinstance(part.get("id"), str) and part["id"]:
                call.id = part["id"][:100]
            function = part.get("function")
            if isinstance(function, dict):
                if isinstance(function.get("name"), str) and function["name"]:
                    call.name = function["name"][:100]
                arguments = function.get("arguments")
                if isinstance(arguments, dict):
                    arguments = json.dumps(arguments)
                if isinstance(arguments, str):
                    call.size += len(arguments)
                    if call.size > MAX_ARGUMENTS:
                        raise AppError(ErrorCode.REMOTE_FAILED,
                                       f"{self.who} sent a tool call larger than gridless reads.")
                    call.arguments.append(arguments)

    def finish(self, *, cancelled: bool = False) -> list[Event]:
        """The last text held back, the tool calls and the result."""
        events: list[Event] = []
        text, thought = self._think.finish()
        if text or thought:
            events.append(TokenDelta(job_id=self.job_id, text=text, reasoning=thought))
        calls = []
        for index in sorted(self._calls):
            call = self._calls[index]
            if not call.name:
                continue
            arguments = "".join(call.arguments) or "{}"
            call_id = call.id or f"call_{index}"
            calls.append({"id": call_id, "name": call.name, "arguments": arguments})
            events.append(ToolCallDelta(job_id=self.job_id, index=index, id=call_id, name=call.name,
                                        arguments=arguments))
        if not cancelled and self.finish_reason is None and not calls:
            raise AppError(ErrorCode.REMOTE_FAILED, f"{self.who} ended the answer without saying it was done "
                                                    "(the connection may have been cut).")
        now = time.monotonic()
        completion = _count(self.usage.get("completion_tokens")) or self.pieces
        first = self.first if self.first is not None else now
        spent = now - first
        finish = "cancelled" if cancelled else "tool_calls" if calls else (self.finish_reason or "stop")
        result = ChatResult(finish_reason=finish, prompt_tokens=_count(self.usage.get("prompt_tokens")),
                            completion_tokens=completion, model=self.model_id,
                            trimmed_messages=self.trimmed_messages,
                            ttft_s=round(first - self.started, 4),
                            tokens_per_s=round((completion - 1) / spent, 2) if spent > 0 and completion > 1 else 0.0,
                            tool_calls=calls)
        events.append(JobDone(job_id=self.job_id, result=result))
        return events


def _count(value: Any) -> int:
    """A token count from a server's `usage`: 0 for anything that is not a whole number."""
    return int(value) if isinstance(value, int | float) and 0 <= value < 2**53 else 0
