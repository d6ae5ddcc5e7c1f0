"""Downloads through the model manager against a local server speaking the hub's protocol."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from backend.models import downloads as downloads_module
from backend.models.downloads import DownloadError
from backend.models.manager import ModelManagerError
from backend.runtime.residency import MemoryBudget, MemoryRefused
from tests.backend.models.conftest import MODEL_FILE, REPO, SPEECH_REPO, VISION_REPO, Env, wait_for


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model_files(env: Env) -> list[Path]:
    folder = env.settings.model_folder
    return sorted(p for p in folder.rglob("*") if p.is_file() and ".partial" not in p.parts)


async def test_full_download_is_verified_and_registered(env: Env, hub_files: dict[str, Path]) -> None:
    dl = await env.manager.pull_catalog("tiny-chat")
    assert dl.bytes_total == hub_files[MODEL_FILE].stat().st_size
    done = await wait_for(env, dl.id)
    assert done.state == "done", done.error
    record = env.manager.get(done.model_id or "")
    assert record is not None and record.job == "chat" and record.source == "hub" and record.repo == REPO
    assert record.path.is_file() and sha256(record.path) == sha256(hub_files[MODEL_FILE])
    assert record.quantization == "F32" and record.license == "apache-2.0" and record.info["layers"] == 2
    assert env.hub.sent(REPO, MODEL_FILE) == record.size_bytes
    assert not (env.settings.model_folder / ".partial" / dl.id).exists()
    # the row survives a restart
    await env.restart()
    again = env.manager.get(record.id)
    assert again is not None and again.path == record.path


async def test_killed_download_resumes_with_only_the_rest(env: Env, hub_files: dict[str, Path]) -> None:
    size = hub_files[MODEL_FILE].stat().st_size
    env.hub.throttle_bps = size // 2  # about two seconds for the whole file
    dl = await env.manager.pull(REPO, MODEL_FILE)
    async with asyncio.timeout(20):
        while env.manager.downloads.get(dl.id).bytes_done < size * 0.4:  # type: ignore[union-attr]
            await asyncio.sleep(0.02)
    await env.restart()  # the server goes away mid-transfer and comes back
    env.hub.throttle_bps = None
    resumed = await wait_for(env, dl.id)
    assert resumed.state == "done", resumed.error
    gets = [r for r in env.hub.requests if r.method == "GET" and MODEL_FILE in r.path]
    # the header is read first (for the memory estimate) and becomes the start of the file
    assert [g.range for g in gets[:2]] == ["bytes=0-262143", "bytes=262144-"] and len(gets) == 3
    kept = int(gets[2].range.removeprefix("bytes=").removesuffix("-"))  # type: ignore[union-attr]
    assert kept >= size * 0.3, f"only {kept} of {size} bytes were kept"
    assert gets[2].sent == size - kept, "the resumed request fetched more than the rest"
    record = env.manager.get(resumed.model_id or "")
    assert record is not None and sha256(record.path) == sha256(hub_files[MODEL_FILE])


async def test_server_that_ignores_range_does_not_corrupt(env: Env, hub_files: dict[str, Path]) -> None:
    size = hub_files[MODEL_FILE].stat().st_size
    env.hub.throttle_bps = size // 2
    dl = await env.manager.pull(REPO, MODEL_FILE)
    async with asyncio.timeout(20):
        while env.manager.downloads.get(dl.id).bytes_done < size * 0.4:  # type: ignore[union-attr]
            await asyncio.sleep(0.02)
    await env.restart()
    env.hub.throttle_bps = None
    env.hub.ignore_range = True
    done = await wait_for(env, dl.id)
    assert done.state == "done", done.error
    record = env.manager.get(done.model_id or "")
    assert record is not None and sha256(record.path) == sha256(hub_files[MODEL_FILE])


async def test_checksum_mismatch_deletes_the_file(env: Env) -> None:
    env.hub.advertise_sha[MODEL_FILE] = "0" * 64
    dl = await env.manager.pull(REPO, MODEL_FILE)
    failed = await wait_for(env, dl.id)
    assert failed.state == "failed"
    assert failed.error is not None and "checksum" in failed.error and "deleted" in failed.error
    assert model_files(env) == []
    assert not any(p.is_file() for p in (env.settings.model_folder / ".partial").rglob("*.part"))
    assert env.manager.installed("chat") == [m for m in env.manager.installed("chat") if m.source == "bundled"]


@pytest.mark.parametrize("name", ["../evil.gguf", "..\\evil.gguf", "/etc/passwd", "C:\\evil.gguf"])
async def test_unsafe_names_from_a_listing_are_rejected_before_any_write(env: Env, hub_files: dict[str, Path],
                                                                         name: str, tmp_path: Path) -> None:
    env.hub.add_listing_entry(REPO, name, hub_files[MODEL_FILE])
    listing = await env.manager.listing(REPO)
    assert name in listing.rejected and name not in [f.path for f in listing.files]
    env.hub.reset_counters()
    with pytest.raises(ModelManagerError):
        await env.manager.pull(REPO, name)
    assert not [r for r in env.hub.requests if "resolve" in r.path], "a request was made for an unsafe name"
    assert not (tmp_path / "evil.gguf").exists() and not (env.settings.data_dir / "evil.gguf").exists()
    assert model_files(env) == []


async def test_disk_full_is_refused_before_starting(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    real = downloads_module.shutil.disk_usage

    def tiny_disk(path: object) -> object:
        usage = real(path)  # type: ignore[arg-type]
        return type(usage)(usage.total, usage.total - 1_000_000, 1_000_000)

    monkeypatch.setattr(downloads_module.shutil, "disk_usage", tiny_disk)
    with pytest.raises(DownloadError, match="not enough free space"):
        await env.manager.pull(REPO, MODEL_FILE)
    assert env.manager.downloads.all() == [] and model_files(env) == []


async def test_pause_resume_and_cancel(env: Env, hub_files: dict[str, Path]) -> None:
    size = hub_files[MODEL_FILE].stat().st_size
    env.hub.throttle_bps = size // 3
    dl = await env.manager.pull(REPO, MODEL_FILE)
    async with asyncio.timeout(20):
        while dl.bytes_done < 1024 * 1024:
            await asyncio.sleep(0.02)
    await env.manager.downloads.pause(dl.id)
    await asyncio.sleep(0.5)
    paused_at = env.hub.sent(REPO, MODEL_FILE)
    await asyncio.sleep(0.5)
    assert dl.state == "paused"
    assert env.hub.sent(REPO, MODEL_FILE) - paused_at < 256 * 1024, "a paused download kept receiving"
    env.hub.throttle_bps = None
    await env.manager.downloads.resume(dl.id)
    done = await wait_for(env, dl.id)
    assert done.state == "done", done.error
    assert env.hub.sent(REPO, MODEL_FILE) < size * 1.2  # no restart from zero

    env.hub.throttle_bps = size // 3
    second = await env.manager.pull(REPO, "tiny-Q8_0.gguf")
    async with asyncio.timeout(20):
        while second.bytes_done < 512 * 1024:
            await asyncio.sleep(0.02)
    await env.manager.downloads.cancel(second.id)
    assert second.state == "cancelled"
    partial = env.settings.model_folder / ".partial" / second.id
    async with asyncio.timeout(5):  # the transfer thread lets go at its next chunk
        while partial.exists():
            await asyncio.sleep(0.05)
    assert all(r.path.name != "tiny-Q8_0.gguf" for r in env.manager.installed())


async def test_vision_model_brings_its_projector(env: Env) -> None:
    dl = await env.manager.pull(VISION_REPO, "vision-Q8_0.gguf")
    assert [f.role for f in dl.files] == ["model", "projector"]
    done = await wait_for(env, dl.id)
    assert done.state == "done", done.error
    record = env.manager.get(done.model_id or "")
    assert record is not None and record.job == "vision"
    assert record.projector is not None and record.projector.name == "mmproj-vision-f16.gguf"
    assert record.projector.is_file()


async def test_a_hub_file_that_is_not_a_model_is_refused_before_downloading(env: Env) -> None:
    with pytest.raises(ModelManagerError, match="not a GGUF"):
        await env.manager.pull(REPO, "notes.gguf")
    assert env.manager.downloads.all() == [] and model_files(env) == []


async def test_a_download_that_is_not_a_model_is_refused_and_removed(env: Env) -> None:
    dl = await env.manager.pull_catalog("notes-chat")  # no header check first: found at install
    failed = await wait_for(env, dl.id)
    assert failed.state == "failed" and failed.error is not None and "not a GGUF" in failed.error
    assert model_files(env) == []
    assert not any((env.settings.model_folder / ".partial").rglob("*.part"))


async def test_catalog_entry_too_big_for_the_budget_is_refused(env: Env) -> None:
    with pytest.raises(MemoryRefused, match="memory budget"):
        await env.manager.pull_catalog("huge-chat")
    assert env.manager.downloads.all() == []


async def test_network_loss_mid_download_is_retried(env: Env, hub_files: dict[str, Path]) -> None:
    size = hub_files[MODEL_FILE].stat().st_size
    env.hub.cut(size // 2)
    dl = await env.manager.pull(REPO, MODEL_FILE)
    done = await wait_for(env, dl.id)
    assert done.state == "done", done.error
    record = env.manager.get(done.model_id or "")
    assert record is not None and sha256(record.path) == sha256(hub_files[MODEL_FILE])


async def test_hub_file_is_estimated_from_its_header_before_downloading(env: Env, hub_files: dict[str, Path]) -> None:
    size = hub_files[MODEL_FILE].stat().st_size
    dl = await env.manager.pull(REPO, MODEL_FILE)
    done = await wait_for(env, dl.id)
    assert done.state == "done", done.error
    assert env.hub.sent(REPO, MODEL_FILE) == size, "the header bytes were fetched twice"


async def test_hub_file_over_the_budget_is_refused_before_downloading(env: Env) -> None:
    env.residency.budget = MemoryBudget(fixed_bytes=80 * 1024 * 1024)
    env.hub.reset_counters()
    with pytest.raises(MemoryRefused, match="memory budget") as refused:
        await env.manager.pull(REPO, MODEL_FILE)
    assert "context of" in str(refused.value)
    assert env.hub.sent(REPO, MODEL_FILE) <= 256 * 1024  # only the header was read
    assert env.manager.downloads.all() == []
    assert not any(p.is_file() for p in (env.settings.model_folder / ".partial").rglob("*.part"))
    assert not [p for p in (env.settings.model_folder / ".partial").glob("header-*")]
    forced = await env.manager.pull(REPO, MODEL_FILE, override=True)
    assert (await wait_for(env, forced.id)).state == "done"


async def test_speech_model_folder_with_small_git_files(env: Env, speech_files: dict[str, Path]) -> None:
    dl = await env.manager.pull_catalog("tiny-whisper")
    # weights are checked by sha256, small text files by their git blob id
    assert [(f.path, f.sha256 is not None, f.git_sha1 is not None) for f in dl.files] == [
        ("model.bin", True, False), ("config.json", False, True), ("vocabulary.txt", False, True)]
    done = await wait_for(env, dl.id)
    assert done.state == "done", done.error
    record = env.manager.get(done.model_id or "")
    assert record is not None and record.job == "speech" and record.format == "ctranslate2"
    assert record.path.is_dir() and record.path.name == SPEECH_REPO.replace("/", "__")
    for name in ("model.bin", "config.json", "vocabulary.txt"):
        assert (record.path / name).read_bytes() == speech_files[name].read_bytes()
    await env.manager.delete(record.id)
    assert not record.path.exists()


async def test_voice_with_its_config_in_nested_folders(env: Env) -> None:
    done = await wait_for(env, (await env.manager.pull_catalog("test-voice")).id)
    assert done.state == "done", done.error
    record = env.manager.get(done.model_id or "")
    assert record is not None and record.job == "voice" and record.format == "onnx"
    assert record.path.name == "en_US-test-medium.onnx" and record.path.is_file()
    companion = record.path.with_name("en_US-test-medium.onnx.json")
    assert companion in record.files and companion.is_file()
    assert record.info["language"] == "en_US"  # from the .onnx.json, for choosing a voice by language
    await env.manager.delete(record.id)
    assert not record.path.exists() and not companion.exists()
    assert not (env.settings.model_folder / "acme__piper-voices").exists()  # empty folders go too


async def test_small_file_with_a_wrong_git_id_is_refused(env: Env) -> None:
    env.hub.advertise_sha["config.json"] = "f" * 40
    dl = await env.manager.pull_catalog("tiny-whisper")
    failed = await wait_for(env, dl.id)
    assert failed.state == "failed" and failed.error is not None and "config.json failed its checksum" in failed.error
    assert {m.source for m in env.manager.installed("speech")} == {"bundled"}  # nothing added beside them
