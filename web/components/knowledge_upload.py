"""The button that adds documents to a collection: several files at once, each with its progress.

The files go to the collection's upload route as raw bodies (`knowledge_upload.js`, through
`static/upload.js`), one after another; the page hears about each one as the other uploads do
(`on_upload_events`), so it can list the documents that arrived and say why one was refused.
"""

from __future__ import annotations

from nicegui import ui

from backend.core.i18n import _

from .raw_upload import FailedHandler, StartedHandler, UploadedHandler, on_upload_events

__all__ = ["DOCUMENT_TYPES", "DocumentUpload"]

DOCUMENT_TYPES = ".pdf,.docx,.md,.markdown,.txt,.text,.csv,.tsv,.html,.htm,application/pdf,text/*"
"""What the chooser offers first (the server decides what a collection takes, and says why not)."""


class DocumentUpload(ui.element, component="knowledge_upload.js"):
    """Wraps a button: a tap opens the file chooser; the files chosen are sent to `url`."""

    def __init__(self, url: str, *, accept: str = DOCUMENT_TYPES, input_testid: str | None = None,
                 on_started: StartedHandler | None = None, on_uploaded: UploadedHandler | None = None,
                 on_failed: FailedHandler | None = None) -> None:
        super().__init__()
        self._props.update({"url": url, "accept": accept, "waiting-text": _("Waiting")})
        if input_testid:
            self._props["testid"] = input_testid
        on_upload_events(self, on_started=on_started, on_uploaded=on_uploaded, on_failed=on_failed)
