"""Text to speech with Piper: typed requests/events (both sides) and the worker (child side).

Piper speaks a text sentence by sentence; each sentence's 16-bit PCM is sent as soon as
it is ready, so playback starts after the first sentence rather than the whole answer,
and a cancel is seen between sentences.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import AppError, ErrorCode
from ..runtime.child import JobContext
from ..runtime.protocol import Event, Request, Result

__all__ = ["AudioChunk", "SpeakRequest", "SpeakResult", "VoiceConfig", "VoiceEngine", "pieces", "speakable"]

MAX_CHARS = 20_000


@dataclass(kw_only=True, slots=True)
class VoiceConfig:
    model_path: str
    config_path: str | None = None
    """Piper's JSON beside the model; `<model>.json` when not given."""
    n_threads: int = 1


@dataclass(kw_only=True, slots=True)
class SpeakRequest(Request):
    text: str
    speed: float = 1.0
    """1 is the voice's own pace; 2 speaks twice as fast."""
    speaker: int | None = None


@dataclass(kw_only=True, slots=True)
class AudioChunk(Event):
    pcm: bytes
    """Mono signed 16-bit little-endian samples."""
    sample_rate: int
    index: int


@dataclass(kw_only=True, slots=True)
class SpeakResult(Result):
    sample_rate: int = 0
    seconds_of_audio: float = 0.0
    chunks: int = 0
    seconds: float = 0.0
    """Time the speaking took."""


_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_CLAUSE_END = re.compile(r"(?<=[,;:—])\s+")
FIRST_PIECE_CHARS = 40
"""Piper speaks a piece only once it is whole, in time roughly proportional to its length;
a first sentence longer than this is spoken in two parts so the sound starts sooner."""
_JOINERS = {"and", "but", "or", "so", "because", "which", "that", "who", "when", "while", "where", "if", "as",
            "than", "then", "to", "for", "in", "on", "of", "with", "without", "about", "over", "near", "at", "from",
            "by", "into", "after", "before"}


def _cut_first(sentence: str) -> tuple[str, str]:
    """A short head to speak first, and the rest: at a comma within reach, else before a
    joining word ("and", "which", "in"…), else at the last word boundary that fits."""
    if len(sentence) <= FIRST_PIECE_CHARS + 15:
        return sentence, ""
    for match in _CLAUSE_END.finditer(sentence):
        if 12 <= match.start() <= FIRST_PIECE_CHARS + 10:
            return sentence[:match.start()], sentence[match.end():]
        if match.start() > FIRST_PIECE_CHARS + 10:
            break
    spaces = [m.start() for m in re.finditer(r"\s+", sentence) if 15 <= m.start() <= FIRST_PIECE_CHARS]
    if not spaces:
        return sentence, ""
    before_joiner = [p for p in spaces if sentence[p:].split(maxsplit=1)[0].lower().strip(",;:") in _JOINERS]
    cut = (before_joiner or spaces)[-1]
    return sentence[:cut], sentence[cut:].strip()


def pieces(text: str) -> list[str]:
    """The text in the order it is spoken: a short first piece, then the rest (which Piper
    speaks sentence by sentence)."""
    sentences = [p for p in _SENTENCE_END.split(text.strip()) if p.strip()]
    if not sentences:
        return []
    head, tail = _cut_first(sentences[0])
    rest = " ".join(([tail] if tail else []) + sentences[1:])
    return [head] + ([rest] if rest else [])


_CODE_BLOCK = re.compile(r"```.*?(```|$)", re.S)
_MARKUP = re.compile(r"[*_`#>|~]+")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_URL = re.compile(r"https?://\S+")
_RULE = re.compile(r"^[ \t|:+-]*-[ \t|:+-]*$", re.M)
"""A table's separator row (`|:---|---:|`, whose colons would be read out) or a horizontal rule."""


