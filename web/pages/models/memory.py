"""The memory card at the top of the Models page: the budget, what is loaded now (with Unload),
when an idle model is unloaded, and the disk the models use.

Built once; its figures change in place, and the list of loaded models is redrawn only when
what it says changes.
"""

from __future__ import annotations

from collections.abc import Callable

from nicegui import ui

from backend.core.units import format_bytes
from backend.services import Services

from .status import duration

__all__ = ["MemoryPanel"]

IDLE_CHOICES = {120: "2 minutes", 300: "5 minutes", 600: "10 minutes", 1800: "30 minutes", 0: "never"}
DISK_EVERY = 4
"""Disk use is read every this many syncs: it walks the partial files."""

LoadedLine = tuple[str, str, bool]  # slot, text, busy


class MemoryPanel:
    def __init__(self, services: Services, *, changed: Callable[[], None]) -> None:
        self.services = services
        self.changed = changed
        self.syncs = 0
        residency = services.residency
        with ui.card().classes("w-full q-pa-sm").props("flat bordered"):
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                ui.icon("memory").classes("text-primary")
                self.budget_label = ui.label().classes("text-body2 col")
            self.loaded_box = ui.column().classes("w-full gap-1").props("data-testid=loaded-now")
            with ui.row().classes("w-full items-center gap-2"):
                self.disk_label = ui.label().classes("text-caption")
                ui.space()
                idle = int(residency.idle_unload_s)
                ui.select(IDLE_CHOICES, value=idle if idle in IDLE_CHOICES else 600, label="Unload when idle for",
                          on_change=lambda e: self.set_idle(e.value)) \
                    .props("dense outlined options-dense").classes("w-40")
        self.loaded_shown: list[LoadedLine] | None = None
        self.show_loaded()
        self.show_disk()

    def sync(self) -> None:
        self.syncs += 1
        self.show_loaded()
        if self.syncs % DISK_EVERY == 0:
            self.show_disk()

    def show_loaded(self) -> None:
        budget = self.services.residency.budget
        self.budget_label.set_text(f"Memory budget {format_bytes(budget.limit)} of {format_bytes(budget.physical)} "
                                   f"RAM · {format_bytes(budget.available())} free now")
        lines = self.loaded_lines()
        if lines == self.loaded_shown:
            return
        self.loaded_shown = lines
        self.loaded_box.clear()
        with self.loaded_box:
            if not lines:
                ui.label("Nothing is loaded. A model loads when it is first used.").classes("text-caption text-grey-7")
            for slot, text, busy in lines:
                with ui.row().classes("w-full items-center no-wrap gap-2"):
                    ui.label(text).classes("text-caption col")
                    ui.button("Unload", on_click=lambda n=slot: self.unload(n)) \
                        .props("flat dense no-caps size=sm").set_enabled(not busy)

    def loaded_lines(self) -> list[LoadedLine]:
        lines = []
        for item in self.services.residency.snapshot():
            record = self.services.models.get(item["model"])
            name = record.name if record else item["model"]
            kind = "heavy" if item["heavy"] else "sidecar"
            used = format_bytes(item["rss"]) if item["rss"] else "starting"
            state = "working" if item["busy"] else f"idle {duration(item['idle_s'])}"
            lines.append((item["name"], f"{item['name']}: {name} — {used} in use (estimate "
                                        f"{format_bytes(item['estimate'])}), {kind}, {state}", item["busy"]))
        return lines

    def show_disk(self) -> None:
        self.disk_label.set_text(f"Models use {format_bytes(self.services.models.disk_used())} of disk")

    async def set_idle(self, seconds: int) -> None:
        await self.services.models.set_idle_unload(float(seconds))

    async def unload(self, name: str) -> None:
        if not await self.services.residency.unload(name):
            ui.notify("It is working right now", type="warning")
        self.changed()
