"""Generation settings a conversation keeps, with their bounds and defaults."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["GenerationSettings"]


class GenerationSettings(BaseModel):
    model_config = ConfigDict(extra="ignore")

    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(default=1024, ge=1, le=32768)
    context_length: int = Field(default=4096, ge=256, le=131072)
    thinking: Literal["auto", "on", "off"] = "auto"
    """For a model that thinks: its own default, always, or never (by the model's own mechanism)."""
    thinking_budget: int | None = Field(default=None, ge=16, le=32768)
    """With thinking on: tokens of thinking after which the model is made to answer."""
    tools: Literal["off", "auto", "required"] = "off"
    """The app's built-in tools: not offered, offered for the model to call when it decides, or
    called first in every answer (the call then constrained by a grammar: a small model that
    would not decide to call one still calls it well)."""

    @classmethod
    def from_stored(cls, data: dict[str, Any], *, context_cap: int) -> GenerationSettings:
        """Stored settings, tolerant of old or hand-edited values: bad fields fall back to defaults."""
        try:
            settings = cls.model_validate(data)
        except ValidationError:
            good = {k: v for k, v in data.items() if _field_ok(k, v)}
            settings = cls.model_validate(good)
        if settings.context_length > context_cap:
            settings = settings.model_copy(update={"context_length": context_cap})
        return settings


def _field_ok(name: str, value: Any) -> bool:
    try:
        GenerationSettings.model_validate({name: value})
    except ValidationError:
        return False
    return True
