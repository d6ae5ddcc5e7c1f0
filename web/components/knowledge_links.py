"""Dialogs about collections that other pages open: a collection's name, which collections answer a
chat or a project, and which collection a file from the chat goes to."""

from __future__ import annotations

from collections.abc import Mapping

from nicegui import ui

from backend.core.i18n import _, format_number, ngettext
from backend.knowledge.store import Collection
from backend.services import Services

__all__ = ["MAX_NAME", "choose_collection", "choose_collections", "collection_counts", "collection_name_dialog",
           "conversation_choice", "counted"]

MAX_NAME = 200
NEW = ""
"""The choice of a new collection in `choose_collection`."""


def counted(n: int, one: str, many: str) -> str:
    """`one` or `many` (each holding `{n}`) as `n` asks, in the language in use (the texts are
    marked where they are written: `ngettext("{n} page", "{n} pages", n)`)."""
    return ngettext(one, many, n)


def collection_counts(collection: Collection) -> str:
    """How many of its documents are ready, of how many, and how many passages they hold."""
    if not collection.documents:
        return _("No documents yet")
    passages = ngettext("{n} passage", "{n} passages", collection.passages)
    if collection.ready == collection.documents:
        documents = ngettext("{n} document", "{n} documents", collection.documents)
    else:
        documents = ngettext("{ready} of {n} document ready", "{ready} of {n} documents ready", collection.documents,
                             ready=format_number(collection.ready))
    return f"{documents} · {passages}"


async def collection_name_dialog(heading: str, action: str, value: str = "") -> str | None:
    """A name for a collection (stripped), or None when cancelled or left blank."""
    with ui.dialog() as dialog, ui.card().classes("w-80"):
        ui.label(heading).classes("text-h6")
        field = ui.input(_("Name"), value=value) \
            .props(f"outlined dense autofocus maxlength={MAX_NAME} data-testid=collection-name-input") \
            .classes("w-full")
        field.on("keydown.enter", lambda: dialog.submit(field.value))
        with ui.row().classes("w-full justify-end"):
            ui.button(_("Cancel"), on_click=dialog.close).props("flat")
            ui.button(action, on_click=lambda: dialog.submit(field.value)).props("data-testid=collection-name-ok")
    name = await dialog
    return name.strip()[:MAX_NAME] or None if isinstance(name, str) else None


async def new_collection_dialog(models: Mapping[str, str]) -> tuple[str, str | None] | None:
    """A name for a new collection and, when there is more than one embedding model to choose from
    (this device's and those of engine servers), the one to index it with (None: the active one)."""
    with ui.dialog() as dialog, ui.card().classes("w-80"):
        ui.label(_("New collection")).classes("text-h6")
        field = ui.input(_("Name")).props(f"outlined dense autofocus maxlength={MAX_NAME} "
                                       "data-testid=collection-name-input").classes("w-full")
        model = ui.select({"": _("This device's model"), **models}, value="", label=_("Indexed with")) \
            .props("outlined dense data-testid=collection-embedder").classes("w-full")
        model.set_visibility(bool(models))
        ui.label(_("Passages and questions are sent to the server whose model indexes the collection; "
                   "when it cannot be reached, search uses words alone.")).classes("text-caption text-grey-7") \
            .bind_visibility_from(model, "value", backward=bool)
        field.on("keydown.enter", lambda: dialog.submit(field.value))
        with ui.row().classes("w-full justify-end"):
            ui.button(_("Cancel"), on_click=dialog.close).props("flat")
            ui.button(_("Create"), on_click=lambda: dialog.submit(field.value)).props("data-testid=collection-name-ok")
    name = await dialog
    name = name.strip()[:MAX_NAME] if isinstance(name, str) else ""
    return (name, model.value or None) if name else None


