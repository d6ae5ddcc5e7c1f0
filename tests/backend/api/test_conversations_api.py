"""`/api/conversations`, `/api/projects` and `/api/presets` through a real server and its security
gate: the owner with the bearer token, a paired device with its cookie. Streaming runs the bundled
model (marked `engine`) with a handful of tokens per answer."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from backend.security.devices import DeviceStore
from backend.storage.conversations import ConversationStore
from backend.storage.db import Database
from tests.loops import run_alone
from tests.server import ServerProcess
from tests.threads import ENGINE_THREADS


@dataclass(frozen=True)
class Srv:
    server: ServerProcess
    device_cookie: str

    @property
    def base(self) -> str:
        return self.server.base


async def _pair_device(db_path: Path) -> str:
    """A device as pairing leaves it (approved, with its cookie's token); the server loads it at start."""
    db = Database(db_path)
    await db.open()
    try:
        _, token = await DeviceStore(db, 3600).add("Tablet", "127.0.0.1")
        return f"{DeviceStore.COOKIE}={token}"
    finally:
        await db.close()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Srv]:
    data = tmp_path_factory.mktemp("conversations-api") / "data"
    data.mkdir()
    cookie = run_alone(_pair_device(data / "gridless.db"))
    with ServerProcess(data_dir=data, env={"GRIDLESS_THREADS": str(ENGINE_THREADS)}) as server:
        yield Srv(server, cookie)


