"""What an installed model can do, read from its GGUF header: thinking, tools, vision."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backend.engines.reply_format import template_features
from backend.models import features
from backend.models.features import model_features
from backend.models.registry import ModelRecord
from tests.ggufs import write_lm_gguf, write_oversized_count_gguf, write_projector_gguf

TEMPLATES = Path(__file__).parents[2] / "data" / "templates"
HERMES_THINKING = (TEMPLATES / "qwen3.jinja").read_text(encoding="utf-8")
"""Qwen3's published template: thinking (`enable_thinking`) and Hermes tool calls."""
LLAMA_TOOLS = (TEMPLATES / "llama-3.2.jinja").read_text(encoding="utf-8")
"""Llama 3.2's: tools, no thinking."""
PLAIN = "{% for message in messages %}<start_of_turn>{{ message.role }}\n{{ message.content }}<end_of_turn>{% endfor %}"


def labels(template: str | None) -> list[str]:
    return template_features(template).labels()


def record(path: Path, job: str = "chat", projector: Path | None = None) -> ModelRecord:
    return ModelRecord(id=path.stem.lower(), job=job, name=path.stem, format="gguf",  # type: ignore[arg-type]
                       path=path, size_bytes=path.stat().st_size if path.exists() else 1, source="import",
                       projector=projector)


@pytest.fixture(autouse=True)
def empty_cache() -> None:
    features._cache.clear()


@pytest.mark.parametrize(("template", "expected"), [(HERMES_THINKING, ["thinking", "tools"]),
                                                    (LLAMA_TOOLS, ["tools"]), (PLAIN, []), (None, [])])
def test_thinking_and_tools_come_from_the_chat_template(tmp_path: Path, template: str | None,
                                                        expected: list[str]) -> None:
    path = write_lm_gguf(tmp_path / "m-Q8_0.gguf", size_mb=0.1, chat_template=template)
    assert model_features(record(path), labels) == expected


def test_a_projector_adds_vision(tmp_path: Path) -> None:
    path = write_lm_gguf(tmp_path / "v-Q8_0.gguf", size_mb=0.1, chat_template=HERMES_THINKING)
    projector = write_projector_gguf(tmp_path / "mmproj-v.gguf")
    assert model_features(record(path, "vision", projector), labels) == ["thinking", "tools", "vision"]
    plain = write_lm_gguf(tmp_path / "p-Q8_0.gguf", size_mb=0.1, chat_template=PLAIN)
    assert model_features(record(plain, "vision", projector), labels) == ["vision"]


def test_other_jobs_have_none(tmp_path: Path) -> None:
    path = write_lm_gguf(tmp_path / "m-Q8_0.gguf", size_mb=0.1, chat_template=HERMES_THINKING)
    for job in ("images", "speech", "voice"):
        assert model_features(record(path, job), labels) == []


def test_damaged_and_missing_files_have_none(tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(write_lm_gguf(tmp_path / "whole.gguf", size_mb=0.1, chat_template=HERMES_THINKING)
                    .read_bytes()[:200])
    not_gguf = tmp_path / "text.gguf"
    not_gguf.write_text("hello")
    hostile = write_oversized_count_gguf(tmp_path / "hostile.gguf")
    for path in (cut, not_gguf, hostile, tmp_path / "absent.gguf"):
        assert model_features(record(path), labels) == [], path.name
    assert model_features(record(tmp_path), labels) == [], "a folder"


def test_a_parser_that_fails_gives_none(tmp_path: Path) -> None:
    path = write_lm_gguf(tmp_path / "m-Q8_0.gguf", size_mb=0.1, chat_template=HERMES_THINKING)

    def broken(template: str | None) -> list[str]:
        raise RuntimeError("boom")

    assert model_features(record(path), broken) == []


def test_the_header_is_read_once_per_file_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_lm_gguf(tmp_path / "m-Q8_0.gguf", size_mb=0.1, chat_template=PLAIN)
    reads: list[Path] = []
    real = features.read_gguf_info

    def counting(p: Path):  # type: ignore[no-untyped-def]
        reads.append(p)
        return real(p)

    monkeypatch.setattr(features, "read_gguf_info", counting)
    model = record(path)
    for _ in range(5):
        assert model_features(model, labels) == []
    assert len(reads) == 1
    stat = path.stat()
    write_lm_gguf(path, size_mb=0.1, chat_template=HERMES_THINKING)  # replaced by another model
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert model_features(model, labels) == ["thinking", "tools"]
    assert len(reads) == 2
    answer = model_features(model, labels)
    answer.append("vision")  # the caller's list is its own
    assert model_features(model, labels) == ["thinking", "tools"] and len(reads) == 2


def test_the_cache_stays_small(tmp_path: Path) -> None:
    path = write_lm_gguf(tmp_path / "m-Q8_0.gguf", size_mb=0.1, chat_template=LLAMA_TOOLS)
    for i in range(features._CACHE_MAX * 2):
        os.utime(path, ns=(i * 1_000_000_000, i * 1_000_000_000))
        assert model_features(record(path), labels) == ["tools"]
    assert len(features._cache) <= features._CACHE_MAX
