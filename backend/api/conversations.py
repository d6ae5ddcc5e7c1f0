"""Conversations under `/api`: what the chat page does, for programs and paired devices.

Every route runs on the services the page uses (`services.conversations`, `services.store`), so
an answer asked for here is the same server task the page would start: it is saved while it
streams, a client that leaves does not stop it, Stop keeps its text, and a killed server leaves
it `interrupted`. Sending, regenerating and editing answer with server-sent events that follow
that task (`reply_events.py`), or with the finished message as JSON with `?stream=0`. Refusals
before an answer starts (an unknown id, an empty message, an answer already running, a photo
for a model that cannot see) are ordinary HTTP errors. Conversations have no owner: the owner
and every paired device see the same list, as on the pages; attachments do have one, so a
message may carry only files its sender uploaded.

`/search` and `/import` are declared before `/{conversation_id}`, which would take them as ids.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.requests import ClientDisconnect

from ..chat.exchange_read import MAX_IMPORT_BYTES
from ..chat.replies import ActiveReply
from ..core.errors import AppError, ErrorCode
from ..security.devices import OWNER
from ..security.middleware import principal_of
from ..services import Services
from ..storage.conversations import LEAF, Conversation, Message, MessageStatus
from . import projects
from .conversation_views import conversation_json, hit_json, message_json, summary_json
from .deps import ServicesDep
from .projects import MAX_SYSTEM_PROMPT, settings_checked
from .reply_events import event_stream, follow
from .responses import body_chunks, disposition, not_found

__all__ = ["IMPORT_PATH", "MAX_IMPORT_BYTES", "MAX_SEARCH_CHARS", "router"]

router = APIRouter(include_in_schema=False)
router.include_router(projects.router)

IMPORT_PATH = "/api/conversations/import"
MAX_SEARCH_CHARS = 200
STOP_WAIT_S = 10.0
"""How long Stop waits for the answer to end and be saved before answering anyway."""

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ConversationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    project_id: Id | None = None


class ConversationChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    system_prompt: Annotated[str, StringConstraints(max_length=MAX_SYSTEM_PROMPT)] | None = None
    pinned: bool | None = None
    archived: bool | None = None
    project_id: Id | None = None
    """Given as null: out of any project; left out: unchanged."""
    settings: dict[str, Any] | None = None
    """Changes to the settings (as a project's): a null removes one."""


class MessageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    attachment_ids: list[Id] = Field(default_factory=list, max_length=100)


class EditBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str


class SwitchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message_id: Id


def _uploader(request: Request) -> str:
    return (principal_of(request.scope) or OWNER).key


async def _find(services: Services, conversation_id: str) -> Conversation:
    found = await services.store.get(conversation_id)
    if found is None:
        raise not_found("There is no conversation with that id.")
    return found


async def _project(services: Services, project_id: str) -> None:
    if await services.projects.get(project_id) is None:
        raise not_found("There is no project with that id.")


async def _view(services: Services, conversation: Conversation, *, every_branch: bool = False) -> dict[str, Any]:
    """The conversation with the branch shown (or every message), each message's attachments and,
    for a message with versions, where it stands among them."""
    cid = conversation.id
    messages = await (services.store.all_messages(cid) if every_branch else services.store.messages(cid))
    attached = await services.attachments.store.for_conversation(cid)
    branches = await services.store.branches(cid)
    reply = services.conversations.active.get(cid)
    return conversation_json(conversation, [message_json(m, attached.get(m.id), branches.get(m.id), reply)
                                            for m in messages], reply)


async def _message_view(services: Services, message: Message) -> dict[str, Any]:
    attached = await services.attachments.store.for_conversation(message.conversation_id)
    branches = await services.store.branches(message.conversation_id)
    return message_json(message, attached.get(message.id), branches.get(message.id))


async def _answered(services: Services, reply: ActiveReply, stream: bool) -> Response:
    """An answer just started: followed as events, or waited for and given as the finished message
    (an answer that failed is then the HTTP error it failed with)."""
    answer = await services.store.get_message(reply.message_id)
    if answer is None:
        raise not_found("The conversation was deleted.")
    if stream:
        return event_stream(follow(services.store, answer, reply))
    await reply.finished.wait()
    stored = await services.store.get_message(reply.message_id)
    if stored is None:
        raise not_found("The conversation was deleted.")
    if stored.status == MessageStatus.ERROR:
        code = str(stored.stats.get("error_code") or ErrorCode.INTERNAL)
        raise AppError(code, stored.error or "The answer failed.")
    return JSONResponse(await _message_view(services, stored))


# the collection ---------------------------------------------------------------------------------

@router.get("/api/conversations")
async def conversations(services: ServicesDep, project: str | None = Query(default=None, max_length=64),
                        archived: bool = False, limit: int = Query(default=50, ge=1, le=200),
                        offset: int = Query(default=0, ge=0, le=1_000_000)) -> dict[str, Any]:
    """Pinned first, then the most recently used; `project=none` for those in no project."""
    scope: Any = LEAF
    if project == "none":
        scope = None
    elif project is not None:
        await _project(services, project)
        scope = project
    found = await services.store.list_recent(limit + 1, offset=offset, archived=archived, project_id=scope)
    return {"conversations": [summary_json(c) for c in found[:limit]], "limit": limit, "offset": offset,
            "has_more": len(found) > limit}


@router.post("/api/conversations")
async def create_conversation(services: ServicesDep, body: ConversationCreate | None = None) -> JSONResponse:
    body = body or ConversationCreate()
    conversation = await services.conversations.create(project_id=body.project_id, title=body.title or "New chat")
    return JSONResponse(await _view(services, conversation), status_code=201)


@router.get("/api/conversations/search")
async def search(services: ServicesDep, q: str = Query(min_length=1, max_length=MAX_SEARCH_CHARS),
                 limit: int = Query(default=30, ge=1, le=100)) -> dict[str, Any]:
    """Titles, then messages of every branch and archived conversations, newest first."""
    hits = await services.store.search(q, limit=limit)
    return {"query": q, "hits": [hit_json(h) for h in hits[:limit]]}


@router.post(IMPORT_PATH)
async def import_conversations(request: Request, services: ServicesDep,
                               project: str | None = Query(default=None, max_length=64)) -> JSONResponse:
    """An exported file as the raw request body (gridless JSON, ChatGPT's or Open WebUI's export),
    into new conversations."""
    if project is not None:
        await _project(services, project)
    data = bytearray()
    try:
        async for chunk in body_chunks(request):
            data += chunk
            if len(data) > MAX_IMPORT_BYTES:
                raise ClientDisconnect
    except ClientDisconnect:  # the gate ends a body past the limit as if the client had left
        raise AppError(ErrorCode.REQUEST_TOO_LARGE, f"The file is larger than the limit of "
                                                    f"{MAX_IMPORT_BYTES // (1024 * 1024)} MB.") from None
    if not data:
        raise AppError(ErrorCode.BAD_REQUEST, "The request body is empty: send the exported file as the body.")
    made = await services.exchange.import_file(bytes(data), project_id=project)
    return JSONResponse({"conversations": [summary_json(c) for c in made]}, status_code=201)


# one conversation -------------------------------------------------------------------------------

@router.get("/api/conversations/{conversation_id}")
async def conversation(conversation_id: str, services: ServicesDep,
                       every: bool = Query(default=False, alias="all")) -> dict[str, Any]:
    return await _view(services, await _find(services, conversation_id), every_branch=every)


@router.patch("/api/conversations/{conversation_id}")
async def change_conversation(conversation_id: str, body: ConversationChange,
                              services: ServicesDep) -> dict[str, Any]:
    found = await _find(services, conversation_id)
    moved = "project_id" in body.model_fields_set
    if moved and body.project_id is not None:
        await _project(services, body.project_id)
    settings = settings_checked(services, found.settings, body.settings) if body.settings is not None else None
    if body.title is not None or body.system_prompt is not None or settings is not None:
        await services.store.update(conversation_id, title=body.title, system_prompt=body.system_prompt,
                                    settings=settings)
    await services.store.organise([conversation_id], pinned=body.pinned, archived=body.archived,
                                  project_id=body.project_id if moved else LEAF)
    return await _view(services, await _find(services, conversation_id))


@router.delete("/api/conversations/{conversation_id}")
async def delete_conversation(conversation_id: str, services: ServicesDep) -> dict[str, Any]:
    """Deletes it with its messages and files; an answer being written is stopped first."""
    if not await services.conversations.delete(conversation_id):
        raise not_found("There is no conversation with that id.")
    return {"id": conversation_id, "deleted": True}


@router.post("/api/conversations/{conversation_id}/messages")
async def send_message(conversation_id: str, body: MessageBody, request: Request, services: ServicesDep,
                       stream: bool = True) -> Response:
    await _find(services, conversation_id)
    reply = await services.conversations.send(conversation_id, body.text, body.attachment_ids,
                                              uploader=_uploader(request))
    return await _answered(services, reply, stream)


@router.post("/api/conversations/{conversation_id}/regenerate")
async def regenerate(conversation_id: str, services: ServicesDep, stream: bool = True) -> Response:
    """A new answer to the last message of yours shown, beside the earlier one."""
    await _find(services, conversation_id)
    return await _answered(services, await services.conversations.regenerate(conversation_id), stream)


@router.post("/api/conversations/{conversation_id}/messages/{message_id}/edit")
async def edit_message(conversation_id: str, message_id: str, body: EditBody, services: ServicesDep,
                       stream: bool = True) -> Response:
    """Your message with new words, as a new version beside the earlier one, answered again."""
    await _find(services, conversation_id)
    message = await services.store.get_message(message_id)
    if message is None or message.conversation_id != conversation_id:
        raise not_found("There is no message with that id in this conversation.")
    return await _answered(services, await services.conversations.edit_and_resend(message_id, body.text), stream)


@router.post("/api/conversations/{conversation_id}/stop")
async def stop(conversation_id: str, services: ServicesDep) -> dict[str, Any]:
    """Stops the answer being written, keeping its text; answers once it is saved."""
    await _find(services, conversation_id)
    reply = services.conversations.active.get(conversation_id)
    if reply is None or not services.conversations.stop(conversation_id):
        raise AppError(ErrorCode.NOT_RUNNING, "No answer is being written in this conversation.")
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(reply.finished.wait()), STOP_WAIT_S)
    stored = await services.store.get_message(reply.message_id)
    return {"conversation_id": conversation_id, "stopped": True,
            "message": await _message_view(services, stored) if stored is not None else None}


