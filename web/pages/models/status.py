"""How the Models page words a download's state, and the progress line that moves in place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from nicegui import ui

from backend.core.units import format_bytes
from backend.models.downloads import Download, DownloadState

__all__ = ["Part", "ProgressLine", "download_status", "duration"]


class Part(Protocol):
    """A part of the page that keeps itself current: `sync` redraws it only when what it shows has
    changed, and otherwise moves its progress bars and figures in place."""

    def sync(self) -> None: ...


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def download_status(dl: Download) -> str:
    done = f"{format_bytes(dl.bytes_done)} of {format_bytes(dl.bytes_total)}"
    if dl.state == DownloadState.RUNNING:
        if dl.error:
            return f"{done} · {dl.error}"
        if dl.stalled:
            return f"{done} · waiting for the network…"
        speed = f" · {format_bytes(dl.speed)}/s" if dl.speed else ""
        left = f" · {duration(dl.eta_s)} left" if dl.eta_s is not None else ""
        return done + speed + left
    if dl.state == DownloadState.QUEUED:
        return f"{done} · waiting"
    if dl.state == DownloadState.PAUSED:
        return f"{done} · paused"
    if dl.state == DownloadState.DONE:
        return f"{format_bytes(dl.bytes_total)} · installed"
    if dl.state == DownloadState.CANCELLED:
        return "cancelled"
    return dl.error or "failed"


@dataclass(kw_only=True, slots=True)
class ProgressLine:
    """A download's bar and status text; `show` moves them without redrawing anything else."""

    download_id: str
    bar: ui.linear_progress
    label: ui.label

    @classmethod
    def build(cls, dl: Download, *, bar_props: str, color: str = "primary", label_classes: str = "text-caption",
              label_props: str = "") -> ProgressLine:
        bar = ui.linear_progress(value=round(dl.fraction, 4), show_value=False, color=color).props(bar_props)
        label = ui.label(download_status(dl)).classes(label_classes).props(label_props)
        return cls(download_id=dl.id, bar=bar, label=label)

    def show(self, dl: Download) -> None:
        self.bar.set_value(round(dl.fraction, 4))
        self.label.set_text(download_status(dl))
