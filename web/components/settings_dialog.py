"""Per-conversation system prompt and generation settings."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from backend.chat.params import GenerationSettings
from backend.core.i18n import _, format_decimal
from backend.models.registry import ModelRecord
from backend.services import Services

__all__ = ["edit_settings", "model_choices"]

CONTEXT_CHOICES = [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072]


def thinking_choices() -> dict[str, str]:
    return {"auto": _("As the model does by default"), "on": _("Think before answering"),
            "budget": _("Think, at most a number of tokens"), "off": _("Answer without thinking")}


def tools_choices() -> dict[str, str]:
    return {"off": _("Off"), "auto": _("When the model decides"),
            "required": _("Always use one first (for small models)")}


def model_choices(services: Services) -> tuple[dict[str, str], dict[str, str]]:
    """The language models to offer (id → label, the app's default under "") and those of them
    that cannot call tools (id → name), for `edit_settings`."""
    default = services.models.active("chat")
    models = {"": _("App default ({name})", name=default.name) if default else _("App default")}
    offered = services.answers.language_models()
    models.update({m.id: m.name + (" · " + _("sees photos") if m.projector else "") + _where(m) for m in offered})
    features_of = services.conversations.features_of
    cannot_call = {m.id: m.name for m in offered if "tools" not in features_of(m)}
    if default is not None and default.id in cannot_call:
        cannot_call[""] = default.name
    return models, cannot_call


def _where(model: ModelRecord) -> str:
    """Where a server's model runs, whether it answers and how fast it last answered."""
    if model.source != "remote":
        return ""
    speed = model.info.get("tokens_per_s")
    state = " · " + _("not answering") if model.info.get("state") == "down" else ""
    return state + (" · " + _("{speed} tokens/s", speed=format_decimal(speed, 0)) if speed else "")


async def edit_settings(system_prompt: str, settings: GenerationSettings, context_cap: int, *,
                        models: dict[str, str] | None = None, model: str | None = None,
                        cannot_call: dict[str, str] | None = None, heading: str | None = None,
                        name: str | None = None) -> tuple[str, dict[str, Any]] | None:
    """Show the dialog; returns (system prompt, settings) or None when cancelled. `models` (id →
    label, the app's default under "") offers a model for this conversation: the settings then
    hold "model" (None for the default). `cannot_call` names the models (by the same ids) whose
    template has no tools, so the dialog can say so when tools are turned on. With `name` (a
    project's), the dialog asks for a name too and the settings hold it as "name". `heading`: "Conversation
    settings" when not given."""
    choices = [c for c in CONTEXT_CHOICES if c <= context_cap] or [context_cap]
    if settings.context_length not in choices:
        choices = sorted({*choices, settings.context_length})
    with ui.dialog() as dialog, ui.card().classes("w-full").style("max-width: 520px"):
        ui.label(heading or _("Conversation settings")).classes("text-h6")
        named = ui.input(_("Name"), value=name).props("outlined dense maxlength=100 data-testid=settings-name") \
            .classes("w-full") if name is not None else None
        chosen = ui.select(models, value=model if model in models else "", label=_("Model")) \
            .classes("w-full").props("data-testid=settings-model") if models else None
        prompt = ui.textarea(_("System prompt"), value=system_prompt,
                             placeholder=_("For example: You are a concise assistant. Answer in English.")) \
            .props("autogrow outlined maxlength=8000").classes("w-full")
        temperature_text, top_p_text = _("Temperature {value} (higher is more creative)"), _("Top-p {value}")
        ui.label().bind_text_from(temperature := ui.slider(min=0, max=2, step=0.05, value=settings.temperature),
                                  "value", lambda v: temperature_text.format(value=format_decimal(v, 2)))
        temperature.props["aria-label"] = _("Temperature")
        temperature.move(target_index=-1)
        ui.label().bind_text_from(top_p := ui.slider(min=0.05, max=1, step=0.05, value=settings.top_p),
                                  "value", lambda v: top_p_text.format(value=format_decimal(v, 2)))
        top_p.props["aria-label"] = _("Top-p")
        top_p.move(target_index=-1)
        max_tokens = ui.number(_("Max tokens per answer"), value=settings.max_tokens, min=1, max=32768,
                               precision=0).classes("w-full")
        context = ui.select({c: format_decimal(c, 0) for c in choices}, value=settings.context_length,
                            label=_("Context length (tokens)")) \
            .classes("w-full")
        mode = "budget" if settings.thinking == "on" and settings.thinking_budget else settings.thinking
        thinking = ui.select(thinking_choices(), value=mode, label=_("Thinking (for models that think)")) \
            .classes("w-full").props("data-testid=settings-thinking")
        budget = ui.number(_("Thinking budget (tokens)"), value=settings.thinking_budget or 1024, min=16, max=32768,
                           precision=0).classes("w-full").props("data-testid=settings-thinking-budget")
        budget.bind_visibility_from(thinking, "value", value="budget")
        tools = ui.select(tools_choices(), value=settings.tools,
                          label=_("Tools: calculator, date and time, unit conversion")) \
            .classes("w-full").props("data-testid=settings-tools")
        no_tools = ui.label().classes("text-sm text-warning").props("data-testid=settings-no-tools")

        def explain_tools() -> None:
            name = (cannot_call or {}).get(chosen.value if chosen is not None else (model or ""))
            no_tools.set_text(_("{name} cannot call tools: its chat template has none. Choose a model marked "
                                "Tools on the Models page.", name=name) if name and tools.value != "off" else "")
            no_tools.set_visibility(bool(no_tools.text))

        tools.on_value_change(explain_tools)
        if chosen is not None:
            chosen.on_value_change(explain_tools)
        explain_tools()
        with ui.row().classes("w-full justify-end"):
            ui.button(_("Defaults"), on_click=lambda: _reset(temperature, top_p, max_tokens, context, context_cap,
                                                          thinking, tools)) \
                .props("flat")
            ui.button(_("Cancel"), on_click=dialog.close).props("flat")
            ui.button(_("Save"), on_click=lambda: dialog.submit(True)).props("data-testid=settings-save")
    if not await dialog:
        return None
    try:
        checked = GenerationSettings(temperature=temperature.value, top_p=top_p.value,
                                     max_tokens=int(max_tokens.value or settings.max_tokens),
                                     context_length=int(context.value),
                                     thinking="on" if thinking.value == "budget" else thinking.value,
                                     thinking_budget=int(budget.value) if thinking.value == "budget" else None,
                                     tools=tools.value)
    except ValueError as exc:
        ui.notify(_("Settings not saved: {error}", error=exc), type="negative")
        return None
    values: dict[str, Any] = checked.model_dump()
    if chosen is not None:
        values["model"] = chosen.value or None
    if named is not None:
        values["name"] = (named.value or "").strip()[:100] or name
    return (prompt.value or "").strip(), values


def _reset(temperature: ui.slider, top_p: ui.slider, max_tokens: ui.number, context: ui.select, cap: int,
           thinking: ui.select, tools: ui.select) -> None:
    defaults = GenerationSettings()
    thinking.value, tools.value = defaults.thinking, defaults.tools
    temperature.value, top_p.value, max_tokens.value = defaults.temperature, defaults.top_p, defaults.max_tokens
    context.value = min(defaults.context_length, cap)
