"""Text from documents attached to a chat message, so a language model can read them.

`extract` decides what a file is from its bytes first and its name second: `%PDF-` → the
text of each page (pypdf), separated by `--- page N ---` lines; anything else must be text
(byte order mark, then strict UTF-8, then charset-normalizer's guess with a Windows-1252
preference for Western text) or it is refused with what it looks like ("This is a PNG image,
not a document."). Text is then a table (`.csv`, `.tsv`, or a `.tab`/`.psv`/`.dsv` file with
consistent columns; rendered as a Markdown table), Markdown, JSON (validated), source code (by
extension) or plain text. Limits: bytes read, PDF pages read, characters kept; what was left
out is recorded so that `fit` can say how much of the whole reached the model.

`fit` cuts the text to a character budget at a line boundary (tables: whole rows, header kept)
and words a notice for the person ("Only pages 1–12 of 40 were included (30 %) to fit the
model's context."). Both are blocking: run them in a thread. Nothing here uses the network.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from ..core import kinds
from ..core.errors import AppError, ErrorCode
from ..core.units import format_bytes

__all__ = ["Extracted", "Kind", "extract", "fit", "open_pdf"]

Kind = Literal["pdf", "table", "text", "markdown", "json", "code"]

MAX_BYTES = 20 * 1024 * 1024
MAX_PAGES = 500
MAX_CHARS = 2_000_000
PREVIEW_ROWS = 5
PRETTY_JSON_CHARS = 200_000
"""A one-line JSON document up to this size is indented so the model sees its structure."""
_SAMPLE_CHARS = 64 * 1024


@dataclass(frozen=True, slots=True)
class Extracted:
    kind: Kind
    name: str
    """The file name given, for display only."""
    text: str
    """What the model reads: a Markdown table for tables, `--- page N ---` sections for PDFs."""
    chars: int
    pages: int | None = None
    """PDFs: the pages in the document (also those past the page limit)."""
    rows: int | None = None
    """Tables: the data rows in the file, without the header (also those past the character limit)."""
    columns: list[str] | None = None
    preview: list[list[str]] | None = None
    """Tables: the header and up to five rows, for the message's preview."""
    encoding: str | None = None
    """Text files: the encoding the bytes were decoded with (a Python codec name)."""
    language: str | None = None
    """Code files: the language, from the extension."""
    pages_read: int | None = None
    """PDFs: the pages whose text is in `text` (the last one maybe in part, see `total_chars`)."""
    total_chars: int = 0
    """The length the text would have had without the character limit (for PDFs: of the pages read)."""
    notice: str | None = None
    """What the limits left out of `text`, in plain words; None when `text` is the whole document."""


# --- recognising the file ---------------------------------------------------------------------

_ZIP_KINDS = {
    ".docx": "a Word document", ".xlsx": "an Excel workbook", ".pptx": "a PowerPoint presentation",
    ".odt": "an OpenDocument text", ".ods": "an OpenDocument spreadsheet", ".odp": "an OpenDocument presentation",
    ".epub": "an EPUB book", ".apk": "an Android app", ".jar": "a Java archive",
}
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"),
)

