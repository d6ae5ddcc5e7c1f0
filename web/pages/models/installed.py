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
from backend.core.i18n import _, format_number
from backend.models.memory import MemoryEstimate
from backend.models.registry import ModelRecord
from backend.runtime.residency import MemoryRefused
from backend.services import Services

from ...components.aria import named
from ...components.dialogs import confirm
from ...formats import size
from ...frame import Frame
from .features import feature_badges, installed_features

__all__ = ["InstalledList"]



def source_text(source: str) -> str | None:
    """Where an installed model came from, when it has no repository."""
    return {"bundled": _("comes with the app"), "import": _("imported"), "folder": _("models folder")}.get(source)


def now_used(name: str, job: str) -> str:
    """The notice after a model is chosen for its job."""
    return {"chat": _("{name} is now used for chat", name=name),
            "vision": _("{name} is now used for photos", name=name),
            "images": _("{name} is now used for pictures", name=name),
            "speech": _("{name} is now used for dictation", name=name),
            "voice": _("{name} is now used for reading aloud", name=name),
            "embeddings": _("{name} is now used for documents", name=name)}.get(job) \
        or _("{name} is now in use", name=name)


def needs(estimate: MemoryEstimate) -> str:
    """The memory a model needs, and for what (as `MemoryEstimate.describe`, in the page's language)."""
    parts = [_("weights {size}", size=size(estimate.weights))]
    if estimate.kv_cache:
        parts.append(_("KV cache {size} for {n} tokens", size=size(estimate.kv_cache), n=estimate.context_length))
    parts.append(_("working memory {size}", size=size(estimate.compute + estimate.overhead)))
    return _("Needs about {total} ({parts})", total=size(estimate.total), parts=", ".join(parts))


def tokens(count: int) -> str:
    return _("{n} tokens", n=format_number(count))


class InstalledList:
    def __init__(self, services: Services, job: str, *, frame: Frame, changed: Callable[[], None]) -> None:
        self.services = services
        self.manager = services.models
        self.job = job
        self.frame = frame
        self.changed = changed
        self.shown: tuple[Any, ...] | None = None
        ui.label(_("Installed")).classes("text-subtitle2").props("role=heading aria-level=2")
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
                ui.label(_("None yet: download one below.")).classes("text-grey-7 text-body2")
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
                    ui.badge(_("active"), color="positive").props(f"data-testid=active-{record.job}")
                else:
                    named(ui.button(_("Use"), on_click=lambda r=record: self.activate(r)),
                          _("Use {name}", name=record.name)) \
                        .props(f"unelevated dense no-caps data-testid=activate-{record.id}")
                if record.deletable:
                    named(ui.button(icon="delete", on_click=lambda r=record: self.delete(r)),
                          _("Delete {name}", name=record.name)) \
                        .props(f"flat round dense data-testid=delete-{record.id}").tooltip(_("Delete"))
            feature_badges(features)
            facts = [size(record.size_bytes), record.quantization,
                     tokens(record.context_length) if record.context_length else None,
                     record.license, record.repo or source_text(record.source)]
            ui.label(" · ".join(f for f in facts if f)).classes("text-caption text-grey-8")
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                ui.label(needs(estimate)).classes(
                    "text-caption col " + ("text-negative" if over else "text-grey-7"))
                if record.job in ("chat", "vision") and record.info.get("layers"):
                    self.context_select(record)
            if over:
                with ui.row().classes("items-center gap-2"):
                    ui.label(self.manager.suggestion(record, budget, here=True) or "") \
                        .classes("text-caption text-negative")
                    ui.switch(_("Load anyway"), value=record.memory_override,
                              on_change=lambda e, r=record: self.set_override(r, e.value)) \
                        .props("dense data-testid=override")

    def context_select(self, record: ModelRecord) -> None:
        """The context this model is loaded with: shorter needs less memory."""
        trained = record.context_length or 131072
        default = min(self.services.settings.context_length, trained)
        options: dict[int, str] = {0: _("default ({n})", n=format_number(default))}
        length = 512
        while length <= trained:
            options[length] = tokens(length)
            length *= 2
        if record.context_choice and record.context_choice not in options:
            options[record.context_choice] = tokens(record.context_choice)
        ui.select(options, value=record.context_choice or 0, label=_("Context"),
                  on_change=lambda e, r=record: self.set_context(r, int(e.value or 0))) \
            .props(f"dense outlined options-dense data-testid=context-{record.id}").classes("w-44")

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
        ui.notify(now_used(record.name, record.job))
        self.changed()

    async def delete(self, record: ModelRecord) -> None:
        if not await confirm(_("Delete {name}? Its files ({size}) are removed from this device.",
                               name=record.name, size=size(record.size_bytes)), action=_("Delete"), danger=True):
            return
        try:
            await self.manager.delete(record.id)
        except AppError as exc:
            ui.notify(exc.message, type="negative")
        active = self.services.chat.model
        self.frame.show_model(active.id if active else None)
        self.changed()
