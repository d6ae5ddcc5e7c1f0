"""POST /v1/audio/transcriptions and POST /v1/audio/speech, in the OpenAI shape.

Transcriptions are not kept (an API caller owns its audio): the upload goes to a
temporary media file, is checked like any recording, transcribed, and removed.
Speech is synthesized by the voice engine; `wav` is returned whole (with its true
length in the header, as OpenAI does), `pcm` (16-bit mono at the voice's rate, named in
`X-Sample-Rate`) streams sentence by sentence.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from ...audio.engines import spoken
from ...audio.intake import wav_bytes
from ...core.errors import AppError, ErrorCode
from ...core.jobs import Job
from ...engines.speech import SpeechInfo, SpeechSegment, TranscribeRequest, TranscribeResult
from ...engines.voice import SpeakRequest
from ...runtime.host import EngineJob
from ...runtime.protocol import JobDone, JobFailed
from ...services import Services
from ..deps import ServicesDep
from ..streaming import ClosingStreamingResponse

__all__ = ["router"]

router = APIRouter()
OPENAI_SPEECH_MODELS = {"whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"}
OPENAI_VOICE_MODELS = {"tts-1", "tts-1-hd", "gpt-4o-mini-tts"}
ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]
UPLOAD_CHUNK = 256 * 1024


def _model_id(services: Services, job: Job, requested: str | None, aliases: set[str]) -> str | None:
    if not requested or requested in aliases:
        return None
    model = services.models.get(requested) or services.remote.get(requested)  # a server's speech model too
    if model is None or model.job != job:
        raise AppError(ErrorCode.MODEL_NOT_FOUND, f"there is no {job} model '{requested}'; GET /v1/models lists them",
                       param="model")
    return str(requested)


async def _chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(UPLOAD_CHUNK):
        yield chunk


def _clock(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{separator}{rest % 1000:03d}"


def subtitles(segments: list[dict[str, Any]], kind: Literal["srt", "vtt"]) -> str:
    """Segments as SubRip or WebVTT cues."""
    blocks = ["WEBVTT\n"] if kind == "vtt" else []
    separator = "," if kind == "srt" else "."
    for n, s in enumerate(segments, start=1):
        timing = f"{_clock(s['start'], separator)} --> {_clock(s['end'], separator)}"
        text = s["text"].strip()
        blocks.append(f"{n}\n{timing}\n{text}\n" if kind == "srt" else f"{timing}\n{text}\n")
    return "\n".join(blocks)


@router.post("/audio/transcriptions")
async def transcriptions(
        services: ServicesDep,
        file: Annotated[UploadFile, File()],
        model: Annotated[str, Form()] = "whisper-1",
        language: Annotated[str | None, Form(pattern="^[a-z]{2,3}$")] = None,
        prompt: Annotated[str | None, Form(max_length=2000)] = None,
        response_format: Annotated[ResponseFormat, Form()] = "json",
        temperature: Annotated[float, Form(ge=0, le=1)] = 0.0,
        timestamp_granularities: Annotated[list[str] | None, Form(alias="timestamp_granularities[]")] = None,
) -> Any:
    model_id = _model_id(services, Job.SPEECH, model, OPENAI_SPEECH_MODELS)
    try:
        audio, _, _ = await services.transcripts.store_upload(_chunks(file))
    except AppError as exc:
        exc.param = "file"
        raise
    words = "word" in (timestamp_granularities or [])
    request = TranscribeRequest(audio_path=str(services.media.path(audio)), language=language, prompt=prompt,
                                temperature=temperature, word_timestamps=words,
                                max_seconds=services.settings.max_audio_seconds)
    segments: list[dict[str, Any]] = []
    info: SpeechInfo | None = None
    result = TranscribeResult()
    try:
        async for event in services.speech.stream(request, EngineJob(), model_id=model_id):
            if isinstance(event, SpeechInfo):
                info = event
            elif isinstance(event, SpeechSegment):
                segments.append({"id": event.index, "seek": 0, "start": round(event.start, 3),
                                 "end": round(event.end, 3), "text": event.text, "tokens": [],
                                 "temperature": temperature, "avg_logprob": event.avg_logprob,
                                 "compression_ratio": 0.0, "no_speech_prob": event.no_speech_prob,
                                 **({"words": event.words} if event.words else {})})
            elif isinstance(event, JobDone) and isinstance(event.result, TranscribeResult):
                result = event.result
            elif isinstance(event, JobFailed):
                raise AppError(event.code, event.message)
    finally:
        services.media.delete(audio)
    text = result.text
    if response_format == "text":
        return PlainTextResponse(text + "\n")
    if response_format in ("srt", "vtt"):
        return PlainTextResponse(subtitles(segments, response_format),
                                 media_type="text/vtt" if response_format == "vtt" else "application/x-subrip")
    if response_format == "json":
        return {"text": text}
    body: dict[str, Any] = {"task": "transcribe", "language": _language_name(info.language if info else None),
                            "duration": round(info.duration, 3) if info else 0.0, "text": text, "segments": segments}
    if words:
        body["words"] = [w for s in segments for w in s.get("words", [])]
    return JSONResponse(body)


_LANGUAGE_NAMES = {"en": "english", "de": "german", "fr": "french", "es": "spanish", "it": "italian",
                   "pt": "portuguese", "nl": "dutch", "ja": "japanese", "zh": "chinese", "ru": "russian"}


def _language_name(code: str | None) -> str:
    """OpenAI's verbose_json names the language in English words."""
    return _LANGUAGE_NAMES.get(code or "", code or "")


class SpeechBody(BaseModel):
    model: str = "tts-1"
    input: str = Field(min_length=1, max_length=20_000)
    voice: str = "default"
    response_format: Literal["wav", "pcm", "mp3", "opus", "aac", "flac"] = "wav"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    instructions: str | None = None


@router.post("/audio/speech")
async def speech(body: SpeechBody, services: ServicesDep) -> Any:
    if body.response_format not in ("wav", "pcm"):
        raise AppError(ErrorCode.BAD_REQUEST,
                       f"response_format '{body.response_format}' is not offered here; use 'wav' or 'pcm'",
                       param="response_format")
    # a voice may be named by the model id of an installed Piper voice; OpenAI's names mean the active one
    requested = body.voice if services.models.get(body.voice) is not None else body.model
    model_id = _model_id(services, Job.VOICE, requested, OPENAI_VOICE_MODELS | {"default"})
    try:
        rate, pcm = await spoken(services.voice, SpeakRequest(text=body.input, speed=body.speed), model_id=model_id)
    except AppError as exc:
        if exc.code == ErrorCode.NOTHING_TO_SAY:
            exc.param = "input"
        raise
    if body.response_format == "pcm":
        return ClosingStreamingResponse(pcm, media_type="audio/pcm", headers={"X-Sample-Rate": str(rate)})
    data = b"".join([piece async for piece in pcm])
    return Response(wav_bytes(data, rate), media_type="audio/wav")
