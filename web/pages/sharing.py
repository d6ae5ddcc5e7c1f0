"""The Share page (serve a tablet on this network: QR code, secure mode; keys for other apps) and the
Devices page."""

from __future__ import annotations

import asyncio
import html
import re
import time

import qrcode
import qrcode.image.svg
from nicegui import ui

from backend.core.errors import AppError
from backend.core.i18n import _, ngettext
from backend.security.certs import is_private_address
from backend.security.devices import Device
from backend.security.interfaces import NetworkInterface, lan_interfaces, preselect
from backend.security.keys import SCOPES, ApiKey
from backend.security.sharing import ShareState
from backend.services import Services

from ..components.aria import named
from ..components.dialogs import confirm
from ..formats import ago
from ..frame import frame

__all__ = ["register"]

SETTING_ADDRESS = "share.address"
SETTING_SECURE = "share.secure"


def scope_labels() -> dict[str, str]:
    """What each scope of a key opens, in the page's language."""
    return {"chat": _("Chat (chat completions and the model list)"),
            "images": _("Pictures (making them and reading them)"),
            "audio": _("Voice (transcribing and reading aloud)"),
            "embeddings": _("Embeddings (vectors for texts)"),
            "conversations": _("Reading your conversations")}


def qr_svg(text: str, name: str) -> str:
    """A QR code as inline SVG that scales to its box, with `name` as what a screen reader says of it."""
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, border=2,
                        error_correction=qrcode.constants.ERROR_CORRECT_M)
    svg = image.to_string(encoding="unicode")
    return re.sub(r'^<svg width="[^"]*" height="[^"]*"',
                  f'<svg width="100%" height="100%" role="img" aria-label="{html.escape(name, quote=True)}"', svg)


def code_left(seconds: float) -> str:
    left = int(seconds)
    clock = f"{left // 60}:{left % 60:02d}"
    return _("This code works once, for {time} more.", time=clock)


