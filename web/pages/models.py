"""The Models page: installed models per job, the recommended catalog, hub search,
downloads with live progress, import, delete, and what is loaded in memory now."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nicegui import ui

from backend.api.model_upload import UPLOAD_PATH
from backend.core.errors import AppError
from backend.core.units import format_bytes
from backend.models.catalog import CatalogEntry
from backend.models.downloads import Download
from backend.models.hub import RemoteFile
from backend.models.manager import CatalogRow
from backend.models.registry import ModelRecord
from backend.runtime.residency import MemoryRefused
from backend.services import Services

from ..components.dialogs import confirm
from ..frame import frame

__all__ = ["register"]

JOB_TABS = (("chat", "Chat", "chat"), ("vision", "Vision", "photo_camera"), ("images", "Images", "image"),
            ("speech", "Speech", "mic"), ("voice", "Voice", "record_voice_over"))
IDLE_CHOICES = {120: "2 minutes", 300: "5 minutes", 600: "10 minutes", 1800: "30 minutes", 0: "never"}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def download_status(dl: Download) -> str:
    done = f"{format_bytes(dl.bytes_done)} of {format_bytes(dl.bytes_total)}"
    if dl.state == "running":
        if dl.error:
            return f"{done} · {dl.error}"
        if dl.stalled:
            return f"{done} · waiting for the network…"
        speed = f" · {format_bytes(dl.speed)}/s" if dl.speed else ""
        left = f" · {_duration(dl.eta_s)} left" if dl.eta_s is not None else ""
        return done + speed + left
    if dl.state == "queued":
        return f"{done} · waiting"
    if dl.state == "paused":
        return f"{done} · paused"
    if dl.state == "done":
        return f"{format_bytes(dl.bytes_total)} · installed"
    if dl.state == "cancelled":
        return "cancelled"
    return dl.error or "failed"


class ModelsPage:
    def __init__(self, services: Services, tab: str = "chat") -> None:
        self.services = services
        self.tab = tab if tab in {job for job, _, _ in JOB_TABS} else "chat"
        self.manager = services.models
        self.signature: tuple[Any, ...] = ()
        self.bars: dict[str, list[tuple[ui.linear_progress, ui.label]]] = {}

    async def build(self) -> None:
        await self.manager.registry.load()  # the command line may have changed it
        self.client = ui.context.client
        async with frame(self.services, current=None, title="Models") as page:
            self.page = page
            self.memory_panel = ui.column().classes("w-full gap-1")
            self.downloads_box = ui.column().classes("w-full gap-2")
            with ui.tabs().classes("w-full").props("dense align=left outside-arrows mobile-arrows") as tabs:
                for job, label, icon in JOB_TABS:
                    ui.tab(job, label, icon).props(f"no-caps data-testid=tab-{job}")
            with ui.tab_panels(tabs, value=self.tab).classes("w-full"):
                self.panels: dict[str, ui.column] = {}
                for job, _, _ in JOB_TABS:
                    with ui.tab_panel(job).classes("q-px-none"):
                        self.panels[job] = ui.column().classes("w-full gap-3")
        self.build_memory()
        self.render_all()
        self.ticks = 0
        ui.timer(0.5, self.tick)

    # ----- rendering ---------------------------------------------------------------------

    def render_all(self) -> None:
        self.update_memory(disk=True)
        self.render_downloads()
        for job in self.panels:
            self.render_job(job)
        self.signature = self.current_signature()

    def current_signature(self) -> tuple[Any, ...]:
        downloads = tuple((d.id, d.state, d.error is None) for d in self.manager.downloads.all())
        models = tuple((r.id, r.memory_override, r.context_choice) for r in self.manager.installed())
        active = tuple((job, getattr(self.manager.active(job), "id", None)) for job, _, _ in JOB_TABS)
        loaded = tuple((r.name, r.model) for r in self.services.residency.residents)
        return downloads, models, active, loaded

    async def tick(self) -> None:
        if self.current_signature() != self.signature:
            self.render_all()
            return
        for dl in self.manager.downloads.all():
            for bar, label in self.bars.get(dl.id, []):
                bar.set_value(round(dl.fraction, 4))
                label.set_text(download_status(dl))
        self.ticks += 1
        self.update_memory(disk=self.ticks % 4 == 0)

    def build_memory(self) -> None:
        """The memory card, built once; its figures are updated in place by `update_memory`."""
        residency = self.services.residency
        with self.memory_panel, ui.card().classes("w-full q-pa-sm").props("flat bordered"):
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                ui.icon("memory").classes("text-primary")
                self.budget_label = ui.label().classes("text-body2 col")
            self.loaded_box = ui.column().classes("w-full gap-1").props("data-testid=loaded-now")
            with ui.row().classes("w-full items-center gap-2"):
                self.disk_label = ui.label().classes("text-caption")
                ui.space()
                ui.select(IDLE_CHOICES, value=int(residency.idle_unload_s) if int(residency.idle_unload_s)
                          in IDLE_CHOICES else 600, label="Unload when idle for",
                          on_change=lambda e: self.set_idle(e.value)) \
                    .props("dense outlined options-dense").classes("w-40")
        self.loaded_shown: list[tuple[str, str, bool]] | None = None

    def update_memory(self, *, disk: bool) -> None:
        """Budget and what is loaded; with `disk`, the disk use too (it walks the partial files)."""
        budget = self.services.residency.budget
        self.budget_label.set_text(f"Memory budget {format_bytes(budget.limit)} of {format_bytes(budget.physical)} "
                                   f"RAM · {format_bytes(budget.available())} free now")
        lines = []
        for item in self.services.residency.snapshot():
            record = self.manager.get(item["model"])
            name = record.name if record else item["model"]
            kind = "heavy" if item["heavy"] else "sidecar"
            used = format_bytes(item["rss"]) if item["rss"] else "starting"
            state = "working" if item["busy"] else f"idle {_duration(item['idle_s'])}"
            lines.append((item["name"], f"{item['name']}: {name} — {used} in use (estimate "
                                        f"{format_bytes(item['estimate'])}), {kind}, {state}", item["busy"]))
        if lines != self.loaded_shown:
            self.loaded_shown = lines
            self.loaded_box.clear()
            with self.loaded_box:
                if not lines:
                    ui.label("Nothing is loaded. A model loads when it is first used.") \
                        .classes("text-caption text-grey-7")
                for slot, text, busy in lines:
                    with ui.row().classes("w-full items-center no-wrap gap-2"):
                        ui.label(text).classes("text-caption col")
                        ui.button("Unload", on_click=lambda n=slot: self.unload(n)) \
                            .props("flat dense no-caps size=sm").set_enabled(not busy)
        if disk:
            self.disk_label.set_text(f"Models use {format_bytes(self.manager.disk_used())} of disk")

    def render_downloads(self) -> None:
        self.downloads_box.clear()
        self.bars.clear()
        downloads = [d for d in self.manager.downloads.all() if d.state != "cancelled"]
        if not downloads:
            return
        with self.downloads_box:
            ui.label("Downloads").classes("text-subtitle2")
            for dl in downloads:
                with ui.card().classes("w-full q-pa-sm").props("flat bordered data-testid=download-row"):
                    with ui.row().classes("w-full items-center no-wrap gap-2"):
                        ui.label(dl.name).classes("text-body2 ellipsis col").style("min-width:0")
                        if dl.state in ("running", "queued"):
                            ui.button(icon="pause", on_click=lambda d=dl.id: self.download_action("pause", d)) \
                                .props("flat round dense aria-label=Pause data-testid=download-pause")
                        if dl.state in ("paused", "failed"):
                            ui.button(icon="play_arrow", on_click=lambda d=dl.id: self.download_action("resume", d)) \
                                .props("flat round dense aria-label=Resume data-testid=download-resume")
                        if dl.state in ("running", "queued", "paused", "failed"):
                            ui.button(icon="close", on_click=lambda d=dl.id: self.download_action("cancel", d)) \
                                .props("flat round dense aria-label=Cancel data-testid=download-cancel")
                        else:
                            ui.button(icon="done", on_click=lambda d=dl.id: self.download_action("forget", d)) \
                                .props("flat round dense aria-label=Dismiss data-testid=download-dismiss")
                    color = "negative" if dl.state == "failed" else "positive" if dl.state == "done" else "primary"
                    bar = ui.linear_progress(value=round(dl.fraction, 4), show_value=False, color=color) \
                        .props("rounded size=8px data-testid=download-progress")
                    label = ui.label(download_status(dl)).classes(
                        "text-caption" + (" text-negative" if dl.state == "failed" else "")) \
                        .props("data-testid=download-status")
                    self.bars.setdefault(dl.id, []).append((bar, label))

    def render_job(self, job: str) -> None:
        panel = self.panels[job]
        panel.clear()
        installed = self.manager.installed(job)
        active = self.manager.active(job)
        with panel:
            ui.label("Installed").classes("text-subtitle2")
            if not installed:
                ui.label("None yet: download one below.").classes("text-grey-7 text-body2")
            for record in installed:
                self.installed_card(record, active is not None and record.id == active.id)
            if job in ("chat", "vision", "images"):
                self.import_section(job)
            ui.label("Recommended").classes("text-subtitle2 q-mt-md")
            for row in self.manager.catalog_rows(job):
                self.catalog_card(row)
            if job in ("chat", "vision"):
                self.search_section(job)

    def installed_card(self, record: ModelRecord, is_active: bool) -> None:
        estimate = self.manager.estimate(record)
        budget = self.services.residency.budget.limit
        over = estimate.total > budget
        with ui.card().classes("w-full q-pa-sm").props(f"flat bordered data-testid=model-{record.id}"):
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                ui.label(record.name).classes("text-body1 ellipsis col").style("min-width:0")
                if is_active:
                    ui.badge("active", color="positive").props(f"data-testid=active-{record.job}")
                else:
                    ui.button("Use", on_click=lambda r=record: self.activate(r)) \
                        .props(f"unelevated dense no-caps data-testid=activate-{record.id}")
                if record.deletable:
                    ui.button(icon="delete", on_click=lambda r=record: self.delete(r)) \
                        .props(f"flat round dense aria-label=Delete data-testid=delete-{record.id}")
            facts = [format_bytes(record.size_bytes), record.quantization,
                     f"{record.context_length:,} tokens" if record.context_length else None,
                     record.license, record.repo or {"bundled": "comes with the app", "import": "imported",
                                                     "folder": "models folder"}.get(record.source)]
            ui.label(" · ".join(f for f in facts if f)).classes("text-caption text-grey-8")
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                ui.label(f"Needs {estimate.describe()}").classes(
                    "text-caption col " + ("text-negative" if over else "text-grey-7"))
                if record.job in ("chat", "vision") and record.info.get("layers"):
                    self.context_select(record)
            if over:
                with ui.row().classes("items-center gap-2"):
                    ui.label(self.manager.suggestion(record, budget, here=True) or "") \
                        .classes("text-caption text-negative")
                    ui.switch("Load anyway", value=record.memory_override,
                              on_change=lambda e, r=record: self.set_override(r, e.value)) \
                        .props("dense data-testid=override")

    def context_select(self, record: ModelRecord) -> None:
        """The context this model is loaded with: shorter needs less memory."""
        trained = record.context_length or 131072
        default = min(self.services.settings.context_length, trained)
        options: dict[int, str] = {0: f"default ({default:,})"}
        size = 512
        while size <= trained:
            options[size] = f"{size:,} tokens"
            size *= 2
        if record.context_choice and record.context_choice not in options:
            options[record.context_choice] = f"{record.context_choice:,} tokens"
        ui.select(options, value=record.context_choice or 0, label="Context",
                  on_change=lambda e, r=record: self.set_context(r, int(e.value or 0))) \
            .props(f"dense outlined options-dense data-testid=context-{record.id}").classes("w-36")

    async def set_context(self, record: ModelRecord, value: int) -> None:
        try:
            await self.manager.set_context(record.id, value or None)
        except AppError as exc:
            ui.notify(exc.message, type="negative")
        self.render_all()

    def catalog_card(self, row: CatalogRow) -> None:
        entry = row.entry
        with ui.card().classes("w-full q-pa-sm").props(f"flat bordered data-testid=catalog-{entry.id}"):
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                with ui.column().classes("col gap-0").style("min-width:0"):
                    ui.label(entry.name).classes("text-body1")
                    ui.label(entry.description).classes("text-caption text-grey-8")
                if row.installed is not None:
                    ui.badge("installed", color="grey-6")
                elif row.download is not None:
                    ui.badge(row.download.state if row.download.state != "running" else "downloading",
                             color="primary")
                else:
                    ui.button("Download", icon="download", on_click=lambda e=entry, f=row.fit.fits: self.pull(e, f)) \
                        .props(f"unelevated dense no-caps data-testid=download-{entry.id}") \
                        .props("" if row.fit.fits else "outline color=warning")
            facts = [f"{format_bytes(entry.size_bytes)} download", f"needs about {format_bytes(row.fit.estimate)} RAM",
                     entry.quantization, entry.license, entry.repo]
            ui.label(" · ".join(f for f in facts if f)).classes("text-caption text-grey-7")
            if not row.fit.fits:
                ui.label(f"Will not fit this device: {row.fit.reason}").classes("text-caption text-warning") \
                    .props("data-testid=does-not-fit")
            dl = row.download
            if dl is not None:  # the progress is also shown here, where the button was pressed
                bar = ui.linear_progress(value=round(dl.fraction, 4), show_value=False) \
                    .props("rounded size=6px data-testid=catalog-progress")
                label = ui.label(download_status(dl)).classes("text-caption")
                self.bars.setdefault(dl.id, []).append((bar, label))

    def import_section(self, job: str) -> None:
        with ui.expansion("Import a model file", icon="upload_file").classes("w-full") \
                .props(f"dense data-testid=import-{job}"):
            suffixes = ".gguf,.safetensors" if job == "images" else ".gguf"
            if job != "vision":
                ui.label("From this device:").classes("text-caption")
                ui.html(f'<input type="file" accept="{suffixes}" class="gl-model-file" '
                        f'data-testid="import-file-{job}">', sanitize=False)
                status = ui.label("").classes("text-caption text-negative")
                ui.button("Upload", icon="upload", on_click=lambda j=job, s=status: self.upload(j, s)) \
                    .props(f"unelevated dense no-caps data-testid=upload-{job}")
            ui.label("Or a file already on the server:").classes("text-caption q-mt-sm")
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                path_input = ui.input(placeholder="/path/to/model.gguf").props("dense outlined") \
                    .classes("col")
                ui.button("Import", on_click=lambda j=job, p=path_input: self.import_path(j, p.value)) \
                    .props("unelevated dense no-caps")

    def search_section(self, job: str) -> None:
        with ui.expansion("Search Hugging Face", icon="travel_explore").classes("w-full q-mt-md") \
                .props(f"dense data-testid=search-{job}"):
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                query = ui.input(placeholder="e.g. qwen3").props("dense outlined clearable").classes("col")
                search_button = ui.button("Search").props("unelevated dense no-caps")
            results = ui.column().classes("w-full gap-1")
            query.on("keydown.enter", lambda q=query, r=results, j=job: self.search(q.value, r, j))
            search_button.on_click(lambda q=query, r=results, j=job: self.search(q.value, r, j))

    # ----- actions -----------------------------------------------------------------------

    async def pull(self, entry: CatalogEntry, fits: bool) -> None:
        if not fits and not await confirm(f"{entry.name} will probably not fit this device's memory. "
                                          "Download it anyway?"):
            return
        try:
            await self.manager.pull_catalog(entry.id, override=not fits)
        except AppError as exc:
            ui.notify(exc.message, type="negative", multi_line=True)
        self.render_all()

    async def pull_file(self, repo: str, remote: RemoteFile, job: str, dialog: ui.dialog) -> None:
        try:
            await self.manager.pull(repo, remote.path, job=None if job == "vision" else job)
        except MemoryRefused as exc:
            if not await confirm(f"{exc.message} Download anyway?"):
                return
            try:
                await self.manager.pull(repo, remote.path, job=None if job == "vision" else job, override=True)
            except AppError as again:
                ui.notify(again.message, type="negative", multi_line=True)
                return
        except AppError as exc:
            ui.notify(exc.message, type="negative", multi_line=True)
            return
        dialog.close()
        self.render_all()
        # the progress is at the top of the page; the search is at the bottom
        # after the dialog has closed and given the page its scroll position back
        self.client.run_javascript("setTimeout(() => document.querySelector('[data-testid=download-row]')"
                                   "?.scrollIntoView({behavior: 'smooth', block: 'center'}), 800)")

    async def download_action(self, action: str, download_id: str) -> None:
        downloads = self.manager.downloads
        try:
            await {"pause": downloads.pause, "resume": downloads.resume, "cancel": downloads.cancel,
                   "forget": downloads.forget}[action](download_id)
        except AppError as exc:
            ui.notify(exc.message, type="negative")
        self.render_all()

    async def activate(self, record: ModelRecord) -> None:
        try:
            self.manager.check_fit(record)
        except MemoryRefused as exc:
            ui.notify(exc.message, type="warning", multi_line=True)
        await self.manager.activate(record.job, record.id)
        if record.job == "chat":
            self.page.show_model(record.id)
        ui.notify(f"{record.name} is now used for {record.job}")
        self.render_all()

    async def delete(self, record: ModelRecord) -> None:
        if not await confirm(f"Delete {record.name}? Its files ({format_bytes(record.size_bytes)}) are removed "
                             "from this device."):
            return
        try:
            await self.manager.delete(record.id)
        except AppError as exc:
            ui.notify(exc.message, type="negative")
        active = self.services.chat.model
        self.page.show_model(active.id if active else None)
        self.render_all()

    async def set_override(self, record: ModelRecord, value: bool) -> None:
        await self.manager.set_memory_override(record.id, value)
        self.render_all()

    async def set_idle(self, seconds: int) -> None:
        await self.manager.set_idle_unload(float(seconds))

    async def unload(self, name: str) -> None:
        if not await self.services.residency.unload(name):
            ui.notify("It is working right now", type="warning")
        self.render_all()

    async def import_path(self, job: str, value: str) -> None:
        if not value or not value.strip():
            ui.notify("Enter the path of a model file on the server", type="warning")
            return
        try:
            record = await self.manager.import_file(Path(value.strip()), job)
        except AppError as exc:
            ui.notify(exc.message, type="negative", multi_line=True)
            return
        ui.notify(f"Imported {record.name}", type="positive")
        self.render_all()

    async def upload(self, job: str, status: ui.label) -> None:
        status.set_text("Uploading…")
        result = await ui.run_javascript(
            f"return await window.gridless.uploadModel('[data-testid=import-file-{job}]', "
            f"'{UPLOAD_PATH}', '{job}')", timeout=24 * 3600)
        if not isinstance(result, dict) or "error" in result:
            message = result.get("error", "the upload failed") if isinstance(result, dict) else "the upload failed"
            status.set_text(message)
            ui.notify(message, type="negative", multi_line=True)
            return
        status.set_text("")
        ui.notify(f"Imported {result.get('name')}", type="positive")
        self.render_all()

    async def search(self, query: str | None, results: ui.column, job: str) -> None:
        results.clear()
        with results:
            spinner = ui.spinner()
        try:
            found = await self.manager.search(query or "")
        except AppError as exc:
            results.clear()
            with results:
                ui.label(exc.message).classes("text-negative text-caption")
            return
        spinner.delete()
        with results:
            if not found:
                ui.label("Nothing found").classes("text-caption text-grey-7")
            for item in found:
                with ui.item(on_click=lambda r=item["repo"]: self.show_repo(r, job)) \
                        .props("clickable dense data-testid=search-result").classes("w-full"):
                    with ui.item_section():
                        ui.item_label(item["repo"])
                        ui.item_label(f"{item['downloads']:,} downloads").props("caption")

    async def show_repo(self, repo: str, job: str) -> None:
        try:
            listing = await self.manager.listing(repo)
        except AppError as exc:
            ui.notify(exc.message, type="negative")
            return
        with ui.dialog() as dialog, ui.card().classes("w-full").style("max-width: 560px"):
            ui.label(repo).classes("text-h6 ellipsis")
            groups = listing.gguf_groups()
            projectors = groups.pop("mmproj", [])
            if projectors:
                ui.label("A vision model: its projector (mmproj) is downloaded with it.") \
                    .classes("text-caption text-grey-8")
            if not groups:
                ui.label("This repository has no GGUF model files.").classes("text-grey-7")
            for quant in sorted(groups):
                ui.label(quant).classes("text-subtitle2 q-mt-sm")
                for remote in groups[quant]:
                    with ui.row().classes("w-full items-center no-wrap gap-2"):
                        ui.label(remote.path).classes("text-body2 ellipsis col").style("min-width:0")
                        ui.label(format_bytes(remote.size)).classes("text-caption")
                        ui.button(icon="download", on_click=lambda r=remote: self.pull_file(repo, r, job, dialog)) \
                            .props("flat round dense aria-label=Download data-testid=repo-file-download")
            if listing.rejected:
                ui.label(f"{len(listing.rejected)} file(s) with unsafe names were ignored.") \
                    .classes("text-caption text-warning")
            with ui.row().classes("w-full justify-end"):
                ui.button("Close", on_click=dialog.close).props("flat")
        dialog.open()


def register(services: Services) -> None:
    @ui.page("/models")
    async def models_page(tab: str = "chat") -> None:
        await services.ready()
        await ModelsPage(services, tab).build()
