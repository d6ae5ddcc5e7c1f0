"""The Models page's cards say what each language model can do: "Thinks", "Tools", "Sees photos"."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from nicegui import ui
from nicegui.testing import User

from backend.services import Services
from tests.catalogs import chat_entry, write_catalog
from tests.ggufs import write_lm_gguf

from ..finders import by_testid, click, inside, shown, wait_for

TEMPLATES = Path(__file__).parents[2] / "data" / "templates"
QWEN3 = (TEMPLATES / "qwen3.jinja").read_text(encoding="utf-8")
"""Qwen3's published chat template: thinking and tools."""
LLAMA_TOOLS = (TEMPLATES / "llama-3.2.jinja").read_text(encoding="utf-8")
"""Llama 3.2's: tools only."""


@pytest.fixture
def catalog(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A catalog with a model that thinks and uses tools, one that does neither, and a vision model."""
    path = write_catalog(data_dir.parent / "catalog.json", [
        chat_entry("thinker", name="Thinker", features=["thinking", "tools"]),
        chat_entry("plain", name="Plain"),
        chat_entry("seer", name="Seer", job="vision",
                   files=[{"path": "seer-Q8_0.gguf", "size_mb": 5},
                          {"path": "mmproj-seer-f16.gguf", "role": "projector", "size_mb": 1}])])
    monkeypatch.setenv("GRIDLESS_CATALOG", str(path))
    return path


@pytest.fixture
def tools_model(data_dir: Path) -> Path:
    """A language model in the models folder whose chat template has a tools section (Llama 3's)."""
    folder = data_dir / "models"
    folder.mkdir(parents=True, exist_ok=True)
    return write_lm_gguf(folder / "handy-Q8_0.gguf", size_mb=0.2, name="Handy", chat_template=LLAMA_TOOLS)


def badges(user: User, card: ui.element) -> list[str]:
    """The feature badges on a card, as shown."""
    found = by_testid(user, "model-features", ui.element, card)
    if not found:
        return []
    assert len(found) == 1
    return [label.text for label in inside(user, found[0], ui.label)]


async def test_catalog_entries_show_what_they_can_do(catalog: Path, owner: User) -> None:
    await owner.open("/models")
    assert badges(owner, await shown(owner, "catalog-thinker")) == ["Thinks", "Tools"]
    assert badges(owner, await shown(owner, "catalog-plain")) == []
    click(owner, await shown(owner, "tab-vision"))
    assert badges(owner, await shown(owner, "catalog-seer")) == ["Sees photos"]


async def test_an_installed_model_shows_the_tools_its_template_offers(tools_model: Path, owner: User,
                                                                     services: Services) -> None:
    await owner.open("/models")
    [record] = [r for r in services.models.installed("chat") if r.path == tools_model]
    card = await shown(owner, f"model-{record.id}", ui.card)
    assert badges(owner, card) == ["Tools"]


async def test_the_card_is_redrawn_only_when_what_the_file_can_do_changes(tools_model: Path, owner: User,
                                                                          services: Services) -> None:
    await owner.open("/models")
    [record] = [r for r in services.models.installed("chat") if r.path == tools_model]
    card = await shown(owner, f"model-{record.id}", ui.card)
    for _ in range(3):  # the page checks twice a second; the same file keeps the same card
        await asyncio.sleep(0.5)
        assert by_testid(owner, f"model-{record.id}") == [card]
    stat = tools_model.stat()
    write_lm_gguf(tools_model, size_mb=0.2, name="Handy", chat_template=QWEN3)  # replaced in place
    os.utime(tools_model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    await wait_for(owner, lambda: badges(owner, by_testid(owner, f"model-{record.id}")[0]) == ["Thinks", "Tools"],
                   "the card to show the new template's features")
