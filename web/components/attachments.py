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
from backend.core.i18n import _, format_number, ngettext
from backend.models.registry import ModelRecord
from backend.security.devices import Principal
from backend.services import Services
from backend.storage.attachments import Attachment
from backend.storage.conversations import Conversation

from .aria import named
from .camera import Camera
from .knowledge_links import choose_collection
from .raw_upload import RawUpload, Uploaded, UploadFailed

__all__ = ["ComposerAttachments", "message_attachments", "vision_offer"]

FILE_TYPES = ("image/*,application/pdf,text/*,.pdf,.csv,.tsv,.txt,.md,.markdown,.json,.jsonl,.py,.js,.ts,.tsx,"
              ".jsx,.java,.kt,.swift,.c,.h,.cpp,.hpp,.cs,.go,.rs,.rb,.php,.sh,.sql,.yaml,.yml,.toml,.ini,.xml,"
              ".html,.css,.log")



def _describe(attachment: Attachment) -> str:
    info = attachment.info
    if attachment.kind == "image":
        return f"{attachment.width} × {attachment.height}"
    if info.get("kind") == "pdf":
        return ngettext("PDF · {n} page", "PDF · {n} pages", int(info.get("pages") or 0))
    if info.get("kind") == "table":
        rows, columns = int(info.get("rows") or 0), len(info.get("columns") or [])
        return _("Table · {rows} × {columns}", rows=ngettext("{n} row", "{n} rows", rows),
                 columns=ngettext("{n} column", "{n} columns", columns))
    if info.get("kind") == "code":
        return str(info["language"]).capitalize() if info.get("language") else _("Code")
    return {"markdown": "Markdown", "json": "JSON"}.get(str(info.get("kind")), _("Text"))


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
        full = ui.image(f"/api/attachments/{attachment.id}/file").props("fit=contain").style(
            "width: min(92vw, 1000px); max-height: 85vh").props("data-testid=photo-full")
        full.props["alt"] = attachment.name
        with ui.row().classes("w-full justify-end q-pa-xs"):
            ui.button(_("Close"), on_click=dialog.close).props("flat")
    dialog.open()


def message_attachments(attachments: list[Attachment]) -> None:
    """A sent message's photos (thumbnails that open full size) and document cards."""
    photos = [a for a in attachments if a.kind == "image"]
    if photos:
        with ui.element("div").classes("gl-msg-photos"):
            for photo in photos:
                # opens full size: a button for the keyboard and screen readers too, named by its alt text
                thumb = ui.image(f"/api/attachments/{photo.id}/thumb").classes("gl-msg-photo") \
                    .props("role=button tabindex=0 data-testid=message-photo") \
                    .on("click", lambda p=photo: _open_photo(p)).on("keydown.enter", lambda p=photo: _open_photo(p))
                thumb.props["alt"] = photo.name
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
    vision = services.conversations.vision_models()
    with ui.column().classes("w-full gap-1 q-pa-sm rounded-borders bg-amber-1").props("data-testid=vision-offer"):
        ui.label(_("{model} cannot see photos.", model=model.name) if model else
                 _("The model in use cannot see photos.")).classes("text-sm")
        if vision:
            with ui.row().classes("gap-2 items-center"):
                ui.label(_("Answer this conversation with:")).classes("text-sm text-grey-8")
                for record in vision:
                    ui.button(record.name, icon="visibility", on_click=lambda r=record: choose(r)) \
                        .props("dense unelevated no-caps data-testid=use-vision-model")
            return
        rows = [r for r in services.models.catalog_rows("vision") if r.fit.fits]
        if not principal.is_owner:
            ui.label(_("No vision model is installed; the phone's owner can add one on the Models page.")) \
                .classes("text-sm text-grey-8")
        elif rows:
            best = min(rows, key=lambda r: r.entry.size_bytes)
            with ui.row().classes("gap-2 items-center"):
                ui.label(_("No vision model is installed. {model} ({size} MB) can read photos on this phone.",
                           model=best.entry.name, size=format_number(round(best.entry.size_bytes / 1e6)))) \
                    .classes("text-sm text-grey-8")
                ui.button(_("Get it"), icon="download", on_click=lambda: ui.navigate.to("/models?tab=vision")) \
                    .props("dense unelevated no-caps data-testid=get-vision-model")
        else:
            ui.label(_("No vision model is installed, and none in the catalog fits this device's memory.")) \
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
            named(ui.button(icon="photo_camera").props("flat round dense data-testid=camera-button"), _("Take a photo"))
        with RawUpload(url, accept=FILE_TYPES, multiple=True, paste=True, drop=True, input_testid="attach-input",
                       on_started=self._started, on_uploaded=self._attached, on_failed=self._failed):
            named(ui.button(icon="attach_file").props("flat round dense data-testid=attach-button"),
                  _("Attach a photo or file"))

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
            ui.notify(ngettext("At most {n} file can go with one message.",
                               "At most {n} files can go with one message.", MAX_ATTACHMENTS), type="warning")
        elif found:
            self.pending.append(found[0])
        self.render()

    def _failed(self, failure: UploadFailed) -> None:
        self._done_uploading(failure.name)
        ui.notify(_("{name}: {problem}", name=failure.name, problem=failure.message) if failure.name else
                  _("The file: {problem}", problem=failure.message), type="warning", multi_line=True)
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
        ui.notify(_("«{name}» was added to «{collection}» and is being indexed.", name=attachment.name,
                    collection=collection.name), timeout=2500)

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
                        thumb = ui.image(f"/api/attachments/{a.id}/thumb").classes("gl-thumb")
                        thumb.props["alt"] = a.name
                    else:
                        with ui.element("div").classes("gl-doc-chip"):
                            ui.icon(_icon(a), size="22px").classes("text-grey-7")
                            with ui.column().classes("gap-0").style("min-width: 0"):
                                ui.label(a.name).classes("gl-doc-name")
                                ui.label(_describe(a)).classes("text-xs text-grey-7")
                            named(ui.button(icon="library_add", on_click=lambda a=a: self.add_to_collection(a))
                                  .props("flat round dense size=sm data-testid=add-to-collection"),
                                  _("Add to a collection")).classes("text-grey-7") \
                                .tooltip(_("Add to a collection"))
                    named(ui.button(icon="close", on_click=lambda a=a: self.remove(a))
                          .props("round dense unelevated size=xs color=grey-8 data-testid=remove-attachment"),
                          _("Remove {name}", name=a.name)).classes("gl-remove")
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

