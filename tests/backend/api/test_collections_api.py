"""`/api/collections` through a real server with the real embedding model: raw uploads under a 1 MB
cap, progress until ready, search with document, page and score, passages, and refusals that keep
nothing (a body past the cap, a kind collections do not hold, unknown ids)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.documentfiles import pdf_bytes
from tests.server import ServerProcess

pytestmark = pytest.mark.engine

NOTES = b"""# Garden notes

## Tomatoes

Tomato seedlings go outside once the nights stay above twelve degrees, usually in mid May.

## Roses

Prune the climbing roses in late winter, just above an outward-facing bud.
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("collections-api") / "data"
    with ServerProcess(data_dir=data, env={"GRIDLESS_MAX_DOCUMENT_MB": "1"}) as server:
        yield server


def api(server: ServerProcess, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, f"{server.base}{path}", headers=server.headers(), timeout=60, **kw)


def documents_on_disk(server: ServerProcess) -> set[str]:
    folder = server.data_dir / "media" / "documents"
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def ready(server: ServerProcess, collection: str, within: float = 90) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    while True:
        documents = api(server, "GET", f"/api/collections/{collection}/documents").json()["documents"]
        if all(d["state"] not in ("queued", "reading", "indexing") for d in documents) or time.monotonic() > deadline:
            return documents
        time.sleep(0.2)


def test_collections_documents_search_and_passages(srv: ServerProcess) -> None:
    made = api(srv, "POST", "/api/collections", json={"name": "Garden", "description": "notes"})
    assert made.status_code == 201, made.text
    cid = made.json()["id"]
    up = api(srv, "POST", f"/api/collections/{cid}/documents", params={"name": "garden.md"}, content=NOTES)
    assert up.status_code == 201 and up.json()["state"] == "queued"
    pdf = pdf_bytes([["Contents"], ["The pond pump runs from April to October."]])
    assert api(srv, "POST", f"/api/collections/{cid}/documents", params={"name": "pond.pdf"},
               content=pdf).status_code == 201
    documents = ready(srv, cid)
    assert {d["name"]: d["state"] for d in documents} == {"garden.md": "ready", "pond.pdf": "ready"}
    assert all(d["embedded"] == d["passages"] > 0 for d in documents)

    found = api(srv, "GET", f"/api/collections/{cid}/search", params={"q": "when can young tomato plants go out",
                                                                       "k": 2})
    assert found.status_code == 200
    top = found.json()["results"][0]
    assert top["document"] == "garden.md" and "twelve degrees" in top["text"]
    assert top["heading"].endswith("Tomatoes") and top["score"] > 0
    pond = api(srv, "GET", f"/api/collections/{cid}/search", params={"q": "pond pump", "mode": "words"}).json()
    assert pond["results"][0]["page"] == 2 and pond["mode"] == "words"

    passage = api(srv, "GET", f"/api/passages/{top['passage_id']}").json()
    assert passage["document"]["name"] == "garden.md" and passage["text"] == top["text"]
    listed = api(srv, "GET", "/api/collections").json()["collections"]
    assert [(c["name"], c["documents"], c["ready"]) for c in listed] == [("Garden", 2, 2)]
    assert listed[0]["embedding_model"] == "all-minilm-l6-v2" and listed[0]["dimensions"] == 384

    assert api(srv, "PATCH", f"/api/collections/{cid}", json={"name": "Orto"}).json()["name"] == "Orto"
    pond_id = next(d["id"] for d in documents if d["name"] == "pond.pdf")
    assert api(srv, "DELETE", f"/api/collections/{cid}/documents/{pond_id}").status_code == 204
    gone = api(srv, "GET", f"/api/collections/{cid}/search", params={"q": "pond pump", "mode": "words"}).json()
    assert all(r["document"] != "pond.pdf" for r in gone["results"])
    assert api(srv, "DELETE", f"/api/collections/{cid}").status_code == 204
    assert documents_on_disk(srv) == set()
    assert api(srv, "GET", f"/api/passages/{top['passage_id']}").status_code == 404


@pytest.mark.parametrize(("name", "body", "status", "code"), [
    ("big.txt", b"x" * (1024 * 1024 + 10), 413, "request_too_large"),  # declared: refused at the gate
    ("photo.png", b"\x89PNG\r\n\x1a\n" + b"0" * 64, 400, "unsupported_content"),
    ("empty.md", b"", 400, "empty_document"),
    ("", b"text", 400, "bad_request"),
])
def test_refused_uploads_keep_nothing(srv: ServerProcess, name: str, body: bytes, status: int, code: str) -> None:
    cid = api(srv, "POST", "/api/collections", json={"name": f"refusals {code}"}).json()["id"]
    before = documents_on_disk(srv)
    refused = api(srv, "POST", f"/api/collections/{cid}/documents", params={"name": name}, content=body)
    assert refused.status_code == status, refused.text
    assert refused.json()["error"]["code"] == code and refused.json()["error"]["message"]
    assert documents_on_disk(srv) == before
    assert api(srv, "GET", f"/api/collections/{cid}/documents").json()["documents"] == []
    api(srv, "DELETE", f"/api/collections/{cid}")


