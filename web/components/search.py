"""Search from the drawer: results as you type, each opening its conversation at the message found.

Snippets come from the store with the matched words between MARK_START and MARK_END; the page
builds the highlight itself and escapes everything else, so message text is never read as HTML.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

from nicegui import ui

from backend.core.i18n import _
from backend.services import Services
from backend.storage.conversations import MARK_END, MARK_START, SearchHit

from .aria import named

__all__ = ["MAX_HITS", "DrawerSearch", "highlight", "hit_link"]

MAX_HITS = 30
DEBOUNCE_MS = 200
_MARKS = re.compile(f"([{MARK_START}{MARK_END}])")


def highlight(snippet: str) -> str:
    """HTML for a snippet: each marked stretch in <mark>, every other character escaped. Marks
    that do not pair up are closed or dropped, so the result is always well formed."""
    parts: list[str] = []
    marked = False
    for piece in _MARKS.split(snippet):
        if piece == MARK_START:
            if not marked:
                parts.append("<mark>")
                marked = True
        elif piece == MARK_END:
            if marked:
                parts.append("</mark>")
                marked = False
        elif piece:
            parts.append(html.escape(piece, quote=True))
    if marked:
        parts.append("</mark>")
    return "".join(parts)


def hit_link(hit: SearchHit) -> str:
    """Where tapping a hit goes: the conversation, at the message when a message matched."""
    return f"/c/{hit.conversation_id}" + (f"?m={hit.message_id}" if hit.message_id else "")


class DrawerSearch:
    """The search field at the top of the drawer. While a query is typed its results take the
    place of the rest of the drawer (`show_rest(False)`); an empty query brings the list back."""

    def __init__(self, services: Services, show_rest: Callable[[bool], None]) -> None:
        self.services = services
        self.show_rest = show_rest
        self.asked = 0  # answers to an older query that arrive late are dropped
        with ui.column().classes("w-full gap-1 q-mb-sm gl-search") as self.box:
            self.field = named(ui.input(placeholder=_("Search conversations"))
                               .props(f"dense outlined clearable debounce={DEBOUNCE_MS} type=search "
                                      "data-testid=search"), _("Search conversations")) \
                .classes("w-full")
            with self.field.add_slot("prepend"):
                ui.icon("search")
            self.field.on_value_change(self.search)
            self.results = ui.column().classes("w-full gap-0").props("data-testid=search-results")
        self.results.set_visibility(False)

    async def search(self) -> None:
        text = (self.field.value or "").strip()
        self.asked += 1
        asked = self.asked
        if not text:
            self.results.clear()
            self.results.set_visibility(False)
            self.show_rest(True)
            return
        hits = await self.services.store.search(text, limit=MAX_HITS)
        if asked != self.asked:
            return
        self.show_rest(False)
        self.results.set_visibility(True)
        self.results.clear()
        with self.results:
            if not hits:
                ui.label(_("No results for “{text}”", text=text)).classes("text-grey-7 q-pa-sm") \
                    .props("data-testid=search-empty")
                return
            with ui.list().props("dense").classes("w-full"):
                for hit in hits[:MAX_HITS]:
                    self.hit_item(hit)

    @staticmethod
    def hit_item(hit: SearchHit) -> None:
        with ui.item(on_click=lambda h=hit: ui.navigate.to(hit_link(h))) \
                .props("clickable data-testid=search-hit").classes("rounded-borders"):
            with ui.item_section():
                with ui.row().classes("items-center no-wrap gap-1 w-full"):
                    # a title that matched shows its words marked; escaped like a snippet
                    ui.html(highlight(hit.snippet if hit.message_id is None else hit.title), sanitize=False) \
                        .classes("ellipsis text-weight-medium col-shrink").style("min-width: 0") \
                        .props("data-testid=search-hit-title")
                    if hit.archived:
                        ui.badge(_("archived"), color="grey-6").props("outline data-testid=search-hit-archived")
                if hit.message_id is not None:
                    # escaped by `highlight`: the browser's own sanitizer is not in every browser
                    ui.html(highlight(hit.snippet), sanitize=False).classes("gl-snippet text-grey-8") \
                        .props("data-testid=search-hit-snippet")
