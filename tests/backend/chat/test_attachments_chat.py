"""Conversations with photos and documents, on a real engine: the bundled SmolLM2 answers text, and
"tiny-vision" (the same weights with a tiny random-weight projector) looks at photos."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from backend.chat.conversations import LONG_DOCUMENT_NOTICE, CannotSee
from backend.chat.prompt import model_messages
from backend.core.errors import AppError
from backend.engines.llm import MEDIA_MARKER, ChatRequest
from backend.runtime.protocol import Event
from backend.services import Services
from backend.storage.attachments import Attachment
from tests.ggufs import write_tiny_mmproj
from tests.vision_models import VISION, vision_data_dir

from .conftest import running_services

pytestmark = pytest.mark.engine

QUICK = {"max_tokens": 4, "temperature": 0}
SEEING = {**QUICK, "model": VISION}


@pytest.fixture(scope="module")
def projector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_mmproj(tmp_path_factory.mktemp("projector") / "mmproj-tiny-vision.gguf")


@pytest.fixture
async def services(tmp_path: Path, smollm_path: Path, projector: Path) -> AsyncIterator[Services]:
    data = vision_data_dir(tmp_path, smollm_path, projector)
    async with running_services(data) as built:
        yield built


@pytest.fixture
def requests(services: Services, monkeypatch: pytest.MonkeyPatch) -> list[ChatRequest]:
    """Every request the conversations give the chat service, as it was given."""
    seen: list[ChatRequest] = []
    original = services.chat.stream

    def spy(request: ChatRequest, job: Any, **kw: Any) -> AsyncGenerator[Event, None]:
        seen.append(request)
        return original(request, job, **kw)

    monkeypatch.setattr(services.chat, "stream", spy)
    return seen


# --- helpers -----------------------------------------------------------------------------------

def jpeg(colour: str = "orange", size: tuple[int, int] = (320, 240)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="JPEG")
    return out.getvalue()


async def upload(services: Services, data: bytes, name: str, uploader: str = "owner") -> Attachment:
    async def one() -> AsyncIterator[bytes]:
        yield data
    return await services.attachments.accept(one(), name=name, uploader=uploader)


async def answered(services: Services, conversation_id: str, text: str, ids: list[str] | None = None, *,
                   uploader: str = "owner") -> dict[str, Any]:
    """Send a message, wait for the whole answer, and return its stats (checked to be a finished answer)."""
    reply = await services.conversations.send(conversation_id, text, ids or [], uploader=uploader)
    await asyncio.wait_for(reply.finished.wait(), 180)
    assert reply.status == "done", (reply.error, reply.stats)
    assert reply.error is None and "error_code" not in reply.stats
    assert reply.stats["finish_reason"] in ("stop", "length") and reply.stats["completion_tokens"] >= 1
    return reply.stats


def stored(services: Services, attachment: Attachment) -> list[Path]:
    """The attachment's files that exist."""
    names = [attachment.path, attachment.thumb] if attachment.thumb else [attachment.path]
    return [p for p in (services.media.path(n) for n in names) if p.exists()]


# --- photos ------------------------------------------------------------------------------------

async def test_photo_to_a_model_that_cannot_see_is_refused(services: Services) -> None:
    conv = await services.store.create(settings=QUICK)
    photo = await upload(services, jpeg(), "photo.jpg")
    with pytest.raises(CannotSee) as caught:
        await services.conversations.send(conv.id, "What is in this photo?", [photo.id])
    assert [m.id for m in caught.value.vision] == [VISION]
    assert caught.value.model is not None and caught.value.model.projector is None
    assert caught.value.model.id == services.models.active("chat").id  # type: ignore[union-attr]
    assert "cannot see photos; choose a vision model" in str(caught.value)
    assert await services.store.messages(conv.id) == []
    assert [a.id for a in await services.attachments.store.pending([photo.id], "owner")] == [photo.id]
    assert conv.id not in services.conversations.active


