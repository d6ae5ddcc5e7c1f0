"""The parts of an answer above its text: the model's thinking, and the tools it called."""

from __future__ import annotations

import json
from typing import Any

from nicegui import ui

from backend.core.i18n import _, format_number

__all__ = ["ThinkingBlock", "ToolCallsBlock"]


def thinking_title(seconds: float | None, live: bool) -> str:
    if live:
        return _("Thinking…")
    if seconds is None or seconds < 1:
        return _("Thought for a moment")
    if seconds < 90:
        return _("Thought for {seconds} s", seconds=format_number(round(seconds)))
    return _("Thought for {minutes} min", minutes=format_number(round(seconds / 60)))


class ThinkingBlock:
    """Collapsed by default: the answer is what a person came for; the thinking is there to read."""

    def __init__(self, text: str, seconds: float | None, *, live: bool) -> None:
        with ui.expansion(thinking_title(seconds, live), icon="psychology") \
                .classes("gl-thinking w-full").props("dense data-testid=thinking") as self.expansion:
            self.text = ui.label(text).classes("gl-thinking-text").props("data-testid=thinking-text")

    def update(self, text: str, seconds: float | None, *, live: bool) -> None:
        self.expansion.text = thinking_title(seconds, live)
        self.text.set_text(text)


class ToolCallsBlock:
    """One collapsible line per call: the tool, its arguments and what it answered."""

    def __init__(self, titles: dict[str, str]) -> None:
        self.titles = titles
        self.box = ui.column().classes("w-full gap-1").props("data-testid=tool-calls")
        self.shown: list[tuple[str, bool]] = []

    def update(self, calls: list[dict[str, Any]]) -> None:
        state = [(c.get("id", ""), "result" in c) for c in calls]
        if state == self.shown:
            return
        self.shown = state
        self.box.clear()
        with self.box:
            for call in calls:
                self._call(call)

    def _call(self, call: dict[str, Any]) -> None:
        title = self.titles.get(call.get("name", ""), call.get("name") or _("tool"))
        done, ok = "result" in call, call.get("ok", False)
        icon = "build" if not done else "check_circle" if ok else "error"
        with ui.expansion(f"{title}: {_short(call.get('arguments', ''))}", icon=icon) \
                .classes("gl-tool-call w-full").props("dense data-testid=tool-call"):
            ui.code(_pretty(call.get("arguments", "")), language="json").classes("w-full")
            if done:
                ui.label(call["result"]).classes("gl-tool-result" + ("" if ok else " text-negative")) \
                    .props("data-testid=tool-result")
            else:
                ui.label(_("Running…")).classes("text-grey-7")


def _short(arguments: str, limit: int = 60) -> str:
    try:
        value = json.loads(arguments)
    except (json.JSONDecodeError, TypeError):
        value = None
    text = ", ".join(str(v) for v in value.values()) if isinstance(value, dict) else str(arguments)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _pretty(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), ensure_ascii=False, indent=2)
    except (json.JSONDecodeError, TypeError):
        return str(arguments)
