"""The stable-diffusion.cpp engine in a worker process, on the random-weight SDXS model: sizes,
seeds, batches, progress and previews, image-to-image, and models it cannot load."""

from __future__ import annotations

import hashlib
import io
import random
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from PIL import Image

from backend.core.errors import AppError, ErrorCode
from backend.engines.diffusion import DiffusionConfig, GenerateRequest, GenerateResult, Preview, Progress
from backend.runtime.protocol import Event, JobDone, JobFailed
from backend.runtime.worker import WorkerProcess, WorkerSpec
from tests.sdmodels import write_sdxs
from tests.threads import ENGINE_THREADS

pytestmark = [pytest.mark.engine, pytest.mark.asyncio(loop_scope="module")]
"""The module's worker belongs to the module's event loop."""

FACTORY = "backend.engines.diffusion:DiffusionEngine"


def spec(model: Path) -> WorkerSpec:
    return WorkerSpec(name="images", factory=FACTORY,
                      config=DiffusionConfig(model_path=str(model), n_threads=ENGINE_THREADS))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def worker(sdxs_path: Path) -> AsyncIterator[WorkerProcess]:
    started = WorkerProcess(spec(sdxs_path))
    await started.start()
    yield started
    await started.stop()


async def events_of(worker: WorkerProcess, **fields: Any) -> list[Event]:
    wanted: dict[str, Any] = {"prompt": "a red apple on a table", "width": 128, "height": 128, "steps": 1,
                              "cfg_scale": 1.0, "seed": 7, **fields}
    return [event async for event in worker.run(GenerateRequest(**wanted))]


