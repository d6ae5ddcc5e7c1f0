"""Importing, registering, activating and deleting models, and refusing what would not fit."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import psutil
import pytest

from backend.core.config import Settings
from backend.core.errors import ErrorCode
from backend.engines.llm import ChatRequest
from backend.models.gguf_info import read_gguf_info
from backend.models.manager import ModelFileError, ModelManagerError
from backend.models.memory import estimate_llm
from backend.runtime import host as chat_service_module
from backend.runtime.host import EngineJob
from backend.runtime.residency import MemoryBudget, MemoryRefused, ResidencyManager, Resident
from backend.services import Services
from tests.backend.models.conftest import Env, wait_for
from tests.ggufs import finish_gguf, write_lm_gguf, write_oversized_count_gguf, write_projector_gguf

BUNDLED_ID = "smollm2-135m-instruct"


def model_files(env: Env) -> list[Path]:
    folder = env.settings.model_folder
    return sorted(p for p in folder.rglob("*") if p.is_file() and ".partial" not in p.parts)


def partial_files(env: Env) -> list[Path]:
    """Staged copies left in the scratch folder (its lock file aside)."""
    partial = env.settings.model_folder / ".partial"
    return [p for p in partial.rglob("*") if p.is_file() and p != partial / ".lock"]


def ids(env: Env) -> set[str]:
    return {r.id for r in env.manager.installed()}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "phone-downloads"
    folder.mkdir()
    return folder


async def set_budget(env: Env, budget: int) -> None:
    """Start the manager again over the same data with a fixed memory budget."""
    env.residency = ResidencyManager(MemoryBudget(fixed_bytes=budget))
    await env.restart()


# ----- refused imports leave nothing behind ---------------------------------------------------


@pytest.mark.parametrize(("kind", "error", "reason"), [
    ("text", ModelFileError, "not a GGUF"),
    ("truncated", ModelFileError, "truncated"),
    ("oversized", ModelFileError, "damaged"),
    ("png", ModelFileError, "not a GGUF"),
    ("projector", ModelFileError, "projector"),
    ("txt", ModelManagerError, "must be a .gguf file"),
    ("missing", ModelManagerError, "is not a file"),
])
async def test_refused_imports_register_and_copy_nothing(env: Env, source: Path, kind: str,
                                                         error: type[Exception], reason: str) -> None:
    path = source / ("notes.txt" if kind == "txt" else f"{kind}.gguf")
    if kind in ("text", "txt"):
        path.write_text("not a model at all\n" * 1000)
    elif kind == "truncated":
        whole = write_lm_gguf(source / "whole.gguf", size_mb=1).read_bytes()
        path.write_bytes(whole[: len(whole) * 2 // 3])
    elif kind == "oversized":
        write_oversized_count_gguf(path)
    elif kind == "png":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 4096)
    elif kind == "projector":
        write_projector_gguf(path)
    before = ids(env)
    with pytest.raises(error) as caught:
        await env.manager.import_file(path, "chat")
    message = str(caught.value)
    assert reason in message and "Traceback" not in message
    assert ids(env) == before and model_files(env) == [] and partial_files(env) == []
    await env.restart()
    assert ids(env) == before


@pytest.mark.parametrize("job", ["speech", "voice", "translate"])
async def test_only_heavy_jobs_can_be_imported(env: Env, source: Path, job: str) -> None:
    path = write_lm_gguf(source / "model.gguf", size_mb=0.2)
    with pytest.raises(ModelManagerError, match="not supported"):
        await env.manager.import_file(path, job)
    assert model_files(env) == []


async def test_a_gguf_with_a_text_layer_count_is_refused_plainly(env: Env, source: Path) -> None:
    path = _odd_gguf(source / "odd.gguf")
    with pytest.raises(ModelFileError):
        await env.manager.import_file(path, "chat")


def _odd_gguf(path: Path) -> Path:
    """A GGUF whose layer count is text."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string("llama.block_count", "many")
    writer.add_vocab_size(10)
    writer.add_tensor("w", np.zeros(32, dtype=np.float32))
    finish_gguf(writer)
    return path


# ----- a good import ----------------------------------------------------------------------------


