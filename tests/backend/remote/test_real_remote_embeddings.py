"""A real engine server's embedding model: llama-cpp-python's OpenAI server on loopback serving the
bundled all-MiniLM-L6-v2 (the GGUF gridless writes into its cache folder) with `--embedding true`,
and a real gridless that adds it through `/api/engines`.

The server's model is taken for documents from its name; its vectors through gridless's
`/v1/embeddings` are the ones gridless's own engine makes for the same texts; a collection indexed
with it finds passages by meaning while gridless's own embedding engine never starts, and the
server's access log shows the requests it was sent. Then the server is killed: the collection is
still searched (by its words) and a document added meanwhile fails with a reason naming the server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest

from backend.models.install import BUNDLED_DIR, BUNDLED_EMBEDDING_ID
from tests.llama_server import LlamaServer
from tests.server import ServerProcess

pytestmark = [pytest.mark.engine]

ALIAS = "all-minilm-l6-v2"
NAME = "Laptop"
EMBEDDINGS = "POST /v1/embeddings"
NOTES = b"""# Garden notes

## Tomatoes

Tomato seedlings go outside once the nights stay above twelve degrees, usually in mid May.

## Roses

Prune the climbing roses in late winter, just above an outward-facing bud.

## Pond

The pond pump runs from April to October and is cleaned every spring.
"""
KITCHEN = b"""# Kitchen

## Bread

