"""What is read aloud from an answer in Markdown, and in which pieces."""

from __future__ import annotations

import pytest

from backend.engines.voice import pieces, speakable


def test_code_blocks_are_left_out() -> None:
    text = speakable("Here is how:\n```python\nimport os\nprint(os.getcwd())\n```\nThat is all.")
    assert "(code left out)" in text
    assert "import" not in text and "print" not in text and "```" not in text
    assert text.startswith("Here is how") and text.endswith("That is all.")


def test_an_unfinished_code_block_leaves_out_the_rest() -> None:
    text = speakable("Start here. ```sh\nrm -rf build\nmake all")
    assert text == "Start here. (code left out)."


def test_two_code_blocks_keep_the_text_between() -> None:
    text = speakable("First:\n```\na = 1\n```\nthen:\n```\nb = 2\n```\nDone.")
    assert text.count("(code left out)") == 2
    assert "then" in text and "a = 1" not in text and "b = 2" not in text


def test_inline_code_keeps_its_words() -> None:
    assert speakable("Run `pip install gridless` first.") == "Run pip install gridless first."


def test_links_keep_their_words_not_their_targets() -> None:
    text = speakable("Read [the guide](https://example.com/guide?x=1) and see ![a cat](cat.png).")
    assert text == "Read the guide and see a cat."


def test_bare_urls_become_a_link() -> None:
    text = speakable("Details are at https://example.com/a/b?c=d#e and http://10.0.0.2:8765/x too.")
    assert text == "Details are at a link and a link too."
    assert "http" not in text and "example" not in text


@pytest.mark.parametrize("markdown", [
    "- apples\n- pears\n- plums",
    "* apples\n* pears\n* plums",
    "+ apples\n+ pears\n+ plums",
    "  - apples\n  - pears\n\t- plums",
])
def test_list_items_become_sentences(markdown: str) -> None:
    assert speakable(markdown) == "apples. pears. plums."


def test_numbered_list_keeps_its_numbers() -> None:
    assert speakable("1. Boil water.\n2. Add pasta.") == "1. Boil water. 2. Add pasta."


def test_tables_become_rows_of_words() -> None:
    text = speakable("| Name | Age |\n|------|-----:|\n| Ann | 31 |\n| Bob | 42 |")
    assert text == "Name Age. Ann 31. Bob 42."
    assert "|" not in text and "-" not in text


def test_headings_emphasis_and_quotes_lose_their_markup() -> None:
    text = speakable("# Title\n\n**Bold** and _italic_ and ~~struck~~ words.\n> A quote")
    assert text == "Title. Bold and italic and struck words. A quote."


def test_lines_become_sentences_without_doubled_full_stops() -> None:
    assert speakable("One line.\nAnother line\n\n\nLast line.") == "One line. Another line. Last line."


@pytest.mark.parametrize("markdown", ["", "   \n\n\t", "***", "---", "| |\n|---|", "# \n> "])
def test_nothing_to_say(markdown: str) -> None:
    assert speakable(markdown) == ""


def test_whitespace_is_collapsed() -> None:
    assert speakable("Many    spaces\there.") == "Many spaces here."


# --- pieces: the first sentence alone, so sound starts soon -------------------------------------

def test_first_sentence_is_spoken_alone() -> None:
    assert pieces("Hi there. How are you? Fine!") == ["Hi there.", "How are you? Fine!"]
    assert pieces("Just one sentence here.") == ["Just one sentence here."]


def test_long_first_sentence_is_cut_at_a_clause_within_reach() -> None:
    text = "The capital of France is Paris, which is known for the Eiffel Tower and its museums. Then rest."
    assert pieces(text) == ["The capital of France is Paris,",
                            "which is known for the Eiffel Tower and its museums. Then rest."]


def test_a_late_clause_gives_way_to_a_cut_before_a_joining_word() -> None:
    text = "When the weather is fine and the sun is shining brightly, we walk along the river to the mill."
    assert pieces(text) == ["When the weather is fine",
                            "and the sun is shining brightly, we walk along the river to the mill."]


def test_without_joining_words_the_cut_is_the_last_word_boundary_that_fits() -> None:
    text = "Seventeen purple elephants quietly painted enormous murals everywhere yesterday afternoon."
    head, tail = pieces(text)
    assert head == "Seventeen purple elephants quietly"
    assert f"{head} {tail}" == text


@pytest.mark.parametrize("text", [
    "Just one fairly short sentence here, nothing more.",
    "Hello!",
    "Supercalifragilisticexpialidociouslyextraordinarilylongwordwithoutspaces.",
], ids=["short", "one-word", "no-spaces"])
def test_short_or_uncuttable_first_sentences_stay_whole(text: str) -> None:
    assert pieces(text) == [text]


def test_the_first_piece_is_short_whatever_the_sentence() -> None:
    sentence = " ".join(["word"] * 60) + "."
    head = pieces(sentence)[0]
    assert 15 <= len(head) <= 50


def test_pieces_keep_every_word() -> None:
    text = "One, two and three, then four and five and six and seven and eight. Nine? Ten!\nEleven."
    assert " ".join(pieces(text)).split() == text.split()
