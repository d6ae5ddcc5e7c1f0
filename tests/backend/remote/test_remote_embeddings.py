"""A server's embedding models: what a model is for (guessed from its name, or the owner's choice,
kept), `RemoteClient.embeddings` against a server on loopback that behaves well or badly,
`RemoteEngines.embed`, and the routing of `ChatEngines` and `EmbeddingEngines`, which never give a
server's model to the other job. Then `PATCH /api/engines/{id}`, `/v1/models`, `/v1/embeddings` and
`POST /api/collections` through a real gridless server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from backend.chat.engine import ChatEngines, chat_engine
from backend.core.config import Settings
from backend.core.errors import AppError, ErrorCode
from backend.core.jobs import Job
from backend.knowledge.embedder import EmbeddingEngines, embed, embedding_engine
from backend.knowledge.service import KnowledgeService
from backend.knowledge.store import KnowledgeStore
from backend.models.manager import ModelManager
from backend.remote.client import MAX_DIM, RemoteClient, RemoteLimits
from backend.remote.service import DOWN_FAIL_FAST_S, RemoteEngines
from backend.remote.store import JOBS, RemoteEngine, guess_job
from backend.runtime.host import EngineJob
from backend.runtime.protocol import JobFailed
from backend.runtime.residency import MemoryBudget, ResidencyManager
from backend.storage.db import Database
from backend.storage.media import MediaStore
from tests.server import ServerProcess

from .fake_remote import GIB, FakeRemote
from .gridless import api, gridless_server

TEXTS = ["The pond pump runs from April to October.", "Prune the roses in late winter.", "Tomatoes in May."]
MakeClient = Callable[[str], RemoteClient]


def unit(vector: list[float]) -> np.ndarray:
    row = np.asarray(vector, dtype=np.float32)
    return row / np.linalg.norm(row)


# what a model is for --------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", [
    "nomic-embed-text", "nomic-embed-text:latest", "nomic-ai/nomic-embed-text-v1.5", "bge-m3", "bge-m3:567m",
    "BAAI/bge-large-en-v1.5", "multilingual-e5-small", "intfloat/multilingual-e5-large-instruct", "e5-mistral-7b",
    "all-MiniLM-L6-v2", "all-minilm:l6-v2", "sentence-transformers/all-mpnet-base-v2", "mxbai-embed-large",
    "granite-embedding", "granite-embedding:278m", "snowflake-arctic-embed2", "jina-embeddings-v3",
    "Qwen/Qwen3-Embedding-0.6B", "embeddinggemma:300m", "text-embedding-3-small", "gte-base",
    "thenlper/gte-large", "Alibaba-NLP/gte-Qwen2-1.5B-instruct",
])
def test_embedding_models_are_guessed_from_their_names(model: str) -> None:
    assert guess_job(model) == "embeddings"


@pytest.mark.parametrize("model", [
    "qwen3:14b", "llama3.2:3b", "gemma3:4b", "Qwen/Qwen3-8B", "Qwen3-14B-Q4_K_M.gguf", "mistral-nemo:12b",
    "gpt-oss:20b", "phi4-mini", "deepseek-r1:8b", "granite3.3:8b", "smollm2", "llava:7b", "big-model",
    "meta-llama/Llama-3.1-8B-Instruct", "gemma-3-27b-it", "qwen2.5-coder:7b", "command-r7b",
])
def test_chat_models_are_guessed_from_their_names(model: str) -> None:
    assert guess_job(model) == "chat"


def test_the_owners_choice_wins_over_the_guess() -> None:
    engine = RemoteEngine(id="e1", url="http://box:8080/v1", name="Box", models=["nomic-embed-text", "qwen3:14b"],
                          jobs={"qwen3:14b": "embeddings"})
    assert engine.job_of("nomic-embed-text") == "embeddings" and engine.job_of("qwen3:14b") == "embeddings"
    assert engine.public()["jobs"] == {"nomic-embed-text": "embeddings", "qwen3:14b": "embeddings"}
    assert set(JOBS) == {"chat", "embeddings", "speech", "images"}


# the client ------------------------------------------------------------------------------------------------

@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    made: list[RemoteClient] = []

    def make(url: str) -> RemoteClient:
        client = RemoteClient(url, name="box", limits=RemoteLimits())
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.mark.parametrize("mode", ["good", "embed_shuffled"])
async def test_vectors_come_in_the_order_of_the_texts(fake: FakeRemote, make_client: MakeClient, mode: str) -> None:
    fake.mode = mode
    client = make_client(fake.url + "/v1")
    vectors, tokens = await client.embeddings("nomic-embed-text", TEXTS)
    assert vectors == [pytest.approx(fake.vector(text)) for text in TEXTS]
    assert tokens == sum(len(text.split()) for text in TEXTS)
    sent = fake.requests("/v1/embeddings")[-1]
    assert sent.json() == {"model": "nomic-embed-text", "input": TEXTS, "encoding_format": "float"}
    assert sent.headers["accept-encoding"] == "identity"


async def test_one_text(fake: FakeRemote, make_client: MakeClient) -> None:
    vectors, tokens = await make_client(fake.url + "/v1").embeddings("bge-m3", ["hello there"])
    assert vectors == [pytest.approx(fake.vector("hello there"))] and tokens == 2


@pytest.mark.parametrize(("mode", "words"), [
    ("embed_short", "one vector for each text"),
    ("embed_strings", "cannot read"),
    ("embed_bools", "cannot read"),
    ("embed_nulls", "cannot read"),
    ("embed_wide", "cannot read"),
    ("embed_ragged", "do not match"),
    ("embed_bad_index", "do not match"),
    ("bad_json", "not JSON"),
    ("html", "text/html"),
    ("error500", "HTTP 500"),
])
async def test_a_server_that_sends_what_cannot_be_vectors(fake: FakeRemote, make_client: MakeClient, mode: str,
                                                           words: str) -> None:
    fake.mode = mode
    started = time.monotonic()
    with pytest.raises(AppError) as caught:
        await make_client(fake.url + "/v1").embeddings("nomic-embed-text", TEXTS)
    assert caught.value.code == ErrorCode.REMOTE_FAILED, caught.value.message
    assert words in caught.value.message and caught.value.message.startswith("box")
    assert time.monotonic() - started < 5


async def test_the_widest_vector_taken(fake: FakeRemote, make_client: MakeClient) -> None:
    fake.embedding_dim = MAX_DIM
    vectors, _ = await make_client(fake.url + "/v1").embeddings("nomic-embed-text", TEXTS[:2])
    assert [len(v) for v in vectors] == [MAX_DIM, MAX_DIM]


async def test_a_huge_body_is_stopped_at_its_limit(fake: FakeRemote, make_client: MakeClient) -> None:
    fake.mode = "huge"
    started = time.monotonic()
    with pytest.raises(AppError) as caught:
        await make_client(fake.url + "/v1").embeddings("nomic-embed-text", TEXTS)
    assert caught.value.code == ErrorCode.REMOTE_FAILED and "more than" in caught.value.message
    assert time.monotonic() - started < 5
    assert fake.sent < 64 * 1024 * 1024 < GIB  # it stopped reading long before the end


async def test_a_server_that_is_not_there(make_client: MakeClient) -> None:
    from tests.server import free_port

    with pytest.raises(AppError) as caught:
        await make_client(f"http://127.0.0.1:{free_port()}/v1").embeddings("nomic-embed-text", TEXTS)
    assert caught.value.code == ErrorCode.REMOTE_UNAVAILABLE and "Cannot connect to box" in caught.value.message


# RemoteEngines ---------------------------------------------------------------------------------------------

async def test_embed_gives_normalised_rows(engines: RemoteEngines, fake: FakeRemote) -> None:
    fake.models = ["big-model", "nomic-embed-text"]
    engine = await engines.add(fake.host, name="Laptop")
    model = engines.get(f"{engine.id}/nomic-embed-text")
    assert model is not None and model.job is Job.EMBEDDINGS
    vectors, tokens = await engines.embed(model, TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (3, fake.embedding_dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    for row, text in zip(vectors, TEXTS, strict=True):
        assert np.allclose(row, unit(fake.vector(text)), atol=1e-5)
    assert tokens == sum(len(text.split()) for text in TEXTS)
    assert fake.requests("/v1/embeddings")[-1].json()["model"] == "nomic-embed-text"


@pytest.mark.parametrize("mode", ["embed_zero", "embed_nan"])
async def test_embed_refuses_an_empty_or_broken_vector(engines: RemoteEngines, fake: FakeRemote, mode: str) -> None:
    fake.models = ["nomic-embed-text"]
    engine = await engines.add(fake.host, name="Laptop")
    model = engines.get(f"{engine.id}/nomic-embed-text")
    assert model is not None
    fake.mode = mode
    with pytest.raises(AppError) as caught:
        await engines.embed(model, TEXTS)
    assert caught.value.code == ErrorCode.REMOTE_FAILED and "Laptop" in caught.value.message
    assert engines.engine(engine.id).state == "up"  # it answered: it is not down


async def test_embed_from_a_server_gone_away(engines: RemoteEngines, fake: FakeRemote) -> None:
    fake.models = ["nomic-embed-text"]
    engine = await engines.add(fake.host, name="Laptop")
    model = engines.get(f"{engine.id}/nomic-embed-text")
    assert model is not None
    fake.down()
    with pytest.raises(AppError) as caught:
        await engines.embed(model, TEXTS)
    assert caught.value.code == ErrorCode.REMOTE_UNAVAILABLE and "Cannot connect to Laptop" in caught.value.message
    assert engines.engine(engine.id).state == "down"
    asked = len(fake.seen)
    started = time.monotonic()
    with pytest.raises(AppError) as again:  # known to be down: refused at once, without asking it
        await engines.embed(model, TEXTS)
    assert again.value.code == ErrorCode.REMOTE_UNAVAILABLE and "Laptop is not answering" in again.value.message
    assert time.monotonic() - started < 1 and len(fake.seen) == asked
    assert DOWN_FAIL_FAST_S > 1


async def test_set_job(db: Database, settings: Settings, fake: FakeRemote) -> None:
    fake.models = ["big-model", "nomic-embed-text", "qwen3:14b"]
    engines = RemoteEngines(db, settings)
    await engines.start()
    engine = await engines.add(fake.host, name="Laptop")
    assert engine.public()["jobs"] == {"big-model": "chat", "nomic-embed-text": "embeddings", "qwen3:14b": "chat"}
    assert [r.id for r in engines.records(Job.EMBEDDINGS)] == [f"{engine.id}/nomic-embed-text"]
    assert [r.id for r in engines.records(Job.CHAT)] == [f"{engine.id}/big-model", f"{engine.id}/qwen3:14b"]
    assert len(engines.records()) == 3

    with pytest.raises(AppError) as unknown:
        await engines.set_job(engine.id, "no-such-model", "embeddings")
    assert unknown.value.code == ErrorCode.NOT_FOUND and unknown.value.status == 404
    with pytest.raises(AppError) as bad:
        await engines.set_job(engine.id, "big-model", "video")
    assert bad.value.code == ErrorCode.INVALID_VALUE and bad.value.param == "job"
    with pytest.raises(AppError) as gone:
        await engines.set_job("nope", "big-model", "embeddings")
    assert gone.value.code == ErrorCode.NOT_FOUND
    assert engines.engine(engine.id).jobs == {}  # nothing changed by a refusal

    changed = await engines.set_job(engine.id, "big-model", "embeddings")
    changed = await engines.set_job(engine.id, "nomic-embed-text", "chat")
    assert changed.jobs == {"big-model": "embeddings", "nomic-embed-text": "chat"}
    assert [r.id for r in engines.records(Job.EMBEDDINGS)] == [f"{engine.id}/big-model"]
    record = engines.get(f"{engine.id}/big-model")
    assert record is not None and record.job is Job.EMBEDDINGS
    await engines.stop()

    again = RemoteEngines(db, settings)
    await again.start()
    try:
        kept = again.engine(engine.id)
        assert kept.jobs == {"big-model": "embeddings", "nomic-embed-text": "chat"}
        assert [r.id for r in again.records(Job.EMBEDDINGS)] == [f"{engine.id}/big-model"]
        assert [r.id for r in again.records(Job.CHAT)] == [f"{engine.id}/nomic-embed-text", f"{engine.id}/qwen3:14b"]
        await again.check(engine.id)  # a check keeps the owner's choices
        assert again.engine(engine.id).jobs == kept.jobs
        assert (await again.store.all())[0].jobs == kept.jobs
    finally:
        await again.stop()


# ChatEngines and EmbeddingEngines -------------------------------------------------------------------------

class Routes:
    def __init__(self, answers: ChatEngines, embeddings: EmbeddingEngines) -> None:
        self.answers = answers
        self.embeddings = embeddings


@pytest.fixture
def routes(db: Database, settings: Settings, engines: RemoteEngines) -> Routes:
    residency = ResidencyManager(MemoryBudget(fixed_bytes=1024 * 1024 * 1024))
    models = ModelManager(settings, db, residency)
    return Routes(ChatEngines(chat_engine(settings, models, residency), engines, models),
                  EmbeddingEngines(embedding_engine(settings, models, residency), engines, models))


def not_found(call: Callable[[], Any]) -> AppError:
    with pytest.raises(AppError) as caught:
        call()
    assert caught.value.code == ErrorCode.MODEL_NOT_FOUND, caught.value.message
    return caught.value


async def test_each_model_goes_to_its_own_job(routes: Routes, engines: RemoteEngines, fake: FakeRemote) -> None:
    fake.models = ["big-model", "nomic-embed-text"]
    engine = await engines.add(fake.host, name="Laptop")
    chat_id, embed_id = f"{engine.id}/big-model", f"{engine.id}/nomic-embed-text"

    assert [m.id for m in routes.answers.language_models() if m.source == "remote"] == [chat_id]
    assert routes.answers.resolve(chat_id).id == chat_id
    assert routes.answers.get(embed_id) is None
    not_found(lambda: routes.answers.resolve(embed_id))

    assert [m.id for m in routes.embeddings.choices() if m.source == "remote"] == [embed_id]
    assert routes.embeddings.resolve(embed_id).id == embed_id
    not_found(lambda: routes.embeddings.resolve(chat_id))

    result = await embed(routes.embeddings, TEXTS, model_id=embed_id)
    assert result.model_id == embed_id and result.dim == fake.embedding_dim and result.vectors.shape == (3, 8)
    assert np.allclose(result.vectors[1], unit(fake.vector(TEXTS[1])), atol=1e-5)
    assert result.tokens == sum(len(text.split()) for text in TEXTS) and result.truncated == 0

    # the owner turns them round: the routes follow
    await engines.set_job(engine.id, "big-model", "embeddings")
    await engines.set_job(engine.id, "nomic-embed-text", "chat")
    assert [m.id for m in routes.answers.language_models() if m.source == "remote"] == [embed_id]
    assert routes.answers.resolve(embed_id).id == embed_id
    not_found(lambda: routes.answers.resolve(chat_id))
    assert routes.embeddings.resolve(chat_id).id == chat_id
    not_found(lambda: routes.embeddings.resolve(embed_id))
    assert (await embed(routes.embeddings, ["hi"], model_id=chat_id)).model_id == chat_id
    assert fake.requests("/v1/embeddings")[-1].json()["model"] == "big-model"


async def test_a_collection_is_made_only_with_an_embedding_model(routes: Routes, engines: RemoteEngines,
                                                                   fake: FakeRemote, db: Database,
                                                                   settings: Settings) -> None:
    fake.models = ["big-model", "nomic-embed-text"]
    engine = await engines.add(fake.host, name="Laptop")
    knowledge = KnowledgeService(settings, KnowledgeStore(db), MediaStore(settings.media_dir), routes.embeddings)
    for embedder in (f"{engine.id}/big-model", f"{engine.id}/gone", "nope/nomic-embed-text", "no-such-model"):
        with pytest.raises(AppError) as caught:
            await knowledge.create_collection("Garden", embedder=embedder)
        assert caught.value.code == ErrorCode.MODEL_NOT_FOUND and caught.value.param == "embedder"
        assert caught.value.status == 404
    assert await knowledge.collections() == []
    made = await knowledge.create_collection("Garden", embedder=f"{engine.id}/nomic-embed-text")
    assert made.embedder == f"{engine.id}/nomic-embed-text" and made.dim is None


async def test_a_collection_indexed_by_a_server_that_goes_away(routes: Routes, engines: RemoteEngines,
                                                                fake: FakeRemote, db: Database,
                                                                settings: Settings) -> None:
    fake.models = ["nomic-embed-text"]
    engine = await engines.add(fake.host, name="Laptop")
    knowledge = KnowledgeService(settings, KnowledgeStore(db), MediaStore(settings.media_dir), routes.embeddings)
    await knowledge.start()
    try:
        collection = await knowledge.create_collection("Garden", embedder=f"{engine.id}/nomic-embed-text")

        async def body(text: bytes) -> AsyncIterator[bytes]:
            yield text

        garden = await knowledge.add_document(collection.id, "garden.md", body(b"# Roses\n\nPrune the roses."))
        [done] = await knowledge.wait([garden.id], within=10)
        assert done.state == "ready" and done.embedded == done.passages > 0
        assert (await knowledge.collection(collection.id)).dim == fake.embedding_dim
        indexed = len(fake.requests("/embeddings"))
        found = await knowledge.search([collection.id], "roses")
        assert [h.document_name for h in found.hits] == ["garden.md"] and found.notice is None
        assert len(fake.requests("/embeddings")) == indexed + 1  # the query was embedded there

        for mode, words in (("error500", "HTTP 500"), ("down", "Cannot connect to Laptop")):
            if mode == "down":
                fake.down()
            else:
                fake.mode = mode
            found = await knowledge.search([collection.id], "roses")
            assert [h.document_name for h in found.hits] == ["garden.md"], mode
            assert found.notice is not None and "«Garden»" in found.notice and "words only" in found.notice
            assert words in found.notice, found.notice
        assert (await knowledge.search([collection.id], "roses", mode="vector")).hits == []

        # a document added while the server is away waits for it (the others go on), then is indexed
        knowledge.indexer.retry_s = 0.3
        kitchen = await knowledge.add_document(collection.id, "kitchen.md", body(b"# Bread\n\nFeed the starter."))
        deadline = asyncio.get_running_loop().time() + 10
        while (waiting := await knowledge.document(kitchen.id)).error_code is None:
            assert asyncio.get_running_loop().time() < deadline, waiting
            await asyncio.sleep(0.05)
        assert waiting.state == "indexing" and waiting.error_code == ErrorCode.REMOTE_UNAVAILABLE
        assert waiting.error is not None and "Waiting for the server" in waiting.error and "Laptop" in waiting.error
        assert waiting.passages > 0 and waiting.embedded == 0
        fake.mode = "good"
        fake.up()
        assert (await engines.check(engine.id)).state == "up"  # as the regular check finds it
        [done] = await knowledge.wait([kitchen.id], within=10)
        assert done.state == "ready" and done.embedded == done.passages and done.error is None
        fake.down()

        await engines.remove(engine.id)  # its model is gone for good
        found = await knowledge.search([collection.id], "roses")
        assert [h.document_name for h in found.hits] == ["garden.md"]
        assert found.notice is not None and "no longer installed" in found.notice
    finally:
        await knowledge.shutdown()


async def test_a_cancelled_job_never_reaches_the_server(routes: Routes, engines: RemoteEngines,
                                                        fake: FakeRemote) -> None:
    fake.models = ["nomic-embed-text"]
    engine = await engines.add(fake.host)
    job = EngineJob()
    routes.embeddings.cancel(job)
    from backend.engines.embed import EmbedRequest

    events = [e async for e in routes.embeddings.stream(EmbedRequest(texts=["hi"]), job,
                                                       model_id=f"{engine.id}/nomic-embed-text")]
    assert len(events) == 1 and isinstance(events[0], JobFailed) and events[0].code == ErrorCode.CANCELLED
    assert fake.requests("/embeddings") == []


# through a real gridless server -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shared_fake() -> Iterator[FakeRemote]:
    with FakeRemote(models=["big-model", "nomic-embed-text"]) as server:
        yield server


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with gridless_server(tmp_path_factory, "remote-embeddings") as server:
        yield server



def test_jobs_through_the_api(srv: ServerProcess, shared_fake: FakeRemote) -> None:
    made = api(srv, "POST", "/api/engines", json={"url": shared_fake.host, "name": "Laptop"})
    assert made.status_code == 201, made.text
    engine = made.json()
    assert engine["jobs"] == {"big-model": "chat", "nomic-embed-text": "embeddings"}
    eid = engine["id"]

    def chat_models() -> set[str]:
        listed = api(srv, "GET", "/v1/models").json()["data"]
        return {m["id"] for m in listed if m["id"].startswith(eid + "/")}

    assert chat_models() == {f"{eid}/big-model"}

    changed = api(srv, "PATCH", f"/api/engines/{eid}", json={"jobs": {"big-model": "embeddings"}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["jobs"] == {"big-model": "embeddings", "nomic-embed-text": "embeddings"}
    assert chat_models() == set()
    assert api(srv, "GET", "/api/engines").json()["engines"][0]["jobs"]["big-model"] == "embeddings"
    refused = httpx.post(f"{srv.base}/v1/chat/completions", headers=srv.headers(), timeout=30,
                         json={"model": f"{eid}/big-model", "messages": [{"role": "user", "content": "hi"}]})
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "model_not_found"
    assert shared_fake.requests("/chat/completions") == []

    # through gridless's /v1/embeddings, normalised
    vectors = api(srv, "POST", "/v1/embeddings", json={"model": f"{eid}/big-model", "input": TEXTS[:2]})
    assert vectors.status_code == 200, vectors.text
    body = vectors.json()
    assert body["model"] == f"{eid}/big-model" and [d["index"] for d in body["data"]] == [0, 1]
    for item, text in zip(body["data"], TEXTS[:2], strict=True):
        assert np.allclose(item["embedding"], unit(shared_fake.vector(text)), atol=1e-5)
    assert body["usage"]["prompt_tokens"] == sum(len(t.split()) for t in TEXTS[:2])
    assert shared_fake.requests("/v1/embeddings")[-1].json()["model"] == "big-model"

    for patch, status in (({"jobs": {"no-such-model": "chat"}}, 404), ({"jobs": {"big-model": "video"}}, 422),
                          ({"jobs": {"big-model": "chat"}, "name": "x"}, 422)):
        response = api(srv, "PATCH", f"/api/engines/{eid}", json=patch)
        assert response.status_code == status, (patch, response.text)
    assert api(srv, "PATCH", "/api/engines/nope", json={"jobs": {}}).status_code == 404
    back = api(srv, "PATCH", f"/api/engines/{eid}", json={"jobs": {"big-model": "chat"}})
    assert back.status_code == 200 and back.json()["jobs"]["big-model"] == "chat"
    assert chat_models() == {f"{eid}/big-model"}


def test_collections_name_their_embedder(srv: ServerProcess, shared_fake: FakeRemote) -> None:
    listed = api(srv, "GET", "/api/engines").json()["engines"]
    eid = listed[0]["id"] if listed else api(srv, "POST", "/api/engines", json={"url": shared_fake.host}).json()["id"]
    before = api(srv, "GET", "/api/collections").json()["collections"]
    for embedder in ("no-such-model", f"{eid}/no-such-model", "nope/nomic-embed-text", f"{eid}/big-model"):
        refused = api(srv, "POST", "/api/collections", json={"name": "Garden", "embedder": embedder})
        assert refused.status_code == 404, (embedder, refused.text)
        error = refused.json()["error"]
        assert error["code"] == "model_not_found" and embedder in error["message"], error
    assert api(srv, "GET", "/api/collections").json()["collections"] == before  # nothing made

    made = api(srv, "POST", "/api/collections", json={"name": "Garden", "embedder": f"{eid}/nomic-embed-text"})
    assert made.status_code == 201, made.text
    assert made.json()["embedding_model"] == f"{eid}/nomic-embed-text" and made.json()["dimensions"] is None
    assert api(srv, "DELETE", f"/api/collections/{made.json()['id']}").status_code == 204