_MARKDOWN = {".md", ".markdown", ".mdown", ".mkd", ".mdx"}
_JSON = {".json", ".geojson", ".webmanifest", ".ipynb"}
_JSON_LINES = {".jsonl", ".ndjson"}
_TABLES = {".csv": None, ".tsv": "\t"}
_TABLE_LIKE = {".tab": "\t", ".psv": "|", ".dsv": None, ".ssv": ";"}
_CODE = {
    "py": "python", "pyi": "python", "pyw": "python", "js": "javascript", "mjs": "javascript",
    "cjs": "javascript", "jsx": "jsx", "ts": "typescript", "mts": "typescript", "cts": "typescript",
    "tsx": "tsx", "java": "java", "c": "c", "h": "c", "cpp": "cpp", "cc": "cpp", "cxx": "cpp", "hpp": "cpp",
    "hh": "cpp", "hxx": "cpp", "cs": "csharp", "rs": "rust", "go": "go", "rb": "ruby", "php": "php",
    "sh": "bash", "bash": "bash", "zsh": "zsh", "fish": "fish", "ps1": "powershell", "bat": "batch", "cmd": "batch",
    "html": "html", "htm": "html", "xhtml": "html", "css": "css", "scss": "scss", "sass": "sass", "less": "less",
    "sql": "sql", "yaml": "yaml", "yml": "yaml", "toml": "toml", "ini": "ini", "cfg": "ini", "conf": "ini",
    "xml": "xml", "svg": "xml", "kt": "kotlin", "kts": "kotlin", "swift": "swift", "scala": "scala",
    "lua": "lua", "pl": "perl", "pm": "perl", "r": "r", "dart": "dart", "vue": "vue", "svelte": "svelte",
    "ex": "elixir", "exs": "elixir", "erl": "erlang", "hs": "haskell", "clj": "clojure", "jl": "julia",
    "zig": "zig", "nim": "nim", "groovy": "groovy", "gradle": "groovy", "tex": "latex", "proto": "protobuf",
    "graphql": "graphql", "gql": "graphql", "tf": "hcl", "hcl": "hcl", "m": "objectivec", "mm": "objectivec",
    "f90": "fortran", "asm": "asm", "s": "asm", "vb": "vbnet", "fs": "fsharp", "ml": "ocaml", "elm": "elm",
    "cmake": "cmake", "diff": "diff", "patch": "diff",
}
_CODE_NAMES = {"dockerfile": "dockerfile", "containerfile": "dockerfile", "makefile": "makefile",
               "gnumakefile": "makefile", "cmakelists.txt": "cmake", "justfile": "just"}


def extract(path: Path, name: str, *, max_bytes: int = MAX_BYTES, max_pages: int = MAX_PAGES,
            max_chars: int = MAX_CHARS) -> Extracted:
    """Read a document's text (blocking: run it in a thread). Raises DocumentError when it cannot;
    an OSError reading `path` is not this module's to explain and propagates."""
    with path.open("rb") as file:
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        size = path.stat().st_size
        raise AppError(ErrorCode.DOCUMENT_TOO_LARGE, f"The document is {_size(max(size, len(data)))}; documents "
                                                     f"can be at most {_size(max_bytes)}.")
    if not data:
        raise AppError(ErrorCode.EMPTY_DOCUMENT, "The document is empty.")
    display = _display_name(name)
    if data.lstrip(b"\x00\t\n\r\x0c ")[:5] == b"%PDF-":
        return _pdf(data, display, max_pages, max_chars)
    text, encoding = _decode(data, display)
    if not text.strip():
        raise AppError(ErrorCode.EMPTY_DOCUMENT, "The document has no text in it.")
    return _classify(text, encoding, display, max_chars)


def _size(n: int) -> str:
    return format_bytes(n).replace(".0 ", " ")


def _display_name(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).name or "document"


def _what_binary(data: bytes, name: str) -> str | None:
    kind = kinds.identify(data[:kinds.HEAD_BYTES])
    if kind is kinds.ZIP:  # Office files, books and apps are ZIP archives: the name tells them apart
        return _ZIP_KINDS.get(PurePosixPath(name).suffix.lower(), kind.description)
    return kind.description if kind is not None and kind not in kinds.TEXT_KINDS else None


def _not_a_document(data: bytes, name: str) -> AppError:
    what = _what_binary(data, name)
    if what is not None:
        return AppError(ErrorCode.NOT_A_DOCUMENT, f"This is {what}, not a document.")
    return AppError(ErrorCode.NOT_A_DOCUMENT,
                    "This file is not a document this app can read: it is neither text nor a PDF.")


# --- text and its encoding --------------------------------------------------------------------

def _decode(data: bytes, name: str) -> tuple[str, str]:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data[len(bom):].decode(encoding.removesuffix("-sig"))
            except UnicodeDecodeError:
                raise _not_a_document(data, name) from None
            return _checked_text(text, data, name), encoding
    if b"\x00" in data:
        raise _not_a_document(data, name)
    try:
        return _checked_text(data.decode("utf-8"), data, name), "utf-8"
    except UnicodeDecodeError:
        pass
    guessed, encoding = _guess(data)
    if guessed is None:
        raise _not_a_document(data, name)
    return _checked_text(guessed, data, name), encoding


