"""Where a person's turn begins and ends: the real Silero model (it ships with faster-whisper)
on real speech, sentences the bundled Piper voice speaks, resampled to 16 kHz.

The speech helpers here (`speech`, `silence`, `pcm`) are used by the voice conversation's
tests too.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

from backend.audio.vad import FRAME, RATE, TurnDetector, TurnEnded, TurnPaused, TurnStarted, VadOptions

QUESTION = "What is the capital of France?"
FOLLOW_UP = "How many legs does a spider have?"
LOUD = 500
"""A sample above this (of 32768) is taken as speech when finding where the speech is."""
NEAR = int(0.150 * RATE)
"""How far the detector's start and end may be from where the speech begins and ends."""
OPTIONS = VadOptions()
END_SILENCE = round(OPTIONS.end_silence_ms / (FRAME * 1000 / RATE)) * FRAME
PRE_ROLL = OPTIONS.pre_roll_ms * RATE // 1000
POST_PAD = OPTIONS.post_pad_ms * RATE // 1000


# speech ---------------------------------------------------------------------------------------

@functools.cache
def _piper() -> Any:
    from piper import PiperVoice

    from backend.models.local import bundled_voice

    model = bundled_voice()
    if model is None:
        pytest.fail("the bundled Piper voice is not installed (see requirements/bundled-models.txt)")
    return PiperVoice.load(str(model))


@functools.cache
def _spoken(text: str) -> bytes:
    from piper import SynthesisConfig

    voice = _piper()
    steady = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)  # the same sound at every run
    raw = np.frombuffer(b"".join(c.audio_int16_bytes for c in voice.synthesize(text, syn_config=steady)),
                        dtype="<i2").astype(np.float64)
    rate = voice.config.sample_rate
    n = len(raw) * RATE // rate
    resampled = np.interp(np.arange(n) * rate / RATE, np.arange(len(raw)), raw)
    loud = np.nonzero(np.abs(resampled) > LOUD)[0]
    margin = RATE // 50  # 20 ms either side of the speech: Piper's own silence is cut off
    trimmed = resampled[max(0, loud[0] - margin):loud[-1] + margin]
    return np.round(trimmed).clip(-32768, 32767).astype("<i2").tobytes()


def speech(text: str) -> np.ndarray:
    """`text` spoken by the bundled Piper voice: 16-bit samples at 16 kHz, from the first sound to
    the last (20 ms either side)."""
    return np.frombuffer(_spoken(text), dtype="<i2").copy()


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype="<i2")


def pcm(*parts: np.ndarray) -> bytes:
    """The parts one after another, as the microphone sends them."""
    return np.concatenate(parts).astype("<i2").tobytes()


def speech_span(samples: np.ndarray, at: int) -> tuple[int, int]:
    """Where the speech placed at sample `at` begins and ends (its first and past its last loud sample)."""
    loud = np.nonzero(np.abs(samples.astype(np.int32)) > LOUD)[0]
    return at + int(loud[0]), at + int(loud[-1]) + 1


def as_float(data: bytes) -> np.ndarray:
    """The stream as the detector holds it."""
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


Event = TurnStarted | TurnPaused | TurnEnded


def detect(data: bytes, options: VadOptions | None = None, size: int | None = None) -> list[Event]:
    detector = TurnDetector(options)
    step = size or len(data) or 1
    events: list[Event] = []
    for i in range(0, len(data), step):
        events += detector.feed(data[i:i + step])
    return events


def kinds(events: list[Event]) -> list[str]:
    return [type(e).__name__ for e in events]


def summary(event: Event) -> tuple[Any, ...]:
    if isinstance(event, TurnStarted):
        return ("started", event.sample)
    if isinstance(event, TurnPaused):
        return ("paused", event.start, event.end, len(event.audio))
    return ("ended", event.start, event.end, event.detected_at, len(event.audio))


# tests ----------------------------------------------------------------------------------------

