"""POST /v1/chat/completions, streaming (server-sent events) or not, on the shared chat service."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse

from ...attachments.data_url import parse_data_url
from ...attachments.images import prepare_image
from ...chat.engine import collect
from ...chat.tool_specs import check_schema, check_tools
from ...core.errors import AppError, ErrorCode, render_error
from ...engines.llm import MEDIA_MARKER, ChatRequest, ChatResult, TokenDelta, ToolCallDelta
from ...runtime.host import EngineJob
from ...runtime.protocol import Event, JobDone, JobFailed
from ..deps import ServicesDep
from ..schemas import ChatCompletionBody, ChatMessageBody, NamedToolChoice
from ..streaming import ClosingStreamingResponse

router = APIRouter()


MAX_INLINE_IMAGE_BYTES = 20 * 1024 * 1024


def _engine_request(body: ChatCompletionBody, model_id: str, sees: bool) -> ChatRequest:
    """Text parts are read; an image part must be an inline data: URL (never fetched) and is
    given to the model at its place in the text, or refused for a model that cannot see."""
    messages: list[dict[str, Any]] = []
    images: list[bytes] = []
    for i, message in enumerate(body.messages):
        role = "system" if message.role == "developer" else message.role
        if not isinstance(message.content, list):  # a marker typed into text is text, not an image
            messages.append({"role": role, "content": message.text().replace(MEDIA_MARKER, "")})
        else:
            parts: list[str] = []
            for j, part in enumerate(message.content):
                if part.type == "text":
                    parts.append((part.text or "").replace(MEDIA_MARKER, ""))
                    continue
                param = f"messages.{i}.content.{j}"
                if part.type != "image_url":
                    raise AppError(ErrorCode.UNSUPPORTED_CONTENT, f"content part type '{part.type}' is not supported",
                                   param=param)
                images.append(_image_of(part, param, model_id, sees))
                parts.append(MEDIA_MARKER)
            messages.append({"role": role, "content": "\n".join(p for p in parts if p)})
        _tool_fields(messages, message, i)
    tools = check_tools(body.tools) if body.tools else []
    choice = body.tool_choice
    tool_choice = choice.function.name if isinstance(choice, NamedToolChoice) else (choice or "auto")
    if tool_choice not in ("auto", "none", "required") and tool_choice not in {t["function"]["name"] for t in tools}:
        raise AppError(ErrorCode.BAD_REQUEST, f"tool_choice names '{tool_choice}', which is not in tools",
                       param="tool_choice")
    if tool_choice == "required" and not tools:
        raise AppError(ErrorCode.BAD_REQUEST, "tool_choice 'required' needs tools", param="tool_choice")
    response = body.response_format.type if body.response_format else "text"
    schema = None
    if response == "json_schema":
        if body.response_format is None or body.response_format.json_schema is None:
            raise AppError(ErrorCode.BAD_REQUEST, "response_format json_schema needs json_schema.schema",
                           param="response_format.json_schema")
        schema = body.response_format.json_schema.schema_
        check_schema(schema, "response_format.json_schema.schema")
    effort = body.reasoning_effort
    thinking = "off" if body.think is False or effort in ("none", "minimal") else \
        "on" if body.think or effort in ("low", "medium", "high") else "auto"
    return ChatRequest(messages=messages, images=images, max_tokens=body.token_limit(),
                       temperature=0.7 if body.temperature is None else body.temperature,
                       top_p=0.95 if body.top_p is None else body.top_p,
                       seed=None if body.seed is None else body.seed & 0xFFFFFFFF, stop=body.stop_list(),
                       tools=tools, tool_choice=tool_choice if tools else "none", response_format=response,
                       json_schema=schema, thinking=thinking,
                       reasoning_effort=effort if effort in ("low", "medium", "high") else None)


def _tool_fields(messages: list[dict[str, Any]], message: ChatMessageBody, i: int) -> None:
    """An assistant's calls (arguments as an object, as templates read them) and a tool
    message's call id and function name (looked up from the call it answers)."""
    target = messages[-1]
    if message.role == "assistant" and message.tool_calls:
        calls = []
        for j, call in enumerate(message.tool_calls):
            try:
                arguments = json.loads(call.function.arguments or "{}")
            except json.JSONDecodeError:
                arguments = None
            if not isinstance(arguments, dict):
                raise AppError(ErrorCode.BAD_REQUEST, "a tool call's arguments are a JSON object in text",
                               param=f"messages.{i}.tool_calls.{j}.function.arguments")
            calls.append({"id": call.id, "type": "function",
                          "function": {"name": call.function.name, "arguments": arguments}})
        target["tool_calls"] = calls
    elif message.role == "tool":
        if not message.tool_call_id:
            raise AppError(ErrorCode.BAD_REQUEST, "a tool message needs tool_call_id", param=f"messages.{i}")
        target["tool_call_id"] = message.tool_call_id
        target["name"] = next((c["function"]["name"] for m in reversed(messages) for c in m.get("tool_calls", [])
                               if c["id"] == message.tool_call_id), "")