def api(srv: Srv, method: str, path: str, *, headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
    return httpx.request(method, f"{srv.base}{path}", headers={**srv.server.headers(), **(headers or {})},
                         timeout=60, **kw)


def device(srv: Srv, method: str, path: str, *, origin: bool = True, **kw: Any) -> httpx.Response:
    """As the paired tablet's page would ask: its cookie, and its own origin on writes."""
    headers = {"Cookie": srv.device_cookie, **({"Origin": srv.base} if origin else {})}
    return httpx.request(method, f"{srv.base}{path}", headers=headers, timeout=60, **kw)


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def error_of(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    error: dict[str, str] = response.json()["error"]
    assert set(error) == {"code", "message"} and error["message"]
    return error


def new_conversation(srv: Srv, **body: Any) -> dict[str, Any]:
    return ok(api(srv, "POST", "/api/conversations", json=body), 201)  # type: ignore[no-any-return]


async def _seed(db_path: Path, title: str, turns: list[tuple[str, str]]) -> tuple[str, list[str]]:
    """A conversation written as the chat leaves it (user and assistant turns), beside the running
    server on the same database file; returns its id and the messages' ids."""
    db = Database(db_path)
    await db.open()
    try:
        store = ConversationStore(db)
        conversation = await store.create(title=title)
        ids = [(await store.add_message(conversation.id, role, text)).id  # type: ignore[arg-type]
               for role, text in turns]
        return conversation.id, ids
    finally:
        await db.close()


async def _add_version(db_path: Path, conversation_id: str, parent_id: str, text: str) -> str:
    """Another answer to the same message: a sibling, as regenerating leaves it."""
    db = Database(db_path)
    await db.open()
    try:
        return (await ConversationStore(db).add_message(conversation_id, "assistant", text, parent_id=parent_id)).id
    finally:
        await db.close()


def seed(srv: Srv, title: str, turns: list[tuple[str, str]]) -> tuple[str, list[str]]:
    return run_alone(_seed(srv.server.data_dir / "gridless.db", title, turns))


# --- conversations --------------------------------------------------------------------------------

def test_create_read_change_and_delete(srv: Srv) -> None:
    made = new_conversation(srv, title="  Holiday plans  ")
    assert made["title"] == "Holiday plans" and made["messages"] == [] and made["project_id"] is None
    assert (made["pinned"], made["archived"], made["answering"]) == (False, False, None)
    plain = ok(api(srv, "POST", "/api/conversations"), 201)  # no body at all
    assert plain["title"] == "New chat" and plain["id"] != made["id"]
    assert ok(api(srv, "GET", f"/api/conversations/{made['id']}")) == made

    changed = ok(api(srv, "PATCH", f"/api/conversations/{made['id']}",
                     json={"title": "Trip", "system_prompt": "Be brief.", "pinned": True,
                           "settings": {"temperature": 0.1, "max_tokens": 64}}))
    assert (changed["title"], changed["system_prompt"], changed["pinned"]) == ("Trip", "Be brief.", True)
    assert changed["settings"] == {"temperature": 0.1, "max_tokens": 64}
    removed = ok(api(srv, "PATCH", f"/api/conversations/{made['id']}", json={"settings": {"temperature": None}}))
    assert removed["settings"] == {"max_tokens": 64}

    listed = ok(api(srv, "GET", "/api/conversations", params={"limit": 200}))["conversations"]
    assert listed[0]["id"] == made["id"]  # pinned first
    assert set(listed[0]) == {"id", "title", "project_id", "pinned", "archived", "created_at", "updated_at"}

    ok(api(srv, "PATCH", f"/api/conversations/{made['id']}", json={"archived": True}))
    assert made["id"] not in [c["id"] for c in ok(api(srv, "GET", "/api/conversations",
                                                      params={"limit": 200}))["conversations"]]
    archived = ok(api(srv, "GET", "/api/conversations", params={"archived": 1, "limit": 200}))["conversations"]
    assert made["id"] in [c["id"] for c in archived]

    assert ok(api(srv, "DELETE", f"/api/conversations/{made['id']}")) == {"id": made["id"], "deleted": True}
    assert error_of(api(srv, "GET", f"/api/conversations/{made['id']}"), 404)["code"] == "not_found"
    assert error_of(api(srv, "DELETE", f"/api/conversations/{made['id']}"), 404)["code"] == "not_found"


def test_paging_within_a_project(srv: Srv) -> None:
    project = ok(api(srv, "POST", "/api/projects", json={"name": "Paging"}), 201)
    made = [new_conversation(srv, title=f"page {i}", project_id=project["id"])["id"] for i in range(5)]
    pages = [ok(api(srv, "GET", "/api/conversations", params={"project": project["id"], "limit": 2, "offset": o}))
             for o in (0, 2, 4)]
    assert [p["has_more"] for p in pages] == [True, True, False]
    seen = [c["id"] for p in pages for c in p["conversations"]]
    assert seen == made[::-1]  # newest first, each once
    assert all(c["project_id"] == project["id"] for p in pages for c in p["conversations"])
    outside = ok(api(srv, "GET", "/api/conversations", params={"project": "none", "limit": 200}))["conversations"]
    assert not set(made) & {c["id"] for c in outside}


def test_projects_and_presets(srv: Srv) -> None:
    presets = ok(api(srv, "GET", "/api/presets"))["presets"]
    translator = next(p for p in presets if p["key"] == "translator")
    assert translator["settings"] == {"temperature": 0.2, "thinking": "off"} and translator["system_prompt"]

    project = ok(api(srv, "POST", "/api/projects", json={"preset": "translator", "settings": {"max_tokens": 50}}),
                 201)
    assert (project["name"], project["preset"], project["system_prompt"]) == \
        ("Translator", "translator", translator["system_prompt"])
    assert project["settings"] == {"temperature": 0.2, "thinking": "off", "max_tokens": 50}

    chat = new_conversation(srv, project_id=project["id"])
    assert chat["project_id"] == project["id"] and chat["system_prompt"] == translator["system_prompt"]
    assert chat["settings"] == project["settings"]

    changed = ok(api(srv, "PATCH", f"/api/projects/{project['id']}",
                     json={"name": "Italian", "settings": {"thinking": None, "top_p": 0.5}}))
    assert changed["name"] == "Italian" and changed["settings"] == {"temperature": 0.2, "max_tokens": 50, "top_p": 0.5}
    assert ok(api(srv, "GET", f"/api/conversations/{chat['id']}"))["settings"] == project["settings"]  # a copy
    assert ok(api(srv, "GET", f"/api/projects/{project['id']}"))["conversations"] == 1
    assert project["id"] in [p["id"] for p in ok(api(srv, "GET", "/api/projects"))["projects"]]

    out = ok(api(srv, "PATCH", f"/api/conversations/{chat['id']}", json={"project_id": None}))
    assert out["project_id"] is None
    assert chat["id"] in [c["id"] for c in ok(api(srv, "GET", "/api/conversations",
                                                  params={"project": "none", "limit": 200}))["conversations"]]
    back = ok(api(srv, "PATCH", f"/api/conversations/{chat['id']}", json={"project_id": project["id"]}))
    assert back["project_id"] == project["id"]
    assert ok(api(srv, "PATCH", f"/api/conversations/{chat['id']}", json={"title": "x"}))["project_id"] == \
        project["id"]  # left out: unchanged

    assert ok(api(srv, "DELETE", f"/api/projects/{project['id']}"))["deleted"] is True
    assert ok(api(srv, "GET", f"/api/conversations/{chat['id']}"))["project_id"] is None  # the chat stays
    assert error_of(api(srv, "GET", f"/api/projects/{project['id']}"), 404)["code"] == "not_found"


@pytest.mark.parametrize(("body", "param"), [
    ({"preset": "pirate"}, "preset"),
    ({}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"name": "p", "settings": {"temperature": 5}}, "settings.temperature"),
    ({"name": "p", "settings": {"colour": "blue"}}, "settings.colour"),
    ({"name": "p", "settings": {"model": "no-such-model"}}, "settings.model"),
    ({"name": "p", "settings": {"tools": "sometimes"}}, "settings.tools"),
    ({"name": "p", "owner": "me"}, "owner"),
])
def test_project_refusals_name_the_field(srv: Srv, body: dict[str, Any], param: str) -> None:
    error = error_of(api(srv, "POST", "/api/projects", json=body), 422)
    assert error["code"] == "invalid_value" and error["message"].startswith(f"{param}:"), error


def test_unknown_projects(srv: Srv) -> None:
    for method, body in (("GET", None), ("PATCH", {"name": "x"}), ("DELETE", None)):
        assert error_of(api(srv, method, "/api/projects/nope", json=body), 404)["code"] == "not_found"
    assert error_of(api(srv, "POST", "/api/conversations", json={"project_id": "nope"}), 404)["code"] == "not_found"
    assert error_of(api(srv, "GET", "/api/conversations", params={"project": "nope"}), 404)["code"] == "not_found"
    chat = new_conversation(srv)
    error = error_of(api(srv, "PATCH", f"/api/conversations/{chat['id']}", json={"project_id": "nope"}), 404)
    assert "project" in error["message"]


# --- search and branches --------------------------------------------------------------------------

def test_search_gives_plain_snippets_with_highlight_ranges(srv: Srv) -> None:
    cid, (question, answer) = seed(srv, "Zebracorn <b>facts</b>", [
        ("user", "Tell me about the zebracorn, please <script>alert(1)</script>"),
        ("assistant", "A zebracorn is striped.")])
    ok(api(srv, "PATCH", f"/api/conversations/{cid}", json={"archived": True}))
    found = ok(api(srv, "GET", "/api/conversations/search", params={"q": "zebracorn"}))
    hits = [h for h in found["hits"] if h["conversation_id"] == cid]
    assert [h["message_id"] for h in hits] == [None, answer, question]  # the title, then newest first
    for hit in hits:
        assert "\x02" not in hit["snippet"] and "\x03" not in hit["snippet"]
        assert hit["highlights"], hit
        assert [hit["snippet"][a:b].lower() for a, b in hit["highlights"]] == ["zebracorn"]
        assert hit["archived"] is True and hit["title"] == "Zebracorn <b>facts</b>"
    assert hits[0]["role"] == "title" and hits[0]["snippet"] == "Zebracorn <b>facts</b>"  # text, never markup
    assert [h["role"] for h in hits[1:]] == ["assistant", "user"]
    assert "<script>" in hits[2]["snippet"]
    assert set(hits[1]) == {"conversation_id", "title", "message_id", "role", "snippet", "highlights",
                            "created_at", "archived"}

    typing = ok(api(srv, "GET", "/api/conversations/search", params={"q": "zebrac"}))["hits"]  # a prefix
    assert [h["message_id"] for h in typing if h["conversation_id"] == cid] == [None, answer, question]
    assert typing[-1]["snippet"][slice(*typing[-1]["highlights"][0])] == "zebracorn"
    one = ok(api(srv, "GET", "/api/conversations/search", params={"q": "zebracorn", "limit": 1}))["hits"]
    assert len(one) == 1
    assert ok(api(srv, "GET", "/api/conversations/search", params={"q": "?!"}))["hits"] == []
    for params in ({}, {"q": ""}, {"q": "z" * 201}, {"q": "z", "limit": 0}, {"q": "z", "limit": 101}):
        assert error_of(api(srv, "GET", "/api/conversations/search", params=params), 422)["code"] == "invalid_value"


def test_versions_and_switching_branches(srv: Srv) -> None:
    cid, (question, first) = seed(srv, "versions", [("user", "Name a colour."), ("assistant", "Red.")])
    second = run_alone(_add_version(srv.server.data_dir / "gridless.db", cid, question, "Blue."))
    shown = ok(api(srv, "GET", f"/api/conversations/{cid}"))
    assert [m["id"] for m in shown["messages"]] == [question, second] and shown["leaf_id"] == second
    assert "branch" not in shown["messages"][0]
    assert shown["messages"][1]["branch"] == {"index": 1, "count": 2, "ids": [first, second]}
    assert shown["messages"][1]["parent_id"] == question and shown["messages"][1]["content"] == "Blue."

    switched = ok(api(srv, "POST", f"/api/conversations/{cid}/switch", json={"message_id": first}))
    assert [m["content"] for m in switched["messages"]] == ["Name a colour.", "Red."]
    assert switched["messages"][1]["branch"]["index"] == 0 and switched["leaf_id"] == first
    assert ok(api(srv, "GET", f"/api/conversations/{cid}")) == switched
    every = ok(api(srv, "GET", f"/api/conversations/{cid}", params={"all": 1}))["messages"]
    assert [m["id"] for m in every] == [question, first, second]

    other, (elsewhere, _) = seed(srv, "other", [("user", "hi"), ("assistant", "hello")])
    for message_id in ("nope", elsewhere):
        error = error_of(api(srv, "POST", f"/api/conversations/{cid}/switch", json={"message_id": message_id}), 404)
        assert error["code"] == "not_found"
    assert error_of(api(srv, "POST", f"/api/conversations/{cid}/messages/{elsewhere}/edit", json={"text": "x"}),
                    404)["code"] == "not_found"
    assert error_of(api(srv, "POST", f"/api/conversations/{cid}/messages/{first}/edit", json={"text": "x"}),
                    400)["code"] == "bad_request"  # an answer is not yours to edit
    # events of a conversation with no answer running: the last answer shown, as saved
    events = sse_events(api(srv, "GET", f"/api/conversations/{other}/events"))
    assert [e for e, _ in events] == ["message", "delta", "done"]
    assert events[1][1]["text"] == "hello" and events[2][1]["status"] == "done"


# --- refusals -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "suffix", "body"), [
    ("GET", "", None), ("PATCH", "", {"title": "x"}), ("DELETE", "", None),
    ("POST", "/messages", {"text": "hi"}), ("POST", "/regenerate", None), ("POST", "/stop", None),
    ("POST", "/switch", {"message_id": "x"}), ("GET", "/events", None),
    ("POST", "/messages/x/edit", {"text": "hi"}), ("GET", "/export", None),
])
def test_unknown_conversation_is_404(srv: Srv, method: str, suffix: str, body: Any) -> None:
    error = error_of(api(srv, method, f"/api/conversations/0123456789abcdef{suffix}", json=body), 404)
    assert error["code"] == "not_found"


