"""The memory estimate against what llama.cpp really allocates for the bundled model.

Each context length is loaded in its own child process (one thread), which reports llama.cpp's
own buffer sizes from its log and its peak resident memory after filling most of the context.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from backend.models.gguf_info import read_gguf_info
from backend.models.memory import MIB, MemoryEstimate, estimate_llm

pytestmark = pytest.mark.engine

# The peak is read from /proc (VmHWM, this process's own high-water mark): getrusage's
# ru_maxrss survives exec, so a child of a large test process would report the parent's size.
CHILD = """
import json, sys
import llama_cpp


def peak_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


path, n_ctx = sys.argv[1], int(sys.argv[2])
llm = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_batch=512, n_threads=1, n_threads_batch=1, verbose=True)
words = llm.tokenize(b" the quick brown fox jumps over the lazy dog and keeps running", add_bos=False)
wanted = int(n_ctx * 0.8)
prompt = [llm.token_bos()] + (words * (wanted // len(words) + 1))[:wanted]
llm.eval(prompt)
for _ in range(8):
    llm.eval([llm.sample(temp=0.0)])
sys.stderr.flush()
print(json.dumps({"n_tokens": llm.n_tokens, "maxrss_kb": peak_kb()}))
"""


@dataclass(frozen=True)
class Measured:
    n_ctx: int
    kv_cache: int
    compute: int
    weights: int
    peak_rss: int
    tokens: int
    estimate: MemoryEstimate


def _mib(pattern: str, log: str, *, total: bool = False) -> int:
    found = [float(x) for x in re.findall(pattern, log)]
    assert found, f"llama.cpp did not log {pattern!r}"
    return int((sum(found) if total else found[0]) * MIB)


def _measure(model: Path, n_ctx: int) -> Measured:
    done = subprocess.run([sys.executable, "-c", CHILD, str(model), str(n_ctx)], capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    kv_pattern = r"llama_kv_cache: size =\s*([\d.]+) MiB"
    if not re.search(kv_pattern, log):
        kv_pattern = r"CPU KV buffer size =\s*([\d.]+) MiB"
    info = read_gguf_info(model)
    return Measured(n_ctx=n_ctx, kv_cache=_mib(kv_pattern, log),
                    compute=_mib(r"CPU compute buffer size =\s*([\d.]+) MiB", log),
                    weights=_mib(r"model buffer size =\s*([\d.]+) MiB", log, total=True),
                    peak_rss=int(report["maxrss_kb"]) * 1024, tokens=int(report["n_tokens"]),
                    estimate=estimate_llm(info.summary(), model.stat().st_size, n_ctx))


@pytest.fixture(scope="module", params=[512, 2048], ids=lambda n: f"ctx{n}")
def measured(request: pytest.FixtureRequest, smollm_path: Path) -> Measured:
    result = _measure(smollm_path, request.param)
    est = result.estimate
    print(f"\nn_ctx={result.n_ctx} ({result.tokens} tokens in the context)\n"
          f"  KV cache  estimate {est.kv_cache / MIB:8.2f} MiB  llama.cpp {result.kv_cache / MIB:8.2f} MiB\n"
          f"  compute   estimate {est.compute / MIB:8.2f} MiB  llama.cpp {result.compute / MIB:8.2f} MiB\n"
          f"  weights   estimate {est.weights / MIB:8.2f} MiB  llama.cpp {result.weights / MIB:8.2f} MiB\n"
          f"  total     estimate {est.total / MIB:8.2f} MiB  peak RSS  {result.peak_rss / MIB:8.2f} MiB "
          f"({result.peak_rss / est.total:.0%} of the estimate)")
    return result


def _within(estimated: int, actual: int, tolerance: float) -> bool:
    return abs(estimated - actual) <= tolerance * actual


def test_kv_cache_matches(measured: Measured) -> None:
    """The KV cache estimate is within 2% of llama.cpp's KV buffer."""
    assert _within(measured.estimate.kv_cache, measured.kv_cache, 0.02), (measured.estimate.kv_cache, measured.kv_cache)


def test_compute_buffer_matches(measured: Measured) -> None:
    """The compute estimate is within 25% of llama.cpp's compute buffer."""
    assert _within(measured.estimate.compute, measured.compute, 0.25), (measured.estimate.compute, measured.compute)


def test_weights_match(measured: Measured) -> None:
    """The weights estimate (the file size) is within 10% of llama.cpp's model buffer."""
    assert _within(measured.estimate.weights, measured.weights, 0.10), (measured.estimate.weights, measured.weights)


def test_peak_memory_is_within_the_estimate(measured: Measured) -> None:
    """With 80% of the context filled, the worker's peak RSS is at most 110% and at least 50% of
    the estimated total: the estimate is a ceiling that is not wildly pessimistic."""
    assert measured.tokens >= int(measured.n_ctx * 0.8)
    total = measured.estimate.total
    assert measured.peak_rss <= total * 1.10, f"peak {measured.peak_rss / MIB:.1f} MiB > {total / MIB:.1f} MiB"
    assert measured.peak_rss >= total * 0.5, f"peak {measured.peak_rss / MIB:.1f} MiB << {total / MIB:.1f} MiB"


def test_longer_context_costs_what_the_estimate_says(smollm_path: Path) -> None:
    """Between two context lengths the estimate grows by exactly the KV cache per token."""
    info = read_gguf_info(smollm_path).summary()
    size = smollm_path.stat().st_size
    short, long = estimate_llm(info, size, 512), estimate_llm(info, size, 2048)
    per_token = 30 * 3 * (64 + 64) * 2
    assert long.kv_cache - short.kv_cache == per_token * (2048 - 512)
    assert long.total > short.total and long.weights == short.weights == size
