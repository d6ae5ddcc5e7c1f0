"""The camera for a chat message: a live viewfinder, or the device's camera where the page is not secure.

The viewfinder, the shutter and the upload run in the browser (`camera.js`); a photo arrives at
`url` like any chosen file, and the page hears about it through the same events as `RawUpload`.
"""

from __future__ import annotations

from nicegui import ui

from .raw_upload import FailedHandler, StartedHandler, UploadedHandler, on_upload_events

__all__ = ["Camera"]


class Camera(ui.element, component="camera.js"):
    """Wraps the button that opens the camera; a tap on it opens the viewfinder within the tap."""

    def __init__(self, url: str, *, on_started: StartedHandler | None = None,
                 on_uploaded: UploadedHandler | None = None, on_failed: FailedHandler | None = None) -> None:
        super().__init__()
        self._props["url"] = url
        on_upload_events(self, on_started=on_started, on_uploaded=on_uploaded, on_failed=on_failed)
