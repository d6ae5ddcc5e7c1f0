"""The shared page frame: header, drawer (navigation, then the conversations), assets. Used as a
context manager."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from nicegui import ui

from backend.core.i18n import LANGUAGES, _, current_locale
from backend.security.devices import OWNER, Principal
from backend.security.middleware import principal_of
from backend.services import Services

from .approvals import ApprovalPrompt
from .components.aria import named
from .components.drawer import ConversationDrawer
from .i18n import choose_language, head_html

__all__ = ["Frame", "frame", "not_found"]

HEAD = """
<meta name="theme-color" content="#1e40af">
<link rel="manifest" href="/manifest.webmanifest">
<link rel="apple-touch-icon" href="/static/icons/apple-touch-icon.png">
<meta name="mobile-web-app-capable" content="yes">
<link rel="stylesheet" href="/static/app.css">
<script src="/static/app.js" defer></script>
<link rel="modulepreload" href="/static/speech.js">
<link rel="modulepreload" href="/static/upload.js">
<link rel="modulepreload" href="/static/i18n.js">
"""
"""The two modules the page's custom elements import are fetched beside the elements' own
modules instead of after them (the page starts only once every module is in)."""
KEEP_LANG = ("<script>addEventListener('DOMContentLoaded', () => "
             "{ if (window.gridlessLanguage) document.documentElement.lang = window.gridlessLanguage; });</script>")
"""The page's language stays on `<html lang>` once the page has started (Quasar writes its own
there as it starts)."""


@dataclass(kw_only=True, slots=True)
class Frame:
    header: ui.header
    title: ui.label
    model_chip: ui.chip
    drawer: ConversationDrawer

    def show_model(self, model_id: str | None) -> None:
        """After another model was made active on this page."""
        self.model_chip.set_text(model_id or _("no model"))

    def set_title(self, title: str) -> None:
        """A page that names its conversation after it was built (the first message)."""
        self.title.set_text(title or "gridless")
        ui.page_title(f"{title} · gridless" if title else "gridless")


def current_principal() -> Principal:
    """Who opened the page being built (the security gate recorded it on the request)."""
    request = ui.context.client.request
    return (principal_of(request.scope) if request is not None else None) or OWNER


@asynccontextmanager
async def frame(services: Services, *, current: str | None, title: str) -> AsyncIterator[Frame]:
    """Yields the header (a page adds its own buttons to it) and the title label."""
    ui.add_head_html(HEAD + head_html() + KEEP_LANG)
    ui.page_title(f"{title} · gridless" if title else "gridless")
    ui.colors(primary="#2563eb")
    principal = current_principal()
    drawer = ui.left_drawer(value=None, fixed=True).props("width=280 bordered").classes("q-pa-sm")
    with ui.header(elevated=False).classes("items-center no-wrap q-px-sm q-py-xs bg-white text-black border-b") \
            as header:
        named(ui.button(icon="menu", on_click=drawer.toggle).props("flat round dense"), _("Conversations"))
        title_label = ui.label(title or "gridless").classes("text-subtitle1 ellipsis col-shrink") \
            .style("min-width: 0").props("role=heading aria-level=1 data-testid=conversation-title")
        ui.space()
        if principal.is_owner:  # the owner sees at a glance that other devices can reach the app
            sharing_badge = named(ui.button(icon="wifi_tethering", on_click=lambda: ui.navigate.to("/sharing"))
                                  .props("flat round dense color=positive data-testid=sharing-on"), _("Sharing"))
            with sharing_badge:
                sharing_tip = ui.tooltip("")
            sharing_badge.set_visibility(False)
        model = services.chat.model
        model_chip = ui.chip(model.id if model else _("no model"), icon="memory") \
            .props("outline dense").classes("text-xs ellipsis") \
            .style("max-width: 45vw; flex-shrink: 0").props("data-testid=model-name")
        if principal.is_owner:
            model_chip.on("click", lambda: ui.navigate.to("/models"))
            model_chip.props("clickable").tooltip(_("Model in use: tap to change"))
        else:
            model_chip.tooltip(_("Model in use on the phone"))
    conversations = ConversationDrawer(services, current, drawer)
    with drawer:
        conversations.search_field()
        ui.button(_("New chat"), icon="add", on_click=lambda: ui.navigate.to("/")) \
            .props("unelevated no-caps").classes("w-full q-mb-sm").props("data-testid=new-chat")
        ui.button(_("Images"), icon="image", on_click=lambda: ui.navigate.to("/images")) \
            .props("flat no-caps align=left dense data-testid=nav-images").classes("w-full")
        ui.button(_("Transcripts"), icon="graphic_eq", on_click=lambda: ui.navigate.to("/transcripts")) \
            .props("flat no-caps align=left dense data-testid=nav-transcripts").classes("w-full")
        ui.button(_("Documents"), icon="library_books", on_click=lambda: ui.navigate.to("/knowledge")) \
            .props("flat no-caps align=left dense data-testid=nav-knowledge").classes("w-full")
        if principal.is_owner:
            for label, icon, path in ((_("Models"), "memory", "/models"), (_("Share"), "share", "/sharing"),
                                      (_("Devices"), "devices", "/devices"),
                                      (_("Move"), "send_to_mobile", "/move"), (_("Backup"), "backup", "/backup")):
                ui.button(label, icon=icon, on_click=lambda p=path: ui.navigate.to(p)) \
                    .props(f"flat no-caps align=left dense data-testid=nav{path.replace('/', '-')}") \
                    .classes("w-full")
        await conversations.build()
        language_choice()
    if principal.is_owner:
        def show_sharing() -> None:
            state = services.sharing.state if services.sharing else None
            sharing_badge.set_visibility(state is not None)
            sharing_tip.set_text(_("Sharing on {address}", address=state.origin) if state else "")
        ApprovalPrompt(services.pairing, on_change=show_sharing)
    with ui.column().classes("gl-chat q-px-md q-pb-xl gap-3"):
        yield Frame(header=header, title=title_label, model_chip=model_chip, drawer=conversations)


def language_choice() -> ui.select:
    """At the bottom of the drawer: the interface's language, each named in itself; choosing one
    keeps it for this browser and reloads the page in it."""
    shown = current_locale()

    def chosen(language: object) -> None:
        if isinstance(language, str) and language in LANGUAGES and language != shown:
            choose_language(language)

    with ui.row().classes("w-full items-center no-wrap gap-2 q-mt-md q-px-sm"):
        ui.icon("translate").classes("text-grey-7").props('aria-hidden="true"')
        return ui.select(dict(LANGUAGES), value=shown, label=_("Language"), on_change=lambda e: chosen(e.value)) \
            .props("dense options-dense data-testid=language").classes("col")


async def not_found(services: Services, sentence: str) -> None:
    """The page for an address whose conversation or project is gone: why, and a way on."""
    async with frame(services, current=None, title=_("Not found")):
        ui.label(sentence)
        ui.link(_("Start a new chat"), "/")
