"""Benchmark: one image through the app and straight through stable-diffusion-cpp-python, in one run.

Prints a summary on stdout (progress goes to stderr) and writes the numbers as JSON into
`bench/results/`:

    python bench/image.py [--runs N] [--full]

Model: the random-weight SDXS-512 written by `tests.sdmodels.write_sdxs` (UNet, CLIP text
encoder and tiny autoencoder, 882 MB of fp16), registered as the only image model of a fresh
data dir before the server starts. Its pictures are noise; loading, sampling and decoding are
real and so are their timings. Both sides use the same file, the same threads (the server is
started with `--threads N`, N = `Settings.inference_threads`, and the raw side is given N),
size, steps, cfg_scale 1.0, sampler euler_a (what the app suits to SDXS), prompt and seed.

* seconds per image. Configurations: 256 × 256 with 1 step (SDXS is a one-step model), and
  with `--full` also 512 × 512 with 2 steps. One warm-up image each side, then `--runs`
  (default 5) pairs, interleaved (each side first in turn), the same prompt and seed within a
  pair and a different seed for every pair; medians.
  - app: `POST /v1/images/generations` (owner bearer; prompt, size "WxH", n 1,
    response_format b64_json, steps, cfg_scale, seed, sampler), timed at this client from
    sending the request (its JSON body built beforehand) to the whole JSON answer read and its
    PNG base64-decoded. That holds the HTTP round trip, validation and queueing, the images
    worker's `DiffusionEngine.run` (`generate_image` with a progress callback and a "proj"
    preview after every step, each preview made into a JPEG and sent to the server, then the
    PNG encoded at compress level 6) and the PNG sent through the pipe, then the server adding
    the picture's parameters as text chunks, writing the PNG and a 384 px JPEG thumbnail to
    the media folder (each fsynced, its folder too), adding the gallery row, reading the PNG
    back and base64-encoding it into the answer. The engine's own time (`generate_image`
    alone, the gallery record's `seconds`) is read afterwards from `GET /api/images`.
  - raw: stable-diffusion-cpp-python in a child process of this one (started like the app's
    worker: a fresh interpreter), `StableDiffusion(model_path, n_threads=N,
    vae_decode_only=False, verbose=False)` loaded once; per request it times, inside the child,
    `generate_image(prompt, width, height, sample_steps, cfg_scale, seed, sample_method)`
    (no callbacks, no previews) and the same PNG encoding as the app
    (`convert("RGB").save(…, "PNG", compress_level=6)`). Requests arrive as JSON lines on its
    stdin and the answer (times, then the PNG) goes back on a pipe after the clock stops.
  Reported: app / raw with the PNG encoding on the raw side (the fair comparison; goal <=
  1.05), also as the median of the pairs' own ratios, and against raw `generate_image`
  alone; the overhead in ms split into what the app's engine took beyond raw
  `generate_image` and what each app request took outside its `generate_image` beyond raw's
  PNG encode (everything else listed above; measured within the same request, so other work
  on the machine hardly moves it). CPU time per image (user + system, from
  `/proc` through psutil, read before and after each request) of the app's images worker,
  the raw child (which also turns its PNG into base64 for the answer) and the server
  process: steadier than wall time when other work shares the cores. Same seed on both sides
  should give the same picture: the PNGs are decoded and their pixels compared ("identical
  pixels: k/N"; the bytes differ by the app's text chunks).
* peak memory: `VmHWM` of the app's images worker (the server's child running
  `backend.runtime.child`; checked to be absent before the first image request, and to be
  the only such child after it) and of the raw child, read from `/proc/<pid>/status` after
  each configuration's runs; also the server process's own `VmRSS` and `VmHWM`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import IO, Any

import httpx
import numpy as np
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.core.config import Settings  # noqa: E402
from bench.report import load_avg, log, ms, save  # noqa: E402
from tests.sdmodels import register_image_model, write_sdxs  # noqa: E402
from tests.server import ServerProcess  # noqa: E402

PROMPT = "a lighthouse on a rocky coast at dusk, oil painting"
SAMPLER = "euler_a"
CFG_SCALE = 1.0
CONFIGS = ((256, 256, 1), (512, 512, 2))
"""width, height, steps; the second only with --full."""
WORKER_MODULE = "backend.runtime.child"

RAW_CHILD = textwrap.dedent("""
    import base64, io, json, os, sys, time

    # the answers go out on a copy of stdout; anything the library prints goes to stderr
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    from stable_diffusion_cpp import StableDiffusion

    model, threads = sys.argv[1], int(sys.argv[2])
    started = time.perf_counter()
    sd = StableDiffusion(model_path=model, n_threads=threads, vae_decode_only=False, verbose=False)
    answers.write(json.dumps({"load_s": time.perf_counter() - started}) + "\\n")
    answers.flush()
    for line in sys.stdin:
        req = json.loads(line)
        started = time.perf_counter()
        images = sd.generate_image(prompt=req["prompt"], width=req["width"], height=req["height"],
                                   sample_steps=req["steps"], cfg_scale=req["cfg_scale"], seed=req["seed"],
                                   sample_method=req["sampler"])
        generated = time.perf_counter()
        out = io.BytesIO()
        images[0].convert("RGB").save(out, "PNG", compress_level=6)
        encoded = time.perf_counter()
        answers.write(json.dumps({"generate_s": generated - started, "png_s": encoded - generated,
                                  "png": base64.b64encode(out.getvalue()).decode()}) + "\\n")
        answers.flush()
