"""The Documents pages: `/knowledge` lists the collections, `/knowledge/<id>` is one collection (its
documents as they are indexed, adding more, searching it), `/knowledge/passage/<n>` shows a passage
in its document (what a citation in an answer opens)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable

from nicegui import app, ui

from backend.core.errors import AppError
from backend.core.i18n import _
from backend.knowledge.store import Collection, Document
from backend.services import Services

from ..components.aria import named
from ..components.dialogs import confirm
from ..components.knowledge_documents import DocumentActions, document_card, document_key
from ..components.knowledge_links import collection_counts, collection_name_dialog, new_collection_dialog
from ..components.knowledge_passage import passage_view
from ..components.knowledge_search import CollectionSearch
from ..components.knowledge_upload import DocumentUpload
from ..components.raw_upload import Uploaded, UploadFailed
from ..formats import size
from ..frame import frame, not_found

__all__ = ["register"]

POLL_S = 0.5


def gone() -> str:
    return _("This collection does not exist. It may have been deleted.")


def passage_gone() -> str:
    return _("That passage is no longer there: its document may have been deleted or indexed again.")


async def delete_collection(services: Services, collection: Collection) -> bool:
    """Asks first; True when it was deleted."""
    if not await confirm(_("Delete the collection «{name}»?", name=collection.name),
                         _("Its documents and their passages are removed from this device."), _("Delete"),
                         danger=True):
        return False
    try:
        await services.knowledge.delete_collection(collection.id)
    except AppError as exc:
        ui.notify(exc.message, type="warning")
        return False
    ui.notify(_("The collection «{name}» was deleted.", name=collection.name), timeout=1500)
    return True


async def rename_collection(services: Services, collection: Collection) -> Collection | None:
    name = await collection_name_dialog(_("Rename collection"), _("Save"), collection.name)
    if name is None or name == collection.name:
        return None
    try:
        return await services.knowledge.rename(collection.id, name)
    except AppError as exc:
        ui.notify(exc.message, type="warning")
        return None


class _Live:
    """A page drawn again whenever a document changes state or progress (the service's `version`)."""

    services: Services
    seen_version: int

    async def tick(self) -> None:
        if self.services.knowledge.version != self.seen_version:
            await self.render()

    async def render(self) -> None:
        raise NotImplementedError


class CollectionsPage(_Live):
    """All collections, newest first, with their counts kept up to date while documents are indexed."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.seen_version = -1

    async def build(self) -> None:
        async with frame(self.services, current=None, title=_("Documents")):
            with ui.row().classes("w-full items-center no-wrap gap-2 q-pt-md"):
                ui.label(_("Collections of your documents. Turn one on in a chat, and answers cite its passages.")) \
                    .classes("text-body2 col")
                ui.button(_("New collection"), icon="add", on_click=self.create) \
                    .props("unelevated no-caps data-testid=new-collection")
            self.body = ui.column().classes("w-full gap-0")
            await self.render()
        ui.timer(POLL_S, self.tick)

    async def render(self) -> None:
        self.seen_version = self.services.knowledge.version
        collections = await self.services.knowledge.collections()
        self.body.clear()
        with self.body:
            if not collections:
                ui.label(_("No collections yet. Make one, then add PDFs, Word files, Markdown, text, CSV or web "
                           "pages to it.")).classes("text-grey-7 q-pa-sm").props("data-testid=collections-empty")
                return
            with ui.list().props("bordered separator").classes("w-full rounded-borders"):
                for collection in collections:
                    self.row(collection)

    def row(self, collection: Collection) -> None:
        # the row is the list's item (it holds the menu button too); the item inside it is a link
        with ui.row().classes("w-full items-center no-wrap gap-0").props("role=listitem"):
            with ui.item(on_click=lambda c=collection: ui.navigate.to(f"/knowledge/{c.id}")) \
                    .props(f"clickable role=link data-testid=collection-item data-collection-id={collection.id}") \
                    .classes("col").style("min-width: 0"):
                with ui.item_section().props("avatar"):
                    ui.icon("library_books").classes("text-grey-7")
                with ui.item_section():
                    ui.item_label(collection.name).classes("ellipsis").props("data-testid=collection-item-name")
                    ui.item_label(collection_counts(collection)).props("caption data-testid=collection-counts")
            with named(ui.button(icon="more_vert"), _("Options for {name}", name=collection.name)) \
                    .props("flat round dense data-testid=collection-more").style("flex-shrink: 0"):
                with ui.menu():
                    ui.menu_item(_("Rename"), lambda c=collection: self.rename(c))
                    ui.menu_item(_("Delete"), lambda c=collection: self.delete(c))

    async def create(self) -> None:
        remote = {m.id: m.name for m in self.services.embeddings.choices() if m.source == "remote"}
        chosen = await new_collection_dialog(remote)
        if chosen is None:
            return
        name, embedder = chosen
        try:
            collection = await self.services.knowledge.create_collection(name, embedder=embedder)
        except AppError as exc:
            ui.notify(exc.message, type="warning")
            return
        ui.navigate.to(f"/knowledge/{collection.id}")

    async def rename(self, collection: Collection) -> None:
        if await rename_collection(self.services, collection) is not None:
            await self.render()

    async def delete(self, collection: Collection) -> None:
        if await delete_collection(self.services, collection):
            await self.render()


class CollectionPage(_Live):
    """One collection: add documents, follow their indexing, search their passages."""

    def __init__(self, services: Services, collection: Collection) -> None:
        self.services = services
        self.collection = collection
        self.seen_version = -1
        self.shown: tuple[object, ...] | None = None
        self.problems: list[UploadFailed] = []
        self.actions = DocumentActions(cancel=self.cancel, reindex=self.reindex, delete=self.delete)

    async def build(self) -> None:
        collection = self.collection
        async with frame(self.services, current=None, title=collection.name) as page:
            self.frame = page
            with page.header:
                named(ui.button(icon="edit", on_click=self.rename), _("Rename collection")) \
                    .props("flat round dense data-testid=collection-rename").tooltip(_("Rename collection"))
                named(ui.button(icon="delete", on_click=self.delete_collection), _("Delete collection")) \
                    .props("flat round dense data-testid=collection-delete").tooltip(_("Delete collection"))
            ui.link(_("All collections"), "/knowledge").classes("text-sm q-pt-sm").props("data-testid=collections-link")
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                ui.icon("library_books", size="md").classes("text-grey-7")
                self.title = ui.label(collection.name).classes("text-h6 ellipsis col").style("min-width: 0") \
                    .props("role=heading aria-level=2 data-testid=collection-title")
            # the button, then each file's progress below it, across the page
            with DocumentUpload(app.url_path_for("add_document", collection_id=collection.id),
                                input_testid="document-files", on_uploaded=self.uploaded, on_failed=self.refused):
                ui.button(_("Add documents"), icon="upload_file").props("unelevated no-caps data-testid=add-documents")
            self.problems_box = ui.column().classes("w-full gap-1").props("data-testid=upload-problems")
            if self.services.settings.shared_folder is not None:
                await self.shared_folder()
            CollectionSearch(self.services, collection.id)
            self.body = ui.column().classes("w-full gap-2")
            await self.render()
        ui.timer(POLL_S, self.tick)

    # the documents ----------------------------------------------------------------------------

    async def render(self) -> None:
        self.seen_version = self.services.knowledge.version
        try:
            documents = await self.services.knowledge.documents(self.collection.id)
        except AppError:
            documents = None
        key = tuple(document_key(d) for d in documents) if documents is not None else ("gone",)
        if key == self.shown:
            return
        self.shown = key
        self.body.clear()
        with self.body:
            if documents is None:
                ui.label(gone()).classes("text-grey-8").props("data-testid=collection-gone")
            elif not documents:
                ui.label(_("No documents yet. Add PDFs, Word files, Markdown, text, CSV or web pages: they are "
                           "read and indexed here, on this device.")).classes("text-grey-7") \
                    .props("data-testid=documents-empty")
            for document in documents or []:
                document_card(document, self.actions)

    async def uploaded(self, upload: Uploaded) -> None:
        await self.render()

    def refused(self, failure: UploadFailed) -> None:
        self.problems.append(failure)
        self.show_problems()

    def show_problems(self) -> None:
        self.problems_box.clear()
        if not self.problems:
            return
        with self.problems_box, ui.column().classes("w-full gap-1 q-pa-sm rounded-borders bg-amber-1"):
            for failure in self.problems:
                with ui.column().classes("w-full gap-0").props("data-testid=upload-problem"):
                    ui.label(failure.name or _("A file")).classes("text-subtitle2 ellipsis")
                    ui.label(failure.message).classes("text-sm").props("data-testid=upload-problem-message")
            ui.button(_("Dismiss"), on_click=self.dismiss) \
                .props("flat dense no-caps data-testid=upload-problems-dismiss")

    def dismiss(self) -> None:
        self.problems.clear()
        self.show_problems()

    async def cancel(self, document: Document) -> None:
        await self.act(self.services.knowledge.cancel(document.id))

    async def reindex(self, document: Document) -> None:
        await self.act(self.services.knowledge.reindex(document.id))

    async def delete(self, document: Document) -> None:
        if await confirm(_("Delete «{name}»?", name=document.name),
                         _("The document and its passages are removed from this collection."), _("Delete"),
                         danger=True):
            await self.act(self.services.knowledge.delete_document(document.id))

    async def act(self, action: Awaitable[object]) -> None:
        try:
            await action
        except AppError as exc:
            ui.notify(exc.message, type="warning")
        with self.body:  # the button pressed is replaced by the render
            await self.render()

    # the phone's shared folder ----------------------------------------------------------------

    async def shared_folder(self) -> None:
        files = await asyncio.to_thread(self.services.knowledge.shared_files)
        with ui.expansion(_("Add from the phone's folder"), icon="folder_open") \
                .props("dense data-testid=shared-folder").classes("w-full"):
            if not files:
                ui.label(_("The folder holds no documents a collection can take.")).classes("text-grey-7 text-sm") \
                    .props("data-testid=shared-empty")
            with ui.list().props("dense").classes("w-full"):
                for shared in files:
                    with ui.item().props("data-testid=shared-file"):
                        with ui.item_section():
                            ui.item_label(shared.name).classes("ellipsis")
                            ui.item_label(size(shared.size)).props("caption")
                        with ui.item_section().props("side"):
                            named(ui.button(_("Add"), on_click=lambda n=shared.name: self.add_shared(n)),
                                  _("Add {name}", name=shared.name)).props("flat dense no-caps data-testid=shared-add")

    async def add_shared(self, name: str) -> None:
        try:
            await self.services.knowledge.add_shared(self.collection.id, name)
        except AppError as exc:
            self.refused(UploadFailed(name=name, code=exc.code.value, message=exc.message))
            return
        await self.render()

    # the collection ---------------------------------------------------------------------------

    async def rename(self) -> None:
        renamed = await rename_collection(self.services, self.collection)
        if renamed is not None:
            self.collection = renamed
            self.title.set_text(renamed.name)
            self.frame.set_title(renamed.name)

    async def delete_collection(self) -> None:
        if await delete_collection(self.services, self.collection):
            ui.navigate.to("/knowledge")


def register(services: Services) -> None:
    @ui.page("/knowledge")
    async def collections_page() -> None:
        await services.ready()
        await CollectionsPage(services).build()

    @ui.page("/knowledge/{collection_id}")
    async def collection_page(collection_id: str) -> None:
        await services.ready()
        try:
            collection = await services.knowledge.collection(collection_id)
        except AppError:
            await not_found(services, gone())
            return
        await CollectionPage(services, collection).build()

    @ui.page("/knowledge/passage/{passage_id}")
    async def passage_page(passage_id: str) -> None:
        """What a citation opens: the passage in its document, with a way back to its collection."""
        await services.ready()
        try:
            found = await services.knowledge.passage_view(int(passage_id)) \
                if re.fullmatch(r"[0-9]{1,18}", passage_id) else None
        except AppError:
            found = None
        if found is None:
            await not_found(services, passage_gone())
            return
        await passage_view(services, *found)
