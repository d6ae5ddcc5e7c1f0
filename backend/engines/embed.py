"""Text embeddings with llama.cpp: typed requests/events (both sides) and the worker (child side).

One request embeds a list of texts. They are tokenized first (so a text that is empty or too
long is refused before any work), then packed in order into batches of up to `n_batch` tokens,
as many whole texts as fit, each its own sequence; one llama.cpp decode per batch gives every
text's pooled vector. Between batches the engine reports how many texts are done and looks for
a cancel, so a long indexing job keeps the stall watchdog fed and stops promptly. Vectors are
read straight from llama.cpp's buffer into one float32 array and normalized together.

The longest text a model takes is the smaller of its context and the batch: a text must fit in
one batch, and an encoder (BERT) needs the whole batch in one step. A longer text is cut to it
(its closing special token kept), or refused when the request says not to cut.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import AppError, ErrorCode
from ..runtime.child import JobContext
from ..runtime.protocol import Event, Request, Result
from .gguf_check import check_gguf_file

__all__ = ["MAX_CONTEXT", "EmbedConfig", "EmbedEngine", "EmbedProgress", "EmbedRequest", "EmbedResult"]

MAX_CONTEXT = 8192
"""The longest context an embedding model is loaded with, whatever it was trained for."""
_POOLING_NAMES = {0: "none", 1: "mean", 2: "cls", 3: "last", 4: "rank"}


@dataclass(kw_only=True, slots=True)
class EmbedConfig:
    model_path: str
    n_threads: int = 2
    n_ctx: int = 0
    """The longest text in tokens; 0: the model's trained context, at most `MAX_CONTEXT`. It is
    also capped by `n_batch`."""
    n_batch: int = 2048


@dataclass(kw_only=True, slots=True)
class EmbedRequest(Request):
    texts: list[str]
    normalize: bool = True
    truncate: bool = True
    """A text longer than the model's context is cut to it; otherwise it is an error."""


@dataclass(kw_only=True, slots=True)
class EmbedProgress(Event):
    done: int
    total: int


@dataclass(kw_only=True, slots=True)
class EmbedResult(Result):
    vectors: bytes = b""
    """float32, row-major, one row of `dim` values per text (fewer when cancelled: the texts done)."""
    dim: int = 0
    tokens: int = 0
    truncated: int = 0
    """How many texts were cut to the context."""