async def test_import_copies_registers_and_survives_a_restart(env: Env, source: Path) -> None:
    src = write_lm_gguf(source / "tiny-Q8_0.gguf", size_mb=1, layers=3)
    record = await env.manager.import_file(src, "chat")
    dest = env.settings.model_folder / "imported" / "tiny-Q8_0.gguf"
    assert record.path == dest and dest.read_bytes() == src.read_bytes() and src.exists()
    assert record.source == "import" and record.job == "chat" and record.id == "tiny-q8_0"
    assert record.format == "gguf" and record.size_bytes == src.stat().st_size
    assert record.info["layers"] == 3 and record.quantization == "F32" and record.license == "apache-2.0"
    assert record.deletable and record.projector is None
    assert partial_files(env) == []
    assert env.manager.active("chat").id == BUNDLED_ID  # type: ignore[union-attr]

    await env.manager.activate("chat", record.id)
    assert env.manager.active("chat").id == record.id  # type: ignore[union-attr]
    await env.restart()
    again = env.manager.get(record.id)
    assert again is not None and again.path == dest and again.source == "import" and again.info == record.info
    assert env.manager.active("chat").id == record.id  # type: ignore[union-attr]

    await env.manager.delete(record.id)
    assert not dest.exists() and env.manager.get(record.id) is None
    assert not (env.settings.model_folder / "imported").exists(), "the emptied folder goes too"
    assert env.manager.active("chat").id == BUNDLED_ID  # type: ignore[union-attr]
    await env.restart()
    assert env.manager.get(record.id) is None and src.exists()


async def test_importing_the_same_file_twice_keeps_both(env: Env, source: Path) -> None:
    src = write_lm_gguf(source / "tiny.gguf", size_mb=0.5)
    first = await env.manager.import_file(src, "chat")
    second = await env.manager.import_file(src, "chat", name="Tiny again")
    assert first.id == "tiny" and second.id == "tiny-again"
    third = await env.manager.import_file(src, "chat")
    assert third.id == "tiny-2" and third.path.name == "tiny-3.gguf"
    assert len({first.path, second.path, third.path}) == 3 and all(p.exists() for p in (first.path, third.path))
    await env.manager.delete(first.id)
    assert not first.path.exists() and third.path.exists()


async def test_import_by_moving(env: Env, source: Path) -> None:
    src = write_lm_gguf(source / "moved.gguf", size_mb=0.5)
    data = src.read_bytes()
    record = await env.manager.import_file(src, "chat", move=True)
    assert not src.exists() and record.path.read_bytes() == data


async def test_activation_checks_the_job(env: Env, source: Path) -> None:
    record = await env.manager.import_file(write_lm_gguf(source / "t.gguf", size_mb=0.5), "chat")
    with pytest.raises(ModelManagerError, match="no vision model") as wrong_job:
        await env.manager.activate("vision", record.id)
    with pytest.raises(ModelManagerError, match="no chat model 'no-such-model'") as unknown:
        await env.manager.activate("chat", "no-such-model")
    assert wrong_job.value.code == unknown.value.code == ErrorCode.MODEL_NOT_FOUND


async def test_the_bundled_model_cannot_be_deleted(env: Env, smollm_path: Path) -> None:
    bundled = env.manager.get(BUNDLED_ID)
    assert bundled is not None and bundled.source == "bundled" and bundled.path == smollm_path
    with pytest.raises(ModelManagerError, match="comes with the app"):
        await env.manager.delete(BUNDLED_ID)
    assert smollm_path.exists() and env.manager.get(BUNDLED_ID) is not None
    with pytest.raises(ModelManagerError, match="no model 'no-such-model'") as unknown:
        await env.manager.delete("no-such-model")
    assert unknown.value.code == ErrorCode.MODEL_NOT_FOUND and unknown.value.status == 404


async def test_a_model_in_use_is_not_deleted(env: Env, source: Path) -> None:
    record = await env.manager.import_file(write_lm_gguf(source / "busy.gguf", size_mb=0.5), "chat")
    unloaded: list[str] = []

    async def unload() -> None:
        unloaded.append(record.id)

    env.residency.register(Resident(name="chat", model=record.id, heavy=True, estimate=1, unload=unload))
    with env.residency.in_use("chat"):
        with pytest.raises(ModelManagerError, match="working right now"):
            await env.manager.delete(record.id)
        assert record.path.exists() and env.manager.get(record.id) is not None
    await env.manager.delete(record.id)
    assert unloaded == [record.id] and not record.path.exists()


# ----- vision imports ---------------------------------------------------------------------------


async def test_a_vision_import_brings_its_projector(env: Env, source: Path) -> None:
    model = write_lm_gguf(source / "vision-Q8_0.gguf", size_mb=1, embedding=64)
    write_projector_gguf(source / "mmproj-vision-f16.gguf", projection_dim=64)
    record = await env.manager.import_file(model, "vision")
    imported = env.settings.model_folder / "imported"
    assert record.job == "vision" and record.path == imported / "vision-Q8_0.gguf"
    assert record.projector == imported / "mmproj-vision-f16.gguf" and record.projector.exists()
    assert record.size_bytes == model.stat().st_size + (source / "mmproj-vision-f16.gguf").stat().st_size
    assert env.manager.estimate(record).weights == record.size_bytes
    await env.restart()
    again = env.manager.get(record.id)
    assert again is not None and again.projector == record.projector
    await env.manager.delete(record.id)
    assert model_files(env) == []


