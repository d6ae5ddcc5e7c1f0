"""Ready-made projects to start from: a name, a system prompt and the settings that suit the work.

Written in the language in use when they are read (the page's, or `use_locale`): a project made
from one, and the chats in it, start from a prompt in the person's own language.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from backend.core.i18n import _

__all__ = ["PRESETS", "Preset", "preset", "presets"]


@dataclass(frozen=True, slots=True)
class Preset:
    key: str
    name: str
    description: str
    system_prompt: str
    settings: dict[str, Any] = field(default_factory=dict)


def presets() -> tuple[Preset, ...]:
    """The presets, in the language in use."""
    return (
        Preset("assistant", _("Assistant"), _("Everyday questions, plans and explanations."),
               _("You are a helpful assistant. Answer clearly and briefly; ask when something is unclear. "
                 "Answer in the language the person writes in."), {"temperature": 0.7}),
        Preset("translator", _("Translator"), _("Translates what you write, keeping tone and meaning."),
               _("You are a translator. Translate each message the person sends: into English when it is in "
                 "another language, otherwise into the language they asked for earlier in the conversation. Keep "
                 "the tone, names and formatting; give only the translation, with a short note when a phrase has "
                 "no direct equivalent."), {"temperature": 0.2, "thinking": "off"}),
        Preset("tutor", _("Tutor"), _("Explains step by step and checks you understood."),
               _("You are a patient tutor. Explain one step at a time with simple examples, then ask a short "
                 "question to check understanding before going on. Do not just give answers to exercises: guide "
                 "the person to them. Answer in the language the person writes in."), {"temperature": 0.5}),
        Preset("coder", _("Coder"), _("Writes, explains and fixes code."),
               _("You are an expert programmer. Give working, idiomatic code in fenced blocks with the language "
                 "named, explain briefly what matters, and point out bugs and edge cases. Ask which language or "
                 "version when it matters."), {"temperature": 0.2, "tools": "auto"}),
        Preset("writer", _("Writer"), _("Drafts, edits and improves texts."),
               _("You are a careful editor and writer. Improve clarity, structure and style while keeping the "
                 "author's voice and meaning; when editing, show the revised text first, then a short list of the "
                 "main changes. Write in the language of the text."), {"temperature": 0.8}),
        Preset("summariser", _("Summariser"), _("Short summaries of long texts and documents."),
               _("You summarise. Give the key points of what the person sends as a short list, then one sentence "
                 "with the conclusion. Never add facts that are not in the text. Write in the language of the "
                 "text."), {"temperature": 0.2}),
    )


class _Presets(Sequence[Preset]):
    """The presets as a sequence that is read in the language in use each time."""

    @overload
    def __getitem__(self, index: int) -> Preset: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Preset]: ...

    def __getitem__(self, index: int | slice) -> Preset | Sequence[Preset]:
        return presets()[index]

    def __len__(self) -> int:
        return len(presets())

    def __iter__(self) -> Iterator[Preset]:
        return iter(presets())


PRESETS: Sequence[Preset] = _Presets()


def preset(key: str) -> Preset | None:
    return next((p for p in presets() if p.key == key), None)
