"""The language-model engine: typed requests/events (both sides) and the worker (child side).

The worker keeps one llama.cpp context. Generation uses llama.cpp's C sampler chain and
a reused single-token batch, so the per-token path is decode, sample, detokenize and one
pipe write, with no logits copied into Python. The live sequence's KV state is reused for
the shared prefix of the next prompt; other conversations' states are saved in RAM
(`KvStateCache`) and restored when they come back.
"""

from __future__ import annotations

import ctypes
import hashlib
import random
import string
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from ..core.errors import AppError, ErrorCode
from ..runtime.child import JobContext
from ..runtime.protocol import Event, Request, Result
from .chat_template import ChatTemplate
from .gguf_check import check_gguf_file
from .llm_cache import KvStateCache, SavedState, common_prefix
from .llm_grammar import GrammarGate
from .llm_text import StopStreamer
from .reply_format import THINK_CLOSE, Parsed, ReplyParser, template_features
from .reply_plan import ReplyPlan, finish_prompt, plan_reply
from .time_limit import TimeLimitExceeded, time_limit

__all__ = ["MEDIA_MARKER", "ChatRequest", "ChatResult", "LlmConfig", "LlmEngine", "PromptProgress", "PromptReady",
           "TokenDelta", "ToolCallDelta"]

# A save is worth its copy only when a switch would otherwise throw away this many tokens.
_MIN_TOKENS_WORTH_SAVING = 48
# Prefer a saved state over the live one only when it shares clearly more.
_MIN_GAIN_TO_RESTORE = 16
_FALLBACK_TEMPLATE = (  # ChatML, for GGUF files without a template of their own
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


MEDIA_MARKER = "<__media__>"
"""Where an image goes in a message's text (the multimodal library's own marker)."""


@dataclass(kw_only=True, slots=True)
class LlmConfig:
    model_path: str
    projector_path: str | None = None
    """The vision projector (mmproj GGUF) that lets the model see images."""
    n_ctx: int = 4096
    n_threads: int = 2
    n_batch: int = 512
    kv_cache_bytes: int = 512 * 1024 * 1024
    template_time_limit_s: float = 5.0
    """A template running this long loops without end: SmolLM2's renders 2000 messages in 5 ms here."""


@dataclass(kw_only=True, slots=True)
class ChatRequest(Request):
    messages: list[dict[str, Any]]
    """OpenAI-shaped messages: `role` and `content` (text), and for tool use `tool_calls` on an
    assistant message (`arguments` as a dict) and `tool_call_id`/`name` on a `tool` message."""
    max_tokens: int | None = None
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    context_limit: int | None = None
    """Tokens this conversation may use (prompt + answer); the engine's own size if None."""
    trim_history: bool = False
    """Drop the oldest turns when the prompt does not fit, instead of failing."""
    cache_key: str | None = None
    images: list[bytes] = field(default_factory=list)
    """Encoded images (JPEG/PNG), one for each MEDIA_MARKER in the messages, in order."""
    stream_interval_s: float = 0.025
    """Text is sent at most this often (the first piece at once): one wake-up of the server
    per token would take CPU from the decoding threads for no visible gain."""
    tools: list[dict[str, Any]] = field(default_factory=list)
    """OpenAI tool specs (`{"type": "function", "function": {name, description, parameters}}`),
    checked by the server (`chat/tool_specs.py`)."""
    tool_choice: str = "auto"
    """"auto", "none", "required", or the name of the one function that must be called."""
    response_format: str = "text"
    """"text", "json_object" or "json_schema" (with `json_schema`)."""
    json_schema: dict[str, Any] | None = None
    thinking: str = "auto"
    """"auto" (the model's own default), "on" or "off"."""
    thinking_budget: int | None = None
    """Tokens of thinking after which the think block is closed and the answer begins."""
    reasoning_effort: str | None = None
    """"low", "medium" or "high" for models whose template reads it (gpt-oss)."""
    grammar: str | None = None
    """A GBNF grammar the whole output must match (the app's own use and tests; not from /v1)."""


@dataclass(kw_only=True, slots=True)
class PromptReady(Event):
    prompt_tokens: int
    cached_tokens: int
    trimmed_messages: int
    image_tokens: int = 0


@dataclass(kw_only=True, slots=True)
class PromptProgress(Event):
    """Part of a long prompt has been read (sent between batches, so a long prompt is seen to
    be making progress)."""

    evaluated: int
    total: int


@dataclass(kw_only=True, slots=True)
class TokenDelta(Event):
    text: str
    """Answer text."""
    reasoning: str = ""
    """Thinking text (never part of the answer)."""


@dataclass(kw_only=True, slots=True)
class ToolCallDelta(Event):
    """A whole tool call the model has written."""

    index: int
    id: str
    name: str
    arguments: str
    """JSON text of an object."""


@dataclass(kw_only=True, slots=True)
class ChatResult(Result):
    """How an answer went; `finish_reason` is "stop", "length" or "cancelled"."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    trimmed_messages: int = 0
    model: str = ""
    image_tokens: int = 0
    ttft_s: float = 0.0
    tokens_per_s: float = 0.0
    tool_calls: list[dict[str, str]] = field(default_factory=list)
    """Each call's `id`, `name` and `arguments` (JSON text); `finish_reason` is then "tool_calls"."""
    reasoning_tokens: int = 0
    thinking_s: float = 0.0


_LOG_ERROR = 3
_log_callback: Any = None
"""Kept alive here: the library holds a raw pointer to it."""


def _quiet_mtmd(lib: Any, mtmd_cpp: Any) -> None:
    """The multimodal library logs every tensor it loads and the whole prompt text of each
    request to stderr, whatever the verbosity; a private app's log must not hold what people
    asked. Only errors are let through."""
    global _log_callback
    if _log_callback is None:
        def keep_errors(level: int, text: bytes, _: Any) -> None:
            if level == _LOG_ERROR and text:
                sys.stderr.write(text.decode("utf-8", "replace"))
        _log_callback = lib.llama_log_callback(keep_errors)
    mtmd_cpp.mtmd_log_set(_log_callback, None)
    mtmd_cpp.mtmd_helper_log_set(_log_callback, None)


class LlmEngine:
    def __init__(self, config: LlmConfig) -> None:
        check_gguf_file(Path(config.model_path))
        from llama_cpp import Llama
        from llama_cpp import llama_cpp as lib

        self.lib = lib
        self.config = config
        try:
            self.llama = Llama(model_path=config.model_path, n_ctx=config.n_ctx, n_batch=config.n_batch,
                               n_threads=config.n_threads, n_threads_batch=config.n_threads, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise AppError(ErrorCode.MODEL_LOAD_FAILED,
                           f"could not load {Path(config.model_path).name}: {exc}") from exc
        model = self.llama._model
        self.ctx = self.llama._ctx.ctx
        self.vocab = lib.llama_model_get_vocab(model.model)
        self.mem = lib.llama_get_memory(self.ctx)
        self.n_ctx = lib.llama_n_ctx(self.ctx)
        own_template = self.llama.metadata.get("tokenizer.chat_template")
        template = own_template or _FALLBACK_TEMPLATE
        self.features = template_features(own_template)
        eos, bos = self.llama.token_eos(), self.llama.token_bos()
        try:
            self.template = ChatTemplate(template, eos_token=model.token_get_text(eos) if eos != -1 else "",
                                         bos_token=model.token_get_text(bos) if bos != -1 else "")
        except jinja2.TemplateError as exc:
            self.llama.close()
            raise AppError(ErrorCode.MODEL_LOAD_FAILED, f"the chat template of {Path(config.model_path).name} "
                                                        f"is not valid: {exc}") from exc
        self.batch = lib.llama_batch_init(config.n_batch, 0, 1)
        self.piece = ctypes.create_string_buffer(256)
        self.live_tokens: list[int] = []
        self.live_saved = True
        self.cache = KvStateCache(config.kv_cache_bytes)
        self.model_name = Path(config.model_path).stem
        self.mtmd: Any = None
        if config.projector_path:
            self._load_projector(Path(config.projector_path))

    def _load_projector(self, path: Path) -> None:
        check_gguf_file(path)
        from llama_cpp import mtmd_cpp

        _quiet_mtmd(self.lib, mtmd_cpp)
        params = mtmd_cpp.mtmd_context_params_default()
        params.use_gpu = False
        params.print_timings = False
        params.n_threads = self.config.n_threads
        mtmd = mtmd_cpp.mtmd_init_from_file(str(path).encode(), self.llama._model.model, params)
        if not mtmd:
            self.close()
            raise AppError(ErrorCode.MODEL_LOAD_FAILED, f"the vision projector {path.name} could not be loaded "
                                                        "with this model (is it the model's own mmproj file?)")
        if not mtmd_cpp.mtmd_support_vision(mtmd):
            mtmd_cpp.mtmd_free(mtmd)
            self.close()
            raise AppError(ErrorCode.MODEL_LOAD_FAILED, f"{path.name} is not a vision projector")
        self.mtmd_cpp, self.mtmd = mtmd_cpp, mtmd

    def info(self) -> dict[str, Any]:
        return {"model": self.model_name, "n_ctx": self.n_ctx, "vision": self.mtmd is not None,
                "features": self.features.labels(),
                "n_ctx_train": self.llama._model.n_ctx_train(), "path": self.config.model_path}

    def idle(self) -> None:
        """Copy the live sequence out now, while no one waits, so that a request for another
        conversation does not pay for it in its time to first token."""
        self._save_live()

    def close(self) -> None:
        if getattr(self, "mtmd", None):
            self.mtmd_cpp.mtmd_free(self.mtmd)
            self.mtmd = None
        if getattr(self, "batch", None) is not None:
            self.lib.llama_batch_free(self.batch)
            self.batch = None
        self.llama.close()

    # prompt --------------------------------------------------------------------------------

    def _apply_template(self, messages: list[dict[str, Any]], plan: ReplyPlan) -> str:
        """The prompt text. The template is code from the model file, so it runs under a time
        limit: one that never ends fails the request instead of holding the worker."""
        limit = self.config.template_time_limit_s
        try:
            with time_limit(limit):
                prompt = self.template.render(messages, **plan.template_kwargs)
            prompt, self.starts_thinking = finish_prompt(plan, prompt)
            return prompt
        except TimeLimitExceeded:
            raise AppError(ErrorCode.TEMPLATE_TIMEOUT,
                           f"the model's chat template did not finish within {limit:g} s; it loops without end, "
                           "so this model file cannot be used") from None
        except Exception as exc:  # a template error is the request's fault, not a crash
            raise AppError(ErrorCode.BAD_REQUEST, f"the chat template rejected the messages: {exc}") from exc

    def _render(self, messages: list[dict[str, Any]], plan: ReplyPlan) -> list[int]:
        prompt = self._apply_template(messages, plan)
        return self.llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def _fit(self, req: ChatRequest, limit: int, plan: ReplyPlan) -> tuple[list[int], int]:
        """Tokens of the prompt, trimming oldest turns if asked to; fails if it cannot fit."""
        messages = list(plan.messages)
        tokens = self._render(messages, plan)
        trimmed = 0
        reserve = min(req.max_tokens or 256, limit // 4)
        while req.trim_history and len(tokens) + reserve > limit:
            first = next((i for i, m in enumerate(messages) if m["role"] != "system"), None)
            if first is None or first >= len(messages) - 1:
                break  # only the newest message is left
            del messages[first]
            trimmed += 1
            tokens = self._render(messages, plan)
        if len(tokens) >= limit:
            raise AppError(ErrorCode.CONTEXT_LENGTH_EXCEEDED,
                           f"the prompt is {len(tokens)} tokens but the context holds {limit}; "
                           "shorten the messages or raise the context length")
        return tokens, trimmed

    def _fit_images(self, req: ChatRequest, limit: int, plan: ReplyPlan
                    ) -> tuple[list[int], list[tuple[str, Any, int, int]], Any, int]:
        """`_image_prompt` for the request, trimming the oldest turns (with their images) when
        asked to and the prompt does not fit; returns its results and the turns left out."""
        if self.mtmd is None:
            raise AppError(ErrorCode.BAD_REQUEST, f"{self.model_name} cannot see images; choose a vision model")
        markers = sum(str(m.get("content") or "").count(MEDIA_MARKER) for m in req.messages)
        if markers != len(req.images):
            raise AppError(ErrorCode.BAD_REQUEST, f"{len(req.images)} image(s) for {markers} place(s) in the text")
        messages, images = list(plan.messages), list(req.images)
        reserve = min(req.max_tokens or 256, limit // 4)
        trimmed = 0
        while True:
            sequence, spans, chunks = self._image_prompt(messages, images, plan)
            if not req.trim_history or len(sequence) + reserve <= limit:
                break
            first = next((i for i, m in enumerate(messages) if m["role"] != "system"), None)
            if first is None or first >= len(messages) - 1:
                break  # only the newest message is left
            self.mtmd_cpp.mtmd_input_chunks_free(chunks)
            before = sum(m["content"].count(MEDIA_MARKER) for m in messages[:first])
            del images[before:before + messages[first]["content"].count(MEDIA_MARKER)]
            del messages[first]
            trimmed += 1
        if len(sequence) >= limit:
            self.mtmd_cpp.mtmd_input_chunks_free(chunks)
            raise AppError(ErrorCode.CONTEXT_LENGTH_EXCEEDED,
                           f"the prompt with its images is {len(sequence)} tokens but the context holds {limit}")
        return sequence, spans, chunks, trimmed

    def _image_prompt(self, messages: list[dict[str, Any]], images: list[bytes], plan: ReplyPlan
                      ) -> tuple[list[int], list[tuple[str, Any, int, int]], Any]:
        """The prompt as the multimodal library splits it: text and image spans. Returns the
        sequence used for prefix reuse (an image's positions hold a value derived from its
        bytes, so a follow-up question about the same photo reuses its evaluation), the spans
        (kind, tokens or chunk, start, length) and the chunk list to free afterwards."""
        prompt = self._apply_template(messages, plan)
        m = self.mtmd_cpp
        bitmaps = []
        chunks = m.mtmd_input_chunks_init()
        try:
            for data in images:
                bitmap = m.mtmd_helper_bitmap_init_from_buf(
                    self.mtmd, (ctypes.c_uint8 * len(data)).from_buffer(bytearray(data)), len(data), False)
                if not bitmap:
                    raise AppError(ErrorCode.BAD_REQUEST, "an image could not be decoded")
                bitmaps.append(bitmap)
            text = m.mtmd_input_text()
            encoded = prompt.encode("utf-8")
            text.text, text.text_len, text.add_special, text.parse_special = encoded, len(encoded), False, True
            array = (m.mtmd_bitmap_p_ctypes * len(bitmaps))(*bitmaps)
            rc = m.mtmd_tokenize(self.mtmd, chunks, ctypes.byref(text), array, len(bitmaps))
            if rc != 0:
                raise AppError(ErrorCode.BAD_REQUEST, f"the images could not be matched to the text (code {rc})")
        except BaseException:
            m.mtmd_input_chunks_free(chunks)
            raise
        finally:
            for bitmap in bitmaps:
                m.mtmd_bitmap_free(bitmap)
        sequence: list[int] = []
        spans: list[tuple[str, Any, int, int]] = []
        image = 0
        for i in range(m.mtmd_input_chunks_size(chunks)):
            chunk = m.mtmd_input_chunks_get(chunks, i)
            if m.mtmd_input_chunk_get_type(chunk) == m.MTMD_INPUT_CHUNK_TYPE_TEXT:
                count = ctypes.c_size_t()
                pointer = m.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
                tokens = [pointer[j] for j in range(count.value)]
                spans.append(("text", tokens, len(sequence), len(tokens)))
                sequence.extend(tokens)
            else:
                n_pos = m.mtmd_input_chunk_get_n_pos(chunk)
                mark = -1 - int.from_bytes(hashlib.blake2b(images[image], digest_size=4).digest(), "big")
                image += 1
                spans.append(("image", chunk, len(sequence), n_pos))
                sequence.extend([mark] * n_pos)
        return sequence, spans, chunks

    def _decode_spans(self, spans: list[tuple[str, Any, int, int]], sequence: list[int], cached: int,
                      ctx: JobContext) -> int:
        """Evaluate what the reused prefix does not cover; returns the image tokens evaluated."""
        m, evaluated = self.mtmd_cpp, 0
        for kind, item, start, length in spans:
            if start + length <= cached:
                continue
            if kind == "text":
                self._decode(item[max(0, cached - start):], ctx)
                continue
            if start < cached:  # part of an image cannot be kept: evaluate it whole again
                self.lib.llama_memory_seq_rm(self.mem, 0, start, -1)
                del self.live_tokens[start:]
            n_past = self.lib.llama_pos(0)
            before = len(self.live_tokens)
            last = (kind, item, start, length) == spans[-1]
            rc = m.mtmd_helper_eval_chunk_single(self.mtmd, self.ctx, item, before, 0, self.config.n_batch, last,
                                                 ctypes.byref(n_past))
            if rc != 0:
                raise AppError(ErrorCode.INTERNAL, f"evaluating an image failed (code {rc})")
            self.live_tokens.extend(sequence[before:n_past.value])
            self.live_saved = False
            evaluated += m.mtmd_input_chunk_get_n_tokens(item)
            if ctx.cancelled():
                raise AppError(ErrorCode.CANCELLED, "cancelled while looking at the image")
        return evaluated

    # KV reuse ------------------------------------------------------------------------------

    def _save_live(self) -> None:
        lib = self.lib
        if self.live_saved or len(self.live_tokens) < _MIN_TOKENS_WORTH_SAVING:
            return
        size = lib.llama_state_seq_get_size(self.ctx, 0)
        if size > self.cache.budget:
            return
        blob = (ctypes.c_uint8 * size)()
        written = lib.llama_state_seq_get_data(self.ctx, blob, size, 0)
        if written:
            key = hashlib.blake2b(repr(self.live_tokens[:4096]).encode(), digest_size=8).hexdigest()
            self.cache.put(key, SavedState(tokens=list(self.live_tokens), blob=blob, nbytes=written))
        self.live_saved = True

    def _restore(self, key: str, state: SavedState) -> bool:
        lib = self.lib
        lib.llama_memory_seq_rm(self.mem, 0, -1, -1)
        if lib.llama_state_seq_set_data(self.ctx, state.blob, state.nbytes, 0) == 0:
            self.cache.drop(key)
            lib.llama_memory_seq_rm(self.mem, 0, -1, -1)
            self.live_tokens = []
            return False
        self.live_tokens = list(state.tokens)
        self.live_saved = True
        return True

    def _reuse_prefix(self, tokens: list[int]) -> int:
        """Make the live sequence hold the longest known prefix of `tokens`; return its length."""
        shared = common_prefix(self.live_tokens, tokens)
        match = self.cache.best_match(tokens)
        if match is not None and match[2] >= shared + _MIN_GAIN_TO_RESTORE:
            self._save_live()
            if self._restore(match[0], match[1]):
                shared = match[2]
            else:
                shared = 0
        keep = min(shared, len(tokens) - 1)  # the last prompt token is always evaluated for logits
        if len(self.live_tokens) - keep >= _MIN_TOKENS_WORTH_SAVING:
            self._save_live()
        if keep < len(self.live_tokens):
            self.lib.llama_memory_seq_rm(self.mem, 0, keep, -1)
            del self.live_tokens[keep:]
            self.live_saved = False
        return keep

    def _decode(self, tokens: list[int], ctx: JobContext) -> None:
        lib, batch = self.lib, self.batch
        step = self.config.n_batch
        for start in range(0, len(tokens), step):
            chunk = tokens[start:start + step]
            pos0 = len(self.live_tokens)
            batch.n_tokens = len(chunk)
            for i, tok in enumerate(chunk):
                batch.token[i] = tok
                batch.pos[i] = pos0 + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = 0
            batch.logits[len(chunk) - 1] = 1
            rc = lib.llama_decode(self.ctx, batch)
            if rc != 0:
                raise AppError(ErrorCode.INTERNAL, f"llama_decode failed with code {rc}")
            self.live_tokens.extend(chunk)
            self.live_saved = False
            if start + step < len(tokens):
                if ctx.cancelled():
                    raise AppError(ErrorCode.CANCELLED, "cancelled while reading the prompt")
                ctx.emit(PromptProgress(job_id=ctx.job_id, evaluated=start + step, total=len(tokens)))

    # generation ----------------------------------------------------------------------------

    def _sampler(self, req: ChatRequest) -> Any:
        lib = self.lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if req.temperature <= 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
            return chain
        seed = req.seed if req.seed is not None else random.getrandbits(32)
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_k(req.top_k))
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(req.top_p, 1))
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(req.temperature))
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        return chain

    def run(self, request: Request, ctx: JobContext) -> ChatResult:
        if not isinstance(request, ChatRequest):
            raise AppError(ErrorCode.BAD_REQUEST, f"the llm engine cannot run {type(request).__name__}")
        return self._chat(request, ctx)

    def _chat(self, req: ChatRequest, ctx: JobContext) -> ChatResult:
        started = time.perf_counter()
        plan = plan_reply(req, self.features)
        # made before the prompt is read, so that a grammar llama.cpp refuses fails the request
        # before its first event (and so as a plain HTTP error under /v1, streamed or not)
        gate = GrammarGate(self.lib, self.vocab, self.ctx, plan.grammar) if plan.grammar else None
        try:
            return self._answer(req, plan, gate, ctx, started)
        finally:
            if gate is not None:
                gate.close()

    def _answer(self, req: ChatRequest, plan: ReplyPlan, gate: GrammarGate | None, ctx: JobContext,
                started: float) -> ChatResult:
        limit = min(req.context_limit or self.n_ctx, self.n_ctx)
        image_tokens = 0
        self.starts_thinking = False
        if req.images:
            tokens, spans, chunks, trimmed = self._fit_images(req, limit, plan)
            try:
                cached = self._reuse_prefix(tokens)
                image_tokens = self._decode_spans(spans, tokens, cached, ctx)
            finally:
                self.mtmd_cpp.mtmd_input_chunks_free(chunks)
        else:
            tokens, trimmed = self._fit(req, limit, plan)
            cached = self._reuse_prefix(tokens)
            self._decode(tokens[cached:], ctx)
        ctx.emit(PromptReady(job_id=ctx.job_id, prompt_tokens=len(tokens), cached_tokens=cached,
                             trimmed_messages=trimmed, image_tokens=image_tokens))
        budget = limit - len(tokens)
        if req.max_tokens is not None:
            budget = min(budget, req.max_tokens)
        reply = _Reply(ctx, ReplyParser(self.features, tools=plan.tools_on, starts_thinking=self.starts_thinking),
                       req.stream_interval_s)
        finish, generated, first_at, last_at = self._generate(req, plan, reply, gate, budget, ctx)
        reply.close(cancelled=finish == "cancelled")
        decode_s = last_at - first_at if generated > 1 else 0.0
        return ChatResult(
            finish_reason="tool_calls" if reply.calls and finish == "stop" else finish,
            prompt_tokens=len(tokens), cached_tokens=cached, completion_tokens=generated,
            trimmed_messages=trimmed, model=self.model_name, image_tokens=image_tokens,
            ttft_s=(first_at or time.perf_counter()) - started,
            tokens_per_s=(generated - 1) / decode_s if decode_s > 0 else 0.0,
            tool_calls=reply.calls, reasoning_tokens=reply.reasoning_tokens,
            thinking_s=round(reply.thinking_s, 3))

    def _generate(self, req: ChatRequest, plan: ReplyPlan, reply: _Reply, gate: GrammarGate | None, budget: int,
                  ctx: JobContext) -> tuple[str, int, float, float]:
        """The token loop: sample (through the grammar when there is one), stream, decode."""
        lib = self.lib
        sampler = self._sampler(req)
        streamer = StopStreamer(req.stop)
        batch, piece, vocab = self.batch, self.piece, self.vocab
        special = plan.render_special
        think_limit = plan.thinking_budget
        generated, finish = 0, "length"
        first_at = last_at = 0.0
        try:
            while generated < budget:
                token = lib.llama_sampler_sample(sampler, self.ctx, -1)
                if gate is not None:
                    if not gate.allows(token):
                        token = gate.resample(sampler)
                    if not lib.llama_vocab_is_eog(vocab, token):
                        gate.accept(token)
                if lib.llama_vocab_is_eog(vocab, token):
                    finish = "stop"
                    break
                generated += 1
                n = lib.llama_token_to_piece(vocab, token, piece, 256, 0, special)
                text = streamer.feed(piece.raw[:n] if n > 0 else b"")
                last_at = time.perf_counter()
                if generated == 1:
                    first_at = last_at
                reply.feed(text, last_at)
                if streamer.stopped:
                    finish = "stop"
                    break
                if ctx.cancelled():
                    finish = "cancelled"
                    break
                if generated >= budget:
                    break  # no need to evaluate a token nobody will continue from
                batch.n_tokens = 1
                batch.token[0] = token
                batch.pos[0] = len(self.live_tokens)
                batch.n_seq_id[0] = 1
                batch.seq_id[0][0] = 0
                batch.logits[0] = 1
                rc = lib.llama_decode(self.ctx, batch)
                if rc != 0:
                    raise AppError(ErrorCode.INTERNAL, f"llama_decode failed with code {rc}")
                self.live_tokens.append(token)
                if think_limit is not None and reply.parser.thinking and reply.reasoning_tokens >= think_limit:
                    self._close_thinking(reply, ctx)
                    think_limit = None
        finally:
            lib.llama_sampler_free(sampler)
        if finish != "cancelled":  # a stopped answer keeps what was shown, not what was held back
            reply.feed(streamer.flush(), time.perf_counter(), counted=False)  # held back by the stop check: no token
        return finish, generated, first_at, last_at

    def _close_thinking(self, reply: _Reply, ctx: JobContext) -> None:
        """The thinking budget is spent: write the end of the think block for the model, so
        that it goes on with the answer."""
        closer = "\n" + THINK_CLOSE + "\n\n"
        self._decode(self.llama.tokenize(closer.encode(), add_bos=False, special=True), ctx)
        reply.feed(closer, time.perf_counter(), counted=False)


class _Reply:
    """What the model writes, parsed into thinking, answer text and tool calls, and sent to the
    server at most every `interval_s` (the first piece, and each call, at once)."""

    def __init__(self, ctx: JobContext, parser: ReplyParser, interval_s: float) -> None:
        self.ctx, self.parser, self.interval_s = ctx, parser, interval_s
        self.content = self.reasoning = ""
        self.sent_at = 0.0
        self.calls: list[dict[str, str]] = []
        self.reasoning_tokens = 0
        self.thinking_s = 0.0
        self.started_at = 0.0

    def feed(self, text: str, now: float, *, counted: bool = True) -> None:
        if not self.started_at:
            self.started_at = now
        if counted and self.parser.thinking:
            self.reasoning_tokens += 1
            self.thinking_s = now - self.started_at
        if not text:
            return
        self._take(self.parser.feed(text), now)

    def _take(self, parsed: Parsed, now: float) -> None:
        self.content += parsed.content
        self.reasoning += parsed.reasoning
        if parsed.calls:
            self._send(now)
            for call in parsed.calls:
                call_id = "".join(random.choices(string.ascii_letters + string.digits, k=9))
                self.calls.append({"id": call_id, "name": call.name, "arguments": call.arguments})
                self.ctx.emit(ToolCallDelta(job_id=self.ctx.job_id, index=len(self.calls) - 1, id=call_id,
                                            name=call.name, arguments=call.arguments))
        elif (self.content or self.reasoning) and (not self.sent_at or now - self.sent_at >= self.interval_s):
            self._send(now)

    def _send(self, now: float) -> None:
        if self.content or self.reasoning:
            self.ctx.emit(TokenDelta(job_id=self.ctx.job_id, text=self.content, reasoning=self.reasoning))
            self.content = self.reasoning = ""
        self.sent_at = now

    def close(self, *, cancelled: bool = False) -> None:
        """The turn ended. A stopped turn drops what the parser held back (the start of a marker,
        an unfinished call): nobody saw it, and it is not an answer."""
        if not cancelled:
            self._take(self.parser.finish(), time.perf_counter())
        self._send(time.perf_counter())
