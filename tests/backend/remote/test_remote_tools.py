"""A server's chat model in a conversation with tools on: offered the tools only when its owner says
the server can call them; then the app runs the calculator it asks for and the model answers with the
result, as with a local model."""

from __future__ import annotations

from pathlib import Path

from backend.core.config import Settings
from backend.services import Services

from .fake_remote import FakeRemote


async def test_a_server_model_calls_the_app_tools_only_when_its_owner_says_it_can(tmp_path: Path) -> None:
    services = Services.build(Settings(data_dir=tmp_path / "data", token="t" * 20))
    await services.start()
    try:
        with FakeRemote(mode="calculator", models=("qwen3-32b",)) as fake:
            engine = await services.remote.add(fake.host, name="Laptop")
            model = f"{engine.id}/qwen3-32b"
            conversation = await services.conversations.create()
            await services.store.update(conversation.id, settings={"model": model, "tools": "auto"})

            # not said yet: the model is asked without tools, and the answer says so
            fake.mode = "good"
            reply = await services.conversations.send(conversation.id, "What is six times seven?")
            await reply.finished.wait()
            first = fake.requests("/chat/completions")[-1].json()
            assert "tools" not in first
            answered = await services.store.get_message(reply.message_id)
            assert answered is not None and "cannot call tools" in answered.stats.get("note", "")

            await services.remote.set_tools(engine.id, True)
            assert services.conversations.features_of(services.answers.get(model)) == ["tools"]
            fake.mode = "calculator"
            reply = await services.conversations.send(conversation.id, "And now with the calculator?")
            await reply.finished.wait()
            asked, told = fake.requests("/chat/completions")[-2:]
            assert "calculator" in [t["function"]["name"] for t in asked.json()["tools"]]
            last = told.json()["messages"][-2:]
            assert last[0]["role"] == "assistant" and last[0]["tool_calls"][0]["function"]["name"] == "calculator"
            assert last[0]["tool_calls"][0]["function"]["arguments"] == '{"expression": "6*7"}'
            assert last[1] == {"role": "tool", "content": "6 * 7 = 42", "tool_call_id": "call_calc"}
            message = await services.store.get_message(reply.message_id)
            assert message is not None and message.status == "done", message
            assert [(t["name"], t["result"], t["ok"]) for t in message.tools] == [("calculator", "6 * 7 = 42", True)]
            assert message.content == "It is 6 * 7 = 42."
    finally:
        await services.stop()
