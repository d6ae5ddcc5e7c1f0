"""A spoken conversation: the person's turns heard from a live microphone, answered, and the
answers spoken while they are written.

`VoiceConversation` is fed the microphone's 16 kHz PCM as it arrives (the web socket in
`api/voice.py` does that) and says what happens through `send` (JSON-able events) and
`send_audio` (the answer's PCM). For each turn the person ends (voice activity detection,
`audio/vad.py`): the turn's audio is transcribed by the speech engine, sent to the
conversation as the person's message (so it is saved like any other), and the answer is read
aloud piece by piece as it streams (`audio/following.py`). When the person starts speaking
while the answer is written or spoken (barge-in), the answer is stopped — its text so far is
kept, as with Stop — and the new turn is heard. A turn that ends while the previous one is
still being transcribed is taken as its continuation (a pause mid-sentence), not a new one.

Events sent: `listening`, `hearing` (a turn began; the client stops playing), `heard` (the
words, or `nothing_heard`), `conversation` (a new one was made), `answer` (the text so far,
at most every 100 ms), `answered` (with its status), `stopped`, `error` (a code and a
message), and `timings` per turn (milliseconds from the end of the person's speech).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..audio.following import follow_aloud
from ..audio.intake import wav_bytes
from ..audio.vad import RATE, TurnDetector, TurnEnded, TurnPaused, TurnStarted, VadOptions
from ..core.errors import AppError, ErrorCode
from ..core.i18n import _
from ..engines.speech import TranscribeRequest, TranscribeResult
from ..runtime.host import EngineHost, EngineJob
from ..runtime.protocol import JobDone, JobFailed
from ..storage.media import MediaStore
from .conversations import ConversationService
from .replies import ActiveReply

__all__ = ["MAX_FRAME_BYTES", "VoiceConversation"]

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 64 * 1024
"""One message of microphone audio: 2 s of 16 kHz 16-bit sound, far more than clients send."""
ANSWER_EVERY_S = 0.1
SETTLE_S = 5.0
"""How long a new turn waits for the answer it interrupted to be saved before it is sent."""
_NOISE = {"", ".", "...", "…", "you", "thank you.", "[blank_audio]", "(music)", "[music]", "(silence)"}
"""What Whisper writes for a breath or a click rather than words."""

Transcriber = Callable[[TranscribeRequest, EngineJob], Any]


@dataclass(slots=True)
class _Turn:
    number: int
    end_sample: int
    detected_at: float
    """When the end of the person's speech was decided (monotonic)."""
    audio: np.ndarray
    ahead: asyncio.Task[str] | None = None
    """Its transcription, started at the first quiet moment (before the end was sure)."""
    stage: str = "transcribing"
    times: dict[str, float] = field(default_factory=dict)
    reply: ActiveReply | None = None


