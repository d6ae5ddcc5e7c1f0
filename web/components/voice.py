"""Voice on the chat page: the microphone with its language choice, the speaker under each answer,
and the switch that reads new answers aloud. The elements are in `dictation.py` and `speaker.py`;
this puts them together with the addresses of the routes they use."""

from __future__ import annotations

from nicegui import app, ui

from backend.audio.engines import speaks_languages
from backend.services import Services

from .dictation import Dictation, DictationStatus
from .speaker import AutoRead, Speaker

__all__ = ["LANGUAGE_NAMES", "auto_read_button", "dictation", "speak_button"]

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
        .props("round flat aria-label='Dictate' data-testid=mic")
    if model is None:
        mic.disable()
        with mic:
            ui.tooltip("No speech model is installed")
    if multilingual:  # English-only models need no choice
        with ui.button(icon="translate").props("round flat dense size=sm aria-label='Language of your speech' "
                                               "data-testid=mic-language"):
            with ui.menu():
                ui.label("Language of your speech").classes("text-caption q-px-md q-pt-sm")
                for code, label in LANGUAGE_NAMES.items():
                    ui.menu_item(label, on_click=lambda c=code: choose(c)) \
                        .props(f"data-testid=mic-language-{code or 'auto'}")

    def choose(code: str) -> None:
        mic.set_language(code)
        ui.notify(f"Dictation language: {LANGUAGE_NAMES[code]}", timeout=1200)

    return mic


def speak_button(message_id: str) -> Speaker:
    speaker = Speaker(app.url_path_for("read_message", message_id=message_id),
                      warm_url=app.url_path_for("warm_voice"),
                      on_failed=lambda message: ui.notify(message, type="warning")) \
        .props("flat round dense size=sm aria-label='Read aloud' data-testid=speak").classes("text-grey-6")
    return speaker


def auto_read_button() -> AutoRead:
    """Read new answers aloud on this device (kept in the browser: a tablet may want it, the phone not)."""
    button = AutoRead(warm_url=app.url_path_for("warm_voice")).props(
        "flat round dense icon=record_voice_over aria-label='Read answers aloud' data-testid=auto-read")
    with button:
        ui.tooltip("Read new answers aloud")
    return button
