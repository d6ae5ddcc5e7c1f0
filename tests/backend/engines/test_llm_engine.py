"""The llm worker with the real bundled SmolLM2 model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backend.core.errors import AppError
from backend.engines.llm import ChatRequest, ChatResult, LlmConfig, PromptReady, TokenDelta
from backend.runtime.protocol import JobDone, JobFailed
from backend.runtime.worker import WorkerProcess, WorkerSpec
from tests.threads import ENGINE_THREADS

pytestmark = pytest.mark.engine


def spec(model: Path, n_ctx: int = 2048) -> WorkerSpec:
    return WorkerSpec(name="llm", factory="backend.engines.llm:LlmEngine",
                      config=LlmConfig(model_path=str(model), n_ctx=n_ctx, n_threads=ENGINE_THREADS))


@pytest.fixture
async def llm(smollm_path: Path) -> AsyncIterator[WorkerProcess]:
    worker = WorkerProcess(spec(smollm_path))
    yield worker
    await worker.stop()


async def ask(worker: WorkerProcess, messages: list[dict[str, str]], **kw: object) \
        -> tuple[str, PromptReady | None, ChatResult]:
    text, ready, result = "", None, ChatResult()
    async for event in worker.run(ChatRequest(messages=messages, temperature=0.0, **kw)):  # type: ignore[arg-type]
        if isinstance(event, TokenDelta):
            text += event.text
        elif isinstance(event, PromptReady):
            ready = event
        elif isinstance(event, JobDone):
            result = event.result
        elif isinstance(event, JobFailed):
            raise AppError(event.code, event.message)
    return text, ready, result


async def test_streams_an_answer_with_stats(llm: WorkerProcess) -> None:
    text, ready, result = await ask(llm, [{"role": "user", "content": "What is the capital of France?"}],
                                    max_tokens=40)
    assert text.strip()
    assert ready is not None and ready.prompt_tokens > 5 and ready.cached_tokens == 0
    assert result.finish_reason in ("stop", "length")
    assert 0 < int(result.completion_tokens) <= 40  # type: ignore[call-overload]
    assert float(result.tokens_per_s) > 1  # type: ignore[arg-type]


async def test_max_tokens_and_stop_strings(llm: WorkerProcess) -> None:
    msgs = [{"role": "user", "content": "Count from 1 to 20, separated by commas."}]
    _, _, limited = await ask(llm, msgs, max_tokens=5)
    assert limited.completion_tokens == 5 and limited.finish_reason == "length"
    text, _, stopped = await ask(llm, msgs, max_tokens=80, stop=["5"])
    assert "5" not in text and stopped.finish_reason == "stop"


def conversation_turns(n: int, topic: str) -> list[str]:
    return [f"Tell me fact number {i} about {topic}, in one sentence." for i in range(1, n + 1)]


async def test_turn_five_reads_only_the_new_text(llm: WorkerProcess) -> None:
    messages: list[dict[str, str]] = [{"role": "system", "content": "You are brief."}]
    evaluated: list[int] = []
    for question in conversation_turns(5, "the moon"):
        messages.append({"role": "user", "content": question})
        answer, ready, _ = await ask(llm, messages, max_tokens=24)
        assert ready is not None
        evaluated.append(ready.prompt_tokens - ready.cached_tokens)
        messages.append({"role": "assistant", "content": answer})
    assert evaluated[0] > 20
    # the whole history is well over 100 tokens by turn 5; only the new question (plus the
    # template's few tokens and at most a re-tokenised answer tail) is read again
    assert ready.prompt_tokens > 120
    assert evaluated[4] < 40, evaluated


async def test_alternating_conversations_keep_their_cache(llm: WorkerProcess) -> None:
    chats: dict[str, list[dict[str, str]]] = {
        "a": [{"role": "system", "content": "You answer questions about astronomy briefly."}],
        "b": [{"role": "system", "content": "Tu réponds en français, brièvement, sur la cuisine."}],
    }
    topics = {"a": "the moon", "b": "bread"}
    fresh: dict[str, list[int]] = {"a": [], "b": []}
    for turn in range(4):
        for key in ("a", "b"):
            chats[key].append({"role": "user", "content": conversation_turns(4, topics[key])[turn]})
            answer, ready, _ = await ask(llm, chats[key], max_tokens=24, cache_key=key)
            assert ready is not None
            fresh[key].append(ready.prompt_tokens - ready.cached_tokens)
            chats[key].append({"role": "assistant", "content": answer})
    for key in ("a", "b"):
        assert fresh[key][-1] < 40, fresh  # switching back restored this chat's KV state


async def test_prompt_longer_than_context_is_refused(smollm_path: Path) -> None:
    worker = WorkerProcess(spec(smollm_path, n_ctx=256))
    try:
        with pytest.raises(AppError) as info:
            await ask(worker, [{"role": "user", "content": "word " * 400}])
        assert info.value.code == "context_length_exceeded"
        text, _, _ = await ask(worker, [{"role": "user", "content": "Hi"}], max_tokens=5)
        assert text  # the worker is still fine
    finally:
        await worker.stop()


async def test_long_history_is_trimmed_when_asked(smollm_path: Path) -> None:
    worker = WorkerProcess(spec(smollm_path, n_ctx=512))
    try:
        history: list[dict[str, str]] = []
        for i in range(12):
            history += [{"role": "user", "content": f"Question {i}: " + "tell me about rivers " * 6},
                        {"role": "assistant", "content": "Rivers flow to the sea. " * 5}]
        history.append({"role": "user", "content": "Summarise."})
        _, ready, result = await ask(worker, history, max_tokens=16, trim_history=True)
        assert ready is not None and ready.trimmed_messages > 0 and ready.prompt_tokens < 512
        assert result.trimmed_messages == ready.trimmed_messages
    finally:
        await worker.stop()


async def test_cancel_keeps_what_was_generated(llm: WorkerProcess) -> None:
    text = ""
    result = ChatResult()
    async for event in llm.run(ChatRequest(messages=[{"role": "user", "content": "Write a long story."}],
                                           max_tokens=400, temperature=0.0), "job-x"):
        if isinstance(event, TokenDelta):
            text += event.text
            if len(text) > 20:
                llm.cancel("job-x")
        elif isinstance(event, JobDone):
            result = event.result
    assert result.finish_reason == "cancelled"
    assert 0 < int(result.completion_tokens) < 400  # type: ignore[call-overload]


async def test_not_a_gguf_file_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_text("this is not a model")
    worker = WorkerProcess(spec(fake))
    with pytest.raises(AppError) as info:
        await worker.start()
    assert info.value.code == "model_load_failed" and "not a GGUF" in info.value.message


async def test_truncated_gguf_is_a_clear_error(tmp_path: Path, smollm_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(smollm_path.read_bytes()[:100_000])
    worker = WorkerProcess(spec(broken))
    with pytest.raises(AppError) as info:
        await worker.start()
    assert info.value.code == "model_load_failed"
    assert not worker.alive
