"""The drawer's conversations: search, projects, pinned first, a menu per conversation, select mode.

Built on every page, so it asks the database little: one query for the list (50 at first, "Show
more" for the next ones), one for the projects, none per conversation.
"""

from __future__ import annotations

from nicegui import app, ui

from backend.core.errors import AppError
from backend.core.i18n import _, ngettext
from backend.services import Services
from backend.storage.conversations import Conversation

from .aria import named
from .dialogs import confirm
from .knowledge_links import conversation_choice
from .organise import choose_project, delete_many, export_conversation, rename_dialog
from .projects import new_project_dialog
from .raw_upload import RawUpload, Uploaded, UploadFailed
from .search import DrawerSearch

__all__ = ["PAGE_SIZE", "ConversationDrawer"]

PAGE_SIZE = 50


class ConversationDrawer:
    """One page's drawer below its navigation: the list follows this page's state (how many are
    shown, select mode, archived ones), and refreshing it redraws only this page's drawer."""

    def __init__(self, services: Services, current: str | None, drawer: ui.left_drawer) -> None:
        self.services = services
        self.current = current
        self.drawer = drawer
        self.limit = PAGE_SIZE
        self.archived = False
        self.selecting = False
        self.selected: set[str] = set()
        self.search: DrawerSearch | None = None

    def search_field(self) -> DrawerSearch:
        """The search field, at the top of the drawer (built before the navigation)."""
        self.search = DrawerSearch(self.services, self.show_rest)
        return self.search

    def show_rest(self, show: bool) -> None:
        """Everything in the drawer but the search, hidden while search results are shown."""
        for child in self.drawer.default_slot.children:
            if self.search is None or child is not self.search.box:
                child.set_visibility(show)

    async def build(self) -> None:
        # one element around them: a refreshable draws no element of its own, so could not be hidden
        with ui.column().classes("w-full gap-0 no-wrap"):
            await self.projects()
            await self.conversations()

    def refresh(self) -> None:
        self.conversations.refresh()

    # projects ---------------------------------------------------------------------------------

    @ui.refreshable_method
    async def projects(self) -> None:
        projects = await self.services.projects.list()
        with ui.expansion(_("Projects"), icon="folder", value=False) \
                .props("dense header-class='q-px-sm' data-testid=projects").classes("w-full"):
            with ui.list().props("dense").classes("w-full"):
                for project in projects:
                    with ui.item(on_click=lambda p=project: ui.navigate.to(f"/p/{p.id}")) \
                            .props("clickable data-testid=project-item").classes("rounded-borders"):
                        with ui.item_section():
                            ui.item_label(project.name).classes("ellipsis")
                        with ui.item_section().props("side"):
                            ui.item_label(str(project.conversations)).props("caption")
            ui.button(_("New project"), icon="create_new_folder", on_click=self.new_project) \
                .props("flat no-caps dense align=left data-testid=new-project").classes("w-full")

    async def new_project(self) -> None:
        project = await new_project_dialog(self.services)
        if project is not None:
            ui.navigate.to(f"/p/{project.id}")

    # conversations ----------------------------------------------------------------------------

    @ui.refreshable_method
    async def conversations(self) -> None:
        rows = await self.services.store.list_recent(self.limit + 1, archived=self.archived)
        more, rows = len(rows) > self.limit, rows[:self.limit]
        self.selected &= {c.id for c in rows}
        with ui.row().classes("w-full items-center no-wrap gap-0 q-mt-sm"):
            if self.archived:
                named(ui.button(icon="arrow_back", on_click=lambda: self.show_archived(False))
                      .props("flat round dense data-testid=archived-back"), _("Back to conversations"))
            ui.label(_("Archived") if self.archived else _("Chats")).classes("text-caption text-grey-7 q-pl-sm")
            ui.space()
            if rows:
                named(ui.button(icon="close" if self.selecting else "checklist", on_click=self.toggle_select)
                      .props("flat round dense size=sm data-testid=select-mode"),
                      _("Done") if self.selecting else _("Select"))
            # the file goes to the import route as it is (no size limit of a page's own uploads)
            with RawUpload(app.url_path_for("import_conversations"), accept=".json,application/json",
                           input_testid="import-file", on_uploaded=self.imported, on_failed=self.import_failed):
                named(ui.button(icon="upload_file").props("flat round dense size=sm data-testid=import"),
                      _("Import conversations")) \
                    .tooltip(_("Import: ChatGPT, Open WebUI or gridless JSON"))
        if self.selecting:
            self.selection_bar()
        if not rows:
            ui.label(_("No archived conversations") if self.archived else _("No conversations yet")) \
                .classes("text-grey-6 q-pa-sm")
        with ui.list().props("dense").classes("w-full"):
            for conv in rows:
                self.row(conv)
        if more:
            ui.button(_("Show more"), on_click=self.show_more) \
                .props("flat no-caps dense data-testid=show-more").classes("w-full")
        if not self.archived:
            ui.button(_("Archived"), icon="inventory_2", on_click=lambda: self.show_archived(True)) \
                .props("flat no-caps dense align=left data-testid=show-archived").classes("w-full text-grey-8")

    def row(self, conv: Conversation) -> None:
        item_classes = "col rounded-borders" + (" gl-current" if conv.id == self.current else "")
        # the menu button sits beside the clickable item, not inside it, so opening the
        # menu does not also open the conversation
        # the row is the list's item (it holds the menu button too); the item inside it is a link
        with ui.row().classes("gl-conv-item w-full no-wrap items-center gap-0").props("role=listitem"):
            if self.selecting:
                box = ui.checkbox(value=conv.id in self.selected,
                                  on_change=lambda e, c=conv: self.pick(c.id, bool(e.value))) \
                    .props("dense data-testid=select-conversation")
                box.props["aria-label"] = _("Select {title}", title=conv.title)
            with ui.item(on_click=lambda c=conv: ui.navigate.to(f"/c/{c.id}")).classes(item_classes) \
                    .style("min-width: 0").props("clickable role=link data-testid=conversation-item") as item:
                if conv.id == self.current:  # said in words too, not by its colour alone
                    item.props["aria-current"] = "page"
                with ui.item_section():
                    ui.item_label(conv.title).classes("ellipsis")
                if conv.pinned:
                    with ui.item_section().props("side"):
                        named(ui.icon("push_pin", size="xs").props("data-testid=pinned"), _("Pinned"))
            if not self.selecting:
                with named(ui.button(icon="more_vert").props("flat round dense size=sm"), _("More")) \
                        .style("flex-shrink: 0"):
                    with ui.menu():
                        self.menu(conv)

    def menu(self, conv: Conversation) -> None:
        ui.menu_item(_("Rename"), lambda c=conv: self.rename(c))
        ui.menu_item(_("Unpin") if conv.pinned else _("Pin"),
                     lambda c=conv: self.organise([c.id], pinned=not c.pinned))
        ui.menu_item(_("Move to project…"), lambda c=conv: self.move([c.id]))
        ui.menu_item(_("Documents…"), lambda c=conv: self.documents(c))
        ui.menu_item(_("Unarchive") if conv.archived else _("Archive"),
                     lambda c=conv: self.organise([c.id], archived=not c.archived))
        ui.menu_item(_("Export as Markdown"), lambda c=conv: export_conversation(self.services, c.id, "md"))
        ui.menu_item(_("Export as JSON"), lambda c=conv: export_conversation(self.services, c.id, "json"))
        ui.menu_item(_("Delete"), lambda c=conv: self.delete(c))

    def selection_bar(self) -> None:
        count = len(self.selected)
        with ui.row().classes("w-full items-center no-wrap gap-0 q-px-sm bg-blue-1 rounded-borders"):
            ui.label(ngettext("{n} selected", "{n} selected", count)).classes("text-caption") \
                .props("data-testid=selected-count")
            ui.space()
            for icon, testid, label, action in (
                    ("drive_file_move", "move", _("Move to project"), self.move_selected),
                    ("unarchive", "unarchive", _("Unarchive"), self.archive_selected) if self.archived
                    else ("archive", "archive", _("Archive"), self.archive_selected),
                    ("delete", "delete", _("Delete"), self.delete_selected)):
                named(ui.button(icon=icon, on_click=action)
                      .props(f"flat round dense size=sm data-testid=selected-{testid}"), label) \
                    .set_enabled(count > 0)

    # actions ----------------------------------------------------------------------------------

    def toggle_select(self) -> None:
        self.selecting = not self.selecting
        self.selected.clear()
        self.refresh()

    def pick(self, conversation_id: str, chosen: bool) -> None:
        if chosen:
            self.selected.add(conversation_id)
        else:
            self.selected.discard(conversation_id)
        self.refresh()

    def show_more(self) -> None:
        self.limit += PAGE_SIZE
        self.refresh()

    def show_archived(self, archived: bool) -> None:
        self.archived, self.limit = archived, PAGE_SIZE
        self.selecting = False
        self.selected.clear()
        self.refresh()

    async def organise(self, ids: list[str], **change: bool) -> None:
        await self.services.store.organise(ids, **change)
        self.refresh()

    async def rename(self, conv: Conversation) -> None:
        title = await rename_dialog(conv.title)
        if title:
            await self.services.store.update(conv.id, title=title)
            if conv.id == self.current:
                ui.navigate.to(f"/c/{conv.id}")
            else:
                self.refresh()

    async def documents(self, conv: Conversation) -> None:
        """Turn collections on for a conversation (its answers cite their passages)."""
        chosen = await conversation_choice(self.services, conv.id, conv.project_id)
        if chosen is None:
            return
        try:
            await self.services.knowledge.link(chosen, conversation_id=conv.id)
        except AppError as exc:
            ui.notify(exc.message, type="warning")
            return
        ui.notify(_("Saved"), timeout=1000)
        if conv.id == self.current:  # the chat shows which collections answer it
            ui.navigate.to(f"/c/{conv.id}")

    async def move(self, ids: list[str]) -> None:
        chosen = await choose_project(self.services, len(ids))
        if chosen is None:
            return
        project_id = chosen or None
        await self.services.store.organise(ids, project_id=project_id)
        project = await self.services.projects.get(project_id) if project_id else None
        ui.notify(_("Moved to {project}", project=project.name) if project else _("Moved out of the project"),
                  timeout=1500)
        self.selected.clear()
        self.refresh()
        self.projects.refresh()

    async def move_selected(self) -> None:
        await self.move(sorted(self.selected))

    async def archive_selected(self) -> None:
        await self.services.store.organise(sorted(self.selected), archived=not self.archived)
        self.selected.clear()
        self.refresh()

    async def delete(self, conv: Conversation) -> None:
        if not await confirm(_("Delete “{name}”?", name=conv.title), _("Its messages are removed from this device."),
                             _("Delete"), danger=True):
            return
        await self.services.conversations.delete(conv.id)
        if conv.id == self.current:
            ui.navigate.to("/")
        else:
            self.refresh()

    async def delete_selected(self) -> None:
        ids = sorted(self.selected)
        if not await delete_many(self.services, ids):
            return
        self.selected.clear()
        self.selecting = False
        if self.current in ids:
            ui.navigate.to("/")
        else:
            self.refresh()
            self.projects.refresh()

    def imported(self, upload: Uploaded) -> None:
        """A ChatGPT export, an Open WebUI export or gridless JSON became new conversations."""
        made = upload.data.get("conversations")
        count = len(made) if isinstance(made, list) else 0
        ui.notify(ngettext("Imported {n} conversation from {name}", "Imported {n} conversations from {name}", count,
                           name=upload.name), timeout=2500)
        self.archived = False
        self.refresh()
        self.projects.refresh()

    @staticmethod
    def import_failed(failure: UploadFailed) -> None:
        ui.notify(failure.message, type="warning", multi_line=True)
