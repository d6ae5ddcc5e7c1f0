"""A passage in its document: the document's passages in order around it, the chosen one marked and
scrolled into view, each with its page for a PDF.

A long document has thousands of passages; the page shows those near the chosen one and more on
request, so opening a citation stays quick on a phone.
"""

from __future__ import annotations

from collections.abc import Sequence

from nicegui import ui

from backend.core.i18n import _, ngettext
from backend.knowledge.store import Document, Passage
from backend.services import Services

from ..frame import frame
from .knowledge_documents import kind_name

__all__ = ["WINDOW", "passage_view"]

WINDOW = 20
"""Passages shown before and after the chosen one, and added by each "Show more"."""
SCROLL_JS = "document.querySelector('[data-testid=passage-current]')?.scrollIntoView({block: 'center'})"


class PassageList:
    def __init__(self, passages: Sequence[Passage], index: int) -> None:
        self.passages = passages
        self.index = index
        self.start = max(0, index - WINDOW)
        self.end = min(len(passages), index + WINDOW + 1)
        self.box = ui.column().classes("w-full gap-2")
        self.draw()

    def draw(self) -> None:
        self.box.clear()
        with self.box:
            if self.start > 0:
                ui.button(_("Show earlier passages"), icon="expand_less", on_click=self.earlier) \
                    .props("flat no-caps dense data-testid=passages-earlier")
            for i in range(self.start, self.end):
                self.passage(self.passages[i], current=i == self.index)
            if self.end < len(self.passages):
                ui.button(_("Show later passages"), icon="expand_more", on_click=self.later) \
                    .props("flat no-caps dense data-testid=passages-later")

    @staticmethod
    def passage(passage: Passage, *, current: bool) -> None:
        classes = "w-full gap-1 q-pa-sm rounded-borders " + ("bg-blue-1" if current else "")
        style = "border-left: 4px solid #2563eb" if current else "border-left: 4px solid transparent"
        with ui.column().classes(classes).style(style) \
                .props(f"data-testid={'passage-current' if current else 'passage'} data-passage-id={passage.n}"):
            if passage.heading or passage.page:
                with ui.row().classes("w-full items-center no-wrap gap-2 text-caption text-grey-7"):
                    if passage.heading:
                        ui.label(passage.heading).classes("ellipsis col").style("min-width: 0") \
                            .props("data-testid=passage-heading")
                    if passage.page:
                        ui.label(_("page {page}", page=passage.page)).props("data-testid=passage-page")
            ui.label(passage.text).classes("text-body2").style("white-space: pre-wrap; overflow-wrap: anywhere") \
                .props("data-testid=passage-text")

    def earlier(self) -> None:
        self.start = max(0, self.start - WINDOW)
        self.draw()

    def later(self) -> None:
        self.end = min(len(self.passages), self.end + WINDOW)
        self.draw()


async def passage_view(services: Services, document: Document, passages: Sequence[Passage], index: int) -> None:
    collection = await services.knowledge.collection(document.collection_id)
    async with frame(services, current=None, title=document.name):
        if collection.hidden and collection.conversation_id:
            ui.link(_("Back to the chat"), f"/c/{collection.conversation_id}").classes("text-sm q-pt-sm") \
                .props("data-testid=passage-back")
        else:
            ui.link(_("Back to «{name}»", name=collection.name), f"/knowledge/{collection.id}") \
                .classes("text-sm q-pt-sm").props("data-testid=passage-back")
        with ui.row().classes("w-full items-center no-wrap gap-2"):
            ui.icon("description", size="md").classes("text-grey-7")
            with ui.column().classes("col gap-0").style("min-width: 0"):
                ui.label(document.name).classes("text-h6 ellipsis").props("data-testid=passage-document")
                details = [kind_name(document.kind)]
                if document.pages:
                    details.append(ngettext("{n} page", "{n} pages", document.pages))
                ui.label(" · ".join(d for d in details if d)).classes("text-caption text-grey-7") \
                    .props("data-testid=passage-document-details")
        PassageList(passages, index)
        ui.run_javascript(SCROLL_JS)
