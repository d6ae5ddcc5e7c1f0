"""`Services.restore`: a backup put in place while the app runs, without a restart. Everything stops,
the files are swapped, and everything starts again on the same objects; requests meanwhile wait."""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backend.core.config import Settings
from backend.core.errors import AppError, ErrorCode
from backend.services import Services
from backend.storage import backup_swap
from backend.storage.backup import check_and_stage, write_backup
from tests.backups import leftovers
from tests.threads import ENGINE_THREADS


def settings_for(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", token="t" * 20, hf_endpoint="http://127.0.0.1:9",
                    threads=ENGINE_THREADS)


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    built = Services.build(settings_for(tmp_path))
    await built.start()
    try:
        yield built
    finally:
        await built.stop()


async def backup_of(services: Services) -> bytes:
    out = io.BytesIO()
    await asyncio.to_thread(write_backup, out, services.settings)
    return out.getvalue()


async def titles(services: Services) -> list[str]:
    return sorted(c.title for c in await services.store.list_recent())


async def test_restore_while_running_brings_the_data_back_and_the_app_goes_on(services: Services) -> None:
    kept = [await services.store.create(title=f"kept {n}") for n in range(2)]
    await services.store.add_message(kept[0].id, "user", "remember this")
    _, token = await services.devices.add("Tablet")
    data = await backup_of(services)
    await services.conversations.delete(kept[0].id)
    await services.store.create(title="made after the backup")
    late_device, _ = await services.devices.add("Late tablet")
    revoked: list[str] = []
    services.devices.on_revoke(revoked.append)

    staged = await asyncio.to_thread(check_and_stage, io.BytesIO(data), services.settings)
    counts = await services.restore(staged)

    assert counts["conversations"] == 2 and counts["messages"] == 1
    assert await titles(services) == ["kept 0", "kept 1"]
    assert [m.content for m in await services.store.messages(kept[0].id)] == ["remember this"]
    assert services.started.is_set() and not services.restoring
    assert revoked == [late_device.id]  # its connections are closed: the restored data does not know it
    assert services.devices.authenticate(token, "127.0.0.1") is not None
    # the same objects work again: a new conversation, the models, a second backup
    await services.store.create(title="after the restore")
    assert "after the restore" in await titles(services)
    assert services.models.active("chat") is not None
    assert (await backup_of(services))[:3]
    assert leftovers(services.settings) == []


async def test_requests_during_the_swap_wait_for_it(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    await services.store.create(title="before")
    data = await backup_of(services)
    seen: list[bool] = []
    monkeypatch.setattr(backup_swap, "step_hook", lambda step: seen.append(services.started.is_set()))
    staged = await asyncio.to_thread(check_and_stage, io.BytesIO(data), services.settings)
    restoring = asyncio.create_task(services.restore(staged))
    await asyncio.sleep(0)  # the restore has begun: the data is closing
    assert not services.started.is_set()

    async def request() -> list[str]:
        await services.ready()  # what every route and page does first
        return await titles(services)

    assert await request() == ["before"]
    await restoring
    assert seen and not any(seen)
    with pytest.raises(AppError) as caught:  # with the data closed, a store says so (503), it does not crash
        await services.db.close()
        await services.store.list_recent()
    assert caught.value.code == ErrorCode.BUSY
    await services.db.open()


async def test_a_restore_waits_for_no_backup_and_refuses_while_one_is_written(services: Services) -> None:
    data = await backup_of(services)
    staged = await asyncio.to_thread(check_and_stage, io.BytesIO(data), services.settings)
    with services.backups.streaming():
        with pytest.raises(AppError) as caught:
            await services.restore(staged)
    assert caught.value.code == ErrorCode.CONFLICT
    assert leftovers(services.settings) == []  # the staged files went with the refusal
    staged = await asyncio.to_thread(check_and_stage, io.BytesIO(data), services.settings)
    await services.restore(staged)  # and once the backup is done, it goes


async def test_backups_for_the_page_keep_only_the_newest(services: Services) -> None:
    await services.store.create(title="in the backup")
    files = []
    for _ in range(2):
        run = services.backups.start(include_models=False)
        while not run.finished:
            await asyncio.sleep(0.02)
        assert run.error is None and run.file is not None and run.done == run.total > 0
        files.append(run.file)
    assert services.backups.latest() == files[1]
    assert [p.name for p in services.backups.folder.iterdir()] == [files[1].name]
    assert services.backups.file(files[1].name) == files[1]
    assert services.backups.file("../gridless.db") is None
    staged = await asyncio.to_thread(check_and_stage, files[1], services.settings)
    assert staged.counts["conversations"] == 1
    staged.discard()


async def test_a_second_server_on_the_same_data_is_refused(services: Services) -> None:
    other = Services.build(services.settings)
    with pytest.raises(RuntimeError, match="in use by another gridless"):
        await other.start()


async def test_start_removes_what_a_killed_backup_left(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    (settings.data_dir / "backups").mkdir(parents=True)
    part = settings.data_dir / "backups" / ".gridless-backup-20260101-0000.tar.part"
    part.write_bytes(b"half")
    old, recent = settings.data_dir / ".backup-0123456789ab.db", settings.data_dir / ".backup-ba9876543210.db"
    for copy in (old, recent):
        copy.write_bytes(b"SQLite format 3\0")
    os.utime(old, (time.time() - 2 * 86400, time.time() - 2 * 86400))
    built = Services.build(settings)
    await built.start()
    try:
        assert not part.exists() and not old.exists()
        assert recent.exists()  # perhaps a backup from the command line, running now
    finally:
        await built.stop()