""")


def proc_status(pid: int) -> dict[str, int]:
    """VmHWM and VmRSS of a process, in KiB."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0])
    return fields


def mib(kib: int) -> float:
    return round(kib / 1024, 1)


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as picture:
        return np.asarray(picture.convert("RGB"))


@dataclass(kw_only=True, slots=True)
class Shot:
    seconds: float
    """app: the request at the client; raw: generate_image + PNG encoding in the child."""
    engine_s: float
    """app: the engine's generate_image (the gallery record); raw: generate_image."""
    cpu_s: float
    """CPU time (user + system) of the app's images worker, or of the raw child, over the request."""
    png: bytes
    server_cpu_s: float = 0.0
    """app: CPU time of the server process over the request."""


def cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


# the raw side ----------------------------------------------------------------------------------

class Raw:
    """stable-diffusion-cpp-python alone, in a child process of this one."""

    def __init__(self, model: Path, threads: int) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", RAW_CHILD, str(model), str(threads)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=tempfile.gettempdir())
        self.load_s = float(self._answer()["load_s"])

    @property
    def pid(self) -> int:
        return self.process.pid

    def _answer(self) -> dict[str, Any]:
        line = pipe(self.process.stdout).readline()
        if not line:
            raise RuntimeError(f"the raw child exited (code {self.process.wait()})")
        return dict(json.loads(line))

    def generate(self, width: int, height: int, steps: int, seed: int) -> Shot:
        request = {"prompt": PROMPT, "width": width, "height": height, "steps": steps, "cfg_scale": CFG_SCALE,
                   "seed": seed, "sampler": SAMPLER}
        stdin = pipe(self.process.stdin)
        cpu = cpu_s(self.pid)
        stdin.write(json.dumps(request).encode() + b"\n")
        stdin.flush()
        answer = self._answer()
        cpu = cpu_s(self.pid) - cpu
        return Shot(seconds=answer["generate_s"] + answer["png_s"], engine_s=answer["generate_s"], cpu_s=cpu,
                    png=base64.b64decode(answer["png"]))

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def pipe(stream: IO[bytes] | None) -> IO[bytes]:
    if stream is None:
        raise RuntimeError("the raw child has no pipe")
    return stream


# the app side ----------------------------------------------------------------------------------

def worker_children(server_pid: int) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(server_pid).children(recursive=True):
        try:
            if WORKER_MODULE in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


