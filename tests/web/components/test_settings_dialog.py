"""A conversation's settings dialog: refused values say why and change nothing; saved ones stay."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing import User

from backend.services import Services
from backend.storage.conversations import Conversation

from ..finders import by_testid, click, dialog, find_testid, inside, no_dialog, notified, press, sees

TITLE = "Conversation settings"


async def open_settings(user: User) -> ui.dialog:
    await sees(user, "Ask anything. It stays on this device.")  # the chat page is complete
    click(user, find_testid(user, "settings"))
    return await dialog(user, TITLE)


def fields(user: User, shown: ui.dialog) -> tuple[ui.textarea, ui.slider, ui.slider, ui.number, ui.select]:
    """System prompt, temperature, top-p, max tokens and context length, as the dialog shows them."""
    [prompt] = inside(user, shown, ui.textarea, "System prompt")
    temperature, top_p = inside(user, shown, ui.slider)
    [max_tokens] = inside(user, shown, ui.number, "Max tokens per answer")
    [context] = inside(user, shown, ui.select, "Context length")
    return prompt, temperature, top_p, max_tokens, context


async def stored(services: Services, conversation: Conversation) -> Conversation:
    found = await services.store.get(conversation.id)
    assert found is not None
    return found


async def test_an_out_of_range_value_is_refused_with_its_reason(owner: User, services: Services) -> None:
    conversation = await services.store.create(title="Limits")
    await owner.open(f"/c/{conversation.id}")
    shown = await open_settings(owner)
    prompt, _, _, max_tokens, _ = fields(owner, shown)
    prompt.value = "Answer in French."
    max_tokens.value = 40000  # more than one answer may have
    press(owner, shown, "Save")
    message = await notified(owner, "Settings not saved")
    assert "32768" in message  # names the limit
    await no_dialog(owner, TITLE)
    unchanged = await stored(services, conversation)
    assert unchanged.settings == {} and unchanged.system_prompt == ""
    assert not owner.notify.contains("Settings saved")


async def test_saved_settings_are_kept(owner: User, services: Services) -> None:
    conversation = await services.store.create(title="Careful answers")
    await owner.open(f"/c/{conversation.id}")
    shown = await open_settings(owner)
    prompt, temperature, top_p, max_tokens, context = fields(owner, shown)
    assert (temperature.value, top_p.value, max_tokens.value, context.value) == (0.7, 0.95, 1024, 4096)
    prompt.value = "  Be brief.  "
    temperature.value, top_p.value, max_tokens.value, context.value = 0.3, 0.8, 256, 2048
    await sees(owner, "Temperature 0.30 (higher is more creative)")
    await sees(owner, "Top-p 0.80")
    press(owner, shown, "Save")
    await notified(owner, "Settings saved")

    kept = await stored(services, conversation)
    assert kept.system_prompt == "Be brief."
    assert {k: kept.settings[k] for k in ("temperature", "top_p", "max_tokens", "context_length")} == \
        {"temperature": 0.3, "top_p": 0.8, "max_tokens": 256, "context_length": 2048}

    await owner.open(f"/c/{conversation.id}")  # opened again later, the dialog shows what was saved
    prompt, temperature, top_p, max_tokens, context = fields(owner, await open_settings(owner))
    assert (prompt.value, temperature.value, top_p.value, max_tokens.value, context.value) == \
        ("Be brief.", 0.3, 0.8, 256, 2048)


async def test_cancel_keeps_what_was_there(owner: User, services: Services) -> None:
    conversation = await services.store.create(title="Unchanged")
    await services.store.update(conversation.id, system_prompt="Speak like a pirate.", settings={"temperature": 1.2})
    await owner.open(f"/c/{conversation.id}")
    shown = await open_settings(owner)
    prompt, temperature, *_ = fields(owner, shown)
    assert (prompt.value, temperature.value) == ("Speak like a pirate.", 1.2)
    prompt.value, temperature.value = "", 0.1
    press(owner, shown, "Cancel")
    await no_dialog(owner, TITLE)
    kept = await stored(services, conversation)
    assert (kept.system_prompt, kept.settings) == ("Speak like a pirate.", {"temperature": 1.2})


async def test_defaults_puts_the_defaults_back(owner: User, services: Services) -> None:
    conversation = await services.store.create(title="Reset")
    await services.store.update(conversation.id, settings={"temperature": 1.5, "top_p": 0.5, "max_tokens": 64,
                                                           "context_length": 1024})
    await owner.open(f"/c/{conversation.id}")
    shown = await open_settings(owner)
    press(owner, shown, "Defaults")
    _, temperature, top_p, max_tokens, context = fields(owner, shown)
    assert (temperature.value, top_p.value, max_tokens.value, context.value) == (0.7, 0.95, 1024, 4096)


async def test_settings_chosen_before_the_first_message_start_the_conversation(owner: User,
                                                                                services: Services) -> None:
    await owner.open("/")
    shown = await open_settings(owner)
    fields(owner, shown)[0].value = "You are a travel guide."
    press(owner, shown, "Save")
    await notified(owner, "Settings saved")
    [created] = await services.store.list_recent()
    assert created.system_prompt == "You are a travel guide."


async def test_thinking_and_tools_are_kept_and_a_model_without_tools_is_named(owner: User,
                                                                              services: Services) -> None:
    conversation = await services.store.create(title="Tools")
    await owner.open(f"/c/{conversation.id}")
    shown = await open_settings(owner)
    [thinking] = inside(owner, shown, ui.select, "Thinking")
    [tools] = inside(owner, shown, ui.select, "Tools")
    assert (thinking.value, tools.value) == ("auto", "off")
    assert by_testid(owner, "settings-no-tools", ui.label, shown) == []  # tools off: nothing to say
    tools.value = "auto"  # the app's chat model is the bundled SmolLM2, whose template has no tools
    model = services.models.active("chat")
    assert model is not None
    await sees(owner, f"{model.name} cannot call tools")
    assert inside(owner, shown, ui.number, "Thinking budget") == []  # shown only for a budget
    thinking.value = "budget"
    [budget] = inside(owner, shown, ui.number, "Thinking budget")
    budget.value = 300
    press(owner, shown, "Save")
    await notified(owner, "Settings saved")
    kept = await stored(services, conversation)
    assert {k: kept.settings[k] for k in ("thinking", "thinking_budget", "tools")} == \
        {"thinking": "on", "thinking_budget": 300, "tools": "auto"}

    await owner.open(f"/c/{conversation.id}")
    shown = await open_settings(owner)
    [thinking] = inside(owner, shown, ui.select, "Thinking")
    [tools] = inside(owner, shown, ui.select, "Tools")
    assert (thinking.value, tools.value) == ("budget", "auto")
