"""Opening a conversation at a message: the branch holding it becomes the one shown."""

from __future__ import annotations

import json

from nicegui.testing import User

from backend.services import Services
from backend.storage.conversations import Conversation, Message
from web.components.message_jump import scroll_to_message_js, show_message


async def branched(services: Services) -> tuple[Conversation, Message, Message]:
    """A question with two answers (a regenerated one): the second is shown."""
    conv = await services.store.create(title="Colours")
    question = await services.store.add_message(conv.id, "user", "Name a colour.")
    first = await services.store.add_message(conv.id, "assistant", "Violet, like the flower.")
    second = await services.store.add_message(conv.id, "assistant", "Green.", parent_id=question.id)
    return conv, first, second


async def test_a_message_on_another_branch_is_switched_to(user: User, services: Services) -> None:
    conv, first, second = await branched(services)
    assert (await services.store.messages(conv.id))[-1].id == second.id
    assert await show_message(services, conv.id, first.id) is None
    assert (await services.store.messages(conv.id))[-1].id == first.id


async def test_a_message_already_shown_needs_no_switch(user: User, services: Services) -> None:
    conv, _first, second = await branched(services)
    question = (await services.store.messages(conv.id))[0]
    assert await show_message(services, conv.id, question.id) is None
    assert (await services.store.messages(conv.id))[-1].id == second.id  # the branch shown stays


async def test_a_message_not_in_the_conversation_is_said_plainly(user: User, services: Services) -> None:
    conv, _first, second = await branched(services)
    other = await services.store.create(title="Other")
    stranger = await services.store.add_message(other.id, "user", "Hello")
    for message_id in (stranger.id, "not-a-message"):
        assert await show_message(services, conv.id, message_id) == "that message is not in this conversation"
    assert (await services.store.messages(conv.id))[-1].id == second.id


def test_the_id_is_given_to_the_script_as_a_string() -> None:
    hostile = "x\"]'); alert(1); ('"
    script = scroll_to_message_js(hostile)
    assert f"const id = {json.dumps(hostile)};" in script
    assert hostile not in script  # only its escaped form