class SharePage:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.sharing = services.share()
        self.pairing = services.pairing
        self.shown: tuple[object, ...] = ()
        self.code_label: ui.label | None = None

    async def build(self) -> None:
        async with frame(self.services, current=None, title=_("Share on this network")):
            self.body = ui.column().classes("w-full gap-3")
            await self.render()
            ui.separator().classes("q-my-md")
            self.keys = KeysSection(self.services)
            self.keys.build()
            ui.timer(1.0, self.tick)

    def _key(self) -> tuple[object, ...]:
        state = self.sharing.state
        code = self.pairing.code()[0] if state else None
        return state, code, self.sharing.stopped_reason

    async def tick(self) -> None:
        self.keys.tick()
        if self._key() != self.shown:
            await self.render()
        elif self.sharing.state and self.code_label is not None:
            self.code_label.set_text(code_left(self.pairing.code()[1]))

    async def render(self) -> None:
        self.shown = self._key()
        self.body.clear()
        with self.body:
            if self.sharing.state is not None:
                self.render_on(self.sharing.state)
            else:
                await self.render_off()

    async def render_off(self) -> None:
        self.code_label = None
        registry = self.services.models.registry
        interfaces = await _interfaces()
        ui.label(_("Let a tablet or laptop on the same hotspot or Wi-Fi use gridless: it gets the chats, "
                   "images and voice, not the models or settings. You approve each device.")) \
            .classes("text-body2")
        if self.sharing.stopped_reason:
            ui.label(self.sharing.stopped_reason).classes("text-negative").props("data-testid=share-stopped")
        if not interfaces:
            ui.label(_("This device has no network address right now. Turn on the hotspot or join a Wi-Fi "
                       "network, then come back.")).classes("text-warning").props("data-testid=share-no-network")
            return
        chosen = preselect(interfaces, await registry.get_setting(SETTING_ADDRESS))
        options = {i.address: i.label for i in interfaces}
        address = ui.select(options, value=chosen.address if chosen else None, label=_("Network")) \
            .classes("w-full").props("data-testid=share-interface")
        port = ui.number(_("Port"), value=self.services.settings.share_port or self.services.settings.port,
                         min=1024, max=65534, precision=0).classes("w-40").props("data-testid=share-port")
        secure = ui.switch(_("Secure mode (HTTPS)"), value=bool(await registry.get_setting(SETTING_SECURE))) \
            .props("data-testid=share-secure")
        ui.label(_("Needed on the tablet for the camera, the microphone and installing the app. The tablet "
                   "installs this phone's certificate once; the page guides it.")).classes("text-caption text-grey-7")
        error = ui.label().classes("text-negative").props("data-testid=share-error")
        error.set_visibility(False)

        async def start() -> None:
            error.set_visibility(False)
            if secure.value and not is_private_address(address.value or ""):
                error.set_text(_("Secure mode works on private network addresses only (like 192.168.x.x)."))
                error.set_visibility(True)
                return
            try:
                await self.sharing.start(str(address.value), int(port.value or 0), bool(secure.value))
            except AppError as exc:
                error.set_text(exc.message)
                error.set_visibility(True)
                return
            await registry.set_setting(SETTING_ADDRESS, address.value)
            await registry.set_setting(SETTING_SECURE, bool(secure.value))
            await self.render()

        ui.button(_("Share on this network"), icon="share", on_click=start) \
            .props("unelevated data-testid=share-start")

    def render_on(self, state: ShareState) -> None:
        code, left = self.pairing.code()
        link = f"{state.origin}/pair#{code}"
        with ui.row().classes("items-center gap-2"):
            ui.icon("wifi_tethering", color="positive")
            ui.label(_("Sharing on")).classes("text-subtitle1")
            ui.label(state.origin).classes("text-subtitle1 text-weight-bold").props("data-testid=share-address")
        if state.secure and state.guide_url:
            ui.label(_("1. First time on this tablet: scan this and install the certificate.")) \
                .classes("text-subtitle2")
            ui.html(qr_svg(state.guide_url, _("QR code of the page that installs the certificate"))) \
                .classes("gl-qr").props("data-testid=share-ca-qr")
            ui.label(state.guide_url).classes("text-caption").props("data-testid=share-ca-url")
            ui.label(_("Its fingerprint (compare on the tablet):")).classes("text-caption")
            ui.label(self.services.certs.fingerprint()).classes("text-caption gl-mono") \
                .style("word-break: break-all").props("data-testid=share-ca-fingerprint")
            ui.label(_("2. Scan to pair.")).classes("text-subtitle2")
        else:
            ui.label(_("Scan with the tablet's camera to pair it.")).classes("text-subtitle2")
        ui.html(qr_svg(link, _("QR code to pair a tablet"))).classes("gl-qr").props("data-testid=share-qr")
        # the full link holds the code; shown small for copying to a laptop
        ui.label(link).classes("text-caption gl-mono").style("word-break: break-all") \
            .props("data-testid=share-link")
        self.code_label = ui.label(code_left(left)).classes("text-caption text-grey-7")
        with ui.row().classes("gap-2"):
            ui.button(_("New code"), icon="refresh", on_click=self.new_code).props("flat data-testid=share-new-code")
            ui.button(_("Devices"), icon="devices", on_click=lambda: ui.navigate.to("/devices")).props("flat")
            ui.button(_("Stop sharing"), icon="portable_wifi_off", color="negative", on_click=self.stop) \
                .props("unelevated data-testid=share-stop")

    async def new_code(self) -> None:
        self.pairing.new_code()
        await self.render()

    async def stop(self) -> None:
        await self.sharing.stop()
        await self.render()


