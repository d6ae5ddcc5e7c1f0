"""An engine slot whose work may also go to a server's model: dictation to a laptop's Whisper,
pictures to its image model. A server's model for the slot's job is used while its server is not
known to be down (the first one, when several are marked); otherwise this device's engine host."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from ..core.jobs import Job
from ..models.registry import ModelRecord
from ..runtime.host import EngineHost, EngineJob
from ..runtime.protocol import Event, Request
from .service import RemoteEngines

__all__ = ["RoutedEngines"]


class RoutedEngines:
    def __init__(self, local: EngineHost, remote: RemoteEngines, job: Job) -> None:
        self.local = local
        self.remote = remote
        self.job = job
        self._running: dict[str, Any] = {}
        """Requests to a server in flight, by job id, for `cancel`."""

    @property
    def model(self) -> Any:
        """The model work goes to now."""
        return self.remote.first(self.job) or self.local.model

    @property
    def loaded(self) -> Any:
        return self.remote.first(self.job) or self.local.loaded

    async def warm(self) -> None:
        if self.remote.first(self.job) is None:
            await self.local.warm()

    def resolve(self, model_id: str | None) -> Any:
        """The model a request names (a server's for this job, or this device's), else the one in use."""
        return self._remote(model_id) or self.local.resolve(model_id)

    def _remote(self, model_id: str | None) -> ModelRecord | None:
        if model_id:
            record = self.remote.get(model_id)
            return record if record is not None and record.job is self.job else None
        return self.remote.first(self.job)

    async def _here(self, request: Request, job: EngineJob, model_id: str | None, **options: Any
                    ) -> AsyncGenerator[Event, None]:
        events = self.local.stream(request, job, model_id=model_id, **options)
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()

    def cancel(self, job: EngineJob) -> None:
        job.cancelled = True
        self.local.cancel(job)
        running = self._running.get(job.id)
        if running is not None:  # the request to the server is closed; it stops there too
            running.cancel()

    def kill(self) -> None:
        self.local.kill()

    async def close(self) -> None:
        await self.local.close()