def test_a_streamed_body_over_the_cap_is_cut_off_and_kept_nowhere(srv: ServerProcess) -> None:
    cid = api(srv, "POST", "/api/collections", json={"name": "streamed"}).json()["id"]

    def body() -> Iterator[bytes]:
        for _ in range(40):  # 2.5 MB without a Content-Length
            yield b"b" * (64 * 1024)
    refused = api(srv, "POST", f"/api/collections/{cid}/documents", params={"name": "big.txt"}, content=body())
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "document_too_large"
    assert "1 MB" in refused.json()["error"]["message"]
    assert documents_on_disk(srv) == set()
    api(srv, "DELETE", f"/api/collections/{cid}")


def test_a_failed_document_says_why(srv: ServerProcess) -> None:
    cid = api(srv, "POST", "/api/collections", json={"name": "bad"}).json()["id"]
    up = api(srv, "POST", f"/api/collections/{cid}/documents", params={"name": "data.txt"},
             content=bytes(range(256)) * 8)
    assert up.status_code == 201
    [document] = ready(srv, cid)
    assert document["state"] == "failed" and document["error"]["code"] == "not_a_document"
    assert "«data.txt»" in document["error"]["message"]
    again = api(srv, "POST", f"/api/collections/{cid}/documents/{document['id']}/reindex")
    assert again.status_code == 200 and again.json()["state"] == "queued"
    [document] = ready(srv, cid)
    assert document["state"] == "failed"
    api(srv, "DELETE", f"/api/collections/{cid}")


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/collections/nope"),
    ("DELETE", "/api/collections/nope"),
    ("GET", "/api/collections/nope/documents"),
    ("POST", "/api/collections/nope/documents?name=a.md"),
    ("GET", "/api/collections/nope/search?q=x"),
    ("GET", "/api/passages/999999"),
])
def test_unknown_ids_are_404(srv: ServerProcess, method: str, path: str) -> None:
    response = api(srv, method, path, content=b"text" if method == "POST" else None)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_bad_searches_are_refused(srv: ServerProcess) -> None:
    cid = api(srv, "POST", "/api/collections", json={"name": "search"}).json()["id"]
    assert api(srv, "GET", f"/api/collections/{cid}/search", params={"q": "  "}).status_code == 400
    assert api(srv, "GET", f"/api/collections/{cid}/search", params={"q": "x", "k": 0}).status_code == 422
    assert api(srv, "GET", f"/api/collections/{cid}/search", params={"q": "x" * 3000}).status_code == 422
    assert api(srv, "GET", f"/api/collections/{cid}/search", params={"q": "x", "mode": "magic"}).status_code == 422
    assert api(srv, "POST", "/api/collections", json={"name": ""}).status_code == 422
    api(srv, "DELETE", f"/api/collections/{cid}")


def test_a_server_killed_while_indexing_resumes_where_it_was(tmp_path_factory: pytest.TempPathFactory) -> None:
    data = tmp_path_factory.mktemp("collections-kill") / "data"
    text = "\n\n".join(f"Entry {i}. The night watch records the lamps lit along the harbour wall, the boats "
                       f"that come in late and the state of the sea at midnight. " * 3 for i in range(250))
    with ServerProcess(data_dir=data) as server:
        cid = api(server, "POST", "/api/collections", json={"name": "Harbour"}).json()["id"]
        doc = api(server, "POST", f"/api/collections/{cid}/documents", params={"name": "watch.txt"},
                  content=text.encode()).json()
        deadline = time.monotonic() + 90
        while True:
            seen = api(server, "GET", f"/api/collections/{cid}/documents/{doc['id']}").json()
            if seen["embedded"] >= 32 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert 0 < seen["embedded"] < seen["passages"], seen
        server.kill_hard()
    with ServerProcess(data_dir=data) as server:
        resumed = api(server, "GET", f"/api/collections/{cid}/documents/{doc['id']}").json()
        assert resumed["state"] == "indexing" and resumed["embedded"] >= seen["embedded"]
        assert api(server, "GET", f"/api/collections/{cid}/search", params={"q": "harbour"}).json()["results"] == []
        [done] = ready(server, cid)
        assert done["state"] == "ready" and done["embedded"] == done["passages"] == seen["passages"]
        found = api(server, "GET", f"/api/collections/{cid}/search", params={"q": "lamps on the harbour wall"})
        assert found.json()["results"][0]["document"] == "watch.txt"