class App:
    """`POST /v1/images/generations` on the server, b64_json."""

    def __init__(self, client: httpx.Client, server_pid: int) -> None:
        self.client = client
        self.server_pid = server_pid
        self.worker_pid: int | None = None
        """Known after the first image: the images worker, whose CPU time is then counted."""

    def generate(self, width: int, height: int, steps: int, seed: int) -> Shot:
        body = json.dumps({"prompt": PROMPT, "size": f"{width}x{height}", "n": 1, "response_format": "b64_json",
                           "steps": steps, "cfg_scale": CFG_SCALE, "seed": seed, "sampler": SAMPLER}).encode()
        worker_cpu = cpu_s(self.worker_pid) if self.worker_pid else 0.0
        server_cpu = cpu_s(self.server_pid)
        started = time.perf_counter()
        response = self.client.post("/v1/images/generations", content=body,
                                    headers={"Content-Type": "application/json"})
        if response.status_code != 200:
            raise RuntimeError(f"the image request failed: {response.status_code} {response.text[:300]}")
        item = response.json()["data"][0]
        png = base64.b64decode(item["b64_json"])
        seconds = time.perf_counter() - started
        server_cpu = cpu_s(self.server_pid) - server_cpu
        worker_cpu = cpu_s(self.worker_pid) - worker_cpu if self.worker_pid else 0.0
        stored = self.client.get(f"/api/images/{item['id']}")  # outside the clock: the engine's own time
        stored.raise_for_status()
        record = stored.json()
        if record["seed"] != seed or record["width"] != width:
            raise RuntimeError(f"the gallery image is not this request's: {record}")
        return Shot(seconds=seconds, engine_s=float(record["seconds"]), cpu_s=worker_cpu, png=png,
                    server_cpu_s=server_cpu)

    def find_worker(self) -> int:
        workers = worker_children(self.server_pid)
        if len(workers) != 1:
            raise RuntimeError(f"expected one engine worker after the first image request, found {len(workers)}")
        return workers[0].pid


# one configuration -----------------------------------------------------------------------------

def configuration(app_side: App, raw: Raw, size: tuple[int, int, int], runs: int, seed_base: int) -> dict[str, Any]:
    width, height, steps = size
    first = app_side.worker_pid is None
    if first and worker_children(app_side.server_pid):
        raise RuntimeError("an engine worker is running before the first image request")
    app_warm = app_side.generate(width, height, steps, seed_base)
    worker_pid = app_side.find_worker()
    if not first and worker_pid != app_side.worker_pid:
        raise RuntimeError("the images worker was restarted")
    app_side.worker_pid = worker_pid
    raw_warm = raw.generate(width, height, steps, seed_base)
    log(f"{width}×{height}, {steps} step(s), warm-up: app {ms(app_warm.seconds)} ms"
        f"{' (worker started, model loaded)' if first else ''}, raw {ms(raw_warm.seconds)} ms")
    app: list[Shot] = []
    raw_: list[Shot] = []
    for i in range(runs):
        seed = seed_base + 1 + i
        sides: list[tuple[Callable[[], Shot], list[Shot]]] = [
            (partial(app_side.generate, width, height, steps, seed), app),
            (partial(raw.generate, width, height, steps, seed), raw_)]
        for run, out in sides if i % 2 == 0 else sides[::-1]:
            out.append(run())
        log(f"{width}×{height} pair {i + 1}/{runs} (seed {seed}, {'app' if i % 2 == 0 else 'raw'} first): "
            f"app {ms(app[-1].seconds)} ms (engine {ms(app[-1].engine_s)}, worker CPU {ms(app[-1].cpu_s)}), "
            f"raw {ms(raw_[-1].seconds)} ms (generate {ms(raw_[-1].engine_s)}, CPU {ms(raw_[-1].cpu_s)})")
    if app_side.find_worker() != worker_pid:
        raise RuntimeError("the images worker was restarted during the runs")

    def med(values: list[float]) -> float:
        return statistics.median(values)

    app_s, raw_s = med([s.seconds for s in app]), med([s.seconds for s in raw_])
    raw_gen_s, app_engine_s = med([s.engine_s for s in raw_]), med([s.engine_s for s in app])
    raw_png_s = med([s.seconds - s.engine_s for s in raw_])
    outside = [a.seconds - a.engine_s for a in app]
    app_cpu, raw_cpu = med([s.cpu_s for s in app]), med([s.cpu_s for s in raw_])
    pair_ratio = med([a.seconds / r.seconds for a, r in zip(app, raw_, strict=True)])
    identical = sum(np.array_equal(pixels(a.png), pixels(r.png)) for a, r in zip(app, raw_, strict=True))
    worker, child, server = proc_status(worker_pid), proc_status(raw.pid), proc_status(app_side.server_pid)
    return {
        "width": width, "height": height, "steps": steps, "runs": runs,
        "seeds": [seed_base + 1 + i for i in range(runs)],
        "ms_median": {"app": ms(app_s), "raw_with_png": ms(raw_s), "raw_generate_only": ms(raw_gen_s),
                      "app_engine_generate": ms(app_engine_s), "raw_png_encode": ms(raw_png_s),
                      "app_outside_generate": ms(med(outside))},
        "app_over_raw": round(app_s / raw_s, 3), "app_over_raw_generate_only": round(app_s / raw_gen_s, 3),
        "app_over_raw_paired": round(pair_ratio, 3),
        "app_engine_over_raw_generate": round(app_engine_s / raw_gen_s, 3),
        "overhead_ms": {"total": ms(app_s - raw_s),
                        "engine_generate_beyond_raw": ms(app_engine_s - raw_gen_s),
                        "outside_generate_beyond_raw_png": ms(med(outside) - raw_png_s)},
        "cpu_ms_median": {"app_worker": ms(app_cpu), "raw_child": ms(raw_cpu),
                          "server": ms(med([s.server_cpu_s for s in app]))},
        "cpu_app_worker_over_raw": round(app_cpu / raw_cpu, 3),
        "cpu_app_worker_over_raw_paired": round(med([a.cpu_s / r.cpu_s for a, r in zip(app, raw_, strict=True)]), 3),
        "runs_ms": {"app": [ms(s.seconds) for s in app], "raw_with_png": [ms(s.seconds) for s in raw_],
                    "app_engine_generate": [ms(s.engine_s) for s in app],
                    "raw_generate_only": [ms(s.engine_s) for s in raw_],
                    "app_outside_generate": [ms(t) for t in outside],
                    "app_worker_cpu": [ms(s.cpu_s) for s in app], "raw_child_cpu": [ms(s.cpu_s) for s in raw_],
                    "server_cpu": [ms(s.server_cpu_s) for s in app]},
        "spread_max_over_min": {"app": round(max(s.seconds for s in app) / min(s.seconds for s in app), 3),
                                "raw": round(max(s.seconds for s in raw_) / min(s.seconds for s in raw_), 3)},
        "png_bytes": {"app": len(app[0].png), "raw": len(raw_[0].png)},
        "identical_pixels": identical,
        "warm_up_ms": {"app": ms(app_warm.seconds), "raw": ms(raw_warm.seconds),
                       "identical_pixels": bool(np.array_equal(pixels(app_warm.png), pixels(raw_warm.png)))},
        "memory_mib": {"worker_peak": mib(worker["VmHWM"]), "raw_peak": mib(child["VmHWM"]),
                       "worker_over_raw": round(worker["VmHWM"] / child["VmHWM"], 3),
                       "worker_rss": mib(worker["VmRSS"]), "raw_rss": mib(child["VmRSS"]),
                       "server_rss": mib(server["VmRSS"]), "server_peak": mib(server["VmHWM"])},
    }


