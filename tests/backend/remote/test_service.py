"""`RemoteEngines` on a real database against a real server on loopback: adding (checked first),
the models as records, checks, answers streamed, stopped, cut and refused at once while a server is
known to be down; and `ChatEngines` sending each model to where it runs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from backend.chat.engine import ChatEngines, chat_engine, collect
from backend.core.config import Settings
from backend.core.errors import AppError, ErrorCode
from backend.core.jobs import Job
from backend.engines.llm import TokenDelta
from backend.models.manager import ModelManager
from backend.models.registry import ModelRecord
from backend.remote.service import MAX_ENGINES, RemoteEngines, is_remote
from backend.runtime.host import EngineJob
from backend.runtime.protocol import Event, JobDone, JobFailed
from backend.runtime.residency import MemoryBudget, ResidencyManager
from backend.storage.db import Database
from tests.server import free_port

from .answers import answer, question, soon
from .fake_remote import WORDS, FakeRemote

TEXT = "".join(WORDS)
SLOW_WORDS = [f" w{i}" for i in range(400)]


async def refused(engines: RemoteEngines, url: str, code: ErrorCode, key: str = "") -> AppError:
    with pytest.raises(AppError) as caught:
        await engines.add(url, key)
    assert caught.value.code == code, caught.value.message
    return caught.value


# adding ------------------------------------------------------------------------------------------------

async def test_add_lists_the_models(engines: RemoteEngines, fake: FakeRemote) -> None:
    fake.models = ["big-model", "Qwen/Qwen3-8B"]
    engine = await engines.add(f"  {fake.host}/ ", name="  Laptop\n  upstairs ")
    assert engine.url == f"http://{fake.host}/v1" and engine.name == "Laptop upstairs"
    assert engine.state == "up" and engine.error is None and engine.latency_ms is not None
    assert engine.models == ["big-model", "Qwen/Qwen3-8B"]
    assert [(e.id, e.url, e.models) for e in await engines.store.all()] == [(engine.id, engine.url, engine.models)]
    records = engines.records()
    assert [r.id for r in records] == [f"{engine.id}/big-model", f"{engine.id}/Qwen/Qwen3-8B"]
    assert all(r.source == "remote" and r.job == Job.CHAT and is_remote(r) for r in records)
    assert records[0].info["engine_name"] == "Laptop upstairs" and records[0].info["remote_model"] == "big-model"
    assert engines.get(f"{engine.id}/Qwen/Qwen3-8B") == records[1]
    assert engines.get(f"{engine.id}/nope") is None and engines.get("nope/big-model") is None
    assert engines.get("big-model") is None
    # a model id with a slash reaches the server as it is
    assert (await answer(engines, f"{engine.id}/Qwen/Qwen3-8B")).text == TEXT
    assert fake.requests("/chat/completions")[-1].json()["model"] == "Qwen/Qwen3-8B"


async def test_nothing_is_kept_when_the_check_fails(engines: RemoteEngines, fake: FakeRemote) -> None:
    await refused(engines, f"127.0.0.1:{free_port()}", ErrorCode.REMOTE_UNAVAILABLE)
    fake.mode = "bad_json"
    await refused(engines, fake.host, ErrorCode.REMOTE_FAILED)
    fake.mode = "html"
    await refused(engines, fake.host, ErrorCode.REMOTE_FAILED)
    fake.mode, fake.key = "good", "sk-right"
    error = await refused(engines, fake.host, ErrorCode.REMOTE_REFUSED, key="sk-wrong")
    assert "sk-wrong" not in error.message
    assert engines.servers() == [] and await engines.store.all() == [] and engines.records() == []
    engine = await engines.add(fake.host, " sk-right ")
    assert engine.api_key == "sk-right" and engine.public()["has_key"] is True
    assert "sk-right" not in str(engine.public()) and "sk-right" not in repr(engine)


@pytest.mark.parametrize("key", ["two words", "tab\there", "nul\x00", "k" * 5000])
async def test_a_key_that_cannot_be_right(engines: RemoteEngines, fake: FakeRemote, key: str) -> None:
    with pytest.raises(AppError) as caught:
        await engines.add(fake.host, key)
    assert caught.value.code == ErrorCode.INVALID_VALUE and caught.value.param == "key"
    assert fake.seen == [] and engines.servers() == []


async def test_duplicates(engines: RemoteEngines, fake: FakeRemote) -> None:
    await engines.add(fake.host)
    for again in (fake.host, f"http://{fake.host}/", f"http://{fake.host}/v1/"):
        await refused(engines, again, ErrorCode.CONFLICT)
    assert len(engines.servers()) == 1 and len(await engines.store.all()) == 1


async def test_the_same_server_added_twice_at_once(engines: RemoteEngines, fake: FakeRemote) -> None:
    fake.delay_s = 0.0
    outcomes = await asyncio.gather(engines.add(fake.host), engines.add(f"http://{fake.host}/v1"),
                                    return_exceptions=True)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], AppError), outcomes
    assert errors[0].code == ErrorCode.CONFLICT
    assert len(engines.servers()) == 1 and len(await engines.store.all()) == 1


async def test_at_most_max_engines(engines: RemoteEngines, fake: FakeRemote) -> None:
    for i in range(MAX_ENGINES):
        await engines.add(f"{fake.host}/box{i}")
    error = await refused(engines, f"{fake.host}/one-more", ErrorCode.CONFLICT)
    assert str(MAX_ENGINES) in error.message
    assert len(engines.servers()) == MAX_ENGINES == len(await engines.store.all())
    assert not fake.requests("/one-more/v1/models")  # refused before asking it


async def test_kept_and_loaded_again(db: Database, settings: Settings, fake: FakeRemote) -> None:
    engines = RemoteEngines(db, settings)
    await engines.start()
    engine = await engines.add(fake.host, "sk-1", name="Box")
    said = await answer(engines, f"{engine.id}/big-model")
    assert said.result.completion_tokens == len(WORDS)
    assert set(engine.speed["big-model"]) == {"tokens_per_s", "ttft_s"}
    await engines.stop()
    assert engines.servers() == []

    again = RemoteEngines(db, settings)
    await again.start()
    try:
        loaded = again.engine(engine.id)
        assert loaded.state == "unknown"  # not checked since this start
        assert (loaded.url, loaded.name, loaded.api_key, loaded.models) == (engine.url, "Box", "sk-1", engine.models)
        assert loaded.speed == engine.speed
        assert [r.id for r in again.records()] == [f"{engine.id}/big-model", f"{engine.id}/small-model"]
        assert (await answer(again, f"{engine.id}/small-model")).text == TEXT
        assert fake.seen[-1].headers["authorization"] == "Bearer sk-1"
    finally:
        await again.stop()


async def test_remove(engines: RemoteEngines, fake: FakeRemote) -> None:
    engine = await engines.add(fake.host)
    await engines.remove(engine.id)
    assert engines.servers() == [] and engines.records() == [] and await engines.store.all() == []
    with pytest.raises(AppError) as caught:
        await engines.remove(engine.id)
    assert caught.value.code == ErrorCode.NOT_FOUND
    with pytest.raises(AppError) as caught:
        await engines.check(engine.id)
    assert caught.value.code == ErrorCode.NOT_FOUND


# checks -------------------------------------------------------------------------------------------------

async def test_check_marks_down_and_up(engines: RemoteEngines, fake: FakeRemote) -> None:
    engine = await engines.add(fake.host)
    fake.down()
    checked = await engines.check(engine.id)
    assert checked.state == "down" and checked.error is not None and "nothing answers" in checked.error
    assert checked.checked_at is not None and time.time() - checked.checked_at < 5
    assert (await engines.store.all())[0].state == "down"
    assert engines.get(f"{engine.id}/big-model").info["state"] == "down"  # type: ignore[union-attr]
    assert checked.models == ["big-model", "small-model"]  # kept while it is away

    fake.models = ["big-model", "new-model"]
    fake.up()
    checked = await engines.check(engine.id)
    assert checked.state == "up" and checked.error is None
    assert checked.models == ["big-model", "new-model"]
    stored = (await engines.store.all())[0]
    assert (stored.state, stored.models) == ("up", ["big-model", "new-model"])


async def test_checks_at_once_share_one_request(engines: RemoteEngines, fake: FakeRemote) -> None:
    engine = await engines.add(fake.host)
    before = len(fake.requests("/models"))
    results = await asyncio.gather(*(engines.check(engine.id) for _ in range(5)))
    assert all(r.state == "up" for r in results)
    assert len(fake.requests("/models")) - before == 1


# answers ------------------------------------------------------------------------------------------------

async def test_an_answer(engines: RemoteEngines, fake: FakeRemote) -> None:
    engine = await engines.add(fake.host)
    said = await answer(engines, f"{engine.id}/big-model", question("Say hello."))
    deltas = [e for e in said.events if isinstance(e, TokenDelta)]
    assert [d.text for d in deltas] == list(WORDS)
    assert said.events[:-1] == deltas  # deltas, then the end
    assert said.result.finish_reason == "stop" and said.result.model == f"{engine.id}/big-model"
    assert (said.result.prompt_tokens, said.result.completion_tokens) == (9, len(WORDS))
    sent = fake.requests("/chat/completions")[-1].json()
    assert sent["model"] == "big-model" and sent["messages"] == [{"role": "user", "content": "Say hello."}]
    assert set(engine.speed) == {"big-model"}
    record = engines.get(f"{engine.id}/big-model")
    assert record is not None and record.info["tokens_per_s"] == engine.speed["big-model"]["tokens_per_s"]


async def test_tool_calls_from_a_server(engines: RemoteEngines, fake: FakeRemote) -> None:
    engine = await engines.add(fake.host)
    fake.mode = "tools"
    said = await answer(engines, f"{engine.id}/big-model")
    assert said.result.finish_reason == "tool_calls"
    assert [(c["id"], c["name"]) for c in said.result.tool_calls] == [("call_weather", "get_weather"),
                                                                    ("call_time", "get_time")]
    assert said.result.tool_calls[0]["arguments"] == '{"city": "Zürich", "unit": "celsius"}'


async def until_text(events: list[Event], within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while not any(isinstance(e, TokenDelta) for e in events):
        assert time.monotonic() < deadline, "no text came"
        await asyncio.sleep(0.01)


async def test_cancel_mid_stream(engines: RemoteEngines, fake: FakeRemote) -> None:
    engine = await engines.add(fake.host)
    fake.words, fake.delay_s = SLOW_WORDS, 0.05
    job = EngineJob()
    events: list[Event] = []

    async def run() -> None:
        model = engines.get(f"{engine.id}/big-model")
        assert model is not None
        async for event in engines.stream(model, question(), job):
            events.append(event)

    running = asyncio.create_task(run())
    await until_text(events)
    stopped_at = time.monotonic()
    engines.cancel(job)
    await asyncio.wait_for(running, 2.0)
    ended = time.monotonic()
    assert ended - stopped_at < 1.0
    last = events[-1]
    assert isinstance(last, JobDone) and last.result.finish_reason == "cancelled"
    text = "".join(e.text for e in events if isinstance(e, TokenDelta))
    assert text and "".join(SLOW_WORDS).startswith(text) and len(text) < len("".join(SLOW_WORDS))
    request = fake.requests("/chat/completions")[-1]
    await soon(lambda: request.closed_at is not None)
    assert request.closed_at is not None and request.closed_at - stopped_at < 1.0  # the server saw its client leave
    assert engine.state == "up"  # stopping is not the server's fault


async def test_a_server_that_dies_mid_answer(engines: RemoteEngines, fake: FakeRemote) -> None:
    engine = await engines.add(fake.host, name="Laptop")
    fake.mode = "die"
    cut = await answer(engines, f"{engine.id}/big-model")
    assert cut.failed.code == ErrorCode.REMOTE_UNAVAILABLE
    assert "Laptop stopped answering" in cut.failed.message
    assert cut.text == "".join(WORDS[:3])  # what came before it is given
    assert engine.state == "down" and engine.error == cut.failed.message

    # known to be down: the next answer fails at once, without trying it
    fake.mode = "good"
    connections, requests = fake.connections, len(fake.seen)
    started = time.monotonic()
    again = await answer(engines, f"{engine.id}/big-model")
    assert time.monotonic() - started < 0.5
    assert again.failed.code == ErrorCode.REMOTE_UNAVAILABLE and "Laptop is not answering" in again.failed.message
    assert (fake.connections, len(fake.seen)) == (connections, requests)
    for _ in range(100):  # saved too, without holding up the answer
        if (await engines.store.all())[0].state == "down":
            break
        await asyncio.sleep(0.02)
    assert (await engines.store.all())[0].state == "down"

    # a check finds it back, and answers go to it again
    assert (await engines.check(engine.id)).state == "up"
    assert (await answer(engines, f"{engine.id}/big-model")).text == TEXT


async def test_a_server_that_fails_is_not_marked_down(engines: RemoteEngines, fake: FakeRemote) -> None:
    engine = await engines.add(fake.host)
    fake.mode = "error500"
    failed = await answer(engines, f"{engine.id}/big-model")
    assert failed.failed.code == ErrorCode.REMOTE_FAILED and "HTTP 500" in failed.failed.message
    assert engine.state == "up"  # it answers: it is its answer that was wrong
    fake.mode = "good"
    assert (await answer(engines, f"{engine.id}/big-model")).text == TEXT


async def test_remove_while_streaming(engines: RemoteEngines, fake: FakeRemote) -> None:
    engine = await engines.add(fake.host)
    model = engines.get(f"{engine.id}/big-model")
    assert model is not None
    fake.words, fake.delay_s = SLOW_WORDS, 0.05
    events: list[Event] = []

    async def run() -> None:
        async for event in engines.stream(model, question(), EngineJob()):
            events.append(event)

    running = asyncio.create_task(run())
    await until_text(events)
    removed_at = time.monotonic()
    await engines.remove(engine.id)
    await asyncio.wait_for(running, 2.0)
    assert time.monotonic() - removed_at < 1.0
    assert isinstance(events[-1], JobDone | JobFailed)
    assert sum(isinstance(e, TokenDelta) for e in events) < len(SLOW_WORDS)
    request = fake.requests("/chat/completions")[-1]
    await soon(lambda: request.closed_at is not None)
    # its model, asked for after, is gone
    gone = [e async for e in engines.stream(model, question(), EngineJob())]
    assert len(gone) == 1 and isinstance(gone[0], JobFailed) and gone[0].code == ErrorCode.MODEL_NOT_FOUND


async def test_a_job_cancelled_before_it_started(engines: RemoteEngines, fake: FakeRemote) -> None:
    engine = await engines.add(fake.host)
    job = EngineJob()
    engines.cancel(job)
    said = await answer(engines, f"{engine.id}/big-model", job=job)
    assert said.failed.code == ErrorCode.CANCELLED
    assert not fake.requests("/chat/completions")


# ChatEngines --------------------------------------------------------------------------------------------

@pytest.fixture
def answers(db: Database, settings: Settings, engines: RemoteEngines) -> ChatEngines:
    residency = ResidencyManager(MemoryBudget(fixed_bytes=1024 * 1024 * 1024))
    models = ModelManager(settings, db, residency)
    return ChatEngines(chat_engine(settings, models, residency), engines, models)


async def test_chat_engines_routing(answers: ChatEngines, engines: RemoteEngines, fake: FakeRemote) -> None:
    engine = await engines.add(fake.host)
    remote_id = f"{engine.id}/big-model"
    resolved = answers.resolve(remote_id)
    assert resolved.id == remote_id and is_remote(resolved)
    assert answers.get(remote_id) == resolved
    assert remote_id in [m.id for m in answers.language_models()]
    for unknown in ("nope", f"{engine.id}/nope", "nope/big-model"):
        with pytest.raises(AppError) as caught:
            answers.resolve(unknown)
        assert caught.value.code == ErrorCode.MODEL_NOT_FOUND and unknown in caught.value.message
    with pytest.raises(AppError) as caught:
        answers.resolve(None)  # no local model in this data folder
    assert caught.value.code == ErrorCode.MODEL_NOT_FOUND

    collected = await collect(answers.stream(question(), EngineJob(), model_id=remote_id))
    assert collected.text == TEXT and collected.result.finish_reason == "stop"
    assert fake.requests("/chat/completions")

    fake.words, fake.delay_s = SLOW_WORDS, 0.05
    job = EngineJob()
    events: list[Event] = []

    async def run() -> None:
        async for event in answers.stream(question(), job, model_id=remote_id):
            events.append(event)

    running = asyncio.create_task(run())
    await until_text(events)
    answers.cancel(job)
    await asyncio.wait_for(running, 2.0)
    last = events[-1]
    assert isinstance(last, JobDone) and last.result.finish_reason == "cancelled"


def test_sees(tmp_path: Path) -> None:
    remote = ModelRecord(id="e1/big", job=Job.CHAT, name="big · box", format="remote", path=Path(), size_bytes=0,
                         source="remote")
    local = ModelRecord(id="small", job=Job.CHAT, name="small", format="gguf", path=tmp_path / "m.gguf",
                        size_bytes=1, source="import")
    seeing = ModelRecord(id="eyes", job=Job.VISION, name="eyes", format="gguf", path=tmp_path / "v.gguf",
                         size_bytes=1, source="import", projector=tmp_path / "mmproj.gguf")
    assert ChatEngines.sees(remote) and ChatEngines.sees(seeing)
    assert not ChatEngines.sees(local) and not ChatEngines.sees(None)
