"""Conversations out of gridless and into it: export for reading or keeping, import from other apps.

Export gives one conversation as Markdown (the branch shown, for reading in any Markdown
viewer) or as gridless's own JSON (every branch, with the attachments inlined as base64 or
named). Import reads gridless JSON, ChatGPT's `conversations.json` or Open WebUI's chat export
(`exchange_formats`), checked whole before anything is written (`exchange_read`). Inlined
files go through the attachment service exactly as uploads do (type from the bytes, size
cap, photos re-encoded without metadata) and wait as pending attachments; the conversations,
their messages and the links to those files are then written in one transaction. If anything
fails, nothing of the file stays: the pending files are removed, and the transaction never
happened.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

from ..attachments.service import AttachmentService
from ..core.errors import AppError, ErrorCode
from ..storage.attachments import Attachment
from ..storage.conversations import Conversation, ConversationStore, Message, MessageStatus
from ..storage.projects import ProjectStore
from .exchange_formats import GRIDLESS_ONE, read_export
from .exchange_read import MAX_FILES, Draft, DraftFile, DraftTurn, load_json, refuse

__all__ = ["IMPORT_UPLOADER", "ConversationExchange", "Exported"]

log = logging.getLogger(__name__)

IMPORT_UPLOADER = "import"
"""Who files read from an import belong to while they wait for their messages."""
MAX_TITLE = 200
MAX_FILE_NAME = 80
_ROLE_NAMES = {"user": "User", "assistant": "Assistant", "system": "System"}


@dataclass(frozen=True, slots=True)
class Exported:
    data: bytes
    filename: str
    """Made from the title: no path characters, no control characters, at most 80 characters."""
    media_type: str


class ConversationExchange:
    def __init__(self, store: ConversationStore, attachments: AttachmentService, projects: ProjectStore) -> None:
        self.store = store
        self.attachments = attachments
        self.projects = projects

    # export ----------------------------------------------------------------------------------

    async def export(self, conversation_id: str, fmt: Literal["md", "json"], *, inline_files: bool = True) -> Exported:
        conv = await self.store.get(conversation_id)
        if conv is None:
            raise AppError(ErrorCode.NOT_FOUND, "This conversation does not exist (any more).")
        files = await self.attachments.store.for_conversation(conv.id)
        shown = await self.store.messages(conv.id)
        if fmt == "md":
            return Exported(data=markdown(conv, shown, files).encode(), filename=file_name(conv.title, "md"),
                            media_type="text/markdown; charset=utf-8")
        if fmt == "json":
            document = await self._document(conv, shown, files, inline_files)
            return Exported(data=json.dumps(document, ensure_ascii=False, indent=1).encode(),
                            filename=file_name(conv.title, "json"), media_type="application/json")
        raise AppError(ErrorCode.INVALID_VALUE, f"A conversation exports as 'md' or 'json', not {str(fmt)[:20]!r}.",
                       param="format")

    async def _document(self, conv: Conversation, shown: list[Message], files: dict[str, list[Attachment]],
                        inline: bool) -> dict[str, Any]:
        attachments = []
        for message_id, found in files.items():
            for a in found:
                entry: dict[str, Any] = {"message_id": message_id, "name": a.name, "kind": a.kind, "mime": a.mime,
                                         "bytes": a.bytes}
                if a.kind == "document":
                    entry["text"] = a.text
                if inline and (data := await self._file(a)) is not None:
                    entry["data"] = base64.b64encode(data).decode("ascii")
                attachments.append(entry)
        return {"format": GRIDLESS_ONE, "version": 1,
                "conversation": {"title": conv.title, "system_prompt": conv.system_prompt, "settings": conv.settings,
                                 "created_at": conv.created_at, "updated_at": conv.updated_at,
                                 "leaf_id": shown[-1].id if shown else None},
                "messages": [{"id": m.id, "parent_id": m.parent_id, "role": m.role, "content": m.content,
                              "reasoning": m.reasoning, "tools": m.tools, "stats": m.stats, "status": m.status.value,
                              "error": m.error, "created_at": m.created_at}
                             for m in await self.store.all_messages(conv.id)],
                "attachments": attachments}

    async def _file(self, attachment: Attachment) -> bytes | None:
        try:
            return await asyncio.to_thread(self.attachments.media.path(attachment.path).read_bytes)
        except (OSError, ValueError):  # a file lost from the media folder: the export still names it
            log.warning("attachment %s has no file %s; exported by name only", attachment.id, attachment.path)
            return None

    # import ----------------------------------------------------------------------------------

    async def import_file(self, data: bytes, *, project_id: str | None = None) -> list[Conversation]:
        """New conversations (new ids) from an export file; all of them or, on any error, none."""
        if project_id is not None and await self.projects.get(project_id) is None:
            raise AppError(ErrorCode.NOT_FOUND, "The project to import into does not exist (any more).")
        drafts = await asyncio.to_thread(lambda: read_export(load_json(data)))  # parsing 50 MB takes a while
        files = sum(len(t.files) for d in drafts for t in d.turns)
        if files > MAX_FILES:
            refuse(f"The file has {files:,} attachments; at most {MAX_FILES:,} can be imported at once.")
        pending: list[Attachment] = []
        try:
            items: list[tuple[Conversation, list[Message]]] = []
            links: dict[str, list[str]] = {}
            for number, draft in enumerate(drafts, 1):
                where = "the conversation" if len(drafts) == 1 else f"conversation {number}"
                items.append(await self._built(draft, project_id, where, pending, links))
            await self.store.insert_conversations(items, attachments=links)
        except BaseException:
            for attachment in pending:
                await self.attachments.discard(attachment.id, IMPORT_UPLOADER)
            raise
        return [conv for conv, _ in items]

    async def _built(self, draft: Draft, project_id: str | None, where: str, pending: list[Attachment],
                     links: dict[str, list[str]]) -> tuple[Conversation, list[Message]]:
        now = time.time()
        ids = {t.key: uuid.uuid4().hex for t in draft.turns}
        seqs: dict[str, int] = {}
        times: dict[str, float] = {}
        messages: list[Message] = []
        for t in draft.turns:  # parents first
            seqs[t.key] = seqs[t.parent] + 1 if t.parent is not None else 1
            times[t.key] = t.created_at if t.created_at is not None else \
                times[t.parent] if t.parent is not None else draft.created_at or now
            messages.append(Message(id=ids[t.key], conversation_id="", seq=seqs[t.key], role=t.role,
                                    content=t.content, status=t.status, error=t.error, stats=t.stats,
                                    created_at=times[t.key], updated_at=times[t.key], reasoning=t.reasoning,
                                    tools=t.tools, parent_id=ids[t.parent] if t.parent is not None else None))
            for file in t.files:
                stored = await self._accepted(file, where)
                if stored is not None:
                    pending.append(stored)
                    links.setdefault(ids[t.key], []).append(stored.id)
        created = draft.created_at if draft.created_at is not None else min(times.values(), default=now)
        updated = draft.updated_at if draft.updated_at is not None else max(times.values(), default=created)
        leaf = draft.leaf if draft.leaf is not None else _newest_end(draft.turns)
        title = " ".join(draft.title.split())[:MAX_TITLE] or "Imported chat"
        conv = Conversation(id=uuid.uuid4().hex, title=title, system_prompt=draft.system_prompt,
                            settings=draft.settings, created_at=created, updated_at=max(updated, created),
                            project_id=project_id, leaf_id=ids[leaf] if leaf is not None else None)
        for m in messages:
            m.conversation_id = conv.id
        return conv, messages

    async def _accepted(self, file: DraftFile, where: str) -> Attachment | None:
        """The file stored as an upload would be (pending until its message is written). A document
        exported by name keeps its text; a photo exported by name has nothing to restore."""
        data, name = file.data, file.name
        if data is None:
            if file.kind != "document" or not file.text.strip():
                return None
            data = file.text.encode()
            name = name if not name.lower().endswith(".pdf") else f"{name}.txt"  # its text, not the PDF
        try:
            return await self.attachments.accept(_once(data), name=name, uploader=IMPORT_UPLOADER)
        except AppError as e:
            raise AppError(e.code, f"In {where}, the attachment {name[:80]!r} was refused: {e.message}",
                           status=e.status) from None


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _newest_end(turns: list[DraftTurn]) -> str | None:
    """With no leaf in the file: the most recent message that nothing follows."""
    followed = {t.parent for t in turns}
    ends = [(t.created_at or 0.0, i, t.key) for i, t in enumerate(turns) if t.key not in followed]
    return max(ends)[2] if ends else None


# --- Markdown -----------------------------------------------------------------------------------

def markdown(conv: Conversation, messages: list[Message], files: dict[str, list[Attachment]]) -> str:
    """The branch shown, for reading. Thinking is a quoted section (a collapsed `<details>` block
    shows differently, or not at all, from one Markdown reader to the next)."""
    out = [f"# {' '.join(conv.title.split()) or 'Conversation'}", ""]
    if conv.system_prompt.strip():
        out += ["> **System prompt**", ">", *_quoted(conv.system_prompt), ""]
    for m in messages:
        out += [f"## {_ROLE_NAMES.get(m.role, m.role)} · {_when(m.created_at)}", ""]
        if m.reasoning.strip():
            out += ["> **Thinking**", ">", *_quoted(m.reasoning), ""]
        if m.tools:
            out += ["**Tools**", "", *(_tool_line(call) for call in m.tools), ""]
        if m.content.strip():
            out += [m.content.strip("\n"), ""]
        if m.status == MessageStatus.INTERRUPTED:
            out += ["*(interrupted: the answer was cut off here)*", ""]
        elif m.status == MessageStatus.ERROR:
            out += [f"*(error: {' '.join((m.error or 'no answer').split())})*", ""]
        for a in files.get(m.id, []):
            alt = re.sub(r"([\\\[\]])", r"\\\1", a.name)
            out += [f"![{alt}]({quote(a.name)})" if a.kind == "image" else f"*Attached:* {_code(a.name)}", ""]
    return "\n".join(out).rstrip() + "\n"


def _quoted(text: str) -> list[str]:
    return [f"> {line}".rstrip() for line in text.strip().splitlines()]


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _tool_line(call: dict[str, Any]) -> str:
    line = f"- {_code(str(call.get('name', 'tool')))} with {_code(str(call.get('arguments', '')))}"
    if "result" in call:
        line += (" → " if call.get("ok", True) else " → failed: ") + _code(str(call["result"]))
    return line


def _code(text: str, limit: int = 200) -> str:
    """An inline code span that holds any text: on one line, cut to `limit`, fenced by more backticks
    than it contains."""
    flat = " ".join(text.split())
    flat = flat if len(flat) <= limit else flat[:limit - 1] + "…"
    fence = "`" * (1 + max((len(run) for run in re.findall(r"`+", flat)), default=0))
    pad = " " if flat.startswith("`") or flat.endswith("`") or not flat else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def file_name(title: str, extension: str) -> str:
    """A file name from a title: no folders, no characters systems refuse, no leading dot, capped."""
    kept = "".join(ch if ch.isprintable() and ch not in '/\\:*?"<>|' else " " for ch in title)
    stem = " ".join(kept.split()).strip(" .")[:MAX_FILE_NAME].rstrip(" .")
    return f"{stem or 'conversation'}.{extension}"
