"""POST /v1/chat/completions, streaming (server-sent events) or not, on the shared chat service."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse

from ...attachments.data_url import DataUrlError, parse_data_url
from ...attachments.images import ImageRejected, prepare_image
from ...chat.service import ChatJob, collect
from ...engines.llm import MEDIA_MARKER, ChatRequest, TokenDelta
from ...runtime.child import EngineError
from ...runtime.protocol import ErrorCode, Event, JobDone, JobFailed
from ..deps import ServicesDep
from ..errors import ApiError, error_body, error_type, status_for
from ..schemas import ChatCompletionBody

router = APIRouter()


class ClosingStreamingResponse(StreamingResponse):
    """Closes its generator when the response ends for any reason. When a client goes away
    mid-stream the framework stops iterating but leaves the generator to the garbage
    collector, so its cleanup (cancelling the job) would run at some later time."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


MAX_INLINE_IMAGE_BYTES = 20 * 1024 * 1024


def _engine_request(body: ChatCompletionBody, model_id: str, sees: bool) -> ChatRequest:
    """Text parts are read; an image part must be an inline data: URL (never fetched) and is
    given to the model at its place in the text, or refused for a model that cannot see."""
    messages: list[dict[str, str]] = []
    images: list[bytes] = []
    for i, message in enumerate(body.messages):
        role = "system" if message.role == "developer" else message.role
        if not isinstance(message.content, list):  # a marker typed into text is text, not an image
            messages.append({"role": role, "content": message.text().replace(MEDIA_MARKER, "")})
            continue
        parts: list[str] = []
        for j, part in enumerate(message.content):
            if part.type == "text":
                parts.append((part.text or "").replace(MEDIA_MARKER, ""))
                continue
            param = f"messages.{i}.content.{j}"
            if part.type != "image_url":
                raise ApiError(400, f"content part type '{part.type}' is not supported", param=param,
                               code="unsupported_content")
            images.append(_image_of(part, param, model_id, sees))
            parts.append(MEDIA_MARKER)
        messages.append({"role": role, "content": "\n".join(p for p in parts if p)})
    return ChatRequest(messages=messages, images=images, max_tokens=body.token_limit(),
                       temperature=0.7 if body.temperature is None else body.temperature,
                       top_p=0.95 if body.top_p is None else body.top_p,
                       seed=None if body.seed is None else body.seed & 0xFFFFFFFF, stop=body.stop_list())


def _image_of(part: Any, param: str, model_id: str, sees: bool) -> bytes:
    image = getattr(part, "image_url", None)
    url = image.get("url") if isinstance(image, dict) else image if isinstance(image, str) else None
    if not isinstance(url, str):
        raise ApiError(400, "an image_url part needs image_url.url", param=param, code="invalid_image_url")
    try:
        inline = parse_data_url(url, MAX_INLINE_IMAGE_BYTES)
    except DataUrlError as exc:
        raise ApiError(413 if exc.code == "image_too_large" else 400, exc.message, param=param,
                       code=exc.code) from None
    if not sees:
        raise ApiError(400, f"the model '{model_id}' cannot see images; install a vision model (Models → Vision) "
                            "and name it in `model`", param=param, code="model_cannot_see")
    try:
        return prepare_image(inline.data, max_bytes=MAX_INLINE_IMAGE_BYTES).data
    except ImageRejected as exc:
        raise ApiError(exc.status, exc.message, param=param, code=exc.code) from None


def _usage(result: dict[str, Any]) -> dict[str, Any]:
    prompt, completion = int(result.get("prompt_tokens", 0)), int(result.get("completion_tokens", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": int(result.get("cached_tokens", 0))}}


def _finish(result: dict[str, Any]) -> str:
    reason = result.get("finish_reason", "stop")
    return "length" if reason == "length" else "stop"


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionBody, services: ServicesDep) -> JSONResponse | StreamingResponse:
    model = services.chat.resolve(body.model)
    request = await asyncio.to_thread(_engine_request, body, model.id, model.projector is not None)
    job = ChatJob()
    completion_id = f"chatcmpl-{job.id}"
    created = int(time.time())
    if not body.stream:
        text, result = await collect(services.chat.stream(job, request, model_id=model.id))
        return JSONResponse({
            "id": completion_id, "object": "chat.completion", "created": created, "model": model.id,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": _finish(result), "logprobs": None}],
            "usage": _usage(result)})

    events = services.chat.stream(job, request, model_id=model.id)
    # Wait for the first event before answering 200, so that queue-full, load and
    # context errors still come back as proper HTTP errors rather than inside the stream.
    try:
        first = await anext(events)
    except StopAsyncIteration:
        raise ApiError(500, "the engine ended without an answer", code=ErrorCode.INTERNAL) from None
    if isinstance(first, JobFailed):
        raise EngineError(first.code, first.message)
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
                    yield delta({"content": event.text})
                elif isinstance(event, JobDone):
                    yield delta({}, _finish(event.result))
                    if include_usage:
                        yield chunk([], usage=_usage(event.result))
                    break
                elif isinstance(event, JobFailed):
                    status = status_for(event.code)
                    yield data(error_body(event.message, code=event.code, type_=error_type(status)))
                    break
                event = await anext(events, None)
            yield b"data: [DONE]\n\n"
        finally:
            await events.aclose()  # a client that went away cancels the job (WorkerProcess.run)

    return ClosingStreamingResponse(sse(), media_type="text/event-stream",
                                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
