"""The curated catalog: recommended models per job and device size (`models/catalog.json`)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..core.jobs import Job
from ..core.resources import CATALOG_FILE
from ..core.units import MIB, format_bytes
from .files import allowed_suffixes
from .memory import MemoryEstimate, estimate_embedding, estimate_file_model, estimate_llm
from .names import safe_relative_path, safe_repo_id

__all__ = ["CATALOG_FILE", "Catalog", "CatalogEntry", "CatalogError", "CatalogFile", "Feature", "Fit",
           "embedding_prefixes_for"]

Feature = Literal["thinking", "tools", "vision"]
"""What a language model can do beyond plain chat: think before answering, call tools, see photos."""


class CatalogError(ValueError):
    pass


class CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    role: Literal["model", "projector", "config"] = "model"
    size_mb: float = Field(gt=0)
    """Approximate; the exact size comes from the hub when the download starts."""
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    """When set, the hub's checksum must match it; otherwise the hub's LFS checksum is used."""

    @field_validator("path")
    @classmethod
    def _safe(cls, value: str) -> str:
        return safe_relative_path(value)  # UnsafeName is a ValueError: pydantic reports it


class LlmShape(BaseModel):
    """What the memory estimate needs from a language model's header, known in advance."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layers: int = Field(gt=0)
    head_count: int = Field(gt=0)
    head_count_kv: int = Field(gt=0)
    key_length: int = Field(gt=0)
    value_length: int = Field(gt=0)
    embedding_length: int = Field(gt=0)
    feed_forward_length: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    trained_context: int = Field(gt=0)


class CatalogEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,79}$")
    job: Job
    name: str = Field(min_length=1, max_length=80)
    description: str = Field(max_length=400)
    repo: str
    files: list[CatalogFile] = Field(min_length=1)
    license: str
    quantization: str | None = None
    parameters: str | None = None
    shape: LlmShape | None = None
    features: list[Feature] = []
    """From the family's chat template (thinking, tools) and its projector (vision); sorted."""
    min_device_ram_gb: float = Field(gt=0)
    """The smallest phone (total RAM) this is recommended for."""
    query_prefix: str = Field(default="", max_length=200)
    """An embedding model's words before a search query, as its model card asks ("query: ")."""
    passage_prefix: str = Field(default="", max_length=200)
    """An embedding model's words before a passage it indexes ("passage: ")."""
    languages: list[str] = []
    """For an embedding model: the languages it is made for (ISO 639-1); empty means English.
    For a voice: the one language it speaks, so that an answer can be read by a voice that speaks its
    language (the installed voice's own `.onnx.json` says it too)."""

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        return safe_repo_id(value)

    @field_validator("features")
    @classmethod
    def _features(cls, value: list[Feature]) -> list[Feature]:
        if value != sorted(set(value)):
            raise ValueError("features must be sorted and listed once each")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CatalogEntry:
        models = [f for f in self.files if f.role == "model"]
        if len(models) != 1:
            raise ValueError("exactly one file must have the role 'model'")
        if self.job == Job.VISION and not any(f.role == "projector" for f in self.files):
            raise ValueError("a vision model needs its projector (mmproj) file")
        if self.job in (Job.CHAT, Job.VISION) and self.shape is None:
            raise ValueError("a language model needs its shape for the memory estimate")
        suffixes = allowed_suffixes(self.job)
        for f in self.files:
            if not f.path.endswith(suffixes):
                raise ValueError(f"{f.path}: a {self.job} model file must end with one of {suffixes}")
        if self.features and self.job not in (Job.CHAT, Job.VISION):
            raise ValueError(f"only a language model has features, not a {self.job} model")
        if (self.job == Job.VISION) != ("vision" in self.features):
            raise ValueError("a vision model, and only a vision model, has the feature 'vision'")
        if self.job != Job.EMBEDDINGS and (self.query_prefix or self.passage_prefix):
            raise ValueError(f"only an embedding model has prefixes, not a {self.job} model")
        if self.job not in (Job.EMBEDDINGS, Job.VOICE) and self.languages:
            raise ValueError(f"only an embedding model or a voice has languages, not a {self.job} model")
        if self.job == Job.VOICE and len(self.languages) > 1:
            raise ValueError("a voice speaks one language: list one")
        if any(not re.fullmatch(r"[a-z]{2}", code) for code in self.languages):
            raise ValueError("languages are two-letter ISO 639-1 codes")
        return self

    @property
    def prefixes(self) -> dict[str, str]:
        """What an embedding model's record keeps of its prefixes (`ModelRecord.info`)."""
        return {"query_prefix": self.query_prefix, "passage_prefix": self.passage_prefix}

    @property
    def main_file(self) -> CatalogFile:
        return next(f for f in self.files if f.role == "model")

    @property
    def size_bytes(self) -> int:
        return int(sum(f.size_mb for f in self.files) * 1_000_000)

    def estimate(self, n_ctx: int) -> MemoryEstimate:
        if self.shape is not None and self.job == Job.EMBEDDINGS:
            return estimate_embedding(self.shape.model_dump(), self.size_bytes)
        if self.shape is not None:
            shape = self.shape.model_dump()
            return estimate_llm(shape, self.size_bytes, min(n_ctx, self.shape.trained_context))
        return estimate_file_model(self.job, self.size_bytes)