def test_bad_requests(srv: Srv) -> None:
    chat = new_conversation(srv)
    path = f"/api/conversations/{chat['id']}"
    assert error_of(api(srv, "POST", f"{path}/messages", json={"text": "   "}), 400)["message"] == \
        "the message is empty"
    too_long = error_of(api(srv, "POST", f"{path}/messages", json={"text": "x" * 100_001}), 400)
    assert too_long["code"] == "bad_request" and "too long" in too_long["message"]
    eleven = {"text": "hi", "attachment_ids": ["a"] * 11}
    too_many = error_of(api(srv, "POST", f"{path}/messages", json=eleven), 400)
    assert "at most 10 files" in too_many["message"]
    gone = error_of(api(srv, "POST", f"{path}/messages", json={"text": "hi", "attachment_ids": ["nope"]}), 404)
    assert "attach it again" in gone["message"]
    broken = api(srv, "POST", f"{path}/messages", content=b"{not json", headers={"Content-Type": "application/json"})
    assert error_of(broken, 422)["code"] == "invalid_json"
    assert error_of(api(srv, "POST", f"{path}/messages", json={"words": "hi"}), 422)["message"].startswith("text:")
    assert error_of(api(srv, "POST", f"{path}/messages", json={"text": 5}), 422)["message"].startswith("text:")
    assert error_of(api(srv, "PATCH", path, json={"pinned": "maybe"}), 422)["message"].startswith("pinned:")
    assert error_of(api(srv, "PATCH", path, json={"title": ""}), 422)["message"].startswith("title:")
    assert error_of(api(srv, "PATCH", path, json={"settings": {"max_tokens": 0}}), 422)["message"] \
        .startswith("settings.max_tokens:")
    assert error_of(api(srv, "POST", f"{path}/regenerate"), 400)["message"] == "there is no message to answer yet"
    assert error_of(api(srv, "POST", f"{path}/stop"), 409)["code"] == "not_running"
    assert error_of(api(srv, "GET", f"{path}/events"), 409)["code"] == "not_running"
    for params in ({"limit": 0}, {"limit": 201}, {"offset": -1}, {"archived": "perhaps"}):
        assert error_of(api(srv, "GET", "/api/conversations", params=params), 422)["code"] == "invalid_value"
    assert ok(api(srv, "GET", path))["messages"] == []  # nothing refused was kept


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), "orange").save(out, "JPEG")
    return out.getvalue()


