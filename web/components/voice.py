"""Voice on the chat page: the microphone button with its language choice, the speaker
button under each answer, and the switch that reads new answers aloud. The recording and
playing happen in `static/voice.js`; these are the elements it works on."""

from __future__ import annotations

import json

from nicegui import ui

from backend.audio.engines import is_multilingual
from backend.services import Services

__all__ = ["LANGUAGE_NAMES", "auto_read_button", "dictation", "speak_button"]

LANGUAGE_NAMES = {"": "Detect the language", "en": "English", "de": "Deutsch", "es": "Español", "fr": "Français",
             "it": "Italiano", "nl": "Nederlands", "pl": "Polski", "pt": "Português", "tr": "Türkçe",
             "uk": "Українська", "ru": "Русский", "ar": "العربية", "hi": "हिन्दी", "zh": "中文", "ja": "日本語"}


def dictation(services: Services, box: ui.textarea, status: ui.html) -> ui.button:
    """The microphone button; its words go into `box`, its state into `status`."""
    model = services.speech.model
    multilingual = model is not None and is_multilingual(model.path)
    mic = ui.button(icon="mic").props("round flat aria-label='Dictate' data-testid=mic data-gl-mic "
                                      f"data-gl-box='#{box.html_id}' "
                                      f"data-gl-status='#{status.html_id} .gl-mic-status' "
                                      f"data-gl-language={'auto' if multilingual else 'en'}")
    if model is None:
        mic.disable()
        mic.tooltip("No speech model is installed")
    if multilingual:  # English-only models need no choice
        with ui.button(icon="translate").props("round flat dense size=sm aria-label='Language of your speech' "
                                               "data-testid=mic-language"):
            with ui.menu():
                ui.label("Language of your speech").classes("text-caption q-px-md q-pt-sm")
                for code, label in LANGUAGE_NAMES.items():
                    ui.menu_item(label, on_click=lambda c=code: choose(c)) \
                        .props(f"data-testid=mic-language-{code or 'auto'}")

    def choose(code: str) -> None:
        ui.run_javascript(f"gridless.setDictationLanguage({json.dumps(code)})")
        ui.notify(f"Dictation language: {LANGUAGE_NAMES[code]}", timeout=1200)

    return mic


def speak_button(message_id: str) -> ui.button:
    button = ui.button(icon="volume_up").props("flat round dense size=sm aria-label='Read aloud' data-testid=speak") \
        .classes("text-grey-6")
    button.on("click", js_handler=f"() => gridless.speak({json.dumps(message_id)}, '#{button.html_id}')")
    return button


def auto_read_button() -> ui.button:
    """Read new answers aloud on this device (kept in the browser: a tablet may want it, the phone not)."""
    button = ui.button(icon="record_voice_over").props(
        "flat round dense aria-label='Read answers aloud' data-testid=auto-read")
    button.tooltip("Read new answers aloud")
    selector = f"#{button.html_id}"
    button.on("click", js_handler=(
        f"() => {{ const on = gridless.autoRead(!gridless.autoRead());"
        f" document.querySelector('{selector}').classList.toggle('gl-on', on); }}"))
    ui.run_javascript(f"document.querySelector('{selector}')?.classList.toggle('gl-on', gridless.autoRead())")
    return button