async def test_photo_question_and_a_follow_up_that_still_sees_it(services: Services,
                                                                  requests: list[ChatRequest]) -> None:
    conv = await services.store.create(settings=QUICK)
    photo = await upload(services, jpeg(), "photo.jpg")
    assert await services.store.update(conv.id, settings=SEEING)

    first = await answered(services, conv.id, "What colour is this photo?", [photo.id])
    assert first["image_tokens"] == 16 and first["model"] == VISION
    assert first["prompt_tokens"] > 16 and first["trimmed_messages"] == 0
    image = services.media.path(photo.path).read_bytes()
    assert requests[0].images == [image]
    assert requests[0].messages == [{"role": "user", "content": f"{MEDIA_MARKER}\n\nWhat colour is this photo?"}]

    second = await answered(services, conv.id, "Is it bright?")
    assert requests[1].images == [image]  # given again with the follow-up
    assert requests[1].messages[0] == requests[0].messages[0]
    assert [m["role"] for m in requests[1].messages] == ["user", "assistant", "user"]
    assert second["cached_tokens"] >= first["prompt_tokens"]  # the photo's evaluation is reused
    assert second["image_tokens"] == 0 and second["prompt_tokens"] > first["prompt_tokens"]

    conversation = await services.store.get(conv.id)
    assert conversation is not None
    history = await services.store.messages(conv.id)
    attached = await services.attachments.store.for_conversation(conv.id)
    messages, photos = model_messages(conversation, history, attached, sees=True)
    assert MEDIA_MARKER in messages[0]["content"] and [p.id for p in photos] == [photo.id]
    unseen, none = model_messages(conversation, history, attached, sees=False)
    assert none == [] and MEDIA_MARKER not in unseen[0]["content"]
    assert "cannot see photos" in unseen[0]["content"]


async def test_early_photo_in_a_long_conversation_is_trimmed_not_fatal(services: Services,
                                                                      requests: list[ChatRequest]) -> None:
    conv = await services.store.create(settings={**SEEING, "context_length": 512, "max_tokens": 8})
    photo = await upload(services, jpeg("teal"), "early.jpg")
    first = await services.store.add_message(conv.id, "user", "Here is my garden.")
    await services.attachments.store.link(first.id, [photo])
    chatter = " ".join(f"The garden has plant number {i} in row {i % 7}." for i in range(15))
    for turn in range(3):
        await services.store.add_message(conv.id, "assistant", f"Noted, part {turn}. {chatter}")
        await services.store.add_message(conv.id, "user", f"More about it, part {turn}: {chatter}")
    await services.store.add_message(conv.id, "assistant", "Understood.")

    stats = await answered(services, conv.id, "What did I show you first?")
    assert len(requests[0].images) == 1 and requests[0].context_limit == 512
    assert stats["trimmed_messages"] > 0
    assert stats["image_tokens"] == 0  # the photo's turn was left out with it
    assert stats["prompt_tokens"] + 8 <= 512


# --- documents ---------------------------------------------------------------------------------

async def test_long_document_is_indexed_and_answered_from_its_passages(
        services: Services, requests: list[ChatRequest]) -> None:
    lines = [f"Line {i:05d}: the ledger entry for day {i} balances." for i in range(1500)]
    text = "\n".join(lines) + "\n"
    conv = await services.store.create(settings={**QUICK, "max_tokens": 8})
    doc = await upload(services, text.encode(), "ledger.txt")
    stats = await answered(services, conv.id, "Which day does line 01234 record?", [doc.id])
    sent = await services.attachments.store.get(doc.id)
    assert sent is not None and (sent.sent_text, sent.sent_notice) == ("", LONG_DOCUMENT_NOTICE)
    content = requests[0].messages[-1]["content"]
    passages, question = content.split("\nQuestion: ", 1)
    assert passages.startswith("Passages from the person's documents") and "[1] (ledger.txt)" in passages
    assert "Line 01234" in passages  # found by its words
    assert question == (f"--- ledger.txt ---\n\n--- end of ledger.txt ---\n(Only part of this file is included. "
                        f"{LONG_DOCUMENT_NOTICE})\n\nWhich day does line 01234 record?")
    assert stats["trimmed_messages"] == 0 and stats["prompt_tokens"] < 2048 - 8
    answer = await services.store.get_message((await services.store.messages(conv.id))[-1].id)
    assert answer is not None and answer.sources[0]["document"] == "ledger.txt"

    await answered(services, conv.id, "And line 00007?")
    assert requests[1].messages[0]["content"] == question  # earlier turns are read without their passages
    assert requests[1].messages[-1]["content"].startswith("Passages from the person's documents")
    hidden = await services.knowledge.store.hidden_collection(conv.id)
    assert hidden is not None
    found = await services.knowledge.search([hidden.id], "line 00007", k=3, mode="words")
    assert "Line 00007" in found.hits[0].passage.text


