"""Choosing the installed voice that speaks an answer's language: an Italian answer read by an Italian
voice even while an English one is active, and back."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path

from ..core.jobs import Job
from ..models.files import voice_language
from ..models.manager import ModelManager
from ..models.registry import ModelRecord
from .language import guess_language

__all__ = ["language_of", "voice_chooser", "voice_for"]


def language_of(voice: ModelRecord) -> str | None:
    """The ISO 639 code of the language a voice speaks ("it" for `it_IT`, "pt" for `pt-br`): as recorded
    when it was installed, else read from its `.onnx.json` (a voice registered before the language was
    recorded)."""
    code = voice.info.get("language")
    if not isinstance(code, str) or not code:
        code = _language_in_file(voice.path)
    if not code:
        return None
    primary = re.split(r"[-_]", code, maxsplit=1)[0].lower()
    return primary if primary.isalpha() else None


@functools.lru_cache(maxsize=64)
def _language_in_file(path: Path) -> str | None:
    return voice_language(path)


def voice_for(text: str, voices: list[ModelRecord], active_id: str | None) -> str | None:
    """The id of the voice that should read `text`: the active one (`active_id`) when it speaks the
    language the text is written in, when that language cannot be told, or when no installed voice
    speaks it; else the first of `voices` that does. `active_id` may be None, meaning "the active one",
    and is then what comes back in those cases."""
    language = guess_language(text)
    if language is None:
        return active_id
    candidates = [v for v in voices if v.job == Job.VOICE]
    active = next((v for v in candidates if v.id == active_id), None)
    if active is not None and language_of(active) == language:
        return active_id
    match = next((v for v in candidates if language_of(v) == language), None)
    return match.id if match is not None else active_id


def voice_chooser(models: ModelManager) -> Callable[[str], str | None]:
    """`voice_for` over the installed voices and the active one, as they are when it is asked."""
    def choose(text: str) -> str | None:
        active = models.active(Job.VOICE)
        return voice_for(text, models.installed(Job.VOICE), active.id if active else None)
    return choose