def test_a_paired_device_uses_the_same_chats(srv: Srv) -> None:
    mine = new_conversation(srv, title="shared with the tablet")
    listed = ok(device(srv, "GET", "/api/conversations", params={"limit": 200}))["conversations"]
    assert mine["id"] in [c["id"] for c in listed]
    assert ok(device(srv, "GET", f"/api/conversations/{mine['id']}"))["title"] == "shared with the tablet"
    made = ok(device(srv, "POST", "/api/conversations", json={"title": "from the tablet"}), 201)
    assert made["id"] in [c["id"] for c in ok(api(srv, "GET", "/api/conversations",
                                                  params={"limit": 200}))["conversations"]]
    project = ok(device(srv, "POST", "/api/projects", json={"preset": "tutor"}), 201)
    assert project["preset"] == "tutor"
    # another site's page cannot write with the tablet's cookie
    assert error_of(device(srv, "POST", "/api/conversations", origin=False), 403)["code"] == "cross_origin"
    assert error_of(device(srv, "GET", "/api/models", origin=False), 403)["code"] == "owner_only"
    assert error_of(httpx.get(f"{srv.base}/api/conversations"), 401)["code"] == "unauthorized"

    photo = ok(device(srv, "POST", "/api/attachments", params={"name": "cat.jpg"}, content=jpeg()), 201)
    send = {"text": "What is this?", "attachment_ids": [photo["id"]]}
    # the owner cannot send the tablet's file; the tablet can, but the model cannot see it
    taken = error_of(api(srv, "POST", f"/api/conversations/{made['id']}/messages", json=send), 404)
    assert "attach it again" in taken["message"]
    blind = error_of(device(srv, "POST", f"/api/conversations/{made['id']}/messages", json=send), 400)
    assert blind["code"] == "model_cannot_see"
    assert ok(device(srv, "GET", f"/api/conversations/{made['id']}"))["messages"] == []


