"""POST /v1/embeddings, in the OpenAI shape, on the embedding engine the knowledge feature uses.

`input` is a string or a list of strings (token arrays are refused: the model's tokens are not
OpenAI's). `model` names an installed embedding model; left out, or one of OpenAI's own
embedding model names, it means the active one; any other name is `model_not_found` (404), as
for chat completions. Vectors come as numbers (`float`) or as the base64 of their little-endian
float32 bytes (`base64`). A text longer than the model takes is refused
(`context_length_exceeded`), not cut, so a caller never gets a vector of part of its text
without knowing. Texts get the model's passage prefix, as the app's own indexing does, or its query
prefix with `input_type: "query"` (not OpenAI's; Cohere and Voyage have such a field).
"""

from __future__ import annotations

import base64
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from ...core.errors import AppError, ErrorCode
from ...knowledge.embedder import embed
from ..deps import ServicesDep

__all__ = ["MAX_INPUTS", "MAX_TOTAL_CHARS", "router"]

router = APIRouter()
MAX_INPUTS = 2048
MAX_TOTAL_CHARS = 1_000_000
OPENAI_EMBEDDING_MODELS = {"text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"}


class EmbeddingsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input: Any
    """Checked by `_texts`, with messages that say what is wrong."""
    model: str | None = Field(default=None, max_length=256)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = Field(default=None, max_length=256)
    input_type: Literal["query", "passage", "document"] = "passage"
    """Not OpenAI's: whether the texts are search queries or the passages searched, for models that
    read the two with different prefixes (e5, nomic-embed-text)."""


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, list) and all(isinstance(x, str) for x in value):
        texts = list(value)
    elif isinstance(value, list) and value and all(isinstance(x, int | list) for x in value):
        raise AppError(ErrorCode.BAD_REQUEST, "input as token ids is not supported here; send the text itself",
                       param="input")
    else:
        raise AppError(ErrorCode.BAD_REQUEST, "input must be a string or a list of strings", param="input")
    if not texts:
        raise AppError(ErrorCode.BAD_REQUEST, "input is an empty list; send at least one text", param="input")
    if len(texts) > MAX_INPUTS:
        raise AppError(ErrorCode.BAD_REQUEST, f"input has {len(texts)} texts; at most {MAX_INPUTS} are taken at once",
                       param="input")
    total = sum(len(t) for t in texts)
    if total > MAX_TOTAL_CHARS:
        raise AppError(ErrorCode.BAD_REQUEST, f"input has {total} characters in all; at most {MAX_TOTAL_CHARS} "
                                              "are taken at once", param="input")
    for i, text in enumerate(texts):
        if not text.strip():
            where = "input" if isinstance(value, str) else f"input[{i}]"
            raise AppError(ErrorCode.BAD_REQUEST, f"{where} is empty; every text to embed needs some words",
                           param="input")
    return texts


@router.post("/embeddings")
async def embeddings(body: EmbeddingsBody, services: ServicesDep) -> dict[str, Any]:
    texts = _texts(body.input)
    host = services.embeddings
    named = body.model if body.model and body.model not in OPENAI_EMBEDDING_MODELS else None
    try:
        model = host.resolve(named)
    except AppError as exc:
        exc.param = "model"
        raise
    width = model.info.get("embedding_length")
    if body.dimensions is not None and width and body.dimensions != width:
        raise AppError(ErrorCode.BAD_REQUEST, f"{model.id} gives vectors of {width} dimensions; it cannot shorten "
                                              "them, so leave dimensions out or set it to that", param="dimensions")
    try:
        result = await embed(host, texts, purpose="query" if body.input_type == "query" else "passage",
                             model_id=model.id, truncate=False)
    except AppError as exc:
        if exc.code in (ErrorCode.CONTEXT_LENGTH_EXCEEDED, ErrorCode.BAD_REQUEST):
            exc.param = "input"
        raise
    if body.dimensions is not None and body.dimensions != result.dim:
        raise AppError(ErrorCode.BAD_REQUEST, f"{model.id} gives vectors of {result.dim} dimensions",
                       param="dimensions")
    if body.encoding_format == "base64":
        rows: list[Any] = [base64.b64encode(row.astype("<f4").tobytes()).decode("ascii") for row in result.vectors]
    else:
        rows = result.vectors.tolist()
    return {"object": "list", "model": result.model_id,
            "data": [{"object": "embedding", "index": i, "embedding": row} for i, row in enumerate(rows)],
            "usage": {"prompt_tokens": result.tokens, "total_tokens": result.tokens}}
