"""The memory card at the top of the Models page: the budget, what is loaded now (with Unload),
when an idle model is unloaded, and the disk the models use.

Built once; its figures change in place, and the list of loaded models is redrawn only when
what it says changes.
"""

from __future__ import annotations

from collections.abc import Callable

from nicegui import ui

from backend.core.i18n import _
from backend.services import Services

from ...formats import duration, size
from .status import job_names

__all__ = ["MemoryPanel"]

DISK_EVERY = 4
"""Disk use is read every this many syncs: it walks the partial files."""

LoadedLine = tuple[str, str, bool]  # slot, text, busy


def idle_choices() -> dict[int, str]:
    """How long a model may stay idle before it is unloaded (seconds → in words)."""
    return {120: _("2 minutes"), 300: _("5 minutes"), 600: _("10 minutes"), 1800: _("30 minutes"), 0: _("never")}


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
                choices = idle_choices()
                ui.select(choices, value=idle if idle in choices else 600, label=_("Unload when idle for"),
                          on_change=lambda e: self.set_idle(e.value)) \
                    .props("dense outlined options-dense").classes("w-48")
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
        self.budget_label.set_text(_("Memory budget {limit} of {physical} RAM · {free} free now",
                                     limit=size(budget.limit), physical=size(budget.physical),
                                     free=size(budget.available())))
        lines = self.loaded_lines()
        if lines == self.loaded_shown:
            return
        self.loaded_shown = lines
        self.loaded_box.clear()
        with self.loaded_box:
            if not lines:
                ui.label(_("Nothing is loaded. A model loads when it is first used.")) \
                    .classes("text-caption text-grey-7")
            for slot, text, busy in lines:
                with ui.row().classes("w-full items-center no-wrap gap-2"):
                    ui.label(text).classes("text-caption col")
                    ui.button(_("Unload"), on_click=lambda n=slot: self.unload(n)) \
                        .props("flat dense no-caps size=sm").set_enabled(not busy)

    def loaded_lines(self) -> list[LoadedLine]:
        lines = []
        slots = job_names()
        for item in self.services.residency.snapshot():
            record = self.services.models.get(item["model"])
            values = {"slot": slots.get(item["name"], item["name"]), "name": record.name if record else item["model"],
                      "estimate": size(item["estimate"]),
                      "kind": _("heavy") if item["heavy"] else _("sidecar"),
                      "state": _("working") if item["busy"] else _("idle {time}", time=duration(item["idle_s"]))}
            text = (_("{slot}: {name} — {used} in use (estimate {estimate}), {kind}, {state}", used=size(item["rss"]),
                      **values) if item["rss"]
                    else _("{slot}: {name} — starting (estimate {estimate}), {kind}, {state}", **values))
            lines.append((item["name"], text, item["busy"]))
        return lines

    def show_disk(self) -> None:
        self.disk_label.set_text(_("Models use {size} of disk", size=size(self.services.models.disk_used())))

    async def set_idle(self, seconds: int) -> None:
        await self.services.models.set_idle_unload(float(seconds))

    async def unload(self, name: str) -> None:
        if not await self.services.residency.unload(name):
            ui.notify(_("It is working right now"), type="warning")
        self.changed()
