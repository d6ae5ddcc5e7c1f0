from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from backend.core.config import Settings
from backend.models.downloads import Download
from backend.models.manager import ModelManager
from backend.runtime.residency import MemoryBudget, ResidencyManager
from backend.storage.db import Database
from tests.catalogs import chat_entry, write_catalog
from tests.ggufs import write_lm_gguf, write_projector_gguf
from tests.hubserver import HubServer

REPO = "acme/tiny-GGUF"
SPEECH_REPO = "acme/whisper-tiny-ct2"
VOICE_REPO = "acme/piper-voices"
VISION_REPO = "acme/tiny-vision-GGUF"
MODEL_FILE = "tiny-Q4_K_M.gguf"


@pytest.fixture(scope="session")
def hub_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hub-files")
    return {
        MODEL_FILE: write_lm_gguf(folder / MODEL_FILE, size_mb=6),
        "tiny-Q8_0.gguf": write_lm_gguf(folder / "tiny-Q8_0.gguf", size_mb=3, seed=2),
        "vision-Q8_0.gguf": write_lm_gguf(folder / "vision-Q8_0.gguf", size_mb=2, seed=3),
        "mmproj-vision-f16.gguf": write_projector_gguf(folder / "mmproj-vision-f16.gguf"),
        "notes.gguf": _text(folder / "notes.gguf", "not a model at all\n" * 1000),
    }


@pytest.fixture(scope="session")
def speech_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CTranslate2-shaped model folder (binary version 6) and a Piper-shaped voice."""
    folder = tmp_path_factory.mktemp("speech-files")
    (folder / "model.bin").write_bytes(struct.pack("<I", 6) + bytes(range(256)) * 4000)
    voice = folder / "voice"
    voice.mkdir()
    (voice / "en_US-test-medium.onnx").write_bytes(b"\x08\x07" + bytes(200_000))
    return {"model.bin": folder / "model.bin",
            "config.json": _text(folder / "config.json", json.dumps({"alignment_heads": [[1, 0]]})),
            "vocabulary.txt": _text(folder / "vocabulary.txt", "a\nb\nc\n"),
            "en/en_US/test/medium/en_US-test-medium.onnx": voice / "en_US-test-medium.onnx",
            "en/en_US/test/medium/en_US-test-medium.onnx.json":
                _text(voice / "cfg.json", json.dumps({"audio": {}, "language": {"code": "en_US"}}))}


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def hub(hub_files: dict[str, Path], speech_files: dict[str, Path]) -> Iterator[HubServer]:
    with HubServer() as server:
        server.add_repo(SPEECH_REPO, {k: v for k, v in speech_files.items() if not k.startswith("en/")})
        server.add_repo(VOICE_REPO, {k: v for k, v in speech_files.items() if k.startswith("en/")})
        server.add_repo(REPO, {k: v for k, v in hub_files.items() if k.startswith(("tiny", "notes"))},
                        license="apache-2.0")
        server.add_repo(VISION_REPO, {k: hub_files[k] for k in ("vision-Q8_0.gguf", "mmproj-vision-f16.gguf")})
        yield server


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    return write_catalog(tmp_path / "catalog.json", [
        chat_entry("tiny-chat", repo=REPO, path=MODEL_FILE, size_mb=6),
        chat_entry("notes-chat", name="Not a model", repo=REPO, path="notes.gguf", size_mb=0.02),
        {"id": "tiny-whisper", "job": "speech", "name": "Tiny whisper", "description": "test", "repo": SPEECH_REPO,
         "files": [{"path": "model.bin", "size_mb": 1}, {"path": "config.json", "role": "config", "size_mb": 0.001},
                   {"path": "vocabulary.txt", "role": "config", "size_mb": 0.001}],
         "license": "mit", "min_device_ram_gb": 1},
        {"id": "test-voice", "job": "voice", "name": "Test voice", "description": "test", "repo": VOICE_REPO,
         "files": [{"path": "en/en_US/test/medium/en_US-test-medium.onnx", "size_mb": 0.2},
                   {"path": "en/en_US/test/medium/en_US-test-medium.onnx.json", "role": "config", "size_mb": 0.001}],
         "license": "mit", "min_device_ram_gb": 1},
        chat_entry("huge-chat", name="Huge chat", repo=REPO, path="tiny-Q8_0.gguf", size_mb=900_000,
                   quantization=None),
    ])


@dataclass
class Env:
    hub: HubServer
    settings: Settings
    db: Database
    residency: ResidencyManager
    manager: ModelManager

    async def restart(self, between: Callable[[], None] | None = None) -> None:
        """Like the server being killed and started again: a new manager on the same data
        (`between` runs while nothing is running)."""
        await self.manager.stop()
        await self.db.close()
        if between is not None:
            between()
        self.db = Database(self.settings.db_path)
        await self.db.open()
        self.manager = ModelManager(self.settings, self.db, self.residency)
        await self.manager.start()


def settings_for(tmp_path: Path, hub: HubServer, catalog: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", hf_endpoint=hub.url, catalog=catalog)


@pytest.fixture
async def env(tmp_path: Path, hub: HubServer, catalog_file: Path) -> AsyncIterator[Env]:
    settings = settings_for(tmp_path, hub, catalog_file)
    db = Database(settings.db_path)
    await db.open()
    residency = ResidencyManager(MemoryBudget())
    manager = ModelManager(settings, db, residency)
    await manager.start()
    environment = Env(hub=hub, settings=settings, db=db, residency=residency, manager=manager)
    yield environment
    await environment.manager.stop()
    await environment.db.close()


async def wait_for(env: Env, download_id: str, states: tuple[str, ...] = ("done", "failed"),
                   timeout: float = 30.0) -> Download:
    async with asyncio.timeout(timeout):
        while True:
            dl = env.manager.downloads.get(download_id)
            assert dl is not None
            if dl.state in states:
                return dl
            await asyncio.sleep(0.02)


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[Path]:
    """A folder for hostile files, emptied after the test: the sparse ones claim a tebibyte each."""
    folder = tmp_path / "hostile"
    folder.mkdir()
    yield folder
    for path in folder.iterdir():
        path.unlink()
