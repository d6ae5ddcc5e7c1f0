"""Is it audio, and how long? Checked from the bytes, never from the name or Content-Type.

`sniff` recognises the containers browsers and phones record (WebM/Matroska, Ogg, MP4/M4A/3GP,
WAV, MP3, FLAC, AAC) by their first bytes and names common other things ("a PNG image") so
the error says what was sent. `probe` opens the file with PyAV, requires an audio stream,
decodes its first frames, and reads the duration where the container states one, so an
over-long file is refused before any transcription starts. Files whose container states
no duration (a browser's recording) are bounded again while decoding in the worker.
"""

from __future__ import annotations

import io
import struct
import wave
from dataclasses import dataclass

from ..core.errors import AppError, ErrorCode
from ..core.kinds import describe

__all__ = ["AudioProbe", "probe", "sniff", "wav_bytes", "wav_header"]

PROBE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class AudioProbe:
    container: str
    codec: str
    duration: float | None
    sample_rate: int


def sniff(head: bytes) -> tuple[str, str]:
    """(extension, MIME type) of an audio container, or AudioRejected(415) saying what it is."""
    if not head:
        raise AppError(ErrorCode.EMPTY_AUDIO, "The file is empty.")
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return ("webm", "audio/webm") if b"webm" in head[:64] else ("mka", "audio/x-matroska")
    if head.startswith(b"OggS"):
        return "ogg", "audio/ogg"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav", "audio/wav"
    if head.startswith(b"fLaC"):
        return "flac", "audio/flac"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return ("3gp", "audio/3gpp") if brand.startswith(b"3g") else ("m4a", "audio/mp4")
    if head.startswith(b"ID3"):
        return "mp3", "audio/mpeg"
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:  # ADTS frame sync, layer 00: AAC
        return "aac", "audio/aac"
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # MPEG audio frame sync: MP3
        return "mp3", "audio/mpeg"
    what = describe(head)
    if what is not None:
        raise AppError(ErrorCode.NOT_AUDIO, f"This is {what}, not an audio recording.")
    raise AppError(ErrorCode.NOT_AUDIO, "This is not an audio file this app can read (WebM, Ogg, MP4/M4A, WAV, "
                                        "MP3, FLAC or AAC).")


def probe(path: str, max_seconds: float) -> AudioProbe:
    """Open, check and time an audio file (blocking: run it in a thread)."""
    import av

    try:
        with av.open(path, mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AppError(ErrorCode.NOT_AUDIO, "The file has no audio in it.")
            stream = container.streams.audio[0]
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1_000_000
            if duration is not None and duration > max_seconds:
                raise AppError(ErrorCode.AUDIO_TOO_LONG, f"The recording is {_clock(duration)} long; the limit "
                                                         f"is {_clock(max_seconds)}.")
            heard = 0.0
            for frame in container.decode(stream):
                heard += frame.samples / max(1, frame.sample_rate)
                if heard >= PROBE_SECONDS:
                    break
            if heard == 0:
                raise AppError(ErrorCode.INVALID_AUDIO, "The file holds no audio that can be decoded.")
            return AudioProbe(container=container.format.name, codec=stream.codec_context.name, duration=duration,
                              sample_rate=stream.codec_context.sample_rate or 0)
    except AppError:
        raise
    except (av.error.FFmpegError, ValueError, OSError, IndexError) as exc:
        raise AppError(ErrorCode.INVALID_AUDIO, f"The audio could not be read: it is damaged or incomplete "
                                                f"({type(exc).__name__}).") from None


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"


STREAMING_SIZE = 0xFFFFFFFF
"""The size a WAV header gives when the length is not known yet (a stream)."""


def wav_header(sample_rate: int, data_bytes: int | None = None, channels: int = 1, sample_width: int = 2) -> bytes:
    """A 44-byte PCM WAV header; without `data_bytes` it says 'as long as the stream'."""
    data = STREAMING_SIZE - 36 if data_bytes is None else data_bytes
    riff = STREAMING_SIZE if data_bytes is None else 36 + data_bytes
    return (b"RIFF" + struct.pack("<I", riff) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * channels * sample_width,
                                    channels * sample_width, sample_width * 8)
            + b"data" + struct.pack("<I", data))


def wav_bytes(pcm: bytes, sample_rate: int) -> bytes:
    """A complete WAV file of mono 16-bit PCM."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return out.getvalue()
