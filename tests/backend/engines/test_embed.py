"""The embedding engine with the bundled all-MiniLM-L6-v2: in this process for its rules (batching,
truncation, normalization, refusals), and in a worker behind its sidecar host for progress, cancel
and the model's prefixes."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from backend.core.config import Settings
from backend.core.errors import AppError, ErrorCode
from backend.engines.embed import EmbedConfig, EmbedEngine, EmbedProgress, EmbedRequest, EmbedResult
from backend.knowledge.embedder import embed, embedding_engine
from backend.models.install import BUNDLED_EMBEDDING_ID
from backend.models.manager import ModelManager
from backend.runtime.child import JobContext
from backend.runtime.host import EngineHost, EngineJob
from backend.runtime.protocol import Event
from backend.runtime.residency import MemoryBudget, ResidencyManager
from backend.storage.db import Database
from tests.threads import ENGINE_THREADS

pytestmark = pytest.mark.engine
in_module_loop = pytest.mark.asyncio(loop_scope="module")

PASSAGE = ("Gridless keeps a person's documents on their own device. Each document is read into passages "
           "that follow its headings, and every passage is turned into a vector by a small embedding model, "
           "so that a question finds the passages that mean the same thing even when the words differ. ")


class Ctx(JobContext):
    """What an engine sees of a job, in this process: events kept, a cancel after `cancel_after` of them."""

    def __init__(self, cancel_after: int | None = None) -> None:  # no pipe: nothing of the parent's is used
        self.job_id = "job"
        self.events: list[Event] = []
        self.cancel_after = cancel_after

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def cancelled(self) -> bool:
        return self.cancel_after is not None and len(self.events) >= self.cancel_after


@dataclass
class Models:
    manager: ModelManager
    gguf: Path
    residency: ResidencyManager
    settings: Settings


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def models(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Models]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("embed") / "data", threads=ENGINE_THREADS)
    settings.data_dir.mkdir(parents=True)
    db = Database(settings.db_path)
    await db.open()
    residency = ResidencyManager(MemoryBudget())
    manager = ModelManager(settings, db, residency)
    await manager.start(run_downloads=False)
    record = manager.get(BUNDLED_EMBEDDING_ID)
    assert record is not None, "the bundled embedding model was not set up"
    yield Models(manager=manager, gguf=record.path, residency=residency, settings=settings)
    await manager.stop()
    await residency.stop()
    await db.close()


@pytest.fixture(scope="module")
def engine(models: Models) -> Iterator[EmbedEngine]:
    built = EmbedEngine(EmbedConfig(model_path=str(models.gguf), n_threads=ENGINE_THREADS))
    yield built
    built.close()


def vectors_of(result: EmbedResult) -> np.ndarray:
    return np.frombuffer(result.vectors, dtype=np.float32).reshape(-1, result.dim)


def test_it_says_what_it_loaded(engine: EmbedEngine) -> None:
    assert engine.info() == {"dim": 384, "n_ctx": 512, "n_batch": 512, "pooling": "mean", "architecture": "bert"}


def test_texts_are_packed_into_batches_with_progress_between(engine: EmbedEngine) -> None:
    texts = [PASSAGE * 2 + str(i) for i in range(7)] + ["short one", "another short one"]
    ctx = Ctx()
    result = engine.run(EmbedRequest(texts=texts), ctx)
    progress = [e for e in ctx.events if isinstance(e, EmbedProgress)]
    assert len(progress) > 1 and progress[-1].done == progress[-1].total == len(texts)
    assert [p.done for p in progress] == sorted({p.done for p in progress})  # strictly rising
    assert result.finish_reason == "done" and result.truncated == 0
    vectors = vectors_of(result)
    assert vectors.shape == (len(texts), 384)
    # the same text alone gives the same vector as in a batch with others
    alone = vectors_of(engine.run(EmbedRequest(texts=[texts[3]]), Ctx()))[0]
    assert float(alone @ vectors[3]) > 0.9999
    assert result.tokens == sum(len(engine.llama.tokenize(t.encode(), add_bos=True)) for t in texts)


def test_vectors_are_normalized_unless_asked_not_to(engine: EmbedEngine) -> None:
    texts = ["A cat sits on the mat", "The stock market fell today"]
    normalized = vectors_of(engine.run(EmbedRequest(texts=texts), Ctx()))
    raw = vectors_of(engine.run(EmbedRequest(texts=texts, normalize=False), Ctx()))
    assert np.allclose(np.linalg.norm(normalized, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0, atol=1e-2)
    assert np.allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), normalized, atol=1e-5)


def test_a_long_text_is_cut_to_the_context_or_refused(engine: EmbedEngine) -> None:
    long = PASSAGE * 20  # about 1 000 tokens: twice the context
    result = engine.run(EmbedRequest(texts=[long, "short"]), Ctx())
    assert result.truncated == 1 and vectors_of(result).shape == (2, 384)
    assert result.tokens == 512 + len(engine.llama.tokenize(b"short", add_bos=True))
    cut = vectors_of(result)[0]
    head = vectors_of(engine.run(EmbedRequest(texts=[PASSAGE * 9]), Ctx()))[0]
    assert float(cut @ head) > 0.95  # the cut text is its beginning
    with pytest.raises(AppError) as refused:
        engine.run(EmbedRequest(texts=["fine", long], truncate=False), Ctx())
    assert refused.value.code == ErrorCode.CONTEXT_LENGTH_EXCEEDED and "text 1" in refused.value.message


def test_a_cancel_stops_between_batches(engine: EmbedEngine) -> None:
    texts = [PASSAGE * 3 + str(i) for i in range(12)]  # two a batch: six batches
    ctx = Ctx(cancel_after=2)
    result = engine.run(EmbedRequest(texts=texts), ctx)
    assert result.cancelled
    last = ctx.events[-1]
    assert isinstance(last, EmbedProgress) and len(ctx.events) == 2
    assert vectors_of(result).shape[0] == last.done < len(texts)


@pytest.mark.parametrize(("texts", "message"), [([], "no texts"), (["fine", ""], "text 1 is empty"),
                                                (["   \n"], "text 0 is empty")])
def test_nothing_to_embed_is_refused(engine: EmbedEngine, texts: list[str], message: str) -> None:
    with pytest.raises(AppError) as refused:
        engine.run(EmbedRequest(texts=texts), Ctx())
    assert refused.value.code == ErrorCode.BAD_REQUEST and message in refused.value.message


def test_a_chat_model_is_not_an_embedding_model(smollm_path: Path) -> None:
    with pytest.raises(AppError) as refused:
        EmbedEngine(EmbedConfig(model_path=str(smollm_path), n_threads=1))
    assert refused.value.code == ErrorCode.MODEL_LOAD_FAILED
    assert "not an embedding model" in refused.value.message


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AppError) as refused:
        EmbedEngine(EmbedConfig(model_path=str(tmp_path / "gone.gguf")))
    assert refused.value.code == ErrorCode.MODEL_LOAD_FAILED


# --- through the host, in a worker ------------------------------------------------------------

@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def host(models: Models) -> AsyncIterator[EngineHost]:
    built = embedding_engine(models.settings, models.manager, models.residency)
    yield built
    await built.close()


@in_module_loop
async def test_embed_reports_progress_and_returns_the_vectors(host: EngineHost, engine: EmbedEngine) -> None:
    texts = [PASSAGE * 2 + str(i) for i in range(5)]
    seen: list[tuple[int, int]] = []
    result = await embed(host, texts, on_progress=lambda done, total: seen.append((done, total)))
    assert result.model_id == BUNDLED_EMBEDDING_ID and result.dim == 384 and result.truncated == 0
    assert result.vectors.shape == (5, 384) and result.vectors.dtype == np.float32
    assert len(seen) > 1 and seen[-1] == (5, 5)
    here = vectors_of(engine.run(EmbedRequest(texts=texts), Ctx()))
    assert np.allclose(result.vectors, here, atol=1e-4)
    assert host.loaded_info["dim"] == 384 and host.worker_pid is not None


@in_module_loop
async def test_a_cancelled_job_stops_between_batches(host: EngineHost) -> None:
    texts = [PASSAGE * 2 + str(i) for i in range(40)]
    job = EngineJob()
    seen: list[int] = []

    def progress(done: int, _total: int) -> None:
        seen.append(done)
        host.cancel(job)

    with pytest.raises(AppError) as stopped:
        await embed(host, texts, job=job, on_progress=progress)
    assert stopped.value.code == ErrorCode.CANCELLED
    assert seen and seen[-1] < len(texts)
    assert (await embed(host, ["still working"])).vectors.shape == (1, 384)  # the worker goes on


@in_module_loop
async def test_the_models_prefix_is_put_in_front(host: EngineHost, models: Models,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    record = models.manager.get(BUNDLED_EMBEDDING_ID)
    assert record is not None
    plain = (await embed(host, ["what do cats eat"], purpose="query")).vectors[0]
    prefixed: Any = dataclasses.replace(record, info=record.info | {"query_prefix": "query: "})
    monkeypatch.setitem(models.manager.registry._records, record.id, prefixed)
    as_query = (await embed(host, ["what do cats eat"], purpose="query")).vectors[0]
    as_passage = (await embed(host, ["what do cats eat"], purpose="passage")).vectors[0]
    with_words = (await embed(host, ["query: what do cats eat"], purpose="passage")).vectors[0]
    assert float(as_query @ plain) < 0.999
    assert float(as_passage @ plain) > 0.9999
    assert float(as_query @ with_words) > 0.9999


@in_module_loop
async def test_errors_come_back_as_app_errors(host: EngineHost) -> None:
    with pytest.raises(AppError) as empty:
        await embed(host, ["ok", ""])
    assert empty.value.code == ErrorCode.BAD_REQUEST
    with pytest.raises(AppError) as unknown:
        await embed(host, ["ok"], model_id="smollm2-135m-instruct")  # installed, but not an embedding model
    assert unknown.value.code == ErrorCode.MODEL_NOT_FOUND
    with pytest.raises(AppError) as none:
        await embed(host, [])
    assert none.value.code == ErrorCode.BAD_REQUEST
