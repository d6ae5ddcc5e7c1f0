"""The old device's offer: a code that works once and only for 15 minutes, guesses held back,
the files it prepares (archive first, model files with their sha256, computed once)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from backend.core.errors import AppError, ErrorCode
from backend.core.jobs import Job
from backend.models.registry import ModelRecord, ModelRegistry
from backend.move import offer as offer_module
from backend.move.offer import MAX_WRONG, MoveOffers, OfferState
from backend.storage.db import Database
from tests.clocks import FakeClock

ARCHIVE = b"pretend this is a tar of the database and media" * 100


async def write_archive(out: Path, progress: Callable[[int, int], None]) -> None:
    out.write_bytes(ARCHIVE)
    progress(len(ARCHIVE), len(ARCHIVE))


@pytest.fixture
async def registry(db: Database, tmp_path: Path) -> ModelRegistry:
    registry = ModelRegistry(db)
    await registry.load()
    model = tmp_path / "models" / "tiny.gguf"
    model.parent.mkdir()
    model.write_bytes(b"GGUF" + bytes(range(256)) * 40)
    await registry.add(ModelRecord(id="tiny", job=Job.CHAT, name="Tiny", format="gguf", path=model,
                                   size_bytes=model.stat().st_size, source="import", context_choice=1024))
    bundled = tmp_path / "bundled.gguf"
    bundled.write_bytes(b"GGUF" + bytes(100))
    await registry.add(ModelRecord(id="bundled", job=Job.CHAT, name="Bundled", format="gguf", path=bundled,
                                   size_bytes=104, source="bundled"))
    return registry


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def offers(tmp_path: Path, registry: ModelRegistry, clock: FakeClock) -> MoveOffers:
    return MoveOffers(tmp_path / "move-out", registry, write_archive, clock=clock)


async def ready(offers: MoveOffers) -> None:
    for _ in range(200):
        offer = offers.current()
        assert offer is not None and offer.error is None, offer and offer.error
        if offer.state is not OfferState.PREPARING:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the offer was never ready")


async def test_the_code_is_eight_digits_and_the_files_are_prepared(offers: MoveOffers, tmp_path: Path) -> None:
    offer = await offers.create()
    assert len(offer.code) == 8 and offer.code.isdigit()
    assert offer.shown_code == f"{offer.code[:4]} {offer.code[4:]}"
    await ready(offers)
    archive, *models = offer.files
    assert archive.file.kind == "archive" and archive.path.read_bytes() == ARCHIVE
    assert archive.file.sha256 == hashlib.sha256(ARCHIVE).hexdigest()
    assert archive.path.is_relative_to(tmp_path / "move-out")
    # the bundled model comes with the app on the new device: only the imported one is offered
    assert [(m.file.name, m.file.model and m.file.model["id"]) for m in models] == [("tiny.gguf", "tiny")]
    model = models[0]
    assert model.file.sha256 == hashlib.sha256(model.path.read_bytes()).hexdigest()
    assert model.file.model is not None and model.file.model["context_choice"] == 1024


async def test_a_code_works_once(offers: MoveOffers) -> None:
    offer = await offers.create()
    token = offers.redeem(offer.code[:4] + " " + offer.code[4:], "10.0.0.2")
    assert offers.authorize(f"Bearer {token}") is offer
    with pytest.raises(AppError) as again:
        offers.redeem(offer.code, "10.0.0.2")
    assert again.value.code is ErrorCode.INVALID_CODE
    assert offers.authorize(f"Bearer {token}") is offer  # the session goes on


async def test_a_code_expires_after_15_minutes(offers: MoveOffers, clock: FakeClock) -> None:
    offer = await offers.create()
    clock.now += 15 * 60 - 1
    assert offers.current() is offer and offer.state.open
    clock.now += 2
    with pytest.raises(AppError) as expired:
        offers.redeem(offer.code, "10.0.0.2")
    assert expired.value.code is ErrorCode.INVALID_CODE and "expired" in expired.value.message
    assert offer.state is OfferState.EXPIRED and offer.finished.is_set()


async def test_a_session_ends_when_unused_but_not_while_pulling(offers: MoveOffers, clock: FakeClock) -> None:
    offer = await offers.create()
    token = offers.redeem(offer.code, "10.0.0.2")
    for _ in range(4):  # an hour of pulling: each request keeps the session
        clock.now += 15 * 60
        offers.authorize(f"Bearer {token}")
    clock.now += 31 * 60
    with pytest.raises(AppError) as ended:
        offers.authorize(f"Bearer {token}")
    assert ended.value.code is ErrorCode.UNAUTHORIZED


async def test_wrong_and_missing_sessions_refused(offers: MoveOffers) -> None:
    offer = await offers.create()
    offers.redeem(offer.code, "10.0.0.2")
    for header in (None, "", "Bearer ", "Bearer wrong", "Basic abc", offer.code):
        with pytest.raises(AppError) as refused:
            offers.authorize(header)
        assert refused.value.status == 401


async def test_wrong_codes_are_held_back_per_address(offers: MoveOffers) -> None:
    offer = await offers.create()
    wrong = f"{(int(offer.code) + 1) % 10 ** 8:08d}"
    for _ in range(5):
        with pytest.raises(AppError) as refused:
            offers.redeem(wrong, "10.0.0.9")
        assert refused.value.code is ErrorCode.INVALID_CODE
    with pytest.raises(AppError) as held:
        offers.redeem(offer.code, "10.0.0.9")  # even the right code, from that address, waits
    assert held.value.code is ErrorCode.TOO_MANY_ATTEMPTS and held.value.retry_after > 0
    assert offers.redeem(offer.code, "10.0.0.2")  # another address is not held back


async def test_too_many_wrong_codes_end_the_offer(offers: MoveOffers, monkeypatch: pytest.MonkeyPatch) -> None:
    offer = await offers.create()
    wrong = f"{(int(offer.code) + 1) % 10 ** 8:08d}"
    for n in range(MAX_WRONG):
        with pytest.raises(AppError):
            offers.redeem(wrong, f"10.0.{n}.1")  # spread over addresses, as a guesser would
    assert offer.state is OfferState.CANCELLED and offer.error and "wrong codes" in offer.error
    with pytest.raises(AppError):
        offers.redeem(offer.code, "10.0.0.200")


async def test_the_manifest_waits_for_the_archive(offers: MoveOffers, tmp_path: Path) -> None:
    gate = asyncio.Event()

    async def slow_archive(out: Path, progress: Callable[[int, int], None]) -> None:
        progress(10, 100)
        await gate.wait()
        await write_archive(out, progress)

    offers.write_archive = slow_archive
    offer = await offers.create()
    token = offers.redeem(offer.code, "10.0.0.2")
    await asyncio.sleep(0.05)
    assert (offer.prepared, offer.prepare_total) == (10, 100)
    with pytest.raises(AppError) as busy:
        offers.manifest(offers.authorize(f"Bearer {token}"))
    assert busy.value.code is ErrorCode.BUSY and busy.value.retry_after > 0
    gate.set()
    await ready(offers)
    assert offer.state is OfferState.PULLING
    assert [f.kind for f in offers.manifest(offer)] == ["archive", "model"]


async def test_cancel_ends_the_session_and_removes_the_archive(offers: MoveOffers, tmp_path: Path) -> None:
    offer = await offers.create()
    token = offers.redeem(offer.code, "10.0.0.2")
    await ready(offers)
    assert (tmp_path / "move-out").exists()
    await offers.cancel()
    assert offer.state is OfferState.CANCELLED
    assert not (tmp_path / "move-out").exists()
    with pytest.raises(AppError):
        offers.authorize(f"Bearer {token}")


async def test_a_failed_archive_is_reported(offers: MoveOffers) -> None:
    async def full_disk(out: Path, progress: Callable[[int, int], None]) -> None:
        raise AppError(ErrorCode.DISK_FULL, "No room for the backup.")

    offers.write_archive = full_disk
    offer = await offers.create()
    await asyncio.wait_for(offer.finished.wait(), 5)
    assert offer.state is OfferState.FAILED and offer.error_code is ErrorCode.DISK_FULL


async def test_model_checksums_are_computed_once(offers: MoveOffers, monkeypatch: pytest.MonkeyPatch) -> None:
    computed: list[Path] = []
    real = offer_module.file_sha256

    def counting(path: Path) -> str:
        computed.append(path)
        return real(path)

    monkeypatch.setattr(offer_module, "file_sha256", counting)
    for _ in range(2):
        await offers.create()
        await ready(offers)
    assert [p.name for p in computed].count("tiny.gguf") == 1
