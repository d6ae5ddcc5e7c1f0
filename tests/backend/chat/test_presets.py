"""The presets a project starts from speak the person's language: their names, descriptions and
system prompts are those of the language in use; their keys and settings are the same in every one."""

from __future__ import annotations

from backend.chat.presets import PRESETS, preset, presets
from backend.core.i18n import use_locale


def test_presets_in_italian_and_in_english() -> None:
    with use_locale("it"):
        italian = {p.key: p for p in presets()}
        translator = preset("translator")
        listed = [p.name for p in PRESETS]
    with use_locale("en"):
        english = {p.key: p for p in presets()}
    assert italian.keys() == english.keys() == {"assistant", "translator", "tutor", "coder", "writer", "summariser"}

    assert english["translator"].name == "Translator"
    assert english["translator"].system_prompt.startswith("You are a translator.")
    assert italian["translator"].name == "Traduttore"
    assert italian["translator"].system_prompt.startswith("Sei un traduttore.")
    assert "in italiano" in italian["translator"].system_prompt  # translates into the person's language
    assert translator == italian["translator"] and "Traduttore" in listed
    assert italian["coder"].name == "Programmatore" and english["coder"].name == "Coder"
    for key, it in italian.items():
        en = english[key]
        assert it.system_prompt != en.system_prompt and it.description != en.description, key
        assert it.settings == en.settings, key


def test_the_presets_follow_the_language_each_time_they_are_read() -> None:
    with use_locale("it"):
        assert PRESETS[0].name == "Assistente"
    with use_locale("en"):
        assert PRESETS[0].name == "Assistant"
        assert preset("nothing") is None
