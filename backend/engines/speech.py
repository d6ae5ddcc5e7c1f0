"""Speech to text with faster-whisper: typed requests/events (both sides) and the worker (child side).

The audio is decoded here, in the worker, with a hard limit on its length: a file whose
header lies about its duration (or has none, like a browser's recording) cannot make the
worker hold more than `max_seconds` of samples. Segments are sent as faster-whisper
produces them (its generator decodes lazily), so words appear while the rest is still
being transcribed, and a cancel is seen between segments.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import AppError, ErrorCode
from ..runtime.child import JobContext
from ..runtime.protocol import Event, Request, Result

__all__ = ["SpeechConfig", "SpeechEngine", "SpeechInfo", "SpeechSegment", "TranscribeRequest", "TranscribeResult",
           "audio_too_long", "decode_bounded"]

SAMPLE_RATE = 16_000


def audio_too_long(max_seconds: float) -> AppError:
    return AppError(ErrorCode.AUDIO_TOO_LONG, f"the recording is longer than the limit of {_minutes(max_seconds)}")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g} minutes" if seconds >= 120 else f"{seconds:g} seconds"


@dataclass(kw_only=True, slots=True)
class SpeechConfig:
    model_dir: str
    n_threads: int = 2
    compute_type: str = "int8"


@dataclass(kw_only=True, slots=True)
class TranscribeRequest(Request):
    audio_path: str
    language: str | None = None
    """An ISO 639-1 code, or None to detect it (multilingual models only)."""
    max_seconds: float = 3600.0
    vad: bool = True
    prompt: str | None = None
    word_timestamps: bool = False
    beam_size: int = 1
    temperature: float = 0.0
    one_pass: bool = False
    """With no language given to a multilingual model: find the language in the same pass that
    transcribes, instead of one pass to find it and another to transcribe (half the time for a
    short turn of a conversation). The result's language is then not known ('')."""


@dataclass(kw_only=True, slots=True)
class SpeechInfo(Event):
    """Sent once the audio is decoded and the language known, before any segment."""

    language: str
    language_probability: float
    duration: float
    decode_seconds: float


@dataclass(kw_only=True, slots=True)
class SpeechSegment(Event):
    index: int
    start: float
    end: float
    text: str
    words: list[dict[str, Any]] | None = None
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0


@dataclass(kw_only=True, slots=True)
class TranscribeResult(Result):
    text: str = ""
    language: str = ""
    duration: float = 0.0
    """Seconds of audio."""
    segments: int = 0
    seconds: float = 0.0
    """Time the transcription took."""


def decode_bounded(path: str, max_seconds: float) -> np.ndarray:
    """The audio as 16 kHz mono float32, refusing more than `max_seconds` of it.

    Raises AppError `invalid_audio` for anything that is not decodable audio (an image,
    random bytes, a truncated container with no audio frames)."""
    import av

    limit = int(max_seconds * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        with av.open(path, mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AppError("invalid_audio", "the file has no audio in it")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            try:
                for frame in container.decode(stream):
                    for out in resampler.resample(frame):
                        samples = out.to_ndarray().reshape(-1)
                        total += samples.size
                        if total > limit:
                            raise audio_too_long(max_seconds)
                        chunks.append(samples)
            except av.error.InvalidDataError:
                if not chunks:  # damaged from the start; a damaged tail keeps what came before
                    raise
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except AppError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise AppError("invalid_audio", f"the file is not audio that can be decoded ({exc})") from None
    if not chunks:
        raise AppError("invalid_audio", "the file holds no audio samples")
    audio = np.concatenate(chunks).astype(np.float32) / 32768.0
    if audio.size > limit:
        raise audio_too_long(max_seconds)
    return audio


class SpeechEngine:
    def __init__(self, config: SpeechConfig) -> None:
        from faster_whisper import WhisperModel

        folder = Path(config.model_dir)
        if not (folder / "model.bin").is_file():
            raise AppError(ErrorCode.MODEL_LOAD_FAILED, f"{folder} is not a Whisper model folder (no model.bin)")
        try:
            self.model = WhisperModel(str(folder), device="cpu", compute_type=config.compute_type,
                                      cpu_threads=config.n_threads, num_workers=1, local_files_only=True)
        except (RuntimeError, ValueError, OSError) as exc:
            raise AppError(ErrorCode.MODEL_LOAD_FAILED, f"the Whisper model could not be loaded: {exc}") from None
        self.folder = folder

    def info(self) -> dict[str, Any]:
        return {"model_dir": str(self.folder), "multilingual": bool(self.model.model.is_multilingual)}

    def run(self, request: Request, ctx: JobContext) -> TranscribeResult:
        if not isinstance(request, TranscribeRequest):
            raise AppError(ErrorCode.BAD_REQUEST, f"the speech engine cannot run {type(request).__name__}")
        started = time.perf_counter()
        audio = decode_bounded(request.audio_path, request.max_seconds)
        decoded = time.perf_counter()
        duration = audio.size / SAMPLE_RATE
        language = request.language
        if language and not self.model.model.is_multilingual and language != "en":
            raise AppError(ErrorCode.BAD_REQUEST, "this Whisper model understands English only; install a "
                                                  "multilingual one (base or small) on the Models page")
        one_pass = request.one_pass and not language and self.model.model.is_multilingual
        try:
            # with `multilingual`, each segment's language is found from the encoder output it is
            # transcribed from; the language given is then only a placeholder for the first
            segments, info = self.model.transcribe(
                audio, language="en" if one_pass else (language or None), multilingual=one_pass,
                vad_filter=request.vad, beam_size=request.beam_size,
                temperature=request.temperature, initial_prompt=request.prompt or None,
                word_timestamps=request.word_timestamps, condition_on_previous_text=False)
        except ValueError as exc:  # an unknown language code
            raise AppError(ErrorCode.BAD_REQUEST, str(exc)) from None
        ctx.emit(SpeechInfo(job_id=ctx.job_id, language="" if one_pass else info.language,
                            language_probability=float(info.language_probability), duration=duration,
                            decode_seconds=decoded - started))
        texts: list[str] = []
        count = 0
        cancelled = False
        for segment in segments:
            if ctx.cancelled():
                cancelled = True
                break
            words = [{"word": w.word, "start": w.start, "end": w.end, "probability": w.probability}
                     for w in segment.words] if request.word_timestamps and segment.words else None
            ctx.emit(SpeechSegment(job_id=ctx.job_id, index=count, start=float(segment.start),
                                   end=float(segment.end), text=segment.text, words=words,
                                   avg_logprob=float(segment.avg_logprob),
                                   no_speech_prob=float(segment.no_speech_prob)))
            texts.append(segment.text)
            count += 1
        return TranscribeResult(text="".join(texts).strip(), language="" if one_pass else info.language,
                                duration=duration,
                                segments=count, seconds=time.perf_counter() - started,
                                finish_reason="cancelled" if cancelled else "done")

    def idle(self) -> None:
        pass

    def close(self) -> None:
        del self.model
