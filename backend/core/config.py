"""One settings object, built once at start-up from defaults, `GRIDLESS_*` variables and flags."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "default_cache_dir", "default_data_dir"]


def default_data_dir() -> Path:
    """Where conversations and media live unless told otherwise (XDG on Linux and Termux)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "gridless"


def default_cache_dir() -> Path:
    """Where files the app can make again live (XDG on Linux and Termux): shared by every data folder
    of this user, never backed up or moved."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gridless"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRIDLESS_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=1, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    cache_dir: Path = Field(default_factory=default_cache_dir)
    """Files made from what ships with the app (the bundled embedding model as a GGUF, the bundled
    Whisper base put together from its two packages)."""
    token: str | None = Field(default=None, min_length=16, max_length=256)

    chat_model: Path | None = None
    """A GGUF file to chat with; by default the bundled SmolLM2 (or the first GGUF in models_dir)."""
    models_dir: Path | None = None
    """Where downloaded and imported models are kept, and models put there by hand are found (every
    kind); defaults to `<data_dir>/models`."""

    context_length: int = Field(default=4096, ge=256, le=131072)
    """Context window allocated for the chat model; conversations may ask for less, not more."""
    threads: int = Field(default=0, ge=0, le=256)
    """Threads for inference; 0 means one per physical core but one."""
    kv_cache_mb: int = Field(default=512, ge=0, le=65536)
    """RAM kept for saved per-conversation KV states, so switching chats does not re-read history."""
    queue_limit: int = Field(default=8, ge=1, le=1000)
    """Requests that may wait for one engine before new ones are answered with 'busy'."""
    max_request_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)

    memory_fraction: float = Field(default=0.75, gt=0.05, le=1.0)
    """Share of physical RAM that loaded models may use together."""
    memory_budget_mb: int | None = Field(default=None, ge=64)
    """A fixed memory budget instead of the fraction, in MB (millions of bytes, as shown on the pages)."""
    idle_unload_s: float = Field(default=600.0, ge=0)
    """Models unused this long are unloaded; 0 keeps them loaded."""
    engine_stall_s: float = Field(default=300.0, ge=1)
    """A running job whose engine sends nothing for this long is taken to be stuck: its worker
    is stopped and the job fails, so the requests waiting behind it go on."""
    remote_silence_s: float = Field(default=300.0, ge=1)
    """An engine server that sends nothing for this long (before its first token: a long prompt on a
    slow machine) is taken to be gone."""
    remote_stream_s: float = Field(default=1800.0, ge=1)
    """The longest an answer from an engine server may stream."""
    remote_check_s: float = Field(default=60.0, ge=1)
    """How often the engine servers the owner added are asked whether they answer."""
    hf_endpoint: str | None = None
    """Hub address; defaults to `HF_ENDPOINT` or huggingface.co."""
    catalog: Path | None = None
    """The curated catalog file; defaults to `models/catalog.json` in the app."""
    max_model_upload_mb: int = Field(default=32 * 1024, ge=1)
    """Largest model file accepted through the upload form."""

    max_audio_upload_mb: int = Field(default=200, ge=1)
    """Largest recording or audio file accepted for transcription."""
    max_audio_seconds: float = Field(default=3600.0, ge=1)
    """Longest recording accepted for transcription (one hour)."""
    max_attachment_mb: int = Field(default=30, ge=1)
    """Largest photo or document accepted as an attachment to a chat message."""
    max_document_mb: int = Field(default=100, ge=1)
    """Largest document accepted into a collection."""
    shared_folder: Path | None = None
    """A folder of the device whose documents can be added to collections from the app (on a phone,
    its shared Documents or Download folder)."""

    share_port: int | None = Field(default=None, ge=1, le=65535)
    """Port for sharing on the local network; defaults to `port`."""
    pairing_code_ttl_s: float = Field(default=300.0, ge=2, le=300)
    """How long a pairing code from the QR stays valid (at most five minutes)."""
    device_idle_days: float = Field(default=30.0, gt=0)
    """A paired device unseen this long must pair again."""

    @field_validator("data_dir", "cache_dir", "chat_model", "models_dir", "catalog", "shared_folder", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @property
    def db_path(self) -> Path:
        return self.data_dir / "gridless.db"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    @property
    def device_idle_s(self) -> float:
        return self.device_idle_days * 86400

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def model_folder(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    @property
    def memory_budget_bytes(self) -> int | None:
        return self.memory_budget_mb * 1_000_000 if self.memory_budget_mb else None

    @property
    def hub_endpoint(self) -> str:
        return (self.hf_endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")

    @property
    def inference_threads(self) -> int:
        if self.threads:
            return self.threads
        import psutil

        # One core is left for the server and the browser, which render the answer while it
        # streams: llama.cpp's threads wait on each other at every step, so one of them losing
        # its core to another process slows decoding many times over (measured on 2 busy
        # cores: under 1 token/s with 2 threads, about 60 with 1).
        cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
        return max(1, cores - 1)
