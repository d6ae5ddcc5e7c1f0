"""The Images page: make pictures from words (or from a picture), watch them form, keep a gallery.

The form's defaults follow the model (a one-step distilled model wants 1 step and no
guidance). A generation is a server task: the page follows it (step k of n, time, previews)
and finds it again after a reload; Cancel stops it within about a second. The gallery below
lists the pictures newest first and loads more as it is scrolled; a picture opens with how it
was made, and can be downloaded, shared, deleted, made again or used as a starting picture.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from nicegui import app, ui
from pydantic import ValidationError

from backend.core.errors import AppError
from backend.core.i18n import _, format_datetime, format_number, ngettext
from backend.engines.diffusion import SAMPLERS
from backend.images.params import MAX_BATCH, ImageParams, defaults_for
from backend.images.service import Generation, GenerationState
from backend.services import Services
from backend.storage.images import ImageRecord

from ..components.aria import named
from ..components.dialogs import confirm
from ..components.raw_upload import RawUpload, Uploaded, UploadFailed
from ..formats import seconds
from ..frame import current_principal, frame

__all__ = ["register"]

PAGE_SIZE = 30
MORE_JS = """(() => {
  const sentinel = document.querySelector('[data-testid=gallery-end]');
  if (!sentinel || sentinel.dataset.watched) return;
  sentinel.dataset.watched = '1';
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) emitEvent('gl_gallery_more');
  }, {rootMargin: '400px'}).observe(sentinel);
})()"""
SHARE_JS = """async (url, name) => {
  try {
    const blob = await (await fetch(url, {credentials: 'same-origin'})).blob();
    const file = new File([blob], name, {type: 'image/png'});
    if (navigator.canShare && navigator.canShare({files: [file]})) {
      await navigator.share({files: [file]});
      return 'shared';
    }
  } catch (e) { return e.name === 'AbortError' ? 'aborted' : 'failed'; }
  return 'unsupported';
}"""


def size_label(width: int, height: int) -> str:
    """A size as the form offers it: "512 × 512", "Portrait 384 × 512", "Landscape 512 × 384"."""
    if width < height:
        return _("Portrait {width} × {height}", width=width, height=height)
    if width > height:
        return _("Landscape {width} × {height}", width=width, height=height)
    return f"{width} × {height}"


def engine_name(name: str) -> str:
    """A model unloaded to make room (the service names it in English) in the page's language."""
    return {"the language model": _("the language model"), "the image model": _("the image model"),
            "the speech model": _("the speech model"), "the voice": _("the voice"),
            "the embedding model": _("the embedding model")}.get(name, name)


def sampler_label(sampler: str) -> str:
    return _("default") if sampler == "default" else sampler


