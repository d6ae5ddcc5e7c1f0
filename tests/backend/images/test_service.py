"""The image service on real Services with the random-weight SDXS model: generations stored with
their parameters, seeds, batches, cancel, a model that cannot load, delete and sweep, and the
memory budget shared with the language model."""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from PIL import Image
from pydantic import ValidationError

from backend.core.config import Settings
from backend.core.errors import AppError, ErrorCode
from backend.images.params import ImageParams, defaults_for
from backend.images.png_text import png_text, with_text
from backend.images.service import CANCEL_GRACE_S, Generation, _thumbnail
from backend.models.registry import ModelRecord
from backend.services import Services
from tests.sdmodels import TINY_SD, register_image_model
from tests.threads import ENGINE_THREADS

pytestmark = pytest.mark.engine

PROMPT = "a lighthouse at dusk"


def settings(data_dir: Path, **extra: Any) -> Settings:
    return Settings(data_dir=data_dir, token="t" * 20, threads=ENGINE_THREADS, context_length=2048, **extra)


@pytest.fixture
async def services(tmp_path: Path, sdxs_path: Path) -> AsyncIterator[Services]:
    await register_image_model(tmp_path / "gridless.db", sdxs_path)
    built = Services.build(settings(tmp_path))
    await built.start()
    yield built
    await built.stop()


def params(**fields: Any) -> ImageParams:
    wanted: dict[str, Any] = {"prompt": PROMPT, "width": 128, "height": 128, "steps": 1, "cfg_scale": 1.0,
                              "seed": 42, **fields}
    return ImageParams(**wanted)


async def finished(generation: Generation, timeout: float = 180) -> Generation:
    await asyncio.wait_for(generation.finished.wait(), timeout)
    return generation


async def made(services: Services, **fields: Any) -> Generation:
    """A generation that ended well."""
    generation = await finished(await services.images.generate(params(**fields)))
    assert generation.state == "done", (generation.error_code, generation.error)
    return generation


def media_files(services: Services) -> set[str]:
    """Every file in the media folder's images/, by its stored name (leftovers included)."""
    folder = services.settings.media_dir / "images"
    return {f"images/{p.name}" for p in folder.iterdir()} if folder.is_dir() else set()


def opened(path: Path) -> Image.Image:
    picture = Image.open(path)
    picture.load()
    return picture


def pixels(path: Path) -> str:
    return hashlib.sha256(opened(path).tobytes()).hexdigest()


async def gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_generation_is_stored_with_its_parameters(services: Services) -> None:
    generation = await made(services, negative_prompt="fog, blur", cfg_scale=1.5, sampler="euler", seed=1234)
    assert generation.seed == 1234 and generation.error is None and generation.error_code is None
    assert (generation.step, generation.total_steps, generation.remaining) == (1, 1, 0.0)
    assert generation.preview is not None and opened_bytes(generation.preview).format == "JPEG"
    assert generation.unloaded == [] and generation.origin == "page"
    [record] = generation.images
    row = await services.images.store.get(record.id)
    assert row == record
    assert (row.prompt, row.negative_prompt, row.seed, row.steps, row.cfg_scale, row.sampler) == \
        (PROMPT, "fog, blur", 1234, 1, 1.5, "euler")
    assert (row.width, row.height, row.model, row.model_name) == (128, 128, TINY_SD, "Tiny SDXS")
    assert (row.origin, row.conversation_id, row.source_image, row.strength) == ("page", None, None, None)
    assert row.seconds > 0

    png = services.media.path(row.path)
    assert png.parent == services.settings.media_dir / "images" and png.suffix == ".png"
    assert png.stat().st_size == row.bytes
    picture = opened(png)
    assert (picture.format, picture.size) == ("PNG", (128, 128))
    assert {k: v for k, v in picture.info.items() if isinstance(v, str)} == {
        "prompt": PROMPT, "negative_prompt": "fog, blur", "steps": "1", "cfg_scale": "1.5", "sampler": "euler",
        "seed": "1234", "width": "128", "height": "128", "model": "Tiny SDXS", "software": "gridless",
        "parameters": f"{PROMPT}\nNegative prompt: fog, blur\nSteps: 1, Sampler: euler, CFG scale: 1.5, "
                      "Seed: 1234, Size: 128x128, Model: Tiny SDXS"}

    thumb = opened(services.media.path(row.thumb))
    assert thumb.format == "JPEG" and thumb.size == (128, 128)  # never enlarged
    assert media_files(services) == {row.path, row.thumb}
    assert [r.id for r in await services.images.store.recent()] == [row.id]


def opened_bytes(data: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(data))
    picture.load()
    return picture


async def test_a_random_seed_is_recorded_and_makes_the_same_picture_again(services: Services) -> None:
    first = await made(services, seed=None)
    assert 0 <= first.seed < 2**31
    [record] = first.images
    assert record.seed == first.seed and opened(services.media.path(record.path)).info["seed"] == str(first.seed)
    again = await made(services, seed=first.seed)
    [repeat] = again.images
    one, two = services.media.path(record.path), services.media.path(repeat.path)
    assert pixels(one) == pixels(two)
    assert one.read_bytes() == two.read_bytes()  # no time stamps in the file: the bytes match too
    other = await made(services, seed=first.seed ^ 1)
    assert pixels(services.media.path(other.images[0].path)) != pixels(one)