class EmbedEngine:
    def __init__(self, config: EmbedConfig) -> None:
        path = Path(config.model_path)
        header = check_gguf_file(path)
        from llama_cpp import Llama
        from llama_cpp import llama_cpp as lib

        self.lib = lib
        trained = header.trained_context or 512
        n_ctx = min(config.n_ctx or trained, trained, MAX_CONTEXT)
        n_ctx = max(8, min(n_ctx, config.n_batch))
        try:
            self.llama = Llama(model_path=str(path), embedding=True, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx,
                               n_threads=config.n_threads, n_threads_batch=config.n_threads, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise AppError(ErrorCode.MODEL_LOAD_FAILED, f"could not load {path.name}: {exc}") from exc
        self.ctx = self.llama.ctx
        self.pooling = int(lib.llama_pooling_type(self.ctx))
        if self.pooling in (lib.LLAMA_POOLING_TYPE_NONE, lib.LLAMA_POOLING_TYPE_RANK):
            self.llama.close()
            what = "it ranks pairs of texts (a reranker)" if self.pooling == lib.LLAMA_POOLING_TYPE_RANK else \
                "it gives no embedding of a whole text (no pooling), as a chat model does"
            raise AppError(ErrorCode.MODEL_LOAD_FAILED, f"{path.name} is not an embedding model: {what}")
        self.architecture = header.architecture
        self.dim = int(lib.llama_model_n_embd_out(self.llama.model)) or self.llama.n_embd()
        self.n_ctx = int(lib.llama_n_ctx(self.ctx))
        self.n_batch = min(int(lib.llama_n_batch(self.ctx)), int(lib.llama_n_ubatch(self.ctx)), self.n_ctx)
        self.n_seq_max = max(1, int(lib.llama_n_seq_max(self.ctx)))
        self.memory = lib.llama_get_memory(self.ctx)
        self.batch = lib.llama_batch_init(self.n_batch, 0, 1)
        self.tail = self._closing_specials()

    def _closing_specials(self) -> int:
        """How many special tokens the tokenizer adds after a text ([SEP], an end-of-text token)."""
        plain = self.llama.tokenize(b"hello", add_bos=False, special=False)
        full = self.llama.tokenize(b"hello", add_bos=True, special=False)
        for start in range(len(full) - len(plain) + 1):
            if full[start:start + len(plain)] == plain:
                return len(full) - start - len(plain)
        return 0

    def info(self) -> dict[str, Any]:
        return {"dim": self.dim, "n_ctx": self.n_ctx, "n_batch": self.n_batch,
                "pooling": _POOLING_NAMES.get(self.pooling, str(self.pooling)), "architecture": self.architecture}

    def _tokens(self, request: EmbedRequest) -> tuple[list[list[int]], int]:
        """Every text's tokens, cut to the context when allowed; and how many were cut."""
        if not request.texts:
            raise AppError(ErrorCode.BAD_REQUEST, "there are no texts to embed")
        out: list[list[int]] = []
        truncated = 0
        limit = self.n_batch
        for i, text in enumerate(request.texts):
            if not isinstance(text, str) or not text.strip():
                raise AppError(ErrorCode.BAD_REQUEST, f"text {i} is empty; every text to embed needs some words")
            tokens = self.llama.tokenize(text.encode("utf-8", "replace"), add_bos=True, special=False)
            if len(tokens) > limit:
                if not request.truncate:
                    raise AppError(ErrorCode.CONTEXT_LENGTH_EXCEEDED,
                                   f"text {i} is {len(tokens)} tokens long; this model takes at most {limit}")
                keep = tokens[len(tokens) - self.tail:] if self.tail else []
                tokens = tokens[:limit - len(keep)] + keep
                truncated += 1
            out.append(tokens)
        return out, truncated

    def _groups(self, tokens: list[list[int]]) -> list[range]:
        """Consecutive texts that fill one batch: at most `n_batch` tokens and `n_seq_max` texts."""
        groups: list[range] = []
        start, used = 0, 0
        for i, seq in enumerate(tokens):
            if i > start and (used + len(seq) > self.n_batch or i - start >= self.n_seq_max):
                groups.append(range(start, i))
                start, used = i, 0
            used += len(seq)
        groups.append(range(start, len(tokens)))
        return groups

    def _decode(self, tokens: list[list[int]], group: range, out: np.ndarray) -> None:
        lib, batch = self.lib, self.batch
        n = 0
        for seq, i in enumerate(group):
            ids = tokens[i]
            for pos, token in enumerate(ids):
                batch.token[n] = token
                batch.pos[n] = pos
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = seq
                batch.logits[n] = 1
                n += 1
        batch.n_tokens = n
        if self.memory:
            lib.llama_memory_clear(self.memory, True)
        code = lib.llama_decode(self.ctx, batch)
        if code != 0:
            raise AppError(ErrorCode.INTERNAL, f"the embedding model failed on a batch of {n} tokens (code {code})")
        for seq, i in enumerate(group):
            pointer = lib.llama_get_embeddings_seq(self.ctx, seq)
            if not pointer:
                raise AppError(ErrorCode.INTERNAL, "the embedding model gave no vector for a text")
            out[i] = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(self.dim,))

    def run(self, request: Request, ctx: JobContext) -> EmbedResult:
        if not isinstance(request, EmbedRequest):
            raise AppError(ErrorCode.BAD_REQUEST, f"the embedding engine cannot run {type(request).__name__}")
        tokens, truncated = self._tokens(request)
        total = len(tokens)
        out = np.empty((total, self.dim), dtype=np.float32)
        done = 0
        finish = "done"
        for group in self._groups(tokens):
            if ctx.cancelled():
                finish = "cancelled"
                break
            self._decode(tokens, group, out)
            done = group.stop
            ctx.emit(EmbedProgress(job_id=ctx.job_id, done=done, total=total))
        vectors = out[:done]
        if request.normalize and done:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            np.divide(vectors, norms, out=vectors, where=norms > 0)
        return EmbedResult(vectors=vectors.tobytes(), dim=self.dim, tokens=sum(len(t) for t in tokens[:done]),
                           truncated=truncated, finish_reason=finish)

    def idle(self) -> None:
        pass

    def close(self) -> None:
        if getattr(self, "batch", None) is not None:
            self.lib.llama_batch_free(self.batch)
            self.batch = None
        if getattr(self, "llama", None) is not None:
            self.llama.close()  # closing twice is harmless