class ImagesPage:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.images = services.images
        self.generation: Generation | None = None
        self.seen_version = -1
        self.source: tuple[str, str] | None = None  # (id, thumbnail url) of the picture to start from
        self.oldest: float | None = None
        self.exhausted = False
        self.selecting = False
        self.selected: set[str] = set()
        self.items: dict[str, ui.element] = {}

    async def build(self) -> None:
        self.principal = current_principal()
        model = self.images.model
        suited = defaults_for(model)
        async with frame(self.services, current=None, title=_("Images")) as page:
            self.frame = page
            if model is None:
                self.no_model()
            else:
                self.form(suited)
                self.progress_box = ui.column().classes("w-full gap-1").props("data-testid=image-progress")
            with ui.row().classes("w-full items-center q-mt-md"):
                ui.label(_("Gallery")).classes("text-h6").props("role=heading aria-level=2")
                ui.space()
                self.delete_selected = ui.button(_("Delete"), icon="delete", color="negative",
                                                 on_click=self.delete_chosen) \
                    .props("flat no-caps data-testid=delete-selected")
                self.delete_selected.set_visibility(False)
                self.select_button = ui.button(_("Select"), icon="checklist", on_click=self.toggle_select) \
                    .props("flat no-caps data-testid=gallery-select")
            self.gallery = ui.element("div").classes("gl-gallery w-full").props("data-testid=gallery")
            self.empty = ui.label(_("Pictures you make appear here, newest first.")).classes("text-grey-7") \
                .props("data-testid=gallery-empty")
            self.empty.set_visibility(False)  # until the first page of the gallery is known
            self.more = ui.button(_("Show more"), on_click=self.load_more) \
                .props("flat no-caps data-testid=gallery-more")
            ui.element("div").props("data-testid=gallery-end").style("height: 1px")
        ui.on("gl_gallery_more", self.load_more)
        await self.load_more()
        ui.run_javascript(MORE_JS)
        running = self.images.active()
        if running and model is not None:
            self.follow(running[-1])
        self.timer = ui.timer(0.2, self.poll)

    # the form ---------------------------------------------------------------------------------

    def no_model(self) -> None:
        with ui.column().classes("w-full items-center q-my-lg text-grey-8").props("data-testid=no-image-model"):
            ui.icon("image", size="48px")
            ui.label(_("No image model is installed.")).classes("text-subtitle1")
            if self.principal.is_owner:
                ui.button(_("Get one on the Models page"), on_click=lambda: ui.navigate.to("/models?tab=images")) \
                    .props("unelevated no-caps")
            else:
                ui.label(_("The phone's owner can add one on the Models page."))

    def form(self, suited: dict[str, Any]) -> None:
        model = self.images.model
        self.sizes: dict[str, tuple[int, int]] = suited["sizes"]
        default_size = next(label for label, size in self.sizes.items() if size == (suited["base"], suited["base"]))
        with ui.card().classes("w-full").props("flat bordered"):
            self.prompt = ui.textarea(_("Describe the picture"),
                                      placeholder=_("a lighthouse on a cliff at dawn, oil painting")) \
                .props("autogrow outlined maxlength=4000 data-testid=image-prompt").classes("w-full")
            self.prompt.on("keydown", self.generate, js_handler=(
                "(e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); emit(); } }"))
            with ui.row().classes("w-full items-center gap-2"):
                self.size = ui.select(self.size_options(), value=default_size, label=_("Size")) \
                    .classes("col-grow").props("data-testid=image-size")
                self.batch = ui.select(list(range(1, MAX_BATCH + 1)), value=1, label=_("Pictures")) \
                    .style("width: 100px").props("data-testid=image-batch")
            with ui.expansion(_("More settings"), icon="tune").classes("w-full").props("data-testid=image-more"):
                self.negative = ui.textarea(_("Leave out (negative prompt)"),
                                            placeholder=_("blurry, text, watermark")) \
                    .props("autogrow outlined maxlength=4000 data-testid=image-negative").classes("w-full")
                with ui.row().classes("w-full gap-2"):
                    self.steps = ui.number(_("Steps"), value=suited["steps"], min=1, max=150, precision=0) \
                        .classes("col").props("data-testid=image-steps")
                    self.cfg = ui.number(_("Guidance (CFG)"), value=suited["cfg_scale"], min=0, max=30, step=0.5) \
                        .classes("col").props("data-testid=image-cfg")
                    self.sampler = ui.select({s: sampler_label(s) for s in SAMPLERS}, value=suited["sampler"],
                                             label=_("Sampler")) \
                        .classes("col").props("data-testid=image-sampler")
                with ui.row().classes("w-full items-center gap-2"):
                    self.seed = ui.input(_("Seed"), placeholder=_("random")) \
                        .props("data-testid=image-seed clearable").classes("col")
                    named(ui.button(icon="casino", on_click=lambda: self.seed.set_value("")), _("Random seed")) \
                        .props("flat round dense").tooltip(_("A new random seed each time"))
                with ui.row().classes("w-full items-center gap-2"):
                    # the chooser opens in the browser, within the tap (one opened later by the server may be refused)
                    with RawUpload(app.url_path_for("upload_attachment"), accept="image/*", input_testid="source-input",
                                   on_uploaded=self.attached_source, on_failed=self.source_refused):
                        ui.button(_("Start from a picture"), icon="add_photo_alternate") \
                            .props("flat no-caps data-testid=source-pick")
                    self.source_box = ui.row().classes("items-center gap-2")
                self.strength_row = ui.row().classes("w-full items-center gap-2")
                with self.strength_row:
                    self.strength = named(ui.slider(min=0.05, max=1.0, step=0.05, value=0.75),
                                          _("How much the starting picture changes")).classes("col") \
                        .props("label data-testid=image-strength")
                    ui.label().bind_text_from(self.strength, "value",
                                              lambda v: _("Change {n} %", n=format_number(round(v * 100))))
                self.strength_row.set_visibility(False)
                ui.label(_("Model: {name}", name=model.name if model else "")).classes("text-xs text-grey-7")
            with ui.row().classes("w-full justify-end gap-2"):
                self.cancel_button = ui.button(_("Cancel"), icon="stop", color="negative", on_click=self.cancel) \
                    .props("unelevated no-caps data-testid=cancel-generation")
                self.cancel_button.set_visibility(False)
                self.generate_button = ui.button(_("Generate"), icon="auto_awesome", on_click=self.generate) \
                    .props("unelevated no-caps data-testid=generate")

    def size_options(self) -> dict[str, str]:
        """The sizes offered (their keys, as the image model's presets name them) in the page's language."""
        return {key: size_label(*value) for key, value in self.sizes.items()}

    def params(self) -> ImageParams:
        width, height = self.sizes[self.size.value]
        seed_text = (self.seed.value or "").strip()
        return ImageParams(prompt=self.prompt.value or "", negative_prompt=self.negative.value or "",
                           width=width, height=height, steps=int(self.steps.value or 1),
                           cfg_scale=float(self.cfg.value if self.cfg.value is not None else 1.0),
                           sampler=self.sampler.value, seed=int(seed_text) if seed_text else None,
                           batch_count=int(self.batch.value), source_image=self.source[0] if self.source else None,
                           strength=float(self.strength.value))

    async def generate(self) -> None:
        if self.generation is not None and not self.generation.finished.is_set():
            ui.notify(_("A picture is being made; wait for it or cancel it."), type="info")
            return
        if not (self.prompt.value or "").strip():
            ui.notify(_("Describe the picture first."), type="warning")
            return
        try:
            params = self.params()
        except ValueError as exc:  # ValidationError, or a seed that is not a number
            ui.notify(_first_problem(exc), type="warning")
            return
        try:
            generation = await self.images.generate(params)
        except AppError as exc:
            ui.notify(exc.message, type="negative")
            return
        self.follow(generation)

    def follow(self, generation: Generation) -> None:
        self.generation = generation
        self.seen_version = -1
        self.progress_box.clear()
        with self.progress_box:
            with ui.row().classes("w-full items-center gap-2"):
                self.progress_text = ui.label().classes("text-sm col").props("data-testid=image-progress-text")
            self.bar = named(ui.linear_progress(value=0, show_value=False), _("Progress of the picture")) \
                .props("data-testid=image-progress-bar")
            self.unloaded = ui.label().classes("text-xs text-amber-9").props("data-testid=unloaded-notice")
            self.unloaded.set_visibility(False)
            self.preview = ui.image().classes("gl-preview").props("data-testid=image-preview")
            self.preview.props["alt"] = _("The picture as it forms")
            self.preview.set_visibility(False)
        self.generate_button.set_visibility(False)
        self.cancel_button.set_visibility(True)

    def cancel(self) -> None:
        if self.generation is not None and self.images.cancel(self.generation.id):
            self.progress_text.set_text(_("Stopping…"))

    async def poll(self) -> None:
        generation = self.generation
        if generation is None:
            return
        text = self.progress(generation)
        if generation.version == self.seen_version:
            if not generation.finished.is_set() and self.progress_text.text != text:
                self.progress_text.set_text(text)  # the clock moves between steps too
            return
        self.seen_version = generation.version
        total = generation.total_steps
        self.bar.set_value(generation.step / total if total else 0)
        if generation.unloaded:
            self.unloaded.set_text(_("Unloaded {names} to make room for the image model.",
                                     names=", ".join(map(engine_name, generation.unloaded))))
            self.unloaded.set_visibility(True)
        if generation.preview is not None and not generation.finished.is_set():
            self.preview.set_source("data:image/jpeg;base64," + base64.b64encode(generation.preview).decode())
            self.preview.set_visibility(True)
        if generation.finished.is_set():
            self.finish(generation, text)
        else:
            self.progress_text.set_text(text)

    @staticmethod
    def progress(generation: Generation) -> str:
        if generation.state == GenerationState.QUEUED:
            if generation.position > 0:
                return _("Waiting: {n} ahead of you", n=format_number(generation.position))
            return _("Waiting for the image model…")
        if generation.state == GenerationState.LOADING:
            return _("Loading the image model…")
        total = generation.total_steps
        parts = [_("Step {step} of {total}", step=generation.step, total=total), seconds(generation.elapsed)]
        if generation.state == GenerationState.RUNNING:
            if generation.step >= total:
                parts.append(_("finishing the picture"))
            elif generation.remaining is not None:
                parts.append(_("about {time} left", time=seconds(generation.remaining)))
        return " · ".join(parts)

    def finish(self, generation: Generation, progress: str) -> None:
        self.generate_button.set_visibility(True)
        self.cancel_button.set_visibility(False)
        self.preview.set_visibility(False)
        if generation.state == GenerationState.DONE:
            self.bar.set_value(1)
            each = generation.images[0].seconds if generation.images else 0
            parts = [_("Done in {time}", time=seconds(generation.elapsed))]
            if len(generation.images) > 1:
                parts.append(_("{time} a picture", time=seconds(each)))
            self.progress_text.set_text(" · ".join(parts))
            for record in generation.images:  # each on top: the last made first, as the gallery lists them
                self.add_item(record, first=True)
            self.empty.set_visibility(False)
        elif generation.state == GenerationState.CANCELLED:
            self.progress_text.set_text(
                _("Cancelled after step {step} of {total}.", step=generation.step, total=generation.total_steps)
                if generation.running_since is not None else _("Cancelled before it started."))
        else:
            self.progress_text.set_text(_("It did not work: {error}", error=generation.error))
            self.progress_text.classes("text-negative")

    # the starting picture ---------------------------------------------------------------------

    async def attached_source(self, upload: Uploaded) -> None:
        if upload.data.get("kind") != "image":
            ui.notify(_("Only a picture can be a starting point."), type="warning")
            return
        found = await self.services.attachments.store.pending([str(upload.data.get("id"))], self.principal.key)
        if found:
            self.set_source(found[0].id, f"/api/attachments/{found[0].id}/thumb")

    def source_refused(self, failure: UploadFailed) -> None:
        ui.notify(f"{failure.name or _('The picture')}: {failure.message}", type="warning", multi_line=True)

    def set_source(self, source_id: str | None, thumbnail: str = "") -> None:
        self.source = (source_id, thumbnail) if source_id else None
        self.source_box.clear()
        if self.source:
            with self.source_box:
                thumb = ui.image(thumbnail).classes("gl-thumb").props("data-testid=source-thumb")
                thumb.props["alt"] = _("The starting picture")
                named(ui.button(icon="close", on_click=lambda: self.set_source(None)), _("Start from words only")) \
                    .props("flat round dense data-testid=source-clear").tooltip(_("Start from words only"))
        self.strength_row.set_visibility(self.source is not None)

    # the gallery ------------------------------------------------------------------------------

    async def load_more(self) -> None:
        if self.exhausted:
            return
        records = await self.images.store.recent(PAGE_SIZE, self.oldest)
        for record in records:
            self.add_item(record)
        if records:
            self.oldest = records[-1].created_at
        self.exhausted = len(records) < PAGE_SIZE
        self.more.set_visibility(not self.exhausted)
        self.empty.set_visibility(not self.items)

    def add_item(self, record: ImageRecord, *, first: bool = False) -> None:
        if record.id in self.items:
            return
        with self.gallery:
            item = ui.element("div").classes("gl-gallery-item").props(f"data-testid=gallery-item data-id={record.id}")
            description = record.prompt[:100] or _("A picture")
            with item:
                # the picture opens its view: a button for the keyboard and screen readers too, named by
                # the picture's description (its alt text)
                opener = ui.element("div").props("role=button tabindex=0")
                with opener:
                    picture = ui.image(f"/api/images/{record.id}/thumb").props("ratio=1 fit=cover")
                    picture.props["alt"] = description
                check = named(ui.checkbox(), _("Select {description}", description=description)) \
                    .classes("gl-gallery-check").props("dense data-testid=gallery-check")
                check.set_visibility(self.selecting)
                check.on_value_change(lambda e, r=record: self.choose(r.id, bool(e.value)))
            for event in ("click", "keydown.enter", "keydown.space.prevent"):
                opener.on(event, lambda r=record: self.open(r) if not self.selecting else None)
        if first:
            item.move(self.gallery, target_index=0)
        self.items[record.id] = item

    def toggle_select(self) -> None:
        self.selecting = not self.selecting
        self.selected.clear()
        self.select_button.set_text(_("Done") if self.selecting else _("Select"))
        for item in self.items.values():
            for child in item.default_slot.children:
                if isinstance(child, ui.checkbox):
                    child.set_value(False)
                    child.set_visibility(self.selecting)
        self.update_selection()

    def choose(self, image_id: str, chosen: bool) -> None:
        (self.selected.add if chosen else self.selected.discard)(image_id)
        self.update_selection()

    def update_selection(self) -> None:
        self.delete_selected.set_text(_("Delete {n}", n=format_number(len(self.selected))))
        self.delete_selected.set_visibility(self.selecting and bool(self.selected))

    async def delete_chosen(self) -> None:
        count = len(self.selected)
        if not count or not await confirm(ngettext("Delete {n} picture?", "Delete {n} pictures?", count),
                                          ngettext("It is removed from this device.",
                                                   "They are removed from this device.", count),
                                          _("Delete"), danger=True):
            return
        await self.images.delete(list(self.selected))
        for image_id in self.selected:
            item = self.items.pop(image_id, None)
            if item is not None:
                item.delete()
        self.toggle_select()
        self.empty.set_visibility(not self.items)

    def open(self, record: ImageRecord) -> None:
        with named(ui.dialog(), _("Picture: {description}", description=record.prompt[:100])) as dialog, \
                ui.card().classes("q-pa-sm").style("max-width: min(96vw, 900px)").props("data-testid=image-view"):
            full = ui.image(f"/api/images/{record.id}/file").props("fit=contain data-testid=image-full") \
                .style("width: min(90vw, 860px); max-height: 70vh")
            full.props["alt"] = record.prompt[:300] or _("A picture")
            ui.label(record.prompt).classes("text-body1").props("data-testid=view-prompt")
            if record.negative_prompt:
                ui.label(_("Leave out: {words}", words=record.negative_prompt)).classes("text-sm text-grey-8")
            details = " · ".join([
                _("Seed {seed}", seed=record.seed), ngettext("{n} step", "{n} steps", record.steps),
                _("CFG {value}", value=format_number(record.cfg_scale)), sampler_label(record.sampler),
                f"{record.width} × {record.height}", record.model_name, seconds(record.seconds),
                format_datetime(datetime.fromtimestamp(record.created_at), "short")])
            ui.label(details).classes("text-xs text-grey-7").props("data-testid=view-details")
            with ui.row().classes("w-full gap-1 justify-end"):
                def again(seed: bool) -> None:
                    self.reuse(record, seed=seed)
                    dialog.close()

                def start_from() -> None:
                    self.set_source(record.id, f"/api/images/{record.id}/thumb")
                    dialog.close()

                ui.button(_("Again"), icon="replay", on_click=lambda: again(False)) \
                    .props("flat no-caps data-testid=view-again").tooltip(_("These settings, a new seed"))
                ui.button(_("This seed"), icon="pin", on_click=lambda: again(True)) \
                    .props("flat no-caps data-testid=view-seed").tooltip(_("These settings and this seed"))
                ui.button(_("Start from it"), icon="add_photo_alternate", on_click=start_from) \
                    .props("flat no-caps data-testid=view-source")
                named(ui.button(icon="download"), _("Download")).props(
                    f"flat round href=/api/images/{record.id}/file?download=1 download data-testid=view-download") \
                    .tooltip(_("Download"))
                named(ui.button(icon="share", on_click=lambda: self.share(record)), _("Share")) \
                    .props("flat round data-testid=view-share").tooltip(_("Share"))
                named(ui.button(icon="delete", color="negative", on_click=lambda: self.delete_one(record, dialog)),
                      _("Delete")).props("flat round data-testid=view-delete").tooltip(_("Delete"))
        dialog.open()

    def reuse(self, record: ImageRecord, *, seed: bool) -> None:
        if not hasattr(self, "prompt"):
            return
        self.prompt.set_value(record.prompt)
        self.negative.set_value(record.negative_prompt)
        size = next((label for label, s in self.sizes.items() if s == (record.width, record.height)), None)
        if size is None:
            size = f"{record.width} × {record.height}"
            self.sizes[size] = (record.width, record.height)
            self.size.set_options(self.size_options())
        self.size.set_value(size)
        self.steps.set_value(record.steps)
        self.cfg.set_value(record.cfg_scale)
        self.sampler.set_value(record.sampler if record.sampler in SAMPLERS else "default")
        self.seed.set_value(str(record.seed) if seed else "")
        ui.run_javascript("scrollTo({top: 0, behavior: 'smooth'})")

    async def share(self, record: ImageRecord) -> None:
        outcome = await ui.run_javascript(
            f"({SHARE_JS})({json.dumps(f'/api/images/{record.id}/file')}, {json.dumps(f'{record.id}.png')})",
            timeout=60)
        if outcome == "unsupported":
            ui.notify(_("This browser cannot share files; use Download."), type="info")
        elif outcome == "failed":
            ui.notify(_("Sharing did not work."), type="warning")

    async def delete_one(self, record: ImageRecord, dialog: ui.dialog) -> None:
        if not await confirm(_("Delete this picture?"), _("It is removed from this device."), _("Delete"), danger=True):
            return
        await self.images.delete([record.id])
        dialog.close()
        item = self.items.pop(record.id, None)
        if item is not None:
            item.delete()
        self.empty.set_visibility(not self.items)


def _first_problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        return f"{field.replace('_', ' ').capitalize()}: {first['msg']}" if field else str(first["msg"])
    return _("The seed must be a whole number.")


def register(services: Services) -> None:
    @ui.page("/images")
    async def images_page() -> None:
        await services.ready()
        await ImagesPage(services).build()
