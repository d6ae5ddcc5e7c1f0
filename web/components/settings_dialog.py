"""Per-conversation system prompt and generation settings."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from backend.chat.params import GenerationSettings
from backend.models.registry import ModelRecord
from backend.services import Services

__all__ = ["edit_settings", "model_choices"]

CONTEXT_CHOICES = [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072]
THINKING_CHOICES = {"auto": "As the model does by default", "on": "Think before answering",
                    "budget": "Think, at most a number of tokens", "off": "Answer without thinking"}
TOOLS_CHOICES = {"off": "Off", "auto": "When the model decides",
                 "required": "Always use one first (for small models)"}


def model_choices(services: Services) -> tuple[dict[str, str], dict[str, str]]:
    """The language models to offer (id → label, the app's default under "") and those of them
    that cannot call tools (id → name), for `edit_settings`."""
    default = services.models.active("chat")
    models = {"": f"App default ({default.name})" if default else "App default"}
    offered = services.answers.language_models()
    models.update({m.id: m.name + (" · sees photos" if m.projector else "") + _where(m) for m in offered})
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
    state = " · not answering" if model.info.get("state") == "down" else ""
    return state + (f" · {speed:.0f} tokens/s" if speed else "")


async def edit_settings(system_prompt: str, settings: GenerationSettings, context_cap: int, *,
                        models: dict[str, str] | None = None, model: str | None = None,
                        cannot_call: dict[str, str] | None = None, heading: str = "Conversation settings",
                        name: str | None = None) -> tuple[str, dict[str, Any]] | None:
    """Show the dialog; returns (system prompt, settings) or None when cancelled. `models` (id →
    label, the app's default under "") offers a model for this conversation: the settings then
    hold "model" (None for the default). `cannot_call` names the models (by the same ids) whose
    template has no tools, so the dialog can say so when tools are turned on. With `name` (a
    project's), the dialog asks for a name too and the settings hold it as "name"."""
    choices = [c for c in CONTEXT_CHOICES if c <= context_cap] or [context_cap]
    if settings.context_length not in choices:
        choices = sorted({*choices, settings.context_length})
    with ui.dialog() as dialog, ui.card().classes("w-full").style("max-width: 520px"):
        ui.label(heading).classes("text-h6")
        named = ui.input("Name", value=name).props("outlined dense maxlength=100 data-testid=settings-name") \
            .classes("w-full") if name is not None else None
        chosen = ui.select(models, value=model if model in models else "", label="Model") \
            .classes("w-full").props("data-testid=settings-model") if models else None
        prompt = ui.textarea("System prompt", value=system_prompt,
                             placeholder="For example: You are a concise assistant. Answer in English.") \
            .props("autogrow outlined maxlength=8000").classes("w-full")
        ui.label().bind_text_from(temperature := ui.slider(min=0, max=2, step=0.05, value=settings.temperature),
                                  "value", lambda v: f"Temperature {v:.2f} (higher is more creative)")
        temperature.move(target_index=-1)
        ui.label().bind_text_from(top_p := ui.slider(min=0.05, max=1, step=0.05, value=settings.top_p),
                                  "value", lambda v: f"Top-p {v:.2f}")
        top_p.move(target_index=-1)
        max_tokens = ui.number("Max tokens per answer", value=settings.max_tokens, min=1, max=32768,
                               precision=0).classes("w-full")
        context = ui.select(choices, value=settings.context_length, label="Context length (tokens)") \
            .classes("w-full")
        mode = "budget" if settings.thinking == "on" and settings.thinking_budget else settings.thinking
        thinking = ui.select(THINKING_CHOICES, value=mode, label="Thinking (for models that think)") \
            .classes("w-full").props("data-testid=settings-thinking")
        budget = ui.number("Thinking budget (tokens)", value=settings.thinking_budget or 1024, min=16, max=32768,
                           precision=0).classes("w-full").props("data-testid=settings-thinking-budget")
        budget.bind_visibility_from(thinking, "value", value="budget")
        tools = ui.select(TOOLS_CHOICES, value=settings.tools,
                          label="Tools: calculator, date and time, unit conversion") \
            .classes("w-full").props("data-testid=settings-tools")
        no_tools = ui.label().classes("text-sm text-warning").props("data-testid=settings-no-tools")

        def explain_tools() -> None:
            name = (cannot_call or {}).get(chosen.value if chosen is not None else (model or ""))
            no_tools.set_text(f"{name} cannot call tools: its chat template has none. Choose a model marked "
                              "Tools on the Models page." if name and tools.value != "off" else "")
            no_tools.set_visibility(bool(no_tools.text))

        tools.on_value_change(explain_tools)
        if chosen is not None:
            chosen.on_value_change(explain_tools)
        explain_tools()
        with ui.row().classes("w-full justify-end"):
            ui.button("Defaults", on_click=lambda: _reset(temperature, top_p, max_tokens, context, context_cap,
                                                          thinking, tools)) \
                .props("flat")
            ui.button("Cancel", on_click=dialog.close).props("flat")
            ui.button("Save", on_click=lambda: dialog.submit(True)).props("data-testid=settings-save")
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
        ui.notify(f"Settings not saved: {exc}", type="negative")
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
