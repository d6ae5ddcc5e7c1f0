"""Searching a collection: the passages that best match, by words and by meaning, each with where
it is (document, page, heading), its score and its text; a tap opens it in its document."""

from __future__ import annotations

from nicegui import ui

from backend.core.errors import AppError
from backend.core.i18n import _, format_decimal
from backend.knowledge.store import Hit
from backend.services import Services

from .aria import named
from .knowledge_citations import passage_link, source_label

__all__ = ["CollectionSearch", "search_result"]

SEARCH_K = 10


def search_result(hit: Hit) -> None:
    passage = hit.passage
    source = {"document": hit.document_name, "page": passage.page}
    with ui.item(on_click=lambda: ui.navigate.to(passage_link(passage.n))) \
            .props(f"clickable data-testid=search-result data-passage-id={passage.n}") \
            .classes("rounded-borders q-px-sm"):
        with ui.item_section():
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                ui.label(source_label(source)).classes("text-subtitle2 ellipsis col").style("min-width: 0") \
                    .props("data-testid=search-result-source")
                ui.label(_("Score {score}", score=format_decimal(hit.score, 3))).classes("text-caption text-grey-7") \
                    .props("data-testid=search-result-score")
            if passage.heading:
                ui.label(passage.heading).classes("text-caption text-grey-7 ellipsis") \
                    .props("data-testid=search-result-heading")
            ui.label(passage.text).classes("text-body2 gl-clamp").props("data-testid=search-result-text")


class CollectionSearch:
    """The search field and, below it, what the last search found."""

    def __init__(self, services: Services, collection_id: str) -> None:
        self.services = services
        self.collection_id = collection_id
        self.asked = 0  # the answer to an older search that arrives late is dropped
        with ui.row().classes("w-full items-center no-wrap gap-1"):
            self.query = named(ui.input(placeholder=_("Search these documents")).props(
                "dense outlined clearable type=search maxlength=2000 data-testid=knowledge-search"),
                _("Search these documents")).classes("col")
            with self.query.add_slot("prepend"):
                ui.icon("search")
            self.query.on("keydown.enter", self.search)
            ui.button(_("Search"), on_click=self.search).props("unelevated no-caps data-testid=knowledge-search-go")
        self.results = ui.column().classes("w-full gap-0").props("data-testid=search-results")

    async def search(self) -> None:
        text = (self.query.value or "").strip()
        self.asked += 1
        asked = self.asked
        self.results.clear()
        if not text:
            return
        with self.results:
            ui.spinner(size="24px")
        try:
            result = await self.services.knowledge.search([self.collection_id], text, k=SEARCH_K)
        except AppError as exc:
            if asked == self.asked:
                self.results.clear()
                ui.notify(exc.message, type="warning")
            return
        if asked != self.asked:
            return
        self.results.clear()
        with self.results:
            if result.notice:
                ui.label(result.notice).classes("gl-notice").props("data-testid=search-notice")
            if not result.hits:
                ui.label(_("No passages match «{text}».", text=text)).classes("text-grey-7 q-pa-sm") \
                    .props("data-testid=search-empty")
                return
            with ui.list().props("separator").classes("w-full"):
                for hit in result.hits:
                    search_result(hit)
