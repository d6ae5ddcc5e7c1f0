"""The app's own audio routes: recordings in, transcripts out, answers read aloud.

- `POST /api/transcripts` takes the recording as the raw request body (what the
  microphone button or a file input sends; never base64 over the websocket). With
  `?stream=1` the answer is NDJSON: the transcript's id, then each segment as it is
  decoded, then `done` (or `error`); without, 202 and the id.
- `GET /api/transcripts[/{id}[/events|/audio]]`, `DELETE /api/transcripts/{id}`.
- `GET /api/speech/messages/{id}` reads an answer aloud: a WAV stream whose first
  sentence plays while the rest is still being spoken.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.requests import ClientDisconnect

from ..audio.engines import SpeechEngines, spoken
from ..audio.following import follow_aloud
from ..audio.intake import wav_header
from ..audio.voices import voice_chooser
from ..chat.replies import ActiveReply
from ..core.errors import AppError, ErrorCode
from ..engines.voice import SpeakRequest, speakable
from ..runtime.host import EngineHost
from ..services import Services
from .deps import ServicesDep
from .responses import body_chunks, media_file, not_found
from .streaming import ClosingStreamingResponse

__all__ = ["TRANSCRIPT_UPLOAD_PATH", "router"]

TRANSCRIPT_UPLOAD_PATH = "/api/transcripts"
LANGUAGE_PATTERN = "^[a-z]{2,3}$"
router = APIRouter(include_in_schema=False)


def _ndjson(events: AsyncIterator[dict[str, Any]]) -> ClosingStreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        async for event in events:
            yield (json.dumps(event) + "\n").encode()
    return ClosingStreamingResponse(lines(), media_type="application/x-ndjson",
                                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.post(TRANSCRIPT_UPLOAD_PATH)
async def upload_recording(request: Request, services: ServicesDep, stream: bool = False,
                           language: str | None = Query(default=None, pattern=LANGUAGE_PATTERN),
                           name: str = Query(default="", max_length=200)) -> Any:
    try:
        transcript = await services.transcripts.accept(body_chunks(request), name=name, language=language)
    except ClientDisconnect:
        # the gate ends a body sent without a length at the limit as if the client had left;
        # one that really left reads no answer
        raise AppError(ErrorCode.AUDIO_TOO_LARGE, f"The recording is larger than the limit of "
                                                  f"{services.settings.max_audio_upload_mb} MB.") from None
    if not stream:
        return JSONResponse({"id": transcript.id, "state": transcript.state}, status_code=202)
    return _ndjson(services.transcripts.follow(transcript.id))


@router.post("/api/speech/warm")
async def warm_voice(services: ServicesDep) -> Any:
    """Load the voice now (the page expects to read aloud soon), so the first sentence is quick."""
    return await _warm(services.voice)


@router.post("/api/transcripts/warm")
async def warm_speech(services: ServicesDep) -> Any:
    """Load the speech model while the person is still speaking."""
    return await _warm(services.speech)


async def _warm(host: EngineHost | SpeechEngines) -> dict[str, Any]:
    if host.loaded is not None:
        return {"loaded": host.loaded.id}
    await host.warm()
    return {"loaded": host.loaded.id if host.loaded else None}


@router.get("/api/transcripts")
async def transcripts(services: ServicesDep, limit: int = Query(default=50, ge=1, le=500),
                      before: float | None = None) -> Any:
    return [t.to_json() for t in await services.transcripts.list_recent(limit, before)]


@router.get("/api/transcripts/{transcript_id}")
async def transcript(transcript_id: str, services: ServicesDep) -> Any:
    found = await services.transcripts.get(transcript_id)
    if found is None:
        raise not_found("There is no transcript with that id.")
    return found.to_json()


@router.get("/api/transcripts/{transcript_id}/events")
async def transcript_events(transcript_id: str, services: ServicesDep) -> Any:
    if await services.transcripts.get(transcript_id) is None:
        raise not_found("There is no transcript with that id.")
    return _ndjson(services.transcripts.follow(transcript_id))


@router.get("/api/transcripts/{transcript_id}/audio")
async def transcript_audio(transcript_id: str, services: ServicesDep) -> FileResponse:
    found = await services.transcripts.get(transcript_id)
    if found is None:
        raise not_found("There is no transcript with that id.")
    return media_file(services.media, found.audio, found.mime, {"Cache-Control": "private, no-store"},
                      missing="The recording's file is missing.")


@router.post("/api/transcripts/{transcript_id}/cancel")
async def cancel_transcript(transcript_id: str, services: ServicesDep) -> Any:
    if not await services.transcripts.cancel(transcript_id):
        raise AppError(ErrorCode.NOT_RUNNING, "That transcript is not being transcribed.")
    return {"id": transcript_id, "cancelling": True}


@router.delete("/api/transcripts/{transcript_id}")
async def delete_transcript(transcript_id: str, services: ServicesDep) -> Any:
    if not await services.transcripts.delete(transcript_id):
        raise not_found("There is no transcript with that id.")
    return {"id": transcript_id, "deleted": True}


@router.get("/api/speech/messages/{message_id}")
async def read_message(message_id: str, services: ServicesDep,
                       speed: float = Query(default=1.0, ge=0.25, le=4.0)) -> Any:
    """An answer read aloud as WAV; one still being written is read as it is written."""
    message = await services.store.get_message(message_id)
    if message is None or message.role != "assistant":
        raise not_found("There is no answer with that id.")
    reply = services.conversations.active.get(message.conversation_id)
    if reply is not None and reply.message_id == message_id and not reply.finished.is_set():
        return _following(services, reply, speed)
    text = speakable(message.content)
    if not text:
        raise AppError(ErrorCode.NOTHING_TO_READ, "This answer has no text to read aloud.")
    try:
        rate, pcm = await spoken(services.voice, SpeakRequest(text=text, speed=speed),
                                 model_id=voice_chooser(services.models)(text))
    except AppError as exc:
        if exc.code == ErrorCode.NOTHING_TO_SAY:
            return Response(status_code=204)
        raise

    async def wav() -> AsyncIterator[bytes]:
        yield wav_header(rate)
        async for piece in pcm:
            yield piece
    return ClosingStreamingResponse(wav(), media_type="audio/wav", headers={"Cache-Control": "no-store"})


def _following(services: Services, reply: ActiveReply, speed: float) -> Response:
    """The answer's sound as its sentences are written: the WAV header goes with the first
    sound (its rate is the voice's)."""
    async def wav() -> AsyncIterator[bytes]:
        started = False
        speaking = follow_aloud(services.voice, lambda: (reply.text, reply.finished.is_set()), speed=speed,
                                choose_voice=voice_chooser(services.models))
        async with contextlib.aclosing(speaking) as chunks:  # type: ignore[type-var]
            async for rate, pcm in chunks:
                if not started:
                    started = True
                    yield wav_header(rate)
                yield pcm
    return ClosingStreamingResponse(wav(), media_type="audio/wav", headers={"Cache-Control": "no-store"})
