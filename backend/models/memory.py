"""How much RAM a model will take once loaded, worked out before loading (or downloading) it.

For a GGUF language model the parts are the ones llama.cpp allocates on a CPU:
- weights: the tensor data, memory-mapped and read in full while generating;
- KV cache: per layer and per context position, one f16 key and value vector per KV head;
- compute buffer: the largest of the per-batch scratch tensors, which is either the
  logits of a full batch or one head's attention scores over the whole context;
- the worker's interpreter and libraries.
It is a ceiling: pages of the caches that a short chat never touches are not resident yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..core.jobs import Job
from ..core.units import MIB, format_bytes
from .gguf_info import ENCODER_ARCHITECTURES as _ENCODERS

__all__ = ["EMBEDDING_BATCH", "MemoryEstimate", "embedding_batch", "estimate_embedding", "estimate_file_model",
           "estimate_llm", "largest_context_within"]

WORKER_OVERHEAD = 64 * MIB
"""A worker process with Python, numpy and the engine's libraries, before any model."""
_F16 = 2
_F32 = 4


@dataclass(kw_only=True, slots=True, frozen=True)
class MemoryEstimate:
    weights: int
    kv_cache: int
    compute: int
    overhead: int
    context_length: int | None = None

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute + self.overhead

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"total": self.total}

    def describe(self) -> str:
        parts = [f"weights {format_bytes(self.weights)}"]
        if self.kv_cache:
            parts.append(f"KV cache {format_bytes(self.kv_cache)} for {self.context_length} tokens")
        parts.append(f"working memory {format_bytes(self.compute + self.overhead)}")
        return f"about {format_bytes(self.total)} ({', '.join(parts)})"


def _int(shape: Mapping[str, Any], key: str) -> int:
    return int(shape.get(key) or 0)


def kv_bytes_per_token(shape: Mapping[str, Any]) -> int:
    return (_int(shape, "layers") * _int(shape, "head_count_kv")
            * (_int(shape, "key_length") + _int(shape, "value_length")) * _F16)


def _compute_bytes(shape: Mapping[str, Any], n_ctx: int, n_batch: int) -> int:
    logits = _int(shape, "vocab_size") * n_batch * _F32
    scores = n_batch * n_ctx * max(_int(shape, "head_count"), 1) * _F32
    activations = n_batch * (_int(shape, "embedding_length") * 8 + _int(shape, "feed_forward_length") * 2) * _F32
    return max(logits, scores) + activations


def estimate_llm(shape: Mapping[str, Any], weights: int, n_ctx: int, *, n_batch: int = 512) -> MemoryEstimate:
    """Memory of a llama.cpp worker holding a model of this shape (`GgufInfo.summary()`)
    whose files (model and projector) take `weights` bytes, with an `n_ctx` context."""
    return MemoryEstimate(weights=weights, kv_cache=kv_bytes_per_token(shape) * n_ctx,
                          compute=_compute_bytes(shape, n_ctx, n_batch), overhead=WORKER_OVERHEAD,
                          context_length=n_ctx)


def largest_context_within(shape: Mapping[str, Any], weights: int, budget: int, *, n_batch: int = 512,
                           minimum: int = 512) -> int | None:
    """The longest context (a multiple of 256) whose estimate fits `budget`, if any ≥ `minimum`."""
    def fits(steps: int) -> bool:
        return estimate_llm(shape, weights, steps * 256, n_batch=n_batch).total <= budget

    low, high = 0, (_int(shape, "trained_context") or 131072) // 256
    while low < high:  # the estimate grows with the context, so the fitting lengths are a prefix
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    best = low * 256
    return best if best >= minimum else None


EMBEDDING_BATCH = 2048
"""Tokens in one batch of the embedding engine, and so the longest text it takes (a smaller trained
context lowers both)."""
_EMBEDDING_MAX_CONTEXT = 8192


def embedding_batch(shape: Mapping[str, Any]) -> int:
    """The batch (and longest text) an embedding model of this shape is loaded with."""
    return min(EMBEDDING_BATCH, _int(shape, "trained_context") or 512, _EMBEDDING_MAX_CONTEXT)


def estimate_embedding(shape: Mapping[str, Any], weights: int, n_batch: int | None = None) -> MemoryEstimate:
    """Memory of an embedding worker: the weights, one batch's activations and attention scores
    (every text of a batch is one step, so the scores span the batch), and for a decoder-based
    model the KV cache of that batch."""
    n = n_batch or embedding_batch(shape)
    heads = max(_int(shape, "head_count"), 1)
    scores = n * n * heads * _F32
    activations = n * (_int(shape, "embedding_length") * 8 + _int(shape, "feed_forward_length") * 2) * _F32
    kv = 0 if shape.get("architecture") in _ENCODERS else kv_bytes_per_token(shape) * n
    return MemoryEstimate(weights=weights, kv_cache=kv, compute=scores + activations, overhead=WORKER_OVERHEAD,
                          context_length=n if kv else None)


_FILE_MODEL_FACTORS: dict[str, tuple[float, int]] = {
    # job: (times the file size, plus working memory) — measured on the bundled and tiny models
    Job.IMAGES: (1.1, 320 * MIB),
    Job.SPEECH: (2.0, 120 * MIB),
    Job.VOICE: (1.5, 60 * MIB),
    Job.EMBEDDINGS: (1.25, 192 * MIB),
}


def estimate_file_model(job: str, size: int) -> MemoryEstimate:
    """A rougher estimate for engines whose memory follows their file size."""
    factor, extra = _FILE_MODEL_FACTORS.get(job, (1.2, 128 * MIB))
    return MemoryEstimate(weights=size, kv_cache=0, compute=int(size * (factor - 1)) + extra,
                          overhead=WORKER_OVERHEAD)
