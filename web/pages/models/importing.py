"""Import a model file for one job: from this device (the browser sends it as the raw body to the
model upload route, with a progress bar), or from a path on the server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nicegui import app, ui

from backend.core.errors import AppError
from backend.core.i18n import _
from backend.services import Services

from ...components.aria import named
from ...components.raw_upload import RawUpload, Uploaded, UploadFailed

__all__ = ["ImportSection"]


class ImportSection:
    def __init__(self, services: Services, job: str, *, changed: Callable[[], None]) -> None:
        self.manager = services.models
        self.job = job
        self.changed = changed
        with ui.expansion(_("Import a model file"), icon="upload_file").classes("w-full") \
                .props(f"dense data-testid=import-{job}"):
            if job != "vision":  # a vision model needs its projector too: from the hub or the server's disk
                ui.label(_("From this device:")).classes("text-caption")
                self.upload = RawUpload(app.url_path_for("upload_model"), method="PUT",
                                        accept=".gguf,.safetensors" if job == "images" else ".gguf",
                                        name_param="filename", params={"job": job}, auto=False, visible_input=True,
                                        show_progress=True, input_testid=f"import-file-{job}",
                                        on_uploaded=self.uploaded, on_failed=self.refused)
                self.status = ui.label("").classes("text-caption text-negative")
                ui.button(_("Upload"), icon="upload", on_click=self.send) \
                    .props(f"unelevated dense no-caps data-testid=upload-{job}")
            ui.label(_("Or a file already on the server:")).classes("text-caption q-mt-sm")
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                path_input = named(ui.input(placeholder="/path/to/model.gguf"),
                                   _("Path of a model file on the server")).props("dense outlined").classes("col")
                ui.button(_("Import"), on_click=lambda: self.import_path(path_input.value)) \
                    .props("unelevated dense no-caps")

    def send(self) -> None:
        self.status.set_text(_("Uploading…"))
        self.upload.send()

    def uploaded(self, upload: Uploaded) -> None:
        self.status.set_text("")
        ui.notify(_("Imported {name}", name=upload.data.get("name", upload.name)), type="positive")
        self.changed()

    def refused(self, failure: UploadFailed) -> None:
        self.status.set_text(failure.message)
        ui.notify(failure.message, type="negative", multi_line=True)

    async def import_path(self, value: str | None) -> None:
        if not value or not value.strip():
            ui.notify(_("Enter the path of a model file on the server"), type="warning")
            return
        try:
            record = await self.manager.import_file(Path(value.strip()), self.job)
        except AppError as exc:
            ui.notify(exc.message, type="negative", multi_line=True)
            return
        ui.notify(_("Imported {name}", name=record.name), type="positive")
        self.changed()
