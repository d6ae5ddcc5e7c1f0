"""Photos and documents in the chat: the composer's tray and the way a sent message shows them.

The camera (`Camera`) and the file chooser with paste and drop (`RawUpload`) send each file from
the browser; this side keeps the list of files waiting to be sent (each checked to belong to
whoever opened the page), shows them, and offers a vision model when a photo meets a model that
cannot see.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable

from nicegui import app, ui

from backend.chat.conversations import MAX_ATTACHMENTS
from backend.core.errors import AppError
from backend.models.registry import ModelRecord
from backend.security.devices import Principal
from backend.services import Services
from backend.storage.attachments import Attachment
from backend.storage.conversations import Conversation

from .camera import Camera
from .knowledge_links import choose_collection
from .raw_upload import RawUpload, Uploaded, UploadFailed

__all__ = ["ComposerAttachments", "message_attachments", "vision_offer"]

FILE_TYPES = ("image/*,application/pdf,text/*,.pdf,.csv,.tsv,.txt,.md,.markdown,.json,.jsonl,.py,.js,.ts,.tsx,"
              ".jsx,.java,.kt,.swift,.c,.h,.cpp,.hpp,.cs,.go,.rs,.rb,.php,.sh,.sql,.yaml,.yml,.toml,.ini,.xml,"
              ".html,.css,.log")


ADDED = "«{name}» was added to «{collection}» and is being indexed."


def _describe(attachment: Attachment) -> str:
    info = attachment.info
    if attachment.kind == "image":
        return f"{attachment.width} × {attachment.height}"
    if info.get("kind") == "pdf":
        pages = info.get("pages") or 0
        return f"PDF · {pages} page{'s' if pages != 1 else ''}"
    if info.get("kind") == "table":
        rows, columns = info.get("rows") or 0, len(info.get("columns") or [])
        return f"Table · {rows:,} row{'s' if rows != 1 else ''} × {columns} column{'s' if columns != 1 else ''}"
    return {"markdown": "Markdown", "json": "JSON", "code": str(info.get("language") or "Code").capitalize()} \
        .get(str(info.get("kind")), "Text")


def _icon(attachment: Attachment) -> str:
    return {"pdf": "picture_as_pdf", "table": "table_chart", "code": "code", "json": "data_object"} \
        .get(str(attachment.info.get("kind")), "description")


def _preview_table(preview: list[list[str]]) -> str:
    """A table's first rows as HTML (escaped: the cells are the file's text)."""
    if not preview:
        return ""
    head, *rows = preview
    cells = "".join(f"<th>{html.escape(c[:60])}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c[:60])}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table data-testid='table-preview'><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _open_photo(attachment: Attachment) -> None:
    with ui.dialog() as dialog, ui.card().classes("q-pa-none"):
        ui.image(f"/api/attachments/{attachment.id}/file").props("fit=contain").style(
            "width: min(92vw, 1000px); max-height: 85vh").props("data-testid=photo-full")
        with ui.row().classes("w-full justify-end q-pa-xs"):
            ui.button("Close", on_click=dialog.close).props("flat")
    dialog.open()


def message_attachments(attachments: list[Attachment]) -> None:
    """A sent message's photos (thumbnails that open full size) and document cards."""
    photos = [a for a in attachments if a.kind == "image"]
    if photos:
        with ui.element("div").classes("gl-msg-photos"):
            for photo in photos:
                ui.image(f"/api/attachments/{photo.id}/thumb").classes("gl-msg-photo") \
                    .props(f"alt='{html.escape(photo.name, quote=True)}' data-testid=message-photo") \
                    .on("click", lambda p=photo: _open_photo(p))
    for doc in (a for a in attachments if a.kind == "document"):
        with ui.column().classes("gl-doc-card gap-0").props("data-testid=message-document"):
            with ui.row().classes("items-center no-wrap gap-2"):
                ui.icon(_icon(doc), size="20px").classes("text-grey-7")
                ui.link(doc.name, f"/api/attachments/{doc.id}/file", new_tab=True).classes("ellipsis") \
                    .props("data-testid=document-name")
                ui.label(_describe(doc)).classes("text-grey-7 text-xs").props("data-testid=document-info")
            if doc.info.get("kind") == "table" and doc.info.get("preview"):
                ui.html(_preview_table(doc.info["preview"]), sanitize=False)
            notice = doc.sent_notice or doc.info.get("notice")
            if notice:
                ui.label(notice).classes("gl-notice").props("data-testid=document-notice")


def vision_offer(services: Services, principal: Principal, conversation: Conversation | None,
                 choose: Callable[[ModelRecord], Awaitable[None]]) -> None:
    """What to do when the conversation's model cannot see a photo: the vision models installed,
    else the catalog's smallest one that fits (the owner can get it on the Models page)."""
    model = services.conversations.model_for(conversation)
    name = model.name if model else "The model in use"
    vision = services.conversations.vision_models()
    with ui.column().classes("w-full gap-1 q-pa-sm rounded-borders bg-amber-1").props("data-testid=vision-offer"):
        ui.label(f"{name} cannot see photos.").classes("text-sm")
        if vision:
            with ui.row().classes("gap-2 items-center"):
                ui.label("Answer this conversation with:").classes("text-sm text-grey-8")
                for record in vision:
                    ui.button(record.name, icon="visibility", on_click=lambda r=record: choose(r)) \
                        .props("dense unelevated no-caps data-testid=use-vision-model")
            return
        rows = [r for r in services.models.catalog_rows("vision") if r.fit.fits]
        if not principal.is_owner:
            ui.label("No vision model is installed; the phone's owner can add one on the Models page.") \
                .classes("text-sm text-grey-8")
        elif rows:
            best = min(rows, key=lambda r: r.entry.size_bytes)
            with ui.row().classes("gap-2 items-center"):
                ui.label(f"No vision model is installed. {best.entry.name} "
                         f"({best.entry.size_bytes / 1e6:,.0f} MB) can read photos on this phone.") \
                    .classes("text-sm text-grey-8")
                ui.button("Get it", icon="download", on_click=lambda: ui.navigate.to("/models?tab=vision")) \
                    .props("dense unelevated no-caps data-testid=get-vision-model")
        else:
            ui.label("No vision model is installed, and none in the catalog fits this device's memory.") \
                .classes("text-sm text-grey-8")


