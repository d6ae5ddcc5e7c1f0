"""Reciprocal rank fusion and the numbered block of passages the model reads."""

from __future__ import annotations

from backend.knowledge.retrieval import RRF_K, fuse, sources_block
from backend.knowledge.store import Hit, Passage


def hit(n: int, text: str, *, page: int | None = None, heading: str = "") -> Hit:
    return Hit(passage=Passage(n=n, document_id="d", ordinal=n, heading=heading, page=page, text=text),
               document_name=f"doc{n}.pdf", collection_id="c", score=0.0)


def test_a_passage_both_lists_find_comes_first() -> None:
    fused = fuse({"words": [1, 2, 3], "vector": [4, 3, 5]})
    assert fused[0][0] == 3
    assert fused[0][1] == 1 / (RRF_K + 3) + 1 / (RRF_K + 2)
    assert fused[0][2] == {"words": 3, "vector": 2}
    assert [n for n, _, _ in fused] == [3, 1, 4, 2, 5]


def test_one_list_alone_keeps_its_order_and_duplicates_count_once() -> None:
    assert [n for n, _, _ in fuse({"words": [5, 2, 5, 9]})] == [5, 2, 9]
    assert fuse({"words": [], "vector": []}) == []


def test_sources_block_numbers_passages_with_document_page_and_heading() -> None:
    block, used = sources_block([hit(1, "The oven lasts.", page=4, heading="Warranty"), hit(2, "Second.")])
    assert used == 2
    assert "[1] (doc1.pdf, page 4, Warranty)\nThe oven lasts." in block
    assert "[2] (doc2.pdf)\nSecond." in block
    assert "cite them by number" in block


def test_sources_block_leaves_out_what_does_not_fit_but_keeps_the_first() -> None:
    long = "x" * 500
    block, used = sources_block([hit(1, long), hit(2, long), hit(3, long)], max_chars=900)
    assert used == 1 and "[2]" not in block
    block, used = sources_block([hit(1, long)], max_chars=10)
    assert used == 1 and "[1]" in block
