"""A document's text with its structure, so that passages can follow it (see docs/knowledge.md).

`extract` decides what a file is from its bytes first and its name second: a PDF (pypdf, one or
more blocks per page), a Word `.docx` (a ZIP archive read with bounded reads and the standard XML
parser), HTML (the standard library's parser), Markdown, a CSV/TSV table, or text in any encoding
the attachment reader recognises (source code and JSON are text, kept whole as code). The result
is a list of blocks: headings with their levels, paragraphs, tables as `| a | b |` rows with the
header first, each PDF block with its page.

What cannot be read is refused with an `AppError` whose sentence names the file: password
protected or scanned PDFs, ZIP bombs, binary data, unknown encodings, files over the limits. The
text, decoding and table helpers are those of `backend/attachments/documents.py`, so a document
reads the same whether it is attached to a message or added to a collection. Blocking: run it in
a thread.
"""

from __future__ import annotations

import codecs
import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from typing import Literal
from xml.etree import ElementTree

from ..attachments.documents import (
    _BOMS,
    _CODE,
    _CODE_NAMES,
    _JSON,
    _JSON_LINES,
    _MARKDOWN,
    _TABLE_LIKE,
    _TABLES,
    _checked_text,
    _clean_page,
    _cut_at_line,
    _decode,
    _display_name,
    _md_row,
    _table,
    _what_binary,
    open_pdf,
)
from ..core import kinds
from ..core.errors import AppError, ErrorCode
from ..core.units import format_limit

__all__ = ["DEFAULT_LIMITS", "SUPPORTED_SUFFIXES", "Block", "BlockKind", "Extracted", "Limits", "extract"]

BlockKind = Literal["heading", "text", "table"]


@dataclass(frozen=True, slots=True)
class Block:
    text: str
    """The plain text of one unit: a heading, a paragraph, a table's rows (header first)."""
    kind: BlockKind
    level: int = 0
    """1..6 for headings, 0 otherwise."""
    page: int | None = None
    """The 1-based PDF page; None for other kinds of document."""


@dataclass(slots=True)
class Limits:
    max_bytes: int = 100 * 1024 * 1024
    """The file on disk."""
    max_chars: int = 20_000_000
    """Text kept in all; what is past it is left out with a warning."""
    max_pages: int = 5000
    """PDF pages read; later pages are left out with a warning."""
    max_unzipped: int = 200 * 1024 * 1024
    """.docx: the total unpacked size of the members read."""
    max_ratio: int = 100
    """.docx: how many times its packed size a member may unpack to."""


DEFAULT_LIMITS = Limits()


@dataclass(slots=True)
class Extracted:
    kind: str
    """"pdf", "docx", "html", "markdown", "csv" or "text"."""
    blocks: list[Block]
    pages: int | None = None
    """PDFs: the pages in the document (also those past the page limit)."""
    title: str | None = None
    """The PDF, Word or HTML title, or the first heading; None when there is neither."""
    warnings: list[str] = field(default_factory=list)
    """What was left out or looked wrong, in sentences for a person."""


_HTML = frozenset({".html", ".htm", ".xhtml"})
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".pdf", ".docx", ".txt", ".text", ".log", ".rst", ".csv", ".tsv", *_HTML, *_MARKDOWN, *_JSON, *_JSON_LINES,
     *_TABLE_LIKE, *(f".{suffix}" for suffix in _CODE)} - {".svg"})
"""The names a collection accepts (SVG drawings are markup, not documents)."""

_RATIO_FROM = 1024 * 1024
"""A .docx member smaller than this unpacked cannot be a bomb, however well it packs."""
_TABLE_GROUP_CHARS = 8000
"""CSV rows are handed on in groups of about this size, each with the header."""
_XML_FEED = 1024 * 1024


def _never() -> bool:
    return False


