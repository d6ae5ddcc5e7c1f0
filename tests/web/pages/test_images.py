"""The Images page's form: what it refuses, and why, before anything reaches an image model."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from nicegui import ui
from nicegui.testing import User

from backend.services import Services

from ..finders import click, notified, sees, shown


@pytest.fixture
def image_model_file(data_dir: Path) -> Path:
    """A file in the models folder that the app takes for an image model (a valid safetensors
    header, one tiny tensor): the form needs a model, and these tests never load it."""
    header = json.dumps({"w": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}).encode()
    path = data_dir / "models" / "tiny-sdxs.safetensors"
    path.parent.mkdir(parents=True)
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0\0")
    return path


async def fill_and_generate(user: User, prompt: str, seed: str = "") -> None:
    (await shown(user, "image-prompt", ui.textarea)).value = prompt
    (await shown(user, "image-seed", ui.input)).value = seed
    click(user, await shown(user, "generate"))


async def test_without_an_image_model_the_page_says_where_to_get_one(owner: User) -> None:
    await owner.open("/images")
    await sees(owner, "No image model is installed.")
    await sees(owner, "Get one on the Models page")


@pytest.mark.parametrize("prompt", ["", "  \n "])
async def test_an_empty_prompt_is_refused(image_model_file: Path, owner: User, services: Services,
                                          prompt: str) -> None:
    await owner.open("/images")
    await fill_and_generate(owner, prompt)
    await notified(owner, "Describe the picture first.")
    assert services.images.active() == []


@pytest.mark.parametrize(("seed", "reason"), [("forty-two", "The seed must be a whole number."),
                                              ("4.5", "The seed must be a whole number."),
                                              ("-5", "Seed: Input should be greater than or equal to 0")])
async def test_a_seed_that_is_not_a_whole_number_is_refused(image_model_file: Path, owner: User,
                                                            services: Services, seed: str, reason: str) -> None:
    await owner.open("/images")
    await fill_and_generate(owner, "a lighthouse on a cliff at dawn", seed)
    await notified(owner, reason)
    assert services.images.active() == []
    assert (await shown(owner, "image-prompt", ui.textarea)).value == "a lighthouse on a cliff at dawn"  # kept
