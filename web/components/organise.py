"""The drawer's dialogs: rename, move to a project, delete several; export as a download."""

from __future__ import annotations

from typing import Literal

from nicegui import ui

from backend.core.errors import AppError
from backend.core.i18n import _, ngettext
from backend.services import Services

from .dialogs import confirm

__all__ = ["choose_project", "delete_many", "export_conversation", "rename_dialog"]

NO_PROJECT = ""


async def rename_dialog(title: str) -> str | None:
    """The new title (stripped, at most 200 characters), or None when cancelled or left blank."""
    with ui.dialog() as dialog, ui.card().classes("w-80"):
        ui.label(_("Rename conversation")).classes("text-h6")
        field = ui.input(_("Title"), value=title).props("autofocus maxlength=200").classes("w-full")
        with ui.row().classes("w-full justify-end"):
            ui.button(_("Cancel"), on_click=dialog.close).props("flat")
            ui.button(_("Save"), on_click=lambda: dialog.submit(field.value))
    new_title = await dialog
    return new_title.strip()[:200] or None if isinstance(new_title, str) else None


async def choose_project(services: Services, count: int) -> str | None:
    """The project to move `count` conversations to: its id, NO_PROJECT for none, None when cancelled."""
    projects = await services.projects.list()
    options = {NO_PROJECT: _("No project"), **{p.id: p.name for p in projects}}
    with ui.dialog() as dialog, ui.card().classes("w-80"):
        ui.label(_("Move to project") if count == 1 else
                 ngettext("Move {n} conversation to project", "Move {n} conversations to project", count)) \
            .classes("text-h6")
        if not projects:
            ui.label(_("There are no projects yet: make one under Projects in the drawer.")).classes("text-grey-8")
        chosen = ui.select(options, value=NO_PROJECT, label=_("Project")).classes("w-full") \
            .props("data-testid=move-project")
        with ui.row().classes("w-full justify-end"):
            ui.button(_("Cancel"), on_click=dialog.close).props("flat")
            ui.button(_("Move"), on_click=lambda: dialog.submit(chosen.value)).props("data-testid=move-ok")
    result = await dialog
    return str(result) if isinstance(result, str) else None


async def delete_many(services: Services, ids: list[str]) -> bool:
    """Asks, saying how many, then deletes them; True when they were deleted."""
    if not ids:
        return False
    count = len(ids)
    question = _("Delete this conversation?") if count == 1 else \
        ngettext("Delete {n} conversation?", "Delete {n} conversations?", count)
    if not await confirm(question, _("Their messages are removed from this device."), _("Delete"), danger=True):
        return False
    for conversation_id in ids:
        await services.conversations.delete(conversation_id)
    ui.notify(_("Deleted this conversation") if count == 1 else
              ngettext("Deleted {n} conversation", "Deleted {n} conversations", count), timeout=1500)
    return True


async def export_conversation(services: Services, conversation_id: str, kind: Literal["md", "json"]) -> None:
    """The browser downloads the conversation as Markdown (the branch shown) or JSON (every branch)."""
    try:
        exported = await services.exchange.export(conversation_id, kind)
    except AppError as exc:
        ui.notify(exc.message, type="warning")
        return
    ui.download.content(exported.data, exported.filename, exported.media_type)

