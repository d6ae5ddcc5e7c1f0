"""How the Models page words a download's state, and the progress line that moves in place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from nicegui import ui

from backend.core.i18n import _
from backend.models.downloads import Download, DownloadState

from ...components.aria import named
from ...formats import duration, size, speed

__all__ = ["Part", "ProgressLine", "download_status", "duration", "job_names"]


class Part(Protocol):
    """A part of the page that keeps itself current: `sync` redraws it only when what it shows has
    changed, and otherwise moves its progress bars and figures in place."""

    def sync(self) -> None: ...


def job_names() -> dict[str, str]:
    """Each job (and the engine slot that runs it) by name, in the page's language."""
    return {"chat": _("Chat"), "vision": _("Vision"), "images": _("Images"), "speech": _("Speech"),
            "voice": _("Voice"), "embeddings": _("Embeddings")}


def download_status(dl: Download) -> str:
    done = _("{done} of {total}", done=size(dl.bytes_done), total=size(dl.bytes_total))
    if dl.state == DownloadState.RUNNING:
        if dl.error:
            return f"{done} · {dl.error}"
        if dl.stalled:
            return f"{done} · " + _("waiting for the network…")
        parts = [done]
        if dl.speed:
            parts.append(speed(dl.speed))
        if dl.eta_s is not None:
            parts.append(_("{time} left", time=duration(dl.eta_s)))
        return " · ".join(parts)
    if dl.state == DownloadState.QUEUED:
        return f"{done} · " + _("waiting")
    if dl.state == DownloadState.PAUSED:
        return f"{done} · " + _("paused")
    if dl.state == DownloadState.DONE:
        return f"{size(dl.bytes_total)} · " + _("installed")
    if dl.state == DownloadState.CANCELLED:
        return _("cancelled")
    return dl.error or _("download failed")


@dataclass(kw_only=True, slots=True)
class ProgressLine:
    """A download's bar and status text; `show` moves them without redrawing anything else."""

    download_id: str
    bar: ui.linear_progress
    label: ui.label

    @classmethod
    def build(cls, dl: Download, *, bar_props: str, color: str = "primary", label_classes: str = "text-caption",
              label_props: str = "") -> ProgressLine:
        bar = named(ui.linear_progress(value=round(dl.fraction, 4), show_value=False, color=color).props(bar_props),
                    _("Progress of {name}", name=dl.name))
        label = ui.label(download_status(dl)).classes(label_classes).props(label_props)
        return cls(download_id=dl.id, bar=bar, label=label)

    def show(self, dl: Download) -> None:
        self.bar.set_value(round(dl.fraction, 4))
        self.label.set_text(download_status(dl))
