"""Search Hugging Face for GGUF repositories, list one's files by quantization, and download one
(with its projector, for a vision model)."""

from __future__ import annotations

from collections.abc import Callable

from nicegui import ui

from backend.core.errors import AppError
from backend.core.i18n import _, ngettext
from backend.models.hub import RemoteFile
from backend.runtime.residency import MemoryRefused
from backend.services import Services

from ...components.aria import named
from ...components.dialogs import confirm
from ...formats import size

__all__ = ["HubSearch"]


class HubSearch:
    """`started` is told when a download has been added (the page shows it and scrolls to it)."""

    def __init__(self, services: Services, job: str, *, started: Callable[[], None]) -> None:
        self.manager = services.models
        self.job = job
        self.started = started
        with ui.expansion(_("Search Hugging Face"), icon="travel_explore").classes("w-full q-mt-md") \
                .props(f"dense data-testid=search-{job}"):
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                self.query = named(ui.input(placeholder=_("e.g. qwen3")), _("Search Hugging Face")) \
                    .props("dense outlined clearable").classes("col")
                search_button = ui.button(_("Search")).props("unelevated dense no-caps")
            self.results = ui.column().classes("w-full gap-1")
        self.query.on("keydown.enter", self.search)
        search_button.on_click(self.search)

    async def search(self) -> None:
        self.results.clear()
        with self.results:
            spinner = named(ui.spinner(), _("Searching…")).props("role=status")
        try:
            found = await self.manager.search(self.query.value or "")
        except AppError as exc:
            self.results.clear()
            with self.results:
                ui.label(exc.message).classes("text-negative text-caption")
            return
        spinner.delete()
        with self.results:
            if not found:
                ui.label(_("Nothing found")).classes("text-caption text-grey-7")
            for item in found:
                with ui.item(on_click=lambda r=item["repo"]: self.show_repo(r)) \
                        .props("clickable dense data-testid=search-result").classes("w-full"):
                    with ui.item_section():
                        ui.item_label(item["repo"])
                        ui.item_label(ngettext("{n} download", "{n} downloads", int(item["downloads"]))) \
                            .props("caption")

    async def show_repo(self, repo: str) -> None:
        try:
            listing = await self.manager.listing(repo)
        except AppError as exc:
            ui.notify(exc.message, type="negative")
            return
        with named(ui.dialog(), repo) as dialog, ui.card().classes("w-full").style("max-width: 560px"):
            ui.label(repo).classes("text-h6 ellipsis")
            groups = listing.gguf_groups()
            projectors = groups.pop("mmproj", [])
            if projectors:
                ui.label(_("A vision model: its projector (mmproj) is downloaded with it.")) \
                    .classes("text-caption text-grey-8")
            if not groups:
                ui.label(_("This repository has no GGUF model files.")).classes("text-grey-7")
            for quant in sorted(groups):
                ui.label(quant).classes("text-subtitle2 q-mt-sm")
                for remote in groups[quant]:
                    with ui.row().classes("w-full items-center no-wrap gap-2"):
                        ui.label(remote.path).classes("text-body2 ellipsis col").style("min-width:0")
                        ui.label(size(remote.size)).classes("text-caption")
                        named(ui.button(icon="download", on_click=lambda r=remote: self.pull(repo, r, dialog)),
                              _("Download {file}", file=remote.path)) \
                            .props("flat round dense data-testid=repo-file-download").tooltip(_("Download"))
            if listing.rejected:
                ui.label(ngettext("{n} file with an unsafe name was ignored.",
                                  "{n} files with unsafe names were ignored.", len(listing.rejected))) \
                    .classes("text-caption text-warning")
            with ui.row().classes("w-full justify-end"):
                ui.button(_("Close"), on_click=dialog.close).props("flat")
        dialog.open()

    async def pull(self, repo: str, remote: RemoteFile, dialog: ui.dialog) -> None:
        job = None if self.job == "vision" else self.job  # the manager decides: vision when a projector comes with it
        try:
            await self.manager.pull(repo, remote.path, job=job)
        except MemoryRefused as exc:
            if not await confirm(_("{problem} Download anyway?", problem=exc.message), action=_("Download")):
                return
            try:
                await self.manager.pull(repo, remote.path, job=job, override=True)
            except AppError as again:
                ui.notify(again.message, type="negative", multi_line=True)
                return
        except AppError as exc:
            ui.notify(exc.message, type="negative", multi_line=True)
            return
        dialog.close()
        self.started()