def extract(path: Path, name: str, *, limits: Limits = DEFAULT_LIMITS,
            cancelled: Callable[[], bool] = _never) -> Extracted:
    """The blocks of the document at `path`, whose file name is `name` (blocking: run it in a thread).
    Raises AppError with a sentence naming the file when it cannot be read, and CANCELLED as soon as
    `cancelled()` says so (it is asked between pages and blocks). An OSError reading `path` propagates."""
    return _Reader(_display_name(name), limits, cancelled).read(path)


class _Full(Exception):
    """The character limit is reached: the blocks so far are the result."""


class _Doctype(Exception):
    pass


class _Reader:
    def __init__(self, name: str, limits: Limits, cancelled: Callable[[], bool]) -> None:
        self.name = name
        self.label = f"«{name}»"
        self.limits = limits
        self.cancelled = cancelled
        self.kind = "text"
        self.title: str | None = None
        self.pages: int | None = None
        self.blocks: list[Block] = []
        self.warnings: list[str] = []
        self.chars = 0

    # --- common ---------------------------------------------------------------------------------

    def read(self, path: Path) -> Extracted:
        size = path.stat().st_size
        if size > self.limits.max_bytes:
            raise self.too_large(size)
        if size == 0:
            raise AppError(ErrorCode.EMPTY_DOCUMENT, f"{self.label} is empty.")
        with path.open("rb") as file:
            data = file.read(self.limits.max_bytes + 1)
        if len(data) > self.limits.max_bytes:
            raise self.too_large(len(data))
        if not data:
            raise AppError(ErrorCode.EMPTY_DOCUMENT, f"{self.label} is empty.")
        self.check()
        try:
            self.dispatch(data)
        except _Full:
            pass
        if not self.blocks:
            raise AppError(ErrorCode.EMPTY_DOCUMENT, f"{self.label} has no text in it.")
        if self.title is None:
            self.title = next((block.text for block in self.blocks if block.kind == "heading"), None)
        return Extracted(kind=self.kind, blocks=self.blocks, pages=self.pages, title=self.title,
                         warnings=self.warnings)

    def dispatch(self, data: bytes) -> None:
        if data.lstrip(b"\x00\t\n\r\x0c ")[:5] == b"%PDF-":
            self.pdf(data)
            return
        if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
            self.docx(data)
            return
        lower = self.name.lower()
        suffix = PurePosixPath(lower).suffix
        if suffix in _HTML or _looks_html(data[:4096].decode("latin-1")):
            self.html(self.html_text(data))
            return
        text = self.text_of(data)
        if _looks_html(text[:4096]):
            self.html(text)
        elif suffix in _TABLES or suffix in _TABLE_LIKE:
            self.csv(text, suffix)
        elif suffix in _MARKDOWN:
            self.markdown(text)
        elif suffix in _JSON or suffix in _JSON_LINES:
            self.code(text, "json")
        elif (language := _CODE_NAMES.get(lower) or _CODE.get(suffix.removeprefix("."))) is not None:
            self.code(text, language)
        else:
            self.plain(text)

    def check(self) -> None:
        if self.cancelled():
            raise AppError(ErrorCode.CANCELLED, f"Reading {self.label} was cancelled.")

    def add(self, text: str, kind: BlockKind = "text", *, level: int = 0, page: int | None = None) -> None:
        """Keep one block; past the character limit its start is kept and reading stops."""
        text = text.strip()
        if not text:
            return
        self.check()
        room = self.limits.max_chars - self.chars
        if len(text) > room:
            text = _cut_at_line(text, room).strip()
            if text and kind != "heading":
                self.blocks.append(Block(text, kind, level, page))
            self.warnings.append(f"Only the first {self.limits.max_chars:,} characters were indexed.")
            raise _Full
        self.chars += len(text)
        self.blocks.append(Block(text, kind, level, page))

    def heading(self, text: str, level: int, page: int | None = None) -> None:
        text = " ".join(text.split())
        if text:
            self.add(text, "heading", level=max(1, min(6, level)), page=page)

    def too_large(self, size: int) -> AppError:
        return AppError(ErrorCode.DOCUMENT_TOO_LARGE, f"{self.label} is {format_limit(size)}; documents can be at "
                                                      f"most {format_limit(self.limits.max_bytes)}.")

    # --- text -----------------------------------------------------------------------------------

    def text_of(self, data: bytes) -> str:
        try:
            text, _encoding = _decode(data, self.name)
        except AppError:
            raise self.not_text(data) from None
        if not text.strip():
            raise AppError(ErrorCode.EMPTY_DOCUMENT, f"{self.label} has no text in it.")
        return text

    def not_text(self, data: bytes) -> AppError:
        head = data[:kinds.HEAD_BYTES]
        if kinds.identify(head) is kinds.OLD_OFFICE:
            return AppError(ErrorCode.NOT_A_DOCUMENT, f"{self.label} is an old Office file or is protected by a "
                                                      f"password; save it as .docx without a password and add it "
                                                      f"again.")
        what = _what_binary(data, self.name)
        if what is not None:
            return AppError(ErrorCode.NOT_A_DOCUMENT, f"{self.label} is not text: it looks like binary data ({what}).")
        if any(data.startswith(bom) for bom, _ in _BOMS) or not _binary_looking(data):
            return AppError(ErrorCode.NOT_A_DOCUMENT, f"{self.label} is in an encoding that could not be recognised.")
        return AppError(ErrorCode.NOT_A_DOCUMENT, f"{self.label} is not text: it looks like binary data.")

    def plain(self, text: str) -> None:
        self.kind = "text"
        for number, paragraph in enumerate(_PARAGRAPHS.split(text)):
            if number % 256 == 0:
                self.check()
            self.add(paragraph)

    def code(self, text: str, language: str) -> None:
        self.kind = "text"
        self.add(_fenced(text, language))

    # --- tables ---------------------------------------------------------------------------------

    def csv(self, text: str, suffix: str) -> None:
        table = _table(text, "", self.name, self.limits.max_chars, suffix)
        if table is None:
            self.plain(text)
            return
        self.kind = "csv"
        lines = table.text.split("\n")
        head, rows = lines[:2], lines[2:]
        if table.rows is not None and len(rows) < table.rows:
            self.warnings.append(f"Only the first {len(rows):,} of {table.rows:,} rows were indexed.")
        group: list[str] = []
        size = 0
        for row in rows:
            if group and size + len(row) > _TABLE_GROUP_CHARS:
                self.add("\n".join(head + group), "table")
                group, size = [], 0
            group.append(row)
            size += len(row) + 1
        if group or not rows:
            self.add("\n".join(head + group), "table")

    # --- Markdown -------------------------------------------------------------------------------

    def markdown(self, text: str) -> None:
        self.kind = "markdown"
        lines = text.split("\n")
        start = self.front_matter(lines)
        paragraph: list[str] = []

        def flush() -> None:
            if paragraph:
                self.add("\n".join(paragraph))
                paragraph.clear()

        i = start
        while i < len(lines):
            if (i - start) % 4096 == 0:
                self.check()
            line = lines[i]
            fence = _FENCE.match(line)
            if fence:
                flush()
                marker = fence.group(1)
                body = [line]
                i += 1
                while i < len(lines) and not _closes(lines[i], marker):
                    body.append(lines[i])
                    i += 1
                body.append(lines[i] if i < len(lines) else marker)
                i += 1
                self.add("\n".join(body))
                continue
            atx = _ATX.match(line)
            if atx:
                flush()
                self.heading(_inline(_CLOSING_HASHES.sub("", atx.group(2) or "")), len(atx.group(1)))
                i += 1
                continue
            if not line.strip():
                flush()
                i += 1
                continue
            underline = _SETEXT.match(line)
            if underline and paragraph and not _LIST_ITEM.match(paragraph[0]):
                self.heading(_inline(" ".join(paragraph)), 1 if underline.group(1)[0] == "=" else 2)
                paragraph.clear()
                i += 1
                continue
            if _THEMATIC.match(line):
                flush()
                i += 1
                continue
            if "|" in line and i + 1 < len(lines) and _is_delimiter_row(lines[i + 1], _pipe_cells(line)):
                flush()
                rows = [_pipe_cells(line)]
                i += 2
                while i < len(lines) and lines[i].strip() and "|" in lines[i]:
                    rows.append(_pipe_cells(lines[i]))
                    i += 1
                self.add(_render_table(rows), "table")
                continue
            paragraph.append(line)
            i += 1
        flush()

    def front_matter(self, lines: list[str]) -> int:
        """The line after a YAML front matter block (its `title:` is the title), or 0 when there is none."""
        if not lines or lines[0].strip() != "---":
            return 0
        for end in range(1, min(len(lines), 200)):
            if lines[end].strip() in ("---", "..."):
                block = lines[1:end]
                if not any(_YAML_KEY.match(line) for line in block):
                    return 0
                for line in block:
                    found = _YAML_TITLE.match(line)
                    if found and found.group(1).strip(" \"'"):
                        self.title = found.group(1).strip(" \"'")
                        break
                return end + 1
        return 0

    # --- HTML -----------------------------------------------------------------------------------

    def html_text(self, data: bytes) -> str:
        """The page's text, decoded with the charset its <meta> declares when that works."""
        if not any(data.startswith(bom) for bom, _ in _BOMS):
            declared = _META_CHARSET.search(data[:8192])
            if declared:
                label = declared.group(1).decode("ascii", "ignore").lower()
                encoding = "cp1252" if label in _LATIN_LABELS else label
                try:
                    codecs.lookup(encoding)
                    text = _checked_text(data.decode(encoding), data, self.name)
                except (LookupError, UnicodeDecodeError):
                    pass
                except AppError:
                    raise self.not_text(data) from None
                else:
                    if text.strip():
                        return text
        return self.text_of(data)

    def html(self, text: str) -> None:
        self.kind = "html"
        parser = _HtmlBlocks(self)
        try:
            parser.feed(text)
            parser.close()
        finally:
            if parser.title and self.title is None:
                self.title = parser.title

    # --- PDF ------------------------------------------------------------------------------------

    def pdf(self, data: bytes) -> None:
        self.kind = "pdf"
        broken = AppError(ErrorCode.BROKEN_PDF, f"{self.label} is damaged or incomplete, so its text could not be "
                                                f"read.")
        encrypted = AppError(ErrorCode.ENCRYPTED_PDF, f"{self.label} is protected by a password; remove the "
                                                      f"password and add it again.")
        reader, total = open_pdf(data, broken=broken, encrypted=encrypted)
        self.pages = total
        try:
            title = reader.metadata.title if reader.metadata is not None else None
        except Exception:
            title = None
        if isinstance(title, str) and title.strip():
            self.title = " ".join(title.split())
        empty: list[int] = []
        failed: list[int] = []
        read = 0
        try:
            for index in range(min(total, self.limits.max_pages)):
                self.check()
                read += 1
                try:
                    text = _clean_page(reader.pages[index].extract_text() or "")
                except Exception:
                    failed.append(index + 1)
                    continue
                paragraphs = [p for p in _PARAGRAPHS.split(text) if p.strip()]
                if not paragraphs:
                    empty.append(index + 1)
                for paragraph in paragraphs:
                    self.add(paragraph, page=index + 1)
        except _Full:
            pass
        if len(failed) == read:
            raise broken
        with_text = read - len(empty) - len(failed)
        if with_text == 0 or with_text * 10 < read:
            raise AppError(ErrorCode.NO_TEXT, f"{self.label} has no text to read: it looks like scanned pages "
                                              f"(text recognition is not available).")
        if empty:
            self.warnings.append(_pages_sentence(empty, "has no text (scanned?)", "have no text (scanned?)"))
        if failed:
            self.warnings.append(_pages_sentence(failed, "could not be read", "could not be read"))
        if read < total and not any(w.startswith("Only the first") for w in self.warnings):
            self.warnings.append(f"Only the first {read:,} of {total:,} pages were indexed.")

    # --- Word -----------------------------------------------------------------------------------

    def docx(self, data: bytes) -> None:
        self.kind = "docx"
        unreadable = AppError(ErrorCode.NOT_A_DOCUMENT, f"{self.label} could not be read as a Word document.")
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, ValueError, EOFError, OSError):
            raise unreadable from None
        with archive:
            members = {info.filename: info for info in archive.infolist()}
            budget = _Budget(self.limits.max_unzipped)
            main = "word/document.xml"
            rels = self.member(archive, members.get("_rels/.rels"), budget)
            if rels is not None:
                main = _main_part(self.parse(rels, unreadable)) or main
            if main not in members:
                what = _what_binary(data, self.name)
                if PurePosixPath(self.name).suffix.lower() == ".docx" or what is None:
                    raise unreadable
                raise AppError(ErrorCode.NOT_A_DOCUMENT, f"{self.label} is {what}, not a document this app can read.")
            core = self.member(archive, members.get("docProps/core.xml"), budget)
            styles_xml = self.member(archive, members.get(str(PurePosixPath(main).parent / "styles.xml")), budget)
            document = self.member(archive, members[main], budget) or b""
        if core is not None:
            title = _core_title(self.parse(core, unreadable))
            if title:
                self.title = title
        styles = _style_levels(self.parse(styles_xml, unreadable)) if styles_xml is not None else {}
        for element in self.parse(document, unreadable):
            if _local(element.tag) == "body":
                self.docx_blocks(element, styles)

    def member(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo | None, budget: _Budget) -> bytes | None:
        """A member's bytes, checked against the unpacked budget and the packing ratio before and while reading."""
        if info is None:
            return None
        self.check()
        self.check_unpacked(info.file_size, info.compress_size, budget)
        try:
            with archive.open(info) as file:
                content = file.read(budget.left + 1)
        except Exception:  # a damaged member, an unknown compression, a password: zipfile and zlib raise many kinds
            raise AppError(ErrorCode.NOT_A_DOCUMENT, f"{self.label} could not be read as a Word document.") from None
        self.check_unpacked(len(content), info.compress_size, budget)
        budget.left -= len(content)
        return content

    def check_unpacked(self, size: int, packed: int, budget: _Budget) -> None:
        if size > budget.left:
            raise AppError(ErrorCode.DOCUMENT_TOO_LARGE, f"{self.label} unpacks to more than "
                                                         f"{format_limit(self.limits.max_unzipped)}; it is refused.")
        if size > _RATIO_FROM and size > self.limits.max_ratio * max(1, packed):
            raise AppError(ErrorCode.DOCUMENT_TOO_LARGE, f"{self.label} unpacks to more than "
                                                         f"{self.limits.max_ratio} times its packed size, as no "
                                                         f"real document does; it is refused.")

    def parse(self, xml: bytes, unreadable: AppError) -> ElementTree.Element:
        """XML with no document type declaration (so no entities to expand), fed in slices between checks."""
        if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
            raise self.doctype()
        parser = ElementTree.XMLParser(target=_NoDoctype())
        try:
            for start in range(0, len(xml), _XML_FEED):
                self.check()
                parser.feed(xml[start:start + _XML_FEED])
            return parser.close()
        except _Doctype:
            raise self.doctype() from None
        except (ElementTree.ParseError, ValueError):
            raise unreadable from None

    def doctype(self) -> AppError:
        return AppError(ErrorCode.NOT_A_DOCUMENT, f"{self.label} holds a document type declaration, which Word "
                                                  f"documents never have; it is refused.")

    def docx_blocks(self, parent: ElementTree.Element, styles: dict[str, int]) -> None:
        for element in parent:
            tag = _local(element.tag)
            if tag == "p":
                text = _paragraph_text(element)
                if not text.strip():
                    continue
                level, listed = _paragraph_kind(element, styles)
                if level:
                    self.heading(text, level)
                else:
                    lines = [" ".join(line.split()) for line in text.split("\n")]
                    self.add(("- " if listed else "") + "\n".join(line for line in lines if line))
            elif tag == "tbl":
                rows = [[" ".join(" ".join(_paragraph_text(p) for p in cell.iter() if _local(p.tag) == "p").split())
                         for cell in row if _local(cell.tag) == "tc"]
                        for row in element if _local(row.tag) == "tr"]
                self.table(rows)
            elif tag not in ("sectPr", "pPr", "rPr"):
                self.docx_blocks(element, styles)

    def table(self, rows: list[list[str]]) -> None:
        """A table block, or its cells as paragraphs when it is a single row or column (a layout table)."""
        rows = [row for row in rows if any(cell for cell in row)]
        if not rows:
            return
        if len(rows) < 2 or max(len(row) for row in rows) < 2:
            for row in rows:
                for cell in row:
                    self.add(cell)
            return
        self.add(_render_table(rows), "table")


