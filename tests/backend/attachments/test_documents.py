"""Text from attached documents: PDFs written here, tables, encodings, JSON, code; `fit` to a budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.attachments.documents import Extracted, extract, fit
from backend.core.errors import AppError
from tests.audiofiles import png_bytes
from tests.documentfiles import REPORT_PAGES, encrypted, pdf_bytes

# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def write(tmp_path: Path):
    def write(name: str, data: bytes | str, encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.write_bytes(data.encode(encoding) if isinstance(data, str) else data)
        return path
    return write


def refused(path: Path, name: str | None = None, **limits: int) -> AppError:
    with pytest.raises(AppError) as info:
        extract(path, name or path.name, **limits)
    return info.value


# --- PDFs -------------------------------------------------------------------------------------

def test_pdf_pages_are_read_in_order_with_separators(write) -> None:
    result = extract(write("report.pdf", pdf_bytes(REPORT_PAGES)), "report.pdf")
    assert result.kind == "pdf" and result.name == "report.pdf"
    assert result.pages == 4 and result.pages_read == 4 and result.notice is None
    assert result.chars == len(result.text) == result.total_chars
    sections = result.text.split("\n\n")
    assert [s.split("\n", 1)[0] for s in sections] == [f"--- page {n} ---" for n in (1, 2, 3, 4)]
    assert "Quarterly report" in sections[0] and "Apples sold well" in sections[0]
    assert "bananas" in sections[1] and "bananas" not in sections[0]
    assert "cherries" in sections[2]
    assert "dates" in sections[3] and "elderberries" in sections[3]


def test_pdf_is_recognised_by_content_not_name(write) -> None:
    assert extract(write("notes.txt", pdf_bytes(REPORT_PAGES[:1])), "notes.txt").kind == "pdf"
    assert extract(write("fake.pdf", "Just some words.\n"), "fake.pdf").kind == "text"


def test_pdf_past_the_page_limit_is_not_read(write) -> None:
    result = extract(write("long.pdf", pdf_bytes(REPORT_PAGES)), "long.pdf", max_pages=2)
    assert result.pages == 4 and result.pages_read == 2
    assert "bananas" in result.text and "cherries" not in result.text and "--- page 3 ---" not in result.text
    assert result.notice == "Only pages 1–2 of 4 were read: documents are read up to page 2."
    text, notice = fit(result, 10_000)
    assert text == result.text
    assert notice == "Only pages 1–2 of 4 were included (50 %): the document is longer than this app reads."


def test_pdf_past_the_character_limit_keeps_whole_pages_and_says_so(write) -> None:
    full = extract(write("a.pdf", pdf_bytes(REPORT_PAGES)), "a.pdf")
    first_two = full.text.split("\n\n--- page 3 ---")[0]
    result = extract(write("b.pdf", pdf_bytes(REPORT_PAGES)), "b.pdf", max_chars=len(first_two) + 5)
    assert result.text == first_two and result.pages_read == 2 and result.pages == 4
    assert result.notice == f"Only pages 1–2 of 4 were read: longer documents are cut at {len(first_two) + 5:,} " \
                            "characters."


def test_pdf_page_cut_by_the_character_limit_counts_as_part_of_a_page(write) -> None:
    full = extract(write("a.pdf", pdf_bytes(REPORT_PAGES)), "a.pdf")
    limit = full.text.index("and elderberries") + 3
    result = extract(write("b.pdf", pdf_bytes(REPORT_PAGES)), "b.pdf", max_chars=limit)
    assert result.text.endswith("--- page 4 ---\nFourth page lists dates") and result.pages_read == 4
    assert result.total_chars == full.chars
    assert result.notice is not None and result.notice.startswith("Only pages 1–3 and part of page 4 of 4 were read")
    text, notice = fit(result, 100_000)
    assert text == result.text
    assert notice is not None and notice.startswith("Only pages 1–3 and part of page 4 of 4 were included (")
    assert notice.endswith(": the document is longer than this app reads.")


def test_encrypted_pdf_is_refused_with_a_plain_reason(write) -> None:
    error = refused(write("secret.pdf", encrypted(pdf_bytes(REPORT_PAGES), "hunter2")))
    assert (error.status, error.code) == (422, "encrypted_pdf")
    assert "password" in error.message


def test_pdf_protected_only_against_editing_is_read(write) -> None:
    result = extract(write("owner.pdf", encrypted(pdf_bytes(REPORT_PAGES), "")), "owner.pdf")
    assert "bananas" in result.text and result.pages == 4


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.97])
def test_truncated_pdf_is_broken(write, keep: float) -> None:
    data = pdf_bytes(REPORT_PAGES)
    error = refused(write("cut.pdf", data[:int(len(data) * keep)]))
    assert (error.status, error.code) == (422, "broken_pdf")
    assert "damaged" in error.message


def test_garbage_after_the_pdf_header_is_broken(write) -> None:
    error = refused(write("junk.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 8))
    assert error.code == "broken_pdf"


def test_pdf_without_text_seems_scanned(write) -> None:
    error = refused(write("scan.pdf", pdf_bytes([[], []])))
    assert (error.status, error.code) == (422, "no_text")
    assert "scanned" in error.message


# --- tables -----------------------------------------------------------------------------------

def test_csv_with_header_becomes_a_markdown_table(write) -> None:
    csv_text = 'name,city,score\nAlice,Paris,91\nBob,"Berlin, DE",78\nCarol,Pipe|Town,85\n'
    result = extract(write("people.csv", csv_text), "people.csv")
    assert result.kind == "table" and result.encoding == "utf-8"
    assert result.columns == ["name", "city", "score"] and result.rows == 3
    assert result.text.split("\n") == [
        "| name | city | score |",
        "| --- | --- | --- |",
        "| Alice | Paris | 91 |",
        "| Bob | Berlin, DE | 78 |",
        "| Carol | Pipe\\|Town | 85 |",
    ]
    assert result.preview == [["name", "city", "score"], ["Alice", "Paris", "91"], ["Bob", "Berlin, DE", "78"],
                              ["Carol", "Pipe|Town", "85"]]
    assert result.chars == len(result.text)


def test_semicolon_csv_with_decimal_commas(write) -> None:
    result = extract(write("prices.csv", "Produkt;Preis;Menge\nÄpfel;1,50;3\nBirnen;2,25;10\n"), "prices.csv")
    assert result.columns == ["Produkt", "Preis", "Menge"] and result.rows == 2
    assert "| Äpfel | 1,50 | 3 |" in result.text and "| Birnen | 2,25 | 10 |" in result.text


def test_tsv(write) -> None:
    result = extract(write("words.tsv", "id\tword\tcount\n1\talpha\t3\n2\tbeta, gamma\t4\n"), "words.tsv")
    assert result.kind == "table" and result.columns == ["id", "word", "count"] and result.rows == 2
    assert "| 2 | beta, gamma | 4 |" in result.text
    assert result.preview == [["id", "word", "count"], ["1", "alpha", "3"], ["2", "beta, gamma", "4"]]


def test_table_preview_is_header_and_five_rows(write) -> None:
    body = "".join(f"{i},item {i}\n" for i in range(1, 41))
    result = extract(write("items.csv", "n,label\n" + body), "items.csv")
    assert result.rows == 40 and result.preview is not None
    assert result.preview[0] == ["n", "label"] and len(result.preview) == 6 and result.preview[-1] == ["5", "item 5"]
    assert "| 40 | item 40 |" in result.text


def test_csv_without_header_gets_column_names(write) -> None:
    result = extract(write("numbers.csv", "1,2,3\n4,5,6\n"), "numbers.csv")
    assert result.columns == ["Column 1", "Column 2", "Column 3"] and result.rows == 2
    assert "| 1 | 2 | 3 |" in result.text


def test_ragged_rows_are_padded_and_newlines_in_cells_flattened(write) -> None:
    result = extract(write("notes.csv", 'a,b,c\n1,"two\nlines"\n3,4,5\n'), "notes.csv")
    assert result.rows == 2 and "| 1 | two lines |  |" in result.text


def test_table_like_name_needs_consistent_columns(write) -> None:
    assert extract(write("data.psv", "a|b|c\n1|2|3\n4|5|6\n"), "data.psv").kind == "table"
    loose = extract(write("data.tab", "just a line\nanother\tline with a tab\n"), "data.tab")
    assert loose.kind == "text"


def test_csv_past_the_character_limit_keeps_whole_rows(write) -> None:
    body = "".join(f"{i},value {i}\n" for i in range(1, 101))
    result = extract(write("big.csv", "n,value\n" + body), "big.csv", max_chars=200)
    assert result.rows == 100 and result.chars <= 200
    kept = result.text.split("\n")
    assert kept[0] == "| n | value |" and kept[-1].startswith("| ") and kept[-1].endswith(" |")
    assert result.notice is not None and f"{len(kept) - 2} of 100 rows" in result.notice
    text, notice = fit(result, 10_000)
    assert text == result.text
    assert notice is not None and notice.endswith("the table is longer than this app reads.")


# --- text and encodings -----------------------------------------------------------------------

SAMPLE = "Café crème: 5 € — naïve Straße.\nZweite Zeile.\n"


@pytest.mark.parametrize("encoding,data,reported", [
    ("utf-8", SAMPLE.encode("utf-8"), "utf-8"),
    ("utf-8 with BOM", SAMPLE.encode("utf-8-sig"), "utf-8-sig"),
    ("utf-16 LE with BOM", SAMPLE.encode("utf-16-le").join([b"\xff\xfe", b""]), "utf-16-le"),
    ("utf-16 BE with BOM", SAMPLE.encode("utf-16-be").join([b"\xfe\xff", b""]), "utf-16-be"),
    ("cp1252", SAMPLE.encode("cp1252"), "cp1252"),
], ids=["utf-8", "utf-8-bom", "utf-16-le-bom", "utf-16-be-bom", "cp1252"])
def test_text_encodings_are_detected(write, encoding: str, data: bytes, reported: str) -> None:
    result = extract(write("note.txt", data), "note.txt")
    assert result.kind == "text" and result.encoding == reported, encoding
    assert result.text == SAMPLE and "\ufeff" not in result.text


def test_short_cp1252_text_is_read_as_western(write) -> None:
    result = extract(write("price.txt", "Prix: 5 € à payer\n".encode("cp1252")), "price.txt")
    assert result.text == "Prix: 5 € à payer\n" and result.encoding == "cp1252"


def test_cyrillic_code_page_is_detected(write) -> None:
    russian = "Привет, как дела? Это тестовый текст на русском языке.\n"
    result = extract(write("ru.txt", russian.encode("cp1251")), "ru.txt")
    assert result.text == russian and result.encoding == "cp1251"


def test_line_ends_are_normalised(write) -> None:
    assert extract(write("crlf.txt", "one\r\ntwo\rthree\n"), "crlf.txt").text == "one\ntwo\nthree\n"


def test_markdown_and_code_kinds(write) -> None:
    assert extract(write("README.md", "# Title\n\nBody.\n"), "README.md").kind == "markdown"
    code = extract(write("main.py", "def main() -> None:\n    print('hi')\n"), "main.py")
    assert (code.kind, code.language, code.encoding) == ("code", "python", "utf-8")
    assert extract(write("app.ts", "const x: number = 1;\n"), "app.ts").language == "typescript"
    assert extract(write("Dockerfile", "FROM python:3.11\n"), "Dockerfile").language == "dockerfile"
    assert extract(write("x", "no extension here\n"), "some/dir/notes").kind == "text"


def test_text_past_the_character_limit_is_cut_at_a_line(write) -> None:
    text = "".join(f"line {i:04d}\n" for i in range(1000))  # 10 characters a line
    result = extract(write("long.txt", text), "long.txt", max_chars=995)
    assert result.chars == len(result.text) <= 995 and result.text.endswith("line 0098")
    assert result.total_chars == len(text) and result.notice is not None
    _, notice = fit(result, 100_000)
    assert notice == "Only the first 9 % of the text was included: the document is longer than this app reads."


# --- JSON -------------------------------------------------------------------------------------

def test_one_line_json_is_indented(write) -> None:
    result = extract(write("data.json", '{"name":"Ada","langs":["en","fr"]}'), "data.json")
    assert result.kind == "json"
    assert json.loads(result.text) == {"name": "Ada", "langs": ["en", "fr"]}
    assert '\n  "name": "Ada",\n' in result.text


def test_multi_line_json_is_kept_as_written(write) -> None:
    text = '{\n    "a": 1,\n    "b": [1, 2]\n}\n'
    assert extract(write("data.json", text), "data.json").text == text


def test_invalid_json_names_the_line(write) -> None:
    error = refused(write("bad.json", '{\n  "a": 1,\n  "b": 2\n  "c": 3\n}\n'))
    assert (error.status, error.code) == (422, "invalid_json")
    assert "line 4" in error.message and "not valid JSON" in error.message


def test_json_lines_checks_every_line(write) -> None:
    assert extract(write("log.jsonl", '{"a": 1}\n{"a": 2}\n'), "log.jsonl").kind == "json"
    error = refused(write("log.jsonl", '{"a": 1}\n{"a": 2}\n{"a": \n'))
    assert error.code == "invalid_json" and "line 3" in error.message


# --- refusals ---------------------------------------------------------------------------------

def test_png_named_txt_is_named_a_png_image(write) -> None:
    error = refused(write("photo.txt", png_bytes()))
    assert (error.status, error.code) == (415, "not_a_document")
    assert error.message == "This is a PNG image, not a document."


@pytest.mark.parametrize("name,data,what", [
    ("report.docx", b"PK\x03\x04\x14\x00\x06\x00" + bytes(64), "a Word document"),
    ("model.txt", b"GGUF\x03\x00\x00\x00" + bytes(64), "a GGUF model"),
    ("tool.txt", b"\x7fELF\x02\x01\x01\x00" + bytes(64), "a program"),
    ("pic.txt", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64), "a JPEG image"),
])
def test_other_binaries_are_named(write, name: str, data: bytes, what: str) -> None:
    assert refused(write(name, data)).message == f"This is {what}, not a document."


def test_unknown_binary_is_refused(write) -> None:
    error = refused(write("blob.txt", bytes(range(1, 32)) * 40))
    assert error.status == 415 and "neither text nor a PDF" in error.message


def test_text_starting_like_a_bitmap_is_still_text(write) -> None:
    assert extract(write("cars.txt", "BMW and MZ motorbikes\n"), "cars.txt").kind == "text"


def test_empty_and_blank_documents(write) -> None:
    error = refused(write("empty.txt", b""))
    assert (error.status, error.code) == (400, "empty_document")
    assert refused(write("blank.txt", " \n\n\t\n")).code == "empty_document"


def test_over_the_size_cap(write) -> None:
    error = refused(write("big.txt", "x" * 2001), max_bytes=2000)
    assert (error.status, error.code) == (413, "document_too_large")
    assert extract(write("ok.txt", "x" * 2000), "ok.txt", max_bytes=2000).chars == 2000


def test_display_name_drops_folders(write) -> None:
    assert extract(write("a.txt", "hi\n"), "C:\\Users\\me\\notes.txt").name == "notes.txt"


# --- fit --------------------------------------------------------------------------------------

@pytest.fixture
def report(write) -> Extracted:
    return extract(write("report.pdf", pdf_bytes(REPORT_PAGES)), "report.pdf")


def test_fit_everything_fits(report: Extracted, write) -> None:
    assert fit(report, report.chars) == (report.text, None)
    text = extract(write("t.txt", "short\n"), "t.txt")
    assert fit(text, 1000) == (text.text, None)


def test_fit_pdf_keeps_whole_pages_and_counts_them(report: Extracted) -> None:
    end_of_two = report.text.index("\n\n--- page 3 ---")
    text, notice = fit(report, end_of_two + 10)  # room for page 3's separator, none for its text
    assert text == report.text[:end_of_two]
    assert notice == "Only pages 1–2 of 4 were included (50 %) to fit the model's context."


def test_fit_pdf_part_of_a_page(report: Extracted) -> None:
    budget = report.text.index("Apples sold well") + 5
    text, notice = fit(report, budget)
    assert text == "--- page 1 ---\nQuarterly report"
    assert notice is not None and notice.startswith("Only part of page 1 of 4 was included (")


def test_fit_pdf_nothing_fits(report: Extracted) -> None:
    text, notice = fit(report, 5)
    assert text == "" and notice is not None and "None of the document's 4 pages" in notice


def test_fit_table_keeps_header_and_whole_rows(write) -> None:
    body = "".join(f"{i},name {i}\n" for i in range(1, 51))
    table = extract(write("t.csv", "id,name\n" + body), "t.csv")
    lines = table.text.split("\n")
    budget = len("\n".join(lines[:12])) + 3  # header, separator, ten rows and a bit
    text, notice = fit(table, budget)
    assert text.split("\n") == lines[:12]
    assert notice == "Only the first 10 of 50 rows were included (20 %) to fit the model's context."
    text, notice = fit(table, len(lines[0]) + len(lines[1]) + 5)
    assert text.split("\n") == lines[:2] and notice is not None and "none of the 50 rows" in notice
    assert fit(table, len(table.text)) == (table.text, None)


def test_fit_text_cuts_at_a_line_with_a_percentage(write) -> None:
    text = "".join(f"line {i:04d}\n" for i in range(100))  # 1,000 characters
    doc = extract(write("t.txt", text), "t.txt")
    cut, notice = fit(doc, 185)
    assert cut == text[:179] and cut.endswith("line 0017")
    assert notice == "Only the first 17 % of the text was included to fit the model's context."


def test_fit_single_long_line_is_cut_at_a_space(write) -> None:
    doc = extract(write("t.txt", "word " * 100), "t.txt")
    cut, notice = fit(doc, 52)
    assert cut == ("word " * 10).rstrip() and notice is not None