# --- export and import ----------------------------------------------------------------------------

EXPORTS = Path(__file__).resolve().parents[2] / "data" / "exports"


def test_export_as_markdown_and_json_and_import_it_back(srv: Srv) -> None:
    cid, (question, _) = seed(srv, "Città / rivers", [("user", "Name a river."), ("assistant", "The Po.")])
    run_alone(_add_version(srv.server.data_dir / "gridless.db", cid, question, "The Arno."))
    md = api(srv, "GET", f"/api/conversations/{cid}/export", params={"format": "md"})
    assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
    assert md.headers["content-disposition"].startswith("attachment; filename*=UTF-8''")
    assert "Name a river." in md.text and "The Arno." in md.text and "The Po." not in md.text  # the branch shown

    exported = api(srv, "GET", f"/api/conversations/{cid}/export")  # json by default: every branch
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/json"
    document = exported.json()
    assert [m["content"] for m in document["messages"]] == ["Name a river.", "The Po.", "The Arno."]

    project = ok(api(srv, "POST", "/api/projects", json={"name": "Imported"}), 201)
    made = ok(api(srv, "POST", "/api/conversations/import", params={"project": project["id"]},
                  content=exported.content), 201)["conversations"]
    assert [(c["title"], c["project_id"]) for c in made] == [("Città / rivers", project["id"])]
    assert made[0]["id"] != cid
    again = ok(api(srv, "GET", f"/api/conversations/{made[0]['id']}", params={"all": 1}))["messages"]
    assert [m["content"] for m in again] == ["Name a river.", "The Po.", "The Arno."]
    assert [m["content"] for m in ok(api(srv, "GET", f"/api/conversations/{made[0]['id']}"))["messages"]] == \
        ["Name a river.", "The Arno."]