@router.post("/api/conversations/{conversation_id}/switch")
async def switch(conversation_id: str, body: SwitchBody, services: ServicesDep) -> dict[str, Any]:
    """Shows the branch holding the message: from it, the newest version at each step."""
    await services.conversations.switch(conversation_id, body.message_id)
    return await _view(services, await _find(services, conversation_id))


@router.get("/api/conversations/{conversation_id}/events")
async def events(conversation_id: str, services: ServicesDep) -> Response:
    """The answer being written now, from its start, for a client that reconnects; when none is,
    the last answer shown as it was saved."""
    await _find(services, conversation_id)
    reply = services.conversations.active.get(conversation_id)
    if reply is not None:
        answer = await services.store.get_message(reply.message_id)
    else:
        shown = await services.store.messages(conversation_id)
        answer = shown[-1] if shown and shown[-1].role == "assistant" else None
    if answer is None:
        raise AppError(ErrorCode.NOT_RUNNING, "There is no answer in this conversation to follow.")
    return event_stream(follow(services.store, answer, reply))


@router.get("/api/conversations/{conversation_id}/export")
async def export(conversation_id: str, services: ServicesDep, format: Literal["md", "json"] = "json",
                 files: Literal["inline", "names"] = "inline") -> Response:
    """Markdown (the branch shown) or gridless JSON (every branch), as a download."""
    await _find(services, conversation_id)
    exported = await services.exchange.export(conversation_id, format, inline_files=files == "inline")
    return Response(exported.data, media_type=exported.media_type,
                    headers={**disposition(exported.filename, inline=False), "Cache-Control": "no-store"})
