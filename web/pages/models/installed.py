"""The installed models for one job: what each can do (thinking, tools, photos), size, quantization,
context, licence, source, the memory each needs; Use, delete, the context it is loaded with, and
"Load anyway" for one over the budget.

Redrawn only when this job's models, their settings, what their files can do or the active one change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui

from backend.core.errors import AppError
from backend.core.units import format_bytes
from backend.models.registry import ModelRecord
from backend.runtime.residency import MemoryRefused
from backend.services import Services

from ...components.dialogs import confirm
from ...frame import Frame
from .features import feature_badges, installed_features

__all__ = ["InstalledList"]

SOURCES = {"bundled": "comes with the app", "import": "imported", "folder": "models folder"}


class InstalledList:
    def __init__(self, services: Services, job: str, *, frame: Frame, changed: Callable[[], None]) -> None:
        self.services = services
        self.manager = services.models
        self.job = job
        self.frame = frame
        self.changed = changed
        self.shown: tuple[Any, ...] | None = None
        ui.label("Installed").classes("text-subtitle2")
        self.box = ui.column().classes("w-full gap-3")
        self.sync()

    def sync(self) -> None:
        # what each can do is read from its file, kept per file version: a stat each
        installed = [(r, installed_features(r)) for r in self.manager.installed(self.job)]
        active = self.manager.active(self.job)
        signature = (tuple((r.id, r.memory_override, r.context_choice, tuple(can)) for r, can in installed),
                     active.id if active else None)
        if signature != self.shown:
            self.shown = signature
            self.render(installed, active)

    def render(self, installed: list[tuple[ModelRecord, list[str]]], active: ModelRecord | None) -> None:
        self.box.clear()
        with self.box:
            if not installed:
                ui.label("None yet: download one below.").classes("text-grey-7 text-body2")
            for record, can in installed:
                self.card(record, can, active is not None and record.id == active.id)

    def card(self, record: ModelRecord, features: list[str], is_active: bool) -> None:
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
            feature_badges(features)
            facts = [format_bytes(record.size_bytes), record.quantization,
                     f"{record.context_length:,} tokens" if record.context_length else None,
                     record.license, record.repo or SOURCES.get(record.source)]
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
        self.changed()

    async def set_override(self, record: ModelRecord, value: bool) -> None:
        await self.manager.set_memory_override(record.id, value)
        self.changed()

    async def activate(self, record: ModelRecord) -> None:
        try:
            self.manager.check_fit(record)
        except MemoryRefused as exc:
            ui.notify(exc.message, type="warning", multi_line=True)
        await self.manager.activate(record.job, record.id)
        if record.job == "chat":
            self.frame.show_model(record.id)
        ui.notify(f"{record.name} is now used for {record.job}")
        self.changed()

    async def delete(self, record: ModelRecord) -> None:
        if not await confirm(f"Delete {record.name}? Its files ({format_bytes(record.size_bytes)}) are removed "
                             "from this device."):
            return
        try:
            await self.manager.delete(record.id)
        except AppError as exc:
            ui.notify(exc.message, type="negative")
        active = self.services.chat.model
        self.frame.show_model(active.id if active else None)
        self.changed()