def test_import_another_apps_export_and_refusals(srv: Srv) -> None:
    made = ok(api(srv, "POST", "/api/conversations/import",
                  content=(EXPORTS / "chatgpt-conversations.json").read_bytes()), 201)["conversations"]
    assert [c["title"] for c in made] == ["Sourdough starter smells odd", "Savings after five years"]
    assert all(c["project_id"] is None for c in made)
    before = ok(api(srv, "GET", "/api/conversations", params={"limit": 200}))["conversations"]
    assert error_of(api(srv, "POST", "/api/conversations/import", content=b""), 400)["code"] == "bad_request"
    assert error_of(api(srv, "POST", "/api/conversations/import", content=b"{not json"), 400)["code"] == \
        "bad_request"
    assert error_of(api(srv, "POST", "/api/conversations/import", params={"project": "nope"}, content=b"[]"),
                    404)["code"] == "not_found"
    assert ok(api(srv, "GET", "/api/conversations", params={"limit": 200}))["conversations"] == before
    chat = new_conversation(srv)
    for params in ({"format": "pdf"}, {"files": "some"}):
        error = error_of(api(srv, "GET", f"/api/conversations/{chat['id']}/export", params=params), 422)
        assert error["code"] == "invalid_value"


# --- streaming with the real model ----------------------------------------------------------------

def sse_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return list(parse_sse(response.iter_lines()))