def _guess(data: bytes) -> tuple[str | None, str]:
    """charset-normalizer's guess, unless the bytes read as plausible Western text in Windows-1252:
    on short Western text the detector often prefers a neighbouring code page (cp1250, big5...).
    A confident guess for a non-Latin script (Cyrillic, Greek...) wins over Windows-1252."""
    import charset_normalizer

    best = charset_normalizer.from_bytes(data).best()
    guessed = (str(best), codecs.lookup(best.encoding).name) if best is not None else None
    if best is not None and guessed is not None and best.coherence >= 0.2 and not _mostly_latin(guessed[0]):
        return guessed
    try:
        western = data.decode("cp1252")
    except UnicodeDecodeError:
        western = None
    if western is not None and _plausible_western(western):
        return western, "cp1252"
    if guessed is not None:
        return guessed
    if western is not None:
        return western, "cp1252"
    return None, ""


_WESTERN_MARKS = frozenset("€‘’‚“”„–—…•°©®™£¥¢«»¡¿·§¶½¼¾×÷±µ\u00a0")


def _plausible_western(text: str) -> bool:
    """No symbols outside common Western punctuation, none wedged inside a word (Polish in cp1252 reads
    "Za¿ó³æ"), and few accented letters (Cyrillic in cp1252 reads "Ïðèâåò"); judged on a sample."""
    text = text[:4 * _SAMPLE_CHARS]
    letters = accented = 0
    for i, ch in enumerate(text):
        if ch.isalpha():
            letters += 1
            accented += ch >= "\x80"
        elif ch >= "\x80":
            if ch not in _WESTERN_MARKS:
                return False
            between_letters = 0 < i < len(text) - 1 and text[i - 1].isalpha() and text[i + 1].isalpha()
            if between_letters and ch not in "’·":
                return False
    return letters < 20 or accented <= 0.3 * letters


def _mostly_latin(text: str) -> bool:
    sample = [ch for ch in text[:_SAMPLE_CHARS] if ch.isalpha() and ch >= "\x80"]
    if not sample:
        return True
    latin = sum(unicodedata.name(ch, "").startswith("LATIN") for ch in sample)
    return latin * 2 >= len(sample)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")