class ComposerAttachments:
    """Files attached to the message being written, until it is sent."""

    def __init__(self, services: Services, principal: Principal,
                 conversation: Callable[[], Conversation | None],
                 choose_model: Callable[[ModelRecord], Awaitable[None]]) -> None:
        self.services = services
        self.principal = principal
        self.conversation = conversation
        self.choose_model = choose_model
        self.pending: list[Attachment] = []
        self.uploading: list[str] = []
        self.offer = ui.column().classes("w-full gap-0")
        self.tray = ui.element("div").classes("gl-tray").props("data-testid=attachment-tray")

    def buttons(self) -> None:
        """The camera and the paperclip; the paperclip's chooser also takes files pasted or dropped on the page."""
        url = app.url_path_for("upload_attachment")
        with Camera(url, on_started=self._started, on_uploaded=self._attached, on_failed=self._failed):
            ui.button(icon="photo_camera").props("flat round dense aria-label='Take a photo' "
                                                 "data-testid=camera-button")
        with RawUpload(url, accept=FILE_TYPES, multiple=True, paste=True, drop=True, input_testid="attach-input",
                       on_started=self._started, on_uploaded=self._attached, on_failed=self._failed):
            ui.button(icon="attach_file").props("flat round dense aria-label='Attach a photo or file' "
                                                "data-testid=attach-button")

    @property
    def ids(self) -> list[str]:
        return [a.id for a in self.pending]

    @property
    def busy(self) -> bool:
        return bool(self.uploading)

    def _started(self, name: str) -> None:
        self.uploading.append(name)
        self.render()

    def _done_uploading(self, name: str) -> None:
        if name in self.uploading:
            self.uploading.remove(name)
        elif self.uploading:
            self.uploading.pop(0)

    async def _attached(self, upload: Uploaded) -> None:
        self._done_uploading(upload.name)
        found = await self.services.attachments.store.pending([str(upload.data.get("id", ""))], self.principal.key)
        if found and len(self.pending) >= MAX_ATTACHMENTS:
            await self.services.attachments.discard(found[0].id, self.principal.key)
            ui.notify(f"At most {MAX_ATTACHMENTS} files can go with one message.", type="warning")
        elif found:
            self.pending.append(found[0])
        self.render()

    def _failed(self, failure: UploadFailed) -> None:
        self._done_uploading(failure.name)
        ui.notify(f"{failure.name or 'The file'}: {failure.message}", type="warning", multi_line=True)
        self.render()

    async def remove(self, attachment: Attachment) -> None:
        self.pending = [a for a in self.pending if a.id != attachment.id]
        await self.services.attachments.discard(attachment.id, self.principal.key)
        self.render()

    async def add_to_collection(self, attachment: Attachment) -> None:
        """Keep a copy of the file in a collection (it stays attached to the message too)."""
        collection = await choose_collection(self.services, attachment.name)
        if collection is None:
            return
        try:
            await self.services.knowledge.add_file(collection.id, self.services.media.path(attachment.path),
                                                   attachment.name)
        except AppError as exc:
            ui.notify(exc.message, type="warning", multi_line=True)
            return
        ui.notify(ADDED.format(name=attachment.name, collection=collection.name), timeout=2500)

    def clear(self) -> None:
        """After sending: the files went with the message."""
        self.pending = []
        self.render()

    def render(self) -> None:
        self.tray.clear()
        with self.tray:
            for a in self.pending:
                with ui.element("div").classes("gl-tray-item").props(f"data-testid=pending-{a.kind}"):
                    if a.kind == "image":
                        ui.image(f"/api/attachments/{a.id}/thumb").classes("gl-thumb") \
                            .props(f"alt='{html.escape(a.name, quote=True)}'")
                    else:
                        with ui.element("div").classes("gl-doc-chip"):
                            ui.icon(_icon(a), size="22px").classes("text-grey-7")
                            with ui.column().classes("gap-0").style("min-width: 0"):
                                ui.label(a.name).classes("gl-doc-name")
                                ui.label(_describe(a)).classes("text-xs text-grey-7")
                            ui.button(icon="library_add", on_click=lambda a=a: self.add_to_collection(a)) \
                                .props("flat round dense size=sm aria-label='Add to a collection' "
                                       "data-testid=add-to-collection").classes("text-grey-7") \
                                .tooltip("Add to a collection")
                    ui.button(icon="close", on_click=lambda a=a: self.remove(a)) \
                        .props("round dense unelevated size=xs color=grey-8 aria-label=Remove "
                               "data-testid=remove-attachment").classes("gl-remove")
            for name in self.uploading:
                with ui.element("div").classes("gl-doc-chip").props("data-testid=attachment-uploading"):
                    ui.spinner(size="20px")
                    ui.label(name).classes("gl-doc-name")
        self.render_offer()

    def render_offer(self) -> None:
        self.offer.clear()
        if not any(a.kind == "image" for a in self.pending):
            return
        model = self.services.conversations.model_for(self.conversation())
        if model is not None and model.projector is not None:
            return
        with self.offer:
            vision_offer(self.services, self.principal, self.conversation(), self.choose_model)