@dataclass(slots=True)
class _Budget:
    left: int


# --- Markdown pieces --------------------------------------------------------------------------------

_PARAGRAPHS = re.compile(r"\n[ \t\f\v\u00a0]*\n\s*")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*))?$")
_CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*$")
_THEMATIC = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_LIST_ITEM = re.compile(r" {0,3}(?:[-*+]|\d{1,9}[.)])[ \t]")
_DELIMITER_CELL = re.compile(r":?-+:?")
_YAML_KEY = re.compile(r"[A-Za-z0-9_-]+[ \t]*:")
_YAML_TITLE = re.compile(r"title[ \t]*:(.*)$", re.I)
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|`)")


def _closes(line: str, marker: str) -> bool:
    stripped = line.strip()
    return len(stripped) >= len(marker) and set(stripped) == {marker[0]} and len(line) - len(line.lstrip()) < 4


def _inline(text: str) -> str:
    """A heading's words without Markdown's link and emphasis marks."""
    return _EMPHASIS.sub("", _LINK.sub(r"\1", text)).strip()


def _pipe_cells(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)]


def _is_delimiter_row(line: str, header: list[str]) -> bool:
    if "-" not in line or ("|" not in line and len(header) < 2):
        return False
    cells = _pipe_cells(line)
    return len(cells) == len(header) and all(_DELIMITER_CELL.fullmatch(cell) for cell in cells)


def _render_table(rows: list[list[str]]) -> str:
    width = max(len(row) for row in rows)
    padded = [row + [""] * (width - len(row)) for row in rows]
    lines = [_md_row(padded[0]), "| " + " | ".join("---" for _ in range(width)) + " |"]
    lines += [_md_row(row) for row in padded[1:]]
    return "\n".join(lines)


def _fenced(text: str, language: str) -> str:
    longest = max((len(run) for run in re.findall(r"`{3,}", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text.strip(chr(10))}\n{fence}"


