"""search_conversations: the model reads passages of the person's earlier conversations."""

from __future__ import annotations

import json

from backend.chat.tools import ToolRegistry
from backend.chat.tools.history import SearchConversationsTool
from backend.services import Services
from backend.storage.conversations import ConversationStore
from backend.storage.db import Database


async def test_passages_come_with_title_and_date_and_leave_out_the_conversation_asking(db: Database) -> None:
    store = ConversationStore(db)
    rome = await store.create(title="Trip to Rome")
    await store.add_message(rome.id, "user", "Book the Borghese Gallery for Saturday at ten.")
    await store.add_message(rome.id, "assistant", "Tickets for the Borghese Gallery must be booked ahead.")
    asking = await store.create(title="Now")
    await store.add_message(asking.id, "user", "What did I say about the Borghese gallery?")
    tools = ToolRegistry([SearchConversationsTool(store, leave_out=asking.id)])

    outcome = await tools.call("search_conversations", json.dumps({"query": "borghese"}))
    assert outcome.ok, outcome.text
    lines = outcome.text.splitlines()
    assert len(lines) == 2  # both messages of the trip, not the question being answered
    assert lines[0].startswith("- In “Trip to Rome” (") and "the answer was" in lines[0]
    assert "Tickets for the Borghese Gallery must be booked ahead." in lines[0]  # no search markers left
    assert "the person wrote" in lines[1] and "\x02" not in outcome.text

    nothing = await tools.call("search_conversations", {"query": "volcano"})
    assert nothing.ok and nothing.text == "No conversation mentions 'volcano'."
    one = await tools.call("search_conversations", {"query": "gallery", "limit": 1})
    assert one.ok and len(one.text.splitlines()) == 1
    no_words = await tools.call("search_conversations", {"query": "***"})
    assert not no_words.ok and "no words" in no_words.text
    too_many = await tools.call("search_conversations", {"query": "x", "limit": 50})
    assert not too_many.ok


async def test_each_answer_gets_a_search_that_leaves_its_own_conversation_out(services: Services) -> None:
    asking = await services.conversations.create()
    tools = await services.conversations._tools_for(asking)
    assert tools.names() == [*services.conversations.tools.names()]  # the same tools, in the same order
    assert tools.names()[:3] == ["calculator", "date_time", "convert_units"]
    search = tools.get("search_conversations")
    assert isinstance(search, SearchConversationsTool) and search.leave_out == asking.id
    spec = search.spec()["function"]
    assert spec["parameters"]["required"] == ["query"]
