"""Engine servers on other machines: each with whether it answers, how quickly its last check came
back and how fast each model last answered; Check now and Remove; and Add, by an address typed,
pasted or read from a QR code, with the key it wants and, for a self-signed https server, the
fingerprint of its certificate.

Redrawn only when a server, its state or its models change.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from nicegui import ui

from backend.core.errors import AppError, ErrorCode
from backend.core.i18n import _, format_decimal, format_number, ngettext
from backend.remote.store import RemoteEngine
from backend.services import Services

from ...components.aria import named
from ...components.dialogs import confirm
from ...formats import duration

__all__ = ["EngineServers"]

FINGERPRINT = re.compile(r"(?:[0-9A-F]{2}:){31}[0-9A-F]{2}")


def uses() -> dict[str, str]:
    """What a server's model is used for here (servers do not say; it is guessed from the name)."""
    return {"chat": _("for chat"), "embeddings": _("for documents"), "speech": _("for dictation"),
            "images": _("for pictures")}


def engine_state(engine: RemoteEngine) -> str:
    """Whether a server answers, in words."""
    if engine.state == "up":
        ms = format_number(round(engine.latency_ms)) if engine.latency_ms is not None else None
        ago = duration(time.time() - engine.checked_at) if engine.checked_at else None
        if ms is not None and ago is not None:
            return _("Answering (checked in {ms} ms, {time} ago)", ms=ms, time=ago)
        if ms is not None:
            return _("Answering (checked in {ms} ms)", ms=ms)
        if ago is not None:
            return _("Answering (checked {time} ago)", time=ago)
        return _("Answering (checked)")
    if engine.state == "down":
        return _("Not answering: {reason}", reason=engine.error or _("no reason given"))
    return _("Not checked yet")