async def test_long_document_is_cut_when_it_cannot_be_indexed(services: Services, requests: list[ChatRequest],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services.conversations, "knowledge", None)
    lines = [f"Line {i:05d}: the ledger entry for day {i} balances." for i in range(4000)]
    text = "\n".join(lines) + "\n"
    assert len(text) > 200_000
    conv = await services.store.create(settings={**QUICK, "max_tokens": 8})
    doc = await upload(services, text.encode(), "ledger.txt")
    assert doc.text == text and doc.sent_text is None

    stats = await answered(services, conv.id, "What is on the first line?", [doc.id])
    sent = await services.attachments.store.get(doc.id)
    assert sent is not None and sent.sent_notice is not None and sent.sent_text is not None
    assert sent.sent_notice.startswith("Only the first ") and sent.sent_notice.endswith("to fit the model's context.")
    assert sent.text == text  # all of it is kept; the model reads the part fixed when it was sent
    assert 1000 < len(sent.sent_text) < 10_000 and sent.sent_text.startswith(lines[0])
    assert text.startswith(sent.sent_text)

    content = requests[0].messages[-1]["content"]
    assert content.startswith(f"--- ledger.txt ---\n{lines[0]}\n{lines[1]}\n")
    assert lines[-1] not in content and lines[len(sent.sent_text.split("\n"))] not in content
    assert f"--- end of ledger.txt ---\n(Only part of this file is included. {sent.sent_notice})" in content
    assert content.endswith("\n\nWhat is on the first line?")
    assert stats["trimmed_messages"] == 0 and stats["prompt_tokens"] < 2048 - 8

    follow = await answered(services, conv.id, "And the second?")
    assert requests[1].messages[0]["content"] == content  # the same text on every later turn
    assert follow["cached_tokens"] >= stats["prompt_tokens"]


async def test_short_csv_is_given_whole_as_a_table(services: Services, requests: list[ChatRequest]) -> None:
    conv = await services.store.create(settings=QUICK)
    doc = await upload(services, b"name,city,score\nAlice,Paris,91\nBob,Berlin,78\n", "people.csv")
    await answered(services, conv.id, "Who scored best?", [doc.id])
    sent = await services.attachments.store.get(doc.id)
    assert sent is not None and sent.sent_notice is None and sent.sent_text == sent.text
    table = "| name | city | score |\n| --- | --- | --- |\n| Alice | Paris | 91 |\n| Bob | Berlin | 78 |"
    assert requests[0].messages == [{"role": "user", "content": f"--- people.csv ---\n{table}\n"
                                                                f"--- end of people.csv ---\n\nWho scored best?"}]
    assert requests[0].images == []

    conversation = await services.store.get(conv.id)
    assert conversation is not None
    messages, photos = model_messages(
        conversation, await services.store.messages(conv.id),
        await services.attachments.store.for_conversation(conv.id))
    assert messages[0] == requests[0].messages[0] and photos == []


async def test_a_message_of_only_an_attachment_is_accepted(services: Services, requests: list[ChatRequest]) -> None:
    conv = await services.store.create(settings=QUICK)
    doc = await upload(services, b"Remember to water the plants.\n", "todo.txt")
    await answered(services, conv.id, "   ", [doc.id])
    history = await services.store.messages(conv.id)
    assert [(m.role, m.content if m.role == "user" else "") for m in history] == [("user", ""), ("assistant", "")]
    assert doc.text == "Remember to water the plants.\n"
    content = "--- todo.txt ---\nRemember to water the plants.\n--- end of todo.txt ---"
    assert requests[0].messages == [{"role": "user", "content": content}]
    titled = await services.store.get(conv.id)
    assert titled is not None and titled.title == "todo.txt"
    with pytest.raises(AppError, match="empty"):
        await services.conversations.send(conv.id, "  ")  # no text and nothing attached


