"""Collections of documents, under `/api` (see docs/knowledge.md).

- `GET/POST /api/collections`, `GET/PATCH/DELETE /api/collections/{id}`.
- `POST /api/collections/{id}/documents?name=FILE` takes the file as the raw request body, stores
  it and queues it (201, the document in state `queued`); `GET …/documents` lists them with their
  state and progress (`passages`, `embedded`); `GET/DELETE …/documents/{doc}`;
  `POST …/documents/{doc}/cancel` and `…/reindex`.
- `GET /api/collections/{id}/search?q=&k=&mode=` returns passages with their document, page,
  heading and score.
- `GET /api/passages/{n}`: a passage with its document (what a citation opens).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, StringConstraints
from starlette.requests import ClientDisconnect

from ..core.errors import AppError, ErrorCode
from ..knowledge.store import Document
from ..services import Services
from .deps import ServicesDep
from .responses import body_chunks

__all__ = ["DOCUMENT_UPLOAD_PATTERN", "router"]

router = APIRouter(include_in_schema=False)
DOCUMENT_UPLOAD_PATTERN = r"/api/collections/[0-9a-f]{1,64}/documents"
"""Where documents are uploaded: these requests have the documents' size limit."""

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class CollectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    project_id: str | None = None
    embedder: Annotated[str, StringConstraints(max_length=300)] | None = None
    """The embedding model to index it with (this device's or an engine server's); the active one if left out."""


class CollectionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None


async def _document_of(services: Services, collection_id: str, document_id: str) -> Document:
    await services.knowledge.collection(collection_id)
    document = await services.knowledge.document(document_id)
    if document.collection_id != collection_id:
        raise AppError(ErrorCode.NOT_FOUND, "There is no such document in this collection.")
    return document


@router.get("/api/collections")
async def list_collections(services: ServicesDep) -> dict[str, Any]:
    return {"collections": [c.to_json() for c in await services.knowledge.collections()]}


@router.post("/api/collections")
async def create_collection(body: CollectionIn, services: ServicesDep) -> Any:
    if body.project_id is not None and await services.projects.get(body.project_id) is None:
        raise AppError(ErrorCode.NOT_FOUND, "There is no such project.")
    collection = await services.knowledge.create_collection(body.name, description=body.description,
                                                            project_id=body.project_id, embedder=body.embedder)
    return JSONResponse(collection.to_json(), status_code=201)


@router.get("/api/collections/{collection_id}")
async def get_collection(collection_id: str, services: ServicesDep) -> dict[str, Any]:
    return (await services.knowledge.collection(collection_id)).to_json()


@router.patch("/api/collections/{collection_id}")
async def patch_collection(collection_id: str, body: CollectionPatch, services: ServicesDep) -> dict[str, Any]:
    collection = await services.knowledge.collection(collection_id)
    if body.name is not None:
        collection = await services.knowledge.rename(collection_id, body.name)
    return collection.to_json()


@router.delete("/api/collections/{collection_id}")
async def delete_collection(collection_id: str, services: ServicesDep) -> Response:
    await services.knowledge.delete_collection(collection_id)
    return Response(status_code=204)


@router.post("/api/collections/{collection_id}/documents")
async def add_document(collection_id: str, request: Request, services: ServicesDep,
                       name: str = Query(default="", max_length=500)) -> Any:
    try:
        document = await services.knowledge.add_document(collection_id, name, body_chunks(request))
    except ClientDisconnect:  # the gate ends a body past the limit as if the client had left
        raise AppError(ErrorCode.DOCUMENT_TOO_LARGE, f"The file is larger than the limit of "
                                                     f"{services.settings.max_document_mb} MB.") from None
    return JSONResponse(document.to_json(), status_code=201)


@router.get("/api/collections/{collection_id}/documents")
async def list_documents(collection_id: str, services: ServicesDep) -> dict[str, Any]:
    return {"documents": [d.to_json() for d in await services.knowledge.documents(collection_id)]}


@router.get("/api/collections/{collection_id}/documents/{document_id}")
async def get_document(collection_id: str, document_id: str, services: ServicesDep) -> dict[str, Any]:
    return (await _document_of(services, collection_id, document_id)).to_json()


@router.delete("/api/collections/{collection_id}/documents/{document_id}")
async def delete_document(collection_id: str, document_id: str, services: ServicesDep) -> Response:
    await _document_of(services, collection_id, document_id)
    await services.knowledge.delete_document(document_id)
    return Response(status_code=204)


@router.post("/api/collections/{collection_id}/documents/{document_id}/cancel")
async def cancel_document(collection_id: str, document_id: str, services: ServicesDep) -> dict[str, Any]:
    await _document_of(services, collection_id, document_id)
    return (await services.knowledge.cancel(document_id)).to_json()


@router.post("/api/collections/{collection_id}/documents/{document_id}/reindex")
async def reindex_document(collection_id: str, document_id: str, services: ServicesDep) -> dict[str, Any]:
    await _document_of(services, collection_id, document_id)
    return (await services.knowledge.reindex(document_id)).to_json()


@router.get("/api/collections/{collection_id}/search")
async def search_collection(collection_id: str, services: ServicesDep,
                            q: str = Query(default="", max_length=2000), k: int = Query(default=5, ge=1, le=50),
                            mode: Literal["hybrid", "vector", "words"] = "hybrid") -> dict[str, Any]:
    result = await services.knowledge.search([collection_id], q, k=k, mode=mode)
    return {"query": q, "mode": mode, "results": [h.to_json() for h in result.hits], "notice": result.notice}


@router.get("/api/passages/{passage_id}")
async def get_passage(passage_id: int, services: ServicesDep) -> dict[str, Any]:
    document, passages, index = await services.knowledge.passage_view(passage_id)
    p = passages[index]
    return {"passage_id": p.n, "text": p.text, "heading": p.heading, "page": p.page, "ordinal": p.ordinal,
            "document": document.to_json()}