async def test_a_batch_has_consecutive_seeds_then_delete_and_sweep(services: Services) -> None:
    batch = await made(services, seed=500, batch_count=2)
    assert [r.seed for r in batch.images] == [500, 501]
    assert (batch.step, batch.total_steps) == (2, 2)
    second = opened(services.media.path(batch.images[1].path))
    assert second.info["seed"] == "501" and "Seed: 501," in second.info["parameters"]
    first, last = batch.images
    assert media_files(services) == {first.path, first.thumb, last.path, last.thumb}

    assert await services.images.delete([first.id, "no-such-image"]) == 1
    assert await services.images.store.get(first.id) is None
    assert media_files(services) == {last.path, last.thumb}
    assert await services.images.delete([first.id]) == 0

    await services.media.write_bytes("images/orphan.png", b"left by a crash")
    (services.settings.media_dir / "images" / ".half.png.part").write_bytes(b"half")
    assert await services.images.sweep() == 2
    assert media_files(services) == {last.path, last.thumb}
    assert await services.images.sweep() == 0
    assert [r.id for r in await services.images.store.recent()] == [last.id]


async def test_cancel_stops_the_worker_and_leaves_nothing(services: Services) -> None:
    earlier = await made(services, seed=1)
    before_files = media_files(services)
    before_rows = [r.id for r in await services.images.store.recent()]
    assert len(before_files) == 2 and before_rows == [earlier.images[0].id]

    slow = await services.images.generate(params(steps=8, seed=2))
    async with asyncio.timeout(180):
        while slow.step < 1:
            await asyncio.sleep(0.02)
    assert slow.state == "running" and not slow.finished.is_set()
    resident = services.residency.get("images")
    assert resident is not None
    pid = resident.pid()
    assert pid is not None and psutil.pid_exists(pid)
    started = time.monotonic()
    assert services.images.cancel(slow.id) is True
    await finished(slow, CANCEL_GRACE_S + 5)
    took = time.monotonic() - started
    assert slow.state == "cancelled" and took < 2.5, (slow.state, took)
    assert slow.images == [] and slow.error is None and slow.step < 8
    assert await gone(pid)
    assert services.images.host.loaded is None
    assert [r.id for r in await services.images.store.recent()] == before_rows
    assert media_files(services) == before_files  # nothing new, no .part files
    assert services.media.files("images", partial=True) == []
    assert services.images.cancel(slow.id) is False  # already over

    after = await made(services, seed=3)
    assert len(after.images) == 1 and services.media.path(after.images[0].path).is_file()
    resident = services.residency.get("images")
    assert resident is not None and resident.pid() not in (None, pid)


async def test_cancel_of_an_unknown_generation(services: Services) -> None:
    assert services.images.cancel("no-such-generation") is False


async def test_unknown_model_and_source_picture_are_refused(services: Services) -> None:
    with pytest.raises(AppError) as caught:
        await services.images.generate(params(model="no-such-model"))
    assert caught.value.code == "model_not_found"
    with pytest.raises(AppError) as caught:
        await services.images.generate(params(source_image="no-such-image"))
    assert caught.value.code == ErrorCode.BAD_REQUEST
    assert services.images.generations == {}


async def test_a_model_that_cannot_load_fails_clearly(tmp_path: Path, sdxs_path: Path) -> None:
    broken = tmp_path / "broken.safetensors"
    with sdxs_path.open("rb") as source:
        broken.write_bytes(source.read(10_000_000))  # the header promises tensors the file does not hold
    await register_image_model(tmp_path / "gridless.db", broken, model_id="broken-sd")
    services = Services.build(settings(tmp_path))
    await services.start()
    try:
        generation = await finished(await services.images.generate(params()), 120)
        assert (generation.state, generation.error_code) == ("error", ErrorCode.MODEL_LOAD_FAILED)
        assert generation.error is not None and generation.images == []
        assert generation.error.startswith("the image model could not be loaded: read tensor data failed: ")
        assert str(broken) in generation.error
        again = await finished(await services.images.generate(params()), 120)  # fails again, does not hang
        assert (again.state, again.error_code, again.images) == ("error", ErrorCode.MODEL_LOAD_FAILED, [])
        assert await services.images.store.recent() == []
        assert media_files(services) == set()
        conversation = await services.store.create(settings={"max_tokens": 4})
        reply = await services.conversations.send(conversation.id, "Say hello.")
        await asyncio.wait_for(reply.finished.wait(), 120)
        messages = await services.store.messages(conversation.id)
        assert [(m.role, m.status) for m in messages] == [("user", "done"), ("assistant", "done")]
    finally:
        await services.stop()


