"""What the model manager refuses, in words for people."""

from __future__ import annotations

from ..core.errors import AppError, ErrorCode

__all__ = ["ModelManagerError", "unknown_model"]


class ModelManagerError(AppError):
    """A request the manager refuses; the message is for people."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.MODEL_REFUSED) -> None:
        super().__init__(code, message)


def unknown_model(model_id: str, job: str | None = None) -> ModelManagerError:
    return ModelManagerError(f"no {job} model '{model_id}'" if job else f"no model '{model_id}'",
                             ErrorCode.MODEL_NOT_FOUND)
