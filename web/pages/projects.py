"""A project's page, `/p/<id>`: its chats, a new chat in it, its settings, deleting it."""

from __future__ import annotations

from nicegui import ui

from backend.core.errors import AppError
from backend.core.i18n import _
from backend.services import Services
from backend.storage.projects import Project

from ..components.aria import named
from ..components.dialogs import confirm
from ..components.knowledge_links import choose_collections
from ..components.projects import edit_project_dialog
from ..frame import frame, not_found

__all__ = ["register"]

LISTED = 200


class ProjectPage:
    def __init__(self, services: Services, project: Project) -> None:
        self.services = services
        self.project = project

    async def build(self) -> None:
        project = self.project
        async with frame(self.services, current=None, title=project.name) as page:
            self.frame = page
            with page.header:
                named(ui.button(icon="tune", on_click=self.edit)
                      .props("flat round dense data-testid=project-settings"), _("Project settings"))
                named(ui.button(icon="delete", on_click=self.delete)
                      .props("flat round dense data-testid=project-delete"), _("Delete project"))
            with ui.row().classes("w-full items-center no-wrap q-pt-md"):
                ui.icon("folder", size="md").classes("text-grey-7")
                self.title = ui.label(project.name).classes("text-h6 ellipsis").props("data-testid=project-title")
                ui.space()
                ui.button(_("New chat"), icon="add", on_click=lambda: ui.navigate.to(f"/?project={project.id}")) \
                    .props("unelevated no-caps data-testid=project-new-chat")
            self.prompt = ui.label(project.system_prompt).classes("text-grey-8 text-sm gl-clamp") \
                .props("data-testid=project-prompt")
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                ui.icon("library_books").classes("text-grey-7")
                self.documents = ui.label().classes("col text-sm text-grey-8").props("data-testid=project-collections")
                ui.button(_("Documents"), on_click=self.choose_documents) \
                    .props("flat no-caps dense data-testid=project-documents")
            await self.show_documents()
            await self.conversations()

    async def conversations(self) -> None:
        rows = await self.services.store.list_recent(LISTED, project_id=self.project.id)
        if not rows:
            ui.label(_("No chats in this project yet.")).classes("text-grey-7 q-pa-sm")
            return
        with ui.list().props("bordered separator").classes("w-full rounded-borders"):
            for conv in rows:
                with ui.item(on_click=lambda c=conv: ui.navigate.to(f"/c/{c.id}")) \
                        .props("clickable data-testid=project-conversation"):
                    with ui.item_section():
                        ui.item_label(conv.title).classes("ellipsis")
                    if conv.pinned:
                        with ui.item_section().props("side"):
                            named(ui.icon("push_pin", size="xs"), _("Pinned"))

    async def show_documents(self) -> None:
        linked = await self.services.knowledge.linked(project_id=self.project.id)
        names = ", ".join(c.name for c in linked)
        self.documents.set_text(_("Chats in this project answer from: {names}", names=names) if names
                                else _("No documents are turned on for this project."))

    async def choose_documents(self) -> None:
        """Turn collections on for every chat of the project."""
        linked = await self.services.knowledge.linked(project_id=self.project.id)
        chosen = await choose_collections(self.services, {c.id for c in linked},
                                          heading=_("Documents for this project"),
                                          explanation=_("Answers in every chat of this project use the passages "
                                                        "of the collections turned on."))
        if chosen is None:
            return
        try:
            await self.services.knowledge.link(chosen, project_id=self.project.id)
        except AppError as exc:
            ui.notify(exc.message, type="warning")
            return
        await self.show_documents()
        ui.notify(_("Saved"), timeout=1000)

    async def edit(self) -> None:
        if not await edit_project_dialog(self.services, self.project):
            return
        self.project = await self.services.projects.get(self.project.id) or self.project
        self.title.set_text(self.project.name)
        self.prompt.set_text(self.project.system_prompt)
        self.frame.set_title(self.project.name)
        self.frame.drawer.projects.refresh()

    async def delete(self) -> None:
        count = self.project.conversations
        detail = _("Its chats stay, in no project.") if count else _("It holds no chats.")
        if not await confirm(_("Delete project “{name}”?", name=self.project.name), detail, _("Delete"), danger=True):
            return
        await self.services.projects.delete(self.project.id)
        ui.notify(_("Project “{name}” deleted", name=self.project.name), timeout=1500)
        ui.navigate.to("/")


def register(services: Services) -> None:
    @ui.page("/p/{project_id}")
    async def project_page(project_id: str) -> None:
        await services.ready()
        project = await services.projects.get(project_id)
        if project is None:
            await not_found(services, _("This project does not exist. It may have been deleted."))
            return
        await ProjectPage(services, project).build()
