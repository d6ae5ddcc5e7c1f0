"""Passages cut from a document's blocks so that each one is about one thing (see docs/knowledge.md).

A heading starts a section and sets the heading path ("Chapter 2 › Prices") the section's passages
carry; consecutive paragraphs of a section are packed into passages of about `target_chars`, never
over `max_chars`, and never across a PDF page. A paragraph too long for one passage is cut at
sentence ends (then line ends, then between words), its pieces overlapping a little so a sentence at
a cut is found whole in one of them; code is cut between lines and keeps its fences; a table is cut
between rows and each piece repeats the header. A heading with nothing under it is a passage of its
own, so no heading is lost. Text is normalised (NFC, runs of spaces collapsed, lines of a paragraph
joined) except in tables and code, where line breaks and indentation mean something.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from .extract import Block

__all__ = ["HEADING_SEPARATOR", "Chunk", "chunk", "embedding_text"]

HEADING_SEPARATOR = " › "


@dataclass(frozen=True, slots=True)
class Chunk:
    text: str
    """The passage, without its heading path."""
    heading: str
    """The headings above the passage by level, "Chapter 2 › Prices"; "" when there is none."""
    page: int | None
    """The PDF page the passage starts on."""
    ordinal: int
    """0, 1, 2… in document order."""


def chunk(blocks: Sequence[Block], *, target_chars: int = 1000, max_chars: int = 1500,
          overlap_chars: int = 150) -> list[Chunk]:
    """The passages of a document, in order."""
    if max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    target = max(1, min(target_chars, max_chars))
    overlap = max(0, min(overlap_chars, target // 2))
    builder = _Builder(target, max_chars, overlap)
    for block in blocks:
        builder.add(block)
    return builder.finish()


class _Passage(Protocol):
    @property
    def heading(self) -> str: ...
    @property
    def text(self) -> str: ...


def embedding_text(chunk: _Passage, title: str | None = None) -> str:
    """What is embedded for a passage (a chunk, or a stored passage): "title › heading" (what of it
    there is), a blank line, the text."""
    context = HEADING_SEPARATOR.join(part for part in ((title or "").strip(), chunk.heading) if part)
    return f"{context}\n\n{chunk.text}" if context else chunk.text


# --- sections -------------------------------------------------------------------------------------

@dataclass(slots=True)
class _Pending:
    level: int
    text: str
    parent: str
    page: int | None


class _Builder:
    def __init__(self, target: int, limit: int, overlap: int) -> None:
        self.target = target
        self.limit = limit
        self.overlap = overlap
        self.path: list[tuple[int, str]] = []
        self.pending: _Pending | None = None
        """The last heading, while nothing has been found under it."""
        self.parts: list[str] = []
        self.size = 0
        self.page: int | None = None
        self.out: list[tuple[str, str, int | None]] = []

    def heading_path(self) -> str:
        return HEADING_SEPARATOR.join(text for _, text in self.path)

    def emit(self, text: str, heading: str, page: int | None) -> None:
        text = text.strip()
        if text:
            self.out.append((text, heading, page))

    def add(self, block: Block) -> None:
        if block.kind == "heading":
            self.add_heading(block)
        elif block.kind == "table":
            lines = _table_lines(block.text)
            if lines:
                self.pending = None
                self.flush()
                for piece in _split_table(lines, self.target, self.limit):
                    self.emit(piece, self.heading_path(), block.page)
        else:
            self.add_text(_normalise(block.text), block.page)

    def add_heading(self, block: Block) -> None:
        text = " ".join(unicodedata.normalize("NFC", block.text).split())
        if not text:
            return
        self.flush()
        level = max(1, min(6, block.level or 1))
        if self.pending is not None and level <= self.pending.level:
            self.emit(self.pending.text, self.pending.parent, self.pending.page)
        while self.path and self.path[-1][0] >= level:
            self.path.pop()
        self.pending = _Pending(level, text, self.heading_path(), block.page)
        self.path.append((level, text))

    def add_text(self, text: str, page: int | None) -> None:
        if not text:
            return
        self.pending = None
        if len(text) > self.limit:
            self.flush()
            if _FENCE.match(text):
                pieces = _split_code(text, self.target, self.limit)
            else:
                pieces = _pack(_units(text, self.target, self.limit, _PROSE), self.target, self.limit, self.overlap)
            for piece in pieces:
                self.emit(piece, self.heading_path(), page)
            return
        if self.parts:
            joined = self.size + 2 + len(text)
            fits = joined <= self.target or (joined <= self.limit and self.size < self.target // 2)
            if page != self.page or not fits:
                self.flush()
        if not self.parts:
            self.page = page
            self.size = len(text)
        else:
            self.size += 2 + len(text)
        self.parts.append(text)

    def flush(self) -> None:
        if self.parts:
            self.emit("\n\n".join(self.parts), self.heading_path(), self.page)
        self.parts = []
        self.size = 0

    def finish(self) -> list[Chunk]:
        self.flush()
        if self.pending is not None:
            self.emit(self.pending.text, self.pending.parent, self.pending.page)
            self.pending = None
        return [Chunk(text, heading, page, ordinal) for ordinal, (text, heading, page) in enumerate(self.out)]


# --- normalising ----------------------------------------------------------------------------------

_FENCE = re.compile(r"(`{3,}|~{3,})")
_LIST_ITEM = re.compile(r"(?:[-*+•◦▪‣–]|\d{1,3}[.)]|[A-Za-z][.)])\s")
_SEPARATOR_ROW = re.compile(r"\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?")


def _clean(text: str) -> str:
    return unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n").replace("\u00ad", "")


def _normalise(text: str) -> str:
    """Prose: runs of spaces collapsed, the lines of a paragraph joined (list items keep their own lines),
    paragraphs apart by one blank line. Code (a fenced block): as it is, trailing spaces and blank edges off."""
    text = _clean(text)
    if _FENCE.match(text.lstrip()):
        lines = [line.rstrip() for line in text.split("\n")]
        while lines and not lines[0]:
            lines.pop(0)
        while lines and not lines[-1]:
            lines.pop()
        return "\n".join(lines)
    paragraphs: list[str] = []
    current = ""
    for raw in text.split("\n"):
        line = " ".join(raw.split())
        if not line:
            if current:
                paragraphs.append(current)
            current = ""
        elif not current:
            current = line
        else:
            current += ("\n" if _LIST_ITEM.match(line) else " ") + line
    if current:
        paragraphs.append(current)
    return "\n\n".join(paragraphs)


def _table_lines(text: str) -> list[str]:
    return [line for line in (" ".join(raw.split()) for raw in _clean(text).split("\n")) if line]


# --- cutting --------------------------------------------------------------------------------------

def _after(pattern: re.Pattern[str]) -> Callable[[str], list[str]]:
    """A splitter that cuts after each match, keeping every character."""
    def split(text: str) -> list[str]:
        pieces: list[str] = []
        start = 0
        for found in pattern.finditer(text):
            if found.end() < len(text) and found.end() > start:
                pieces.append(text[start:found.end()])
                start = found.end()
        pieces.append(text[start:])
        return [piece for piece in pieces if piece]
    return split


_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]]*\s+")
_ABBREVIATIONS = frozenset({
    "e.g", "i.e", "etc", "ecc", "es", "cfr", "cf", "vs", "mr", "mrs", "ms", "dr", "prof", "sig", "sigg", "dott",
    "ing", "avv", "st", "no", "nr", "n", "pag", "pagg", "p", "pp", "fig", "vol", "ca", "art", "ad", "approx",
})


def _sentence_breaks(text: str) -> Iterator[int]:
    """Where sentences end in `text` (after the space that follows their punctuation). Not before a lower-case
    letter or a digit, nor after a known abbreviation or an initial ("e.g. this", "J. Smith")."""
    for found in _SENTENCE_END.finditer(text):
        end = found.end()
        if end >= len(text):
            return
        following = text[end]
        if following.islower() or following.isdigit():
            continue
        if text[found.start()] == "." and found.group().count(".") == 1:
            before = text[max(0, found.start() - 12):found.start()].split()
            word = before[-1].lstrip("([\"'“«").lower() if before else ""
            if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                continue
        yield end


def _sentences(text: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    for end in _sentence_breaks(text):
        pieces.append(text[start:end])
        start = end
    pieces.append(text[start:])
    return [piece for piece in pieces if piece]


_BLANK_LINES = _after(re.compile(r"\n(?:[ \t]*\n)+"))
_LINES = _after(re.compile(r"\n"))
_WORDS = _after(re.compile(r"\s+"))
_PROSE = (_BLANK_LINES, _LINES, _sentences, _WORDS)
_CODE = (_BLANK_LINES, _LINES, _WORDS)


def _units(text: str, target: int, limit: int,
           splitters: Sequence[Callable[[str], list[str]]]) -> Iterator[str]:
    """`text` in consecutive pieces of at most `target` characters where the splitters allow, at most `limit`
    always: a word longer than that is the one thing cut where it must be."""
    if len(text) <= target:
        yield text
        return
    if splitters:
        first, rest = splitters[0], splitters[1:]
        parts = first(text)
        if len(parts) > 1:
            for part in parts:
                yield from _units(part, target, limit, rest)
            return
        yield from _units(text, target, limit, rest)
        return
    if len(text.rstrip()) <= limit:
        yield text
        return
    for start in range(0, len(text), limit):
        yield text[start:start + limit]


def _pack(units: Iterator[str] | list[str], target: int, limit: int, overlap: int, *,
          indented: bool = False) -> list[str]:
    """Consecutive units joined into pieces of up to `target` characters (a unit longer than that alone), each
    piece after the first starting with about `overlap` characters of the end of the one before. `indented`
    keeps the spaces a piece starts with (code)."""

    def joined(parts: list[str]) -> str:
        text = "".join(parts)
        return text.strip("\n").rstrip() if indented else text.strip()

    pieces: list[str] = []
    current: list[str] = []
    size = 0
    fresh = False
    for unit in units:
        if fresh and size + len(unit.rstrip()) > target:
            piece = joined(current)
            pieces.append(piece)
            tail = _tail(piece, overlap)
            if tail and len(tail) + 1 + len(unit.rstrip()) <= limit:
                current, size = [tail + " "], len(tail) + 1
            else:
                current, size = [], 0
            fresh = False
        current.append(unit)
        size += len(unit)
        fresh = True
    if fresh:
        pieces.append(joined(current))
    return [piece for piece in pieces if piece.strip()]


def _tail(piece: str, overlap: int) -> str:
    """About the last `overlap` characters of `piece`, starting at a sentence if one starts there, else at a word."""
    if overlap <= 0 or len(piece) <= overlap:
        return ""
    window = piece[-overlap:]
    for end in _sentence_breaks(window):
        return window[end:].strip()
    if piece[-overlap - 1].isspace():
        return window.strip()
    space = re.search(r"\s", window)
    return window[space.end():].strip() if space else ""


def _split_code(text: str, target: int, limit: int) -> list[str]:
    """A fenced block cut between paragraphs or lines, each piece fenced like the whole."""
    lines = text.split("\n")
    opener = lines[0]
    fence = _FENCE.match(opener.lstrip())
    marker = fence.group(1) if fence else "```"
    if len(lines) > 1 and set(lines[-1].strip()) == {marker[0]} and len(lines[-1].strip()) >= len(marker):
        closer, body = lines[-1].strip(), "\n".join(lines[1:-1])
    else:
        closer, body = marker, "\n".join(lines[1:])
    if len(opener) > limit // 4:
        opener = marker
    frame = len(opener) + len(closer) + 2
    if frame > limit // 2:
        return _pack(_units(text, target, limit, _CODE), target, limit, 0)
    body_limit = limit - frame
    body_target = max(1, min(target - frame, body_limit))
    pieces = _pack(_units(body + "\n", body_target, body_limit, _CODE), body_target, body_limit, 0, indented=True)
    return [f"{opener}\n{piece}\n{closer}" for piece in pieces]


def _split_table(lines: list[str], target: int, limit: int) -> list[str]:
    """The table in pieces cut between rows, each starting with the header (and its separator row)."""
    header = lines[:2] if len(lines) > 1 and _SEPARATOR_ROW.fullmatch(lines[1]) else lines[:1]
    rows = lines[len(header):]
    head = "\n".join(header)
    if not rows or len(head) > limit // 2:
        whole = "\n".join(lines) + "\n"
        return _pack(_units(whole, target, limit, (_LINES, _WORDS)), target, limit, 0)
    body_limit = limit - len(head) - 1
    body_target = max(1, min(target - len(head) - 1, body_limit))
    units = _units("\n".join(rows) + "\n", body_target, body_limit, (_LINES, _WORDS))
    return [f"{head}\n{piece}" for piece in _pack(units, body_target, body_limit, 0)]