def _image_of(part: Any, param: str, model_id: str, sees: bool) -> bytes:
    image = getattr(part, "image_url", None)
    url = image.get("url") if isinstance(image, dict) else image if isinstance(image, str) else None
    if not isinstance(url, str):
        raise AppError(ErrorCode.INVALID_IMAGE_URL, "an image_url part needs image_url.url", param=param)
    try:
        inline = parse_data_url(url, MAX_INLINE_IMAGE_BYTES)
        if not sees:
            raise AppError(ErrorCode.MODEL_CANNOT_SEE, f"the model '{model_id}' cannot see images; install a vision "
                                                       "model (Models → Vision) and name it in `model`")
        return prepare_image(inline.data, max_bytes=MAX_INLINE_IMAGE_BYTES).data
    except AppError as exc:
        exc.param = param
        raise


def _usage(result: ChatResult) -> dict[str, Any]:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": result.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": result.reasoning_tokens}}


def _finish(result: ChatResult) -> str:
    return result.finish_reason if result.finish_reason in ("length", "tool_calls") else "stop"


def _call(call: dict[str, str] | ToolCallDelta, index: int | None = None) -> dict[str, Any]:
    if isinstance(call, ToolCallDelta):
        index, call = call.index, {"id": call.id, "name": call.name, "arguments": call.arguments}
    out: dict[str, Any] = {"id": call["id"], "type": "function",
                           "function": {"name": call["name"], "arguments": call["arguments"]}}
    return out if index is None else {"index": index, **out}


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionBody, services: ServicesDep) -> JSONResponse | StreamingResponse:
    model = services.answers.resolve(body.model)
    request = await asyncio.to_thread(_engine_request, body, model.id, services.answers.sees(model))
    job = EngineJob()
    completion_id = f"chatcmpl-{job.id}"
    created = int(time.time())
    if not body.stream:
        reply = await collect(services.answers.stream(request, job, model_id=model.id))
        message: dict[str, Any] = {"role": "assistant",
                                   "content": reply.text if reply.text or not reply.result.tool_calls else None}
        if reply.reasoning:
            message["reasoning_content"] = reply.reasoning
        if reply.result.tool_calls:
            message["tool_calls"] = [_call(c) for c in reply.result.tool_calls]
        return JSONResponse({
            "id": completion_id, "object": "chat.completion", "created": created, "model": model.id,
            "choices": [{"index": 0, "message": message, "finish_reason": _finish(reply.result), "logprobs": None}],
            "usage": _usage(reply.result)})

    events = services.answers.stream(request, job, model_id=model.id)
    # Wait for the first event before answering 200, so that queue-full, load and
    # context errors still come back as proper HTTP errors rather than inside the stream.
    try:
        first = await anext(events)
    except StopAsyncIteration:
        raise AppError(ErrorCode.INTERNAL, "the engine ended without an answer") from None
    if isinstance(first, JobFailed):
        raise AppError(first.code, first.message)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)

    def data(payload: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return data({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                     "model": model.id, "choices": choices, **extra})

    def delta(content: dict[str, Any], finish: str | None = None) -> bytes:
        return chunk([{"index": 0, "delta": content, "finish_reason": finish, "logprobs": None}])

    async def sse() -> AsyncIterator[bytes]:
        yield delta({"role": "assistant", "content": ""})
        event: Event | None = first
        try:
            while event is not None:
                if isinstance(event, TokenDelta):
                    if event.reasoning:
                        yield delta({"reasoning_content": event.reasoning})
                    if event.text:
                        yield delta({"content": event.text})
                elif isinstance(event, ToolCallDelta):
                    yield delta({"tool_calls": [_call(event)]})
                elif isinstance(event, JobDone):
                    result = event.result if isinstance(event.result, ChatResult) else ChatResult()
                    yield delta({}, _finish(result))
                    if include_usage:
                        yield chunk([], usage=_usage(result))
                    break
                elif isinstance(event, JobFailed):
                    yield b"data: " + render_error(AppError(event.code, event.message), "/v1")[0] + b"\n\n"
                    break
                event = await anext(events, None)
            yield b"data: [DONE]\n\n"
        finally:
            await events.aclose()  # a client that went away cancels the job (WorkerProcess.run)

    return ClosingStreamingResponse(sse(), media_type="text/event-stream",
                                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
