"""Export and import of conversations: gridless JSON round trips (branches, leaf, files), Markdown
for reading, ChatGPT and Open WebUI exports, and hostile files that are refused with nothing written."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from backend.attachments.service import AttachmentService
from backend.chat.exchange import ConversationExchange, file_name
from backend.chat.exchange_read import MAX_CONVERSATIONS, MAX_DEPTH, MAX_IMPORT_BYTES, MAX_MESSAGES
from backend.core.config import Settings
from backend.core.errors import AppError, ErrorCode
from backend.storage.attachments import Attachment, AttachmentStore
from backend.storage.conversations import Conversation, ConversationStore, Message, MessageStatus
from backend.storage.db import Database
from backend.storage.media import MediaStore
from backend.storage.projects import ProjectStore
from tests.imagefiles import encoded

EXPORTS = Path(__file__).resolve().parents[2] / "data" / "exports"
SCRIPT = "<script>alert('hi')</script> & <b>bold</b>"


@pytest.fixture
def store(db: Database) -> ConversationStore:
    return ConversationStore(db)


@pytest.fixture
def attachments(tmp_path: Path, db: Database) -> AttachmentService:
    settings = Settings(data_dir=tmp_path, token="t" * 20, max_attachment_mb=2)
    return AttachmentService(settings, AttachmentStore(db), MediaStore(tmp_path / "media"))


@pytest.fixture
def exchange(store: ConversationStore, attachments: AttachmentService, db: Database) -> ConversationExchange:
    return ConversationExchange(store, attachments, ProjectStore(db))


# --- helpers -----------------------------------------------------------------------------------

def drawing() -> bytes:
    """A small PNG with few colours: stored as PNG, so its pixels survive exactly."""
    image = Image.new("RGB", (48, 32), (250, 250, 250))
    for x in range(10, 38):
        image.putpixel((x, 16), (200, 30, 30))
    return encoded(image, "PNG")


async def chunks(data: bytes) -> Any:
    yield data


async def attach(attachments: AttachmentService, message: Message, *files: tuple[str, bytes]) -> list[Attachment]:
    found = [await attachments.accept(chunks(data), name=name, uploader="owner") for name, data in files]
    await attachments.store.link(message.id, found)
    return found


async def sample(store: ConversationStore, attachments: AttachmentService) -> Conversation:
    """Two versions of the first question, two answers to the first, thinking, tools, a photo and a
    document; the branch shown is the second answer to the first question."""
    conv = await store.create(title="Fox facts: a/b\\c", system_prompt="Answer in one line.",
                              settings={"temperature": 0.3, "thinking": "on"})
    question = await store.add_message(conv.id, "user", f"What do foxes eat? {SCRIPT}")
    first = await store.add_message(conv.id, "assistant", "Mostly mice.")
    await store.save_progress(first.id, content="Mostly mice.", status=MessageStatus.DONE,
                              stats={"ttft_s": 0.2, "tokens_per_s": 31.5}, reasoning="Think of voles.")
    second = await store.add_message(conv.id, "assistant", "", parent_id=question.id)
    await store.save_progress(second.id, content="Small rodents, berries and insects.", status=MessageStatus.DONE,
                              reasoning="Foxes are omnivores.\nList the main foods.",
                              tools=[{"id": "c1", "name": "calculator", "arguments": '{"expression": "2+2"}',
                                      "result": "4", "ok": True}])
    await store.add_message(conv.id, "user", "And in winter?", parent_id=first.id)
    await store.add_message(conv.id, "user", "Where do foxes live?", parent_id=None)  # an edited first question
    await attach(attachments, question, ("drawing.png", drawing()), ("notes.txt", b"Red foxes hunt at dusk.\n"))
    await store.set_leaf(conv.id, second.id)
    return conv


async def tree(store: ConversationStore, conversation_id: str) -> list[tuple[Any, ...]]:
    """Every message by the path of texts that leads to it: the same for a copy with other ids."""
    messages = await store.all_messages(conversation_id)
    by_id = {m.id: m for m in messages}

    def path(m: Message) -> tuple[str, ...]:
        return (*path(by_id[m.parent_id]), m.content) if m.parent_id else (m.content,)

    return sorted((path(m), m.role, m.seq, m.reasoning, json.dumps(m.tools, sort_keys=True),
                   json.dumps(m.stats, sort_keys=True),
                   m.status.value) for m in messages)


async def shown(store: ConversationStore, conversation_id: str) -> list[str]:
    return [m.content for m in await store.messages(conversation_id)]


async def snapshot(db: Database, media: MediaStore) -> tuple[Any, ...]:
    counts = []
    for table in ("conversations", "messages", "attachments", "messages_fts"):
        row = await db.fetch_one(f"SELECT COUNT(*) FROM {table}")
        assert row is not None
        counts.append(int(row[0]))
    files = sorted(str(p.relative_to(media.root)) for p in media.root.rglob("*") if p.is_file()) \
        if media.root.exists() else []
    return (*counts, tuple(files))


async def refused(exchange: ConversationExchange, db: Database, data: bytes | str | Any,
                  code: ErrorCode = ErrorCode.BAD_REQUEST, *, project_id: str | None = None) -> str:
    """Import `data` (bytes, text, or a value written as JSON), expect `code`, and check that
    nothing was written: no conversation, message, attachment row or file."""
    raw = data if isinstance(data, bytes) else data.encode() if isinstance(data, str) else json.dumps(data).encode()
    before = await snapshot(db, exchange.attachments.media)
    with pytest.raises(AppError) as caught:
        await exchange.import_file(raw, project_id=project_id)
    assert caught.value.code == code, caught.value.message
    assert await snapshot(db, exchange.attachments.media) == before
    return caught.value.message


def gridless(messages: list[dict[str, Any]], attachments: list[dict[str, Any]] | None = None,
             **conversation: Any) -> dict[str, Any]:
    return {"format": "gridless.conversation", "version": 1,
            "conversation": {"title": "t", "created_at": 1700000000.0, **conversation},
            "messages": messages, "attachments": attachments or []}


def msg(key: str, parent: str | None = None, role: str = "user", text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"id": key, "parent_id": parent, "role": role, "content": text, "created_at": 1700000000.0, **extra}


def chatgpt_conversation(mapping: dict[str, Any], current: str | None) -> dict[str, Any]:
    return {"title": "c", "create_time": 1700000000.0, "update_time": 1700000001.0, "mapping": mapping,
            "current_node": current}


def node(key: str, parent: str | None, role: str = "user", text: str = "hi", **message: Any) -> dict[str, Any]:
    return {"id": key, "parent": parent, "children": [],
            "message": {"id": key, "author": {"role": role}, "create_time": 1700000000.0,
                        "content": {"content_type": "text", "parts": [text]}, "metadata": {}, **message}}


# --- gridless JSON ------------------------------------------------------------------------------

async def test_gridless_json_round_trip_keeps_tree_leaf_texts_and_files(
        exchange: ConversationExchange, store: ConversationStore, attachments: AttachmentService) -> None:
    original = await sample(store, attachments)
    exported = await exchange.export(original.id, "json")
    assert exported.media_type == "application/json" and exported.filename == "Fox facts a b c.json"
    document = json.loads(exported.data)
    assert document["format"] == "gridless.conversation" and len(document["messages"]) == 5
    assert all("data" in a for a in document["attachments"])

    [copy] = await exchange.import_file(exported.data)
    assert copy.id != original.id and copy.title == original.title
    assert copy.system_prompt == "Answer in one line." and copy.settings == {"temperature": 0.3, "thinking": "on"}
    assert await tree(store, copy.id) == await tree(store, original.id)
    assert await shown(store, copy.id) == await shown(store, original.id) == \
        [f"What do foxes eat? {SCRIPT}", "Small rodents, berries and insects."]
    old_ids = {m.id for m in await store.all_messages(original.id)}
    assert not old_ids & {m.id for m in await store.all_messages(copy.id)}  # new ids everywhere
    assert len(await store.branches(copy.id)) == len(await store.branches(original.id)) == 4  # versions stay

    before, after = await attachments.store.for_conversation(original.id), \
        await attachments.store.for_conversation(copy.id)
    [old_files], [(new_question, new_files)] = before.values(), after.items()
    assert new_question not in old_ids and [a.name for a in new_files] == ["drawing.png", "notes.txt"]
    old_photo, new_photo = (Image.open(attachments.media.path(f[0].path)) for f in (old_files, new_files))
    assert new_photo.size == old_photo.size and new_photo.tobytes() == old_photo.tobytes()
    assert new_files[0].path != old_files[0].path and new_files[0].thumb is not None
    assert attachments.media.path(new_files[1].path).read_bytes() == b"Red foxes hunt at dusk.\n"
    assert new_files[1].text == old_files[1].text == "Red foxes hunt at dusk.\n"


async def test_export_without_files_names_them_and_import_keeps_the_documents_text(
        exchange: ConversationExchange, store: ConversationStore, attachments: AttachmentService) -> None:
    original = await sample(store, attachments)
    exported = await exchange.export(original.id, "json", inline_files=False)
    entries = json.loads(exported.data)["attachments"]
    assert [(a["name"], "data" in a) for a in entries] == [("drawing.png", False), ("notes.txt", False)]
    assert entries[1]["text"] == "Red foxes hunt at dusk.\n"
    [copy] = await exchange.import_file(exported.data)
    [files] = (await attachments.store.for_conversation(copy.id)).values()
    assert [(a.kind, a.name, a.text) for a in files] == [("document", "notes.txt", "Red foxes hunt at dusk.\n")]


async def test_several_conversations_in_one_file_go_into_a_project(
        exchange: ConversationExchange, store: ConversationStore, db: Database) -> None:
    project = await ProjectStore(db).create("Imports")
    one = gridless([msg("a", text="first"), msg("b", "a", "assistant", "answer")], title="One", leaf_id="b")
    two = gridless([msg("x", text="alone")], title="Two")
    made = await exchange.import_file(json.dumps({"format": "gridless.conversations", "version": 1,
                                                  "conversations": [one, two]}).encode(), project_id=project.id)
    assert [(c.title, c.project_id) for c in made] == [("One", project.id), ("Two", project.id)]
    assert [await shown(store, c.id) for c in made] == [["first", "answer"], ["alone"]]
    assert {c.id for c in await store.list_recent(project_id=project.id)} == {c.id for c in made}
    message = await refused(exchange, db, one, ErrorCode.NOT_FOUND, project_id="no-such-project")
    assert "project" in message


async def test_export_of_an_unknown_conversation_is_not_found(exchange: ConversationExchange) -> None:
    for fmt in ("md", "json"):
        with pytest.raises(AppError) as caught:
            await exchange.export("nope", fmt)  # type: ignore[arg-type]
        assert caught.value.code == ErrorCode.NOT_FOUND


# --- Markdown ------------------------------------------------------------------------------------

async def test_markdown_shows_the_branch_with_thinking_tools_and_attachments(
        exchange: ConversationExchange, store: ConversationStore, attachments: AttachmentService) -> None:
    conv = await sample(store, attachments)
    exported = await exchange.export(conv.id, "md")
    text = exported.data.decode()
    assert exported.filename == "Fox facts a b c.md" and exported.media_type.startswith("text/markdown")
    assert text.startswith("# Fox facts: a/b\\c\n")
    assert "> **System prompt**\n>\n> Answer in one line." in text
    assert "## User · " in text and "## Assistant · " in text and " UTC" in text
    assert "> **Thinking**\n>\n> Foxes are omnivores.\n> List the main foods." in text
    assert '- `calculator` with `{"expression": "2+2"}` → `4`' in text
    assert "![drawing.png](drawing.png)" in text and "*Attached:* `notes.txt`" in text
    assert SCRIPT in text  # the words as they were; a Markdown reader escapes or shows them
    assert "Mostly mice." not in text and "Where do foxes live?" not in text  # other branches are not shown
    assert text.index("What do foxes eat?") < text.index("Thinking") < text.index("Small rodents")


def test_file_names_from_titles_are_safe() -> None:
    assert file_name("../../etc/passwd", "md") == "etc passwd.md"
    assert file_name('a\x00b<c>:"d"|e?*', "json") == "a b c d e.json"
    assert file_name("   ", "md") == "conversation.md"
    assert file_name("x" * 500, "md") == "x" * 80 + ".md"
    assert file_name("Città 🦊", "md") == "Città 🦊.md"


# --- other apps' exports ---------------------------------------------------------------------------

async def test_chatgpt_export_keeps_the_tree_and_the_current_node(
        exchange: ConversationExchange, store: ConversationStore) -> None:
    made = await exchange.import_file((EXPORTS / "chatgpt-conversations.json").read_bytes())
    assert [c.title for c in made] == ["Sourdough starter smells odd", "Savings after five years"]
    sourdough, savings = made
    assert sourdough.created_at == 1714550400.123 and sourdough.updated_at == 1714551290.5
    assert await shown(store, sourdough.id) == [
        "My sourdough starter smells like nail polish. Is it dead?",
        "It is alive. Nail polish smell = hungry yeast; feed it twice a day.",
        "[image]\n\nHere is how it looks now. How often should I feed it?",
        "Every 12 hours at room temperature, 1:1:1 by weight."]
    paths = [t[0] for t in await tree(store, sourdough.id)]
    assert len(paths) == 7  # hidden system and context nodes left out; thinking folded into its answer
    assert ("My starter smells like acetone.", "Acetone means hunger. Discard half and feed.") in paths
    assert ("My sourdough starter smells like nail polish. Is it dead?",
            "Not dead: an acetone smell means it is hungry. Feed it.") in paths
    last = (await store.messages(sourdough.id))[-1]
    assert last.reasoning == "Judging the photo\n\nBubbles on top, liquid layer: it is hungry."
    assert last.stats == {"model": "o3"} and last.created_at == 1714551203.4
    assert len(await store.branches(sourdough.id)) == 4  # two first questions, two answers to the first
    question, answer = await store.messages(savings.id)
    assert question.role == "user" and answer.role == "assistant" and answer.parent_id == question.id
    assert answer.content == "```\nround(1000 * 1.1 ** 5, 2)\n```\n\nThey become **1610.51 euros**."


async def test_chatgpt_leaf_falls_back_to_the_nearest_kept_message(
        exchange: ConversationExchange, store: ConversationStore) -> None:
    mapping = {"r": {"id": "r", "parent": None, "children": ["u"], "message": None},
               "u": node("u", "r", text="question"), "a": node("a", "u", "assistant", "answer"),
               "t": node("t", "a", "tool", "tool output"), "b": node("b", "u", "assistant", "other answer")}
    [conv] = await exchange.import_file(json.dumps([chatgpt_conversation(mapping, "t")]).encode())
    assert await shown(store, conv.id) == ["question", "answer"]


async def test_open_webui_export_keeps_the_tree_and_the_current_message(
        exchange: ConversationExchange, store: ConversationStore) -> None:
    [chat] = await exchange.import_file((EXPORTS / "open-webui-chat-export.json").read_bytes())
    assert chat.title == "Two days in Lisbon" and chat.created_at == 1719820800
    question, answer = await store.messages(chat.id)  # currentId is the first answer, not the newest
    assert question.content == "Plan two days in Lisbon for me."
    assert answer.content == "Day 1: Alfama and the castle. Day 2: Belém and its tower."
    assert answer.reasoning == "The person wants a short plan.\nTwo days: old town, then Belém."
    assert answer.stats == {"model": "llama3.1:8b"} and answer.created_at == 1719820805
    paths = [t[0] for t in await tree(store, chat.id)]
    assert len(paths) == 5
    later = ("Plan two days in Lisbon for me.", "Day 1: Baixa, Chiado, sunset at a miradouro. Day 2: Sintra.",
             "<script>alert('pastel')</script> and where do I eat pastéis de nata?")
    assert later in paths and (*later, "In Belém, at the old bakery by the monastery.") in paths
    single = json.loads((EXPORTS / "open-webui-chat-export.json").read_text())[0]
    [again] = await exchange.import_file(json.dumps(single).encode())  # one chat, not in a list
    assert await tree(store, again.id) == await tree(store, chat.id)


async def test_script_tags_are_stored_as_the_text_they_are(
        exchange: ConversationExchange, store: ConversationStore) -> None:
    [conv] = await exchange.import_file(json.dumps(gridless([msg("a", text=SCRIPT)], title=SCRIPT)).encode())
    assert conv.title == SCRIPT and await shown(store, conv.id) == [SCRIPT]
    exported = await exchange.export(conv.id, "json")
    [again] = await exchange.import_file(exported.data)
    assert await shown(store, again.id) == [SCRIPT]


# --- hostile files ---------------------------------------------------------------------------------

async def test_a_file_over_the_limit_is_refused_before_it_is_read(
        exchange: ConversationExchange, db: Database) -> None:
    message = await refused(exchange, db, b"[" + b" " * MAX_IMPORT_BYTES + b"]", ErrorCode.FILE_TOO_LARGE)
    assert "50 MB" in message


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000, "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
                                  '{"a": ' * 5000 + "1" + "}" * 5000])
async def test_json_nested_too_deeply_is_refused(exchange: ConversationExchange, db: Database, text: str) -> None:
    assert "nested" in await refused(exchange, db, text)


async def test_brackets_inside_strings_do_not_count_as_nesting(
        exchange: ConversationExchange, store: ConversationStore) -> None:
    text = "[[[{{{" * 200 + '\\"]]'
    [conv] = await exchange.import_file(json.dumps(gridless([msg("a", text=text)])).encode())
    assert await shown(store, conv.id) == [text]


@pytest.mark.parametrize(("data", "expected"), [
    (b"# My chat\n\nhello", "not a conversation export gridless can read"),
    ({"some": "object"}, "not a conversation export gridless can read"),
    ([1, 2, 3], "not a conversation export gridless can read"),
    ("just text", "not a conversation export gridless can read"),
    ([], "no conversations"),
    ({"format": "gridless.conversation", "version": 2}, "version 2"),
    (b'[{"mapping": {}, "x": NaN}]', "NaN"),
])
async def test_what_is_not_an_export_is_refused(exchange: ConversationExchange, db: Database, data: Any,
                                                  expected: str) -> None:
    assert expected in await refused(exchange, db, data)


@pytest.mark.parametrize(("document", "expected"), [
    ("a string", "not a conversation export"),
    ({**gridless([]), "messages": "not a list"}, "'messages' should be a list, not text"),
    (gridless(["a string"]), "message 1 should be a JSON object, not text"),
    ({k: v for k, v in gridless([msg("a")]).items() if k != "conversation"}, "'conversation' should be a JSON object"),
    (gridless([{"role": "user", "content": "no id"}]), "'id' should be text, not null"),
    (gridless([msg("a", content=42)]), "'content' should be text, not a number"),
    (gridless([msg("a"), msg("b", "ghost")]), "follows 'ghost', which is not in the file"),
    (gridless([msg("a", "b"), msg("b", "a")]), "its own ancestor"),
    (gridless([msg("a", "a")]), "its own ancestor"),
    (gridless([msg("a"), msg("a", text="again")]), "appears twice"),
    (gridless([msg("a")], leaf_id="elsewhere"), "not in the file"),
    (gridless([msg("a")], [{"message_id": "ghost", "name": "x.txt", "kind": "document"}]), "not in the file"),
    (gridless([msg("a")], [{"message_id": "a", "name": "x.png", "kind": "image", "data": "***"}]), "base64"),
    (gridless([msg("a", status="thinking")]), "status 'thinking'"),
    (gridless([msg("a", tools="calculator")]), "'tools' should be a list"),
])
async def test_wrong_shapes_are_refused(exchange: ConversationExchange, db: Database, document: Any,
                                        expected: str) -> None:
    assert expected in await refused(exchange, db, document)


@pytest.mark.parametrize(("role", "fmt"), [("tool", "gridless"), ("developer", "gridless"), ("critic", "chatgpt"),
                                           ("function", "open-webui"), (None, "gridless")])
async def test_roles_other_than_user_assistant_system_are_refused(
        exchange: ConversationExchange, db: Database, role: str | None, fmt: str) -> None:
    if fmt == "gridless":
        document: Any = gridless([msg("a"), msg("b", "a", role)])  # type: ignore[arg-type]
    elif fmt == "chatgpt":
        document = [chatgpt_conversation({"u": node("u", None), "x": node("x", "u", role or "")}, "x")]
    else:
        document = [{"title": "t", "chat": {"history": {"currentId": "b", "messages": {
            "a": {"id": "a", "parentId": None, "role": "user", "content": "hi"},
            "b": {"id": "b", "parentId": "a", "role": role, "content": "hi"}}}}}]
    assert f"role {str(role)!r} is not one gridless knows" in await refused(exchange, db, document)


@pytest.mark.parametrize("when", [1e20, -5, "yesterday", True, 1e300])
async def test_times_out_of_range_are_refused(exchange: ConversationExchange, db: Database, when: Any) -> None:
    message = await refused(exchange, db, gridless([msg("a", created_at=when)]))
    assert "'created_at'" in message and ("out of range" in message or "should be a time" in message)
    chatgpt = chatgpt_conversation({"u": node("u", None)}, "u")
    chatgpt["mapping"]["u"]["message"]["create_time"] = when
    assert "'create_time'" in await refused(exchange, db, [chatgpt])


async def test_text_that_is_not_utf8_or_not_unicode_is_refused(exchange: ConversationExchange, db: Database) -> None:
    good = json.dumps(gridless([msg("a", text="caffè")]), ensure_ascii=False).encode()
    assert "not UTF-8" in await refused(exchange, db, good.replace("è".encode(), b"\xe8"))
    lone = json.dumps(gridless([msg("a", text="X")])).replace('"X"', '"\\ud800"')
    assert "not valid Unicode" in await refused(exchange, db, lone)


async def test_a_key_twice_in_one_object_is_refused(exchange: ConversationExchange, db: Database) -> None:
    one, two = json.dumps(node("u", None, text="one")), json.dumps(node("u", None, text="two"))
    text = '[{"title": "c", "mapping": {"u": ' + one + ', "u": ' + two + '}, "current_node": "u"}]'
    assert "'u' appears twice" in await refused(exchange, db, text)


async def test_chatgpt_and_open_webui_shape_errors_are_refused(exchange: ConversationExchange, db: Database) -> None:
    assert "which is not in the file" in await refused(exchange, db, [chatgpt_conversation(
        {"u": node("u", None), "a": node("a", "missing", "assistant")}, "a")])
    assert "its own ancestor" in await refused(exchange, db, [chatgpt_conversation(
        {"u": node("u", "a"), "a": node("a", "u", "assistant")}, "a")])
    assert "current node 'zzz'" in await refused(exchange, db, [chatgpt_conversation({"u": node("u", None)}, "zzz")])
    assert "should be a JSON object" in await refused(exchange, db, [chatgpt_conversation({"u": "text"}, "u")])
    assert "current message 'gone'" in await refused(exchange, db, [{"title": "t", "chat": {"history": {
        "currentId": "gone", "messages": {"a": {"id": "a", "parentId": None, "role": "user", "content": "x"}}}}}])


async def test_huge_counts_are_refused_with_the_numbers(exchange: ConversationExchange, db: Database) -> None:
    many = [chatgpt_conversation({"u": node("u", None)}, "u")] * (MAX_CONVERSATIONS + 1)
    message = await refused(exchange, db, many)
    assert f"{MAX_CONVERSATIONS + 1:,} conversations" in message and f"{MAX_CONVERSATIONS:,}" in message
    chain = [msg("m0")] + [msg(f"m{i}", f"m{i - 1}") for i in range(1, MAX_MESSAGES + 1)]
    message = await refused(exchange, db, gridless(chain))
    assert f"{MAX_MESSAGES + 1:,} messages" in message and f"{MAX_MESSAGES:,}" in message


async def test_a_bad_file_anywhere_leaves_nothing_behind(
        exchange: ConversationExchange, store: ConversationStore, attachments: AttachmentService,
        db: Database) -> None:
    await sample(store, attachments)  # something already there, which must stay as it is
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("inside.txt", "hello")
    good = gridless([msg("a")], [{"message_id": "a", "name": "ok.png", "kind": "image",
                                  "data": base64.b64encode(drawing()).decode()}])
    bad = gridless([msg("b")], [{"message_id": "b", "name": "report.pdf", "kind": "document",
                                 "data": base64.b64encode(archive.getvalue()).decode()}])
    message = await refused(exchange, db, {"format": "gridless.conversations", "version": 1,
                                           "conversations": [good, bad]}, ErrorCode.NOT_A_DOCUMENT)
    assert "conversation 2" in message and "'report.pdf' was refused" in message
    too_big = gridless([msg("c")], [{"message_id": "c", "name": "big.txt", "kind": "document",
                                     "data": base64.b64encode(b"x" * (3 * 1024 * 1024)).decode()}])
    assert "2 MB" in await refused(exchange, db, too_big, ErrorCode.FILE_TOO_LARGE)
    broken = chatgpt_conversation({"u": node("u", None)}, "u")
    broken["mapping"]["u"]["message"]["content"]["parts"] = "not a list"
    valid_then_broken = [chatgpt_conversation({"u": node("u", None)}, "u"), broken]
    assert "ChatGPT conversation 2" in await refused(exchange, db, valid_then_broken)


async def test_the_store_writes_all_conversations_or_none(store: ConversationStore, db: Database) -> None:
    def conversation(key: str) -> Conversation:
        return Conversation(id=key, title=key, system_prompt="", settings={}, created_at=1.0, updated_at=1.0,
                            leaf_id=f"{key}-m")

    good = (conversation("c1"), [Message(id="c1-m", conversation_id="c1", seq=1, role="user", content="x")])
    broken = (conversation("c2"), [Message(id="c2-m", conversation_id="c2", seq=2, role="user", content="y",
                                           parent_id="nowhere")])
    before = await snapshot(db, MediaStore(Path("/nonexistent")))
    with pytest.raises(Exception, match="FOREIGN KEY"):
        await store.insert_conversations([good, broken])
    assert await snapshot(db, MediaStore(Path("/nonexistent"))) == before
    await store.insert_conversations([good])
    assert await shown(store, "c1") == ["x"] and (await store.get("c1")) is not None


async def test_pathological_text_is_read_in_linear_time(
        exchange: ConversationExchange, store: ConversationStore, db: Database) -> None:
    """Inputs that would make a naive scanner or a lazy regex quadratic (each finishes in well under a
    second here; quadratic, they would take hours)."""
    assert "not JSON" in await refused(exchange, db, '["' + '\\"' * 1_000_000)
    openings = '<details type="reasoning">' * 200_000
    closed = '<details type="reasoning"><summary>s</summary>\n> a\n</details>\n' * 100_000 + "the answer"
    chat = {"title": "t", "chat": {"history": {"currentId": "b", "messages": {
        "a": {"id": "a", "parentId": None, "role": "assistant", "content": openings},
        "b": {"id": "b", "parentId": "a", "role": "assistant", "content": closed}}}}}
    [conv] = await exchange.import_file(json.dumps([chat]).encode())
    first, second = await store.messages(conv.id)
    assert first.content == openings and first.reasoning == ""
    assert second.content == "the answer" and second.reasoning == "\n\n".join(["a"] * 100_000)
