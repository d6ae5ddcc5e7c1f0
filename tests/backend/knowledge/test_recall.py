"""Recall of collection search on the labelled set (`tests/knowledge_set.py`) with the bundled
embedding model, all-MiniLM-L6-v2, in its worker: by meaning, by words and both fused.

The ~300 documents are added through `KnowledgeService` once for the module and indexed by the
real indexer; every question is then searched (k = 5) in each mode. A question counts as found
when one of the five passages is of its document and holds its planted fact. The floors are a
few points under what was measured here, so a change that makes search find less fails; the
measured values are beside them. Citations are checked too: every hit names its document, a
PDF's hit its page, a structured document's hit its section's heading.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio

from backend.core.config import Settings
from backend.knowledge.service import SearchMode
from backend.knowledge.store import Hit
from backend.services import Services
from tests.knowledge_set import LabelledSet, Question, answered, write_set
from tests.threads import ENGINE_THREADS

pytestmark = pytest.mark.engine
in_module_loop = pytest.mark.asyncio(loop_scope="module")
"""The embedding worker started by the module's fixture belongs to the module's event loop."""

MODES: tuple[SearchMode, ...] = ("vector", "words", "hybrid")
K = 5
INDEX_WITHIN_S = 900

# Measured on this set with the bundled all-MiniLM-L6-v2 (2 cores; 396 questions, 1 286 passages):
#   recall@5      vector  words  hybrid
#   English        0.769  0.342   0.709
#   Italian        0.122  0.360   0.310
#   overall        0.447  0.351   0.510
# The model is English-only: by meaning it finds little in Italian, where the words carry the search.
# In English hybrid stays under meaning alone (0.71 against 0.77): the words list, fused at equal
# weight, brings passages sharing a question's words but not its answer.
FLOORS: dict[tuple[str, str], float] = {
    ("vector", "en"): 0.72, ("vector", "it"): 0.08, ("vector", "all"): 0.41,
    ("words", "en"): 0.30, ("words", "it"): 0.32, ("words", "all"): 0.31,
    ("hybrid", "en"): 0.66, ("hybrid", "it"): 0.27, ("hybrid", "all"): 0.47,
}
HYBRID_MARGIN = 0.03
"""Hybrid may trail the better single mode by this much at most, overall."""


@dataclass
class Measured:
    labelled: LabelledSet
    hits: dict[str, list[list[Hit]]] = field(default_factory=dict)
    """Per mode, the hits of each question, in the order of `labelled.questions`."""

    def recall(self, mode: str, language: str | None = None, kind: str | None = None) -> float:
        found = total = 0
        for question, hits in zip(self.labelled.questions, self.hits[mode], strict=True):
            if (language is None or question.language == language) and (kind is None or question.kind == kind):
                total += 1
                found += answered(question, [(h.document_name, h.passage.text) for h in hits])
        return found / total

    def table(self) -> str:
        rows = [f"{'recall@5':<22}" + "".join(f"{m:>9}" for m in MODES)]
        for label, language, kind in (("English", "en", None), ("Italian", "it", None), ("named", None, "named"),
                                      ("described", None, "described"), ("overall", None, None)):
            rows.append(f"{label:<22}" + "".join(f"{self.recall(m, language, kind):>9.3f}" for m in MODES))
        return "\n".join(rows)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def measured(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Measured]:
    root = tmp_path_factory.mktemp("recall")
    labelled = write_set(root / "documents")
    services = Services.build(Settings(data_dir=root / "data", token="t" * 20, threads=ENGINE_THREADS))
    await services.start()
    try:
        knowledge = services.knowledge
        collection = await knowledge.create_collection("Everyday papers")
        ids = [(await knowledge.add_file(collection.id, path)).id for path in labelled.files]
        documents = await knowledge.wait(ids, within=INDEX_WITHIN_S)
        not_ready = [(d.name, d.state, d.error) for d in documents if d.state != "ready"]
        assert not not_ready, f"documents not indexed: {not_ready}"
        result = Measured(labelled)
        for mode in MODES:
            result.hits[mode] = [(await knowledge.search([collection.id], q.text, k=K, mode=mode)).hits
                                 for q in labelled.questions]
        print("\n" + result.table())
        yield result
    finally:
        await services.stop()


def _answering(question: Question, hits: list[Hit]) -> Hit | None:
    return next((h for h in hits if answered(question, [(h.document_name, h.passage.text)])), None)


@in_module_loop
async def test_every_search_answers_five_passages_of_the_set(measured: Measured) -> None:
    """By meaning there are always five nearest passages; by words only those holding a word of the
    question (function words aside), so there may be fewer, or none."""
    names = {d.name for d in measured.labelled.documents}
    for mode in MODES:
        for question, hits in zip(measured.labelled.questions, measured.hits[mode], strict=True):
            assert len(hits) <= K if mode == "words" else len(hits) == K, (mode, question.text)
            assert {h.document_name for h in hits} <= names
            assert len({h.passage.n for h in hits}) == len(hits)


@in_module_loop
async def test_hybrid_finds_at_least_what_the_better_single_mode_finds(measured: Measured) -> None:
    best = max(measured.recall("vector"), measured.recall("words"))
    assert measured.recall("hybrid") >= best - HYBRID_MARGIN, measured.table()


@in_module_loop
async def test_recall_floors(measured: Measured) -> None:
    failing = {f"{mode} {language}": (round(measured.recall(mode, None if language == "all" else language), 3), floor)
               for (mode, language), floor in FLOORS.items()
               if measured.recall(mode, None if language == "all" else language) < floor}
    assert not failing, f"under the floor (measured, floor): {failing}\n{measured.table()}"


@in_module_loop
async def test_meaning_finds_what_words_cannot(measured: Measured) -> None:
    """Questions that only describe their subject share few words with the text: by meaning,
    more of them are found than by words alone."""
    assert measured.recall("vector", kind="described") > measured.recall("words", kind="described"), measured.table()


@in_module_loop
async def test_hits_cite_their_document_page_and_heading(measured: Measured) -> None:
    checked: dict[str, int] = defaultdict(int)
    for question, hits in zip(measured.labelled.questions, measured.hits["hybrid"], strict=True):
        hit = _answering(question, hits)
        if hit is None:
            continue
        suffix = Path(question.document).suffix
        assert hit.document_name == question.document
        assert hit.score > 0 and hit.ranks, hit
        if suffix == ".pdf":
            assert hit.passage.page == question.page, (question.document, hit.passage.page, question.page)
            checked["page"] += 1
        else:
            assert hit.passage.page is None
        if suffix in (".md", ".html", ".docx") and question.heading:
            assert hit.passage.heading.endswith(question.heading), (question.document, hit.passage.heading)
            checked["heading"] += 1
    for mode in MODES:
        for hits in measured.hits[mode]:
            for hit in hits:
                assert hit.document_name and hit.passage.text.strip()
                if hit.document_name.endswith(".pdf"):
                    assert hit.passage.page is not None and hit.passage.page >= 1
    assert checked["page"] >= 3 and checked["heading"] >= 50, dict(checked)
