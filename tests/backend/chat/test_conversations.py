"""The conversation service with a real engine: answers outlive pages, are saved while streaming."""

from __future__ import annotations

import asyncio

import pytest

from backend.chat.prompt import model_messages
from backend.core.errors import AppError
from backend.services import Services

pytestmark = pytest.mark.engine


async def test_send_streams_saves_and_titles(services: Services) -> None:
    conv = await services.store.create()
    reply = await services.conversations.send(conv.id, "  Tell me about owls in two sentences.  ")
    assert services.conversations.active[conv.id] is reply
    with pytest.raises(AppError):
        await services.conversations.send(conv.id, "another one while answering")
    await asyncio.wait_for(reply.finished.wait(), 60)
    messages = await services.store.messages(conv.id)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[0].content == "Tell me about owls in two sentences."
    assert messages[1].status == "done" and messages[1].content == reply.text and reply.text
    assert messages[1].stats["tokens_per_s"] > 0 and messages[1].stats["ttft_s"] > 0
    titled = await services.store.get(conv.id)
    assert titled is not None and titled.title.startswith("Tell me about owls")
    assert conv.id not in services.conversations.active


async def test_text_is_saved_while_streaming(services: Services) -> None:
    conv = await services.store.create(settings={"max_tokens": 2000, "temperature": 0.8})
    reply = await services.conversations.send(conv.id, "Write a very long story about a lighthouse.")
    saved = ""
    for _ in range(60):
        await asyncio.sleep(0.25)
        row = await services.store.get_message(reply.message_id)
        assert row is not None
        if row.status == "streaming" and row.content:
            saved = row.content
            break
    assert saved, "nothing was saved while the answer streamed"
    services.conversations.stop(conv.id)
    await reply.finished.wait()
    final = await services.store.get_message(reply.message_id)
    assert final is not None and final.status == "done" and final.stats["finish_reason"] == "cancelled"
    assert final.content.startswith(saved)


async def test_regenerate_and_edit_keep_the_earlier_versions_as_branches(services: Services) -> None:
    conv = await services.store.create()
    first = await services.conversations.send(conv.id, "Name a colour.")
    await first.finished.wait()
    again = await services.conversations.regenerate(conv.id)
    await again.finished.wait()
    messages = await services.store.messages(conv.id)
    assert [m.role for m in messages] == ["user", "assistant"] and messages[1].id == again.message_id
    branches = await services.store.branches(conv.id)
    assert branches[again.message_id].ids == (first.message_id, again.message_id)  # ‹ 2/2 ›
    edited = await services.conversations.edit_and_resend(messages[0].id, "Name an animal.")
    await edited.finished.wait()
    messages = await services.store.messages(conv.id)
    assert [(m.role, m.content if m.role == "user" else "") for m in messages] == \
        [("user", "Name an animal."), ("assistant", "")]
    assert (await services.store.branches(conv.id))[messages[0].id].index == 1
    # back to the first question: its latest answer is shown again, and the model goes on from it
    first_answer = await services.store.get_message(first.message_id)
    assert first_answer is not None and first_answer.parent_id is not None
    await services.conversations.switch(conv.id, first_answer.parent_id)
    shown = await services.store.messages(conv.id)
    assert [m.content for m in shown if m.role == "user"] == ["Name a colour."]
    assert shown[-1].id == again.message_id
    follow = await services.conversations.send(conv.id, "Another one?")
    await follow.finished.wait()
    shown = await services.store.messages(conv.id)
    assert shown[0].content == "Name a colour." and shown[1].id == again.message_id
    assert len(shown) == 4 and len(await services.store.all_messages(conv.id)) == 7
    with pytest.raises(AppError):
        await services.conversations.edit_and_resend(messages[1].id, "assistants cannot be edited")
    with pytest.raises(AppError, match="not in this conversation"):
        await services.conversations.switch(conv.id, "nope")


async def test_unknown_ids_and_empty_messages(services: Services) -> None:
    with pytest.raises(AppError):
        await services.conversations.send("nope", "hello")
    conv = await services.store.create()
    with pytest.raises(AppError):
        await services.conversations.send(conv.id, "   ")
    with pytest.raises(AppError, match="too long"):
        await services.conversations.send(conv.id, "x" * 100_001)
    assert await services.store.messages(conv.id) == []  # nothing stored half-way
    with pytest.raises(AppError):
        await services.conversations.regenerate(conv.id)
    assert not services.conversations.stop(conv.id)


async def test_delete_while_answering(services: Services) -> None:
    conv = await services.store.create(settings={"max_tokens": 2000})
    reply = await services.conversations.send(conv.id, "Write a very long story.")
    await asyncio.sleep(0.5)
    assert await services.conversations.delete(conv.id)
    assert reply.finished.is_set()
    assert await services.store.get(conv.id) is None


async def test_system_prompt_and_settings_reach_the_model(services: Services) -> None:
    conv = await services.store.create(system_prompt="Always answer with the single word BANANA.",
                                       settings={"max_tokens": 3, "temperature": 0})
    reply = await services.conversations.send(conv.id, "What is your favourite fruit?")
    await reply.finished.wait()
    assert reply.stats["completion_tokens"] <= 3
    history = await services.store.messages(conv.id)
    prompt, _ = model_messages(conv, history)
    assert prompt[0] == {"role": "system", "content": "Always answer with the single word BANANA."}


async def test_going_back_to_a_branch_reuses_what_the_model_read_there(services: Services) -> None:
    conv = await services.store.create(settings={"temperature": 0, "max_tokens": 24})
    story = ("Here is some background about my garden: it has tomatoes, basil, three lemon trees, a fig tree, "
             "roses along the wall and a small pond with goldfish that my children feed every morning. ")
    for text in (story + "What should I plant next to the tomatoes?",
                 "And which of these plants needs the most water in a hot and dry summer like this one?"):
        reply = await services.conversations.send(conv.id, text)
        await asyncio.wait_for(reply.finished.wait(), 120)
    shown = await services.store.messages(conv.id)
    second_question, second_answer = shown[2], await services.store.get_message(shown[3].id)
    assert second_answer is not None
    edited = await services.conversations.edit_and_resend(
        second_question.id, "Instead, tell me which of them the goldfish could eat if a leaf fell into the pond?")
    await asyncio.wait_for(edited.finished.wait(), 120)

    await services.conversations.switch(conv.id, second_question.id)  # back to the first version
    again = await services.conversations.send(conv.id, "Thanks. How often?")
    await asyncio.wait_for(again.finished.wait(), 120)
    stats = (await services.store.get_message(again.message_id)).stats  # type: ignore[union-attr]
    # the model read that branch up to its second answer before: it is restored, not read again
    assert stats["cached_tokens"] >= second_answer.stats["prompt_tokens"], (stats, second_answer.stats)
