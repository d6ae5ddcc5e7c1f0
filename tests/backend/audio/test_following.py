"""Reading an answer aloud while it is written: the pieces a growing Markdown answer is cut
into, and `follow_aloud` speaking them with a voice engine (a stand-in here that records what it
was asked to say, and when)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from backend.audio import following
from backend.audio.following import FIRST_CLAUSE_MIN, SpokenPieces, follow_aloud
from backend.core.errors import AppError, ErrorCode
from backend.engines.voice import AudioChunk, SpeakRequest, SpeakResult, speakable
from backend.runtime.host import EngineHost, EngineJob
from backend.runtime.protocol import Event, JobDone, JobFailed
from tests.audiofiles import words

ANSWER = """The capital of France is Paris, a city on the river Seine. It has about two million people!

## What to see

- The **Eiffel Tower**, built in 1889.
- The Louvre, home of the *Mona Lisa*.

1. Buy a museum pass.
2. Book the tower online.

To fetch the opening hours:

```python
import requests
print(requests.get("https://example.com/hours").text)  # Mon. to Fri.
```

That prints them. Is there anything else? See [the guide](https://example.com/paris) for more."""

ITALIAN = """Roma è la capitale d'Italia, una città antichissima. È famosa per il Colosseo! Vuoi sapere di più?

## Da vedere

- Il **Vaticano**, con la Cappella Sistina.
- La Fontana di Trevi.

Ecco un esempio:

```sh
curl https://example.com/roma. Poi basta.
```

Buon viaggio a Roma."""


def by_character(text: str) -> list[str]:
    """The pieces of `text` written one character at a time, then ended."""
    feed = SpokenPieces()
    pieces: list[str] = []
    for end in range(1, len(text) + 1):
        pieces += feed.feed(text[:end])
    return pieces + feed.feed(text, final=True)


def at_once(text: str) -> list[str]:
    feed = SpokenPieces()
    return feed.feed(text) + feed.feed(text, final=True)


def said(pieces: list[str]) -> list[str]:
    return words(" ".join(pieces))


# cutting -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [ANSWER, ITALIAN], ids=["english", "italian"])
def test_one_character_at_a_time_says_the_same_words_as_the_whole(text: str) -> None:
    pieces = by_character(text)
    assert len(pieces) >= 8
    assert said(pieces) == said(at_once(text)) == words(speakable(text))  # no word lost or said twice
    assert all(piece.strip() == piece and piece for piece in pieces)


def test_the_pieces_of_an_answer() -> None:
    assert by_character(ANSWER) == [
        "The capital of France is Paris,",  # the first clause, so the first sound comes early
        "a city on the river Seine.",
        "It has about two million people!",
        "What to see.",  # a heading
        "The Eiffel Tower , built in 1889.",  # a list item (no clause cut after the first piece)
        "The Louvre, home of the Mona Lisa .",
        "1. Buy a museum pass.",  # a numbered item is one piece, not "1." then the rest
        "2. Book the tower online.",
        "To fetch the opening hours:",
        "(code left out).",  # the block, once, when it closed
        "That prints them.",
        "Is there anything else?",
        "See the guide for more.",  # the link's words, not its address
    ]


def test_italian_is_cut_the_same_way() -> None:
    assert by_character(ITALIAN) == [
        "Roma è la capitale d'Italia,",
        "una città antichissima.",
        "È famosa per il Colosseo!",
        "Vuoi sapere di più?",
        "Da vedere.",
        "Il Vaticano , con la Cappella Sistina.",
        "La Fontana di Trevi.",
        "Ecco un esempio:",
        "(code left out).",
        "Buon viaggio a Roma.",
    ]


def test_markup_is_not_read() -> None:
    pieces = by_character(ANSWER)
    for mark in ("*", "#", "`", "[", "](", "http", "example.com", "- "):
        assert not any(mark in piece for piece in pieces), mark


def test_a_piece_is_given_once_it_is_whole() -> None:
    feed = SpokenPieces()
    assert feed.feed("It is sunny today.") == []  # the sentence may go on ("today.5")
    assert feed.feed("It is sunny today. ") == ["It is sunny today."]
    assert feed.feed("It is sunny today. Take a") == []
    assert feed.feed("It is sunny today. Take a hat\n") == ["Take a hat."]  # a line's end cuts too
    assert feed.feed("It is sunny today. Take a hat\n- water\n- shoes") == ["water."]
    assert feed.feed("It is sunny today. Take a hat\n- water\n- shoes", final=True) == ["shoes."]
    assert feed.feed("It is sunny today. Take a hat\n- water\n- shoes", final=True) == []


def test_nothing_inside_a_code_block_is_cut_or_read() -> None:
    text = "Try this:\n```python\nx = 1. \ny = 2! \nprint(x, y)\n```\nIt prints one and two."
    feed = SpokenPieces()
    seen: list[tuple[int, str]] = []
    for end in range(1, len(text) + 1):
        seen += [(end, p) for p in feed.feed(text[:end])]
    seen += [(len(text), p) for p in feed.feed(text, final=True)]
    closed = text.index("```\n", text.index("```") + 3) + 4
    assert seen == [(text.index("\n") + 1, "Try this:"), (closed, "(code left out)."),
                    (len(text), "It prints one and two.")]


def test_an_unclosed_code_block_is_never_read() -> None:
    text = "Run this:\n```sh\nls -la. Then this!\nrm -rf build\nmake all. "
    feed = SpokenPieces()
    pieces: list[str] = []
    for end in range(1, len(text) + 1):
        pieces += feed.feed(text[:end])
    assert pieces == ["Run this:"]
    assert feed.feed(text, final=True) == ["(code left out)."]  # the answer ended inside it
    assert "ls" not in " ".join(pieces) and "rm" not in " ".join(pieces)


def test_two_blocks_are_each_said_once() -> None:
    text = "First:\n```\na = 1. \n```\nthen:\n```\nb = 2. \n```\nDone."
    pieces = by_character(text)
    assert pieces == ["First:", "(code left out).", "then:", "(code left out).", "Done."]


def test_the_first_piece_can_be_a_clause() -> None:
    assert by_character("In the north of Italy, the winters are cold. The summers are hot.") == [
        "In the north of Italy,", "the winters are cold.", "The summers are hot."]
    # only the first: later commas wait for the sentence's end
    assert by_character("It rains. In the north of Italy, the winters are cold.") == [
        "It rains.", "In the north of Italy, the winters are cold."]


def test_a_tiny_first_clause_waits_for_more() -> None:
    assert len("Sure, ") < FIRST_CLAUSE_MIN
    assert by_character("Sure, here is the list you asked for.") == ["Sure, here is the list you asked for."]
    # "Yes;" is too short to be said alone; "Yes; of course:" is not
    assert by_character("Yes; of course: I can help, gladly.") == ["Yes; of course:", "I can help, gladly."]
    feed = SpokenPieces()
    assert feed.feed("Well, ") == [] and feed.feed("Well, i") == []  # a comma is a cut only once a word follows


def test_decimals_and_abbreviations() -> None:
    """A decimal point has no space after it: never a cut. An abbreviation's period followed by a
    space looks like a sentence end and is cut there: "e.g." ends a piece and the sentence goes on
    in the next. Nothing is lost or repeated, the voice only pauses a little after "e.g."."""
    assert by_character("Pi is about 3.14 and e is 2.718, more or less. Done.") == [
        "Pi is about 3.14 and e is 2.718,", "more or less.", "Done."]
    pieces = by_character("Bring something warm. A coat, e.g. a parka, is best. Thanks.")
    assert pieces == ["Bring something warm.", "A coat, e.g.", "a parka, is best.", "Thanks."]
    assert said(pieces) == words("Bring something warm. A coat, e.g. a parka, is best. Thanks.")


def test_markup_only_says_nothing() -> None:
    assert by_character("***\n\n---\n") == []
    assert by_character("**Hi!**\n") == ["Hi!"]


def test_growing_text_that_stops_mid_word_gives_it_at_the_end() -> None:
    feed = SpokenPieces()
    assert feed.feed("The answer is forty") == []
    assert feed.feed("The answer is forty-two", final=True) == ["The answer is forty-two."]


# following an answer aloud ---------------------------------------------------------------------

@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """`follow_aloud` looks at the answer every 30 ms; here every millisecond."""
    monkeypatch.setattr(following, "POLL_S", 0.001)


@dataclass
class Answer:
    """An answer being written: one more word each time it is looked at, then ended."""

    full: str
    shown: int = 0
    looks: int = 0

    @property
    def parts(self) -> list[str]:
        return re.findall(r"\S+\s*", self.full)

    @property
    def text(self) -> str:
        return "".join(self.parts[:self.shown])

    @property
    def ended(self) -> bool:
        return self.shown >= len(self.parts)

    def current(self) -> tuple[str, bool]:
        self.looks += 1
        self.shown = min(self.shown + 1, len(self.parts))
        return self.text, self.ended


def by_words(text: str) -> list[str]:
    """The pieces of `text` written a word at a time, then ended."""
    answer, feed, pieces = Answer(text), SpokenPieces(), []
    while not answer.ended:
        pieces += feed.feed(*answer.current()[:1])
    return pieces + feed.feed(text, final=True)


@dataclass
class Asked:
    text: str
    speed: float
    model_id: str | None
    written: int
    """How much of the answer had been written when the piece was asked for."""
    ended: bool


@dataclass
class Voice:
    """The voice engine's place: each piece is said as three chunks of PCM; `fail` makes a piece
    (by a word in it) fail with an error code, before its first chunk or (`late`) after it."""

    answer: Answer
    fail: dict[str, ErrorCode] = field(default_factory=dict)
    late: bool = False
    asked: list[Asked] = field(default_factory=list)
    rate: int = 22_050

    async def stream(self, request: SpeakRequest, job: EngineJob, model_id: str | None = None
                     ) -> AsyncIterator[Event]:
        self.asked.append(Asked(request.text, request.speed, model_id, len(self.answer.text), self.answer.ended))
        failing = next((code for word, code in self.fail.items() if word in request.text), None)
        if failing is not None and not self.late:
            yield JobFailed(job_id=job.id, code=failing, message="it failed")
            return
        for index in range(3):
            await asyncio.sleep(0)
            yield AudioChunk(job_id=job.id, pcm=piece_pcm(request.text, index), sample_rate=self.rate, index=index)
            if failing is not None:
                yield JobFailed(job_id=job.id, code=failing, message="it failed half-way")
                return
        yield JobDone(job_id=job.id, result=SpeakResult(sample_rate=self.rate, chunks=3))


def piece_pcm(text: str, index: int) -> bytes:
    """PCM that says which piece and which of its chunks it is."""
    return f"{text}#{index}".encode()


async def follow(voice: Voice, **options: Any) -> list[tuple[int, bytes]]:
    return [chunk async for chunk in follow_aloud(cast(EngineHost, voice), voice.answer.current, **options)]


async def test_pieces_are_spoken_as_they_become_whole() -> None:
    voice = Voice(Answer(ANSWER))
    chosen: list[str] = []

    def choose_voice(text: str) -> str:
        chosen.append(text)
        return "piper-it-riccardo"

    chunks = await follow(voice, speed=1.5, choose_voice=choose_voice)
    assert [a.text for a in voice.asked] == by_words(ANSWER)
    assert said([a.text for a in voice.asked]) == words(speakable(ANSWER))
    first = voice.asked[0]
    assert first.text == "The capital of France is Paris," and first.written < len(ANSWER) // 10
    assert all(not a.ended for a in voice.asked[:-1])  # each asked for as soon as it was whole
    for asked in voice.asked[:-1]:
        assert set(words(asked.text)) <= set(words(speakable(ANSWER[:asked.written])))
    assert len(chosen) == 1 and chosen[0].startswith("The capital of France is Paris,")  # once
    assert {(a.model_id, a.speed) for a in voice.asked} == {("piper-it-riccardo", 1.5)}
    # the sound comes as the voice made it, piece after piece, chunk after chunk
    assert {rate for rate, _ in chunks} == {22_050}
    assert [pcm for _, pcm in chunks] == [piece_pcm(a.text, i) for a in voice.asked for i in range(3)]


async def test_italian_is_followed_the_same_way() -> None:
    voice = Voice(Answer(ITALIAN))
    await follow(voice)
    assert [a.text for a in voice.asked] == by_words(ITALIAN)
    assert said([a.text for a in voice.asked]) == words(speakable(ITALIAN))
    assert voice.asked[0].text == "Roma è la capitale d'Italia,"


async def test_the_active_voice_is_used_without_a_chooser() -> None:
    voice = Voice(Answer("One sentence. And another one."))
    await follow(voice)
    assert [(a.text, a.model_id, a.speed) for a in voice.asked] == [
        ("One sentence.", None, 1.0), ("And another one.", None, 1.0)]


async def test_the_reading_waits_for_the_words() -> None:
    answer = Answer("Here it comes. Slowly.")
    voice = Voice(answer)
    await follow(voice)
    assert answer.looks == len(answer.parts)  # looked at again until it ended, then no more


async def test_a_piece_with_nothing_to_say_is_skipped() -> None:
    voice = Voice(Answer("First this. Then skip me. And the last one."),
                  fail={"skip": ErrorCode.NOTHING_TO_SAY})
    chunks = await follow(voice)
    assert [a.text for a in voice.asked] == ["First this.", "Then skip me.", "And the last one."]
    assert [pcm for _, pcm in chunks] == [piece_pcm(t, i) for t in ("First this.", "And the last one.")
                                          for i in range(3)]


@pytest.mark.parametrize("late", [False, True], ids=["before-its-sound", "after-its-first-sound"])
async def test_another_failure_ends_the_reading_with_its_error(late: bool) -> None:
    voice = Voice(Answer("First this. Then fail here. Never this one."),
                  fail={"fail": ErrorCode.WORKER_CRASHED}, late=late)
    got: list[bytes] = []
    with pytest.raises(AppError) as raised:
        async for _, chunk in follow_aloud(cast(EngineHost, voice), voice.answer.current):
            got.append(chunk)
    assert raised.value.code == ErrorCode.WORKER_CRASHED
    assert [a.text for a in voice.asked] == ["First this.", "Then fail here."]
    assert got == [piece_pcm("First this.", i) for i in range(3)] + ([piece_pcm("Then fail here.", 0)] if late else [])


async def test_an_answer_of_unfinished_code_is_said_to_be_left_out() -> None:
    voice = Voice(Answer("```\ncode only. Never finished. "))
    chunks = await follow(voice)
    assert [a.text for a in voice.asked] == ["(code left out)."]  # once, when the answer ended
    assert voice.asked[0].ended and len(chunks) == 3


async def test_an_answer_with_nothing_to_say_says_nothing() -> None:
    voice = Voice(Answer("*** --- ***"))
    assert await follow(voice) == [] and voice.asked == []


def test_text_without_stops_is_not_waited_on_forever() -> None:
    """A model that writes without stops (or a long list of words) is still read while it writes:
    past LONGEST_WAIT characters the text is cut at its last space, and no word is lost."""
    from backend.audio.following import LONGEST_WAIT

    words = " ".join(f"word{n}" for n in range(120))
    feed = SpokenPieces()
    spoken: list[str] = []
    first_at = None
    for end in range(1, len(words) + 1):
        got = feed.feed(words[:end])
        if got and first_at is None:
            first_at = end
        spoken += got
    spoken += feed.feed(words, final=True)
    assert first_at is not None and first_at <= LONGEST_WAIT + 10, first_at
    assert " ".join(spoken).replace(".", "").split() == words.split()
    # inside a code block nothing is cut, however long
    code = "```\n" + words
    feed = SpokenPieces()
    assert all(feed.feed(code[:end]) == [] for end in range(1, len(code) + 1))