# the run ---------------------------------------------------------------------------------------

def summary(result: dict[str, Any]) -> None:
    print(f"load average at start: {' '.join(map(str, result['load_avg_start']))}; inference threads on both "
          f"sides: {result['threads']}; model: {result['model']}")
    cold = result["cold"]
    print(f"cold: the app's first image {cold['app_first_image_ms']:.0f} ms (worker start, model load, image); "
          f"raw model load {cold['raw_load_ms']:.0f} ms + first image {cold['raw_first_image_ms']:.0f} ms")
    for c in result["configurations"]:
        m, o, cpu = c["ms_median"], c["overhead_ms"], c["cpu_ms_median"]
        print(f"\n{c['width']} × {c['height']}, {c['steps']} step(s), {SAMPLER}, cfg {CFG_SCALE:g}; {c['runs']} "
              f"runs each (interleaved, one seed per pair), medians:")
        print(f"{'':<62}{'ms':>9}{'/ raw':>9}")
        print(f"{'raw: generate_image + PNG encode, in its child (baseline)':<62}{m['raw_with_png']:>9.1f}{1:>9.3f}")
        print(f"{'raw: generate_image alone':<62}{m['raw_generate_only']:>9.1f}"
              f"{m['raw_generate_only'] / m['raw_with_png']:>9.3f}")
        print(f"{'app: POST /v1/images/generations, b64_json, at the client':<62}{m['app']:>9.1f}"
              f"{c['app_over_raw']:>9.3f}")
        print(f"{'  of it the engine generate_image (gallery record)':<62}{m['app_engine_generate']:>9.1f}"
              f"{m['app_engine_generate'] / m['raw_with_png']:>9.3f}")
        print(f"{'  of it outside generate_image (per request)':<62}{m['app_outside_generate']:>9.1f}")
        verdict = "met" if c["app_over_raw"] <= 1.05 else "missed"
        print(f"  goal app / raw <= 1.05: {c['app_over_raw']:.3f} ({verdict}); median of the pairs' ratios "
              f"{c['app_over_raw_paired']:.3f}; against raw generate_image alone {c['app_over_raw_generate_only']:.3f}")
        print(f"  overhead {o['total']:+.1f} ms = the engine's generate_image beyond raw's "
              f"{o['engine_generate_beyond_raw']:+.1f} ms (progress and preview callbacks, preview JPEGs; and noise) "
              f"+ outside it, beyond raw's PNG encode ({m['raw_png_encode']:.1f} ms), "
              f"{o['outside_generate_beyond_raw_png']:+.1f} ms (HTTP, queue, pipe, text chunks, PNG + thumbnail "
              f"written with fsync, gallery row, read back, base64)")
        print(f"  CPU per image: app worker {cpu['app_worker']:.1f} ms, raw child {cpu['raw_child']:.1f} ms "
              f"(worker / raw {c['cpu_app_worker_over_raw']:.3f}, median of the pairs' ratios "
              f"{c['cpu_app_worker_over_raw_paired']:.3f}); server {cpu['server']:.1f} ms")
        spread = c["spread_max_over_min"]
        if max(spread.values()) > 1.1:
            print(f"  note: wall times spread widely (slowest / fastest: app {spread['app']:.2f}, raw "
                  f"{spread['raw']:.2f}): other work shared the cores, so the ratio of medians is mostly noise; "
                  f"the time outside generate_image and the CPU times are the steadier figures")
        print(f"  runs app {c['runs_ms']['app']}")
        print(f"  runs raw {c['runs_ms']['raw_with_png']}")
        print(f"  identical pixels (same seed): {c['identical_pixels']}/{c['runs']} (warm-up: "
              f"{'yes' if c['warm_up_ms']['identical_pixels'] else 'no'}); PNG bytes app {c['png_bytes']['app']}, "
              f"raw {c['png_bytes']['raw']}")
        mem = c["memory_mib"]
        print(f"  peak memory (VmHWM) after these runs: app worker {mem['worker_peak']:.1f} MiB, raw child "
              f"{mem['raw_peak']:.1f} MiB (worker / raw {mem['worker_over_raw']:.3f}); RSS now worker "
              f"{mem['worker_rss']:.1f}, raw {mem['raw_rss']:.1f}; server RSS {mem['server_rss']:.1f} MiB "
              f"(peak {mem['server_peak']:.1f})")
    print(f"\nload average at end: {' '.join(map(str, result['load_avg_end']))}; took {result['took_s']} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="images per side and configuration")
    parser.add_argument("--full", action="store_true", help="also 512 × 512 with 2 steps")
    args = parser.parse_args()
    threads = Settings().inference_threads
    started = time.perf_counter()
    result: dict[str, Any] = {"when": datetime.now().isoformat(timespec="seconds"), "load_avg_start": load_avg(),
                              "threads": threads, "prompt": PROMPT, "sampler": SAMPLER, "cfg_scale": CFG_SCALE,
                              "model": "tests.sdmodels.write_sdxs (random-weight SDXS-512, fp16 safetensors)"}
    with tempfile.TemporaryDirectory(prefix="gridless-bench-") as tmp:
        folder = Path(tmp)
        log("writing the SDXS model")
        model = write_sdxs(folder / "tiny-sdxs.safetensors")
        result["model_bytes"] = model.stat().st_size
        data = folder / "data"
        data.mkdir()
        asyncio.run(register_image_model(data / "gridless.db", model))
        raw = Raw(model, threads)
        try:
            log(f"raw child {raw.pid}: model loaded in {ms(raw.load_s)} ms")
            with ServerProcess(data_dir=data, extra_args=["--threads", str(threads)]) as server, \
                    httpx.Client(base_url=server.base, headers=server.headers(), timeout=600) as client:
                assert server.process is not None
                app = App(client, server.process.pid)
                configs = CONFIGS if args.full else CONFIGS[:1]
                result["configurations"] = [configuration(app, raw, size, args.runs, 1000 * (k + 1))
                                            for k, size in enumerate(configs)]
                first = result["configurations"][0]
                result["cold"] = {"app_first_image_ms": first["warm_up_ms"]["app"], "raw_load_ms": ms(raw.load_s),
                                  "raw_first_image_ms": first["warm_up_ms"]["raw"]}
        finally:
            raw.close()
    result["load_avg_end"] = load_avg()
    result["took_s"] = round(time.perf_counter() - started, 1)
    summary(result)
    save("image", result)


if __name__ == "__main__":
    main()
