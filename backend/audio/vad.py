"""Where a person's turn begins and ends, in a live stream of 16 kHz speech: Silero VAD (the
ONNX model faster-whisper ships) run frame by frame.

Each 32 ms frame (512 samples, with the 64 before it as context, as the model was trained)
gives a probability of speech; the model's state carries from frame to frame. A turn
*begins* once speech has lasted `min_speech_ms` (a cough or a click does not start one) and
*ends* once it has been quiet for `end_silence_ms`; the turn's audio starts `pre_roll_ms`
before the first speech frame (the soft start of a word) and ends `post_pad_ms` after the
last. A turn longer than `max_turn_s` is ended there. One frame costs about 0.1 ms of CPU,
so the detector runs in the server's loop.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field

import numpy as np

__all__ = ["FRAME", "RATE", "TurnDetector", "TurnEnded", "TurnPaused", "TurnStarted", "VadOptions"]

RATE = 16_000
FRAME = 512
CONTEXT = 64
_FRAME_MS = FRAME * 1000 / RATE


@dataclass(frozen=True, slots=True)
class VadOptions:
    threshold: float = 0.5
    """A frame at or above this probability is speech."""
    end_threshold: float = 0.35
    """Within speech, a frame below this is silence (between the two, speech goes on)."""
    min_speech_ms: int = 224
    end_silence_ms: int = 480
    ahead_ms: int = 160
    """Quiet after which the turn *may* be over (`TurnPaused`): shorter pauses between words are
    not worth a transcription that would be thrown away."""
    pre_roll_ms: int = 320
    post_pad_ms: int = 96
    max_turn_s: float = 30.0


@dataclass(frozen=True, slots=True)
class TurnStarted:
    sample: int
    """Where the speech began, counted in samples from the start of the stream."""


@dataclass(frozen=True, slots=True)
class TurnEnded:
    start: int
    end: int
    """The last speech sample (exclusive), counted from the start of the stream."""
    audio: np.ndarray = field(repr=False)
    """The turn's float32 samples, padded before and after."""
    detected_at: int = 0
    """Where the stream was when the end was decided (end + the silence waited for)."""


@dataclass(frozen=True, slots=True)
class TurnPaused:
    """Quiet for `ahead_ms` after speech: the turn may be over (it is, if the quiet lasts), so
    its audio can be transcribed ahead of the decision."""

    start: int
    end: int
    audio: np.ndarray = field(repr=False)


@functools.cache
def _session() -> object:
    from faster_whisper.vad import get_vad_model

    return get_vad_model().session


_session_lock = threading.Lock()


class TurnDetector:
    """Feed it PCM as it arrives; it returns `TurnStarted` and `TurnEnded` events."""

    def __init__(self, options: VadOptions | None = None) -> None:
        self.options = options or VadOptions()
        o = self.options
        self._speech_frames_needed = max(1, round(o.min_speech_ms / _FRAME_MS))
        self._silence_frames_needed = max(1, round(o.end_silence_ms / _FRAME_MS))
        self._ahead_frames = max(1, round(o.ahead_ms / _FRAME_MS))
        self._pre_roll = int(o.pre_roll_ms * RATE / 1000)
        self._post_pad = int(o.post_pad_ms * RATE / 1000)
        self._max_turn = int(o.max_turn_s * RATE)
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._odd = b""
        """A byte of a sample whose other byte has not arrived yet."""
        self._kept = np.zeros(0, dtype=np.float32)
        """Audio from `_kept_from` on: the pre-roll while waiting, the turn while in one."""
        self._kept_from = 0
        self.position = 0
        """Samples framed so far."""
        self._run = 0
        """Consecutive speech frames while waiting; consecutive silent frames within a turn."""
        self._speech_start: int | None = None
        self._last_speech_end = 0
        self.in_turn = False

    def _reset(self) -> None:
        """Forget the turn in progress (not the model's sense of the sound so far)."""
        self.in_turn = False
        self._run = 0
        self._speech_start = None

    def feed(self, pcm: bytes) -> list[TurnStarted | TurnPaused | TurnEnded]:
        """16-bit little-endian mono samples at 16 kHz (any length)."""
        pcm = self._odd + bytes(pcm)
        whole = len(pcm) - len(pcm) % 2
        self._odd = pcm[whole:]
        samples = np.frombuffer(pcm[:whole], dtype="<i2").astype(np.float32) / 32768.0
        self._pending = np.concatenate([self._pending, samples])
        events: list[TurnStarted | TurnPaused | TurnEnded] = []
        while len(self._pending) >= FRAME:
            frame, self._pending = self._pending[:FRAME], self._pending[FRAME:]
            event = self._frame(frame)
            if event is not None:
                events.append(event)
        return events

    def _probability(self, frame: np.ndarray) -> float:
        window = np.concatenate([self._context, frame])[None, :]
        self._context = frame[-CONTEXT:].copy()
        with _session_lock:
            out, self._h, self._c = _session().run(  # type: ignore[attr-defined]
                None, {"input": window, "h": self._h, "c": self._c})
        return float(np.asarray(out).reshape(-1)[0])

    def _frame(self, frame: np.ndarray) -> TurnStarted | TurnPaused | TurnEnded | None:
        o = self.options
        start = self.position
        self.position += FRAME
        p = self._probability(frame)
        self._keep(frame)
        if not self.in_turn:
            if p >= o.threshold:
                self._run += 1
                if self._speech_start is None:
                    self._speech_start = start
                if self._run >= self._speech_frames_needed:
                    self.in_turn = True
                    self._run = 0
                    self._last_speech_end = self.position
                    return TurnStarted(sample=self._speech_start)
            else:
                self._run = 0
                self._speech_start = None
            return None
        if p >= o.end_threshold:
            self._run = 0
            self._last_speech_end = self.position
        else:
            self._run += 1
        too_long = self._speech_start is not None and self.position - self._speech_start >= self._max_turn
        if self._run >= self._silence_frames_needed or too_long:
            return self._end()
        if self._run == self._ahead_frames:
            begin, stop = self._span()
            return TurnPaused(start=self._speech_start or 0, end=self._last_speech_end,
                              audio=self._kept[begin - self._kept_from:stop - self._kept_from].copy())
        return None

    def _span(self) -> tuple[int, int]:
        """The turn's audio: from the pre-roll before its speech to a little after its last."""
        assert self._speech_start is not None
        begin = max(self._kept_from, self._speech_start - self._pre_roll)
        return begin, min(self._kept_from + len(self._kept), self._last_speech_end + self._post_pad)

    def _keep(self, frame: np.ndarray) -> None:
        """Keep the turn's audio, or only the last pre-roll while waiting for one (and this frame,
        which may be the first of the speech)."""
        self._kept = np.concatenate([self._kept, frame])
        if not self.in_turn and self._speech_start is None:
            excess = len(self._kept) - self._pre_roll - len(frame)
            if excess > 0:
                self._kept = self._kept[excess:]
                self._kept_from += excess

    def _end(self) -> TurnEnded:
        assert self._speech_start is not None
        begin, stop = self._span()
        audio = self._kept[begin - self._kept_from:stop - self._kept_from].copy()
        event = TurnEnded(start=self._speech_start, end=self._last_speech_end, audio=audio, detected_at=self.position)
        self._kept = self._kept[max(0, len(self._kept) - self._pre_roll):]
        self._kept_from = self.position - len(self._kept)
        self._reset()
        return event