def test_one_turn() -> None:
    said = speech(QUESTION)
    data = pcm(silence(1.0), said, silence(1.0))
    begins, ends = speech_span(said, RATE)
    events = detect(data)

    assert kinds(events)[0] == "TurnStarted" and kinds(events)[-1] == "TurnEnded"
    assert kinds(events).count("TurnStarted") == kinds(events).count("TurnEnded") == 1
    started, ended = events[0], events[-1]
    assert isinstance(started, TurnStarted) and isinstance(ended, TurnEnded)
    assert abs(started.sample - begins) <= NEAR, (started.sample - begins) / RATE
    assert ended.start == started.sample
    assert abs(ended.end - ends) <= NEAR, (ended.end - ends) / RATE
    assert ended.detected_at - ended.end == END_SILENCE  # 15 frames of 32 ms: the 480 ms waited for

    # the pause that turned out to be the end came just before it, with the same speech
    paused = events[-2]
    assert isinstance(paused, TurnPaused)
    assert (paused.start, paused.end) == (ended.start, ended.end)
    assert np.array_equal(paused.audio, ended.audio[:len(paused.audio)])
    assert all(isinstance(e, TurnPaused) and e.start == started.sample for e in events[1:-1])

    # the turn's audio: from the pre-roll before the speech to a little after it, as it was fed
    stream = as_float(data)
    assert len(ended.audio) == ended.end - ended.start + PRE_ROLL + POST_PAD
    assert np.array_equal(ended.audio, stream[ended.start - PRE_ROLL:ended.end + POST_PAD])
    assert ended.audio.dtype == np.float32


def test_two_turns_separated_by_silence() -> None:
    first, second = speech(QUESTION), speech(FOLLOW_UP)
    data = pcm(silence(1.0), first, silence(1.5), second, silence(1.0))
    spans = [speech_span(first, RATE), speech_span(second, RATE + len(first) + int(1.5 * RATE))]
    events = detect(data)
    starts = [e for e in events if isinstance(e, TurnStarted)]
    ends = [e for e in events if isinstance(e, TurnEnded)]
    assert len(starts) == len(ends) == 2, kinds(events)
    for started, ended, (begins, stops) in zip(starts, ends, spans, strict=True):
        assert abs(started.sample - begins) <= NEAR and abs(ended.end - stops) <= NEAR
        assert ended.start == started.sample
    assert ends[0].detected_at < starts[1].sample  # the first was over before the second began
    assert kinds(events).index("TurnEnded") < kinds(events).index("TurnStarted", 1)


def test_a_click_or_a_burst_of_noise_is_not_a_turn() -> None:
    rng = np.random.default_rng(7)
    click = silence(0.02)
    click[:10], click[10:20] = 30_000, -30_000
    burst = (rng.standard_normal(int(0.06 * RATE)) * 16_000).clip(-32768, 32767).astype("<i2")
    knock = (np.sin(np.arange(int(0.05 * RATE)) * 2 * np.pi * 120 / RATE)
             * np.exp(-np.arange(int(0.05 * RATE)) / 200) * 25_000).astype("<i2")
    data = pcm(silence(0.5), click, silence(1.0), burst, silence(1.0), knock, silence(1.0))
    assert detect(data) == []


def loudest(samples: np.ndarray, milliseconds: int) -> np.ndarray:
    """The loudest stretch of speech this long."""
    window = int(milliseconds * RATE / 1000)
    at = int(np.argmax(np.convolve(np.abs(samples.astype(np.float64)), np.ones(window), "valid")))
    return samples[at:at + window]


@pytest.mark.parametrize("milliseconds", [100, 150])
def test_speech_shorter_than_min_speech_is_not_a_turn(milliseconds: int) -> None:
    snippet = loudest(speech(QUESTION), milliseconds)  # a syllable or two
    assert detect(pcm(silence(1.0), snippet, silence(1.0))) == []


