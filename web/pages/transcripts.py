"""The Transcripts page: past recordings with their text, playback, copy and delete; new
audio files to transcribe; progress while a long one is transcribed."""

from __future__ import annotations

import time

from nicegui import app, ui

from backend.services import Services
from backend.storage.transcripts import Transcript, TranscriptState

from ..components.dialogs import confirm
from ..components.raw_upload import RawUpload, UploadFailed
from ..frame import frame

__all__ = ["register"]

STATE_LABELS = {TranscriptState.QUEUED: "waiting", TranscriptState.RUNNING: "transcribing", TranscriptState.DONE: "",
                TranscriptState.ERROR: "failed", TranscriptState.CANCELLED: "stopped"}


def _duration(seconds: float | None) -> str:
    if not seconds:
        return ""
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _key(transcripts: list[Transcript]) -> tuple[object, ...]:
    """What the page shows of each transcript; it is drawn again when this changes."""
    return tuple((t.id, t.state, len(t.segments), t.name) for t in transcripts)


def progress(t: Transcript) -> float:
    if t.state != TranscriptState.RUNNING or not t.duration:
        return 0.0
    done = t.segments[-1]["end"] if t.segments else 0.0
    return max(0.0, min(1.0, done / t.duration))


class TranscriptsPage:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.shown: tuple[object, ...] = ()

    async def build(self) -> None:
        async with frame(self.services, current=None, title="Transcripts"):
            with ui.row().classes("w-full items-center gap-2"):
                ui.label("Recordings from the microphone button and audio files you add. They stay on this "
                         "device.").classes("text-body2 col")
                with RawUpload(app.url_path_for("upload_recording"), accept="audio/*", input_testid="transcribe-file",
                               on_uploaded=lambda _: self.render(), on_failed=self.refused):
                    ui.button("Transcribe a file", icon="upload_file").props("unelevated no-caps "
                                                                             "data-testid=transcribe-upload")
            self.body = ui.column().classes("w-full gap-3")
            await self.render()
            ui.timer(1.0, self.tick)

    async def tick(self) -> None:
        transcripts = await self.services.transcripts.list_recent(50)
        if _key(transcripts) != self.shown:
            await self.render(transcripts)

    async def render(self, transcripts: list[Transcript] | None = None) -> None:
        if transcripts is None:
            transcripts = await self.services.transcripts.list_recent(50)
        self.shown = _key(transcripts)
        self.body.clear()
        with self.body:
            if not transcripts:
                ui.label("No recordings yet. Use the microphone button in a chat, or add an audio file.") \
                    .classes("text-grey-6").props("data-testid=transcripts-empty")
            for t in transcripts:
                self.render_one(t)

    def render_one(self, t: Transcript) -> None:
        with ui.card().classes("w-full").props(f"flat bordered data-testid=transcript-{t.id}"):
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                ui.icon("graphic_eq").classes("text-grey-7")
                title = t.name or "Recording"
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(t.created_at))
                details = " · ".join(p for p in (when, _duration(t.duration), (t.language or "").upper()) if p)
                with ui.column().classes("col gap-0").style("min-width: 0"):
                    ui.label(title).classes("text-subtitle2 ellipsis")
                    ui.label(details).classes("text-caption text-grey-7")
                if STATE_LABELS[t.state]:
                    failed = t.state == TranscriptState.ERROR
                    ui.badge(STATE_LABELS[t.state], color="negative" if failed else "primary") \
                        .props("outline data-testid=transcript-state")
            if t.state in (TranscriptState.QUEUED, TranscriptState.RUNNING):
                ui.linear_progress(value=progress(t), show_value=False).props(
                    f"{'indeterminate ' if t.state == 'queued' else ''}data-testid=transcript-progress")
            if t.error:
                ui.label(t.error).classes("text-negative text-caption")
            text = t.text or "".join(s["text"] for s in t.segments).strip()
            if text:
                ui.label(text).classes("text-body2").style("white-space: pre-wrap") \
                    .props("data-testid=transcript-text")
            elif t.state == TranscriptState.DONE:
                ui.label("No speech was heard.").classes("text-grey-6 text-caption")
            with ui.row().classes("w-full items-center gap-1"):
                ui.audio(f"/api/transcripts/{t.id}/audio").props("preload=none").classes("col") \
                    .style("min-width: 200px; height: 36px")
                if text:
                    ui.button(icon="content_copy", on_click=lambda x=text: self.copy(x)) \
                        .props("flat round dense aria-label=Copy data-testid=transcript-copy")
                if t.state in (TranscriptState.QUEUED, TranscriptState.RUNNING):
                    ui.button(icon="stop", on_click=lambda i=t.id: self.services.transcripts.cancel(i)) \
                        .props("flat round dense aria-label=Stop")
                ui.button(icon="delete", on_click=lambda x=t: self.delete(x)) \
                    .props("flat round dense aria-label=Delete data-testid=transcript-delete")

    async def refused(self, failure: UploadFailed) -> None:
        ui.notify(failure.message, type="warning")
        await self.render()

    async def copy(self, text: str) -> None:
        ui.clipboard.write(text)
        ui.notify("Copied", position="bottom", timeout=1000)

    async def delete(self, t: Transcript) -> None:
        if await confirm(f"Delete “{t.name or 'Recording'}”?", "The recording and its text are removed from this "
                         "device.", "Delete", danger=True):
            await self.services.transcripts.delete(t.id)
            await self.render()


def register(services: Services) -> None:
    @ui.page("/transcripts")
    async def transcripts_page() -> None:
        await services.ready()
        await TranscriptsPage(services).build()
