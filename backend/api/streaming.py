"""Streamed answers (server-sent events, NDJSON, audio) that end their work when they end."""

from __future__ import annotations

from typing import Any

from fastapi.responses import StreamingResponse

__all__ = ["ClosingStreamingResponse"]


class ClosingStreamingResponse(StreamingResponse):
    """Closes its generator when the response ends for any reason. When a client goes away
    mid-stream the framework stops iterating but leaves the generator to the garbage
    collector, so its cleanup (cancelling the job) would run at some later time."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()
