"""How a collection's documents look: each one's state in words, with its progress while it is indexed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nicegui import ui

from backend.core.i18n import _, format_number, ngettext
from backend.knowledge.store import Document

from ..formats import size
from .aria import named

__all__ = ["DocumentActions", "document_card", "document_key", "kind_name", "state_text"]

KIND_ICONS = {"pdf": "picture_as_pdf", "docx": "article", "markdown": "description", "csv": "table_chart",
              "html": "language"}


def kind_name(kind: str) -> str:
    return {"pdf": "PDF", "docx": "Word", "markdown": "Markdown", "text": _("Text"), "csv": _("Table"),
            "html": _("Web page")}.get(kind, "")


def state_text(document: Document) -> str:
    """The document's state as a person reads it: "Indexing 12 of 40", "Ready · 40 passages · 12 pages"."""
    state = document.state
    if state == "queued":
        return _("Waiting")
    if state == "reading":
        return _("Reading…")
    if state == "indexing":
        done = _("Indexing {done} of {total}", done=format_number(document.embedded),
                 total=format_number(document.passages))
        return f"{done} · {document.error}" if document.error else done  # waiting for a server to answer
    if state == "ready":
        parts = [_("Ready"), ngettext("{n} passage", "{n} passages", document.passages)]
        if document.pages:
            parts.append(ngettext("{n} page", "{n} pages", document.pages))
        return " · ".join(parts)
    if state == "failed":
        return _("Failed: {error}", error=document.error) if document.error else _("Failed")
    return _("Cancelled")


def document_key(document: Document) -> tuple[object, ...]:
    """What a card shows of a document; the list is drawn again when this changes."""
    return (document.id, document.state, document.embedded, document.passages, document.pages, document.error,
            document.notice, document.kind, document.name)


class DocumentActions:
    """What a card's buttons do (each takes the document)."""

    def __init__(self, *, cancel: Callable[[Document], Awaitable[None]],
                 reindex: Callable[[Document], Awaitable[None]],
                 delete: Callable[[Document], Awaitable[None]]) -> None:
        self.cancel = cancel
        self.reindex = reindex
        self.delete = delete


def document_card(document: Document, actions: DocumentActions) -> None:
    with ui.card().classes("w-full q-pa-sm gap-1").props(f"flat bordered data-testid=document "
                                                         f"data-document-id={document.id}"):
        with ui.row().classes("w-full items-center no-wrap gap-2"):
            ui.icon(KIND_ICONS.get(document.kind, "description")).classes("text-grey-7")
            with ui.column().classes("col gap-0").style("min-width: 0"):
                ui.label(document.name).classes("text-subtitle2 ellipsis").props("data-testid=document-name")
                details = " · ".join(p for p in (kind_name(document.kind), size(document.size)) if p)
                ui.label(details).classes("text-caption text-grey-7")
            if document.pending:
                named(ui.button(icon="stop", on_click=lambda d=document: actions.cancel(d))
                      .props("flat round dense data-testid=document-cancel"), _("Stop indexing")) \
                    .tooltip(_("Stop indexing"))
            elif document.state in ("failed", "cancelled"):
                named(ui.button(icon="refresh", on_click=lambda d=document: actions.reindex(d))
                      .props("flat round dense data-testid=document-reindex"), _("Index again")) \
                    .tooltip(_("Index again"))
            named(ui.button(icon="delete", on_click=lambda d=document: actions.delete(d))
                  .props("flat round dense data-testid=document-delete"), _("Delete {name}", name=document.name))
        failed = document.state == "failed"
        ui.label(state_text(document)).classes("text-sm " + ("text-negative" if failed else "text-grey-8")) \
            .props("data-testid=document-state")
        if document.state == "indexing":
            done = document.embedded / document.passages if document.passages else 0.0
            ui.linear_progress(value=done, show_value=False).props("data-testid=document-progress")
        elif document.state in ("queued", "reading"):
            ui.linear_progress(show_value=False).props("indeterminate data-testid=document-progress")
        if document.notice:
            ui.label(document.notice).classes("text-caption text-grey-8").props("data-testid=document-notice")