async def test_a_projector_of_another_width_is_refused(env: Env, source: Path) -> None:
    model = write_lm_gguf(source / "vision-Q8_0.gguf", size_mb=1, embedding=64)
    write_projector_gguf(source / "mmproj-other.gguf", projection_dim=128)
    before = ids(env)
    with pytest.raises(ModelFileError, match="do not belong together") as caught:
        await env.manager.import_file(model, "vision")
    assert "128" in str(caught.value) and "64" in str(caught.value)
    assert ids(env) == before and model_files(env) == [] and partial_files(env) == []


async def test_a_vision_import_needs_a_projector(env: Env, source: Path) -> None:
    model = write_lm_gguf(source / "vision-Q8_0.gguf", size_mb=1)
    with pytest.raises(ModelManagerError, match="no vision projector"):
        await env.manager.import_file(model, "vision")
    not_a_projector = write_lm_gguf(source / "other.gguf", size_mb=0.5, seed=4)
    with pytest.raises(ModelFileError, match="not a vision projector"):
        await env.manager.import_file(model, "vision", projector=not_a_projector)
    assert model_files(env) == []


async def test_two_models_sharing_a_projector(env: Env, hub_files: dict[str, Path], tmp_path: Path) -> None:
    repo = "acme/pair-vision-GGUF"
    alpha = write_lm_gguf(tmp_path / "alpha-Q8_0.gguf", size_mb=1, seed=7)
    beta = write_lm_gguf(tmp_path / "beta-Q4_K_M.gguf", size_mb=1, seed=8)
    env.hub.add_repo(repo, {"alpha-Q8_0.gguf": alpha, "beta-Q4_K_M.gguf": beta,
                            "mmproj-pair-f16.gguf": hub_files["mmproj-vision-f16.gguf"]})
    records = []
    for name in ("alpha-Q8_0.gguf", "beta-Q4_K_M.gguf"):
        dl = await env.manager.pull(repo, name)
        done = await wait_for(env, dl.id)
        assert done.state == "done", done.error
        record = env.manager.get(done.model_id or "")
        assert record is not None and record.job == "vision"
        records.append(record)
    first, second = records
    assert first.projector is not None and first.projector == second.projector
    await env.manager.delete(first.id)
    assert not first.path.exists() and second.path.exists() and second.projector is not None
    assert second.projector.exists(), "the projector still belongs to the other model"
    await env.restart()
    assert env.manager.get(second.id) is not None
    await env.manager.delete(second.id)
    assert not second.projector.exists() and model_files(env) == []


# ----- the models folder at start ---------------------------------------------------------------


