"""The new device's pull, in one process against the old device's real move routes served over
HTTP: files fetched and checked, a model this device has left out, the archive handed to the
restore, the other model installed; a saved session carries a pull over a restart."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import uvicorn
from fastapi import FastAPI

from backend.api import move as move_api
from backend.api.errors import install_error_handlers
from backend.core.config import Settings
from backend.core.jobs import Job
from backend.models.manager import ModelManager
from backend.models.registry import ModelRecord, ModelRegistry
from backend.move.offer import MoveOffer, MoveOffers, OfferState
from backend.move.pull import MovePull, MovePulls, PullState
from backend.move.source import FetchPolicy
from backend.runtime.residency import MemoryBudget, ResidencyManager
from backend.storage.db import Database
from tests.ggufs import write_lm_gguf
from tests.server import free_port

ARCHIVE = b"conversations, media and settings" * 1000


async def write_archive(out: Path, progress: Callable[[int, int], None]) -> None:
    out.write_bytes(ARCHIVE)


@dataclass
class Devices:
    offers: MoveOffers
    pulls: MovePulls
    manager: ModelManager
    applied: list[bytes]
    models: dict[str, Path]
    address: str

    async def offer(self) -> MoveOffer:
        offer = await self.offers.create()
        while offer.state is OfferState.PREPARING:
            await asyncio.sleep(0.01)
        return offer

    async def pull(self, code: str) -> MovePull:
        pull = await self.pulls.start(self.address, code)
        await asyncio.wait_for(pull.finished.wait(), 30)
        return pull


@pytest.fixture
async def devices(tmp_path: Path) -> AsyncIterator[Devices]:
    # the old device: two imported models, its move routes on a real port
    old_db = Database(tmp_path / "old.db")
    await old_db.open()
    registry = ModelRegistry(old_db)
    await registry.load()
    (tmp_path / "old-models").mkdir()
    models = {"moved": write_lm_gguf(tmp_path / "old-models" / "moved.gguf", size_mb=2, seed=1, name="moved"),
              "shared": write_lm_gguf(tmp_path / "old-models" / "shared.gguf", size_mb=1, seed=2, name="shared")}
    for name, path in models.items():
        await registry.add(ModelRecord(id=name, job=Job.CHAT, name=name, format="gguf", path=path,
                                       size_bytes=path.stat().st_size, source="import",
                                       context_choice=2048 if name == "moved" else None))
    offers = MoveOffers(tmp_path / "move-out", registry, write_archive)

    async def ready() -> None:
        pass

    app = FastAPI()
    app.state.services = SimpleNamespace(moves=SimpleNamespace(offers=offers), ready=ready)
    app.include_router(move_api.router)
    install_error_handlers(app)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    # the new device: a model manager whose folder already holds the shared model under another name
    settings = Settings(data_dir=tmp_path / "new")
    settings.model_folder.mkdir(parents=True)
    shutil.copy(models["shared"], settings.model_folder / "mine.gguf")
    new_db = Database(settings.db_path)
    await new_db.open()
    manager = ModelManager(settings, new_db, ResidencyManager(MemoryBudget()))
    await manager.start(run_downloads=False)
    applied: list[bytes] = []

    async def apply(archive: Path) -> None:
        applied.append(archive.read_bytes())

    pulls = MovePulls(settings.data_dir / "move-in", manager, apply, policy=FetchPolicy(retry_delays=(0.01,)))
    yield Devices(offers=offers, pulls=pulls, manager=manager, applied=applied, models=models,
                  address=f"127.0.0.1:{port}")
    await pulls.stop()
    await offers.stop()
    server.should_exit = True
    await serving
    await manager.stop()
    await new_db.close()
    await old_db.close()


async def test_everything_arrives_checked_and_in_place(devices: Devices) -> None:
    offer = await devices.offer()
    pull = await devices.pull(offer.shown_code)
    assert pull.state is PullState.DONE, pull.error
    assert devices.applied == [ARCHIVE]
    assert {f.file.name: f.state for f in pull.files} == {
        "gridless-move.tar": "installed", "moved.gguf": "installed", "shared.gguf": "skipped"}
    installed = {r.name: r for r in devices.manager.installed(Job.CHAT) if r.source != "bundled"}
    assert set(installed) == {"mine", "moved"}  # the shared model was not added twice
    moved = installed["moved"]
    assert moved.path.read_bytes() == devices.models["moved"].read_bytes()
    assert moved.context_choice == 2048  # the owner's choice came along
    assert not devices.pulls.in_dir.exists()
    assert offer.state is OfferState.FINISHED
    assert pull.received_bytes == pull.total_bytes == len(ARCHIVE) + devices.models["moved"].stat().st_size


async def test_a_saved_session_continues_after_a_restart(devices: Devices) -> None:
    offer = await devices.offer()
    token = devices.offers.redeem(offer.code, "127.0.0.1")
    # what a pull cut off by a restart left: its session and half of the model file
    moved = devices.models["moved"].read_bytes()
    in_dir = devices.pulls.in_dir
    in_dir.mkdir(parents=True)
    (in_dir / "session.json").write_text(json.dumps({"origin": f"http://{devices.address}", "token": token}))
    (in_dir / f"{hashlib.sha256(moved).hexdigest()}.part").write_bytes(moved[:len(moved) // 2])
    pull = await devices.pull("")  # the code was used up by the first pull
    assert pull.state is PullState.DONE, pull.error
    assert next(f for f in pull.files if f.file.name == "moved.gguf").state == "installed"


async def test_an_ended_offer_is_said_so(devices: Devices) -> None:
    offer = await devices.offer()
    await devices.offers.cancel()
    pull = await devices.pull(offer.code)
    assert pull.state is PullState.FAILED and pull.error and "not valid" in pull.error
    assert devices.applied == []
