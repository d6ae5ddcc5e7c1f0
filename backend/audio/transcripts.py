"""Recordings become transcripts: stored audio, a row in SQLite, and a server task per transcription.

The upload is written to the media folder as it arrives (never held whole in memory),
checked to be audio of an allowed length, and only then given a row. Transcribing runs as
a server task, so a page that closes (or a phone that locks) does not stop it; segments
are kept in memory for followers and saved at least twice a second. Rows left queued or
running by a shutdown are transcribed again at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ..core.config import Settings
from ..core.errors import AppError, ErrorCode
from ..engines.speech import SpeechInfo, SpeechSegment, TranscribeRequest, TranscribeResult
from ..runtime.host import EngineJob
from ..runtime.protocol import JobDone, JobFailed
from ..runtime.tasks import ServerTask, TaskSet
from ..storage.media import MediaStore, MediaTooLarge
from ..storage.transcripts import Transcript, TranscriptState, TranscriptStore
from .engines import SpeechEngines
from .intake import probe, sniff

__all__ = ["TranscriptService", "segment_json"]

log = logging.getLogger(__name__)

SAVE_EVERY_S = 0.5
BAD_INPUT = {ErrorCode.INVALID_AUDIO, ErrorCode.AUDIO_TOO_LONG}
"""Engine errors that mean the file itself is unusable: it is not kept."""


def segment_json(segment: SpeechSegment) -> dict[str, Any]:
    body: dict[str, Any] = {"index": segment.index, "start": round(segment.start, 3), "end": round(segment.end, 3),
                            "text": segment.text}
    if segment.words is not None:
        body["words"] = segment.words
    return body


@dataclass(kw_only=True, slots=True)
class _Live(ServerTask):
    """A transcription running now: its transcript as far as it has got, and the pages (or
    streamed answers) following its events."""

    transcript: Transcript
    task: asyncio.Task[None] | None = None
    followers: list[asyncio.Queue[dict[str, Any] | None]] = field(default_factory=list)
    job: EngineJob = field(default_factory=EngineJob)

    def publish(self, event: dict[str, Any] | None) -> None:
        for queue in self.followers:
            queue.put_nowait(event)


class TranscriptService:
    def __init__(self, settings: Settings, store: TranscriptStore, media: MediaStore, speech: SpeechEngines) -> None:
        self.settings = settings
        self.store = store
        self.media = media
        self.speech = speech
        self.live: dict[str, _Live] = {}
        self._tasks = TaskSet()

    @property
    def max_bytes(self) -> int:
        return self.settings.max_audio_upload_mb * 1024 * 1024

    # intake ---------------------------------------------------------------------------------

    async def store_upload(self, chunks: AsyncIterator[bytes]) -> tuple[str, str, int]:
        """Write an upload to the media folder and check it is audio of an allowed length.
        Returns (media path, MIME type, size); on any refusal nothing is left on disk."""
        temporary = self.media.new_name("audio", "upload")
        try:
            size = await self.media.write_stream(chunks, temporary, self.max_bytes)
        except MediaTooLarge:
            raise AppError(ErrorCode.AUDIO_TOO_LARGE, f"The recording is larger than the limit of "
                                                      f"{self.settings.max_audio_upload_mb} MB.") from None
        path = self.media.path(temporary)
        try:
            head = await asyncio.to_thread(_read_head, path)
            extension, mime = sniff(head)
            await asyncio.to_thread(probe, str(path), self.settings.max_audio_seconds)
            final = temporary.rsplit(".", 1)[0] + "." + extension
            await asyncio.to_thread(os.replace, path, self.media.path(final))
        except BaseException:
            self.media.delete(temporary)
            raise
        return final, mime, size

    async def accept(self, chunks: AsyncIterator[bytes], *, name: str = "", language: str | None = None) -> Transcript:
        """A new transcript from an upload, queued for transcription."""
        audio, mime, size = await self.store_upload(chunks)
        model = self.speech.model
        transcript = Transcript(audio=audio, mime=mime, bytes=size, name=name[:200], language_hint=language,
                                model=model.id if model else None)
        try:
            await self.store.add(transcript)
        except BaseException:
            self.media.delete(audio)
            raise
        self._start(transcript)
        return transcript

    # transcription --------------------------------------------------------------------------

    def _start(self, transcript: Transcript) -> _Live:
        live = self.live[transcript.id] = _Live(transcript=transcript,
                                                job=EngineJob(id=f"{transcript.id}-{int(time.time() * 1000)}"))
        live.task = self._tasks.spawn(self._run(live), name=f"transcript-{transcript.id}")
        return live

    async def _run(self, live: _Live) -> None:
        t = live.transcript
        request = TranscribeRequest(audio_path=str(self.media.path(t.audio)), language=t.language_hint,
                                    max_seconds=self.settings.max_audio_seconds)
        t.segments, t.text, t.error = [], "", None
        saved = 0.0
        try:
            async for event in self.speech.stream(request, live.job):
                if t.state == TranscriptState.QUEUED:
                    t.state = TranscriptState.RUNNING
                    live.publish({"type": "state", "state": "running"})
                if isinstance(event, SpeechInfo):
                    t.language, t.duration = event.language, round(event.duration, 3)
                    live.publish({"type": "info", "language": t.language, "duration": t.duration})
                elif isinstance(event, SpeechSegment):
                    segment = segment_json(event)
                    t.segments.append(segment)
                    live.publish({"type": "segment", **segment})
                    if time.monotonic() - saved >= SAVE_EVERY_S:
                        t.text = "".join(s["text"] for s in t.segments).strip()
                        await self.store.save(t)
                        saved = time.monotonic()
                elif isinstance(event, JobDone):
                    result = event.result if isinstance(event.result, TranscribeResult) else TranscribeResult()
                    t.text = result.text
                    t.seconds = round(result.seconds, 3)
                    t.state = TranscriptState.CANCELLED if result.cancelled else TranscriptState.DONE
                elif isinstance(event, JobFailed):
                    raise AppError(event.code, event.message)
        except AppError as exc:
            if exc.code == ErrorCode.CANCELLED:  # cancelled before the engine began
                t.state = TranscriptState.CANCELLED
            else:
                t.state, t.error = TranscriptState.ERROR, exc.message
            if exc.code in BAD_INPUT:  # the file is unusable: drop it rather than keep a broken entry
                await self.store.delete(t.id)
                self.media.delete(t.audio)
                live.publish({"type": "error", "code": exc.code, "message": exc.message, "deleted": True})
                live.publish(None)
                self.live.pop(t.id, None)
                return
        except asyncio.CancelledError:
            live.publish(None)
            self.live.pop(t.id, None)
            raise  # a shutdown: the row stays queued/running and is transcribed at the next start
        except Exception as exc:
            log.exception("transcription %s failed", t.id)
            t.state, t.error = TranscriptState.ERROR, f"{type(exc).__name__}: {exc}"
        await self.store.save(t)
        live.end()
        if t.state == TranscriptState.ERROR:
            live.publish({"type": "error", "code": ErrorCode.TRANSCRIPTION_FAILED, "message": t.error})
        else:
            live.publish({"type": "done", "state": t.state, "text": t.text, "language": t.language,
                          "duration": t.duration, "seconds": t.seconds})
        live.publish(None)
        self.live.pop(t.id, None)

    # reading --------------------------------------------------------------------------------

    async def get(self, transcript_id: str) -> Transcript | None:
        live = self.live.get(transcript_id)
        return live.transcript if live else await self.store.get(transcript_id)

    async def list_recent(self, limit: int = 200, before: float | None = None) -> list[Transcript]:
        stored = await self.store.list_recent(limit, before)
        return [self.live[t.id].transcript if t.id in self.live else t for t in stored]

    async def follow(self, transcript_id: str) -> AsyncIterator[dict[str, Any]]:
        """What has happened so far, then each new event until the transcript is finished."""
        live = self.live.get(transcript_id)
        transcript = live.transcript if live else await self.store.get(transcript_id)
        if transcript is None:
            return
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        if live is not None:
            live.followers.append(queue)
        try:
            yield {"type": "transcript", "id": transcript.id, "state": transcript.state,
                   "audio_url": f"/api/transcripts/{transcript.id}/audio"}
            if transcript.language:
                yield {"type": "info", "language": transcript.language, "duration": transcript.duration}
            for segment in list(transcript.segments):
                yield {"type": "segment", **segment}
            seen = len(transcript.segments)
            if live is None:
                if transcript.state == "error":
                    yield {"type": "error", "code": ErrorCode.TRANSCRIPTION_FAILED, "message": transcript.error}
                else:
                    yield {"type": "done", "state": transcript.state, "text": transcript.text,
                           "language": transcript.language, "duration": transcript.duration,
                           "seconds": transcript.seconds}
                return
            while True:
                event = await queue.get()
                if event is None:
                    return
                if event["type"] == "segment" and event["index"] < seen:
                    continue  # already replayed
                yield event
        finally:
            if live is not None and queue in live.followers:
                live.followers.remove(queue)

    # changes --------------------------------------------------------------------------------

    async def cancel(self, transcript_id: str) -> bool:
        live = self.live.get(transcript_id)
        if live is None:
            return False
        self.speech.cancel(live.job)
        return True

    async def delete(self, transcript_id: str) -> bool:
        live = self.live.pop(transcript_id, None)
        if live is not None and live.task is not None:
            self.speech.cancel(live.job)
            live.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await live.task
        transcript = await self.store.get(transcript_id)
        if transcript is None:
            return False
        await self.store.delete(transcript_id)
        self.media.delete(transcript.audio)
        return True

    async def recover(self) -> int:
        """Transcribe again what a shutdown interrupted."""
        unfinished = await self.store.unfinished()
        for transcript in unfinished:
            transcript.state = TranscriptState.QUEUED
            self._start(transcript)
        return len(unfinished)

    async def shutdown(self) -> None:
        """Cut running transcriptions off: their rows stay queued or running and are transcribed
        again at the next start."""
        await self._tasks.shutdown(cancel=True)
        self.live.clear()  # as a restart would: a restore may bring other transcripts


def _read_head(path: os.PathLike[str]) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(64)
