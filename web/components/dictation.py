"""Dictation: the microphone button and the line above the message box that says what it is doing.

Recording, the level meter and the upload happen in the browser (`dictation.js`); the words come
back to the server as `transcribed` events, in order, and the page puts them where it wants
them (the chat page: into the message box).
"""

from __future__ import annotations

from collections.abc import Callable

from nicegui import events, ui

__all__ = ["Dictation", "DictationStatus"]


class DictationStatus(ui.element, component="dictation_status.js"):
    """Recording (with a level meter and the seconds), transcribing, done, or the error; hidden when idle."""


class Dictation(ui.element, component="dictation.js"):
    """The microphone button. `url` takes the recording (raw body) and answers with the transcript
    as NDJSON; `warm_url` loads the speech model while the person speaks; `language` is a fixed
    language (an English-only model) or None for the person's choice (`set_language`)."""

    def __init__(self, *, status: DictationStatus, url: str, warm_url: str, language: str | None,
                 on_text: Callable[[str], None]) -> None:
        super().__init__()
        self._props.update({"url": url, "warm-url": warm_url, "language": language or "", "status": status.id})
        self._on_text = on_text
        # handled synchronously and in arrival order, so the last words are in place before "Done"
        self.on("transcribed", self._transcribed)
        self.on("finished", self._finished)

    def set_language(self, code: str) -> None:
        """The language of the person's speech from now on ('' to detect it), kept in their browser."""
        self.run_method("setLanguage", code)

    def disable(self) -> None:
        self._props["disable"] = True
        self.update()

    def _transcribed(self, event: events.GenericEventArguments) -> None:
        args = event.args if isinstance(event.args, dict) else {}
        text = str(args.get("text") or "").strip()
        if text:
            self._on_text(text)

    def _finished(self) -> None:
        # sent after the box's new value, so the button says "Done" once the words are in place
        self.run_method("showDone")