def test_min_speech_is_what_tells_a_syllable_from_a_turn() -> None:
    data = pcm(silence(1.0), loudest(speech(QUESTION), 400), silence(1.0))
    assert kinds(detect(data)).count("TurnEnded") == 1
    assert detect(data, VadOptions(min_speech_ms=1000)) == []


@pytest.mark.parametrize("level", [0.003, 0.01, 0.03])
def test_white_noise_at_a_low_level_is_not_a_turn(level: float) -> None:
    noise = np.random.default_rng(3).standard_normal(5 * RATE) * level * 32768
    assert detect(pcm(noise.clip(-32768, 32767).astype("<i2"))) == []


def test_a_pause_shorter_than_end_silence_keeps_one_turn() -> None:
    first, second = speech(QUESTION), speech(FOLLOW_UP)
    gap = 0.25
    assert gap * 1000 < OPTIONS.end_silence_ms
    data = pcm(silence(1.0), first, silence(gap), second, silence(1.0))
    events = detect(data)
    assert kinds(events).count("TurnStarted") == kinds(events).count("TurnEnded") == 1, kinds(events)
    ended = events[-1]
    assert isinstance(ended, TurnEnded)
    begins, _ = speech_span(first, RATE)
    _, ends = speech_span(second, RATE + len(first) + int(gap * RATE))
    assert abs(ended.start - begins) <= NEAR and abs(ended.end - ends) <= NEAR
    # the speech stopped at the gap: a pause was reported there, and the turn went on
    gap_at = RATE + len(first)
    assert any(isinstance(e, TurnPaused) and abs(e.end - gap_at) <= NEAR for e in events)


def test_max_turn_ends_an_endless_turn() -> None:
    talk = np.concatenate([speech(QUESTION), speech(FOLLOW_UP)] * 2)  # about 6.7 s with no real pause
    options = VadOptions(max_turn_s=2.0)
    events = detect(pcm(silence(1.0), talk, silence(1.0)), options)
    ends = [e for e in events if isinstance(e, TurnEnded)]
    assert len(ends) >= 3, kinds(events)
    first = ends[0]
    longest = int(options.max_turn_s * RATE)
    assert longest <= first.detected_at - first.start < longest + FRAME  # cut at 2 s, not at a pause
    assert first.detected_at == first.end  # ended by its length: no silence was waited for
    for ended in ends:
        assert ended.detected_at - ended.start < longest + FRAME
        assert len(ended.audio) <= longest + FRAME + PRE_ROLL + POST_PAD
    # the talk goes on as the next turn
    assert kinds(events)[kinds(events).index("TurnEnded") + 1] == "TurnStarted"


@pytest.mark.parametrize("size", [1, 3, 1000, 4097])
def test_any_feed_size_gives_the_same_turns(size: int) -> None:
    data = pcm(silence(0.7), speech(QUESTION), silence(0.8))
    whole = detect(data)
    assert kinds(whole) == ["TurnStarted", *["TurnPaused"] * (len(whole) - 2), "TurnEnded"]
    pieces = detect(data, size=size)
    assert [summary(e) for e in pieces] == [summary(e) for e in whole]
    last_whole, last_pieces = whole[-1], pieces[-1]
    assert isinstance(last_whole, TurnEnded) and isinstance(last_pieces, TurnEnded)
    assert np.array_equal(last_whole.audio, last_pieces.audio)


def test_an_odd_byte_count_is_kept_for_the_next_feed() -> None:
    detector = TurnDetector()
    assert detector.feed(b"") == []
    assert detector.feed(b"\x01") == []  # half a sample: nothing to frame yet, and no error
    assert detector.feed(b"\x00" * (2 * FRAME - 2)) == []
    assert detector.position == 0
    assert detector.feed(b"\x00") == [] and detector.position == FRAME  # the half sample was completed
    assert detector.feed(bytes(2 * FRAME + 1)) == [] and detector.position == 2 * FRAME
