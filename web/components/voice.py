"""Voice on the chat page: the microphone with its language choice, the speaker under each answer,
and the switch that reads new answers aloud. The elements are in `dictation.py` and `speaker.py`;
this puts them together with the addresses of the routes they use."""

from __future__ import annotations

from nicegui import app, ui

from backend.audio.engines import speaks_languages
from backend.core.i18n import _
from backend.services import Services

from .aria import named
from .dictation import Dictation, DictationStatus
from .speaker import AutoRead, Speaker

__all__ = ["LANGUAGE_NAMES", "auto_read_button", "dictation", "read_url", "speak_button"]

LANGUAGE_NAMES = {"": "Detect the language", "en": "English", "de": "Deutsch", "es": "Español", "fr": "Français",
             "it": "Italiano", "nl": "Nederlands", "pl": "Polski", "pt": "Português", "tr": "Türkçe",
             "uk": "Українська", "ru": "Русский", "ar": "العربية", "hi": "हिन्दी", "zh": "中文", "ja": "日本語"}


def dictation(services: Services, box: ui.textarea, status: DictationStatus) -> Dictation:
    """The microphone button; its words go into `box`, its state into `status`."""
    model = services.speech.model
    multilingual = model is not None and speaks_languages(model)

    def add_words(text: str) -> None:
        current = box.value or ""
        box.set_value(f"{current} {text}" if current and not current[-1].isspace() else current + text)

    mic = Dictation(status=status, url=app.url_path_for("upload_recording"), warm_url=app.url_path_for("warm_speech"),
                    language=None if multilingual else "en", on_text=add_words) \
        .props("round flat data-testid=mic")
    named(mic, _("Dictate"))
    if model is None:
        mic.disable()
        with mic:
            ui.tooltip(_("No speech model is installed"))
    if multilingual:  # English-only models need no choice
        # on a phone the message bar has no room for it: speech is then in the language Whisper hears
        with named(ui.button(icon="translate").props("round flat dense size=sm data-testid=mic-language")
                   .classes("gt-xs"),
                   _("Language of your speech")):
            with ui.menu():
                ui.label(_("Language of your speech")).classes("text-caption q-px-md q-pt-sm")
                for code in LANGUAGE_NAMES:
                    # each language named in itself, and said in it
                    ui.menu_item(language_name(code), on_click=lambda c=code: choose(c)) \
                        .props(f"data-testid=mic-language-{code or 'auto'}" + (f" lang={code}" if code else ""))

    def choose(code: str) -> None:
        mic.set_language(code)
        ui.notify(_("Dictation language: {language}", language=language_name(code)), timeout=1200)

    return mic


def language_name(code: str) -> str:
    """A language of speech named in itself; the automatic choice in the page's language."""
    return LANGUAGE_NAMES[code] if code else _("Detect the language")


def speak_button(message_id: str) -> Speaker:
    speaker = Speaker(app.url_path_for("read_message", message_id=message_id),
                      warm_url=app.url_path_for("warm_voice"),
                      on_failed=lambda message: ui.notify(message, type="warning")) \
        .props("flat round dense size=sm data-testid=speak").classes("text-grey-6")
    return named(speaker, _("Read aloud"))


def read_url(message_id: str) -> str:
    """Where an answer is read aloud (as it is written, while it is)."""
    return app.url_path_for("read_message", message_id=message_id)


def auto_read_button() -> AutoRead:
    """Read new answers aloud on this device (kept in the browser: a tablet may want it, the phone not)."""
    button = named(AutoRead(warm_url=app.url_path_for("warm_voice")).props(
        "flat round dense icon=record_voice_over data-testid=auto-read"), _("Read answers aloud"))
    with button:
        ui.tooltip(_("Read new answers aloud"))
    return button