class KeysSection:
    """Keys for apps: the list (with usage and Revoke) and a form that makes one, shown once."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.store = services.keys
        self.shown: tuple[object, ...] = ()

    def build(self) -> None:
        ui.label(_("Keys for apps")).classes("text-h6").props("role=heading aria-level=2")
        ui.label(_("An app such as Tasker, Shortcuts, Home Assistant or a script of yours can use the models "
                   "here with a key of its own, sent as a bearer token. A key opens only what its scopes allow, "
                   "and you can revoke it at any time.")).classes("text-body2")
        self.list = ui.column().classes("w-full gap-2").props("data-testid=keys-list")
        self.render()
        with ui.card().classes("w-full").props("flat bordered data-testid=key-form"):
            ui.label(_("Make a key")).classes("text-subtitle1").props("role=heading aria-level=3")
            self.name = ui.input(_("Name of the app"), placeholder="Home Assistant") \
                .props("maxlength=60 data-testid=key-name").classes("w-full")
            with ui.column().classes("gap-0").props("role=group") as group:
                group.props["aria-labelledby"] = ui.label(_("What it may use:")).classes("text-caption text-grey-7") \
                    .html_id
                labels = scope_labels()
                self.scopes = {scope: ui.checkbox(labels[scope]).props(f"data-testid=key-scope-{scope}")
                               for scope in SCOPES}
            self.error = ui.label().classes("text-negative").props("role=alert data-testid=key-error")
            self.error.set_visibility(False)
            ui.button(_("Create key"), icon="key", on_click=self.create).props("unelevated data-testid=key-create")

    def _key(self) -> tuple[object, ...]:
        now = time.time()
        return tuple((k.id, k.requests, k.revoked, int(now - (k.last_used_at or now)) // 60)
                     for k in self.store.list())

    def tick(self) -> None:
        if self._key() != self.shown:
            self.render()

    def render(self) -> None:
        self.shown = self._key()
        self.list.clear()
        keys = self.store.list()
        with self.list:
            if not keys:
                ui.label(_("No app has a key yet.")).classes("text-grey-6").props("data-testid=keys-empty")
            for key in keys:
                self.render_key(key)

    def render_key(self, key: ApiKey) -> None:
        with ui.card().classes("w-full").props(f"flat bordered data-testid=key-{key.id}") \
                .style("opacity: 0.7" if key.revoked else ""), \
                ui.row().classes("w-full items-center no-wrap"):
            ui.icon("key_off" if key.revoked else "key").classes("text-h5 text-grey-7")
            with ui.column().classes("col gap-0").style("min-width: 0"):
                with ui.row().classes("items-center gap-1"):
                    ui.label(key.name).classes("text-subtitle1 ellipsis").props("data-testid=key-name-shown")
                    ui.label(f"{key.prefix}…").classes("text-caption gl-mono text-grey-7")
                with ui.row().classes("gap-1"):
                    for scope in key.scopes:
                        ui.chip(scope).props("dense outline" + (" disable" if key.revoked else "")) \
                            .props(f"data-testid=key-scope-chip-{scope}")
                ui.label(_usage(key)).classes("text-caption text-grey-7").props("data-testid=key-usage")
            if not key.revoked:
                named(ui.button(_("Revoke"), color="negative", on_click=lambda k=key: self.revoke(k)),
                      _("Revoke {name}", name=key.name)).props(f"flat no-caps data-testid=revoke-key-{key.id}")

    async def create(self) -> None:
        self.error.set_visibility(False)
        chosen = [scope for scope, box in self.scopes.items() if box.value]
        try:
            key, secret = await self.store.create(self.name.value or "", chosen)
        except AppError as exc:
            self.error.set_text(exc.message)
            self.error.set_visibility(True)
            return
        self.name.set_value("")
        for box in self.scopes.values():
            box.set_value(False)
        self.render()
        self.show_once(key, secret)

    def show_once(self, key: ApiKey, secret: str) -> None:
        title = _("The key for “{name}”", name=key.name)
        with named(ui.dialog(), title).props("persistent") as dialog, \
                ui.card().classes("w-96").props("data-testid=key-dialog"):
            ui.label(title).classes("text-h6")
            ui.label(_("Copy it now and give it to the app: it will not be shown again."))
            ui.label(secret).classes("gl-mono q-pa-sm bg-grey-2 rounded-borders w-full") \
                .style("word-break: break-all; user-select: all").props("data-testid=key-secret")
            with ui.row().classes("w-full justify-end"):
                named(ui.button(_("Copy"), icon="content_copy", on_click=lambda: self.copy(secret)),
                      _("Copy the key")).props("flat no-caps data-testid=key-copy").tooltip(_("Copy the key"))
                ui.button(_("Done"), on_click=dialog.close).props("unelevated data-testid=key-done")
        dialog.on("hide", dialog.clear)  # the secret leaves the page once the dialog is closed
        dialog.open()

    @staticmethod
    def copy(secret: str) -> None:
        ui.clipboard.write(secret)
        ui.notify(_("The key was copied."), timeout=2000)

    async def revoke(self, key: ApiKey) -> None:
        if await confirm(_("Revoke the key “{name}”?", name=key.name),
                         _("The app that uses it is refused from its next request on. This cannot be undone."),
                         _("Revoke"), danger=True):
            await self.store.revoke(key.id)
            ui.notify(_("The key “{name}” no longer works.", name=key.name), timeout=2000)
            self.render()


def _usage(key: ApiKey) -> str:
    if key.revoked:
        revoked = ago(key.revoked_at or time.time())
        if key.last_used_at:
            return ngettext("Revoked {revoked}, last used {used}; {n} request in all.",
                            "Revoked {revoked}, last used {used}; {n} requests in all.", key.requests,
                            revoked=revoked, used=ago(key.last_used_at))
        return ngettext("Revoked {revoked}; {n} request in all.", "Revoked {revoked}; {n} requests in all.",
                        key.requests, revoked=revoked)
    if key.last_used_at is None:
        return _("Never used.")
    return ngettext("Last used {used}; {n} request in all.", "Last used {used}; {n} requests in all.", key.requests,
                    used=ago(key.last_used_at))


async def _interfaces() -> list[NetworkInterface]:
    return await asyncio.to_thread(lan_interfaces)


class DevicesPage:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.devices = services.devices
        self.shown: tuple[object, ...] = ()

    async def build(self) -> None:
        async with frame(self.services, current=None, title=_("Devices")):
            ui.label(_("Devices you allowed to use gridless over the network. Revoking one disconnects it at "
                       "once; it would have to pair again.")).classes("text-body2")
            self.body = ui.column().classes("w-full gap-2")
            self.render()
            ui.timer(2.0, self.tick)

    def _key(self) -> tuple[object, ...]:
        return tuple((d.id, d.name, d.address, int(time.time() - d.last_seen) // 60) for d in self.devices.list())

    def tick(self) -> None:
        if self._key() != self.shown:
            self.render()

    def render(self) -> None:
        self.shown = self._key()
        self.body.clear()
        devices = self.devices.list()
        with self.body:
            if not devices:
                ui.label(_("No paired devices.")).classes("text-grey-6").props("data-testid=devices-empty")
                ui.button(_("Share on this network"), icon="share", on_click=lambda: ui.navigate.to("/sharing")) \
                    .props("flat")
                return
            for device in devices:
                self.render_device(device)

    def render_device(self, device: Device) -> None:
        with ui.card().classes("w-full").props(f"flat bordered data-testid=device-{device.id}"), \
                ui.row().classes("w-full items-center no-wrap"):
            ui.icon("tablet_android").classes("text-h5 text-grey-7")
            with ui.column().classes("col gap-0").style("min-width: 0"):
                ui.label(device.name).classes("text-subtitle1 ellipsis").props("data-testid=device-name")
                # the day it was paired as an ISO date (2025-06-01), read the same way in every language
                ui.label(" · ".join([device.address or _("unknown address"),
                                     _("last seen {time}", time=ago(device.last_seen)),
                                     _("paired {date}", date=time.strftime("%Y-%m-%d",
                                                                          time.localtime(device.created_at)))])) \
                    .classes("text-caption text-grey-7").props("data-testid=device-seen")
            named(ui.button(icon="edit", on_click=lambda d=device: self.rename(d)), _("Rename")) \
                .props("flat round dense").tooltip(_("Rename"))
            named(ui.button(_("Revoke"), color="negative", on_click=lambda d=device: self.revoke(d)),
                  _("Revoke {name}", name=device.name)).props(f"flat no-caps data-testid=revoke-{device.id}")

    async def rename(self, device: Device) -> None:
        title = _("Rename the device")
        with named(ui.dialog(), title) as dialog, ui.card().classes("w-80"):
            ui.label(title).classes("text-h6")
            field = ui.input(_("Name"), value=device.name).props("autofocus maxlength=60").classes("w-full")
            with ui.row().classes("w-full justify-end"):
                ui.button(_("Cancel"), on_click=dialog.close).props("flat")
                ui.button(_("Save"), on_click=lambda: dialog.submit(field.value))
        name = await dialog
        if name and name.strip():
            await self.devices.rename(device.id, name)
            self.render()

    async def revoke(self, device: Device) -> None:
        if await confirm(_("Revoke “{name}”?", name=device.name),
                         _("It is disconnected now and must pair again to come back."), _("Revoke"), danger=True):
            await self.devices.revoke(device.id)
            ui.notify(_("{name} can no longer connect", name=device.name), timeout=2000)
            self.render()


def register(services: Services) -> None:
    @ui.page("/sharing")
    async def sharing_page() -> None:
        await services.ready()
        await SharePage(services).build()

    @ui.page("/devices")
    async def devices_page() -> None:
        await services.ready()
        await DevicesPage(services).build()