def speakable(markdown: str) -> str:
    """What to read aloud from an answer in Markdown: code blocks, link targets and markup
    characters left out, list and table structure flattened to sentences."""
    text = _CODE_BLOCK.sub(" (code left out) ", markdown)
    text = _RULE.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _URL.sub("a link", text)
    text = _MARKUP.sub(" ", text)
    lines = [line.strip(" -+\t") for line in text.splitlines()]
    text = ". ".join(line.rstrip(".") for line in lines if line) + ("." if lines and any(lines) else "")
    return re.sub(r"\s+", " ", text).strip()


class VoiceEngine:
    def __init__(self, config: VoiceConfig) -> None:
        import json

        import onnxruntime
        from piper import PiperConfig, PiperVoice
        from piper.voice import ESPEAK_DATA_DIR

        model = Path(config.model_path)
        json_path = Path(config.config_path) if config.config_path else model.with_name(model.name + ".json")
        if not model.is_file() or not json_path.is_file():
            raise AppError(ErrorCode.MODEL_LOAD_FAILED,
                           f"a Piper voice needs {model.name} and {json_path.name} side by side")
        try:
            voice_config = PiperConfig.from_dict(json.loads(json_path.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError) as exc:
            raise AppError(ErrorCode.MODEL_LOAD_FAILED, f"{json_path.name} is not a Piper voice configuration "
                                                        f"({type(exc).__name__}: {exc})") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(1, config.n_threads)
        options.inter_op_num_threads = 1
        try:
            session = onnxruntime.InferenceSession(str(model), sess_options=options,
                                                   providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a damaged file
            raise AppError(ErrorCode.MODEL_LOAD_FAILED, f"the voice could not be loaded: {exc}") from None
        # built directly (not PiperVoice.load) so the model is read once, with our thread counts
        self.voice = PiperVoice(config=voice_config, session=session, espeak_data_dir=Path(ESPEAK_DATA_DIR),
                                download_dir=model.parent)
        self.model = model
        # the first synthesis initialises the phonemizer; do it now rather than in the first request
        for _ in self.voice.synthesize("Ready."):
            pass

    def info(self) -> dict[str, Any]:
        return {"model_path": str(self.model), "sample_rate": self.voice.config.sample_rate,
                "speakers": self.voice.config.num_speakers}

    def run(self, request: Request, ctx: JobContext) -> SpeakResult:
        from piper import SynthesisConfig

        if not isinstance(request, SpeakRequest):
            raise AppError(ErrorCode.BAD_REQUEST, f"the voice engine cannot run {type(request).__name__}")
        text = request.text.strip()
        if not text:
            raise AppError(ErrorCode.BAD_REQUEST, "there is no text to read aloud")
        if len(text) > MAX_CHARS:
            raise AppError(ErrorCode.BAD_REQUEST, f"the text is longer than {MAX_CHARS:,} characters")
        if not 0.25 <= request.speed <= 4.0:
            raise AppError(ErrorCode.BAD_REQUEST, "speed must be between 0.25 and 4")
        speaker = request.speaker if self.voice.config.num_speakers > 1 else None
        config = SynthesisConfig(speaker_id=speaker, length_scale=1.0 / request.speed)
        started = time.perf_counter()
        samples = 0
        index = 0
        cancelled = False
        for piece in pieces(text):
            for chunk in self.voice.synthesize(piece, syn_config=config):  # Piper goes sentence by sentence
                if ctx.cancelled():
                    cancelled = True
                    break
                pcm = chunk.audio_int16_bytes
                ctx.emit(AudioChunk(job_id=ctx.job_id, pcm=pcm, sample_rate=chunk.sample_rate, index=index))
                samples += len(pcm) // 2
                index += 1
            if cancelled:
                break
        rate = self.voice.config.sample_rate
        return SpeakResult(sample_rate=rate, seconds_of_audio=samples / rate, chunks=index,
                           seconds=time.perf_counter() - started, finish_reason="cancelled" if cancelled else "done")

    def idle(self) -> None:
        pass

    def close(self) -> None:
        del self.voice