def parse_sse(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    event, data = "", ""
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif not line and event:
            yield event, json.loads(data)
            event, data = "", ""


def short_chat(srv: Srv, max_tokens: int) -> str:
    chat = new_conversation(srv)
    ok(api(srv, "PATCH", f"/api/conversations/{chat['id']}",
           json={"settings": {"max_tokens": max_tokens, "temperature": 0}}))
    return str(chat["id"])


def streamed_text(events: list[tuple[str, dict[str, Any]]]) -> str:
    return "".join(data["text"] for name, data in events if name == "delta")


def answer_of(srv: Srv, cid: str) -> dict[str, Any]:
    return ok(api(srv, "GET", f"/api/conversations/{cid}"))["messages"][-1]  # type: ignore[no-any-return]


def wait_finished(srv: Srv, cid: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = answer_of(srv, cid)
        if answer["status"] != "streaming":
            return answer
        time.sleep(0.2)
    raise AssertionError("the answer did not finish")


@pytest.mark.engine
def test_send_streams_events_and_saves_what_was_streamed(srv: Srv) -> None:
    cid = short_chat(srv, 12)
    with httpx.stream("POST", f"{srv.base}/api/conversations/{cid}/messages", json={"text": "Say hello."},
                      headers=srv.server.headers(), timeout=120) as response:
        events = sse_events(response)
    names = [name for name, _ in events]
    assert names[0] == "message" and names[-1] == "done" and "delta" in names
    assert set(names[1:-1]) <= {"delta", "tool"}
    first = events[0][1]
    assert first["conversation_id"] == cid and first["user_message"]["content"] == "Say hello."
    done = events[-1][1]
    assert done["message_id"] == first["answer_id"] and done["status"] == "done"
    assert 0 < done["stats"]["completion_tokens"] <= 12

    conversation = ok(api(srv, "GET", f"/api/conversations/{cid}"))
    question, answer = conversation["messages"]
    assert question["id"] == first["user_message"]["id"] and answer["id"] == first["answer_id"]
    assert answer["content"] == streamed_text(events) != "" and answer["status"] == "done"
    assert answer["parent_id"] == question["id"] and conversation["title"] == "Say hello."
    # a client that comes back later reads the same answer
    again = sse_events(api(srv, "GET", f"/api/conversations/{cid}/events"))
    assert streamed_text(again) == answer["content"] and again[-1][1]["status"] == "done"


@pytest.mark.engine
def test_a_client_that_leaves_does_not_stop_the_answer(srv: Srv) -> None:
    cid = short_chat(srv, 40)
    with httpx.stream("POST", f"{srv.base}/api/conversations/{cid}/messages",
                      json={"text": "Write a long story about a dragon who learns to sing."},
                      headers=srv.server.headers(), timeout=120) as response:
        for name, data in parse_sse(response.iter_lines()):
            if name == "delta" and data["text"]:
                seen = data["text"]
                break  # and close the connection mid-answer
    with httpx.stream("GET", f"{srv.base}/api/conversations/{cid}/events", headers=srv.server.headers(),
                      timeout=120) as response:
        rejoined = sse_events(response)
    answer = wait_finished(srv, cid)
    assert answer["status"] == "done" and answer["stats"]["finish_reason"] == "length"
    assert answer["content"].startswith(seen) and len(answer["content"]) > len(seen)
    assert streamed_text(rejoined) == answer["content"]
    assert rejoined[0][1]["answer_id"] == answer["id"]
    assert "Traceback" not in srv.server.log()


@pytest.mark.engine
def test_regenerate_makes_a_version_and_stop_ends_an_answer(srv: Srv) -> None:
    cid = short_chat(srv, 6)
    first = ok(api(srv, "POST", f"/api/conversations/{cid}/messages", params={"stream": 0}, json={"text": "Hi!"}))
    assert first["status"] == "done" and first["role"] == "assistant" and "branch" not in first
    second = ok(api(srv, "POST", f"/api/conversations/{cid}/regenerate", params={"stream": 0}))
    assert second["parent_id"] == first["parent_id"] and second["id"] != first["id"]
    assert second["branch"] == {"index": 1, "count": 2, "ids": [first["id"], second["id"]]}

    ok(api(srv, "PATCH", f"/api/conversations/{cid}", json={"settings": {"max_tokens": 2000}}))
    with httpx.stream("POST", f"{srv.base}/api/conversations/{cid}/messages",
                      json={"text": "Write a very long story about a lighthouse."},
                      headers=srv.server.headers(), timeout=120) as response:
        events = parse_sse(response.iter_lines())
        seen = [next(events)[0] for _ in range(4)]
        assert seen[0] == "message"
        busy = error_of(api(srv, "POST", f"/api/conversations/{cid}/messages", json={"text": "and?"}), 409)
        assert busy["code"] == "answer_running"
        stopped = ok(api(srv, "POST", f"/api/conversations/{cid}/stop"))
        rest = list(events)
    assert rest[-1][0] == "done" and rest[-1][1]["stats"]["finish_reason"] == "cancelled"
    message = stopped["message"]
    assert message["status"] == "done" and message["stats"]["finish_reason"] == "cancelled" and message["content"]
    assert answer_of(srv, cid)["content"] == message["content"]


@pytest.mark.engine
def test_an_answer_cut_by_a_killed_server_is_kept_as_interrupted(tmp_path: Path) -> None:
    env = {"GRIDLESS_THREADS": str(ENGINE_THREADS)}
    with ServerProcess(data_dir=tmp_path / "data", env=env) as server:
        own = Srv(server, "")
        cid = short_chat(own, 2000)
        with httpx.stream("POST", f"{own.base}/api/conversations/{cid}/messages",
                          json={"text": "Write a very long story about a lighthouse."},
                          headers=server.headers(), timeout=120) as response:
            started = None
            for name, _ in parse_sse(response.iter_lines()):
                started = started or (time.monotonic() if name == "delta" else None)
                if started and time.monotonic() - started > 1.5:  # saved at least twice a second
                    break
            live = answer_of(own, cid)
            assert live["status"] == "streaming" and live["content"]
            server.kill_hard()
    with ServerProcess(data_dir=tmp_path / "data", env=env) as again:
        answer = answer_of(Srv(again, ""), cid)
        assert answer["status"] == "interrupted" and answer["content"]
        saved, shown = answer["content"], live["content"]  # one went on from the other
        assert saved.startswith(shown) or shown.startswith(saved)
