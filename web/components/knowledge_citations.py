"""Citations in an answer: each [n] the answer's sources know becomes a link to its passage, and a
short list of the sources follows the answer.

The links are put into the HTML that Markdown rendered, in text only: never inside code, a link,
a tag or its attributes, so the answer's own text is rendered exactly as without sources. Only
numbers found in the message's `sources` become links; any other [n] stays as written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from nicegui import ui

from backend.core.i18n import _
from backend.knowledge.chunking import HEADING_SEPARATOR

__all__ = ["CitedMarkdown", "cite_html", "passage_link", "source_label", "source_links", "sources_list"]

_TAG = re.compile(r"""(<(?:[^>"']|"[^"]*"|'[^']*')*>)""")
_TAG_NAME = re.compile(r"<(/?)\s*([a-zA-Z][a-zA-Z0-9-]*)")
_CITATION = re.compile(r"\[(\d{1,4}(?:\s*,\s*\d{1,4})*)\]")
_NUMBER = re.compile(r"\d+")
_LEFT_ALONE = {"a", "code", "pre", "kbd", "samp", "script", "style", "textarea"}
"""Elements whose text is never turned into citation links."""


def passage_link(passage_id: int) -> str:
    return f"/knowledge/passage/{int(passage_id)}"


def source_links(sources: Sequence[dict[str, Any]]) -> dict[int, int]:
    """Citation number → passage id, for the sources that have both as whole numbers."""
    links: dict[int, int] = {}
    for source in sources:
        n, passage_id = source.get("n"), source.get("passage_id")
        if isinstance(n, int) and isinstance(passage_id, int) and not isinstance(n, bool):
            links[n] = passage_id
    return links


def _anchor(n: int, passage_id: int, text: str) -> str:
    return (f'<a href="{passage_link(passage_id)}" class="gl-cite" data-testid="citation" '
            f'data-source="{n}">{text}</a>')


def _cite(match: re.Match[str], links: dict[int, int]) -> str:
    numbers = [int(x) for x in _NUMBER.findall(match.group(1))]
    if len(numbers) == 1:
        n = numbers[0]
        return _anchor(n, links[n], f"[{n}]") if n in links else match.group(0)

    def one(found: re.Match[str]) -> str:
        n = int(found.group(0))
        return _anchor(n, links[n], str(n)) if n in links else found.group(0)
    return _NUMBER.sub(one, match.group(0))


def cite_html(html: str, sources: Sequence[dict[str, Any]]) -> str:
    """`html` with each [n] (or [n, m]) whose number is a source's turned into a link to its passage."""
    links = source_links(sources)
    if not links or "[" not in html:
        return html
    out: list[str] = []
    inside = 0  # how deep in elements whose text stays as it is
    for part in _TAG.split(html):
        if part.startswith("<"):
            name = _TAG_NAME.match(part)
            if name is not None and name.group(2).lower() in _LEFT_ALONE and not part.endswith("/>"):
                inside = max(0, inside - 1) if name.group(1) else inside + 1
            out.append(part)
        elif inside == 0 and "[" in part:
            out.append(_CITATION.sub(lambda m: _cite(m, links), part))
        else:
            out.append(part)
    return "".join(out)


class CitedMarkdown(ui.markdown):
    """Markdown whose citations link to the passages in `sources` (also as it streams)."""

    def __init__(self, content: str = "", *, sources: Sequence[dict[str, Any]] = (),
                 extras: list[str] | None = None) -> None:
        self.sources = list(sources)
        super().__init__(content, extras=extras)

    def _handle_content_change(self, content: str) -> None:
        super()._handle_content_change(content)
        sources = getattr(self, "sources", None)  # not set yet while the base class is being built
        if sources:
            cited = cite_html(str(self._props.get("innerHTML", "")), sources)
            if self._props.get("innerHTML") != cited:
                self._props["innerHTML"] = cited


def source_label(source: dict[str, Any]) -> str:
    document = str(source.get("document") or "")
    page = source.get("page")
    return _("{document} · page {page}", document=document, page=page) if page else document


def sources_list(sources: Sequence[dict[str, Any]]) -> None:
    """The answer's sources under it: [n] document · page, each opening its passage."""
    links = source_links(sources)
    listed = [s for s in sources if s.get("n") in links]
    if not listed:
        return
    with ui.column().classes("w-full gap-0 text-sm").props("data-testid=answer-sources"):
        ui.label(_("Sources")).classes("text-caption text-grey-7")
        for source in listed:
            n = int(source["n"])
            with ui.row().classes("items-baseline no-wrap gap-1 w-full"):
                ui.label(f"[{n}]").classes("text-grey-7 text-caption")
                ui.link(source_label(source), passage_link(links[n])).classes("ellipsis") \
                    .style("min-width: 0; flex-shrink: 0; max-width: 70%") \
                    .props(f"data-testid=source-link data-source={n}")
                heading = str(source.get("heading") or "").split(HEADING_SEPARATOR)[-1]
                if heading:  # tells apart two passages of one document
                    ui.label(heading).classes("text-grey-7 text-caption ellipsis").style("min-width: 0") \
                        .props("data-testid=source-heading")
