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
FULL_WINDOW_FRAMES = 3000
"""Whisper's 30 s window, in 10 ms mel frames."""
TURN_MAX_S = 28.0
"""A longer 'turn' is transcribed the usual way."""
TURN_MARGIN_FRAMES = 100
TURN_TOKENS_PER_S = 8
MAX_TURN_TOKENS = 224
TURN_REPETITION_PENALTY = 1.2
NO_SPEECH_PROB = 0.6


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
    turn: bool = False
    """A turn of a spoken conversation (a few seconds): transcribed in one pass over an encoder
    window cut to the audio's length, with the language (when not given) found from the same
    pass — see `SpeechEngine._turn`."""


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
        if request.turn and duration <= TURN_MAX_S:
            return self._turn(audio, language, ctx, started, decoded)
        try:
            segments, info = self.model.transcribe(
                audio, language=language or None, vad_filter=request.vad, beam_size=request.beam_size,
                temperature=request.temperature, initial_prompt=request.prompt or None,
                word_timestamps=request.word_timestamps, condition_on_previous_text=False)
        except ValueError as exc:  # an unknown language code
            raise AppError(ErrorCode.BAD_REQUEST, str(exc)) from None
        ctx.emit(SpeechInfo(job_id=ctx.job_id, language=info.language,
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
        return TranscribeResult(text="".join(texts).strip(), language=info.language, duration=duration,
                                segments=count, seconds=time.perf_counter() - started,
                                finish_reason="cancelled" if cancelled else "done")

    def _turn(self, audio: np.ndarray, language: str | None, ctx: JobContext, started: float,
              decoded: float) -> TranscribeResult:
        """A short turn, the quick way. Whisper's encoder is made for 30 s windows and faster-whisper
        pads every clip to one: for a 2 s turn most of the work is on silence (the encoder is most
        of a small model's time). The window is cut to the audio plus a second (CTranslate2 takes
        a shorter one; whisper.cpp's `audio_ctx` does the same), the language is read from that
        encoder output, and the words are decoded greedily with a length bound from the duration
        and a mild repetition penalty (a cut window can make a small model repeat itself).
        Measured on the bundled models: the same words on clear speech in a fifth of the time."""
        import ctranslate2
        from faster_whisper.tokenizer import Tokenizer

        model = self.model
        features = model.feature_extractor(audio)
        frames = features.shape[-1]
        window = min(FULL_WINDOW_FRAMES, -(-(frames + TURN_MARGIN_FRAMES) // 100) * 100)
        padded = np.zeros((features.shape[0], window), dtype=np.float32)
        padded[:, :min(frames, window)] = features[:, :window]
        encoded = model.model.encode(ctranslate2.StorageView.from_array(padded[None]), to_cpu=False)
        probability = 1.0
        multilingual = bool(model.model.is_multilingual)
        if not multilingual:
            language = "en"
        elif not language:
            token, probability = model.model.detect_language(encoded)[0][0]
            language = token[2:-2]
        ctx.emit(SpeechInfo(job_id=ctx.job_id, language=language, language_probability=float(probability),
                            duration=audio.size / SAMPLE_RATE, decode_seconds=decoded - started))
        tokenizer = Tokenizer(model.hf_tokenizer, multilingual, task="transcribe", language=language)
        prompt = model.get_prompt(tokenizer, [], without_timestamps=True)
        seconds = audio.size / SAMPLE_RATE
        result = model.model.generate(encoded, [prompt], beam_size=1, return_scores=True,
                                      return_no_speech_prob=True, repetition_penalty=TURN_REPETITION_PENALTY,
                                      max_length=min(MAX_TURN_TOKENS, 10 + int(seconds * TURN_TOKENS_PER_S)),
                                      suppress_blank=True, suppress_tokens=[-1])[0]
        tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
        average = (result.scores[0] / max(1, len(tokens))) if result.scores else 0.0
        silent = result.no_speech_prob > NO_SPEECH_PROB and average < -1.0
        text = "" if silent else tokenizer.decode(tokens).strip()
        if text:
            ctx.emit(SpeechSegment(job_id=ctx.job_id, index=0, start=0.0, end=seconds, text=" " + text,
                                   avg_logprob=float(average), no_speech_prob=float(result.no_speech_prob)))
        return TranscribeResult(text=text, language=language, duration=seconds, segments=1 if text else 0,
                                seconds=time.perf_counter() - started, finish_reason="done")

    def idle(self) -> None:
        pass

    def close(self) -> None:
        del self.model
