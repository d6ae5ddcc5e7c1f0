"""The llm worker seeing an image: the bundled SmolLM2 with a tiny random-weight projector.

The projector's weights are noise, so the answers mean nothing; what is checked is the real
path: the image is decoded and evaluated (its token count), an answer streams, a follow-up
about the same image reuses its evaluation, and a model without a projector refuses images.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from backend.core.errors import AppError
from backend.engines.llm import MEDIA_MARKER, ChatRequest, ChatResult, LlmConfig, PromptReady, TokenDelta
from backend.runtime.protocol import JobDone, JobFailed
from backend.runtime.worker import WorkerProcess, WorkerSpec
from tests.ggufs import write_tiny_mmproj
from tests.threads import ENGINE_THREADS

pytestmark = pytest.mark.engine
IMAGE_TOKENS = 16
"""The tiny projector: 224 px images in 14 px patches, pooled 4 × 4."""


def photo(color: str = "teal") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (96, 64), color).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
async def vision(smollm_path: Path, tmp_path: Path) -> AsyncIterator[WorkerProcess]:
    projector = write_tiny_mmproj(tmp_path / "mmproj-tiny.gguf")
    worker = WorkerProcess(WorkerSpec(name="llm", factory="backend.engines.llm:LlmEngine", config=LlmConfig(
        model_path=str(smollm_path), projector_path=str(projector), n_ctx=2048, n_threads=ENGINE_THREADS)))
    yield worker
    await worker.stop()


async def ask(worker: WorkerProcess, messages: list[dict[str, str]], images: list[bytes]) \
        -> tuple[str, PromptReady, ChatResult, int]:
    text, ready, result, deltas = "", None, ChatResult(), 0
    async for event in worker.run(ChatRequest(messages=messages, images=images, temperature=0.0, max_tokens=12)):
        if isinstance(event, TokenDelta):
            text += event.text
            deltas += 1
        elif isinstance(event, PromptReady):
            ready = event
        elif isinstance(event, JobDone):
            result = event.result
        elif isinstance(event, JobFailed):
            raise AppError(event.code, event.message)
    assert ready is not None
    return text, ready, result, deltas


async def test_an_image_is_evaluated_and_an_answer_streams(vision: WorkerProcess) -> None:
    question = [{"role": "user", "content": f"{MEDIA_MARKER}\nWhat is in this photo?"}]
    _, ready, result, deltas = await ask(vision, question, [photo()])
    assert vision.info["vision"] is True
    assert ready.image_tokens == IMAGE_TOKENS and result.image_tokens == IMAGE_TOKENS
    assert ready.prompt_tokens > IMAGE_TOKENS and ready.cached_tokens == 0
    completion = result.completion_tokens
    assert isinstance(completion, int) and completion > 0 and deltas > 0


async def test_a_follow_up_about_the_same_image_reuses_its_evaluation(vision: WorkerProcess) -> None:
    image = photo("orange")
    first = [{"role": "user", "content": f"{MEDIA_MARKER}\nDescribe it."}]
    answer, ready, _, _ = await ask(vision, first, [image])
    follow_up = [*first, {"role": "assistant", "content": answer},
                 {"role": "user", "content": "And what colour is it?"}]
    _, again, result, _ = await ask(vision, follow_up, [image])
    assert again.image_tokens == 0 and result.image_tokens == 0  # the image's evaluation was kept
    assert again.cached_tokens >= ready.prompt_tokens - 1


async def test_another_image_is_evaluated_afresh(vision: WorkerProcess) -> None:
    question = [{"role": "user", "content": f"{MEDIA_MARKER}\nWhat is this?"}]
    await ask(vision, question, [photo("red")])
    _, ready, _, _ = await ask(vision, question, [photo("blue")])
    assert ready.image_tokens == IMAGE_TOKENS


async def test_markers_and_images_must_match(vision: WorkerProcess) -> None:
    with pytest.raises(AppError) as caught:
        await ask(vision, [{"role": "user", "content": "No marker here."}], [photo()])
    assert caught.value.code == "bad_request" and "1 image(s) for 0 place(s)" in caught.value.message


async def test_an_undecodable_image_is_a_clear_error(vision: WorkerProcess) -> None:
    with pytest.raises(AppError) as caught:
        await ask(vision, [{"role": "user", "content": f"{MEDIA_MARKER} what?"}], [b"\x89PNG broken"])
    assert caught.value.code == "bad_request" and "could not be decoded" in caught.value.message
    _, ready, _, _ = await ask(vision, [{"role": "user", "content": f"{MEDIA_MARKER} and now?"}], [photo()])
    assert ready.image_tokens == IMAGE_TOKENS  # the worker is fine afterwards


async def test_a_model_without_a_projector_refuses_images(smollm_path: Path) -> None:
    worker = WorkerProcess(WorkerSpec(name="llm", factory="backend.engines.llm:LlmEngine",
                                      config=LlmConfig(model_path=str(smollm_path), n_ctx=1024,
                                                       n_threads=ENGINE_THREADS)))
    try:
        with pytest.raises(AppError) as caught:
            await ask(worker, [{"role": "user", "content": f"{MEDIA_MARKER} what?"}], [photo()])
        assert caught.value.code == "bad_request" and "cannot see images" in caught.value.message
        assert worker.info["vision"] is False
    finally:
        await worker.stop()


async def test_a_projector_of_another_width_is_refused(smollm_path: Path, tmp_path: Path) -> None:
    projector = write_tiny_mmproj(tmp_path / "mmproj-640.gguf", embedding_width=640)
    worker = WorkerProcess(WorkerSpec(name="llm", factory="backend.engines.llm:LlmEngine", config=LlmConfig(
        model_path=str(smollm_path), projector_path=str(projector), n_ctx=1024, n_threads=ENGINE_THREADS)))
    try:
        with pytest.raises(AppError) as caught:
            await worker.start()
        assert caught.value.code == "model_load_failed"
    finally:
        await worker.stop()
