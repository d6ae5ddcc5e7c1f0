"""Reading answers aloud: the speaker under an answer and the switch that reads new answers by itself.

The sound is fetched and played in the browser (`speaker.js`, `auto_read.js`, sharing one
player in `static/speech.js`), so it starts within the tap; the server side only says which
answer, and hears when reading it failed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import events, ui

from backend.core.i18n import _

__all__ = ["AutoRead", "Speaker"]


class Speaker(ui.element, component="speaker.js"):
    """The speaker button for one answer: `url` streams its speech as WAV; `warm_url` loads the voice."""

    def __init__(self, url: str, *, warm_url: str, on_failed: Callable[[str], Any] | None = None) -> None:
        super().__init__()
        self._props.update({"url": url, "warm-url": warm_url})
        if on_failed is not None:
            failed = on_failed
            fallback = _("Reading aloud failed.")
            self.on("failed", lambda e: failed(_message(e, fallback)))

    def read_new(self) -> None:
        """The answer was just written: read it aloud if this device reads new answers by itself
        (its choice, kept in the browser), or else load the voice if a tap is likely."""
        self.run_method("readNew")


class AutoRead(ui.element, component="auto_read.js"):
    """The switch (a round button, highlighted when on) that reads new answers aloud on this device."""

    def __init__(self, *, warm_url: str) -> None:
        super().__init__()
        self._props["warm-url"] = warm_url

    def read_live(self, url: str) -> None:
        """An answer started being written: read it aloud as it comes, if this device reads new answers."""
        self.run_method("readLive", url)


def _message(event: events.GenericEventArguments, fallback: str) -> str:
    args = event.args if isinstance(event.args, dict) else {}
    return str(args.get("message") or fallback)