def _checked_text(text: str, data: bytes, name: str) -> str:
    """Text with `\\n` line ends, or not-a-document when control characters say it is binary."""
    controls = len(_CONTROL.findall(text[:_SAMPLE_CHARS]))
    if "\x00" in text or controls > max(2, len(text[:_SAMPLE_CHARS]) // 100):
        raise _not_a_document(data, name)
    return _CONTROL.sub("", text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n"))


# --- kinds of text ----------------------------------------------------------------------------

def _classify(text: str, encoding: str, name: str, max_chars: int) -> Extracted:
    lower = name.lower()
    suffix = PurePosixPath(lower).suffix
    if suffix in _TABLES or suffix in _TABLE_LIKE:
        table = _table(text, encoding, name, max_chars, suffix)
        if table is not None:
            return table
    if suffix in _MARKDOWN:
        return _plain("markdown", text, encoding, name, max_chars)
    if suffix in _JSON or suffix in _JSON_LINES:
        return _plain("json", _json_text(text, lines=suffix in _JSON_LINES, max_chars=max_chars), encoding, name,
                      max_chars)
    language = _CODE_NAMES.get(lower) or _CODE.get(suffix.removeprefix("."))
    if language is not None:
        return _plain("code", text, encoding, name, max_chars, language=language)
    return _plain("text", text, encoding, name, max_chars)


def _plain(kind: Kind, text: str, encoding: str, name: str, max_chars: int, *,
           language: str | None = None) -> Extracted:
    total = len(text)
    kept = _cut_at_line(text, max_chars)
    notice = None
    if len(kept) < total:
        notice = f"Only the first {_percent(len(kept), total)} % of the text was read: longer documents are cut " \
                 f"at {max_chars:,} characters."
    return Extracted(kind=kind, name=name, text=kept, chars=len(kept), encoding=encoding, language=language,
                     total_chars=max(total, len(kept)), notice=notice)


def _json_text(text: str, *, lines: bool, max_chars: int) -> str:
    """`text`, checked to be JSON (one value per line for JSON Lines), indented when it is one small line."""
    if lines:
        for number, line in enumerate(text.split("\n"), start=1):
            if line.strip():
                _json_load(line, line_offset=number - 1)
        return text
    value = _json_load(text, line_offset=0)
    stripped = text.strip()
    if value is not _UNCHECKED and "\n" not in stripped and len(stripped) <= min(PRETTY_JSON_CHARS, max_chars) \
            and isinstance(value, dict | list) and value:
        try:
            pretty = json.dumps(value, indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):
            return text
        if len(pretty) <= max_chars:
            return pretty + "\n"
    return text


_UNCHECKED = object()


def _json_load(text: str, *, line_offset: int) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        what = exc.msg[:1].lower() + exc.msg[1:]
        raise AppError(ErrorCode.INVALID_JSON, f"This file is not valid JSON: {what} at line "
                                               f"{exc.lineno + line_offset}, column {exc.colno}.", status=422) from None
    except (ValueError, RecursionError):
        # Valid JSON that Python declines to hold (very deep nesting, numbers of thousands of digits).
        return _UNCHECKED


# --- tables -----------------------------------------------------------------------------------

def _table(text: str, encoding: str, name: str, max_chars: int, suffix: str) -> Extracted | None:
    """A Markdown table from delimited text, or None when it does not parse as one (then it is read as text)."""
    strict = suffix in _TABLE_LIKE  # the name only suggests a table: require consistent columns
    delimiter = _TABLES.get(suffix) or _TABLE_LIKE.get(suffix)
    sample = _sample_lines(text)
    dialect: type[csv.Dialect] | csv.Dialect
    if delimiter is not None:
        dialect = _with_delimiter(delimiter)
    else:
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
        except csv.Error:
            if strict:
                return None
            dialect = _with_delimiter(_count_delimiter(sample))
    # Two passes over the parsed rows (the parser is fast) rather than holding every row in memory.
    try:
        total = width = 0
        head: list[list[str]] = []
        for row in _rows(text, dialect):
            if strict and total < 200 and (len(row) < 2 or (head and len(row) != len(head[0]))):
                return None
            total += 1
            width = max(width, len(row))
            if len(head) <= PREVIEW_ROWS:
                head.append(row)
    except csv.Error:  # a field over the csv module's size limit, or a broken quote
        return None
    if not total:
        return None
    head = [_padded(row, width) for row in head]
    header = 1 if _has_header(sample, head, total) else 0
    columns = [c or f"Column {i}" for i, c in enumerate(head[0], start=1)] if header else \
        [f"Column {i}" for i in range(1, width + 1)]
    rows = total - header
    lines = [_md_row(columns), "| " + " | ".join("---" for _ in columns) + " |"]
    whole = sum(len(line) + 1 for line in lines) - 1
    kept = 0
    for index, row in enumerate(_rows(text, dialect)):
        if index < header:
            continue
        line = _md_row(_padded(row, width))
        whole += 1 + len(line)
        if whole <= max_chars:  # `whole` only grows: the rows kept are the first ones
            lines.append(line)
            kept += 1
    rendered = "\n".join(lines)
    notice = None
    if kept < rows:
        notice = f"Only {kept:,} of {rows:,} rows were read ({_percent(kept, rows)} %): longer tables are cut at " \
                 f"{max_chars:,} characters."
    return Extracted(kind="table", name=name, text=rendered, chars=len(rendered), rows=rows, columns=columns,
                     preview=[columns, *head[header:header + PREVIEW_ROWS]], encoding=encoding, total_chars=whole,
                     notice=notice)


def _rows(text: str, dialect: type[csv.Dialect] | csv.Dialect) -> Iterator[list[str]]:
    """The non-blank rows, cells with surrounding space removed and line breaks inside a cell made spaces."""
    for row in csv.reader(io.StringIO(text), dialect):
        if any(cell.strip() for cell in row):
            yield [_cell(cell) for cell in row]


def _padded(row: list[str], width: int) -> list[str]:
    return row + [""] * (width - len(row))


def _sample_lines(text: str) -> str:
    sample = text[:_SAMPLE_CHARS]
    if len(text) > _SAMPLE_CHARS and "\n" in sample:
        sample = sample[:sample.rindex("\n")]
    return sample


def _count_delimiter(sample: str) -> str:
    first = sample.split("\n", 1)[0]
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _with_delimiter(delimiter: str) -> type[csv.Dialect]:
    return type("_Dialect", (csv.excel,), {"delimiter": delimiter})


def _has_header(sample: str, head: list[list[str]], total: int) -> bool:
    """csv.Sniffer's opinion when it has one; otherwise a first row of distinct, non-empty, non-numeric
    names is taken for a header (the Sniffer says no when all columns are text of varying length)."""
    if total < 2:
        return False
    try:
        if csv.Sniffer().has_header(sample):
            return True
    except csv.Error:
        pass
    first = head[0]
    return all(first) and len(set(first)) == len(first) and not any(_is_number(c) for c in first)


def _is_number(cell: str) -> bool:
    try:
        float(cell.replace(",", ".").replace(" ", ""))
    except ValueError:
        return False
    return True


def _cell(value: str) -> str:
    return " ".join(value.split()) if ("\n" in value or "\r" in value) else value.strip()


_PIPE = re.compile(r"\\*\|")


def _md_row(cells: list[str]) -> str:
    """A Markdown table row; `|` in a cell is escaped (with any backslashes right before it)."""
    return "| " + " | ".join(_PIPE.sub(lambda m: "\\" * (2 * len(m.group()) - 1) + "|", c) for c in cells) + " |"


# --- PDFs -------------------------------------------------------------------------------------

_PAGE_LINE = re.compile(r"^--- page (\d+) ---$", re.M)


def open_pdf(data: bytes, *, broken: AppError, encrypted: AppError) -> tuple[Any, int]:
    """A PDF's reader and its page count, raising `encrypted` for one that the empty password does not
    open and `broken` for damaged input or no pages. pypdf on damaged input can raise nearly anything
    (its own errors, ValueError, KeyError, RecursionError, struct or zlib errors...), so each step on
    the file catches Exception."""
    from pypdf import PasswordType, PdfReader

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                if reader.decrypt("") == PasswordType.NOT_DECRYPTED:
                    raise encrypted
            except AppError:
                raise
            except Exception:  # an unsupported cipher, or no cryptography library
                raise encrypted from None
        total = len(reader.pages)
    except AppError:
        raise
    except Exception:
        raise broken from None
    if total == 0:
        raise broken
    return reader, total


def _pdf(data: bytes, name: str, max_pages: int, max_chars: int) -> Extracted:
    broken = AppError(ErrorCode.BROKEN_PDF, "This PDF is damaged or incomplete, so its text could not be read.")
    encrypted = AppError(ErrorCode.ENCRYPTED_PDF, "This PDF is protected with a password. Open it, save or "
                                                  "print a copy without the protection, and attach that.")
    reader, total = open_pdf(data, broken=broken, encrypted=encrypted)
    if total == 0:
        raise broken
    parts: list[str] = []
    size = whole = read = failed = 0
    has_text = False
    for index in range(min(total, max_pages)):
        try:
            page_text = _clean_page(reader.pages[index].extract_text() or "")
        except Exception:
            page_text, failed = "", failed + 1
        has_text = has_text or bool(page_text.strip())
        part = f"--- page {index + 1} ---\n{page_text}".rstrip("\n")
        joiner = 2 if parts else 0
        read += 1
        whole += joiner + len(part)
        if size + joiner + len(part) > max_chars:
            cut = _cut_at_line(part, max_chars - size - joiner)
            if "\n" in cut:  # some of the page's text, not only its separator line
                parts.append(cut)
                size += joiner + len(cut)
            else:
                read -= 1
                whole -= joiner + len(part)
            break
        parts.append(part)
        size += joiner + len(part)
    if failed == read and read > 0:
        raise broken
    if not has_text:
        raise AppError(ErrorCode.NO_TEXT, "This PDF has no text that can be read: it seems to be scanned images. "
                                          "Attach the pages as pictures, or a copy with recognised text (OCR).")
    text = "\n\n".join(parts)
    notice = None
    partial = whole > len(text)
    if read < total or partial:
        reason = f"documents are read up to page {max_pages}" if read == max_pages and not partial \
            else f"longer documents are cut at {max_chars:,} characters"
        notice = f"Only {_pages_phrase(read - 1 if partial else read, partial, total)} read: {reason}."
    return Extracted(kind="pdf", name=name, text=text, chars=len(text), pages=total, pages_read=read,
                     total_chars=whole, notice=notice)


_BLANK_LINES = re.compile(r"\n{3,}")


def _clean_page(text: str) -> str:
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    # A line of the page's own text that looks like a page separator would mislead `fit`.
    text = _PAGE_LINE.sub(lambda m: m.group(0).replace("---", "—"), text)
    return _BLANK_LINES.sub("\n\n", text).strip("\n")


# --- fitting a budget -------------------------------------------------------------------------

_CONTEXT = "to fit the model's context"


def fit(extracted: Extracted, budget_chars: int) -> tuple[str, str | None]:
    """The text cut to `budget_chars` at a line boundary (tables: whole rows, header kept), and a notice
    for the person saying how much of the whole document that is; None when all of it is included."""
    budget = max(0, budget_chars)
    if extracted.kind == "table":
        return _fit_table(extracted, budget)
    if extracted.kind == "pdf":
        return _fit_pdf(extracted, budget)
    text = _cut_at_line(extracted.text, budget)
    whole = max(extracted.total_chars, extracted.chars)
    if len(text) >= whole:
        return text, None
    if not text:
        return "", f"None of the text could be included {_CONTEXT}."
    ending = f" {_CONTEXT}." if len(text) < extracted.chars else ": the document is longer than this app reads."
    return text, f"Only the first {_percent(len(text), whole)} % of the text was included{ending}"


def _fit_table(extracted: Extracted, budget: int) -> tuple[str, str | None]:
    lines = extracted.text.split("\n")
    total = extracted.rows or 0
    head = "\n".join(lines[:2])
    if len(head) > budget:
        return "", f"The table could not be included {_CONTEXT}: even its column names are too long."
    size, kept = len(head), 0
    for line in lines[2:]:
        if size + 1 + len(line) > budget:
            break
        size += 1 + len(line)
        kept += 1
    text = "\n".join(lines[:2 + kept])
    if kept >= total:
        return text, None
    ending = f" {_CONTEXT}." if kept < len(lines) - 2 else ": the table is longer than this app reads."
    if kept == 0:
        return text, f"Only the column names, none of the {total:,} rows, were included{ending}"
    rows = "the first row" if kept == 1 else f"the first {kept:,}"
    verb = "was" if kept == 1 else "were"
    return text, f"Only {rows} of {total:,} rows {verb} included ({_percent(kept, total)} %){ending}"


def _fit_pdf(extracted: Extracted, budget: int) -> tuple[str, str | None]:
    full = extracted.text
    text = _cut_at_line(full, budget)
    cut_here = len(text) < len(full)
    pages = [(int(m.group(1)), m.start(), m.end()) for m in _PAGE_LINE.finditer(full)]
    total = extracted.pages or len(pages)
    missing = max(0, extracted.total_chars - extracted.chars)  # the unread end of a page cut at max_chars
    complete, part = 0, 0.0
    for i, (number, start, content) in enumerate(pages):
        last = i + 1 == len(pages)
        end = len(full) if last else pages[i + 1][1] - 2  # pages are joined by a blank line
        whole_end = end + missing if last else end
        if len(text) >= whole_end:
            complete = number
            continue
        if len(text) > content + 1:
            part = min(0.99, (len(text) - content - 1) / max(1, whole_end - content - 1))
        elif len(text) > start:  # only the page's separator line made it: leave it out
            text = text[:start].rstrip("\n")
        break
    if complete >= total:
        return text, None
    ending = f" {_CONTEXT}." if cut_here else ": the document is longer than this app reads."
    if complete == 0 and not part:
        return "", f"None of the document's {total} pages could be included{ending}"
    share = _percent(complete + part, total)
    return text, f"Only {_pages_phrase(complete, part > 0, total)} included ({share} %){ending}"


def _pages_phrase(complete: int, partial: bool, total: int) -> str:
    """'pages 1–12 of 40 were', 'page 1 and part of page 2 of 40 were', 'part of page 1 of 4 was'."""
    if complete == 0:
        return (f"part of page 1 of {total}" if total > 1 else "part of the only page") + " was"
    first = "page 1" if complete == 1 else f"pages 1–{complete}"
    if partial:
        return f"{first} and part of page {complete + 1} of {total} were"
    return f"{first} of {total} {'was' if complete == 1 else 'were'}"


def _cut_at_line(text: str, budget: int) -> str:
    """The longest start of `text` within `budget` characters that ends at a line end; a text whose first
    line alone is longer is cut at a space (or, failing that, anywhere)."""
    if len(text) <= budget:
        return text
    if budget <= 0:
        return ""
    head = text[:budget]
    if text[budget] == "\n":
        return head.rstrip("\n")
    newline = head.rfind("\n")
    if newline > 0:
        return head[:newline].rstrip("\n")
    space = head.rfind(" ")
    return head[:space] if space > budget // 2 else head


def _percent(part: float, whole: float) -> str:
    """Rounded down so a cut text never reads as 100 %; 'less than 1' rather than 0 when something is there."""
    if whole <= 0:
        return "100"
    value = math.floor(100 * part / whole)
    return "less than 1" if value == 0 and part > 0 else str(min(value, 99) if part < whole else 100)
