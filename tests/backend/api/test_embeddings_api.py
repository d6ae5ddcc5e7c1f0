"""POST /v1/embeddings through a real server with the official openai client: numbers and base64,
one text or many, the bundled model by name or by default, and the refusals in OpenAI's shape."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from tests.server import ServerProcess

pytestmark = pytest.mark.engine
MODEL = "all-minilm-l6-v2"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(data_dir=tmp_path_factory.mktemp("embeddings-server") / "data") as server:
        yield server


@pytest.fixture(scope="module")
def client(srv: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{srv.base}/v1", api_key=srv.token, max_retries=0, timeout=120)


def post(srv: ServerProcess, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{srv.base}/v1/embeddings", json=body, headers=srv.headers(), timeout=120)


def test_a_list_of_texts_gets_one_vector_each(client: openai.OpenAI) -> None:
    texts = ["A cat sits on the mat", "A kitten is lying on a rug", "The stock market fell today"]
    answer = client.embeddings.create(model=MODEL, input=texts)
    assert answer.object == "list" and answer.model == MODEL
    assert [d.index for d in answer.data] == [0, 1, 2] and all(d.object == "embedding" for d in answer.data)
    vectors = np.array([d.embedding for d in answer.data])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    assert answer.usage.prompt_tokens == answer.usage.total_tokens > 3 * 3


def test_base64_carries_the_same_numbers(client: openai.OpenAI, srv: ServerProcess) -> None:
    numbers = client.embeddings.create(model=MODEL, input="Il gatto dorme sul divano").data[0].embedding
    raw = post(srv, {"model": MODEL, "input": "Il gatto dorme sul divano", "encoding_format": "base64"})
    assert raw.status_code == 200
    encoded = raw.json()["data"][0]["embedding"]
    assert isinstance(encoded, str)
    decoded = np.frombuffer(base64.b64decode(encoded), dtype="<f4")
    assert decoded.shape == (384,) and np.allclose(decoded, numbers, atol=1e-6)
    # the client asks for base64 by itself and decodes it (its default when numpy is there)
    by_client = client.embeddings.create(model=MODEL, input="Il gatto dorme sul divano", encoding_format="base64")
    assert by_client.data[0].embedding == encoded


def test_the_active_model_answers_for_openais_names_and_none(client: openai.OpenAI, srv: ServerProcess) -> None:
    answer = client.embeddings.create(model="text-embedding-3-small", input="hello", dimensions=384)
    assert answer.model == MODEL and len(answer.data[0].embedding) == 384
    plain = post(srv, {"input": "hello"})
    assert plain.status_code == 200 and plain.json()["model"] == MODEL
    assert np.allclose(plain.json()["data"][0]["embedding"], answer.data[0].embedding, atol=1e-6)


def test_queries_can_be_marked_as_queries(srv: ServerProcess) -> None:
    as_query = post(srv, {"model": MODEL, "input": ["hello"], "input_type": "query"})
    assert as_query.status_code == 200  # all-MiniLM has no prefixes: the same vector
    assert np.allclose(as_query.json()["data"][0]["embedding"], post(srv, {"input": "hello"}).json()["data"][0]
                       ["embedding"], atol=1e-6)


def refused(call: Any) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize(("body", "status", "code", "says"), [
    ({"model": MODEL, "input": [1, 2, 3]}, 400, "bad_request", "token ids"),
    ({"model": MODEL, "input": [[1, 2], [3]]}, 400, "bad_request", "token ids"),
    ({"model": MODEL, "input": []}, 400, "bad_request", "empty list"),
    ({"model": MODEL, "input": ["fine", ""]}, 400, "bad_request", "input[1] is empty"),
    ({"model": MODEL, "input": {"text": "x"}}, 400, "bad_request", "string or a list of strings"),
    ({"model": MODEL, "input": ["x"] * 2049}, 400, "bad_request", "at most 2048"),
    ({"model": MODEL, "input": ["word " * 120_000, "x " * 450_000]}, 400, "bad_request", "characters"),
    ({"model": MODEL, "input": "word " * 2000}, 400, "context_length_exceeded", "at most 512"),
    ({"model": MODEL, "input": "x", "dimensions": 256}, 400, "bad_request", "384 dimensions"),
    ({"model": MODEL, "input": "x", "encoding_format": "int8"}, 400, None, None),
    ({"model": "no-such-model", "input": "x"}, 404, "model_not_found", "no-such-model"),
    ({"model": "smollm2-135m-instruct", "input": "x"}, 404, "model_not_found", "smollm2"),
])
def test_refusals_are_in_openais_shape(srv: ServerProcess, body: dict[str, Any], status: int, code: str | None,
                                       says: str | None) -> None:
    answer = post(srv, body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code and says is not None and says in error["message"]
        assert error["param"] in ("input", "model", "dimensions")


def test_the_client_sees_the_errors(client: openai.OpenAI) -> None:
    missing = refused(lambda: client.embeddings.create(model="no-such-model", input="x"))
    assert missing.status_code == 404
    assert isinstance(missing, openai.NotFoundError)
    long = refused(lambda: client.embeddings.create(model=MODEL, input="word " * 2000))
    assert isinstance(long, openai.BadRequestError) and "512" in long.message


def test_the_server_stayed_healthy(srv: ServerProcess) -> None:
    assert httpx.get(f"{srv.base}/healthz", timeout=10).json()["status"] == "ok"
    assert "Traceback" not in srv.log(), srv.log()[-4000:]
