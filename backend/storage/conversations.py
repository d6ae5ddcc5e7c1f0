"""Conversations and their messages: plain SQL, one place."""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import aiosqlite

from .db import Database

__all__ = ["LEAF", "MARK_END", "MARK_START", "Branches", "Conversation", "ConversationStore", "Message",
           "MessageStatus", "Role", "SearchHit", "fts_query"]

Role = Literal["system", "user", "assistant"]


class MessageStatus(StrEnum):
    """An answer is `streaming` while it is written (saved as it goes), then `done`, `error`, or
    `interrupted` when the server stopped under it."""

    STREAMING = "streaming"
    DONE = "done"
    INTERRUPTED = "interrupted"
    ERROR = "error"



def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(kw_only=True, slots=True)
class Conversation:
    id: str
    title: str
    system_prompt: str
    settings: dict[str, Any]
    created_at: float
    updated_at: float
    project_id: str | None = None
    pinned: bool = False
    archived: bool = False
    leaf_id: str | None = None
    """The last message of the branch shown; the conversation goes on from it."""

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> Conversation:
        return cls(id=row["id"], title=row["title"], system_prompt=row["system_prompt"],
                   settings=json.loads(row["settings"]), created_at=row["created_at"],
                   updated_at=row["updated_at"], project_id=row["project_id"], pinned=bool(row["pinned"]),
                   archived=bool(row["archived"]), leaf_id=row["leaf_id"])


@dataclass(kw_only=True, slots=True)
class Message:
    id: str
    conversation_id: str
    seq: int
    role: Role
    content: str
    status: MessageStatus = MessageStatus.DONE
    error: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    reasoning: str = ""
    """What the model thought before answering (never part of `content`)."""
    tools: list[dict[str, Any]] = field(default_factory=list)
    """The tools the answer called, in order: `id`, `name`, `arguments` (JSON text), `result`, `ok`."""
    parent_id: str | None = None
    """The message this one follows (none for the first); messages with the same parent are
    versions of each other: an edited message, a regenerated answer."""
    sources: list[dict[str, Any]] = field(default_factory=list)
    """The passages of the person's documents an answer was given, numbered as it cites them
    ([1] is the first): `n`, `passage_id`, `document_id`, `document`, `collection_id`, `page`, `heading`."""

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> Message:
        return cls(id=row["id"], conversation_id=row["conversation_id"], seq=row["seq"],
                   role=row["role"], content=row["content"], status=MessageStatus(row["status"]), error=row["error"],
                   stats=json.loads(row["stats"]), created_at=row["created_at"],
                   updated_at=row["updated_at"], reasoning=row["reasoning"], tools=json.loads(row["tools"]),
                   parent_id=row["parent_id"], sources=json.loads(row["sources"]))


@dataclass(frozen=True, slots=True)
class Branches:
    """Where a message stands among its versions: the `index`-th (from 0) of `ids`."""

    index: int
    ids: tuple[str, ...]


@dataclass(kw_only=True, slots=True)
class SearchHit:
    conversation_id: str
    title: str
    message_id: str | None
    """None when the title matched."""
    role: str
    snippet: str
    """The words around the match; each matched word is between MARK_START and MARK_END."""
    created_at: float
    archived: bool = False


MARK_START, MARK_END = "\x02", "\x03"
MAX_QUERY_WORDS = 8
LEAF: Any = object()
"""`add_message`'s default parent: the last message of the branch shown."""


def fts_query(text: str) -> str | None:
    """What a person typed, as an FTS5 query: every word must be there, the last as the start of
    a word (results while typing) once it has two letters (the index keeps prefixes of two and
    three; one letter would merge the lists of thousands of words). Quoting each word keeps
    FTS5's own syntax (AND, NEAR, *, ^, column names) out of it. None when there is no word."""
    words = re.findall(r"\w+", text)[:MAX_QUERY_WORDS]
    if not words:
        return None
    quoted = [f'"{w}"' for w in words]
    if not text[-1:].isspace() and len(words[-1]) > 1:
        quoted[-1] += "*"
    return " ".join(quoted)


class ConversationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # conversations -------------------------------------------------------------------------

    async def create(self, *, title: str = "New chat", system_prompt: str = "",
                     settings: dict[str, Any] | None = None, project_id: str | None = None) -> Conversation:
        now = time.time()
        conv = Conversation(id=new_id(), title=title, system_prompt=system_prompt,
                            settings=settings or {}, created_at=now, updated_at=now, project_id=project_id)
        await self.db.execute(
            "INSERT INTO conversations (id, title, system_prompt, settings, created_at, updated_at, project_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (conv.id, conv.title, conv.system_prompt, json.dumps(conv.settings), now, now, project_id))
        return conv

    async def get(self, conversation_id: str) -> Conversation | None:
        row = await self.db.fetch_one("SELECT * FROM conversations WHERE id = ?", (conversation_id,))
        return Conversation.from_row(row) if row else None

    async def list_recent(self, limit: int = 200, *, offset: int = 0, archived: bool = False,
                          project_id: str | Any | None = LEAF) -> list[Conversation]:
        """Pinned first, then the most recently used; archived ones only when asked for. With
        `project_id` (None: those in no project), one project's."""
        where: list[str] = ["archived = ?"]
        params: list[object] = [int(archived)]
        if project_id is None:
            where.append("project_id IS NULL")
        elif project_id is not LEAF:
            where.append("project_id = ?")
            params.append(project_id)
        rows = await self.db.fetch_all(
            f"SELECT * FROM conversations WHERE {' AND '.join(where)}"
            " ORDER BY pinned DESC, updated_at DESC, rowid DESC LIMIT ? OFFSET ?", (*params, limit, offset))
        return [Conversation.from_row(r) for r in rows]

    async def count(self, *, archived: bool = False) -> int:
        row = await self.db.fetch_one("SELECT COUNT(*) FROM conversations WHERE archived = ?", (int(archived),))
        return int(row[0]) if row else 0

    async def update(self, conversation_id: str, *, title: str | None = None,
                     system_prompt: str | None = None, settings: dict[str, Any] | None = None,
                     touch: bool = True) -> bool:
        sets: list[str] = ["updated_at = ?"] if touch else []
        params: list[object] = [time.time()] if touch else []
        for column, value in (("title", title), ("system_prompt", system_prompt),
                              ("settings", None if settings is None else json.dumps(settings))):
            if value is not None:
                sets.append(f"{column} = ?")
                params.append(value)
        if not sets:
            return await self.get(conversation_id) is not None
        changed = await self.db.execute(
            f"UPDATE conversations SET {', '.join(sets)} WHERE id = ?", (*params, conversation_id))
        return changed > 0

    async def organise(self, conversation_ids: list[str], *, pinned: bool | None = None,
                       archived: bool | None = None, project_id: str | Any | None = LEAF) -> int:
        """Pin, archive or move conversations to a project (None: out of any); returns how many
        there were. The time they were last used stays as it was."""
        sets: list[str] = []
        params: list[object] = []
        for column, value in (("pinned", pinned), ("archived", archived)):
            if value is not None:
                sets.append(f"{column} = ?")
                params.append(int(value))
        if project_id is not LEAF:
            sets.append("project_id = ?")
            params.append(project_id)
        if not sets or not conversation_ids:
            return 0
        marks = ", ".join("?" * len(conversation_ids))
        return await self.db.execute(f"UPDATE conversations SET {', '.join(sets)} WHERE id IN ({marks})",
                                     (*params, *conversation_ids))

    async def delete(self, conversation_id: str) -> bool:
        return await self.db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)) > 0

    # messages -------------------------------------------------------------------------------

    async def messages(self, conversation_id: str) -> list[Message]:
        """The branch shown: from the first message to the conversation's leaf."""
        leaf = await self._leaf(conversation_id)
        if leaf is None:
            return []
        rows = await self.db.fetch_all(
            # the step as a lookup by id: written as a join, SQLite may plan a Bloom filter over the
            # whole messages index for it once the database has statistics
            "WITH RECURSIVE path (id) AS (SELECT ? UNION ALL"
            " SELECT (SELECT m.parent_id FROM messages m WHERE m.id = path.id) AS parent FROM path"
            " WHERE parent IS NOT NULL)"
            " SELECT messages.* FROM messages JOIN path ON messages.id = path.id ORDER BY messages.seq", (leaf,))
        return [Message.from_row(r) for r in rows]

    async def all_messages(self, conversation_id: str) -> list[Message]:
        """Every message of every branch, each after its parent."""
        rows = await self.db.fetch_all(
            "SELECT * FROM messages WHERE conversation_id = ? ORDER BY seq, n", (conversation_id,))
        return [Message.from_row(r) for r in rows]

    async def _leaf(self, conversation_id: str) -> str | None:
        row = await self.db.fetch_one(
            "SELECT m.id FROM conversations c JOIN messages m ON m.id = c.leaf_id WHERE c.id = ?",
            (conversation_id,))
        if row is None:  # no message yet, or the leaf was deleted under it: the newest message
            row = await self.db.fetch_one(
                "SELECT id FROM messages WHERE conversation_id = ? ORDER BY n DESC LIMIT 1", (conversation_id,))
        return str(row[0]) if row else None

    async def get_message(self, message_id: str) -> Message | None:
        row = await self.db.fetch_one("SELECT * FROM messages WHERE id = ?", (message_id,))
        return Message.from_row(row) if row else None

    async def add_message(self, conversation_id: str, role: Role, content: str, *,
                          status: MessageStatus = MessageStatus.DONE, parent_id: str | Any | None = LEAF) -> Message:
        """A message after `parent_id` (by default the leaf: the end of the branch shown), which
        becomes the leaf. A parent that already has a child makes this one its sibling: a new
        version of that message."""
        now = time.time()
        msg_id = new_id()
        async with self.db.transaction() as conn:  # parent, position and insert with no other write between
            if parent_id is LEAF:
                async with conn.execute("SELECT leaf_id FROM conversations WHERE id = ?", (conversation_id,)) as cur:
                    row = await cur.fetchone()
                parent_id = row[0] if row else None
            seq = 1
            if parent_id is not None:
                async with conn.execute("SELECT seq FROM messages WHERE id = ? AND conversation_id = ?",
                                        (parent_id, conversation_id)) as cur:
                    row = await cur.fetchone()
                if row is None:
                    raise LookupError(f"message {parent_id} is not in conversation {conversation_id}")
                seq = int(row[0]) + 1
            await conn.execute(
                "INSERT INTO messages (id, conversation_id, parent_id, seq, role, content, status, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (msg_id, conversation_id, parent_id, seq, role, content, status, now, now))
            await conn.execute("UPDATE conversations SET updated_at = ?, leaf_id = ? WHERE id = ?",
                               (now, msg_id, conversation_id))
        return Message(id=msg_id, conversation_id=conversation_id, seq=seq, role=role, content=content,
                       status=status, created_at=now, updated_at=now, parent_id=parent_id)

    async def save_progress(self, message_id: str, *, content: str, status: MessageStatus,
                            stats: dict[str, Any] | None = None, error: str | None = None, reasoning: str = "",
                            tools: list[dict[str, Any]] | None = None) -> None:
        """Persist a streaming answer (called at least once a second while it streams)."""
        await self.db.execute(
            "UPDATE messages SET content = ?, status = ?, stats = ?, error = ?, reasoning = ?, tools = ?,"
            " updated_at = ? WHERE id = ?",
            (content, status, json.dumps(stats or {}), error, reasoning, json.dumps(tools or []), time.time(),
             message_id))

    async def set_sources(self, message_id: str, sources: list[dict[str, Any]]) -> None:
        """Record the passages an answer is given (before it streams, so a page can link its citations)."""
        await self.db.execute("UPDATE messages SET sources = ? WHERE id = ?", (json.dumps(sources), message_id))

    async def delete_message(self, message_id: str) -> None:
        """Take back a message just added (and anything after it); its parent becomes the leaf."""
        async with self.db.transaction() as conn:
            async with conn.execute("SELECT conversation_id, parent_id FROM messages WHERE id = ?",
                                    (message_id,)) as cur:
                row = await cur.fetchone()
            if row is None:
                return
            await conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))
            await conn.execute("UPDATE conversations SET leaf_id = ? WHERE id = ?"
                               " AND NOT EXISTS (SELECT 1 FROM messages WHERE id = conversations.leaf_id)",
                               (row[1], row[0]))

    # branches --------------------------------------------------------------------------------

    async def branches(self, conversation_id: str) -> dict[str, Branches]:
        """For each message that has other versions (siblings), where it stands among them."""
        rows = await self.db.fetch_all(
            "SELECT id, parent_id FROM messages WHERE conversation_id = ? ORDER BY n", (conversation_id,))
        by_parent: dict[str | None, list[str]] = {}
        for row in rows:
            by_parent.setdefault(row["parent_id"], []).append(row["id"])
        return {mid: Branches(index=i, ids=tuple(ids))
                for ids in by_parent.values() if len(ids) > 1 for i, mid in enumerate(ids)}

    async def set_leaf(self, conversation_id: str, message_id: str) -> None:
        """Show the branch that ends at `message_id` (what the next message will follow)."""
        changed = await self.db.execute(
            "UPDATE conversations SET leaf_id = ? WHERE id = ?"
            " AND EXISTS (SELECT 1 FROM messages WHERE id = ? AND conversation_id = ?)",
            (message_id, conversation_id, message_id, conversation_id))
        if not changed:
            raise LookupError(f"message {message_id} is not in conversation {conversation_id}")

    async def switch(self, conversation_id: str, message_id: str) -> str:
        """Show the branch holding `message_id`: from it, the newest version at each step down to
        the end. Returns the new leaf."""
        rows = await self.db.fetch_all(
            "SELECT id, parent_id FROM messages WHERE conversation_id = ? ORDER BY n", (conversation_id,))
        newest_child: dict[str, str] = {}
        known: set[str] = set()
        for row in rows:
            known.add(row["id"])
            if row["parent_id"] is not None:
                newest_child[row["parent_id"]] = row["id"]
        if message_id not in known:
            raise LookupError(f"message {message_id} is not in conversation {conversation_id}")
        leaf = message_id
        while leaf in newest_child:
            leaf = newest_child[leaf]
        await self.set_leaf(conversation_id, leaf)
        return leaf

    # search ----------------------------------------------------------------------------------

    async def search(self, text: str, *, limit: int = 30, snippet_words: int = 12,
                     leave_out: str | None = None) -> list[SearchHit]:
        """Conversations whose title has the words, then messages, newest first. Every branch and
        archived conversations are searched too; `leave_out` is a conversation not to search."""
        query = fts_query(text)
        if query is None:
            return []
        words = re.findall(r"\w+", text)[:MAX_QUERY_WORDS]
        title_where = " AND ".join(["title LIKE ? ESCAPE '\\'"] * len(words))
        titles = await self.db.fetch_all(
            f"SELECT id, title, created_at, archived FROM conversations WHERE {title_where} AND id IS NOT ?"
            " ORDER BY updated_at DESC LIMIT ?",
            (*[f"%{_like_escaped(w)}%" for w in words], leave_out, min(limit, 10)))
        hits = [SearchHit(conversation_id=r["id"], title=r["title"], message_id=None, role="title",
                          snippet=_marked(r["title"], words), created_at=r["created_at"],
                          archived=bool(r["archived"])) for r in titles]
        rows = await self.db.fetch_all(
            "SELECT m.id, m.conversation_id, m.role, m.created_at, c.title, c.archived,"
            " snippet(messages_fts, 0, ?, ?, '…', ?) AS snippet"
            " FROM messages_fts JOIN messages m ON m.n = messages_fts.rowid"
            " JOIN conversations c ON c.id = m.conversation_id"
            " WHERE messages_fts MATCH ? AND m.conversation_id IS NOT ? ORDER BY messages_fts.rowid DESC LIMIT ?",
            (MARK_START, MARK_END, max(1, min(snippet_words, 64)), query, leave_out, limit))
        hits += [SearchHit(conversation_id=r["conversation_id"], title=r["title"], message_id=r["id"],
                           role=r["role"], snippet=r["snippet"], created_at=r["created_at"],
                           archived=bool(r["archived"])) for r in rows]
        return hits

    async def mark_interrupted(self) -> int:
        """At start-up nothing can still be streaming: keep the text, mark it interrupted."""
        return await self.db.execute(
            "UPDATE messages SET status = 'interrupted', updated_at = ? WHERE status = 'streaming'",
            (time.time(),))

    # import ------------------------------------------------------------------------------------

    async def insert_conversations(self, items: list[tuple[Conversation, list[Message]]], *,
                                   attachments: dict[str, list[str]] | None = None) -> None:
        """Write whole conversations (an import) in ONE transaction: each conversation with its
        leaf, its messages parents first, and the pending attachments named in `attachments`
        (message id → attachment ids, in order) given to their messages. Any failure writes
        nothing: a file of conversations comes in whole or not at all."""
        async with self.db.transaction() as conn:
            for conv, messages in items:
                await conn.execute(
                    "INSERT INTO conversations (id, title, system_prompt, settings, created_at, updated_at,"
                    " project_id, pinned, archived, leaf_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (conv.id, conv.title, conv.system_prompt, json.dumps(conv.settings), conv.created_at,
                     conv.updated_at, conv.project_id, int(conv.pinned), int(conv.archived), conv.leaf_id))
                for m in sorted(messages, key=lambda m: m.seq):  # a parent is always one step shallower
                    await conn.execute(
                        "INSERT INTO messages (id, conversation_id, parent_id, seq, role, content, status, error,"
                        " stats, created_at, updated_at, reasoning, tools, sources)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (m.id, conv.id, m.parent_id, m.seq, m.role, m.content, m.status, m.error,
                         json.dumps(m.stats), m.created_at, m.updated_at, m.reasoning, json.dumps(m.tools),
                         json.dumps(m.sources)))
            for message_id, attachment_ids in (attachments or {}).items():
                for position, attachment_id in enumerate(attachment_ids):
                    cur = await conn.execute(
                        "UPDATE attachments SET message_id = ?, position = ? WHERE id = ? AND message_id IS NULL",
                        (message_id, position, attachment_id))
                    if cur.rowcount != 1:
                        raise LookupError(f"attachment {attachment_id} is no longer waiting to be sent")


def _like_escaped(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _marked(title: str, words: list[str]) -> str:
    """A title with the searched words marked as FTS5 marks them in a snippet."""
    pattern = re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)), re.IGNORECASE)
    return pattern.sub(lambda m: f"{MARK_START}{m.group(0)}{MARK_END}", title)
