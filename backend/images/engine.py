"""The image engine: stable-diffusion.cpp in its own worker, a heavy model under the residency
manager (the language model is unloaded first when both do not fit, and the other way round)."""

from __future__ import annotations

from ..core.config import Settings
from ..core.jobs import Job
from ..engines.diffusion import DiffusionConfig
from ..models.manager import ModelManager
from ..models.registry import ModelRecord
from ..runtime.host import EngineHost, EngineSpec
from ..runtime.residency import ResidencyManager

__all__ = ["image_engine"]


def image_engine(settings: Settings, manager: ModelManager, residency: ResidencyManager) -> EngineHost:
    def configure(model: ModelRecord, _estimate: int) -> DiffusionConfig:
        return DiffusionConfig(model_path=str(model.path), n_threads=settings.inference_threads,
                               **model.info.get("components", {}))

    spec = EngineSpec(slot=Job.IMAGES, factory="backend.engines.diffusion:DiffusionEngine", configure=configure,
                      heavy=True, stall_timeout_s=settings.engine_stall_s)
    return EngineHost(spec, manager, residency, queue_limit=settings.queue_limit)
