"""A spoken conversation: turns heard from a live microphone (real speech, the real Silero VAD),
written to a real conversation service and database, and answered aloud as they are written.

Whisper's place is taken by `Ears`, which hears exactly which of the test's sentences a turn's
audio holds (by finding their samples in the WAV it is given), and the voice's by `Voice`, which
says each piece as a few chunks at a pace the test sets. The answers come from `ScriptedChat`
in the quick tests, a word at a time, so that barge-in, Stop and closing can be timed; the tests
marked `engine` have the bundled SmolLM2 write them.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from backend.audio.vad import TurnDetector, TurnEnded, TurnPaused
from backend.chat.voice_turns import MAX_FRAME_BYTES, VoiceConversation
from backend.core.errors import AppError, ErrorCode
from backend.engines.llm import ChatRequest, ChatResult, PromptReady, TokenDelta
from backend.engines.speech import TranscribeRequest, TranscribeResult
from backend.engines.voice import AudioChunk, SpeakRequest, SpeakResult, speakable
from backend.runtime.host import EngineHost, EngineJob
from backend.runtime.protocol import Event, JobDone
from backend.services import Services
from backend.storage.conversations import MessageStatus
from tests.audiofiles import words
from tests.backend.audio.test_vad import FOLLOW_UP, QUESTION, pcm, silence, speech

END = 0.8
"""Silence after a turn: more than the 480 ms that ends it."""
STORY = "Tell me a long story about a lighthouse keeper."
LONG_ANSWER = " ".join(
    f"Part {n}: the keeper climbed the stairs, lit the lamp and watched the ships go by." for n in range(1, 7))
SHORT_ANSWER = "Paris is the capital of France. It lies on the Seine."


# stand-ins for the engines --------------------------------------------------------------------

def as_heard(samples: np.ndarray) -> bytes:
    """Samples as the conversation writes them for the speech engine (through the detector's floats)."""
    floats = samples.astype(np.float32) / 32768.0
    return (np.clip(floats, -1.0, 1.0) * 32767).astype("<i2").tobytes()


@dataclass
class Hearing:
    samples: int
    text: str
    finished: bool = False
    cancelled: bool = False


@dataclass
class Ears:
    """Whisper's place: a turn's words are the known sentences whose middle its audio holds.
    `hold` keeps every transcription waiting; `instead` is written whatever was said."""

    known: list[str]
    hold: asyncio.Event = field(default_factory=asyncio.Event)
    instead: str | None = None
    delay_s: float = 0.0
    calls: list[Hearing] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.hold.set()
        self._marks = []
        for text in self.known:
            heard = as_heard(speech(text))
            middle = len(heard) // 4 * 2
            self._marks.append((text, heard[middle:middle + 1600]))

    def __call__(self, request: TranscribeRequest, job: EngineJob) -> AsyncIterator[Event]:
        return self._hear(request, job)

    async def _hear(self, request: TranscribeRequest, job: EngineJob) -> AsyncIterator[Event]:
        assert request.turn and not request.vad
        data = Path(request.audio_path).read_bytes()  # now: the file is gone once the turn is heard
        found = sorted((data.find(mark), text) for text, mark in self._marks if mark in data)
        call = Hearing(samples=(len(data) - 44) // 2, text=" ".join(text for _, text in found))
        self.calls.append(call)
        try:
            await self.hold.wait()
            await asyncio.sleep(self.delay_s)
        except asyncio.CancelledError:
            call.cancelled = True
            raise
        call.finished = True
        yield JobDone(job_id=job.id, result=TranscribeResult(text=self.instead if self.instead is not None
                                                             else call.text))

    @property
    def finished(self) -> list[Hearing]:
        return [c for c in self.calls if c.finished]


@dataclass
class ScriptedChat:
    """The chat model's place: the answers given, a word every `every_s` seconds; a cancel is
    seen between words, as the real engine sees it between tokens."""

    answers: list[str] = field(default_factory=list)
    every_s: float = 0.01
    requests: list[ChatRequest] = field(default_factory=list)

    async def stream(self, request: ChatRequest, job: EngineJob, *, model_id: str | None = None,
                     on_position: Any = None) -> AsyncIterator[Event]:
        self.requests.append(request)
        text = self.answers.pop(0) if self.answers else "Yes."
        yield PromptReady(job_id=job.id, prompt_tokens=20, cached_tokens=0, trimmed_messages=0)
        count = 0
        for word in re.findall(r"\S+\s*", text):
            await asyncio.sleep(self.every_s)
            if job.cancelled:
                yield JobDone(job_id=job.id, result=ChatResult(finish_reason="cancelled", completion_tokens=count))
                return
            count += 1
            yield TokenDelta(job_id=job.id, text=word)
        yield JobDone(job_id=job.id, result=ChatResult(finish_reason="stop", completion_tokens=count))

    def cancel(self, job: EngineJob) -> None:
        job.cancelled = True


@dataclass
class Voice:
    """The voice's place: each piece said as `chunks` chunks of PCM, one every `every_s` seconds.
    Notes, for each piece, whether the answer was still being written when it was asked for."""

    writing: Callable[[], bool]
    chunks: int = 3
    every_s: float = 0.005
    asked: list[tuple[str, bool]] = field(default_factory=list)

    async def stream(self, request: SpeakRequest, job: EngineJob, model_id: str | None = None
                     ) -> AsyncIterator[Event]:
        self.asked.append((request.text, self.writing()))
        for index in range(self.chunks):
            await asyncio.sleep(self.every_s)
            yield AudioChunk(job_id=job.id, pcm=b"\x10\x00" * 160, sample_rate=22_050, index=index)
        yield JobDone(job_id=job.id, result=SpeakResult(sample_rate=22_050, chunks=self.chunks))


# a conversation ---------------------------------------------------------------------------------

@dataclass
class Talk:
    services: Services
    ears: Ears
    voice: Voice
    session: VoiceConversation
    log: list[dict[str, Any]] = field(default_factory=list)
    """The events sent, and each message of sound as {"type": "audio", "turn", "rate", "bytes"}."""

    def of(self, kind: str, turn: int | None = None) -> list[dict[str, Any]]:
        return [e for e in self.log if e["type"] == kind and (turn is None or e.get("turn") == turn)]

    def kinds(self) -> list[str]:
        """The events' types, a run of `answer` (or of sound) as one."""
        out: list[str] = []
        for event in self.log:
            if not out or event["type"] not in ("answer", "audio") or out[-1] != event["type"]:
                out.append(event["type"])
        return out

    async def say(self, *parts: np.ndarray, pace: float = 0.0) -> None:
        """Send the parts as the microphone does, 100 ms to a message (each `pace` s after the last)."""
        data = pcm(*parts)
        for at in range(0, len(data), 3200):
            await self.session.hear(data[at:at + 3200])
            await asyncio.sleep(pace)

    async def until(self, done: Callable[[], Any], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"waited {timeout} s; events: {self.kinds()}"
            await asyncio.sleep(0.01)

    async def answered(self, turn: int, timeout: float = 20.0) -> dict[str, Any]:
        """Until the turn is over (its timings, then `listening`); its `answered` event."""
        def over() -> bool:
            timings = self.of("timings", turn)
            return bool(timings) and any(e["type"] == "listening" for e in self.log[self.log.index(timings[0]):])
        await self.until(over, timeout)
        return self.of("answered", turn)[0]

    async def idle(self) -> None:
        """Until no answer is being written."""
        await self.until(lambda: not self.services.conversations.active)


def make_talk(services: Services, *, known: list[str], conversation_id: str | None = None) -> Talk:
    ears = Ears(known)
    voice = Voice(writing=lambda: bool(services.conversations.active))
    log: list[dict[str, Any]] = []

    async def send(event: dict[str, Any]) -> None:
        log.append(event)

    async def send_audio(turn: int, rate: int, data: bytes) -> None:
        log.append({"type": "audio", "turn": turn, "rate": rate, "bytes": len(data)})

    session = VoiceConversation(conversations=services.conversations, transcribe=ears,
                                voice=cast(EngineHost, voice), media=services.media,
                                conversation_id=conversation_id, send=send, send_audio=send_audio)
    return Talk(services, ears, voice, session, log)


@pytest.fixture
def chat(services: Services) -> Iterator[ScriptedChat]:
    """The services' chat model replaced by a script."""
    scripted = ScriptedChat()
    real = services.answers.local
    services.answers.local = cast(EngineHost, scripted)
    yield scripted
    services.answers.local = real


@pytest.fixture
async def talk(services: Services, chat: ScriptedChat) -> AsyncIterator[Talk]:
    made = make_talk(services, known=[QUESTION, FOLLOW_UP])
    yield made
    await made.session.close()
    await made.idle()


def pauses_and_end(data: bytes) -> tuple[list[TurnPaused], list[TurnEnded]]:
    """What the detector makes of the same sound, on its own."""
    events = TurnDetector().feed(data)
    return ([e for e in events if isinstance(e, TurnPaused)], [e for e in events if isinstance(e, TurnEnded)])


# one turn ----------------------------------------------------------------------------------------

async def test_one_turn_heard_answered_and_saved(talk: Talk, chat: ScriptedChat) -> None:
    chat.answers = [SHORT_ANSWER]
    await talk.say(silence(0.5), speech(QUESTION), silence(END))
    answered = await talk.answered(1)

    kinds = [k for k in talk.kinds() if k not in ("answer", "audio")]
    assert kinds == ["hearing", "thinking", "heard", "conversation", "answered", "timings", "listening"]
    assert talk.kinds().index("answer") < talk.kinds().index("answered")
    last_audio = max(i for i, e in enumerate(talk.log) if e["type"] == "audio")
    assert talk.log.index(talk.of("conversation")[0]) < talk.log.index(talk.of("audio")[0])
    assert last_audio < talk.log.index(answered)  # all the sound before `answered`

    heard = talk.of("heard", 1)[0]
    assert heard["text"] == QUESTION
    conversation_id = talk.of("conversation")[0]["id"]
    assert talk.session.conversation_id == conversation_id
    answers = talk.of("answer", 1)
    assert answers[-1]["text"] == SHORT_ANSWER and len({a["message_id"] for a in answers}) == 1
    assert all(answers[i]["text"].startswith(answers[i - 1]["text"]) for i in range(1, len(answers)))
    assert answered["status"] == "done" and answered["error"] is None
    assert answered["message_id"] == answers[0]["message_id"]
    assert {e["turn"] for e in talk.of("audio")} == {1} and {e["rate"] for e in talk.of("audio")} == {22_050}

    timings = talk.of("timings", 1)[0]
    assert timings["vad"] == 480.0
    assert timings["vad"] <= timings["heard"] <= timings["first_audio"] <= timings["answered"]

    # said aloud as it was written: the first piece was asked for before the answer was finished
    assert talk.voice.asked[0] == ("Paris is the capital of France.", True)
    assert words(" ".join(text for text, _ in talk.voice.asked)) == words(speakable(SHORT_ANSWER))

    # saved as any conversation is
    conversation = await talk.services.store.get(conversation_id)
    assert conversation is not None and conversation.title == "Voice conversation"
    messages = await talk.services.store.messages(conversation_id)
    assert [(m.role, m.content, m.status) for m in messages] == [
        ("user", QUESTION, MessageStatus.DONE), ("assistant", SHORT_ANSWER, MessageStatus.DONE)]
    assert messages[1].id == answered["message_id"]
    assert chat.requests[0].messages[-1] == {"role": "user", "content": QUESTION}
    # the turn's recording is not kept
    assert not [p for p in talk.services.media.root.rglob("*") if p.is_file()]


async def test_the_next_turn_goes_on_in_the_same_conversation(talk: Talk, chat: ScriptedChat) -> None:
    chat.answers = [SHORT_ANSWER, "Eight legs."]
    await talk.say(silence(0.5), speech(QUESTION), silence(END))
    await talk.answered(1)
    await talk.say(speech(FOLLOW_UP), silence(END))
    await talk.answered(2)
    assert len(talk.of("conversation")) == 1  # made once
    conversation_id = talk.of("conversation")[0]["id"]
    messages = await talk.services.store.messages(conversation_id)
    assert [(m.role, m.content) for m in messages] == [
        ("user", QUESTION), ("assistant", SHORT_ANSWER), ("user", FOLLOW_UP), ("assistant", "Eight legs.")]
    assert [m["content"] for m in chat.requests[1].messages if m["role"] == "user"] == [QUESTION, FOLLOW_UP]


async def test_an_existing_conversation_is_continued(services: Services, chat: ScriptedChat) -> None:
    conversation = await services.store.create(title="Planning")
    talk = make_talk(services, known=[QUESTION], conversation_id=conversation.id)
    chat.answers = [SHORT_ANSWER]
    await talk.say(silence(0.3), speech(QUESTION), silence(END))
    await talk.answered(1)
    await talk.session.close()
    assert not talk.of("conversation")
    assert [m.content for m in await services.store.messages(conversation.id)] == [QUESTION, SHORT_ANSWER]


@pytest.mark.parametrize("noise", ["", "you", "[BLANK_AUDIO]", " You "])
async def test_noise_is_nothing_heard_and_nothing_saved(talk: Talk, chat: ScriptedChat, noise: str) -> None:
    talk.ears.instead = noise
    await talk.say(silence(0.3), speech(QUESTION), silence(END))
    await talk.until(lambda: talk.of("listening"))
    assert talk.kinds() == ["hearing", "thinking", "nothing_heard", "listening"]
    assert talk.of("nothing_heard")[0]["turn"] == 1
    assert talk.session.conversation_id is None
    assert await talk.services.store.list_recent() == [] and chat.requests == []


async def test_an_audio_message_over_the_limit_is_refused(talk: Talk) -> None:
    with pytest.raises(AppError) as refused:
        await talk.session.hear(bytes(MAX_FRAME_BYTES + 2))
    assert refused.value.code == ErrorCode.BAD_REQUEST
    await talk.session.hear(bytes(MAX_FRAME_BYTES))  # the limit itself is fine
    assert talk.log == []


# transcribing ahead -----------------------------------------------------------------------------

async def test_the_transcription_started_at_the_pause_is_used(talk: Talk, chat: ScriptedChat) -> None:
    sound = (silence(0.5), speech(QUESTION), silence(END))
    pauses, ends = pauses_and_end(pcm(*sound))
    # the pause comes once the quiet has lasted `ahead_ms`, which is more than the turn's padding:
    # its audio is the turn's own
    assert len(ends) == 1 and np.array_equal(pauses[-1].audio, ends[0].audio)
    await talk.say(*sound, pace=0.01)
    await talk.answered(1)
    # one transcription was finished, the one started at the last pause; none was started at the end
    assert len(talk.ears.finished) == 1
    assert talk.ears.finished[0] is talk.ears.calls[-1]
    assert talk.ears.finished[0].samples == len(pauses[-1].audio)
    assert len(talk.ears.calls) <= len(pauses)
    assert all(c.cancelled for c in talk.ears.calls[:-1])
    assert talk.of("heard")[0]["text"] == QUESTION


async def test_the_transcription_at_a_pause_is_dropped_when_the_speech_goes_on(talk: Talk,
                                                                               chat: ScriptedChat) -> None:
    talk.ears.delay_s = 0.3  # still at work when the speech goes on
    await talk.say(silence(0.5), speech(QUESTION), silence(0.25), speech(FOLLOW_UP), silence(END), pace=0.01)
    await talk.answered(1)
    first_part = [c for c in talk.ears.calls if c.text == QUESTION]
    assert first_part and all(c.cancelled and not c.finished for c in first_part)
    assert [c.text for c in talk.ears.finished] == [f"{QUESTION} {FOLLOW_UP}"]
    assert [e["text"] for e in talk.of("heard")] == [f"{QUESTION} {FOLLOW_UP}"]
    assert len(talk.of("hearing")) == 1


async def test_a_turn_ended_while_the_last_is_transcribed_is_joined_to_it(talk: Talk, chat: ScriptedChat) -> None:
    talk.ears.hold.clear()  # the speech engine is slow today
    await talk.say(silence(0.5), speech(QUESTION), silence(END))
    await talk.until(lambda: talk.of("thinking", 1))
    await talk.say(speech(FOLLOW_UP), silence(END))  # the person goes on before the first was heard
    await talk.until(lambda: talk.of("thinking", 2))
    talk.ears.hold.set()
    await talk.answered(2)
    assert [k for k in talk.kinds() if k not in ("answer", "audio")] == [
        "hearing", "thinking", "hearing", "thinking", "heard", "conversation", "answered", "timings", "listening"]
    assert [(e["turn"], e["text"]) for e in talk.of("heard")] == [(2, f"{QUESTION} {FOLLOW_UP}")]
    messages = await talk.services.store.messages(talk.session.conversation_id or "")
    assert [(m.role, m.content) for m in messages if m.role == "user"] == [("user", f"{QUESTION} {FOLLOW_UP}")]
    assert len(chat.requests) == 1
    assert not [c for c in talk.ears.calls if c.finished and c.text == QUESTION]  # the first part alone: dropped


# barge-in, Stop and closing ----------------------------------------------------------------------

async def start_a_long_answer(talk: Talk, chat: ScriptedChat) -> str:
    """Ask; return once the answer's sound has begun while it is still being written."""
    chat.answers, chat.every_s = [LONG_ANSWER, SHORT_ANSWER], 0.015
    talk.voice.every_s = 0.02
    await talk.say(silence(0.3), speech(QUESTION), silence(END))
    await talk.until(lambda: talk.of("audio"))
    assert talk.services.conversations.active, "the answer was written before it was heard"
    return str(talk.of("answer", 1)[0]["message_id"])


async def test_barge_in_stops_the_answer_and_the_new_turn_is_heard(talk: Talk, chat: ScriptedChat) -> None:
    answer_id = await start_a_long_answer(talk, chat)
    await talk.say(speech(FOLLOW_UP), silence(END))
    await talk.answered(2)

    hearing_again = talk.log.index(talk.of("hearing")[1])
    assert not [e for e in talk.log[hearing_again:] if e.get("turn") == 1]  # no more of the first answer
    assert not talk.of("answered", 1) and not talk.of("timings", 1)
    stopped = await talk.services.store.get_message(answer_id)
    assert stopped is not None and stopped.status == MessageStatus.DONE
    assert stopped.stats["finish_reason"] == "cancelled"
    assert stopped.content and LONG_ANSWER.startswith(stopped.content) and stopped.content != LONG_ANSWER
    assert talk.of("heard", 2)[0]["text"] == FOLLOW_UP
    messages = await talk.services.store.messages(talk.session.conversation_id or "")
    assert [(m.role, m.content) for m in messages] == [
        ("user", QUESTION), ("assistant", stopped.content), ("user", FOLLOW_UP), ("assistant", SHORT_ANSWER)]


async def test_stop_stops_the_answer_and_listening_goes_on(talk: Talk, chat: ScriptedChat) -> None:
    answer_id = await start_a_long_answer(talk, chat)
    await talk.session.stop()
    assert talk.kinds()[-2:] == ["stopped", "listening"]
    stopped_at = len(talk.log)
    await talk.idle()
    await asyncio.sleep(0.1)
    assert len(talk.log) == stopped_at  # nothing more of the stopped turn
    answer = await talk.services.store.get_message(answer_id)
    assert answer is not None and answer.status == MessageStatus.DONE
    assert answer.stats["finish_reason"] == "cancelled" and LONG_ANSWER.startswith(answer.content)
    assert answer.content != LONG_ANSWER

    await talk.say(speech(FOLLOW_UP), silence(END))
    assert (await talk.answered(2))["status"] == "done"
    assert talk.of("heard", 2)[0]["text"] == FOLLOW_UP


async def test_close_stops_speaking_but_the_answer_is_finished_and_saved(talk: Talk, chat: ScriptedChat) -> None:
    answer_id = await start_a_long_answer(talk, chat)
    await talk.session.close()
    closed_at = len(talk.log)
    await talk.idle()
    assert len(talk.log) == closed_at  # no more sound, no `answered`
    answer = await talk.services.store.get_message(answer_id)
    assert answer is not None and answer.status == MessageStatus.DONE
    assert answer.content == LONG_ANSWER and answer.stats["finish_reason"] == "stop"


# with the bundled model -------------------------------------------------------------------------

@pytest.mark.engine
async def test_a_turn_answered_by_the_real_model(services: Services) -> None:
    conversation = await services.store.create(system_prompt="Answer in one short sentence.",
                                               settings={"max_tokens": 48, "temperature": 0})
    talk = make_talk(services, known=[QUESTION], conversation_id=conversation.id)
    await talk.say(silence(0.3), speech(QUESTION), silence(END))
    answered = await talk.answered(1, timeout=120)
    await talk.session.close()
    assert answered["status"] == "done", answered
    kinds = [k for k in talk.kinds() if k not in ("answer", "audio")]
    assert kinds == ["hearing", "thinking", "heard", "answered", "timings", "listening"]
    messages = await services.store.messages(conversation.id)
    assert [(m.role, m.status) for m in messages] == [("user", "done"), ("assistant", "done")]
    assert messages[0].content == QUESTION
    answer = messages[1].content
    assert answer and talk.of("answer", 1)[-1]["text"] == answer
    assert words(" ".join(text for text, _ in talk.voice.asked)) == words(speakable(answer))
    assert talk.of("audio") and set(talk.of("timings", 1)[0]) >= {"vad", "heard", "first_audio", "answered"}


@pytest.mark.engine
async def test_barge_in_stops_the_real_model(services: Services) -> None:
    conversation = await services.store.create(settings={"max_tokens": 1500, "temperature": 0.8})
    talk = make_talk(services, known=[STORY, FOLLOW_UP], conversation_id=conversation.id)
    talk.voice.every_s = 0.05
    await talk.say(silence(0.3), speech(STORY), silence(END))
    await talk.until(lambda: talk.of("audio"), timeout=120)
    assert services.conversations.active, "the story was written before it was heard"
    answer_id = talk.of("answer", 1)[0]["message_id"]
    await talk.say(speech(FOLLOW_UP), silence(END))
    await talk.answered(2, timeout=120)
    stopped = await services.store.get_message(answer_id)
    assert stopped is not None and stopped.status == MessageStatus.DONE
    assert stopped.stats["finish_reason"] == "cancelled" and stopped.content.strip()
    messages = await services.store.messages(conversation.id)
    assert [(m.role, m.content if m.role == "user" else "") for m in messages] == [
        ("user", STORY), ("assistant", ""), ("user", FOLLOW_UP), ("assistant", "")]
    assert messages[1].id == answer_id and messages[3].status == MessageStatus.DONE and messages[3].content
    await talk.session.close()
