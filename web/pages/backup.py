"""The Backup page (the owner's only): back everything up into one file the browser downloads, or
restore such a file in place of everything on this device.

Backing up is a server task (`storage/backup_folder.py`): the server writes the file into the
data folder with progress this page follows, then the browser downloads it; the newest one is
kept to download again. Restoring sends the file as the raw body to `POST /api/restore`, with
upload progress, after the person has confirmed that the current data will be replaced; the page
then opens again on the restored data.
"""

from __future__ import annotations

from nicegui import app, ui

from backend.core.errors import AppError
from backend.core.i18n import _, format_percent, ngettext
from backend.services import Services
from backend.storage.backup_folder import BackupRun

from ..components.aria import named
from ..components.dialogs import confirm
from ..components.raw_upload import RawUpload, Uploaded, UploadFailed
from ..formats import size
from ..frame import frame

__all__ = ["register"]


class BackupPage:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.backups = services.backups
        self.asked: BackupRun | None = None
        """The backup this page started: its file is downloaded when it is done."""
        self.shown: tuple[object, ...] = ()

    async def build(self, restored: dict[str, int] | None) -> None:
        async with frame(self.services, current=None, title=_("Backup")):
            if restored is not None:
                ui.label(_restored_text(restored)).classes("text-positive text-body1") \
                    .props("data-testid=restore-done")
            with ui.card().classes("w-full").props("flat bordered"):
                self.backup_card()
            with ui.card().classes("w-full").props("flat bordered"):
                self.restore_card()
            ui.timer(0.5, self.tick)

    # backing up ---------------------------------------------------------------------------

    def backup_card(self) -> None:
        ui.label(_("Back up")).classes("text-h6").props("role=heading aria-level=2")
        ui.label(_("One file with every conversation, picture, recording, document and setting on this device. "
                   "Keep it somewhere else: restoring it brings everything back, here or on another device.")) \
            .classes("text-body2")
        models = [m for m in self.services.models.installed() if m.source != "bundled"]
        label = (ngettext("Include models ({n}, {size})", "Include models ({n}, {size})", len(models),
                          size=size(sum(m.size_bytes for m in models)))
                 if models else _("Include models (none added)"))
        self.include_models = ui.switch(label, value=False).props("data-testid=backup-models")
        self.include_models.set_enabled(bool(models))
        ui.label(_("The models that come with gridless are never included; it has them on every device.")) \
            .classes("text-caption text-grey-7")
        ui.button(_("Back up now"), icon="save_alt", on_click=self.start) \
            .props("unelevated no-caps data-testid=backup-start")
        self.progress_box = ui.column().classes("w-full gap-1")
        self.render_progress()

    def start(self) -> None:
        try:
            self.asked = self.backups.start(bool(self.include_models.value))
        except AppError as exc:  # a restore is being put in place
            ui.notify(exc.message, type="warning")
            return
        self.render_progress()

    def _key(self) -> tuple[object, ...]:
        run = self.backups.current
        return (id(run), run and run.finished)

    def tick(self) -> None:
        """Redraw when a backup starts or ends; while one is written only its bar and figures move."""
        run = self.backups.current
        if self._key() != self.shown:
            self.render_progress()
            if run is not None and run is self.asked and run.finished:
                self.asked = None
                if run.file is not None:
                    ui.download.from_url(_file_url(run.file.name))
        elif run is not None and not run.finished:
            self.bar.set_value(round(run.fraction, 3))
            self.figures.set_text(_progress_text(run))

    def render_progress(self) -> None:
        self.shown = self._key()
        self.progress_box.clear()
        run = self.backups.current
        with self.progress_box:
            if run is not None and not run.finished:
                self.bar = named(ui.linear_progress(value=round(run.fraction, 3), show_value=False),
                                 _("Progress of the backup")).props("data-testid=backup-progress")
                self.figures = ui.label(_progress_text(run)).classes("text-caption")
                ui.button(_("Stop"), on_click=run.stop.set).props("flat dense no-caps")
                return
            if run is not None and run.error:
                ui.label(run.error).classes("text-negative").props("data-testid=backup-error")
            latest = self.backups.latest()
            if latest is not None:
                stat = latest.stat()
                ui.label(_("Latest backup: {name}, {size}. Only the newest one is kept on this device.",
                           name=latest.name, size=size(stat.st_size))) \
                    .classes("text-caption").props("data-testid=backup-latest")
                ui.button(_("Download"), icon="download",
                          on_click=lambda: ui.download.from_url(_file_url(latest.name))) \
                    .props("flat dense no-caps data-testid=backup-download")

    # restoring ----------------------------------------------------------------------------

    def restore_card(self) -> None:
        ui.label(_("Restore from a file")).classes("text-h6").props("role=heading aria-level=2")
        ui.label(_("Everything on this device (conversations, pictures, recordings, settings) is replaced by what "
                   "the backup holds. Models on this device stay.")).classes("text-body2")
        self.upload = RawUpload(app.url_path_for("restore_backup"), accept=".tar,application/x-tar", auto=False,
                                visible_input=True, show_progress=True, input_testid="restore-file",
                                on_started=self.sending, on_uploaded=self.restored, on_failed=self.refused)
        self.restore_status = ui.label("").classes("text-body2").props("role=status data-testid=restore-status")
        ui.button(_("Restore"), icon="restore", on_click=self.restore) \
            .props("unelevated no-caps color=negative data-testid=restore-start")

    async def restore(self) -> None:
        if await confirm(_("Replace everything with this backup?"),
                         _("The conversations, pictures, recordings and settings on this device are replaced by the "
                           "backup's. What is here now and not in the backup is lost."), _("Restore"), danger=True):
            self.upload.send()

    def sending(self, name: str) -> None:
        self.restore_status.classes(remove="text-negative")
        self.restore_status.set_text(_("Sending {name} and checking it… Nothing changes until it is all checked.",
                                       name=name))

    def restored(self, upload: Uploaded) -> None:
        counts = upload.data.get("restored", {})
        query = "&".join(f"{k}={int(counts.get(k, 0))}" for k in ("conversations", "messages", "media_files"))
        ui.navigate.to(f"/backup?restored=1&{query}")

    def refused(self, failure: UploadFailed) -> None:
        self.restore_status.classes(add="text-negative")
        self.restore_status.set_text(failure.message)


def _progress_text(run: BackupRun) -> str:
    return _("Writing the backup… {percent} ({done} of {total})", percent=format_percent(round(run.fraction, 2)),
             done=size(run.done), total=size(run.total))


def _file_url(name: str) -> str:
    return app.url_path_for("backup_file", name=name)


def _restored_text(counts: dict[str, int]) -> str:
    conversations, messages, media = counts["conversations"], counts["messages"], counts["media_files"]
    return _("The backup was restored: {conversations}, {messages}, {media}.",
             conversations=ngettext("{n} conversation", "{n} conversations", conversations) if conversations
             else _("no conversations"),
             messages=ngettext("{n} message", "{n} messages", messages) if messages else _("no messages"),
             media=ngettext("{n} media file", "{n} media files", media) if media else _("no media files"))


def register(services: Services) -> None:
    @ui.page("/backup")
    async def backup_page(restored: int = 0, conversations: int = 0, messages: int = 0, media_files: int = 0) -> None:
        await services.ready()
        counts = {"conversations": conversations, "messages": messages, "media_files": media_files}
        await BackupPage(services).build(counts if restored else None)
