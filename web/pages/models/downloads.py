"""Downloads in progress at the top of the Models page: a card each, with its bar, bytes, speed and
time left, and pause, resume, cancel or dismiss.

The list is redrawn only when a download starts, ends or changes state; while one runs, only its
bar and status text move.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui

from backend.core.errors import AppError
from backend.core.i18n import _
from backend.models.downloads import DownloadState
from backend.services import Services

from ...components.aria import named
from .status import ProgressLine

__all__ = ["DownloadsPanel"]


class DownloadsPanel:
    def __init__(self, services: Services, *, changed: Callable[[], None]) -> None:
        self.downloads = services.models.downloads
        self.changed = changed
        self.lines: list[ProgressLine] = []
        self.shown: tuple[Any, ...] | None = None
        self.box = ui.column().classes("w-full gap-2")
        self.sync()

    def signature(self) -> tuple[Any, ...]:
        return tuple((d.id, d.state, d.error is None) for d in self.downloads.all())

    def sync(self) -> None:
        signature = self.signature()
        if signature != self.shown:
            self.shown = signature
            self.render()
            return
        for line in self.lines:
            dl = self.downloads.get(line.download_id)
            if dl is not None:
                line.show(dl)

    def render(self) -> None:
        self.box.clear()
        self.lines = []
        downloads = [d for d in self.downloads.all() if d.state != DownloadState.CANCELLED]
        if not downloads:
            return
        with self.box:
            ui.label(_("Downloads")).classes("text-subtitle2").props("role=heading aria-level=2")
            for dl in downloads:
                with ui.card().classes("w-full q-pa-sm").props("flat bordered data-testid=download-row"):
                    with ui.row().classes("w-full items-center no-wrap gap-2"):
                        ui.label(dl.name).classes("text-body2 ellipsis col").style("min-width:0")
                        self.buttons(dl.id, dl.state)
                    failed = dl.state == DownloadState.FAILED
                    color = "negative" if failed else "positive" if dl.state == DownloadState.DONE else "primary"
                    self.lines.append(ProgressLine.build(
                        dl, bar_props="rounded size=8px data-testid=download-progress", color=color,
                        label_classes="text-caption" + (" text-negative" if failed else ""),
                        label_props="data-testid=download-status"))

    def buttons(self, download_id: str, state: str) -> None:
        if state in (DownloadState.RUNNING, DownloadState.QUEUED):
            named(ui.button(icon="pause", on_click=lambda: self.act("pause", download_id)), _("Pause")) \
                .props("flat round dense data-testid=download-pause").tooltip(_("Pause"))
        if state in (DownloadState.PAUSED, DownloadState.FAILED):
            named(ui.button(icon="play_arrow", on_click=lambda: self.act("resume", download_id)), _("Resume")) \
                .props("flat round dense data-testid=download-resume").tooltip(_("Resume"))
        if state in (DownloadState.RUNNING, DownloadState.QUEUED, DownloadState.PAUSED, DownloadState.FAILED):
            named(ui.button(icon="close", on_click=lambda: self.act("cancel", download_id)), _("Cancel the download")) \
                .props("flat round dense data-testid=download-cancel").tooltip(_("Cancel the download"))
        else:
            named(ui.button(icon="done", on_click=lambda: self.act("forget", download_id)), _("Dismiss")) \
                .props("flat round dense data-testid=download-dismiss").tooltip(_("Dismiss"))

    async def act(self, action: str, download_id: str) -> None:
        downloads = self.downloads
        try:
            await {"pause": downloads.pause, "resume": downloads.resume, "cancel": downloads.cancel,
                   "forget": downloads.forget}[action](download_id)
        except AppError as exc:
            ui.notify(exc.message, type="negative")
        self.changed()

    def first_row(self) -> ui.element | None:
        """The first download's card (to scroll to after a download starts far down the page)."""
        for child in self.box.default_slot.children:
            if isinstance(child, ui.card):
                return child
        return None
