"""The voice conversation: a button that opens a full-screen view where one talks with the
model hands-free (`voice_mode.js` in the browser, `backend/api/voice.py` on the server)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui

__all__ = ["VoiceMode"]


class VoiceMode(ui.element, component="voice_mode.js"):
    """`conversation` is the conversation the turns go to (None: a new one is made on the first
    turn, and `on_closed` hears its id when the view closes)."""

    def __init__(self, conversation: str | None, *, language: str | None = None,
                 on_closed: Callable[[str | None], Any] | None = None,
                 on_answered: Callable[[], Any] | None = None) -> None:
        super().__init__()
        self._props["conversation"] = conversation or ""
        if language:
            self._props["language"] = language
        if on_closed is not None:
            closed = on_closed
            self.on("closed", lambda e: closed((e.args or {}).get("conversation") if isinstance(e.args, dict)
                                               else None))
        if on_answered is not None:
            answered = on_answered
            self.on("answered", lambda _e: answered())
