"""How one stored message, or the answer being written, looks on the page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from nicegui import ui

from backend.core.i18n import _, format_decimal, ngettext
from backend.core.jobs import Job
from backend.storage.attachments import Attachment
from backend.storage.conversations import Branches, Message, MessageStatus

from .aria import named
from .attachments import message_attachments
from .knowledge_citations import CitedMarkdown

__all__ = ["MARKDOWN_EXTRAS", "SwitchHandler", "answer_markdown", "branch_switcher", "stats_text", "user_bubble"]

MARKDOWN_EXTRAS = ["fenced-code-blocks", "tables", "cuddled-lists", "strike", "code-friendly"]
SwitchHandler = Callable[[str], Awaitable[None]]
"""Shows the version of a message with this id (and the branch that follows it)."""


def _engine_name(job: str) -> str:
    """An engine in words for a person ("the language model")."""
    slot = Job(job).slot
    return {Job.CHAT: _("the language model"), Job.IMAGES: _("the image model"), Job.SPEECH: _("the speech model"),
            Job.VOICE: _("the voice"), Job.EMBEDDINGS: _("the embedding model")}.get(slot, slot.engine_name)


def stats_text(stats: dict[str, Any], status: str = MessageStatus.DONE) -> str:
    """The line under an answer, in the page's language. Whole counts are written without
    separators (as a measurement reads: "1234 ms"), decimals in the language's way."""
    parts: list[str] = []
    if stats.get("kind") == "image":
        if stats.get("seconds") is not None:
            parts.append(_("picture made in {seconds} s", seconds=format_decimal(stats["seconds"], 1)))
        if stats.get("seed") is not None:
            parts.append(_("seed {seed}", seed=stats["seed"]))
    if stats.get("ttft_s") is not None:
        parts.append(_("{ms} ms to first token", ms=str(round(stats["ttft_s"] * 1000))))
    if stats.get("tokens_per_s"):
        parts.append(_("{rate} tok/s", rate=format_decimal(stats["tokens_per_s"], 1)))
    if stats.get("completion_tokens"):
        tokens = int(stats["completion_tokens"])
        parts.append(ngettext("{count} token", "{count} tokens", tokens, count=str(tokens)))
    if stats.get("finish_reason") == "cancelled":
        parts.append(_("stopped"))
    elif stats.get("finish_reason") == "length":
        parts.append(_("reached the token limit"))
    if stats.get("trimmed_messages"):
        parts.append(ngettext("{n} earlier message left out to fit the context",
                              "{n} earlier messages left out to fit the context", int(stats["trimmed_messages"])))
    if stats.get("unloaded"):
        parts.append(_("unloaded {engines} to make room",
                       engines=", ".join(_engine_name(s) for s in stats["unloaded"])))
    if status == MessageStatus.INTERRUPTED:
        parts.append(_("interrupted"))
    return " · ".join(parts)


def answer_markdown(text: str, sources: Sequence[dict[str, Any]] = ()) -> ui.markdown:
    """An answer's Markdown; its citations of `sources` ([1] [2]) link to their passages."""
    return CitedMarkdown(text, sources=sources, extras=MARKDOWN_EXTRAS).classes("gl-answer w-full")


def branch_switcher(branches: Branches, on_switch: SwitchHandler) -> None:
    """‹ 2/3 ›: which version of a message is shown, and the buttons to the others."""
    index, ids = branches.index, branches.ids
    with named(ui.row().classes("items-center no-wrap gap-0 text-grey-7").props("role=group data-testid=branches"),
               _("Versions")):
        named(ui.button(icon="chevron_left", on_click=lambda: on_switch(ids[index - 1]))
              .props("flat round dense size=sm data-testid=branch-prev"), _("Previous version")) \
            .set_enabled(index > 0)
        ui.label(f"{index + 1}/{len(ids)}").classes("text-caption").props("data-testid=branch-label")
        named(ui.button(icon="chevron_right", on_click=lambda: on_switch(ids[index + 1]))
              .props("flat round dense size=sm data-testid=branch-next"), _("Next version")) \
            .set_enabled(index < len(ids) - 1)


def user_bubble(message: Message, on_edit: Callable[[Message, str], Awaitable[None]] | None,
                attachments: list[Attachment] | None = None, branches: Branches | None = None,
                on_switch: SwitchHandler | None = None) -> None:
    """A user message with its photos and documents, its versions (‹ 2/3 ›) and an edit mode
    that sends it again as a new version (the earlier one keeps its answers; the attachments
    stay with it)."""
    with ui.column().classes("w-full items-end gap-1").props(f"data-message-id={message.id}") as box:
        def show() -> None:
            box.clear()
            with box:
                if attachments:
                    message_attachments(attachments)
                if message.content or not attachments:
                    ui.label(message.content).classes("gl-bubble-user").props("data-testid=user-message")
                with ui.row().classes("items-center no-wrap gap-0"):
                    if branches is not None and on_switch is not None:
                        branch_switcher(branches, on_switch)
                    if on_edit is not None:
                        named(ui.button(icon="edit", on_click=edit).props("flat round dense size=sm"), _("Edit")) \
                            .classes("text-grey-6")

        def edit() -> None:
            assert on_edit is not None
            box.clear()
            with box, ui.card().classes("w-full"):
                field = named(ui.textarea(value=message.content).props("autogrow autofocus outlined"),
                              _("Your message")).classes("w-full")
                with ui.row().classes("w-full justify-end"):
                    ui.button(_("Cancel"), on_click=show).props("flat")
                    ui.button(_("Send"), on_click=lambda: on_edit(message, field.value)) \
                        .props("data-testid=edit-send")

        show()