async def test_too_many_or_unknown_attachments_are_refused(services: Services) -> None:
    conv = await services.store.create(settings=QUICK)
    with pytest.raises(AppError, match="at most 10"):
        await services.conversations.send(conv.id, "many", [f"id{i}" for i in range(11)])
    with pytest.raises(AppError, match="no longer there"):
        await services.conversations.send(conv.id, "gone", ["no-such-attachment"])
    assert await services.store.messages(conv.id) == []


async def test_attachment_of_another_uploader_cannot_be_sent(services: Services) -> None:
    conv = await services.store.create(settings=QUICK)
    doc = await upload(services, b"a note from the phone\n", "note.txt", uploader="device:x")
    with pytest.raises(AppError, match="no longer there"):
        await services.conversations.send(conv.id, "read this", [doc.id], uploader="owner")
    assert await services.store.messages(conv.id) == []
    still = await services.attachments.store.get(doc.id)
    assert still is not None and still.message_id is None
    await answered(services, conv.id, "read this", [doc.id], uploader="device:x")
    sent = await services.attachments.store.get(doc.id)
    assert sent is not None and sent.message_id is not None


# --- files go with their messages --------------------------------------------------------------

async def test_deleting_the_conversation_removes_its_files(services: Services) -> None:
    conv = await services.store.create(settings=SEEING)
    photo = await upload(services, jpeg(), "photo.jpg")
    doc = await upload(services, b"shopping list: eggs, milk\n", "list.txt")
    waiting = await upload(services, b"not sent yet\n", "later.txt")
    await answered(services, conv.id, "Look at these.", [photo.id, doc.id])
    assert len(stored(services, photo)) == 2 and len(stored(services, doc)) == 1

    assert await services.conversations.delete(conv.id)
    assert stored(services, photo) == [] and stored(services, doc) == []
    assert await services.attachments.store.get(photo.id) is None
    assert await services.attachments.store.get(doc.id) is None
    assert len(stored(services, waiting)) == 1  # another message's file, not sent yet, stays


async def test_an_edited_message_keeps_its_files_and_the_earlier_branch_keeps_its_own(services: Services) -> None:
    conv = await services.store.create(settings=SEEING)
    early = await upload(services, b"first notes\n", "first.txt")
    await answered(services, conv.id, "Here is the first file.", [early.id])
    later_doc = await upload(services, b"second notes\n", "second.txt")
    later_photo = await upload(services, jpeg("purple"), "second.jpg")
    await answered(services, conv.id, "And the second.", [later_doc.id, later_photo.id])
    history = await services.store.messages(conv.id)
    assert len(history) == 4

    regenerated = await services.conversations.regenerate(conv.id)  # keeps the last question and its files
    await asyncio.wait_for(regenerated.finished.wait(), 180)
    assert len(stored(services, later_doc)) == 1 and len(stored(services, later_photo)) == 2

    edited = await services.conversations.edit_and_resend(history[0].id, "Here is the first file, again.")
    await asyncio.wait_for(edited.finished.wait(), 180)
    assert edited.status == "done"
    after = await services.store.messages(conv.id)
    assert [(m.role, m.content if m.role == "user" else "") for m in after] == \
        [("user", "Here is the first file, again."), ("assistant", "")]
    kept = await services.attachments.store.for_conversation(conv.id)
    assert [a.path for a in kept[after[0].id]] == [early.path]  # the edited message still has its file
    assert [a.id for a in kept[history[0].id]] == [early.id]  # and so has the earlier version
    assert len(stored(services, later_doc)) == 1  # the earlier branch's files stay with it
    assert len(stored(services, early)) == 1
    await services.conversations.delete(conv.id)
    assert stored(services, early) == [] and stored(services, later_doc) == [] and stored(services, later_photo) == []