class EngineServers:
    def __init__(self, services: Services, *, changed: Callable[[], None]) -> None:
        self.services = services
        self.remote = services.remote
        self.changed = changed
        self.shown: tuple[Any, ...] | None = None
        with ui.row().classes("w-full items-center no-wrap gap-2"):
            ui.label(_("On other machines")).classes("text-subtitle2 col").props("role=heading aria-level=2")
            ui.button(_("Add a server"), icon="add_link", on_click=self.add_dialog) \
                .props("flat dense no-caps data-testid=add-engine")
        ui.label(_("Use the models of a laptop or home server on the same network that runs llama-server, Ollama, "
                   "vLLM, LM Studio, LocalAI or gridless. Your conversations stay on this device; each question "
                   "and its history are sent to the server that answers it.")).classes("text-caption text-grey-7")
        self.box = ui.column().classes("w-full gap-3")
        self.sync()

    def sync(self) -> None:
        servers = self.remote.servers()
        signature = tuple((e.id, e.name, e.state, e.error, e.tools, tuple(e.models), tuple(map(e.job_of, e.models)),
                           tuple(sorted((m, s.get("tokens_per_s")) for m, s in e.speed.items())),
                           int(e.latency_ms or 0), int((time.time() - e.checked_at) // 60) if e.checked_at else None)
                          for e in servers)
        if signature != self.shown:
            self.shown = signature
            self.render(servers)

    def render(self, servers: list[RemoteEngine]) -> None:
        self.box.clear()
        with self.box:
            for engine in servers:
                self.card(engine)

    def card(self, engine: RemoteEngine) -> None:
        with ui.card().classes("w-full q-pa-sm").props(f"flat bordered data-testid=engine-{engine.id}"):
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                ui.icon("cloud_done" if engine.state == "up" else "cloud_off" if engine.state == "down"
                        else "cloud_queue", color="positive" if engine.state == "up" else "grey-7")
                ui.label(engine.name).classes("text-body1 ellipsis col").style("min-width:0")
                named(ui.button(icon="refresh", on_click=lambda e=engine: self.check(e)), _("Check now")) \
                    .props(f"flat round dense data-testid=check-{engine.id}").tooltip(_("Check now"))
                named(ui.button(icon="delete", on_click=lambda e=engine: self.remove(e)), _("Remove")) \
                    .props(f"flat round dense data-testid=remove-{engine.id}").tooltip(_("Remove"))
            ui.label(engine_state(engine)).classes(
                "text-caption " + ("text-negative" if engine.state == "down" else "text-grey-8")) \
                .props(f"data-testid=engine-state-{engine.id}")
            trust = (_("https, pinned certificate {fingerprint}…", fingerprint=engine.fingerprint[:23])
                     if engine.fingerprint
                     else _("https, verified") if engine.secure
                     else _("plain http: others on this network could read what is sent"))
            ui.label(" · ".join([engine.url, trust, *([_("key set")] if engine.api_key else [])])) \
                .classes("text-caption text-grey-7").style("overflow-wrap:anywhere")
            for index, model in enumerate(engine.models[:50]):
                speed = engine.speed.get(model, {})
                facts = [_("{n} tokens/s", n=format_decimal(speed["tokens_per_s"], 0))
                         if speed.get("tokens_per_s") else None,
                         _("first words after {seconds} s", seconds=format_decimal(speed["ttft_s"], 2))
                         if speed.get("ttft_s") else None]
                with ui.row().classes("w-full items-center no-wrap gap-2"):
                    ui.label(" · ".join([model, *(f for f in facts if f)])).classes("text-body2 col") \
                        .style("overflow-wrap:anywhere;min-width:0")
                    named(ui.select(uses(), value=engine.job_of(model),
                                    on_change=lambda e, m=model, en=engine: self.set_job(en, m, str(e.value))),
                          _("What {model} is used for", model=model)) \
                        .props(f"dense borderless options-dense data-testid=engine-job-{engine.id}-{index}") \
                        .classes("w-40")
            ui.switch(_("Its chat models can call tools"), value=engine.tools,
                      on_change=lambda e, en=engine: self.set_tools(en, bool(e.value))) \
                .props(f"dense data-testid=engine-tools-{engine.id}").classes("text-body2") \
                .tooltip(_("Turn on when the server supports tool calls (llama-server with --jinja, Ollama, "
                           "vLLM with a tool parser); conversations then offer the tools to its models."))
            if len(engine.models) > 50:
                ui.label(ngettext("and {n} more", "and {n} more", len(engine.models) - 50)) \
                    .classes("text-caption text-grey-7")
            if not engine.models:
                ui.label(_("It offers no models.")).classes("text-caption text-grey-7")

    async def set_tools(self, engine: RemoteEngine, tools: bool) -> None:
        try:
            await self.remote.set_tools(engine.id, tools)
        except AppError as exc:
            ui.notify(exc.message, type="negative")
        self.changed()

    async def set_job(self, engine: RemoteEngine, model: str, job: str) -> None:
        try:
            await self.remote.set_job(engine.id, model, job)
        except AppError as exc:
            ui.notify(exc.message, type="negative")
        self.changed()

    async def check(self, engine: RemoteEngine) -> None:
        try:
            checked = await self.remote.check(engine.id)
        except AppError as exc:
            ui.notify(exc.message, type="negative")
        else:
            ui.notify(f"{checked.name}: {engine_state(checked)}",
                      type="positive" if checked.state == "up" else "warning")
        self.changed()

    async def remove(self, engine: RemoteEngine) -> None:
        if not await confirm(_("Remove {name}?", name=engine.name),
                             _("Its models are no longer offered; conversations that used them answer with this "
                               "device's model."), _("Remove")):
            return
        try:
            await self.remote.remove(engine.id)
        except AppError as exc:
            ui.notify(exc.message, type="negative")
        self.changed()

    async def add_dialog(self) -> None:
        title = _("Add an engine server")
        with named(ui.dialog(), title) as dialog, ui.card().classes("w-full").style("max-width:32rem"):
            ui.label(title).classes("text-h6")
            with ui.row().classes("w-full items-center no-wrap gap-2"):
                url = ui.input(_("Address"), placeholder="192.168.1.20:8080").classes("col") \
                    .props("autofocus outlined dense data-testid=engine-url autocomplete=off")
                named(ui.button(icon="qr_code_scanner", on_click=lambda: self.scan(url)),
                      _("Read the address from a QR code")) \
                    .props("flat round dense data-testid=engine-scan").tooltip(_("Read the address from a QR code"))
            key = ui.input(_("Key (if the server wants one)"), password=True, password_toggle_button=True) \
                .classes("w-full").props("outlined dense data-testid=engine-key autocomplete=off")
            name = ui.input(_("Name (optional)"), placeholder=_("Laptop")).classes("w-full") \
                .props("outlined dense data-testid=engine-name")
            fingerprint = ui.input(_("Certificate fingerprint (self-signed https only)")).classes("w-full") \
                .props("outlined dense data-testid=engine-fingerprint autocomplete=off")
            problem = ui.label("").classes("text-negative text-body2").style("overflow-wrap:anywhere") \
                .props("role=alert data-testid=engine-error")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button(_("Cancel"), on_click=dialog.close).props("flat no-caps")
                add = ui.button(_("Add")).props("unelevated no-caps data-testid=engine-add")

            async def submit() -> None:
                problem.set_text("")
                add.props("loading")
                try:
                    engine = await self.remote.add(url.value or "", key.value or "",
                                                   fingerprint=(fingerprint.value or "").strip() or None,
                                                   name=name.value or None)
                except AppError as exc:
                    problem.set_text(exc.message)
                    shown = FINGERPRINT.search(exc.message)
                    if exc.code == ErrorCode.REMOTE_UNTRUSTED and shown and not fingerprint.value:
                        fingerprint.set_value(shown.group(0))
                    return
                finally:
                    add.props(remove="loading")
                dialog.close()
                ui.notify(ngettext("{name} added with {n} model.", "{name} added with {n} models.", len(engine.models),
                                   name=engine.name), type="positive")
                self.changed()

            add.on_click(submit)
            url.on("keydown.enter", submit)
        dialog.open()

    @staticmethod
    async def scan(target: ui.input) -> None:
        """Read an address from a QR code with the camera, where the browser can (BarcodeDetector)."""
        text = await ui.run_javascript("window.gridlessScanQr ? window.gridlessScanQr() : null", timeout=120)
        if isinstance(text, str) and text.strip():
            target.set_value(text.strip()[:500])
        elif text is None:
            ui.notify(_("This browser cannot read QR codes; type or paste the address."), type="warning")
