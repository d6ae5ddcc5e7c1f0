"""The Transcripts page: past recordings with their text, playback, copy and delete; new
audio files to transcribe; progress while a long one is transcribed."""

from __future__ import annotations

from datetime import datetime

from nicegui import app, ui

from backend.core.i18n import _, format_datetime
from backend.services import Services
from backend.storage.transcripts import Transcript, TranscriptState

from ..components.aria import named
from ..components.dialogs import confirm
from ..components.raw_upload import RawUpload, UploadFailed
from ..frame import frame

__all__ = ["register"]



def state_label(state: TranscriptState) -> str:
    """A transcript's state in words ("" for one that is done)."""
    return {TranscriptState.QUEUED: _("waiting"), TranscriptState.RUNNING: _("transcribing"),
            TranscriptState.DONE: "", TranscriptState.ERROR: _("failed"),
            TranscriptState.CANCELLED: _("stopped")}[state]


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
        async with frame(self.services, current=None, title=_("Transcripts")):
            with ui.row().classes("w-full items-center gap-2"):
                ui.label(_("Recordings from the microphone button and audio files you add. They stay on this "
                           "device.")).classes("text-body2 col")
                with RawUpload(app.url_path_for("upload_recording"), accept="audio/*", input_testid="transcribe-file",
                               on_uploaded=lambda _upload: self.render(), on_failed=self.refused):
                    ui.button(_("Transcribe a file"), icon="upload_file").props("unelevated no-caps "
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
                ui.label(_("No recordings yet. Use the microphone button in a chat, or add an audio file.")) \
                    .classes("text-grey-6").props("data-testid=transcripts-empty")
            for t in transcripts:
                self.render_one(t)

    def render_one(self, t: Transcript) -> None:
        with ui.card().classes("w-full").props(f"flat bordered data-testid=transcript-{t.id}"):
            with ui.row().classes("w-full items-center gap-2 no-wrap"):
                ui.icon("graphic_eq").classes("text-grey-7")
                title = t.name or _("Recording")
                when = format_datetime(datetime.fromtimestamp(t.created_at), "short")
                details = " · ".join(p for p in (when, _duration(t.duration), (t.language or "").upper()) if p)
                with ui.column().classes("col gap-0").style("min-width: 0"):
                    ui.label(title).classes("text-subtitle2 ellipsis")
                    ui.label(details).classes("text-caption text-grey-7")
                if state_label(t.state):
                    failed = t.state == TranscriptState.ERROR
                    ui.badge(state_label(t.state), color="negative" if failed else "primary") \
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
                ui.label(_("No speech was heard.")).classes("text-grey-6 text-caption")
            with ui.row().classes("w-full items-center gap-1"):
                named(ui.audio(f"/api/transcripts/{t.id}/audio").props("preload=none").classes("col")
                      .style("min-width: 200px; height: 36px"), _("Recording: {name}", name=title))
                if text:
                    named(ui.button(icon="content_copy", on_click=lambda x=text: self.copy(x))
                          .props("flat round dense data-testid=transcript-copy"), _("Copy the text"))
                if t.state in (TranscriptState.QUEUED, TranscriptState.RUNNING):
                    named(ui.button(icon="stop", on_click=lambda i=t.id: self.services.transcripts.cancel(i))
                          .props("flat round dense"), _("Stop transcribing"))
                named(ui.button(icon="delete", on_click=lambda x=t: self.delete(x))
                      .props("flat round dense data-testid=transcript-delete"), _("Delete {name}", name=title))

    async def refused(self, failure: UploadFailed) -> None:
        ui.notify(failure.message, type="warning")
        await self.render()

    async def copy(self, text: str) -> None:
        ui.clipboard.write(text)
        ui.notify(_("Copied"), position="bottom", timeout=1000)

    async def delete(self, t: Transcript) -> None:
        if await confirm(_("Delete “{name}”?", name=t.name or _("Recording")),
                         _("The recording and its text are removed from this device."), _("Delete"), danger=True):
            await self.services.transcripts.delete(t.id)
            await self.render()


def register(services: Services) -> None:
    @ui.page("/transcripts")
    async def transcripts_page() -> None:
        await services.ready()
        await TranscriptsPage(services).build()
