"""Projects: the dialog that makes one (blank or from a preset) and the one that edits it."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from backend.chat.params import GenerationSettings
from backend.chat.presets import Preset, presets
from backend.core.i18n import _
from backend.services import Services
from backend.storage.projects import Project

from .settings_dialog import edit_settings, model_choices

__all__ = ["edit_project_dialog", "new_project_dialog"]

MAX_NAME = 100
MAX_PROMPT = 8000


async def new_project_dialog(services: Services) -> Project | None:
    """Asks for a name and a system prompt, or a preset that fills them (and its settings);
    returns the project made, or None when cancelled."""
    chosen: dict[str, Preset | None] = {"preset": None}
    with ui.dialog() as dialog, ui.card().classes("w-full").style("max-width: 520px"):
        ui.label(_("New project")).classes("text-h6")
        name = ui.input(_("Name")).props(f"outlined dense autofocus maxlength={MAX_NAME} data-testid=project-name") \
            .classes("w-full")
        prompt = ui.textarea(_("System prompt"), placeholder=_("What every chat in this project starts from")) \
            .props(f"autogrow outlined maxlength={MAX_PROMPT} data-testid=project-prompt").classes("w-full")
        ui.label(_("Or start from a preset")).classes("text-subtitle2 q-mt-sm")
        items: dict[str, ui.item] = {}

        def pick(preset: Preset) -> None:
            chosen["preset"] = preset
            name.value, prompt.value = preset.name, preset.system_prompt
            for key, item in items.items():
                item.props(f"active={'true' if key == preset.key else 'false'}")

        with ui.list().props("dense bordered separator").classes("w-full rounded-borders"):
            for preset in presets():  # in the page's language: the project starts from a prompt in it
                with ui.item(on_click=lambda p=preset: pick(p)).props("clickable active-class=bg-blue-1") \
                        .props("data-testid=preset") as item:
                    with ui.item_section():
                        ui.item_label(preset.name)
                        ui.item_label(preset.description).props("caption")
                items[preset.key] = item

        def create() -> None:
            if not (name.value or "").strip():
                ui.notify(_("Give the project a name."), type="warning")
                return
            dialog.submit(True)

        with ui.row().classes("w-full justify-end"):
            ui.button(_("Cancel"), on_click=dialog.close).props("flat")
            ui.button(_("Create"), on_click=create).props("data-testid=project-create")
    if not await dialog:
        return None
    picked = chosen["preset"]
    system_prompt = (prompt.value or "").strip()[:MAX_PROMPT]
    settings: dict[str, Any] = dict(picked.settings) if picked is not None else {}
    project = await services.projects.create((name.value or "").strip()[:MAX_NAME], system_prompt=system_prompt,
                                             settings=settings, preset=picked.key if picked else None)
    ui.notify(_("Project “{name}” created", name=project.name), timeout=1500)
    return project


async def edit_project_dialog(services: Services, project: Project) -> bool:
    """Name, system prompt, default model and generation settings of a project (the settings
    dialog of a conversation, with a name); True when saved. Chats made earlier keep theirs."""
    models, cannot_call = model_choices(services)
    settings = GenerationSettings.from_stored(project.settings, context_cap=services.settings.context_length)
    model = project.settings.get("model")
    result = await edit_settings(project.system_prompt, settings, services.settings.context_length,
                                 models=models, model=model if isinstance(model, str) else None,
                                 cannot_call=cannot_call, heading=_("Project settings"), name=project.name)
    if result is None:
        return False
    system_prompt, values = result
    name = str(values.pop("name", project.name))
    merged = {k: v for k, v in {**project.settings, **values}.items() if v is not None}
    await services.projects.update(project.id, name=name, system_prompt=system_prompt, settings=merged)
    ui.notify(_("Project saved"), timeout=1000)
    return True
