"""A yes/no question before something that cannot be undone."""

from __future__ import annotations

from nicegui import ui

from backend.core.i18n import _

__all__ = ["confirm"]


async def confirm(question: str, detail: str = "", action: str | None = None, *, danger: bool = False) -> bool:
    """True when the person presses `action` (testid `confirm-ok`; "OK" when not given); False on Cancel or
    outside. The texts come translated."""
    with ui.dialog() as dialog, ui.card().classes("w-80"):
        ui.label(question).classes("text-h6" if detail else "")
        if detail:
            ui.label(detail)
        with ui.row().classes("w-full justify-end"):
            ui.button(_("Cancel"), on_click=dialog.close).props("flat")
            ui.button(action or _("OK"), color="negative" if danger else "primary",
                      on_click=lambda: dialog.submit(True)).props("data-testid=confirm-ok")
    return bool(await dialog)
