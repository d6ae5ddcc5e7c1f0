"""The export formats gridless reads, told apart by their shape (never by the file's name).

- gridless's own JSON: `{"format": "gridless.conversation", "version": 1, ...}` or, for several,
  `"gridless.conversations"` with a `conversations` list; every branch, with attachments.
- ChatGPT's `conversations.json`: a list of conversations, each a `mapping` of nodes (id →
  `{parent, children, message}`) with `current_node` the end of the branch shown. One answer
  can be several nodes (its thinking, a tool call, the tool's output, the text); hidden
  nodes, tool output and system nodes without text are left out, and the steps of one
  answer are folded into one message.
- Open WebUI's chat export: a list of `{id, title, chat: {history: {messages: {id: {parentId,
  role, content, timestamp…}}, currentId}}, created_at, updated_at}` (a single object too).
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import math
import re
from typing import Any

from ..storage.conversations import MessageStatus
from .exchange_read import (
    MAX_CONVERSATIONS,
    MAX_FILES,
    MAX_MESSAGES,
    Draft,
    DraftFile,
    DraftTurn,
    Reader,
    checked_role,
    checked_text,
    ordered,
    refuse,
)

__all__ = ["NOT_AN_EXPORT", "read_export"]

NOT_AN_EXPORT = ("This is not a conversation export gridless can read (expected gridless's own JSON export, "
                 "ChatGPT's conversations.json or an Open WebUI chat export).")
GRIDLESS_ONE, GRIDLESS_MANY = "gridless.conversation", "gridless.conversations"
MAX_TOOL_CALLS = 100
_NUMBER_STATS = frozenset({"ttft_s", "tokens_per_s", "completion_tokens", "prompt_tokens", "seconds", "seed",
                           "trimmed_messages"})
"""Stats the page formats as numbers: another type there would break showing the message."""
_CHATGPT_SILENT = frozenset({"reasoning_recap", "user_editable_context", "model_editable_context"})
"""Content ChatGPT does not show as a message ("Thought for 5 seconds", custom instructions)."""
_REASONING = re.compile(r'<details\s+type="reasoning"[^>]*>')
_SUMMARY = re.compile(r"\s*<summary>.*?</summary>", re.DOTALL)
_SPACE = re.compile(r"\s*")


def read_export(value: Any) -> list[Draft]:
    """The conversations in a parsed export file, checked; AppError when it is none of the formats."""
    if isinstance(value, dict) and isinstance(value.get("format"), str) and value["format"].startswith("gridless."):
        return _gridless(Reader(value, "the file"))
    items = value if isinstance(value, list) else [value] if isinstance(value, dict) else None
    if items is None:
        refuse(NOT_AN_EXPORT)
    if not items:
        refuse("The file holds no conversations.")
    if len(items) > MAX_CONVERSATIONS:
        refuse(f"The file holds {len(items):,} conversations; at most {MAX_CONVERSATIONS:,} can be imported at once.")
    first = items[0]
    if isinstance(first, dict) and "mapping" in first:
        return [_chatgpt(Reader(item, f"ChatGPT conversation {i}")) for i, item in enumerate(items, 1)]
    if isinstance(first, dict) and isinstance(first.get("chat"), dict):
        return [_open_webui(Reader(item, f"Open WebUI chat {i}")) for i, item in enumerate(items, 1)]
    refuse(NOT_AN_EXPORT)


# --- gridless -----------------------------------------------------------------------------------

def _gridless(doc: Reader) -> list[Draft]:
    kind, version = doc.get("format"), doc.get("version")
    if kind not in (GRIDLESS_ONE, GRIDLESS_MANY):
        refuse(f"This gridless file is a {str(kind)[:40]!r}, not an export of conversations.")
    if version != 1:
        refuse(f"This conversation export has format version {str(version)[:20]}; this gridless reads version 1 "
               "(was it made by a newer gridless?).")
    if kind == GRIDLESS_ONE:
        return [_gridless_one(doc, "the conversation")]
    items = doc.items("conversations", MAX_CONVERSATIONS, "conversations")
    return [_gridless_one(Reader(item, f"conversation {i}"), f"conversation {i}") for i, item in enumerate(items, 1)]


def _gridless_one(doc: Reader, where: str) -> Draft:
    conv = doc.obj("conversation")
    turns: list[DraftTurn] = []
    for i, value in enumerate(doc.items("messages", MAX_MESSAGES, "messages"), 1):
        m = Reader(value, f"{where}, message {i}")
        status = m.get("status") or MessageStatus.DONE
        if status not in set(MessageStatus):
            refuse(f"{m.where}: the status {str(status)[:40]!r} is not one gridless knows.")
        turns.append(DraftTurn(
            key=m.text("id"), parent=m.optional_text("parent_id"), role=checked_role(m.get("role"), m.where) or "user",
            content=m.text("content", ""), created_at=m.time("created_at"), reasoning=m.text("reasoning", ""),
            tools=_tools(m), stats=_stats(m.mapping("stats")), error=m.optional_text("error"),
            # nothing is being written any more: an answer exported mid-stream was cut off
            status=MessageStatus.INTERRUPTED if status == MessageStatus.STREAMING else MessageStatus(status)))
    by_key = {t.key: t for t in _in_tree_order(turns, where)}
    for i, value in enumerate(doc.items("attachments", MAX_FILES, "attachments")
                                  if doc.get("attachments") is not None else [], 1):
        a = Reader(value, f"{where}, attachment {i}")
        owner = by_key.get(a.text("message_id"))
        if owner is None:
            refuse(f"{a.where} belongs to message {a.text('message_id')[:80]!r}, which is not in the file.")
        kind = a.text("kind", "document")
        if kind not in ("image", "document"):
            refuse(f"{a.where}: the kind {kind[:40]!r} is neither image nor document.")
        owner.files.append(DraftFile(name=a.text("name"), kind=kind, data=_base64(a), text=a.text("text", "")))
    leaf = conv.optional_text("leaf_id")
    if leaf is not None and leaf not in by_key:
        refuse(f"{where}: the message shown last ({leaf[:80]!r}) is not in the file.")
    return Draft(title=conv.text("title", ""), system_prompt=conv.text("system_prompt", ""),
                 settings=conv.mapping("settings"), created_at=conv.time("created_at"),
                 updated_at=conv.time("updated_at"), leaf=leaf, turns=list(by_key.values()))


def _in_tree_order(turns: list[DraftTurn], where: str) -> list[DraftTurn]:
    by_key = {t.key: t for t in turns}
    return [by_key[key] for key, _ in ordered([(t.key, t.parent) for t in turns], where)]


def _tools(m: Reader) -> list[dict[str, Any]]:
    """Tool calls in the one shape the page and the prompt read: id, name, arguments and result as text, ok."""
    if m.get("tools") is None:
        return []
    calls = []
    for i, value in enumerate(m.items("tools", MAX_TOOL_CALLS, "tool calls"), 1):
        call = Reader(value, f"{m.where}, tool call {i}")
        arguments = call.get("arguments")
        shaped: dict[str, Any] = {"id": call.text("id", f"call_{i}"), "name": call.text("name"),
                                  "arguments": checked_text(arguments, f"{call.where}: 'arguments'")
                                  if isinstance(arguments, str) else _json_text(arguments)}
        if call.get("result") is not None:
            result = call.get("result")
            shaped["result"] = checked_text(result, f"{call.where}: 'result'") if isinstance(result, str) \
                else _json_text(result)
        shaped["ok"] = call.get("ok") is not False
        calls.append(shaped)
    return calls


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if value is not None else ""


def _stats(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stats.items() if isinstance(v, str | int | float | bool) and (
        k not in _NUMBER_STATS or (not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)))}


def _base64(a: Reader) -> bytes | None:
    if a.get("data") is None:
        return None
    try:
        return base64.b64decode(a.text("data"), validate=True)
    except (binascii.Error, ValueError):
        refuse(f"{a.where}: its data is not valid base64.")


# --- ChatGPT ------------------------------------------------------------------------------------

def _chatgpt(conv: Reader) -> Draft:
    mapping = conv.mapping("mapping")
    if len(mapping) > MAX_MESSAGES:
        refuse(f"{conv.where} has {len(mapping):,} messages; at most {MAX_MESSAGES:,} can be imported per "
               "conversation.")
    nodes = {key: Reader(node, f"{conv.where}, node {key[:40]!r}") for key, node in mapping.items()}
    parents = {key: node.optional_text("parent") for key, node in nodes.items()}
    kept_at: dict[str, str | None] = {}
    """Each node's nearest kept node, itself or above it: where a left-out node's children go."""
    turns: list[DraftTurn] = []
    for key, _ in ordered(list(parents.items()), conv.where):
        parent = parents[key]
        turn = _chatgpt_turn(key, kept_at[parent] if parent is not None else None, nodes[key])
        kept_at[key] = key if turn is not None else kept_at.get(parent) if parent is not None else None
        if turn is not None:
            turns.append(turn)
    current = conv.optional_text("current_node")
    if current is not None and current not in nodes:
        refuse(f"{conv.where}: its current node {current[:80]!r} is not in its mapping.")
    turns, leaf = _folded(turns, kept_at[current] if current is not None else None)
    return Draft(title=conv.text("title", ""), turns=turns, leaf=leaf, created_at=conv.time("create_time"),
                 updated_at=conv.time("update_time"))


def _chatgpt_turn(key: str, parent: str | None, node: Reader) -> DraftTurn | None:
    if node.get("message") is None:  # the root of the mapping holds no message
        return None
    message = node.obj("message")
    role = checked_role(message.obj("author").get("role"), message.where, also=lambda r: r == "tool")
    if role is None or message.mapping("metadata").get("is_visually_hidden_from_conversation") is True:
        return None
    text, reasoning = _chatgpt_content(message.obj("content"))
    if not text.strip() and not reasoning.strip():
        return None
    model = message.mapping("metadata").get("model_slug")
    return DraftTurn(key=key, parent=parent, role=role, content=text, reasoning=reasoning,
                     created_at=message.time("create_time"), stats={"model": model} if isinstance(model, str) else {})


def _chatgpt_content(content: Reader) -> tuple[str, str]:
    """What a message shows, and what it thought."""
    kind = content.get("content_type")
    if kind in _CHATGPT_SILENT:
        return "", ""
    if kind == "thoughts":
        thoughts = [Reader(t, f"{content.where}, thought") for t in content.items("thoughts", MAX_MESSAGES, "thoughts")]
        return "", "\n\n".join(s for t in thoughts for s in (t.text("summary", ""), t.text("content", "")) if s.strip())
    if kind == "code":
        return _fenced(content.text("text", ""), content.get("language")), ""
    if content.get("parts") is not None:
        parts = [_chatgpt_part(p, content.where) for p in content.items("parts", MAX_MESSAGES, "parts")]
        return "\n\n".join(p for p in parts if p.strip()), ""
    if content.get("text") is not None:
        return content.text("text"), ""
    return (f"[{kind[:40]}]" if isinstance(kind, str) else ""), ""


def _chatgpt_part(part: Any, where: str) -> str:
    """Text as it is; a picture, a sound or a file becomes a note of what was there."""
    if isinstance(part, str):
        return checked_text(part, f"{where}: a part")
    if not isinstance(part, dict):
        return ""
    kind = part.get("content_type")
    if kind == "audio_transcription" and isinstance(part.get("text"), str):
        return checked_text(part["text"], f"{where}: a transcription")
    return {"image_asset_pointer": "[image]", "audio_asset_pointer": "[audio]",
            "real_time_user_audio_video_asset_pointer": "[audio]"}.get(str(kind), "[file]")


def _fenced(code: str, language: Any) -> str:
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", code)), default=0))
    tag = language if isinstance(language, str) and language.isalnum() and language != "unknown" else ""
    return f"{fence}{tag}\n{code}\n{fence}"


def _folded(turns: list[DraftTurn], leaf: str | None) -> tuple[list[DraftTurn], str | None]:
    """An answer ChatGPT wrote in steps (thinking, then code, then text: a node each) becomes one
    message: an assistant node whose only child is an assistant node is folded into that child."""
    by_key = {t.key: t for t in turns}
    children: dict[str | None, list[str]] = {}
    for t in turns:
        children.setdefault(t.parent, []).append(t.key)
    gone: set[str] = set()
    for t in turns:  # parents first: a chain of steps folds down into its last one
        kids = children.get(t.key, [])
        if t.role != "assistant" or len(kids) != 1 or by_key[kids[0]].role != "assistant":
            continue
        step = by_key[kids[0]]
        step.content = "\n\n".join(s for s in (t.content, step.content) if s.strip())
        step.reasoning = "\n\n".join(s for s in (t.reasoning, step.reasoning) if s.strip())
        step.parent, step.created_at = t.parent, t.created_at if t.created_at is not None else step.created_at
        siblings = children[t.parent]
        siblings[siblings.index(t.key)] = step.key
        gone.add(t.key)
        leaf = step.key if leaf == t.key else leaf
    return [t for t in turns if t.key not in gone], leaf


# --- Open WebUI ---------------------------------------------------------------------------------

def _open_webui(item: Reader) -> Draft:
    chat = item.obj("chat")
    if chat.get("history") is not None:
        history = chat.obj("history")
        messages = history.mapping("messages")
        if len(messages) > MAX_MESSAGES:
            refuse(f"{item.where} has {len(messages):,} messages; at most {MAX_MESSAGES:,} can be imported per "
                   "conversation.")
        entries = [(key, Reader(m, f"{item.where}, message {key[:40]!r}")) for key, m in messages.items()]
        links = [(key, m.optional_text("parentId")) for key, m in entries]
        current = history.optional_text("currentId")
    else:  # an early export: only the branch shown, as a list
        listed = [Reader(m, f"{item.where}, message {i}")
                  for i, m in enumerate(chat.items("messages", MAX_MESSAGES, "messages"), 1)]
        entries = [(m.text("id", str(i)), m) for i, m in enumerate(listed, 1)]
        links = [(key, entries[i - 1][0] if i else None) for i, (key, _) in enumerate(entries)]
        current = entries[-1][0] if entries else None
    parents = dict(links)
    by_key = dict(entries)
    turns = [_open_webui_turn(key, parents[key], by_key[key]) for key, _ in ordered(links, item.where)]
    if current is not None and current not in by_key:
        refuse(f"{item.where}: its current message {current[:80]!r} is not in its history.")
    title = item.get("title") if isinstance(item.get("title"), str) else chat.get("title")
    return Draft(title=checked_text(title, f"{item.where}: 'title'") if isinstance(title, str) else "",
                 turns=turns, leaf=current, created_at=item.time("created_at"), updated_at=item.time("updated_at"))


def _open_webui_turn(key: str, parent: str | None, m: Reader) -> DraftTurn:
    content = m.get("content")
    if isinstance(content, list):  # OpenAI-style parts: text, and pictures as notes
        text = "\n\n".join(checked_text(p["text"], m.where) if isinstance(p, dict) and isinstance(p.get("text"), str)
                           else "[image]" for p in content)
    else:
        text = m.text("content", "")
    text, reasoning = _split_reasoning(text)
    error = m.get("error")
    message = error.get("content") if isinstance(error, dict) else error if isinstance(error, str) else None
    model = m.get("model")
    return DraftTurn(key=key, parent=parent, role=checked_role(m.get("role"), m.where) or "user",
                     content=text, reasoning=reasoning,
                     created_at=m.time("timestamp"), stats={"model": model} if isinstance(model, str) else {},
                     status=MessageStatus.ERROR if isinstance(message, str) else MessageStatus.DONE,
                     error=checked_text(message, m.where) if isinstance(message, str) else None)


def _split_reasoning(text: str) -> tuple[str, str]:
    """The answer and its thinking: Open WebUI writes the thinking into the answer, before it, as
    `<details type="reasoning">` blocks. Found with `find`, not one regex over the whole text:
    a text of many unclosed blocks would make a lazy regex quadratic."""
    thoughts: list[str] = []
    at = _SPACE.match(text).end()  # type: ignore[union-attr]
    while (opening := _REASONING.match(text, at)) is not None:
        end = text.find("</details>", opening.end())
        if end < 0:
            break
        summary = _SUMMARY.match(text, opening.end(), end)
        thoughts.append(_unquoted(html.unescape(text[summary.end() if summary else opening.end():end])))
        at = _SPACE.match(text, end + len("</details>")).end()  # type: ignore[union-attr]
    return (text[at:].strip(), "\n\n".join(t for t in thoughts if t)) if thoughts else (text, "")


def _unquoted(block: str) -> str:
    """Open WebUI writes thinking as a Markdown quote inside the answer; the text without the `>`."""
    return "\n".join(re.sub(r"^>\s?", "", line) for line in block.strip().splitlines()).strip()
