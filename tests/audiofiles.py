"""Audio made by tests: tones and silence in the containers phones record, and speech scoring."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import wave
from pathlib import Path
from typing import Any

import av
import numpy as np

__all__ = ["ITALIAN_QUESTION", "PARAGRAPH", "SENTENCES", "encode", "espeak_wav", "italian_speech", "opus_webm",
           "png_bytes", "silent_flac", "tone", "wer", "words", "write_wav"]


def tone(seconds: float, rate: int, freq: float = 440.0, start: int = 0) -> np.ndarray:
    """Mono 16-bit samples of a sine tone."""
    t = np.arange(start, start + int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * 8000).astype("<i2")


def write_wav(path: Path, seconds: float, rate: int = 16_000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(tone(seconds, rate).tobytes())
    return path


def encode(path: Path, codec: str, seconds: float, *, rate: int = 48_000, fmt: str | None = None,
           options: dict[str, str] | None = None, silent: bool = False, block: int = 4096,
           codec_options: dict[str, str] | None = None) -> Path:
    """Encode a tone (or silence) with PyAV; `fmt`/`options` choose and tune the container."""
    with av.open(str(path), "w", format=fmt, options=options or {}) as out:
        stream: Any = out.add_stream(codec, rate=rate, options=codec_options or {})
        stream.layout = "mono"
        total, pts = int(seconds * rate), 0
        zeros = np.zeros((1, block), dtype="<i2")
        while pts < total:
            n = min(block, total - pts)
            samples = zeros[:, :n] if silent else tone(n / rate, rate, start=pts).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, pts
            for packet in stream.encode(frame):
                out.mux(packet)
            pts += n
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def opus_webm(path: Path, seconds: float, *, live: bool = False) -> Path:
    """WebM/Opus as a browser records it; `live` leaves out the duration (as MediaRecorder does)."""
    return encode(path, "libopus", seconds, fmt="webm", options={"live": "1"} if live else None)


def silent_flac(path: Path, seconds: float, rate: int = 8000) -> Path:
    """Long silence stays tiny in FLAC with the largest blocks."""
    return encode(path, "flac", seconds, rate=rate, silent=True, fmt="flac", block=65535,
                  codec_options={"frame_size": "65535"})


def png_bytes() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, format="PNG")
    return out.getvalue()


SENTENCES = ("The quick brown fox jumps over the lazy dog. We will meet at the station tomorrow morning. "
             "Please bring a warm coat and an umbrella.")
PARAGRAPH = ("Every summer our family drove to the lake in the mountains. The water was cold and very clear. "
             "My brother liked to catch small fish near the wooden dock. In the evening we cooked dinner over "
             "an open fire. Later we watched the stars and listened to the wind in the trees. On the last day "
             "we packed the car and promised to come back next year.")


ITALIAN_QUESTION = "Che tempo fa oggi, a Roma?"
"""Spoken by espeak-ng's Italian voice at 120 words a minute. At its default 175 (and without the comma)
it runs "oggi a Roma" together: Whisper base heard "odi a comba", "o di racoma", even Polish ("Ktem
pofaw"); slower and with the pause it heard "tempo" and "Roma" and told Italian at every speed from 100
to 130 and with greedy decoding and beam search alike (espeak-ng 1.51)."""


def espeak_wav(path: Path, text: str, *, voice: str, words_per_minute: int = 120) -> Path:
    """Speech made by espeak-ng (a WAV, 22.05 kHz mono): robotic, but in any of its languages, where the
    bundled Piper voice speaks English only."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise RuntimeError("espeak-ng is not installed; scripts/test installs it (apt-get install espeak-ng)")
    subprocess.run([espeak, "-v", voice, "-s", str(words_per_minute), "-w", str(path), text], check=True,
                   capture_output=True, timeout=60)
    return path


def italian_speech(path: Path) -> Path:
    """ITALIAN_QUESTION, spoken."""
    return espeak_wav(path, ITALIAN_QUESTION, voice="it")


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()


def wer(hypothesis: str, reference: str) -> float:
    """Word error rate: word-level Levenshtein distance over the reference's length,
    ignoring case and punctuation."""
    hyp, ref = words(hypothesis), words(reference)
    previous = list(range(len(hyp) + 1))
    for i, expected in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, heard in enumerate(hyp, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (expected != heard))
        previous = current
    return previous[-1] / max(1, len(ref))
