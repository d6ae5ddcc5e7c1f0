"""The voice that reads an answer: one that speaks its language among the installed voices, the active
one when it does already, when the language cannot be told or when no voice speaks it; and a voice's
language, from its record or its `.onnx.json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backend.audio.voices import language_of, voice_chooser, voice_for
from backend.core.jobs import Job
from backend.models.files import inspect_model_file, voice_language
from backend.models.registry import ModelRecord

ITALIAN = "La capitale d'Italia è Roma. È una città con una storia molto lunga."
ENGLISH = "The capital of Italy is Rome. It is a city with a very long history."
SPANISH = "La capital de Italia es Roma. Es una ciudad con una historia muy larga."
GERMAN = "Die Hauptstadt von Italien ist Rom. Es ist eine Stadt mit einer sehr langen Geschichte."


def write_voice(folder: Path, name: str, config: dict[str, Any] | None) -> Path:
    onnx = folder / f"{name}.onnx"
    onnx.write_bytes(b"\x08\x07" + bytes(64))
    if config is not None:
        onnx.with_name(onnx.name + ".json").write_text(json.dumps(config))
    return onnx


def piper_config(code: str, espeak: str) -> dict[str, Any]:
    """What a Piper voice's .onnx.json says of its language."""
    family, _, region = code.partition("_")
    return {"audio": {"sample_rate": 22050}, "espeak": {"voice": espeak},
            "language": {"code": code, "family": family, "region": region}}


def voice(model_id: str, path: Path, language: str | None = None, job: Job = Job.VOICE) -> ModelRecord:
    return ModelRecord(id=model_id, job=job, name=model_id, format="onnx", path=path, size_bytes=100,
                       source="hub", info={"language": language} if language else {})


@pytest.fixture
def installed(tmp_path: Path) -> list[ModelRecord]:
    return [voice("joe", tmp_path / "en_US-joe-medium.onnx", "en_US"),
            voice("paola", tmp_path / "it_IT-paola-medium.onnx", "it_IT"),
            voice("riccardo", tmp_path / "it_IT-riccardo-x_low.onnx", "it_IT"),
            voice("davefx", tmp_path / "es_ES-davefx-medium.onnx", "es_ES")]


def test_an_italian_answer_is_read_by_an_italian_voice(installed: list[ModelRecord]) -> None:
    assert voice_for(ITALIAN, installed, "joe") == "paola"  # the first that speaks it
    assert voice_for(SPANISH, installed, "joe") == "davefx"


def test_the_active_voice_reads_what_it_speaks(installed: list[ModelRecord]) -> None:
    assert voice_for(ITALIAN, installed, "riccardo") == "riccardo"  # not swapped for another Italian one
    assert voice_for(ENGLISH, installed, "joe") == "joe"
    assert voice_for(ENGLISH, installed, "paola") == "joe"  # and back


def test_the_active_voice_when_the_language_cannot_be_told(installed: list[ModelRecord]) -> None:
    for text in ("", "OK", "Grazie!", "```python\nprint('hello world and the rest of it')\n```"):
        assert voice_for(text, installed, "paola") == "paola"
        assert voice_for(text, installed, None) is None


def test_the_active_voice_when_no_voice_speaks_the_language(installed: list[ModelRecord]) -> None:
    assert voice_for(GERMAN, installed, "joe") == "joe"
    assert voice_for(GERMAN, installed, None) is None
    assert voice_for(ITALIAN, [], "joe") == "joe"


def test_none_means_the_active_voice(installed: list[ModelRecord]) -> None:
    assert voice_for(ITALIAN, installed, None) == "paola"
    assert voice_for(ENGLISH, installed, None) == "joe"


def test_only_voices_are_chosen(tmp_path: Path, installed: list[ModelRecord]) -> None:
    speech = voice("whisper-base", tmp_path / "whisper-base", "it", job=Job.SPEECH)
    assert voice_for(ITALIAN, [speech], "joe") == "joe"
    assert voice_for(ITALIAN, [speech, *installed], "joe") == "paola"


def test_markdown_answers_are_judged_by_their_words(installed: list[ModelRecord]) -> None:
    answer = ("Ecco come si fa:\n\n```python\nfor item in items:\n    print(item)  # print each one\n```\n\n"
              "Il ciclo stampa ogni elemento della lista, uno per riga.")
    assert voice_for(answer, installed, "joe") == "paola"


def test_a_voice_language_comes_from_its_onnx_json(tmp_path: Path) -> None:
    italian = write_voice(tmp_path, "it_IT-paola-medium", piper_config("it_IT", "it"))
    brazilian = write_voice(tmp_path, "old-voice", {"espeak": {"voice": "pt-br"}})  # no "language" section
    nothing = write_voice(tmp_path, "mute", {"audio": {"sample_rate": 16000}})
    broken = write_voice(tmp_path, "broken", None)
    broken.with_name(broken.name + ".json").write_text("{not json")
    alone = write_voice(tmp_path, "alone", None)
    odd = write_voice(tmp_path, "odd", {"language": {"code": "../../etc"}, "espeak": ["it"]})
    assert voice_language(italian) == "it_IT"
    assert voice_language(brazilian) == "pt-br"
    assert [voice_language(p) for p in (nothing, broken, alone, odd)] == [None] * 4
    assert inspect_model_file(italian, Job.VOICE).info == {"language": "it_IT"}  # kept on the record
    assert inspect_model_file(alone, Job.VOICE).info == {}


def test_language_of_a_record(tmp_path: Path) -> None:
    assert language_of(voice("a", tmp_path / "a.onnx", "it_IT")) == "it"
    assert language_of(voice("b", tmp_path / "b.onnx", "pt-br")) == "pt"
    assert language_of(voice("c", tmp_path / "c.onnx")) is None  # nothing recorded, no file
    # a voice registered before languages were recorded: read from its file
    older = write_voice(tmp_path, "fr_FR-siwis-medium", piper_config("fr_FR", "fr"))
    assert language_of(voice("d", older)) == "fr"
    assert voice_for("C'est une ville avec une très longue histoire et beaucoup de musées.",
                     [voice("d", older)], "joe") == "d"


class Installed:
    """What `voice_chooser` asks of the model manager: the installed voices and the active one."""

    def __init__(self, voices: list[ModelRecord], active: str | None) -> None:
        self.voices, self.active_id = voices, active

    def installed(self, job: str | None = None) -> list[ModelRecord]:
        return [v for v in self.voices if job is None or v.job == job]

    def active(self, job: str) -> ModelRecord | None:
        return next((v for v in self.voices if v.id == self.active_id and v.job == job), None)


def test_the_chooser_follows_what_is_installed_and_active_when_asked(installed: list[ModelRecord]) -> None:
    manager = Installed(installed[:1], "joe")
    choose = voice_chooser(manager)  # type: ignore[arg-type]
    assert choose(ITALIAN) == "joe"  # no Italian voice yet: the active one reads it
    manager.voices = installed  # one is installed later: the same chooser finds it
    assert choose(ITALIAN) == "paola"
    assert choose(ENGLISH) == "joe"
    manager.active_id = "riccardo"
    assert choose(ITALIAN) == "riccardo"
    manager.voices, manager.active_id = [], None
    assert choose(ITALIAN) is None  # nothing installed: "the active one", which says there is none
