"""Hostile model files in the manager's hands: imported (refused with their reason, nothing
copied) and found in the models folder at start (logged, not registered, and never keeping
start-up waiting). Files an unbounded reader would walk for hours are read only in child
processes a hang cannot outlive: the server here, the command line in test_cli."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backend.models import install as manager_module
from backend.models.files import Inspected, inspect_model_file
from backend.models.manager import ModelFileError, ModelManager
from backend.storage.db import Database
from tests.backend.models.conftest import Env
from tests.ggufs import write_lm_gguf
from tests.hostile_ggufs import HOSTILE, write_long_strings
from tests.server import ServerProcess

BUNDLED_ID = "smollm2-135m-instruct"
QUICK = ["strings-1000.gguf", "architecture-10mb.gguf", "nested-lists.gguf", "no-tensors.gguf"]
"""The ones an unbounded reader gets through too, only with the wrong answer."""
HANG_GUARD_S = 30
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[Path]:
    """A folder for hostile files to import from, emptied after the test."""
    folder = tmp_path / "hostile"
    folder.mkdir()
    yield folder
    for path in folder.iterdir():
        path.unlink()


def model_files(env: Env) -> list[Path]:
    folder = env.settings.model_folder
    return sorted(p for p in folder.rglob("*") if p.is_file() and ".partial" not in p.parts)


@pytest.mark.parametrize("name", QUICK)
async def test_import_refuses_each_with_its_reason(env: Env, hostile: Path, name: str) -> None:
    write, reason = HOSTILE[name]
    path = write(hostile / name)
    with pytest.raises(ModelFileError) as refused:
        await env.manager.import_file(path, "chat")
    assert reason in str(refused.value)
    assert model_files(env) == [] and [r.id for r in env.manager.installed("chat")] == [BUNDLED_ID]


async def test_hostile_files_in_the_models_folder_are_logged_not_registered(
        env: Env, caplog: pytest.LogCaptureFixture) -> None:
    folder = env.settings.model_folder
    folder.mkdir(parents=True, exist_ok=True)
    for name in QUICK:
        HOSTILE[name][0](folder / name)
    good = write_lm_gguf(folder / "good.gguf", size_mb=0.2)
    try:
        with caplog.at_level(logging.WARNING, logger="backend.models.manager"):
            await env.restart()
        bundled = env.manager.get(BUNDLED_ID)
        assert bundled is not None and {r.path for r in env.manager.installed("chat")} == {bundled.path, good}
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        for name in QUICK:
            said = [w for w in warnings if f"ignoring {folder / name}: " in w]
            assert len(said) == 1 and HOSTILE[name][1] in said[0], warnings
    finally:
        for name in QUICK:
            (folder / name).unlink()


async def test_start_does_not_wait_for_a_slow_folder(env: Env, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """Whatever keeps the folder's files from being checked (here: a check that waits until the test
    lets it go), start goes on after `scan_wait_s`; the files found are registered when checked."""
    folder = env.settings.model_folder
    folder.mkdir(parents=True, exist_ok=True)
    slow = write_lm_gguf(folder / "slow.gguf", size_mb=0.2)
    release, reached = threading.Event(), threading.Event()

    def held_back(path: Path, job: str) -> Inspected:
        if path == slow:
            reached.set()
            release.wait(HANG_GUARD_S)
        return inspect_model_file(path, job)

    monkeypatch.setattr(manager_module, "inspect_model_file", held_back)
    await env.manager.stop()
    await env.db.close()
    env.db = Database(env.settings.db_path)
    await env.db.open()
    env.manager = ModelManager(env.settings, env.db, env.residency)
    try:
        with caplog.at_level(logging.WARNING, logger="backend.models.manager"):
            async with asyncio.timeout(HANG_GUARD_S):
                await env.manager.start(scan_wait_s=0.1)
        assert reached.is_set() and not release.is_set(), "start returned while the file was being checked"
        assert env.manager.get(BUNDLED_ID) is not None and env.manager.active("chat") is not None
        assert all(r.path != slow for r in env.manager.installed())
        assert any("still looking through the models folder" in r.getMessage() for r in caplog.records)
        release.set()
        assert env.manager.folder_scan is not None
        async with asyncio.timeout(HANG_GUARD_S):
            await env.manager.folder_scan
        assert any(r.path == slow for r in env.manager.installed())
    finally:
        release.set()


async def test_stop_leaves_a_folder_scan_that_has_not_finished(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = env.settings.model_folder
    folder.mkdir(parents=True, exist_ok=True)
    first, second = write_lm_gguf(folder / "a.gguf", size_mb=0.2), write_lm_gguf(folder / "b.gguf", size_mb=0.2)
    release = threading.Event()

    def held_back(path: Path, job: str) -> Inspected:
        if path == first:
            release.wait(HANG_GUARD_S)
        return inspect_model_file(path, job)

    monkeypatch.setattr(manager_module, "inspect_model_file", held_back)
    await env.manager.stop()
    env.manager = ModelManager(env.settings, env.db, env.residency)
    try:
        async with asyncio.timeout(HANG_GUARD_S):
            await env.manager.start(scan_wait_s=0.1)
            scan = env.manager.folder_scan
            await env.manager.stop()
        assert scan is not None and scan.cancelled()
        assert not {r.path for r in env.manager.installed()} & {first, second}
    finally:
        release.set()


def test_a_server_with_hostile_files_in_its_models_folder_starts_and_says_why_it_left_them_out(
        tmp_path: Path) -> None:
    """The real server, started as a process with every hostile file (and a thousand long strings more)
    in its models folder: healthy within the start timeout, the bundled model listed, each file named
    in the log with its reason, and its memory far from the gigabytes that keeping those strings took."""
    data = tmp_path / "data"
    folder = data / "models"
    folder.mkdir(parents=True)
    files = {name: write(folder / name) for name, (write, _) in HOSTILE.items()}
    files["strings-4000.gguf"] = write_long_strings(folder / "strings-4000.gguf", count=4000)
    server = ServerProcess(data_dir=data, env={"PYTHONPATH": str(ROOT)})
    try:
        server.start(timeout=HANG_GUARD_S)  # /healthz 200, or it fails the test
        listed = httpx.get(f"{server.base}/v1/models", headers=server.headers(), timeout=10).json()
        assert BUNDLED_ID in [m["id"] for m in listed["data"]]
        reasons = {name: HOSTILE[name][1] if name in HOSTILE else "more than 4 MiB of text" for name in files}
        deadline = time.monotonic() + HANG_GUARD_S
        while not all(f"ignoring {files[name]}: " in server.log() for name in files) and time.monotonic() < deadline:
            time.sleep(0.2)
        log = server.log()
        for name, reason in reasons.items():
            said = [line for line in log.splitlines() if f"ignoring {files[name]}: " in line]
            assert len(said) == 1 and reason in said[0], log[-3000:]
        listed = httpx.get(f"{server.base}/v1/models", headers=server.headers(), timeout=10).json()
        assert not {m["id"] for m in listed["data"]} & {Path(name).stem for name in files}
        assert server.process is not None
        status = Path(f"/proc/{server.process.pid}/status").read_text()
        peak_kib = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
        assert peak_kib < 1024 * 1024, f"the server peaked at {peak_kib} kB"
    finally:
        server.stop()
        for path in files.values():
            path.unlink()
