"""Accessible names for what shows only an icon: a screen reader says the name, not the icon, and
a tooltip is no name. The name is set as a property, so any text (quotes, apostrophes) is safe."""

from __future__ import annotations

from typing import TypeVar

from nicegui import ui

__all__ = ["named"]

E = TypeVar("E", bound=ui.element)


def named(element: E, name: str, *, pressed: bool | None = None) -> E:
    """`element` with `name` as its accessible name; `pressed` says a toggle's state (aria-pressed)."""
    element.props["aria-label"] = name
    if isinstance(element, ui.icon):  # an icon that says something (Quasar hides icons from screen readers)
        element.props.update({"role": "img", "aria-hidden": "false"})
    if pressed is not None:
        element.props["aria-pressed"] = "true" if pressed else "false"
    return element
