"""On every page the owner has open: "Allow <device>? code 4821" when a tablet asks to pair."""

from __future__ import annotations

from collections.abc import Callable

from nicegui import ui

from backend.core.errors import AppError
from backend.core.i18n import _
from backend.security.pairing import Pairing, PairingRequest

__all__ = ["ApprovalPrompt"]


class ApprovalPrompt:
    """One dialog per waiting request; closed on every page once any of them answers."""

    def __init__(self, pairing: Pairing, on_change: Callable[[], None] | None = None) -> None:
        self.pairing = pairing
        self.on_change = on_change
        """Called when pairing changes (sharing started or stopped, a code used, a request)."""
        self.version = -1
        self.dialogs: dict[str, ui.dialog] = {}
        ui.timer(0.5, self.tick)

    def tick(self) -> None:
        if self.pairing.version == self.version:
            return
        self.version = self.pairing.version
        if self.on_change is not None:
            self.on_change()
        waiting = {r.id: r for r in self.pairing.waiting()}
        for request_id in [r for r in self.dialogs if r not in waiting]:
            self.dialogs.pop(request_id).delete()
        for request_id, request in waiting.items():
            if request_id not in self.dialogs:
                self.dialogs[request_id] = self.ask(request)

    def ask(self, request: PairingRequest) -> ui.dialog:
        with ui.dialog().props("persistent") as dialog, ui.card().classes("w-80"):
            ui.label(_("Allow {name}?", name=request.name)).classes("text-h6").props("data-testid=pair-request-name")
            with ui.row().classes("items-baseline gap-2"):
                ui.label(_("code"))
                ui.label(request.confirm).classes("text-h4 text-weight-bold") \
                    .props("data-testid=pair-request-code")
            ui.label(_("From {address}. Allow it only if the device shows the same code. It will get the chats, "
                       "images and voice, not the models or settings.", address=request.address)) \
                .classes("text-caption")
            with ui.row().classes("w-full justify-end"):
                ui.button(_("Deny"), on_click=lambda: self.answer(request.id, False)) \
                    .props("flat data-testid=pair-deny")
                ui.button(_("Allow"), on_click=lambda: self.answer(request.id, True)) \
                    .props("unelevated data-testid=pair-allow")
        dialog.open()
        return dialog

    def answer(self, request_id: str, allow: bool) -> None:
        try:
            if allow:
                self.pairing.approve(request_id)
            else:
                self.pairing.deny(request_id)
        except AppError as exc:
            ui.notify(exc.message, type="warning")
        self.tick()