async def generate(worker: WorkerProcess, **fields: Any) -> tuple[GenerateResult, list[Event]]:
    """The result of one job and the events before it."""
    events = await events_of(worker, **fields)
    last = events[-1]
    assert isinstance(last, JobDone) and isinstance(last.result, GenerateResult), last
    return last.result, events[:-1]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def opened(data: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    picture.load()
    return picture


def encoded(picture: Image.Image, kind: str = "PNG") -> bytes:
    out = io.BytesIO()
    picture.save(out, kind)
    return out.getvalue()


def gradient(width: int, height: int) -> Image.Image:
    picture = Image.new("RGB", (width, height))
    picture.putdata([(x * 255 // width, y * 255 // height, 128) for y in range(height) for x in range(width)])
    return picture


async def test_a_png_of_the_requested_size(worker: WorkerProcess) -> None:
    assert "SDXS" in worker.info["version"] and worker.info["load_seconds"] > 0
    result, _ = await generate(worker, seed=7)
    assert result.seeds == [7] and (result.width, result.height) == (128, 128)
    assert len(result.images) == 1 and result.seconds > 0
    picture = opened(result.images[0])
    assert (picture.format, picture.size, picture.mode) == ("PNG", (128, 128), "RGB")
    wide, _ = await generate(worker, width=128, height=64)
    assert opened(wide.images[0]).size == (128, 64) and (wide.width, wide.height) == (128, 64)


async def test_the_same_seed_makes_the_same_picture(worker: WorkerProcess) -> None:
    first, _ = await generate(worker, seed=21)
    again, _ = await generate(worker, seed=21)
    other, _ = await generate(worker, seed=22)
    assert sha(first.images[0]) == sha(again.images[0])
    assert sha(other.images[0]) != sha(first.images[0])
    assert opened(other.images[0]).tobytes() != opened(first.images[0]).tobytes()


async def test_a_batch_uses_consecutive_seeds(worker: WorkerProcess) -> None:
    batch, events = await generate(worker, seed=11, batch_count=2)
    assert batch.seeds == [11, 12] and len(batch.images) == 2
    single, _ = await generate(worker, seed=12)
    assert sha(batch.images[1]) == sha(single.images[0])
    assert sha(batch.images[0]) != sha(batch.images[1])
    # "ready" (step 0), then the one step of each picture
    assert [(e.step, e.steps) for e in events if isinstance(e, Progress)] == [(0, 1), (1, 1), (1, 1)]


async def test_progress_counts_steps_and_previews_are_jpegs(worker: WorkerProcess) -> None:
    _, events = await generate(worker, steps=2, preview_every=1)
    assert isinstance(events[0], Progress) and (events[0].step, events[0].step_seconds) == (0, 0.0)  # ready
    progress = [e for e in events if isinstance(e, Progress)]
    assert [(e.step, e.steps) for e in progress] == [(0, 2), (1, 2), (2, 2)]
    assert all(0 < e.step_seconds < 60 for e in progress[1:])
    previews = [e for e in events if isinstance(e, Preview)]
    assert [e.step for e in previews] == [1, 2]
    for preview in previews:
        picture = opened(preview.jpeg)
        assert picture.format == "JPEG" and 0 < max(picture.size) <= 256
    # no previews asked for, right after a job that had them (the library keeps the last callback set)
    _, quiet = await generate(worker, steps=2, preview_every=0)
    assert [(type(e), getattr(e, "step", None)) for e in quiet] == [(Progress, 0), (Progress, 1), (Progress, 2)]


async def test_image_to_image_starts_from_the_picture(worker: WorkerProcess) -> None:
    text_only, _ = await generate(worker, seed=5)
    start = encoded(gradient(200, 150))  # not the requested size: cropped to cover it
    from_gradient, events = await generate(worker, seed=5, init_image=start, strength=0.5)
    assert opened(from_gradient.images[0]).size == (128, 128) and from_gradient.seeds == [5]
    assert sha(from_gradient.images[0]) != sha(text_only.images[0])
    assert [e.step for e in events if isinstance(e, Progress)] == [0, 1]
    orange = encoded(Image.new("RGB", (128, 128), "orange"), "JPEG")
    from_orange, _ = await generate(worker, seed=5, init_image=orange, strength=0.5)
    assert sha(from_orange.images[0]) not in {sha(from_gradient.images[0]), sha(text_only.images[0])}


async def test_an_unreadable_start_picture_is_a_bad_request(worker: WorkerProcess) -> None:
    events = await events_of(worker, init_image=b"not a picture at all", strength=0.5)
    last = events[-1]
    assert isinstance(last, JobFailed) and last.code == ErrorCode.BAD_REQUEST
    assert "starting picture could not be read" in last.message
    result, _ = await generate(worker, seed=1)  # the worker goes on
    assert len(result.images) == 1


async def failed_start(model: Path) -> AppError:
    worker = WorkerProcess(spec(model))
    try:
        with pytest.raises(AppError) as caught:
            await worker.start()
        assert not worker.alive
    finally:
        await worker.stop()
    assert caught.value.code == ErrorCode.MODEL_LOAD_FAILED
    assert caught.value.message.startswith("the image model could not be loaded: ")
    assert "NULL" not in caught.value.message
    return caught.value


async def test_a_model_with_the_wrong_tensor_names_fails_at_start(tmp_path: Path) -> None:
    wrong = write_sdxs(tmp_path / "wrong-names.safetensors", prefix_map={"unet.": "model."})
    try:
        error = await failed_start(wrong)
    finally:
        wrong.unlink()
    assert re.search(r"tensor '[\w.]+' not in model file \(and \d+ more problems\)$", error.message), error.message


async def test_random_bytes_fail_clearly(tmp_path: Path) -> None:
    noise = tmp_path / "noise.safetensors"
    noise.write_bytes(random.Random(0).randbytes(1 << 20))
    error = await failed_start(noise)
    assert "init model loader from file failed" in error.message and str(noise) in error.message


async def test_a_truncated_model_fails_clearly(tmp_path: Path, sdxs_path: Path) -> None:
    cut = tmp_path / "cut.safetensors"
    with sdxs_path.open("rb") as source:
        cut.write_bytes(source.read(10_000_000))
    error = await failed_start(cut)
    assert "read tensor data failed" in error.message and str(cut) in error.message


async def test_a_missing_file_fails_clearly(tmp_path: Path) -> None:
    missing = tmp_path / "not-there.safetensors"
    error = await failed_start(missing)
    assert "does not exist" in error.message and str(missing) in error.message
