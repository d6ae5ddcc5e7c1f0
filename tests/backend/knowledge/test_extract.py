"""Documents read into blocks: PDFs, Word files, HTML, Markdown, CSV and text, and every refusal."""

from __future__ import annotations

import random
import zipfile
from pathlib import Path

import pytest

from backend.core.errors import AppError, ErrorCode
from backend.knowledge.extract import SUPPORTED_SUFFIXES, Block, Extracted, Limits, extract
from tests.audiofiles import png_bytes
from tests.documentfiles import REPORT_PAGES, encrypted, pdf_bytes
from tests.knowledgefiles import (
    ITALIAN,
    MARKDOWN,
    PAGE_HTML,
    document_xml,
    docx_bomb,
    docx_bytes,
    docx_with,
    pdf_with_title,
    sparse_file,
)


@pytest.fixture
def write(tmp_path: Path):
    def write(name: str, data: bytes | str, encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.write_bytes(data.encode(encoding) if isinstance(data, str) else data)
        return path
    return write


def read(path: Path, **limits: int) -> Extracted:
    return extract(path, path.name, limits=Limits(**limits))


def refused(path: Path, **limits: int) -> AppError:
    with pytest.raises(AppError) as info:
        read(path, **limits)
    assert f"«{path.name}»" in info.value.message
    return info.value


def kinds_of(result: Extracted) -> list[tuple[str, str, int]]:
    return [(block.kind, block.text, block.level) for block in result.blocks]


# --- PDFs -------------------------------------------------------------------------------------

def test_pdf_blocks_carry_their_pages_and_the_title_comes_from_metadata(write) -> None:
    result = read(write("report.pdf", pdf_with_title(REPORT_PAGES, "Annual  report")))
    assert result.kind == "pdf" and result.pages == 4 and result.title == "Annual report" and result.warnings == []
    assert all(block.kind == "text" for block in result.blocks)
    pages = {block.page for block in result.blocks}
    assert pages == {1, 2, 3, 4}
    by_page = {page: " ".join(b.text for b in result.blocks if b.page == page) for page in pages}
    assert "Apples sold well" in by_page[1] and "bananas" in by_page[2] and "bananas" not in by_page[1]
    assert "elderberries" in by_page[4]


def test_pdf_without_metadata_title_has_none(write) -> None:
    assert read(write("plain.pdf", pdf_bytes(REPORT_PAGES[:1]))).title is None


def test_pdf_is_recognised_by_its_bytes_whatever_its_name(write) -> None:
    result = read(write("notes.txt", pdf_bytes(REPORT_PAGES[:2])))
    assert result.kind == "pdf" and result.blocks[0].page == 1


def test_pdf_with_a_password_is_refused(write) -> None:
    error = refused(write("report.pdf", encrypted(pdf_bytes(REPORT_PAGES), "secret")))
    assert error.code is ErrorCode.ENCRYPTED_PDF
    assert error.message == "«report.pdf» is protected by a password; remove the password and add it again."


def test_pdf_encrypted_with_an_empty_password_opens(write) -> None:
    result = read(write("locked.pdf", encrypted(pdf_bytes(REPORT_PAGES), "")))
    assert result.kind == "pdf" and "cherries" in " ".join(block.text for block in result.blocks)


def test_scanned_pdf_is_refused(write) -> None:
    error = refused(write("scan.pdf", pdf_bytes([[], [], []])))
    assert error.code is ErrorCode.NO_TEXT
    assert error.message == ("«scan.pdf» has no text to read: it looks like scanned pages (text recognition "
                             "is not available).")


def test_pdf_whose_pages_are_nearly_all_empty_is_refused_as_scanned(write) -> None:
    assert refused(write("cover.pdf", pdf_bytes([["Cover page"]] + [[]] * 11))).code is ErrorCode.NO_TEXT


def test_pdf_with_some_empty_pages_is_read_with_a_warning(write) -> None:
    result = read(write("mixed.pdf", pdf_bytes([["One"], [], ["Three"], []])))
    assert [block.page for block in result.blocks] == [1, 3]
    assert result.warnings == ["Pages 2 and 4 have no text (scanned?)."]
    single = read(write("single.pdf", pdf_bytes([["One"], [], ["Three"]])))
    assert single.warnings == ["Page 2 has no text (scanned?)."]


def test_broken_pdf_is_refused(write) -> None:
    error = refused(write("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage"))
    assert error.code is ErrorCode.BROKEN_PDF


def test_pdf_pages_past_the_limit_are_left_out_with_a_warning(write) -> None:
    result = read(write("long.pdf", pdf_bytes(REPORT_PAGES)), max_pages=2)
    assert result.pages == 4 and {block.page for block in result.blocks} == {1, 2}
    assert result.warnings == ["Only the first 2 of 4 pages were indexed."]


def test_reading_a_pdf_stops_when_cancelled(write) -> None:
    path = write("report.pdf", pdf_bytes(REPORT_PAGES))
    asked: list[int] = []

    def cancelled() -> bool:
        asked.append(1)
        return len(asked) > 2

    with pytest.raises(AppError) as info:
        extract(path, "report.pdf", cancelled=cancelled)
    assert info.value.code is ErrorCode.CANCELLED and "«report.pdf»" in info.value.message


# --- Word -------------------------------------------------------------------------------------

WORD_ITEMS = [
    ("Heading1", "Chapter one"), ("", "First paragraph."), ("list", "A list item"),
    ("Heading2", "Prices"), [["Fruit", "Price"], ["Apple", "1"], ["Pear", "2"]],
    ("Titolo3", "Dettagli"), ("", "Line one\nline two"), ("", "   "),
]


def test_docx_headings_paragraphs_lists_and_tables(write) -> None:
    data = docx_bytes(WORD_ITEMS, title="The handbook", styles={"Titolo3": "heading 3"})
    result = read(write("handbook.docx", data))
    assert result.kind == "docx" and result.title == "The handbook" and result.pages is None
    assert kinds_of(result) == [
        ("heading", "Chapter one", 1), ("text", "First paragraph.", 0), ("text", "- A list item", 0),
        ("heading", "Prices", 2),
        ("table", "| Fruit | Price |\n| --- | --- |\n| Apple | 1 |\n| Pear | 2 |", 0),
        ("heading", "Dettagli", 3), ("text", "Line one\nline two", 0),
    ]
    assert all(block.page is None for block in result.blocks)


def test_docx_title_falls_back_to_the_first_heading(write) -> None:
    result = read(write("notes.docx", docx_bytes([("", "Intro"), ("Title", "My notes"), ("", "Body")])))
    assert result.title == "My notes"
    assert result.blocks[1] == Block("My notes", "heading", 1)


def test_docx_content_controls_outline_levels_and_links(write) -> None:
    w = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    xml = (f'<w:document xmlns:w="{w}"><w:body><w:sdt><w:sdtContent><w:p><w:pPr><w:outlineLvl w:val="1"/></w:pPr>'
           '<w:r><w:t>Outline two</w:t></w:r></w:p></w:sdtContent></w:sdt><w:p><w:hyperlink><w:r><w:t>link text</w:t>'
           '</w:r></w:hyperlink><w:r><w:tab/><w:t>after</w:t><w:delText>deleted</w:delText></w:r></w:p></w:body>'
           '</w:document>')
    result = read(write("controls.docx", docx_with({"word/document.xml": xml})))
    assert kinds_of(result) == [("heading", "Outline two", 2), ("text", "link text after", 0)]


def test_old_word_files_are_refused_with_advice(write) -> None:
    error = refused(write("old.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600)))
    assert error.code is ErrorCode.NOT_A_DOCUMENT and "save it as .docx" in error.message


def test_docx_is_recognised_by_its_bytes(write) -> None:
    assert read(write("report.bin", docx_bytes([("", "Hello")]))).kind == "docx"


def test_zip_without_a_word_document_is_refused(write) -> None:
    error = refused(write("fake.docx", docx_with({"hello.txt": "hi"})))
    assert error.code is ErrorCode.NOT_A_DOCUMENT and "Word document" in error.message
    sheet = refused(write("sheet.xlsx", docx_with({"xl/workbook.xml": "<workbook/>"})))
    assert sheet.code is ErrorCode.NOT_A_DOCUMENT and "an Excel workbook" in sheet.message


def test_docx_that_is_not_a_zip_is_refused(write) -> None:
    data = b"PK\x03\x04" + bytes(random.Random(3).randbytes(2000))
    assert refused(write("broken.docx", data)).code is ErrorCode.NOT_A_DOCUMENT


def test_docx_with_broken_xml_is_refused(write) -> None:
    data = docx_with({"word/document.xml": "<w:document><w:body><w:p>"})
    assert refused(write("broken.docx", data)).code is ErrorCode.NOT_A_DOCUMENT


def test_docx_with_a_doctype_is_refused_before_expanding_anything(write) -> None:
    laughs = ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
              + document_xml([("", "&b;")]).split("?>", 1)[1].replace("&amp;b;", "&b;"))
    error = refused(write("laughs.docx", docx_with({"word/document.xml": laughs})))
    assert error.code is ErrorCode.NOT_A_DOCUMENT and "document type declaration" in error.message


def test_docx_bomb_is_refused_by_its_packing_ratio(write) -> None:
    error = refused(write("bomb.docx", docx_bomb(5)))
    assert error.code is ErrorCode.DOCUMENT_TOO_LARGE and "times its packed size" in error.message


def test_docx_unpacking_past_the_limit_is_refused(write) -> None:
    error = refused(write("bomb.docx", docx_bomb(5)), max_unzipped=4 * 1024 * 1024, max_ratio=10**9)
    assert error.code is ErrorCode.DOCUMENT_TOO_LARGE
    assert error.message == "«bomb.docx» unpacks to more than 4 MB; it is refused."


def test_docx_stored_uncompressed_is_within_the_ratio(write) -> None:
    data = docx_with({"word/document.xml": document_xml([("", "Plain words")])}, compression=zipfile.ZIP_STORED)
    assert kinds_of(read(write("stored.docx", data))) == [("text", "Plain words", 0)]


# --- HTML -------------------------------------------------------------------------------------

def test_html_structure_title_and_skipped_parts(write) -> None:
    result = read(write("page.html", PAGE_HTML))
    assert result.kind == "html" and result.title == "Fruit & prices"
    assert kinds_of(result) == [
        ("heading", "Fruit guide", 1), ("text", "Apples are crisp\nand sweet.", 0), ("heading", "Prices", 2),
        ("text", "- Apples: one euro", 0), ("text", "- Pears: two euros", 0),
        ("table", "| Fruit | Price |\n| --- | --- |\n| Apple | 1 € |\n| Pear | 2 € |", 0),
        ("text", "```\ndef price(fruit):\n    return PRICES[fruit]\n```", 0), ("text", "An apple a day.", 0),
    ]
    every = " ".join(block.text for block in result.blocks)
    assert "navigation" not in every and "script text" not in every and "color" not in every


def test_html_is_recognised_by_its_tags_and_decoded_with_its_charset(write) -> None:
    page = '<html><head><meta charset="iso-8859-1"><title>Città</title></head><body><p>Perché sì</p></body></html>'
    result = read(write("saved.txt", page.encode("cp1252")))
    assert result.kind == "html" and result.title == "Città"
    assert kinds_of(result) == [("text", "Perché sì", 0)]


def test_html_without_a_title_takes_its_first_heading(write) -> None:
    result = read(write("x.htm", "<body><h2>Only heading</h2><div>Words</div></body>"))
    assert result.title == "Only heading" and result.blocks[0].level == 2


# --- Markdown ---------------------------------------------------------------------------------

def test_markdown_headings_tables_code_and_paragraphs(write) -> None:
    result = read(write("handbook.md", MARKDOWN))
    assert result.kind == "markdown" and result.title == "Front matter title"
    assert kinds_of(result) == [
        ("heading", "Handbook", 1), ("text", "Introduction paragraph\non two lines.", 0),
        ("heading", "Prices", 2), ("text", "Some words about prices.", 0),
        ("table", "| Fruit | Price |\n| --- | --- |\n| Apple | 1 |\n| Pear | 2 \\| 3 |", 0),
        ("text", "```python\ndef price(fruit):\n\n    return PRICES[fruit]\n```", 0),
        ("heading", "Setext heading", 2), ("text", "Under the setext heading.", 0),
        ("heading", "Deep section", 3), ("text", "Deep words.", 0), ("text", "Last paragraph.", 0),
    ]


def test_markdown_title_is_its_first_heading_without_front_matter(write) -> None:
    result = read(write("a.md", "Intro\n=====\n\nText with a #hashtag\n\n#not a heading\n"))
    assert result.title == "Intro"
    assert kinds_of(result) == [("heading", "Intro", 1), ("text", "Text with a #hashtag", 0),
                                ("text", "#not a heading", 0)]


# --- tables -----------------------------------------------------------------------------------

def test_csv_is_one_table_with_its_header_first(write) -> None:
    result = read(write("prices.csv", "fruit;price\napple;1\npear;2\n"))
    assert result.kind == "csv" and result.title is None
    assert kinds_of(result) == [("table", "| fruit | price |\n| --- | --- |\n| apple | 1 |\n| pear | 2 |", 0)]


def test_long_csv_comes_in_groups_of_rows_each_with_the_header(write) -> None:
    rows = "\n".join(f"item {n}\t{n * 3}\tsome description of item number {n}" for n in range(2000))
    result = read(write("items.tsv", "name\tvalue\tnote\n" + rows))
    assert len(result.blocks) > 3 and all(block.kind == "table" for block in result.blocks)
    header = "| name | value | note |\n| --- | --- | --- |\n"
    assert all(block.text.startswith(header) for block in result.blocks)
    body = [line for block in result.blocks for line in block.text.split("\n")[2:]]
    assert len(body) == 2000 and body[0].startswith("| item 0 |") and body[-1].startswith("| item 1999 |")


# --- text -------------------------------------------------------------------------------------

def test_text_paragraphs_split_on_blank_lines(write) -> None:
    result = read(write("notes.txt", "First paragraph\nstill first.\n\n  \n\nSecond one.\n"))
    assert result.kind == "text" and result.title is None and result.warnings == []
    assert kinds_of(result) == [("text", "First paragraph\nstill first.", 0), ("text", "Second one.", 0)]


@pytest.mark.parametrize("encoding", ["cp1252", "utf-16", "utf-8-sig", "utf-8"])
def test_italian_text_in_any_common_encoding(write, encoding: str) -> None:
    result = read(write(f"italiano-{encoding}.txt", ITALIAN, encoding))
    assert [block.text for block in result.blocks] == ITALIAN.strip().split("\n\n")


def test_source_code_is_kept_whole_with_its_indentation(write) -> None:
    result = read(write("tool.py", "def f():\n    return 1\n\n\nclass A:\n    pass\n"))
    assert kinds_of(result) == [("text", "```python\ndef f():\n    return 1\n\n\nclass A:\n    pass\n```", 0)]


def test_png_named_txt_is_refused_as_binary(write) -> None:
    error = refused(write("x.txt", png_bytes()))
    assert error.code is ErrorCode.NOT_A_DOCUMENT
    assert error.message == "«x.txt» is not text: it looks like binary data (a PNG image)."


def test_random_bytes_are_refused_as_binary(write) -> None:
    error = refused(write("noise.txt", random.Random(7).randbytes(4096)))
    assert error.code is ErrorCode.NOT_A_DOCUMENT and "binary data" in error.message


def test_text_in_an_unknown_encoding_is_refused(write) -> None:
    error = refused(write("y.txt", b"\xef\xbb\xbfcaf\xe9 cr\xe8me br\xfbl\xe9e\n"))
    assert error.code is ErrorCode.NOT_A_DOCUMENT
    assert error.message == "«y.txt» is in an encoding that could not be recognised."


def test_a_huge_file_is_refused_before_reading(tmp_path: Path) -> None:
    error = refused(sparse_file(tmp_path / "huge.txt", 200 * 1024 * 1024))
    assert error.code is ErrorCode.DOCUMENT_TOO_LARGE
    assert error.message == "«huge.txt» is 200 MB; documents can be at most 100 MB."


def test_text_past_the_character_limit_is_cut_with_a_warning(write) -> None:
    text = "\n\n".join(f"Paragraph number {n} says something." for n in range(100))
    result = read(write("long.txt", text), max_chars=500)
    kept = sum(len(block.text) for block in result.blocks)
    assert 0 < kept <= 500 and result.blocks[0].text == "Paragraph number 0 says something."
    assert result.warnings == ["Only the first 500 characters were indexed."]


def test_empty_files_are_refused(write) -> None:
    assert refused(write("empty.txt", b"")).code is ErrorCode.EMPTY_DOCUMENT
    assert refused(write("blank.md", " \n\n \t\n")).code is ErrorCode.EMPTY_DOCUMENT


def test_reading_text_stops_when_cancelled(write) -> None:
    path = write("notes.txt", "One.\n\nTwo.\n")
    with pytest.raises(AppError) as info:
        extract(path, "folder/notes.txt", cancelled=lambda: True)
    assert info.value.code is ErrorCode.CANCELLED and "«notes.txt»" in info.value.message


def test_supported_suffixes() -> None:
    for suffix in (".pdf", ".md", ".markdown", ".txt", ".text", ".csv", ".tsv", ".html", ".htm", ".docx", ".json",
                   ".py"):
        assert suffix in SUPPORTED_SUFFIXES
    assert ".svg" not in SUPPORTED_SUFFIXES and ".png" not in SUPPORTED_SUFFIXES
