"""A file from the device, sent by the browser as the raw request body to one of the app's routes.

The bytes never cross the websocket: `raw_upload.js` sends them with `static/upload.js`, the
one upload helper, which also turns every failure (the route's refusal, a 413 from the size
gate, a lost connection, a stopped upload) into the server's own error shape. The page hears
about each file through events, so it can show what is on its way and what came of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nicegui import events, ui

from backend.core.i18n import _

__all__ = ["RawUpload", "UploadFailed", "Uploaded", "on_upload_events"]


@dataclass(kw_only=True, slots=True)
class Uploaded:
    name: str
    data: dict[str, Any] = field(default_factory=dict)
    """The route's answer (for an attachment: what it is, its id, its thumbnail)."""


@dataclass(kw_only=True, slots=True)
class UploadFailed:
    name: str
    code: str
    message: str
    """A sentence for people, as the server or the upload helper wrote it."""


StartedHandler = Callable[[str], Any]
UploadedHandler = Callable[[Uploaded], Any]
FailedHandler = Callable[[UploadFailed], Any]


def _payload(event: events.GenericEventArguments) -> dict[str, Any]:
    return event.args if isinstance(event.args, dict) else {}


def on_upload_events(element: ui.element, *, on_started: StartedHandler | None = None,
                     on_uploaded: UploadedHandler | None = None, on_failed: FailedHandler | None = None) -> None:
    """Wires the events every uploading element emits (see `sendFile` in static/upload.js)."""
    if on_started is not None:
        started = on_started
        element.on("started", lambda e: started(str(_payload(e).get("name", ""))))
    if on_uploaded is not None:
        uploaded = on_uploaded

        def _uploaded(event: events.GenericEventArguments) -> Any:
            payload = _payload(event)
            data = payload.get("data")
            return uploaded(Uploaded(name=str(payload.get("name", "")), data=data if isinstance(data, dict) else {}))
        element.on("uploaded", _uploaded)
    if on_failed is not None:
        failed = on_failed

        def _failed(event: events.GenericEventArguments) -> Any:
            payload = _payload(event)
            found = payload.get("error")
            error: dict[str, Any] = found if isinstance(found, dict) else {}
            return failed(UploadFailed(name=str(payload.get("name", "")), code=str(error.get("code", "")),
                                       message=str(error.get("message") or _("The file could not be sent."))))
        element.on("failed", _failed)


class RawUpload(ui.element, component="raw_upload.js"):
    """A file input whose file goes to `url` as the raw body, with `name_param` set to its name.

    Used as a container: a tap on what it holds (a button) opens the file chooser, in the
    browser within the tap. With `auto` a chosen file is sent at once; otherwise `send` sends it.
    `paste` and `drop` also take files pasted into or dropped on the page while it is shown.
    """

    def __init__(self, url: str, *, method: str = "POST", accept: str = "", multiple: bool = False,
                 name_param: str = "name", params: dict[str, str] | None = None, auto: bool = True,
                 paste: bool = False, drop: bool = False, visible_input: bool = False, show_progress: bool = False,
                 input_testid: str | None = None, on_started: StartedHandler | None = None,
                 on_uploaded: UploadedHandler | None = None, on_failed: FailedHandler | None = None) -> None:
        super().__init__()
        self._props.update({"url": url, "method": method, "accept": accept, "multiple": multiple,
                            "name-param": name_param, "params": params or {}, "auto": auto, "paste": paste,
                            "drop": drop, "visible": visible_input, "show-progress": show_progress})
        if input_testid:
            self._props["testid"] = input_testid
        on_upload_events(self, on_started=on_started, on_uploaded=on_uploaded, on_failed=on_failed)

    def send(self, params: dict[str, str] | None = None) -> None:
        """Send the chosen file with these extra query parameters (for `auto=False`)."""
        self.run_method("send", params or {})
