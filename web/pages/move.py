"""The Move page: hand everything to a new device (show a code), or take everything from an old one
(type its address and code). Both sides follow a server task, so the page can be closed and opened
again while a move runs."""

from __future__ import annotations

from nicegui import ui

from backend.core.errors import AppError
from backend.core.i18n import _
from backend.move.offer import MoveOffer, OfferState
from backend.move.pull import MovePull, PullState
from backend.move.service import ensure_sharing
from backend.services import Services

from ..components.aria import named
from ..components.dialogs import confirm
from ..formats import size, speed
from ..frame import frame

__all__ = ["register"]



def offer_note(state: OfferState) -> str:
    """Where an offer is, in the page's language."""
    return {OfferState.PREPARING: _("Preparing the conversations and media…"),
            OfferState.READY: _("Ready. On the new device, open Move and type:"),
            OfferState.PULLING: _("The new device is moving everything over."),
            OfferState.FINISHED: _("Done: the new device has everything."),
            OfferState.CANCELLED: _("The offer was cancelled."),
            OfferState.EXPIRED: _("The code expired unused. Make a new one."),
            OfferState.FAILED: _("The move could not be prepared.")}[state]


def pull_note(note: str) -> str:
    """What a move from the old device is doing (the service says it in English) in the page's language."""
    return {"Connecting to the old device…": _("Connecting to the old device…"), "Moving…": _("Moving…"),
            "Everything is on this device.": _("Everything is on this device."),
            "Waiting for the old device…": _("Waiting for the old device…"),
            "Putting the conversations in place…": _("Putting the conversations in place…"),
            "Installing the models…": _("Installing the models…")}.get(note, note)


def _share(done: int, total: int) -> float:
    return done / total if total else 0.0