# --- recognising text -------------------------------------------------------------------------------

_HTML_START = re.compile(r"\A\ufeff?\s*(?:<!--.*?-->\s*|<\?xml[^>]*>\s*)*<(?:!doctype\s+html|html|head|body)[\s>]",
                         re.I | re.S)
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_LATIN_LABELS = frozenset({"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii", "windows-1252",
                           "cp1252"})
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")


def _looks_html(head: str) -> bool:
    return bool(_HTML_START.match(head))


def _binary_looking(data: bytes) -> bool:
    sample = data[:64 * 1024]
    return b"\x00" in sample or len(_CONTROL_BYTES.findall(sample)) > max(2, len(sample) // 100)


def _pages_sentence(pages: list[int], singular: str, plural: str) -> str:
    if len(pages) == 1:
        return f"Page {pages[0]} {singular}."
    shown = [str(page) for page in pages[:8]]
    if len(pages) > 8:
        return f"Pages {', '.join(shown)} and {len(pages) - 8} more {plural}."
    return f"Pages {', '.join(shown[:-1])} and {shown[-1]} {plural}."


# --- Word pieces ------------------------------------------------------------------------------------

class _NoDoctype(ElementTree.TreeBuilder):
    def doctype(self, name: str, pubid: str, system: str) -> None:
        raise _Doctype


def _local(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _attr(element: ElementTree.Element, name: str) -> str | None:
    for key, value in element.attrib.items():
        if key == name or key.endswith("}" + name):
            return value
    return None


def _child(element: ElementTree.Element, name: str) -> ElementTree.Element | None:
    return next((child for child in element if _local(child.tag) == name), None)


def _main_part(rels: ElementTree.Element) -> str | None:
    for relation in rels.iter():
        if _local(relation.tag) == "Relationship" and (_attr(relation, "Type") or "").endswith("/officeDocument"):
            target = (_attr(relation, "Target") or "").lstrip("/")
            return target or None
    return None


def _core_title(core: ElementTree.Element) -> str | None:
    for element in core.iter():
        if _local(element.tag) == "title" and element.text and element.text.strip():
            return " ".join(element.text.split())
    return None


_HEADING_NAME = re.compile(r"heading\s*([1-9])", re.I)


def _heading_level(style_id: str | None, name: str | None, outline: str | None) -> int:
    for value in (name, style_id):
        if value:
            found = _HEADING_NAME.fullmatch(value.strip())
            if found:
                return min(6, int(found.group(1)))
            if value.strip().lower() == "title":
                return 1
    if outline is not None and outline.isdigit() and int(outline) < 6:
        return int(outline) + 1
    return 0


def _style_levels(styles: ElementTree.Element) -> dict[str, int]:
    """Paragraph style id → heading level, from the style's built-in name ("heading 2", whatever the style is
    called in the document's language) or its outline level."""
    levels: dict[str, int] = {}
    for style in styles.iter():
        if _local(style.tag) != "style":
            continue
        style_id = _attr(style, "styleId")
        name = _child(style, "name")
        properties = _child(style, "pPr")
        outline = _child(properties, "outlineLvl") if properties is not None else None
        level = _heading_level(style_id, _attr(name, "val") if name is not None else None,
                               _attr(outline, "val") if outline is not None else None)
        if style_id and level:
            levels[style_id] = level
    return levels


def _paragraph_kind(paragraph: ElementTree.Element, styles: dict[str, int]) -> tuple[int, bool]:
    """The paragraph's heading level (0 when it is not a heading) and whether it is a list item."""
    properties = _child(paragraph, "pPr")
    if properties is None:
        return 0, False
    style = _child(properties, "pStyle")
    style_id = _attr(style, "val") if style is not None else None
    outline = _child(properties, "outlineLvl")
    level = styles.get(style_id or "") or _heading_level(style_id, None,
                                                         _attr(outline, "val") if outline is not None else None)
    return level, _child(properties, "numPr") is not None


def _paragraph_text(paragraph: ElementTree.Element) -> str:
    parts: list[str] = []

    def walk(element: ElementTree.Element) -> None:
        for child in element:
            tag = _local(child.tag)
            if tag == "t":
                parts.append(child.text or "")
            elif tag == "tab":
                parts.append("\t")
            elif tag in ("br", "cr"):
                parts.append("\n")
            elif tag not in ("pPr", "rPr", "Fallback"):  # a drawing's fallback repeats its text
                walk(child)

    walk(paragraph)
    return "".join(parts)


# --- HTML pieces ------------------------------------------------------------------------------------

_SKIP = frozenset({"script", "style", "noscript", "template", "nav", "svg", "math", "iframe", "object", "canvas",
                   "select"})
_HEAD_ONLY = frozenset({"title", "meta", "link", "style", "script", "base", "noscript", "template"})
_BLOCKS = frozenset({"address", "article", "aside", "blockquote", "body", "center", "dd", "details", "dialog", "div",
                     "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hgroup", "hr", "li",
                     "main", "menu", "ol", "p", "section", "summary", "ul", "caption"})
_HEADINGS = {f"h{n}": n for n in range(1, 7)}


class _HtmlTable:
    def __init__(self) -> None:
        self.rows: list[list[str]] = []
        self.row: list[str] | None = None
        self.cell: list[str] | None = None
        self.loose: list[str] = []
        self.depth = 0

    def start_row(self) -> None:
        self.end_row()
        self.row = []

    def start_cell(self) -> None:
        self.end_cell()
        if self.row is None:
            self.row = []
        self.cell = []

    def text(self, data: str) -> None:
        (self.cell if self.cell is not None else self.loose).append(data)

    def end_cell(self) -> None:
        if self.cell is not None and self.row is not None:
            self.row.append(" ".join("".join(self.cell).split()))
        self.cell = None

    def end_row(self) -> None:
        self.end_cell()
        if self.row:
            self.rows.append(self.row)
        self.row = None


class _HtmlBlocks(HTMLParser):
    def __init__(self, reader: _Reader) -> None:
        super().__init__(convert_charrefs=True)
        self.reader = reader
        self.title: str | None = None
        self.title_parts: list[str] | None = None
        self.in_head = False
        self.skip = 0
        self.inline: list[str] = []
        self.bullet = False
        self.heading: tuple[int, list[str]] | None = None
        self.pre: list[str] | None = None
        self.tables: list[_HtmlTable] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "head":
            self.in_head = True
            return
        if self.in_head and tag not in _HEAD_ONLY:
            self.in_head = False
        if tag == "title" and self.title is None and not self.skip:
            self.title_parts = []
            return
        if tag in _SKIP:
            self.skip += 1
            return
        if self.skip or self.in_head:
            return
        if self.tables:
            table = self.tables[-1]
            if tag == "table":
                table.depth += 1
            elif table.depth == 0 and tag == "tr":
                table.start_row()
            elif table.depth == 0 and tag in ("td", "th"):
                table.start_cell()
            elif tag == "br" or tag in _BLOCKS or tag in _HEADINGS:
                table.text(" ")
            return
        if tag == "table":
            self.flush()
            self.tables.append(_HtmlTable())
        elif tag == "br":
            self.current().append("\n")
        elif tag in _HEADINGS:
            self.flush()
            self.heading = (_HEADINGS[tag], [])
        elif tag == "pre":
            self.flush()
            self.pre = []
        elif tag in _BLOCKS:
            self.flush()
            if tag == "li":
                self.bullet = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self.in_head = False
            return
        if tag == "title" and self.title_parts is not None:
            self.title = " ".join("".join(self.title_parts).split()) or None
            self.title_parts = None
            return
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
            return
        if self.skip or self.in_head:
            return
        if self.tables:
            table = self.tables[-1]
            if tag == "table":
                if table.depth:
                    table.depth -= 1
                else:
                    self.end_table()
            elif table.depth == 0 and tag in ("td", "th"):
                table.end_cell()
            elif table.depth == 0 and tag == "tr":
                table.end_row()
            return
        if tag in _HEADINGS and self.heading is not None:
            self.flush()
        elif tag == "pre" and self.pre is not None:
            code = "".join(self.pre).strip("\n")
            self.pre = None
            if code.strip():
                self.reader.add(_fenced(code, ""))
        elif tag in _BLOCKS:
            self.flush()

    def handle_data(self, data: str) -> None:
        if self.title_parts is not None:
            self.title_parts.append(data)
            return
        if self.skip or self.in_head:
            return
        if self.tables:
            self.tables[-1].text(data)
        else:
            self.current().append(data)

    def current(self) -> list[str]:
        if self.heading is not None:
            return self.heading[1]
        if self.pre is not None:
            return self.pre
        return self.inline

    def flush(self) -> None:
        if self.heading is not None:
            level, parts = self.heading
            self.heading = None
            self.reader.heading("".join(parts), level)
        lines = [" ".join(line.split()) for line in "".join(self.inline).split("\n")]
        self.inline.clear()
        text = "\n".join(line for line in lines if line)
        if text:
            self.reader.add(("- " if self.bullet else "") + text)
            self.bullet = False

    def end_table(self) -> None:
        table = self.tables.pop()
        table.end_row()
        loose = " ".join("".join(table.loose).split())
        if loose:
            self.reader.add(loose)
        self.reader.table(table.rows)

    def close(self) -> None:
        super().close()
        while self.tables:
            self.end_table()
        if self.pre is not None:
            self.pre.append("")
            self.handle_endtag("pre")
        self.flush()