async def choose_collections(services: Services, chosen: set[str], *, fixed: Mapping[str, str] | None = None,
                             heading: str | None = None, explanation: str | None = None) -> list[str] | None:
    """The collections turned on (ids), or None when cancelled. `fixed` (id → why) are on already
    from elsewhere (the project) and cannot be turned off here. Without `heading` and `explanation`,
    the dialog speaks of this chat."""
    collections = await services.knowledge.collections()
    fixed = fixed or {}
    boxes: dict[str, ui.checkbox] = {}
    with ui.dialog() as dialog, ui.card().classes("w-full").style("max-width: 520px"):
        ui.label(heading or _("Documents for this chat")).classes("text-h6")
        ui.label(explanation or _("Answers here use the passages of the collections turned on.")) \
            .classes("text-sm text-grey-8")
        if not collections:
            ui.label(_("There are no collections yet.")).classes("text-grey-8").props("data-testid=no-collections")
            ui.link(_("Make one on the Documents page"), "/knowledge")
        with ui.column().classes("w-full gap-0"):
            for collection in collections:
                with ui.row().classes("w-full items-center no-wrap gap-1"):
                    box = ui.checkbox(collection.name, value=collection.id in chosen or collection.id in fixed) \
                        .props(f"dense data-testid=collection-choice data-collection={collection.id}") \
                        .classes("col ellipsis").style("min-width: 0")
                    if collection.id in fixed:
                        box.disable()
                    ui.label(fixed.get(collection.id) or collection_counts(collection)) \
                        .classes("text-caption text-grey-7 text-right")
                boxes[collection.id] = box
        with ui.row().classes("w-full justify-end"):
            ui.button(_("Cancel"), on_click=dialog.close).props("flat")
            ui.button(_("Save"), on_click=lambda: dialog.submit(True)).props("data-testid=collections-save")
    if not await dialog:
        return None
    return [cid for cid, box in boxes.items() if box.value and cid not in fixed]


async def conversation_choice(services: Services, conversation_id: str | None, project_id: str | None) \
        -> list[str] | None:
    """Ask which collections answer a conversation; returns all it is to be linked to (None when
    cancelled). Its project's stay on, and its own hidden one (a long attached document) is kept."""
    own = await services.knowledge.linked(conversation_id=conversation_id) if conversation_id else []
    project = await services.knowledge.linked(project_id=project_id) if project_id else []
    chosen = await choose_collections(services, {c.id for c in own if not c.hidden},
                                      fixed={c.id: _("On for the project") for c in project})
    if chosen is None:
        return None
    return [*chosen, *(c.id for c in own if c.hidden)]


async def choose_collection(services: Services, name: str) -> Collection | None:
    """The collection a file named `name` goes to: one of them, or a new one named here."""
    collections = await services.knowledge.collections()
    options = {c.id: c.name for c in collections} | {NEW: _("A new collection")}
    with ui.dialog() as dialog, ui.card().classes("w-80"):
        ui.label(_("Add to a collection")).classes("text-h6")
        ui.label(_("«{name}» is kept in the collection and can be found from any chat.", name=name)) \
            .classes("text-sm text-grey-8")
        target = ui.select(options, value=collections[0].id if collections else NEW, label=_("Collection")) \
            .classes("w-full").props("data-testid=target-collection")
        new_name = ui.input(_("Name of the new collection")) \
            .props(f"outlined dense maxlength={MAX_NAME} data-testid=new-collection-name").classes("w-full")
        new_name.bind_visibility_from(target, "value", value=NEW)
        with ui.row().classes("w-full justify-end"):
            ui.button(_("Cancel"), on_click=dialog.close).props("flat")
            ui.button(_("Add"), on_click=lambda: dialog.submit(True)).props("data-testid=add-to-collection-ok")
    if not await dialog:
        return None
    if target.value != NEW:
        return next((c for c in collections if c.id == target.value), None)
    title = (new_name.value or "").strip()
    if not title:
        ui.notify(_("A new collection needs a name."), type="warning")
        return None
    return await services.knowledge.create_collection(title[:MAX_NAME])
