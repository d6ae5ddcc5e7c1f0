"""Passages from blocks: heading paths, packing, pages, long paragraphs, tables and code, normalising."""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path

import pytest

from backend.knowledge.chunking import Chunk, chunk, embedding_text
from backend.knowledge.extract import Block, extract
from tests.knowledgefiles import MARKDOWN


def heading(text: str, level: int, page: int | None = None) -> Block:
    return Block(text, "heading", level, page)


def text(value: str, page: int | None = None) -> Block:
    return Block(value, "text", 0, page)


def table(rows: list[list[str]]) -> Block:
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "| " + " | ".join("---" for _ in rows[0]) + " |")
    return Block("\n".join(lines), "table")


def words(value: str) -> list[str]:
    return value.split()


SENTENCES = [f"Sentence number {n} talks about the harvest of year {1900 + n} in some detail." for n in range(60)]
LONG = " ".join(SENTENCES)


# --- sections ---------------------------------------------------------------------------------

def test_heading_paths_follow_levels() -> None:
    chunks = chunk([
        heading("Book", 1), text("Preface."),
        heading("Chapter 2", 2), heading("Prices", 3), text("Apples cost one euro."),
        heading("Costs", 3), text("Transport is dear."),
        heading("Chapter 3", 2), text("The end."),
        heading("Appendix", 1), text("Tables."),
    ])
    assert [(c.heading, c.text) for c in chunks] == [
        ("Book", "Preface."),
        ("Book › Chapter 2 › Prices", "Apples cost one euro."),
        ("Book › Chapter 2 › Costs", "Transport is dear."),
        ("Book › Chapter 3", "The end."),
        ("Appendix", "Tables."),
    ]
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_a_heading_with_nothing_under_it_is_a_passage() -> None:
    chunks = chunk([heading("Manual", 1), heading("Empty section", 2), heading("Full section", 2),
                    text("Words."), heading("Last and empty", 2)])
    assert [(c.heading, c.text) for c in chunks] == [
        ("Manual", "Empty section"), ("Manual › Full section", "Words."), ("Manual", "Last and empty"),
    ]


def test_a_heading_skipping_levels_and_going_back_up() -> None:
    chunks = chunk([heading("Deep", 3), text("a"), heading("Top", 1), text("b"), heading("Mid", 2), text("c")])
    assert [c.heading for c in chunks] == ["Deep", "Top", "Top › Mid"]


def test_blank_blocks_make_no_passages() -> None:
    assert chunk([text("   \n\t "), Block("  ", "table"), heading("  ", 1), text("")]) == []
    assert chunk([]) == []


# --- packing ----------------------------------------------------------------------------------

def test_short_paragraphs_are_packed_up_to_the_target() -> None:
    paragraphs = [f"Paragraph {n} " + "word " * 30 for n in range(20)]
    chunks = chunk([text(p) for p in paragraphs], target_chars=500, max_chars=700)
    assert 1 < len(chunks) < 20
    assert all(len(c.text) <= 700 for c in chunks)
    assert all(len(c.text) <= 500 for c in chunks[:-1])
    assert [p.strip() for c in chunks for p in c.text.split("\n\n")] == [p.strip() for p in paragraphs]


def test_a_passage_does_not_cross_a_page() -> None:
    chunks = chunk([text("Page one, first.", 1), text("Page one, second.", 1), text("Page two.", 2),
                    text("Page three.", 3)])
    assert [(c.text, c.page) for c in chunks] == [
        ("Page one, first.\n\nPage one, second.", 1), ("Page two.", 2), ("Page three.", 3),
    ]


def test_a_long_paragraph_is_cut_at_sentence_ends_with_overlap() -> None:
    chunks = chunk([text(LONG, 4)], target_chars=400, max_chars=600, overlap_chars=100)
    assert len(chunks) > 5
    assert all(len(c.text) <= 600 and c.page == 4 for c in chunks)
    original = set(words(LONG))
    for c in chunks:
        assert set(words(c.text)) <= original  # no word was cut in two
    for before, after in pairwise(chunks):
        start = after.text[:40]
        assert start in before.text, "each piece starts with the end of the one before"
        assert after.text.startswith("Sentence number")  # the overlap starts at a sentence
    covered = " ".join(c.text for c in chunks)
    assert all(sentence in covered for sentence in SENTENCES)


def test_without_overlap_the_pieces_are_the_paragraph() -> None:
    chunks = chunk([text(LONG)], target_chars=400, max_chars=600, overlap_chars=0)
    assert " ".join(c.text for c in chunks) == LONG
    assert all(c.text.endswith("detail.") for c in chunks)


def test_text_without_sentences_is_cut_between_words() -> None:
    value = " ".join(f"parola{n}" for n in range(600))
    chunks = chunk([text(value)], target_chars=300, max_chars=400, overlap_chars=50)
    assert len(chunks) > 5 and all(len(c.text) <= 400 for c in chunks)
    original = set(words(value))
    assert all(set(words(c.text)) <= original for c in chunks)
    assert chunks[1].text.split()[0] in chunks[0].text.split()  # overlapping words


