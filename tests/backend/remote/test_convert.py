"""A `ChatRequest` into OpenAI's request, and streamed chunks in the shapes real servers send back
into the engine's own events."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image

from backend.core.errors import AppError, ErrorCode
from backend.engines.llm import MEDIA_MARKER, ChatRequest, ChatResult, TokenDelta, ToolCallDelta
from backend.remote import convert
from backend.remote.convert import CHARS_PER_TOKEN, ChunkReader, ThinkSplitter, openai_request, trimmed
from backend.runtime.protocol import Event, JobDone

from .fake_remote import llama_chunk

M = MEDIA_MARKER


def picture(kind: str, color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (3, 2), color).save(out, kind)
    return out.getvalue()


PNG = picture("PNG", (255, 0, 0))
JPEG = picture("JPEG", (0, 128, 255))
PNG2 = picture("PNG", (0, 255, 0))


def decoded(part: dict[str, Any]) -> tuple[str, bytes]:
    assert part["type"] == "image_url"
    url = part["image_url"]["url"]
    head, _, data = url.partition(",")
    assert head.startswith("data:") and head.endswith(";base64")
    return head[5:-7], base64.b64decode(data)


# the request ----------------------------------------------------------------------------------------

def test_photos_in_the_places_of_their_markers() -> None:
    request = ChatRequest(messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": f"Compare {M} with {M} please"},
        {"role": "assistant", "content": "The first is red."},
        {"role": "user", "content": f"{M}and this one?"},
    ], images=[PNG, JPEG, PNG2])
    body = openai_request(request, "qwen3-32b")
    messages = body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["content"] == "Be brief." and messages[2]["content"] == "The first is red."

    first = messages[1]["content"]
    assert [p["type"] for p in first] == ["text", "image_url", "text", "image_url", "text"]
    assert [p["text"] for p in first if p["type"] == "text"] == ["Compare ", " with ", " please"]
    assert decoded(first[1]) == ("image/png", PNG)
    assert decoded(first[3]) == ("image/jpeg", JPEG)
    last = messages[3]["content"]
    assert [p["type"] for p in last] == ["image_url", "text"]
    assert decoded(last[0]) == ("image/png", PNG2) and last[1]["text"] == "and this one?"
    assert request.images == [PNG, JPEG, PNG2]  # the request itself is left as it was
    assert body["model"] == "qwen3-32b"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_tool_calls_and_results() -> None:
    request = ChatRequest(messages=[
        {"role": "user", "content": "Weather in Zürich?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather",
                                                              "arguments": {"city": "Zürich", "days": 2}}},
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": '{"zone": "CET"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "12 °C"},
        {"role": "tool", "tool_call_id": "call_2", "name": "get_time", "content": "10:00"},
    ], tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}])
    messages = openai_request(request, "m")["messages"]
    calls = messages[1]["tool_calls"]
    assert [c["id"] for c in calls] == ["call_1", "call_2"]
    assert all(c["type"] == "function" for c in calls)
    assert isinstance(calls[0]["function"]["arguments"], str)
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Zürich", "days": 2}
    assert calls[1]["function"] == {"name": "get_time", "arguments": '{"zone": "CET"}'}
    assert messages[2] == {"role": "tool", "content": "12 °C", "tool_call_id": "call_1"}
    assert messages[3]["tool_call_id"] == "call_2"
    assert "tool_calls" not in messages[0] and "tool_call_id" not in messages[1]


@pytest.mark.parametrize(("choice", "sent"), [
    ("auto", "auto"), ("none", "none"), ("required", "required"),
    ("get_weather", {"type": "function", "function": {"name": "get_weather"}}),
])
def test_tool_choice(choice: str, sent: Any) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    body = openai_request(ChatRequest(messages=[{"role": "user", "content": "hi"}], tools=tools,
                                      tool_choice=choice), "m")
    assert body["tools"] == tools and body["tool_choice"] == sent


def test_no_tools_no_choice() -> None:
    body = openai_request(ChatRequest(messages=[{"role": "user", "content": "hi"}], tool_choice="required"), "m")
    assert "tools" not in body and "tool_choice" not in body


def test_response_formats() -> None:
    def sent(**kw: Any) -> Any:
        return openai_request(ChatRequest(messages=[{"role": "user", "content": "hi"}], **kw), "m").get(
            "response_format")

    schema = {"name": "answer", "schema": {"type": "object", "properties": {"n": {"type": "integer"}}}}
    assert sent() is None
    assert sent(response_format="json_object") == {"type": "json_object"}
    assert sent(response_format="json_schema", json_schema=schema) == {"type": "json_schema", "json_schema": schema}


def test_thinking_and_sampling() -> None:
    def body(**kw: Any) -> dict[str, Any]:
        return openai_request(ChatRequest(messages=[{"role": "user", "content": "hi"}], **kw), "m")

    assert body(thinking="on")["chat_template_kwargs"] == {"enable_thinking": True}
    assert body(thinking="off")["chat_template_kwargs"] == {"enable_thinking": False}
    assert "chat_template_kwargs" not in body(thinking="auto")
    sampled = body(temperature=0.2, top_p=0.5, top_k=20, max_tokens=64, seed=7, stop=["a", "b", "c", "d", "e"],
                   reasoning_effort="low")
    assert (sampled["temperature"], sampled["top_p"], sampled["top_k"]) == (0.2, 0.5, 20)
    assert (sampled["max_tokens"], sampled["seed"], sampled["reasoning_effort"]) == (64, 7, "low")
    assert sampled["stop"] == ["a", "b", "c", "d"]  # OpenAI's own limit
    plain = body()
    assert not {"max_tokens", "seed", "stop", "reasoning_effort"} & set(plain)


# the stream -------------------------------------------------------------------------------------------

def read(chunks: Iterable[dict[str, Any]], *, cancelled: bool = False) -> tuple[list[Event], ChatResult]:
    reader = ChunkReader("job-1", "e1/big-model", "box")
    events: list[Event] = []
    for chunk in chunks:
        events += reader.feed(chunk)
    events += reader.finish(cancelled=cancelled)
    done = events[-1]
    assert isinstance(done, JobDone) and isinstance(done.result, ChatResult)
    assert all(e.job_id == "job-1" for e in events)
    return events, done.result


def texts(events: list[Event]) -> tuple[str, str]:
    deltas = [e for e in events if isinstance(e, TokenDelta)]
    return "".join(d.text for d in deltas), "".join(d.reasoning for d in deltas)


LLAMA_SERVER = [  # llama-server with a thinking model: reasoning_content, then usage with empty choices
    {"choices": [{"finish_reason": None, "index": 0, "delta": {"role": "assistant", "content": None}}],
     "created": 1735689600, "id": "chatcmpl-x1", "model": "qwen3", "system_fingerprint": "b6000-8a4e4b9",
     "object": "chat.completion.chunk"},
    {"choices": [{"finish_reason": None, "index": 0, "delta": {"reasoning_content": "The user"}}],
     "created": 1735689600, "id": "chatcmpl-x1", "model": "qwen3", "object": "chat.completion.chunk"},
    {"choices": [{"finish_reason": None, "index": 0, "delta": {"reasoning_content": " greets."}}],
     "created": 1735689600, "id": "chatcmpl-x1", "model": "qwen3", "object": "chat.completion.chunk"},
    {"choices": [{"finish_reason": None, "index": 0, "delta": {"content": "Hi"}}],
     "created": 1735689600, "id": "chatcmpl-x1", "model": "qwen3", "object": "chat.completion.chunk"},
    {"choices": [{"finish_reason": None, "index": 0, "delta": {"content": " there!"}}],
     "created": 1735689600, "id": "chatcmpl-x1", "model": "qwen3", "object": "chat.completion.chunk"},
    {"choices": [{"finish_reason": "stop", "index": 0, "delta": {}}],
     "created": 1735689600, "id": "chatcmpl-x1", "model": "qwen3", "object": "chat.completion.chunk"},
    {"choices": [], "created": 1735689600, "id": "chatcmpl-x1", "model": "qwen3", "object": "chat.completion.chunk",
     "usage": {"completion_tokens": 17, "prompt_tokens": 12, "total_tokens": 29},
     "timings": {"prompt_n": 12, "prompt_ms": 40.1, "predicted_n": 17, "predicted_per_second": 35.2}},
]

VLLM = [
    {"id": "chatcmpl-9f", "object": "chat.completion.chunk", "created": 1735689600, "model": "Qwen/Qwen3-8B",
     "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                  "finish_reason": None}]},
    {"id": "chatcmpl-9f", "object": "chat.completion.chunk", "created": 1735689600, "model": "Qwen/Qwen3-8B",
     "choices": [{"index": 0, "delta": {"reasoning_content": "Short"}, "logprobs": None, "finish_reason": None}]},
    {"id": "chatcmpl-9f", "object": "chat.completion.chunk", "created": 1735689600, "model": "Qwen/Qwen3-8B",
     "choices": [{"index": 0, "delta": {"content": "Paris"}, "logprobs": None, "finish_reason": None}]},
    {"id": "chatcmpl-9f", "object": "chat.completion.chunk", "created": 1735689600, "model": "Qwen/Qwen3-8B",
     "choices": [{"index": 0, "delta": {"content": ""}, "logprobs": None, "finish_reason": "length",
                  "stop_reason": None}]},
    {"id": "chatcmpl-9f", "object": "chat.completion.chunk", "created": 1735689600, "model": "Qwen/Qwen3-8B",
     "choices": [], "usage": {"prompt_tokens": 10, "total_tokens": 13, "completion_tokens": 3}},
]

OLLAMA = [  # Ollama's /v1: thinking as `reasoning`, every delta with its role
    {"id": "chatcmpl-412", "object": "chat.completion.chunk", "created": 1735689600, "model": "qwen3:8b",
     "system_fingerprint": "fp_ollama", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "",
                                                                          "reasoning": "Okay,"},
                                                     "finish_reason": None}]},
    {"id": "chatcmpl-412", "object": "chat.completion.chunk", "created": 1735689600, "model": "qwen3:8b",
     "system_fingerprint": "fp_ollama", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "",
                                                                          "reasoning": " simple."},
                                                     "finish_reason": None}]},
    {"id": "chatcmpl-412", "object": "chat.completion.chunk", "created": 1735689600, "model": "qwen3:8b",
     "system_fingerprint": "fp_ollama", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "4"},
                                                     "finish_reason": None}]},
    {"id": "chatcmpl-412", "object": "chat.completion.chunk", "created": 1735689600, "model": "qwen3:8b",
     "system_fingerprint": "fp_ollama", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                     "finish_reason": "stop"}]},
    {"id": "chatcmpl-412", "object": "chat.completion.chunk", "created": 1735689600, "model": "qwen3:8b",
     "system_fingerprint": "fp_ollama", "choices": [],
     "usage": {"prompt_tokens": 14, "completion_tokens": 25, "total_tokens": 39}},
]


def test_llama_server_stream() -> None:
    events, result = read(LLAMA_SERVER)
    assert texts(events) == ("Hi there!", "The user greets.")
    assert isinstance(events[0], TokenDelta) and events[0].reasoning == "The user" and events[0].text == ""
    assert result.finish_reason == "stop" and result.model == "e1/big-model"
    assert (result.prompt_tokens, result.completion_tokens) == (12, 17)
    assert result.tool_calls == []


def test_vllm_stream() -> None:
    events, result = read(VLLM)
    assert texts(events) == ("Paris", "Short")
    assert result.finish_reason == "length"
    assert (result.prompt_tokens, result.completion_tokens) == (10, 3)


def test_ollama_stream() -> None:
    events, result = read(OLLAMA)
    assert texts(events) == ("4", "Okay, simple.")
    assert result.finish_reason == "stop" and result.completion_tokens == 25


def test_think_block_inside_content() -> None:
    pieces = ["<think>", "\nThe user", " asks.\n", "</think>", "\n\n", "Sure", "."]
    chunks = [llama_chunk({"content": p}) for p in pieces] + [llama_chunk({}, "stop")]
    events, _ = read(chunks)
    answer, thinking = texts(events)
    assert answer == "Sure."
    assert thinking.strip() == "The user asks."


THINKING_ANSWERS = [
    "<think>\nLet me see: 2 < 3 and </thin is not the end.\n</think>\n\nThe answer is <b>2</b>.",
    "  <think>short</think>Straight on",
    "<think></think>\n\nEmpty thought",
    "<think>never closed, all thinking",
    "No thinking <think> here",
    "<thin",
    "<",
    "\n",
    "",
]


@pytest.mark.parametrize("whole", THINKING_ANSWERS)
def test_think_splitter_cut_anywhere(whole: str) -> None:
    def split(pieces: list[str]) -> tuple[str, str]:
        splitter = ThinkSplitter()
        answer, thinking = [], []
        for piece in pieces:
            a, t = splitter.feed(piece)
            answer.append(a)
            thinking.append(t)
        a, t = splitter.finish()
        return "".join(answer) + a, "".join(thinking) + t

    expected = split([whole])
    for cut in range(len(whole) + 1):
        assert split([whole[:cut], whole[cut:]]) == expected, (whole, cut)
    for cut in range(len(whole) + 1):
        for second in range(cut, len(whole) + 1):
            assert split([whole[:cut], whole[cut:second], whole[second:]]) == expected, (whole, cut, second)
    assert split(list(whole)) == expected


@pytest.mark.parametrize(("whole", "answer", "thinking"), [
    (THINKING_ANSWERS[0], "The answer is <b>2</b>.", "\nLet me see: 2 < 3 and </thin is not the end.\n"),
    (THINKING_ANSWERS[1], "Straight on", "short"),
    (THINKING_ANSWERS[2], "Empty thought", ""),
    (THINKING_ANSWERS[3], "", "never closed, all thinking"),
    (THINKING_ANSWERS[4], "No thinking <think> here", ""),
    ("<thin", "<thin", ""),
    ("\n", "\n", ""),
])
def test_think_splitter_answers(whole: str, answer: str, thinking: str) -> None:
    splitter = ThinkSplitter()
    a, t = splitter.feed(whole)
    rest = splitter.finish()
    assert (a + rest[0], t + rest[1]) == (answer, thinking)


def test_tool_call_deltas() -> None:
    first_args = '{"city": "Zürich", "unit": "celsius"}'
    second_args = '{"zone": "Europe/Zurich"}'
    chunks = [llama_chunk({"role": "assistant", "content": None})]
    chunks.append(llama_chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                               "function": {"name": "get_weather", "arguments": ""}}]}))
    chunks += [llama_chunk({"tool_calls": [{"index": 0, "function": {"arguments": first_args[i:i + 3]}}]})
               for i in range(0, len(first_args), 3)]
    chunks.append(llama_chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                                               "function": {"name": "get_time", "arguments": ""}}]}))
    chunks += [llama_chunk({"tool_calls": [{"index": 1, "function": {"arguments": second_args[i:i + 2]}}]})
               for i in range(0, len(second_args), 2)]
    chunks.append(llama_chunk({}, "tool_calls"))
    events, result = read(chunks)
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [(c.index, c.id, c.name, json.loads(c.arguments)) for c in calls] == [
        (0, "call_a", "get_weather", {"city": "Zürich", "unit": "celsius"}),
        (1, "call_b", "get_time", {"zone": "Europe/Zurich"})]
    assert result.finish_reason == "tool_calls"
    assert result.tool_calls == [{"id": "call_a", "name": "get_weather", "arguments": first_args},
                                 {"id": "call_b", "name": "get_time", "arguments": second_args}]
    assert texts(events) == ("", "")


def test_tool_calls_without_finish_reason_are_an_ending() -> None:
    # some servers end a tool call turn with the calls alone: the calls are the answer
    chunks = [llama_chunk({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": {"a": 1}}}]})]
    _, result = read(chunks)
    assert result.finish_reason == "tool_calls"
    assert result.tool_calls == [{"id": "c", "name": "f", "arguments": '{"a": 1}'}]


def test_error_chunk() -> None:
    reader = ChunkReader("job-1", "e1/m", "box")
    reader.feed(llama_chunk({"content": "Hel"}))
    with pytest.raises(AppError) as caught:
        reader.feed({"error": {"code": 500, "message": "Context size has been exceeded." + " x" * 400,
                               "type": "server_error"}})
    assert caught.value.code == ErrorCode.REMOTE_FAILED
    assert "box stopped with an error: Context size has been exceeded." in caught.value.message
    assert len(caught.value.message) < 400
    with pytest.raises(AppError) as caught:
        ChunkReader("j", "m", "box").feed({"error": "overloaded"})
    assert caught.value.code == ErrorCode.REMOTE_FAILED and caught.value.message.endswith("overloaded")


def test_not_the_shape() -> None:
    with pytest.raises(AppError) as caught:
        ChunkReader("j", "m", "box").feed({"choices": ["text"]})
    assert caught.value.code == ErrorCode.REMOTE_FAILED
    with pytest.raises(AppError) as caught:
        ChunkReader("j", "m", "box").feed({"choices": [{"delta": {"tool_calls": [{"index": 99}]}}]})
    assert caught.value.code == ErrorCode.REMOTE_FAILED


def test_no_finish_reason() -> None:
    chunks = [llama_chunk({"content": "Half an ans"})]
    reader = ChunkReader("job-1", "e1/m", "box")
    for chunk in chunks:
        reader.feed(chunk)
    with pytest.raises(AppError) as caught:
        reader.finish()
    assert caught.value.code == ErrorCode.REMOTE_FAILED
    assert "without saying it was done" in caught.value.message
    events, result = read(chunks, cancelled=True)
    assert result.finish_reason == "cancelled"
    assert texts(events)[0] == "Half an ans"


def test_usage_that_is_not_a_number() -> None:
    # a misbehaving server's usage is left aside (the pieces are counted), never a crash
    for usage in ({"completion_tokens": "many", "prompt_tokens": [1]}, {"completion_tokens": 1e400},
                  {"completion_tokens": -5, "prompt_tokens": None}, {"completion_tokens": {"n": 1}}):
        chunks = [llama_chunk({"content": "a"}), llama_chunk({"content": "b"}), llama_chunk({}, "stop"),
                  llama_chunk(None, usage=usage)]
        _, result = read(chunks)
        assert (result.completion_tokens, result.prompt_tokens) == (2, 0), usage


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


def test_speed_and_first_token(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(100.0)
    monkeypatch.setattr(convert, "time", SimpleNamespace(monotonic=clock.monotonic))
    reader = ChunkReader("job-1", "e1/m", "box")  # started at 100
    clock.now = 101.0
    assert reader.feed(llama_chunk({"role": "assistant", "content": None})) == []
    clock.now = 102.5  # the first piece
    reader.feed(llama_chunk({"content": "One"}))
    for word in (" two", " three"):
        clock.now += 0.5
        reader.feed(llama_chunk({"content": word}))
    clock.now = 106.5
    reader.feed(llama_chunk({}, "stop"))
    done = reader.finish()[-1]
    assert isinstance(done, JobDone) and isinstance(done.result, ChatResult)
    assert done.result.ttft_s == 2.5
    assert done.result.completion_tokens == 3  # counted pieces, without usage
    assert done.result.tokens_per_s == 0.5  # (3 - 1) tokens after the first, in 4 s

    clock.now = 0.0
    reader = ChunkReader("job-2", "e1/m", "box", started=0.0)
    clock.now = 1.0
    reader.feed(llama_chunk({"content": "Many tokens in one piece"}))
    clock.now = 3.0
    reader.feed(llama_chunk({}, "stop"))
    reader.feed(llama_chunk(None, usage={"completion_tokens": 41, "prompt_tokens": 5}))
    done = reader.finish()[-1]
    assert isinstance(done, JobDone) and isinstance(done.result, ChatResult)
    assert done.result.completion_tokens == 41  # the server's count over the pieces
    assert done.result.tokens_per_s == 20.0 and done.result.ttft_s == 1.0
    assert done.result.prompt_tokens == 5


# --- a long conversation trimmed to the context it may use ------------------------------------

def _turns(count: int, size: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."}]
    for i in range(count):
        messages += [{"role": "user", "content": f"q{i} " + "x" * size},
                     {"role": "assistant", "content": f"a{i} " + "y" * size}]
    return messages


def test_trimming_drops_whole_turns_from_the_oldest_and_keeps_the_system_message_and_the_last() -> None:
    messages = [*_turns(6, 600), {"role": "user", "content": "the question"}]
    request = ChatRequest(messages=messages, context_limit=1000, max_tokens=200, trim_history=True)
    kept, left_out = trimmed(request)
    assert kept.messages[0] == messages[0] and kept.messages[-1] == messages[-1]
    assert left_out == len(messages) - len(kept.messages) and left_out % 2 == 0 and left_out > 0
    assert kept.messages[1]["role"] == "user"  # a turn starts with its question
    assert sum(len(m["content"]) for m in kept.messages) <= 800 * CHARS_PER_TOKEN
    assert kept.messages[1:] == messages[1 + left_out:]


def test_nothing_is_trimmed_when_it_fits_or_when_not_asked() -> None:
    messages = [*_turns(2, 50), {"role": "user", "content": "and now?"}]
    fits = ChatRequest(messages=messages, context_limit=4096, max_tokens=512, trim_history=True)
    assert trimmed(fits) == (fits, 0)
    long = [*_turns(8, 2000), {"role": "user", "content": "and now?"}]
    unasked = ChatRequest(messages=long, context_limit=1000, trim_history=False)
    assert trimmed(unasked) == (unasked, 0)


def test_a_turn_left_out_takes_its_photos_and_its_tool_calls_with_it() -> None:
    first_photo, second_photo = b"\x89PNG first", b"\x89PNG second"
    messages = [
        {"role": "user", "content": f"{MEDIA_MARKER}what is this? " + "x" * 3000},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "calc", "arguments": {"x": 1}}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "1"},
        {"role": "assistant", "content": "a cat"},
        {"role": "user", "content": f"{MEDIA_MARKER}and this?"},
    ]
    request = ChatRequest(messages=messages, images=[first_photo, second_photo], context_limit=1000,
                          max_tokens=100, trim_history=True)
    kept, left_out = trimmed(request)
    assert left_out == 4 and kept.messages == messages[4:] and kept.images == [second_photo]
    body = openai_request(kept, "m")
    assert [p["type"] for p in body["messages"][0]["content"]] == ["image_url", "text"]


def test_the_reader_reports_what_was_left_out() -> None:
    reader = ChunkReader("j", "e/m", "Laptop", trimmed_messages=4)
    reader.feed({"choices": [{"delta": {"content": "hi"}, "finish_reason": "stop"}]})
    done = reader.finish()[-1]
    assert isinstance(done, JobDone) and isinstance(done.result, ChatResult)
    assert done.result.trimmed_messages == 4
