"""Embedding models in the catalog: their prefixes and languages, checked like every entry, and the
estimate of what they need; and the prefixes of embedding models that are not in the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backend.core.jobs import Job
from backend.models.catalog import Catalog, CatalogError, embedding_prefixes_for
from tests.catalogs import chat_entry, write_catalog


def embedding_entry(**changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": "tiny-e5", "job": "embeddings", "name": "Tiny E5", "description": "test", "repo": "acme/e5-GGUF",
        "files": [{"path": "e5.Q8_0.gguf", "size_mb": 40}], "license": "mit", "min_device_ram_gb": 1,
        "query_prefix": "query: ", "passage_prefix": "passage: ", "languages": ["en", "it"]}
    return entry | changes


def test_the_shipped_catalog_has_embedding_models_with_their_prefixes() -> None:
    entries = Catalog.load().for_job(Job.EMBEDDINGS)
    assert entries
    for entry in entries:
        assert entry.main_file.path.endswith(".gguf") and entry.license and entry.files[0].size_mb > 0
        if "e5" in entry.id:
            assert (entry.query_prefix, entry.passage_prefix) == ("query: ", "passage: ")


def test_an_embedding_entry_loads_with_its_prefixes(tmp_path: Path) -> None:
    catalog = Catalog.load(write_catalog(tmp_path / "c.json", [embedding_entry()]))
    entry = catalog.get("tiny-e5")
    assert entry is not None and entry.job == Job.EMBEDDINGS
    assert entry.prefixes == {"query_prefix": "query: ", "passage_prefix": "passage: "}
    estimate = entry.estimate(4096).total
    assert 40_000_000 < estimate < 400_000_000  # the file and a working margin, not a chat model's KV cache


@pytest.mark.parametrize(("entry", "message"), [
    (chat_entry(query_prefix="query: "), "only an embedding model has prefixes"),
    (embedding_entry(languages=["italian"]), "two-letter"),
    (embedding_entry(files=[{"path": "e5.safetensors", "size_mb": 40}]), "must end with"),
    (embedding_entry(features=["tools"]), "only a language model has features"),
    (embedding_entry(query_prefix="x" * 201), "query_prefix"),
])
def test_a_wrong_embedding_entry_is_refused(tmp_path: Path, entry: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        Catalog.load(write_catalog(tmp_path / "c.json", [entry]))


@pytest.mark.parametrize(("name", "query", "passage"), [
    ("intfloat/multilingual-e5-small.Q8_0", "query: ", "passage: "),
    ("e5-base-v2-gguf/e5-base-v2.Q4_K_M.gguf", "query: ", "passage: "),
    ("nomic-ai/nomic-embed-text-v1.5-GGUF/nomic-embed-text-v1.5.Q8_0.gguf", "search_query: ", "search_document: "),
    ("all-MiniLM-L6-v2", "", ""),
    ("acme/some5-model", "", ""),
])
def test_models_outside_the_catalog_get_their_familys_prefixes(name: str, query: str, passage: str) -> None:
    assert embedding_prefixes_for(name) == {"query_prefix": query, "passage_prefix": passage}
