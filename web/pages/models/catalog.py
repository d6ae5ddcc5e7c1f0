"""The recommended models for one job, from the curated catalog: what each can do and needs, whether
it fits this device, and Download (with the download's progress on the card where it was pressed).

Redrawn only when an entry is installed or its download changes state; a running download moves
its bar in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui

from backend.core.errors import AppError
from backend.core.i18n import _
from backend.models.catalog import CatalogEntry
from backend.models.downloads import DownloadState
from backend.models.manager import CatalogRow
from backend.services import Services

from ...components.dialogs import confirm
from ...formats import size
from .features import feature_badges
from .status import ProgressLine

__all__ = ["CatalogList"]


class CatalogList:
    def __init__(self, services: Services, job: str, *, changed: Callable[[], None]) -> None:
        self.manager = services.models
        self.job = job
        self.changed = changed
        self.lines: list[ProgressLine] = []
        self.shown: tuple[Any, ...] | None = None
        ui.label(_("Recommended")).classes("text-subtitle2 q-mt-md").props("role=heading aria-level=2")
        self.box = ui.column().classes("w-full gap-3")
        self.sync()

    def sync(self) -> None:
        rows = self.manager.catalog_rows(self.job)
        signature = tuple((r.entry.id, r.installed is not None, r.download.state if r.download else None)
                          for r in rows)
        if signature != self.shown:
            self.shown = signature
            self.render(rows)
            return
        for line in self.lines:
            dl = self.manager.downloads.get(line.download_id)
            if dl is not None:
                line.show(dl)

    def render(self, rows: list[CatalogRow]) -> None:
        self.box.clear()
        self.lines = []
        with self.box:
            for row in rows:
                self.card(row)

    def card(self, row: CatalogRow) -> None:
        entry = row.entry
        with ui.card().classes("w-full q-pa-sm").props(f"flat bordered data-testid=catalog-{entry.id}"):
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                with ui.column().classes("col gap-0").style("min-width:0"):
                    ui.label(entry.name).classes("text-body1")
                    ui.label(entry.description).classes("text-caption text-grey-8")
                    feature_badges(entry.features)
                if row.installed is not None:
                    ui.badge(_("installed"), color="grey-6")
                elif row.download is not None:
                    ui.badge(download_state(row.download.state), color="primary")
                else:
                    ui.button(_("Download"), icon="download",
                              on_click=lambda e=entry, f=row.fit.fits: self.pull(e, f)) \
                        .props(f"unelevated dense no-caps data-testid=download-{entry.id}") \
                        .props("" if row.fit.fits else "outline color=warning")
            facts = [_("{size} download", size=size(entry.size_bytes)),
                     _("needs about {size} RAM", size=size(row.fit.estimate)),
                     entry.quantization, _("multilingual") if len(entry.languages) > 1 else None, entry.license,
                     entry.repo]
            ui.label(" · ".join(f for f in facts if f)).classes("text-caption text-grey-7")
            if not row.fit.fits:
                ui.label(_("Will not fit this device: {reason}", reason=row.fit.reason)) \
                    .classes("text-caption text-warning").props("data-testid=does-not-fit")
            if row.download is not None:  # the progress is also shown here, where the button was pressed
                self.lines.append(ProgressLine.build(row.download, bar_props="rounded size=6px "
                                                                             "data-testid=catalog-progress"))

    async def pull(self, entry: CatalogEntry, fits: bool) -> None:
        if not fits and not await confirm(_("{name} will probably not fit this device's memory. Download it anyway?",
                                            name=entry.name), action=_("Download")):
            return
        try:
            await self.manager.pull_catalog(entry.id, override=not fits)
        except AppError as exc:
            ui.notify(exc.message, type="negative", multi_line=True)
        self.changed()


def download_state(state: str) -> str:
    """A download's state on a catalog card's badge."""
    words: dict[str, str] = {DownloadState.QUEUED: _("queued"), DownloadState.RUNNING: _("downloading"),
                             DownloadState.PAUSED: _("paused"), DownloadState.DONE: _("done"),
                             DownloadState.FAILED: _("download failed"), DownloadState.CANCELLED: _("cancelled")}
    return words.get(state, state)
