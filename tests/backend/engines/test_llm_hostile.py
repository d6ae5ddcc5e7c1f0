"""The llm worker against model files made to stop it: a chat template that never ends, and
headers the worker's own check refuses before llama.cpp sees them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from backend.core.errors import AppError, ErrorCode
from backend.engines.llm import MEDIA_MARKER, ChatRequest, LlmConfig, TokenDelta
from backend.models.gguf_info import read_gguf_info
from backend.runtime.protocol import JobDone, JobFailed
from backend.runtime.worker import WorkerProcess, WorkerSpec
from tests.ggufs import chat_template_of, copy_with_chat_template, write_tiny_mmproj
from tests.hostile_ggufs import HOSTILE
from tests.threads import ENGINE_THREADS

pytestmark = pytest.mark.engine
ENDLESS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
"""10^10 steps: each range is within the sandbox's limit of 100000, the two together are not."""
LIMIT_S = 1.0
HELLO = [{"role": "user", "content": "Say hello."}]
HANG_GUARD_S = 60


@pytest.fixture(scope="module")
def rewritten(smollm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """The bundled model rewritten with its own template ("same", the control) and with the endless
    loop before it ("endless")."""
    folder = tmp_path_factory.mktemp("templates")
    own = chat_template_of(smollm_path)
    yield {"same": copy_with_chat_template(smollm_path, folder / "same.gguf", own),
           "endless": copy_with_chat_template(smollm_path, folder / "endless.gguf", ENDLESS + own)}
    for path in folder.iterdir():
        path.unlink()


@pytest.fixture
def endless(rewritten: dict[str, Path]) -> Path:
    return rewritten["endless"]


def worker_for(model: Path, projector: Path | None = None) -> WorkerProcess:
    return WorkerProcess(WorkerSpec(name="llm", factory="backend.engines.llm:LlmEngine", config=LlmConfig(
        model_path=str(model), projector_path=str(projector) if projector else None, n_ctx=1024,
        n_threads=ENGINE_THREADS, template_time_limit_s=LIMIT_S)))


async def answer(worker: WorkerProcess, request: ChatRequest) -> str:
    text = ""
    async with asyncio.timeout(HANG_GUARD_S):  # only catches a hang; the limit under test is LIMIT_S
        async for event in worker.run(request):
            if isinstance(event, TokenDelta):
                text += event.text
            elif isinstance(event, JobFailed):
                raise AppError(event.code, event.message)
            elif isinstance(event, JobDone):
                return text
    raise AssertionError("the job ended without JobDone or JobFailed")


async def test_the_rewritten_copies_are_the_same_model(rewritten: dict[str, Path], smollm_path: Path) -> None:
    """The control: only the template differs, the copy with the model's own template answers, and
    llama.cpp loads the endless one (it checks every tensor's place in the file); so what fails
    below is the template, not a broken file."""
    original, copy = read_gguf_info(smollm_path), read_gguf_info(rewritten["endless"])
    assert copy.summary() == original.summary()
    assert copy.metadata["tokenizer.chat_template"] == ENDLESS + original.metadata["tokenizer.chat_template"]
    same = worker_for(rewritten["same"])
    try:
        assert (await answer(same, ChatRequest(messages=HELLO, max_tokens=8, temperature=0.0))).strip()
    finally:
        await same.stop()
    endless = worker_for(rewritten["endless"])
    try:
        async with asyncio.timeout(HANG_GUARD_S):
            await endless.start()
        assert endless.info["n_ctx_train"] == original.trained_context
    finally:
        await endless.stop()


async def test_an_endless_chat_template_fails_the_request_within_its_limit(endless: Path) -> None:
    worker = worker_for(endless)
    try:
        for _ in range(2):  # and again: the worker was interrupted, not stuck or killed
            with pytest.raises(AppError) as failed:
                await answer(worker, ChatRequest(messages=HELLO, max_tokens=8))
            assert failed.value.code == ErrorCode.TEMPLATE_TIMEOUT
            assert f"did not finish within {LIMIT_S:g} s" in failed.value.message
            assert worker.alive
    finally:
        await worker.stop()


async def test_an_endless_chat_template_fails_a_question_about_a_photo(endless: Path,
                                                                       tmp_path: Path) -> None:
    projector = write_tiny_mmproj(tmp_path / "mmproj-tiny.gguf")
    photo = tmp_path / "photo.png"
    Image.new("RGB", (64, 64), "teal").save(photo)
    worker = worker_for(endless, projector)
    try:
        with pytest.raises(AppError) as failed:
            await answer(worker, ChatRequest(messages=[{"role": "user", "content": f"{MEDIA_MARKER} What is it?"}],
                                             images=[photo.read_bytes()], max_tokens=8))
        assert failed.value.code == ErrorCode.TEMPLATE_TIMEOUT
    finally:
        await worker.stop()


@pytest.mark.parametrize("name", ["vocabulary-2e36.gguf", "no-tensors.gguf", "nested-lists.gguf"])
async def test_the_worker_refuses_a_hostile_header_before_llama_cpp_loads_it(tmp_path: Path, name: str) -> None:
    write, reason = HOSTILE[name]
    path = write(tmp_path / name)
    worker = worker_for(path)
    try:
        with pytest.raises(AppError) as failed:
            async with asyncio.timeout(HANG_GUARD_S):
                await worker.start()
        assert failed.value.code == "model_load_failed" and reason in failed.value.message
    finally:
        await worker.stop()
        path.unlink()
