"""The chat page without a model at work: what it refuses before anything is sent to one.

Sending a message and seeing the answer stream in runs the real bundled model, so it is left
to the engine and browser tests (tests/backend/chat, tests/e2e/test_chat.py)."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing import User

from backend.chat.conversations import MAX_MESSAGE_CHARS
from backend.services import Services

from ..finders import click, notified, sees, shown


async def test_a_message_over_the_limit_is_refused_and_kept_in_the_composer(owner: User, services: Services) -> None:
    """The composer's own limit lives in the browser; the service refuses what gets past it and
    the page says why without losing the text."""
    conversation = await services.store.create(title="Long read")
    await owner.open(f"/c/{conversation.id}")
    await sees(owner, "Ask anything. It stays on this device.")
    composer = await shown(owner, "composer", ui.textarea)
    too_long = "word " * (MAX_MESSAGE_CHARS // 5) + "more"
    composer.value = too_long
    click(owner, await shown(owner, "send"))
    message = await notified(owner, "the message is too long")
    assert f"at most {MAX_MESSAGE_CHARS:,}" in message
    assert composer.value == too_long.strip()
    assert await services.store.messages(conversation.id) == []
    assert services.conversations.active.get(conversation.id) is None  # no answer was started


async def test_an_empty_message_is_not_sent(owner: User, services: Services) -> None:
    await owner.open("/")
    await sees(owner, "Ask anything. It stays on this device.")
    (await shown(owner, "composer", ui.textarea)).value = "  \n  "
    click(owner, await shown(owner, "send"))
    await sees(owner, "Ask anything. It stays on this device.")
    assert await services.store.list_recent() == []
    assert owner.notify.messages == []


async def test_a_refused_first_message_leaves_no_empty_chat_behind(owner: User, services: Services) -> None:
    project = await services.projects.create("Reading", system_prompt="Summarise.")
    for path in ("/", f"/?project={project.id}"):
        await owner.open(path)
        await sees(owner, "Ask anything. It stays on this device.")
        composer = await shown(owner, "composer", ui.textarea)
        composer.value = "word " * (MAX_MESSAGE_CHARS // 5) + "more"
        click(owner, await shown(owner, "send"))
        await notified(owner, "the message is too long")
        assert composer.value.endswith("more")  # the text is kept to shorten and send again
        assert await services.store.list_recent() == []  # and no "New chat" without a message