class MovePage:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.offers = services.moves.offers
        self.pulls = services.moves.pulls
        self.offer_shown: tuple[object, ...] = ()
        self.pull_shown: tuple[object, ...] = ()
        self.sharing_problem: str | None = None
        self.countdown: ui.label | None = None

    async def build(self) -> None:
        async with frame(self.services, current=None, title=_("Move")):
            with ui.card().classes("w-full").props("flat bordered"):
                ui.label(_("Move to a new device")).classes("text-h6").props("role=heading aria-level=2")
                self.offer_box = ui.column().classes("w-full gap-2")
            with ui.card().classes("w-full").props("flat bordered"):
                ui.label(_("Move from another device")).classes("text-h6").props("role=heading aria-level=2")
                self.pull_box = ui.column().classes("w-full gap-2")
            self.render()
            ui.timer(0.5, self.tick)

    def _offer_key(self) -> tuple[object, ...]:
        offer = self.offers.current()
        return (id(offer), offer and offer.version)

    def _pull_key(self) -> tuple[object, ...]:
        pull = self.pulls.current
        return (id(pull), pull and pull.version)

    def tick(self) -> None:
        """Each half redraws only when what it shows changed (the form keeps what is being typed)."""
        if self._offer_key() != self.offer_shown:
            self.render_offer_box()
        elif self.countdown is not None:
            self.countdown.set_text(self._left())
        if self._pull_key() != self.pull_shown:
            self.render_pull_box()

    def render(self) -> None:
        self.render_offer_box()
        self.render_pull_box()

    def render_offer_box(self) -> None:
        self.offer_shown = self._offer_key()
        self.offer_box.clear()
        self.countdown = None
        with self.offer_box:
            self.render_offer(self.offers.current())

    def render_pull_box(self) -> None:
        self.pull_shown = self._pull_key()
        self.pull_box.clear()
        with self.pull_box:
            self.render_pull(self.pulls.current)

    def _left(self) -> str:
        offer = self.offers.current()
        left = max(0, int(offer.expires_at - self.offers.clock())) if offer else 0
        clock = f"{left // 60}:{left % 60:02d}"
        return _("The code works once, for {time} more.", time=clock)

    # ----- this is the old device --------------------------------------------------------

    def render_offer(self, offer: MoveOffer | None) -> None:
        if offer is None or not offer.state.open:
            ui.label(_("Give a new phone or tablet on the same hotspot or Wi-Fi everything on this one: "
                       "conversations, pictures, recordings, settings and models. Nothing is downloaded from the "
                       "internet again.")).classes("text-body2")
            if offer is not None:
                ui.label(offer.error or offer_note(offer.state)).classes("text-grey-7") \
                    .props("data-testid=move-offer-ended")
            ui.button(_("Move to a new device"), icon="send_to_mobile", on_click=self.create) \
                .props("unelevated no-caps data-testid=move-offer")
            return
        ui.label(offer_note(offer.state)).classes("text-body1").props("data-testid=move-offer-state")
        address = self.services.sharing.state if self.services.sharing else None
        if offer.session is None:
            with ui.column().classes("gap-0"):
                ui.label(_("Address")).classes("text-caption text-grey-7")
                ui.label(f"{address.address}:{address.port}" if address else "—") \
                    .classes("text-h5 gl-mono").props("data-testid=move-address")
                ui.label(_("Code")).classes("text-caption text-grey-7 q-mt-sm")
                ui.label(offer.shown_code).classes("text-h4 gl-mono").props("data-testid=move-code")
            self.countdown = ui.label(self._left()).classes("text-caption")
        if self.sharing_problem and address is None:
            ui.label(self.sharing_problem).classes("text-warning").props("data-testid=move-sharing-problem")
        if offer.state is OfferState.PREPARING and offer.prepare_total:
            named(ui.linear_progress(value=_share(offer.prepared, offer.prepare_total), show_value=False),
                  _("Preparing"))
        if offer.state is OfferState.PULLING and offer.total_bytes:
            named(ui.linear_progress(value=_share(offer.served_bytes, offer.total_bytes), show_value=False),
                  _("Sent so far")).props("data-testid=move-offer-progress")
            sent, total = size(offer.served_bytes), size(offer.total_bytes)
            ui.label(_("{sent} of {total} sent to {device}", sent=sent, total=total, device=offer.puller)
                     if offer.puller else _("{sent} of {total} sent", sent=sent, total=total)) \
                .classes("text-caption")
        ui.button(_("Cancel"), icon="close", on_click=self.cancel).props("flat no-caps data-testid=move-cancel")

    async def create(self) -> None:
        settings = self.services.settings
        self.sharing_problem = await ensure_sharing(self.services.share(), self.services.models.registry,
                                                    settings.share_port or settings.port)
        await self.offers.create()
        self.render_offer_box()

    async def cancel(self) -> None:
        await self.offers.cancel()
        self.render_offer_box()

    # ----- this is the new device --------------------------------------------------------

    def render_pull(self, pull: MovePull | None) -> None:
        if pull is None or pull.finished.is_set():
            if pull is not None:
                self.render_outcome(pull)
            if pull is None or pull.state is not PullState.DONE:
                self.render_form(pull)
            return
        ui.label(pull_note(pull.note)).classes("text-body1").props("data-testid=move-pull-note")
        named(ui.linear_progress(value=_share(pull.received_bytes, pull.total_bytes), show_value=False),
              _("Received so far")).props("data-testid=move-pull-progress")
        parts = [_("{done} of {total}", done=size(pull.received_bytes), total=size(pull.total_bytes))]
        if pull.state is PullState.PULLING and pull.speed:
            parts.append(speed(pull.speed))
        ui.label(" · ".join(parts)).classes("text-caption").props("data-testid=move-pull-bytes")
        self.render_files(pull)
        ui.button(_("Stop"), icon="stop", on_click=self.pulls.cancel).props("flat no-caps data-testid=move-pull-stop")

    def render_files(self, pull: MovePull) -> None:
        with ui.column().classes("w-full gap-0"):
            for item in pull.files:
                label = _("Conversations, media and settings") if item.file.kind == "archive" else \
                    str((item.file.model or {}).get("name") or item.file.name)
                state = {"skipped": _("already here"), "checked": _("checked"), "installed": _("done"),
                         "pulling": _("{done} of {total}", done=size(item.received), total=size(item.file.size)),
                         "failed": _("not moved")}.get(item.state, size(item.file.size))
                with ui.row().classes("w-full no-wrap justify-between text-caption"):
                    ui.label(label).classes("ellipsis")
                    ui.label(state).classes("text-grey-7").props(f"data-testid=move-file-{item.file.id}")

    def render_outcome(self, pull: MovePull) -> None:
        if pull.state is PullState.DONE:
            ui.label(_("Everything from the old device is here.")).classes("text-positive text-body1") \
                .props("data-testid=move-pull-done")
            self.render_files(pull)
            ui.button(_("Open the conversations"), icon="chat", on_click=lambda: ui.navigate.to("/")) \
                .props("flat no-caps")
        else:
            ui.label(pull.error or _("The move stopped.")).classes("text-negative").props("data-testid=move-pull-error")
            ui.label(_("What arrived is kept: start again (a new code if the old device asks for one) and it "
                       "continues where it stopped.")).classes("text-caption text-grey-7")

    def render_form(self, pull: MovePull | None) -> None:
        ui.label(_("Bring everything from your old device to this one. On the old device open Move, press "
                   "“Move to a new device”, then type here what it shows. The conversations, media and settings "
                   "on this device are replaced by the old device's.")).classes("text-body2")
        address = ui.input(_("Address"), value=pull.origin.removeprefix("http://") if pull else "",
                           placeholder="192.168.43.1:8765").classes("w-full") \
            .props("data-testid=move-from-address autocomplete=off")
        code = ui.input(_("Code"), placeholder="1234 5678").classes("w-60") \
            .props("data-testid=move-from-code inputmode=numeric autocomplete=off")
        error = ui.label().classes("text-negative").props("role=alert data-testid=move-from-error")
        error.set_visibility(False)

        async def start() -> None:
            if not await confirm(_("Replace this device's conversations?"),
                                 _("Conversations, media and settings here are replaced by the old device's. Models "
                                   "are added."), _("Move here"), danger=True):
                return
            try:
                await self.pulls.start(str(address.value or ""), str(code.value or ""))
            except AppError as exc:
                error.set_text(exc.message)
                error.set_visibility(True)
                return
            self.render_pull_box()

        ui.button(_("Move here"), icon="download", on_click=start) \
            .props("unelevated no-caps data-testid=move-from-start")


def register(services: Services) -> None:
    @ui.page("/move")
    async def move_page() -> None:
        await services.ready()
        await MovePage(services).build()
