"""`gridless backup` and `gridless restore`, run as a person runs them (a process each)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from backend.core.config import Settings
from backend.storage.backup import write_backup
from backend.storage.backup_format import MANIFEST_NAME
from backend.storage.data_lock import DataLock
from tests.backups import leftovers, populate, settings_in, state


def gridless(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDLESS_", "PYTEST_"))}
    return subprocess.run([sys.executable, "-m", "backend.cli", *args], input=stdin, capture_output=True,
                          env=env, timeout=120, stdin=None if stdin is not None else subprocess.DEVNULL)


@pytest.fixture
def source(tmp_path: Path) -> Settings:
    settings = settings_in(tmp_path / "source")
    asyncio.run(populate(settings, tag="cli", model=False))
    return settings


def test_backup_writes_a_file_and_will_not_replace_one(source: Settings, tmp_path: Path) -> None:
    target = tmp_path / "out" / "chats.tar"
    target.parent.mkdir()
    done = gridless("backup", str(target), "--data-dir", str(source.data_dir))
    assert done.returncode == 0, done.stderr
    assert b"backed up 4 files" in done.stderr
    with tarfile.open(target) as tar:
        assert "gridless.db" in tar.getnames() and tar.getnames()[-1] == MANIFEST_NAME
    assert [p.name for p in target.parent.iterdir()] == ["chats.tar"]  # no part file left

    target.write_bytes(b"something precious")
    refused = gridless("backup", str(target), "--data-dir", str(source.data_dir))
    assert refused.returncode == 1 and b"exists; add --force" in refused.stderr
    assert target.read_bytes() == b"something precious"
    forced = gridless("backup", str(target), "--force", "--data-dir", str(source.data_dir))
    assert forced.returncode == 0 and tarfile.is_tarfile(target)


def test_backup_to_standard_output_and_restore_from_a_file(source: Settings, tmp_path: Path) -> None:
    made = gridless("backup", "-", "--data-dir", str(source.data_dir))
    assert made.returncode == 0, made.stderr
    archive = tmp_path / "piped.tar"
    archive.write_bytes(made.stdout)
    target = settings_in(tmp_path / "target")
    asyncio.run(populate(target, tag="other", model=False))

    asked = gridless("restore", str(archive), "--data-dir", str(target.data_dir))  # no terminal to ask on
    assert asked.returncode == 2 and b"add --yes" in asked.stderr

    done = gridless("restore", str(archive), "--yes", "--data-dir", str(target.data_dir))
    assert done.returncode == 0, done.stderr
    assert b"3 conversations" in done.stderr and b"restored" in done.stderr
    assert state(target)["rows"] == state(source)["rows"]
    assert state(target)["media"] == state(source)["media"]
    assert leftovers(target) == []

    fresh = settings_in(tmp_path / "fresh")  # a new device: nothing there yet, the archive on standard input
    piped = gridless("restore", "-", "--yes", "--data-dir", str(fresh.data_dir), stdin=made.stdout)
    assert piped.returncode == 0, piped.stderr
    assert state(fresh)["rows"] == state(source)["rows"]


def test_restore_refuses_while_a_server_holds_the_data(source: Settings, tmp_path: Path) -> None:
    archive = tmp_path / "b.tar"
    with archive.open("wb") as out:
        write_backup(out, source)
    before = state(source)
    lock = DataLock(source.data_dir)  # as a running server holds it
    lock.acquire()
    try:
        refused = gridless("restore", str(archive), "--yes", "--data-dir", str(source.data_dir))
    finally:
        lock.release()
    assert refused.returncode == 1
    assert b"in use by another gridless" in refused.stderr and b"Backup page" in refused.stderr
    assert state(source) == before


def test_a_bad_file_is_refused_and_nothing_changes(source: Settings, tmp_path: Path) -> None:
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not a backup" * 100)
    before = state(source)
    refused = gridless("restore", str(bad), "--yes", "--data-dir", str(source.data_dir))
    assert refused.returncode == 1 and b"not a gridless backup" in refused.stderr
    missing = gridless("restore", str(tmp_path / "nowhere.tar"), "--yes", "--data-dir", str(source.data_dir))
    assert missing.returncode == 1 and b"There is no file" in missing.stderr
    assert state(source) == before and leftovers(source) == []


def test_backup_of_an_empty_folder_says_so(tmp_path: Path) -> None:
    done = gridless("backup", str(tmp_path / "x.tar"), "--data-dir", str(tmp_path / "nothing"))
    assert done.returncode == 1 and b"no gridless data" in done.stderr
    assert not (tmp_path / "x.tar").exists()
