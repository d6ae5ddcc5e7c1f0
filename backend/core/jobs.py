"""What a model is for, and which engine runs it."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Job"]


class Job(StrEnum):
    """A model's job. It also names the engine slot that runs it: one worker per slot under
    the residency manager, where a vision model runs in the chat slot (the same llama.cpp
    engine, with its projector)."""

    CHAT = "chat"
    VISION = "vision"
    IMAGES = "images"
    SPEECH = "speech"
    VOICE = "voice"
    EMBEDDINGS = "embeddings"

    @property
    def slot(self) -> Job:
        """The engine slot that runs models of this job."""
        return Job.CHAT if self is Job.VISION else self

    @property
    def is_language(self) -> bool:
        """A language model (with or without sight): answers chats."""
        return self in (Job.CHAT, Job.VISION)

    @property
    def engine_name(self) -> str:
        """The slot in words for a person: "the language model"."""
        return _ENGINE_NAMES[self.slot]


_ENGINE_NAMES = {Job.CHAT: "the language model", Job.IMAGES: "the image model", Job.SPEECH: "the speech model",
                 Job.VOICE: "the voice", Job.EMBEDDINGS: "the embedding model"}