def test_a_word_longer_than_a_passage_is_cut_as_it_must() -> None:
    chunks = chunk([text("x" * 2500 + " tail")], target_chars=1000, max_chars=1500, overlap_chars=0)
    assert all(0 < len(c.text) <= 1500 for c in chunks)
    assert "".join(c.text.replace(" ", "") for c in chunks) == "x" * 2500 + "tail"


def test_abbreviations_and_lower_case_do_not_end_sentences() -> None:
    value = ("Fruit, e.g. apples and pears, is sold here. Dr. Rossi agrees. " * 3).strip()
    chunks = chunk([text(value)], target_chars=70, max_chars=90, overlap_chars=0)
    assert [c.text for c in chunks] == ["Fruit, e.g. apples and pears, is sold here. Dr. Rossi agrees."] * 3


def test_italian_sentences_are_cut_after_their_punctuation() -> None:
    value = "È già tardi… Però la città è bella! Perché? Così è. " * 10
    chunks = chunk([text(value)], target_chars=50, max_chars=80, overlap_chars=0)
    assert all(len(c.text) <= 80 for c in chunks)
    assert all(c.text.endswith((".", "!", "?", "…")) for c in chunks)
    assert " ".join(c.text for c in chunks) == " ".join(value.split())


def test_max_chars_must_be_positive() -> None:
    with pytest.raises(ValueError):
        chunk([text("a")], max_chars=0)


# --- tables and code --------------------------------------------------------------------------

def test_a_long_table_is_cut_between_rows_repeating_its_header() -> None:
    rows = [["Fruit", "Price", "Origin"]] + [[f"fruit {n}", f"{n} €", "Sicilia"] for n in range(200)]
    chunks = chunk([heading("Prices", 2), table(rows)], target_chars=500, max_chars=700)
    head = "| Fruit | Price | Origin |\n| --- | --- | --- |\n"
    assert len(chunks) > 5
    assert all(c.text.startswith(head) and len(c.text) <= 700 and c.heading == "Prices" for c in chunks)
    body = [line for c in chunks for line in c.text.split("\n")[2:]]
    assert body == ["| " + " | ".join(row) + " |" for row in rows[1:]]


def test_tables_keep_their_line_breaks_and_are_not_packed_with_text() -> None:
    chunks = chunk([text("Before."), table([["a", "b"], ["1", "2"]]), text("After.")])
    assert [c.text for c in chunks] == ["Before.", "| a | b |\n| --- | --- |\n| 1 | 2 |", "After."]


def test_long_code_is_cut_between_lines_and_keeps_fences_and_indentation() -> None:
    functions = [f"def f{n}(x):\n    if x:\n        return {n}\n    return -{n}\n" for n in range(40)]
    block = text("```python\n" + "\n".join(functions) + "```")
    chunks = chunk([block], target_chars=300, max_chars=400)
    assert len(chunks) > 3
    for c in chunks:
        assert c.text.startswith("```python\ndef f") and c.text.endswith("\n```") and len(c.text) <= 400
        assert "\n    if x:\n        return" in c.text
    bodies = "\n".join(c.text.removeprefix("```python\n").removesuffix("\n```") for c in chunks)
    assert re.findall(r"def f(\d+)", bodies) == [str(n) for n in range(40)]


# --- normalising ------------------------------------------------------------------------------

def test_prose_is_normalised_but_list_items_keep_their_lines() -> None:
    chunks = chunk([text("Some   words\nwrapped\u00a0 here.\n- first item\n- second\n  continued"),
                    text("Cafe\u0301 soft\u00adhyphen")])
    assert chunks[0].text == "Some words wrapped here.\n- first item\n- second continued\n\nCafé softhyphen"


def test_embedding_text_puts_title_and_heading_first() -> None:
    passage = Chunk("Apples cost one euro.", "Chapter 2 › Prices", 3, 0)
    assert embedding_text(passage, "Report") == "Report › Chapter 2 › Prices\n\nApples cost one euro."
    assert embedding_text(passage) == "Chapter 2 › Prices\n\nApples cost one euro."
    bare = Chunk("Just text.", "", None, 1)
    assert embedding_text(bare, None) == "Just text."
    assert embedding_text(bare, "Report") == "Report\n\nJust text."


def test_a_markdown_file_from_extraction_to_passages(tmp_path: Path) -> None:
    path = tmp_path / "handbook.md"
    path.write_text(MARKDOWN)
    chunks = chunk(extract(path, path.name).blocks)
    assert [c.heading for c in chunks] == [
        "Handbook", "Handbook › Prices", "Handbook › Prices", "Handbook › Prices", "Handbook › Setext heading",
        "Handbook › Setext heading › Deep section",
    ]
    assert chunks[0].text == "Introduction paragraph on two lines."
    assert chunks[1].text == "Some words about prices."
    assert chunks[2].text.startswith("| Fruit | Price |\n| --- | --- |\n| Apple | 1 |")
    assert chunks[3].text == "```python\ndef price(fruit):\n\n    return PRICES[fruit]\n```"
    assert chunks[5].text == "Deep words.\n\nLast paragraph."
