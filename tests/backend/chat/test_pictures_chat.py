"""Pictures asked for in a conversation, made by the image engine on the random-weight SDXS model:
the answer becomes the picture, the gallery keeps it with its conversation, the language model
reads that a picture was shown, and Stop cancels it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backend.chat.prompt import model_messages
from backend.core.config import Settings
from backend.core.errors import AppError
from backend.images.params import image_request, prompt_from
from backend.services import Services
from tests.sdmodels import TINY_SD, register_image_model
from tests.threads import ENGINE_THREADS

from .conftest import running_services

pytestmark = pytest.mark.engine
PICTURE = re.compile(r"^!\[[^\]]*\]\(/api/images/([0-9a-f]{32})/file\)$")


@pytest.fixture
async def services(tmp_path: Path, sdxs_path: Path) -> AsyncIterator[Services]:
    await register_image_model(tmp_path / "gridless.db", sdxs_path)
    async with running_services(tmp_path) as built:
        yield built


@pytest.mark.parametrize(("text", "wanted"), [
    ("generate an image of a red fox in the snow.", "a red fox in the snow"),
    ("Please draw a picture of two cats", "two cats"),
    ("Can you make me a painting showing a storm at sea?", "a storm at sea"),
    ("/image a lighthouse", "a lighthouse"),
    ("draw conclusions from this table", None),
    ("what is an image of a function?", None),
])
def test_a_request_for_a_picture_is_recognised(text: str, wanted: str | None) -> None:
    assert image_request(text) == wanted


def test_a_message_becomes_a_plain_prompt() -> None:
    text = "# Harbour\n**Boats** at `night` under [stars](http://x)"
    assert prompt_from(text) == "Harbour Boats at night under stars"
    assert len(prompt_from("word " * 1000, limit=100)) <= 100


async def test_asking_for_a_picture_answers_with_it(services: Services) -> None:
    conv = await services.store.create()
    reply = await services.conversations.send(conv.id, "generate an image of a red fox in the snow")
    await asyncio.wait_for(reply.finished.wait(), 300)
    messages = await services.store.messages(conv.id)
    answer = messages[-1]
    assert (answer.role, answer.status) == ("assistant", "done"), answer.error
    match = PICTURE.match(answer.content)
    assert match, answer.content
    assert answer.stats["kind"] == "image" and answer.stats["prompt"] == "a red fox in the snow"
    record = await services.images.store.get(match.group(1))
    assert record is not None
    assert (record.prompt, record.origin, record.conversation_id, record.model) == \
        ("a red fox in the snow", "chat", conv.id, TINY_SD)
    assert (record.width, record.height, record.steps, record.cfg_scale) == (512, 512, 1, 1.0)  # suited to SDXS
    assert answer.stats["images"] == [record.id] and answer.stats["seed"] == record.seed
    prompt, _ = model_messages(conv, messages)
    assert prompt[-1] == {"role": "assistant",
                          "content": "(Here the app showed a picture it made of: a red fox in the snow)"}


async def test_picture_of_an_answer_and_stop(services: Services) -> None:
    conv = await services.store.create(settings={"max_tokens": 8, "temperature": 0})
    reply = await services.conversations.send(conv.id, "Describe a quiet harbour at night.")
    await asyncio.wait_for(reply.finished.wait(), 120)
    answer = (await services.store.messages(conv.id))[-1]
    picture = await services.conversations.make_image(conv.id, answer.content)
    assert picture.stats["prompt"] == prompt_from(answer.content)
    with pytest.raises(AppError):
        await services.conversations.send(conv.id, "and another one while it works")
    while picture.generation_id is None:
        await asyncio.sleep(0.05)
    assert services.conversations.stop(conv.id)
    await asyncio.wait_for(picture.finished.wait(), 30)
    stopped = (await services.store.messages(conv.id))[-1]
    assert (stopped.status, stopped.content, stopped.stats.get("finish_reason")) == ("done", "", "cancelled")
    assert await services.images.store.for_conversation(conv.id) == []
    with pytest.raises(AppError):
        await services.conversations.make_image(conv.id, "  **  ")


async def test_without_an_image_model_the_answer_says_so(tmp_path: Path) -> None:
    services = Services.build(Settings(data_dir=tmp_path, token="t" * 20, threads=ENGINE_THREADS))
    await services.start()
    try:
        conv = await services.store.create()
        reply = await services.conversations.send(conv.id, "/image a lighthouse")
        await asyncio.wait_for(reply.finished.wait(), 30)
        answer = (await services.store.messages(conv.id))[-1]
        assert answer.status == "error"
        assert answer.error is not None and "No image model is installed" in answer.error
    finally:
        await services.stop()