async def test_loose_ggufs_are_registered_at_start(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    folder = env.settings.model_folder
    folder.mkdir(parents=True, exist_ok=True)
    loose = write_lm_gguf(folder / "Loose-Model-Q4_K_M.gguf", size_mb=0.5)
    (folder / "broken.gguf").write_text("this is not a model\n" * 100)
    write_oversized_count_gguf(folder / "damaged.gguf")
    write_projector_gguf(folder / "mmproj-loose.gguf")
    with caplog.at_level(logging.WARNING, logger="backend.models.manager"):
        await env.restart()
    record = env.manager.get("loose-model-q4_k_m")
    assert record is not None and record.source == "folder" and record.path == loose and record.job == "chat"
    assert record.info["layers"] == 2
    paths = {r.path for r in env.manager.installed()}
    assert not paths & {folder / "broken.gguf", folder / "damaged.gguf", folder / "mmproj-loose.gguf"}
    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert "broken.gguf" in warnings and "damaged.gguf" in warnings
    await env.restart()
    assert len([r for r in env.manager.installed() if r.path == loose]) == 1, "registered once"
    loose.unlink()
    await env.restart()
    assert env.manager.get("loose-model-q4_k_m") is None


async def test_a_loose_gguf_with_odd_values_does_not_stop_the_start(env: Env) -> None:
    folder = env.settings.model_folder
    folder.mkdir(parents=True, exist_ok=True)
    _odd_gguf(folder / "odd.gguf")
    await env.restart()
    assert env.manager.get(BUNDLED_ID) is not None
    assert all(r.path.name != "odd.gguf" for r in env.manager.installed())


# ----- memory: refused before loading ----------------------------------------------------------


async def test_a_model_over_the_budget_is_refused_with_a_shorter_context(env: Env, source: Path) -> None:
    record = await env.manager.import_file(write_lm_gguf(source / "tiny.gguf", size_mb=2, context=2048), "chat")
    assert env.manager.context_for(record) == 2048, "the app's 4096 is capped at the trained 2048"
    budget = estimate_llm(record.info, record.size_bytes, 1024).total + 1
    await set_budget(env, budget)
    record = env.manager.get(record.id)  # type: ignore[assignment]
    assert record is not None and env.residency.budget.limit == budget
    with pytest.raises(MemoryRefused) as caught:
        env.manager.check_fit(record)
    refused = caught.value
    assert refused.code == ErrorCode.INSUFFICIENT_MEMORY and refused.budget == budget
    assert refused.needed == estimate_llm(record.info, record.size_bytes, 2048).total
    assert "a context of 1024 tokens" in str(refused) and "memory budget" in str(refused)
    assert refused.suggestion is not None and "Load anyway" in refused.suggestion

    await env.manager.set_context(record.id, 512)
    record = env.manager.get(record.id)  # type: ignore[assignment]
    assert record is not None and env.manager.context_for(record) == 512
    assert env.manager.check_fit(record).context_length == 512
    await env.manager.set_context(record.id, None)
    record = env.manager.get(record.id)  # type: ignore[assignment]
    assert record is not None and env.manager.context_for(record) == 2048
    with pytest.raises(ModelManagerError, match="between 256 and 131072"):
        await env.manager.set_context(record.id, 100)

    await env.manager.set_memory_override(record.id, True)
    await env.restart()
    record = env.manager.get(record.id)  # type: ignore[assignment]
    assert record is not None and record.memory_override
    estimate = env.manager.check_fit(record)
    assert estimate.total > budget and estimate.context_length == 2048


async def test_a_model_that_fits_no_context_gets_told_to_go_smaller(env: Env, source: Path) -> None:
    record = await env.manager.import_file(write_lm_gguf(source / "tiny.gguf", size_mb=2), "chat")
    await set_budget(env, estimate_llm(record.info, record.size_bytes, 512).total - 1)
    with pytest.raises(MemoryRefused) as caught:
        env.manager.check_fit(env.manager.get(record.id))  # type: ignore[arg-type]
    message = str(caught.value)
    assert "smaller" in message and "context of" not in message


async def test_the_suggestion_names_a_smaller_installed_model(env: Env, source: Path) -> None:
    small = await env.manager.import_file(write_lm_gguf(source / "small.gguf", size_mb=1), "chat", name="Small one")
    big = await env.manager.import_file(write_lm_gguf(source / "big.gguf", size_mb=40, seed=3), "chat")
    small_needs = env.manager.estimate(small).total
    big_needs = estimate_llm(big.info, big.size_bytes, 512).total
    assert small_needs < big_needs
    await set_budget(env, (small_needs + big_needs) // 2)
    with pytest.raises(MemoryRefused, match="the smaller installed model Small one"):
        env.manager.check_fit(env.manager.get(big.id))  # type: ignore[arg-type]
    assert env.manager.check_fit(env.manager.get(small.id)).total == small_needs  # type: ignore[arg-type]


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


async def test_chat_refuses_a_model_over_the_budget_before_starting_a_worker(
        tmp_path: Path, smollm_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(data_dir=tmp_path / "data", memory_budget_mb=64, hf_endpoint="http://127.0.0.1:9",
                        context_length=2048, threads=1)
    services = Services.build(settings)
    await services.start()
    built: list[Any] = []
    real_worker = chat_service_module.WorkerProcess

    def spy(*args: Any, **kwargs: Any) -> Any:
        built.append(args)
        return real_worker(*args, **kwargs)

    monkeypatch.setattr(chat_service_module, "WorkerProcess", spy)
    before = _children()
    seen: set[int] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.update(_children() - before)
            stop.wait(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        model = services.chat.resolve(None)
        assert model.id == BUNDLED_ID and model.path == smollm_path
        request = ChatRequest(messages=[{"role": "user", "content": "Hello"}], max_tokens=8)
        with pytest.raises(MemoryRefused) as caught:
            async for _ in services.chat.stream(request, EngineJob()):
                pass
        await asyncio.sleep(0.1)
    finally:
        stop.set()
        watcher.join()
        await services.stop()
    refused = caught.value
    assert refused.code == "insufficient_memory" and refused.budget == 64_000_000
    assert refused.needed == estimate_llm(read_gguf_info(smollm_path).summary(), smollm_path.stat().st_size,
                                          2048).total
    assert "SmolLM2 135M Instruct" in refused.message and "memory budget" in refused.message
    assert built == [], "a worker was created for a model that does not fit"
    assert seen == set(), f"child processes appeared: {seen}"
    assert services.chat.loaded is None and services.residency.residents == []
