"""The search_documents tool: the model looks through the person's collections of documents.

It searches the collections turned on for the conversation (or, when none is, all of the
person's collections) by words and by meaning together, as the Documents page does, and reads
the passages found with their document, page and heading; nothing leaves the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ...core.errors import AppError
from ...knowledge.service import KnowledgeService
from .registry import Tool, ToolError

__all__ = ["SearchDocumentsTool"]

PASSAGE_CHARS = 700


class SearchDocumentsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=300,
                       description="What to look for, as a question or key words, e.g. 'warranty period of the oven'")
    limit: int = Field(default=4, ge=1, le=8, description="How many passages to return")


class SearchDocumentsTool(Tool):
    name: ClassVar[str] = "search_documents"
    title: ClassVar[str] = "Search documents"
    description: ClassVar[str] = (
        "Search the person's own documents (PDFs, notes, manuals they added to the app) and get the passages "
        "that best match, with each document's name and page. Use it when a question may be answered by "
        "their documents.")
    Args: ClassVar[type[BaseModel]] = SearchDocumentsArgs

    def __init__(self, knowledge: KnowledgeService, collection_ids: Sequence[str] = ()) -> None:
        self.knowledge = knowledge
        self.collection_ids = list(collection_ids)
        """The collections to search; all of the person's when empty."""

    async def run(self, args: BaseModel) -> str:
        assert isinstance(args, SearchDocumentsArgs)
        if not any(c.isalnum() for c in args.query):
            raise ToolError("the query has no words to look for")
        ids = self.collection_ids or [c.id for c in await self.knowledge.collections()]
        if not ids:
            return "The person has not added any documents to the app."
        try:
            result = await self.knowledge.search(ids, args.query, k=args.limit)
        except AppError as exc:
            raise ToolError(exc.message) from None
        if not result.hits:
            return f"No passage of the documents matches {args.query!r}."
        lines = []
        for hit in result.hits:
            where = f"«{hit.document_name}»" + (f", page {hit.passage.page}" if hit.passage.page else "")
            if hit.passage.heading:
                where += f", {hit.passage.heading}"
            text = " ".join(hit.passage.text.split())
            if len(text) > PASSAGE_CHARS:
                text = text[:PASSAGE_CHARS - 1] + "…"
            lines.append(f"- From {where}: {text}")
        if result.notice:
            lines.append(f"({result.notice})")
        return "\n".join(lines)