def test_image_params_are_checked() -> None:
    assert params(prompt="  a cat  ").prompt == "a cat"
    for wrong in ({"prompt": ""}, {"prompt": "   "}, {"width": 100}, {"height": 56}, {"width": 2056},
                  {"sampler": "warp_drive"}, {"batch_count": 9}, {"batch_count": 0}, {"steps": 0},
                  {"steps": 151}, {"seed": -1}, {"strength": 1.5}, {"colour": "red"}):
        with pytest.raises(ValidationError):
            params(**wrong)
    assert params(width=2048, height=64, batch_count=8, sampler="euler_a").batch_count == 8


def record(name: str, path: str = "model.safetensors") -> ModelRecord:
    return ModelRecord(id=name.lower(), job="images", name=name, format="safetensors", path=Path(path),
                       size_bytes=1, source="import")


def test_defaults_suit_the_model() -> None:
    turbo = defaults_for(record("SD-Turbo", "sd_turbo.safetensors"))
    assert (turbo["steps"], turbo["cfg_scale"], turbo["base"]) == (1, 1.0, 512)
    xl = defaults_for(record("SDXL base", "sd_xl_base_1.0.safetensors"))
    assert (xl["steps"], xl["cfg_scale"], xl["base"], xl["sampler"]) == (20, 7.0, 1024, "default")
    assert xl["sizes"]["1024 × 1024"] == (1024, 1024) and xl["sizes"]["512 × 512"] == (512, 512)
    plain = defaults_for(record("Stable Diffusion 1.5", "v1-5-pruned-emaonly.safetensors"))
    assert (plain["steps"], plain["cfg_scale"], plain["base"], plain["sampler"]) == (20, 7.0, 512, "default")
    assert plain["sizes"]["Portrait 384 × 512"] == (384, 512)
    sdxs = defaults_for(record("Tiny SDXS", "tiny-sdxs.safetensors"))
    assert (sdxs["steps"], sdxs["cfg_scale"], sdxs["base"]) == (1, 1.0, 512)
    lcm = defaults_for(record("Dreamshaper LCM"))
    assert (lcm["steps"], lcm["sampler"]) == (4, "lcm")
    assert defaults_for(None)["base"] == 512


def test_text_chunks_and_thumbnails_without_a_model() -> None:
    out = io.BytesIO()
    Image.new("RGB", (1000, 600), "teal").save(out, "PNG")
    text = png_text(params(negative_prompt="", seed=9), 9, record("Ünïcode model").name)
    assert text["parameters"] == f"{PROMPT}\nSteps: 1, Sampler: default, CFG scale: 1, Seed: 9, " \
                                 "Size: 128x128, Model: Ünïcode model"
    tagged = with_text(out.getvalue(), text)
    picture = opened_bytes(tagged)
    assert picture.size == (1000, 600) and picture.info["model"] == "Ünïcode model"
    assert picture.tobytes() == opened_bytes(out.getvalue()).tobytes()
    with pytest.raises(ValueError, match="not a PNG"):
        with_text(b"GIF89a", text)
    thumb = opened_bytes(_thumbnail(tagged))
    assert thumb.format == "JPEG" and thumb.size == (384, 230)


async def test_the_image_model_and_the_language_model_take_turns(tmp_path: Path, sdxs_path: Path) -> None:
    await register_image_model(tmp_path / "gridless.db", sdxs_path)
    probe = Services.build(settings(tmp_path))
    await probe.start()
    chat_model, image_model = probe.models.active("chat"), probe.models.active("images")
    assert chat_model is not None and image_model is not None
    chat_need, image_need = probe.models.estimate(chat_model).total, probe.models.estimate(image_model).total
    await probe.stop()
    budget_mb = math.ceil((max(chat_need, image_need) + min(chat_need, image_need) // 2) / 1e6)
    assert max(chat_need, image_need) <= budget_mb * 1e6 < chat_need + image_need  # one at a time

    services = Services.build(settings(tmp_path, memory_budget_mb=budget_mb))
    await services.start()
    try:
        conversation = await services.store.create(settings={"max_tokens": 4})

        async def chat(text: str) -> list[str]:
            """Answer `text`; returns what the answer says it unloaded to make room."""
            reply = await services.conversations.send(conversation.id, text)
            await asyncio.wait_for(reply.finished.wait(), 120)
            last = (await services.store.messages(conversation.id))[-1]
            assert (last.role, last.status) == ("assistant", "done")
            return list(last.stats.get("unloaded", []))

        assert await chat("Say hello.") == []
        assert services.chat.loaded is not None
        chat_resident = services.residency.get("chat")
        assert chat_resident is not None
        chat_pid = chat_resident.pid()
        assert chat_pid is not None

        first = await made(services, seed=8)
        assert first.unloaded == ["the language model"]
        assert services.chat.loaded is None and services.residency.get("chat") is None
        assert await gone(chat_pid)

        second = await made(services, seed=9)  # the image model stayed: nothing unloaded this time
        assert second.unloaded == [], second.unloaded

        image_resident = services.residency.get("images")
        assert image_resident is not None
        image_pid = image_resident.pid()
        assert image_pid is not None
        assert await chat("Say it again.") == ["images"]  # the answer says it made room
        assert services.chat.loaded is not None
        assert services.images.host.loaded is None and services.residency.get("images") is None
        assert await gone(image_pid)
        assert [r.name for r in services.residency.residents] == ["chat"]
    finally:
        await services.stop()
