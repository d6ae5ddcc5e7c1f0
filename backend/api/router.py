"""The /v1 router: OpenAI-compatible routes, each resource in its own module."""

from __future__ import annotations

from fastapi import APIRouter

from .routes import audio, chat, embeddings, images, models

__all__ = ["api_router"]

api_router = APIRouter(prefix="/v1")
api_router.include_router(models.router)
api_router.include_router(chat.router)
api_router.include_router(audio.router)
api_router.include_router(images.router)
api_router.include_router(embeddings.router)