The sourdough starter is fed every morning with flour and water.
"""
TEXTS = ["When can young tomato plants be planted out?", "Prune the climbing roses in late winter.",
         "The pond pump runs from April to October."]


@dataclass
class Setup:
    gridless: ServerProcess
    llama: LlamaServer
    http: httpx.Client
    engine_id: str = ""

    @property
    def remote_model(self) -> str:
        return f"{self.engine_id}/{ALIAS}"

    def workers(self) -> list[str]:
        """The engine workers gridless runs now (its own models in their processes)."""
        assert self.gridless.process is not None
        found = []
        for child in psutil.Process(self.gridless.process.pid).children(recursive=True):
            try:
                line = " ".join(child.cmdline())
            except psutil.Error:
                continue
            if "backend.runtime.child" in line:
                found.append(line)
        return found

    def documents(self, collection: str) -> list[dict[str, Any]]:
        response = self.http.get(f"/api/collections/{collection}/documents")
        assert response.status_code == 200, response.text
        return list(response.json()["documents"])

    def settled(self, collection: str, within: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + within
        while True:
            documents = self.documents(collection)
            if all(d["state"] not in ("queued", "reading", "indexing") for d in documents):
                return documents
            assert time.monotonic() < deadline, documents
            time.sleep(0.1)

    def document(self, collection: str, name: str) -> dict[str, Any]:
        return next(d for d in self.documents(collection) if d["name"] == name)

    def search(self, collection: str, q: str, mode: str) -> httpx.Response:
        return self.http.get(f"/api/collections/{collection}/search", params={"q": q, "mode": mode, "k": 3})


def written_model(cache: Path, within: float = 60) -> Path:
    """The bundled embedding model as gridless wrote it at its start (the stamp is written after it)."""
    path = cache / BUNDLED_DIR / f"{BUNDLED_EMBEDDING_ID}.gguf"
    stamp = path.with_name(path.name + ".source.json")
    deadline = time.monotonic() + within
    while not (path.is_file() and stamp.is_file()):
        assert time.monotonic() < deadline, "gridless did not write the bundled embedding model"
        time.sleep(0.1)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("real-remote-embeddings")
    env = {"GRIDLESS_CACHE_DIR": str(folder / "cache"), "GRIDLESS_REMOTE_CHECK_S": "2"}
    with ServerProcess(data_dir=folder / "data", env=env) as gridless:
        llama = LlamaServer(model=written_model(folder / "cache"), alias=ALIAS, log_path=folder / "llama.log",
                            embedding=True, n_ctx=512)
        llama.start()
        try:
            with httpx.Client(base_url=gridless.base, headers=gridless.headers(), timeout=60,
                              trust_env=False) as http:
                yield Setup(gridless=gridless, llama=llama, http=http)
        finally:
            llama.kill()


def test_an_embedding_model_of_a_real_server(setup: Setup) -> None:
    http = setup.http
    made = http.post("/api/engines", json={"url": f"127.0.0.1:{setup.llama.port}", "name": NAME})
    assert made.status_code == 201, made.text
    engine = made.json()
    setup.engine_id = engine["id"]
    assert engine["models"] == [ALIAS] and engine["jobs"] == {ALIAS: "embeddings"} and engine["state"] == "up"
    assert not [m for m in http.get("/v1/models").json()["data"] if m["id"].startswith(setup.engine_id)]

    # a collection indexed with it: the server embeds, gridless's own engine does not start
    made = http.post("/api/collections", json={"name": "Garden", "embedder": setup.remote_model})
    assert made.status_code == 201, made.text
    collection = made.json()["id"]
    assert made.json()["embedding_model"] == setup.remote_model
    before = setup.llama.requests(EMBEDDINGS)
    up = http.post(f"/api/collections/{collection}/documents", params={"name": "garden.md"}, content=NOTES)
    assert up.status_code == 201, up.text
    [document] = setup.settled(collection)
    assert document["state"] == "ready", document
    assert document["embedded"] == document["passages"] >= 3
    listed = http.get(f"/api/collections/{collection}").json()
    assert listed["embedding_model"] == setup.remote_model and listed["dimensions"] == 384
    assert setup.llama.requests(EMBEDDINGS) > before

    asked = setup.llama.requests(EMBEDDINGS)
    found = setup.search(collection, "when can young tomato plants go out", "vector")
    assert found.status_code == 200, found.text
    top = found.json()["results"][0]
    assert "twelve degrees" in top["text"] and top["heading"].endswith("Tomatoes"), found.json()
    assert found.json()["notice"] is None
    pond = setup.search(collection, "water feature pump season", "vector").json()["results"][0]
    assert "pond pump" in pond["text"]
    assert setup.llama.requests(EMBEDDINGS) == asked + 2  # each query embedded there
    assert setup.workers() == []

    # its vectors through gridless are those of gridless's own engine (the same model)
    remote = http.post("/v1/embeddings", json={"model": setup.remote_model, "input": TEXTS})
    assert remote.status_code == 200, remote.text
    assert remote.json()["model"] == setup.remote_model and setup.workers() == []
    local = http.post("/v1/embeddings", json={"input": TEXTS})
    assert local.status_code == 200, local.text
    assert local.json()["model"] == BUNDLED_EMBEDDING_ID
    theirs = np.array([d["embedding"] for d in remote.json()["data"]], dtype=np.float32)
    ours = np.array([d["embedding"] for d in local.json()["data"]], dtype=np.float32)
    assert theirs.shape == ours.shape == (3, 384)
    assert np.allclose(np.linalg.norm(theirs, axis=1), 1.0, atol=1e-4)
    cosines = np.sum(theirs * ours, axis=1) / (np.linalg.norm(theirs, axis=1) * np.linalg.norm(ours, axis=1))
    assert np.all(cosines >= 0.99), cosines

    # the server goes away
    setup.llama.kill()
    words = setup.search(collection, "climbing roses", "hybrid")
    assert words.status_code == 200, words.text
    hits = words.json()["results"]
    assert hits and "climbing roses" in hits[0]["text"]
    notice = words.json()["notice"]
    assert notice and NAME in notice and "words" in notice, words.json()

    kitchen = http.post(f"/api/collections/{collection}/documents", params={"name": "kitchen.md"}, content=KITCHEN)
    assert kitchen.status_code == 201, kitchen.text
    deadline = time.monotonic() + 30
    while (waiting := setup.document(collection, "kitchen.md"))["error"] is None:
        assert time.monotonic() < deadline, waiting
        time.sleep(0.1)
    assert waiting["state"] == "indexing" and waiting["error"]["code"] == "remote_unavailable", waiting
    assert NAME in waiting["error"]["message"] and "connect" in waiting["error"]["message"].lower(), waiting
    garden = next(d for d in setup.documents(collection) if d["name"] == "garden.md")
    assert garden["state"] == "ready"  # what was indexed stays
    server = next(e for e in http.get("/api/engines").json()["engines"] if e["id"] == setup.engine_id)
    assert server["state"] == "down" and NAME in (server["error"] or "")
    assert http.get("/healthz").json()["status"] == "ok"

    # back again: the waiting document is indexed by itself
    setup.llama.restart()
    kitchen_done = next(d for d in setup.settled(collection) if d["name"] == "kitchen.md")
    assert kitchen_done["state"] == "ready" and kitchen_done["error"] is None, kitchen_done
