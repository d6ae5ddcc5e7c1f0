"""The shared page frame: header, drawer (navigation, then the conversations), assets. Used as a
context manager."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from nicegui import ui

from backend.security.devices import OWNER, Principal
from backend.security.middleware import principal_of
from backend.services import Services

from .approvals import ApprovalPrompt
from .i18n import head_html
from .components.drawer import ConversationDrawer

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


@dataclass(kw_only=True, slots=True)
class Frame:
    header: ui.header
    title: ui.label
    model_chip: ui.chip
    drawer: ConversationDrawer

    def show_model(self, model_id: str | None) -> None:
        """After another model was made active on this page."""
        self.model_chip.set_text(model_id or "no model")

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
    ui.add_head_html(HEAD + head_html())
    ui.page_title(f"{title} · gridless" if title else "gridless")
    ui.colors(primary="#2563eb")
    principal = current_principal()
    drawer = ui.left_drawer(value=None, fixed=True).props("width=280 bordered").classes("q-pa-sm")
    with ui.header(elevated=False).classes("items-center no-wrap q-px-sm q-py-xs bg-white text-black border-b") \
            as header:
        ui.button(icon="menu", on_click=drawer.toggle).props("flat round dense aria-label=Conversations")
        title_label = ui.label(title or "gridless").classes("text-subtitle1 ellipsis col-shrink") \
            .style("min-width: 0").props("data-testid=conversation-title")
        ui.space()
        if principal.is_owner:  # the owner sees at a glance that other devices can reach the app
            sharing_badge = ui.button(icon="wifi_tethering", on_click=lambda: ui.navigate.to("/sharing")) \
                .props("flat round dense color=positive data-testid=sharing-on aria-label=Sharing")
            with sharing_badge:
                sharing_tip = ui.tooltip("")
            sharing_badge.set_visibility(False)
        model = services.chat.model
        model_chip = ui.chip(model.id if model else "no model", icon="memory") \
            .props("outline dense").classes("text-xs ellipsis") \
            .style("max-width: 45vw; flex-shrink: 0").props("data-testid=model-name")
        if principal.is_owner:
            model_chip.on("click", lambda: ui.navigate.to("/models"))
            model_chip.props("clickable").tooltip("Model in use: tap to change")
        else:
            model_chip.tooltip("Model in use on the phone")
    conversations = ConversationDrawer(services, current, drawer)
    with drawer:
        conversations.search_field()
        ui.button("New chat", icon="add", on_click=lambda: ui.navigate.to("/")) \
            .props("unelevated no-caps").classes("w-full q-mb-sm").props("data-testid=new-chat")
        ui.button("Images", icon="image", on_click=lambda: ui.navigate.to("/images")) \
            .props("flat no-caps align=left dense data-testid=nav-images").classes("w-full")
        ui.button("Transcripts", icon="graphic_eq", on_click=lambda: ui.navigate.to("/transcripts")) \
            .props("flat no-caps align=left dense data-testid=nav-transcripts").classes("w-full")
        ui.button("Documents", icon="library_books", on_click=lambda: ui.navigate.to("/knowledge")) \
            .props("flat no-caps align=left dense data-testid=nav-knowledge").classes("w-full")
        if principal.is_owner:
            for label, icon, path in (("Models", "memory", "/models"), ("Share", "share", "/sharing"),
                                      ("Devices", "devices", "/devices"),
                                      ("Move", "send_to_mobile", "/move"), ("Backup", "backup", "/backup")):
                ui.button(label, icon=icon, on_click=lambda p=path: ui.navigate.to(p)) \
                    .props(f"flat no-caps align=left dense data-testid=nav{path.replace('/', '-')}") \
                    .classes("w-full")
        await conversations.build()
    if principal.is_owner:
        def show_sharing() -> None:
            state = services.sharing.state if services.sharing else None
            sharing_badge.set_visibility(state is not None)
            sharing_tip.set_text(f"Sharing on {state.origin}" if state else "")
        ApprovalPrompt(services.pairing, on_change=show_sharing)
    with ui.column().classes("gl-chat q-px-md q-pb-xl gap-3"):
        yield Frame(header=header, title=title_label, model_chip=model_chip, drawer=conversations)


async def not_found(services: Services, sentence: str) -> None:
    """The page for an address whose conversation or project is gone: why, and a way on."""
    async with frame(services, current=None, title="Not found"):
        ui.label(sentence)
        ui.link("Start a new chat", "/")