_FAMILY_PREFIXES = (("nomic-embed-text", "search_query: ", "search_document: "), ("e5", "query: ", "passage: "))


def embedding_prefixes_for(name: str) -> dict[str, str]:
    """The query and passage prefixes of an embedding model that is not in the catalog, from its family
    as its name tells (e5 and nomic-embed-text models expect them); none for others."""
    lowered = name.lower()
    for family, query, passage in _FAMILY_PREFIXES:
        if re.search(rf"(^|[^a-z0-9]){re.escape(family)}([^a-z0-9]|$)", lowered):
            return {"query_prefix": query, "passage_prefix": passage}
    return {"query_prefix": "", "passage_prefix": ""}


class Fit(BaseModel):
    fits: bool
    estimate: int
    reason: str | None = None


class Catalog:
    def __init__(self, entries: list[CatalogEntry]) -> None:
        self.entries = entries
        self._by_id = {e.id: e for e in entries}

    @classmethod
    def load(cls, path: Path = CATALOG_FILE) -> Catalog:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CatalogError(f"cannot read the catalog {path}: {exc}") from None
        if not isinstance(raw, dict) or raw.get("version") != 1 or not isinstance(raw.get("models"), list):
            raise CatalogError(f"{path} is not a version 1 catalog")
        entries: list[CatalogEntry] = []
        for i, item in enumerate(raw["models"]):
            try:
                entries.append(CatalogEntry.model_validate(item))
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(x) for x in first["loc"])
                raise CatalogError(f"{path}: entry {i} ({item.get('id', '?')}): {where}: {first['msg']}") from None
        seen: set[str] = set()
        for entry in entries:
            if entry.id in seen:
                raise CatalogError(f"{path}: the id '{entry.id}' is used by more than one entry")
            seen.add(entry.id)
        return cls(entries)

    def get(self, entry_id: str) -> CatalogEntry | None:
        return self._by_id.get(entry_id)

    def for_job(self, job: str) -> list[CatalogEntry]:
        return [e for e in self.entries if e.job == job]

    @staticmethod
    def fit(entry: CatalogEntry, *, budget: int, physical: int, n_ctx: int) -> Fit:
        """Whether the entry suits this device, and why not."""
        estimate = entry.estimate(n_ctx).total
        if estimate > budget:
            return Fit(fits=False, estimate=estimate,
                       reason=f"needs about {format_bytes(estimate)}, more than the "
                              f"{format_bytes(budget)} memory budget of this device")
        if physical < entry.min_device_ram_gb * 1024 * MIB * 0.9:
            return Fit(fits=False, estimate=estimate,
                       reason=f"recommended for devices with {entry.min_device_ram_gb:g} GB of RAM or more")
        return Fit(fits=True, estimate=estimate)

