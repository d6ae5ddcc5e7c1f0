"""The image engine: stable-diffusion.cpp in its own worker, a heavy model under the residency
manager (the language model is unloaded first when both do not fit, and the other way round)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from ..core.config import Settings
from ..core.errors import ErrorCode
from ..core.jobs import Job
from ..engines.diffusion import DiffusionConfig, GenerateRequest, GenerateResult
from ..models.manager import ModelManager
from ..models.registry import ModelRecord
from ..remote.routing import RoutedEngines
from ..remote.service import RemoteEngines, relay
from ..runtime.host import EngineHost, EngineJob, EngineSpec
from ..runtime.protocol import Event, JobFailed
from ..runtime.residency import ResidencyManager
from ..runtime.scheduler import PositionCallback

__all__ = ["ImageEngines", "image_engine"]


def image_engine(settings: Settings, manager: ModelManager, residency: ResidencyManager) -> EngineHost:
    def configure(model: ModelRecord, _estimate: int) -> DiffusionConfig:
        return DiffusionConfig(model_path=str(model.path), n_threads=settings.inference_threads,
                               **model.info.get("components", {}))

    spec = EngineSpec(slot=Job.IMAGES, factory="backend.engines.diffusion:DiffusionEngine", configure=configure,
                      heavy=True, stall_timeout_s=settings.engine_stall_s)
    return EngineHost(spec, manager, residency, queue_limit=settings.queue_limit)


class ImageEngines(RoutedEngines):
    """The image models: a server's image model when one is marked for pictures and its server is not
    known to be down (a bigger model on a laptop's GPU), else this device's. A picture made from
    another one is made here: OpenAI's generations take no picture to start from."""

    def __init__(self, local: EngineHost, remote: RemoteEngines) -> None:
        super().__init__(local, remote, Job.IMAGES)

    def resolve(self, model_id: str | None, *, from_picture: bool = False) -> Any:
        """The model a request names, else the one in use; for a picture made from another one, this
        device's unless a model is named."""
        if from_picture and not model_id:
            return self.local.resolve(None)
        return super().resolve(model_id)

    async def stream(self, request: GenerateRequest, job: EngineJob, *, model_id: str | None = None,
                     on_position: PositionCallback | None = None) -> AsyncGenerator[Event, None]:
        remote = self._remote(model_id) if model_id or request.init_image is None else None
        if remote is not None and request.init_image is not None:
            yield JobFailed(job_id=job.id, code=ErrorCode.BAD_REQUEST,
                            message=f"{remote.name} makes new pictures only; starting from a picture is done with "
                                    "this device's image model.")
            return
        if remote is None:
            async for event in self._here(request, job, model_id, on_position=on_position):
                yield event
            return
        async for event in relay(self.remote.pictures(remote, request, job), job, self._running,
                                 GenerateResult(finish_reason="cancelled")):
            yield event