class VoiceConversation:
    def __init__(self, *, conversations: ConversationService, transcribe: Transcriber, voice: EngineHost,
                 media: MediaStore, conversation_id: str | None,
                 send: Callable[[dict[str, Any]], Awaitable[None]],
                 send_audio: Callable[[int, int, bytes], Awaitable[None]],
                 choose_voice: Callable[[str], str | None] | None = None,
                 language: str | None = None, speed: float = 1.0, vad: VadOptions | None = None) -> None:
        self.conversations = conversations
        self.transcribe = transcribe
        self.voice = voice
        self.media = media
        self.conversation_id = conversation_id
        self.send = send
        self.send_audio = send_audio
        self.choose_voice = choose_voice
        self.language = language
        self.speed = speed
        self.detector = TurnDetector(vad)
        self._turns = 0
        self._task: asyncio.Task[None] | None = None
        self._current: _Turn | None = None
        self._carry: np.ndarray | None = None
        """A turn cut off while it was being transcribed: the start of the next one."""
        self._last_reply: ActiveReply | None = None
        self._ahead: tuple[int, asyncio.Task[str]] | None = None
        """A transcription started at a pause (where the speech stopped, and the task)."""

    # the microphone --------------------------------------------------------------------------

    async def hear(self, pcm: bytes) -> None:
        if len(pcm) > MAX_FRAME_BYTES:
            raise AppError(ErrorCode.BAD_REQUEST, f"audio messages are at most {MAX_FRAME_BYTES} bytes")
        for event in self.detector.feed(pcm):
            if isinstance(event, TurnStarted):
                await self._barge_in()
                await self.send({"type": "hearing", "sample": event.sample})
            elif isinstance(event, TurnPaused):
                self._transcribe_ahead(event)
            elif isinstance(event, TurnEnded):
                self._start_turn(event)

    async def stop(self) -> None:
        """The Stop button: the answer stops being written and spoken; listening goes on."""
        await self._cancel(stop_answer=True)
        await self.send({"type": "stopped"})
        await self.send({"type": "listening"})

    async def close(self) -> None:
        """The voice mode closed (or the client left): speaking stops; an answer being written is
        finished and saved as any other."""
        await self._cancel(stop_answer=False)
        self._drop_ahead()

    # turns -----------------------------------------------------------------------------------

    async def _barge_in(self) -> None:
        turn = self._current
        if turn is None:
            return
        if turn.stage == "transcribing":  # a pause, not the end: this turn goes on in the next
            self._carry = turn.audio
        await self._cancel(stop_answer=True)

    async def _cancel(self, *, stop_answer: bool) -> None:
        task, turn = self._task, self._current
        self._task = self._current = None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if stop_answer and turn is not None and turn.reply is not None and not turn.reply.finished.is_set():
            self.conversations.stop(turn.reply.conversation_id)

    def _with_carry(self, audio: np.ndarray) -> np.ndarray:
        return audio if self._carry is None else np.concatenate([self._carry, audio])

    def _transcribe_ahead(self, paused: TurnPaused) -> None:
        """The speech stopped: transcribe what was said while waiting to know whether the turn is
        over (if it goes on, this is dropped at the next pause or end)."""
        self._drop_ahead()
        task = asyncio.get_running_loop().create_task(self._transcribe(self._with_carry(paused.audio)),
                                                      name="voice-transcribe-ahead")
        self._ahead = (paused.end, task)

    def _drop_ahead(self) -> None:
        if self._ahead is not None:
            self._ahead[1].cancel()
            self._ahead = None

    def _start_turn(self, ended: TurnEnded) -> None:
        audio = self._with_carry(ended.audio)
        ahead = None
        if self._ahead is not None and self._ahead[0] == ended.end:  # nothing was said since the pause
            ahead = self._ahead[1]
            self._ahead = None
        self._drop_ahead()
        self._carry = None
        self._turns += 1
        turn = _Turn(number=self._turns, end_sample=ended.end, audio=audio, detected_at=time.monotonic(),
                     ahead=ahead)
        turn.times["vad"] = (ended.detected_at - ended.end) * 1000 / RATE
        self._current = turn
        self._task = asyncio.get_running_loop().create_task(self._run(turn), name=f"voice-turn-{turn.number}")

    async def _run(self, turn: _Turn) -> None:
        try:
            await self.send({"type": "thinking", "turn": turn.number, "speech_end": turn.end_sample})
            text = await self._transcribed(turn)
            if text.strip().lower() in _NOISE:
                await self.send({"type": "nothing_heard", "turn": turn.number})
                return
            turn.stage = "answering"
            await self.send({"type": "heard", "turn": turn.number, "text": text})
            if self.conversation_id is None:
                conversation = await self.conversations.create(title=_("Voice conversation"))
                self.conversation_id = conversation.id
                await self.send({"type": "conversation", "id": conversation.id})
            turn.reply = await self._send(self.conversation_id, text)
            self._last_reply = turn.reply
            await self._speak(turn, turn.reply)
            await self.send({"type": "timings", "turn": turn.number, **{k: round(v, 1) for k, v in turn.times.items()}})
        except asyncio.CancelledError:
            raise
        except AppError as exc:
            await self.send({"type": "error", "turn": turn.number, "code": exc.code.value, "message": exc.message})
        except Exception:
            log.exception("voice turn %d failed", turn.number)
            await self.send({"type": "error", "turn": turn.number, "code": "internal",
                             "message": _("Something went wrong with this turn; try again.")})
        finally:
            if self._current is turn:
                self._current = self._task = None
                with contextlib.suppress(Exception):
                    await self.send({"type": "listening"})

    async def _send(self, conversation_id: str, text: str) -> ActiveReply:
        """The person's words to the conversation, once the answer stopped by a barge-in has settled.
        A cancel while it is being sent still lets it be sent, and stops the answer it started."""
        last = self._last_reply
        if last is not None and not last.finished.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(last.finished.wait(), SETTLE_S)
        sending = asyncio.ensure_future(self.conversations.send(conversation_id, text))
        try:
            return await asyncio.shield(sending)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                reply = await sending
                self.conversations.stop(reply.conversation_id)
            raise

    def _elapsed(self, turn: _Turn) -> float:
        return (time.monotonic() - turn.detected_at) * 1000 + turn.times["vad"]

    async def _transcribed(self, turn: _Turn) -> str:
        try:
            text = await (turn.ahead if turn.ahead is not None else self._transcribe(turn.audio))
        except asyncio.CancelledError:
            if turn.ahead is not None:
                turn.ahead.cancel()
            raise
        turn.times["heard"] = self._elapsed(turn)
        return text

    async def _transcribe(self, audio: np.ndarray) -> str:
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        name = self.media.new_name("voice", "wav")
        await self.media.write_bytes(name, wav_bytes(pcm, RATE))
        job = EngineJob()
        result: TranscribeResult | None = None
        try:
            request = TranscribeRequest(audio_path=str(self.media.path(name)), language=self.language, vad=False,
                                        max_seconds=120.0, turn=True)
            async with contextlib.aclosing(self.transcribe(request, job)) as events:
                async for event in events:
                    if isinstance(event, JobFailed):
                        raise AppError(event.code, event.message)
                    if isinstance(event, JobDone) and isinstance(event.result, TranscribeResult):
                        result = event.result
        except asyncio.CancelledError:
            job.cancelled = True
            raise
        finally:
            self.media.delete(name)
        return (result.text if result else "").strip()

    async def _speak(self, turn: _Turn, reply: ActiveReply) -> None:
        """Read the answer aloud as it is written, and show its words as they come."""
        async def show() -> None:
            shown = ""
            while True:
                if reply.text != shown:
                    shown = reply.text
                    await self.send({"type": "answer", "turn": turn.number, "message_id": reply.message_id,
                                     "text": shown})
                if reply.finished.is_set() and reply.text == shown:
                    return
                await asyncio.sleep(ANSWER_EVERY_S)

        showing = asyncio.get_running_loop().create_task(show(), name=f"voice-answer-{turn.number}")
        try:
            speaking = follow_aloud(self.voice, lambda: (reply.text, reply.finished.is_set()), speed=self.speed,
                                    choose_voice=self.choose_voice)
            async with contextlib.aclosing(speaking) as chunks:  # type: ignore[type-var]
                async for rate, pcm in chunks:
                    if "first_audio" not in turn.times:
                        turn.times["first_audio"] = self._elapsed(turn)
                    await self.send_audio(turn.number, rate, pcm)
            await reply.finished.wait()
            await showing
        finally:
            showing.cancel()
        turn.times["answered"] = self._elapsed(turn)
        await self.send({"type": "answered", "turn": turn.number, "message_id": reply.message_id,
                         "status": reply.status.value, "error": reply.error})
