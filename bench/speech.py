"""Benchmark: speech in and out, each beside its raw engine in the same run.

Prints a summary on stdout (progress goes to stderr) and writes the numbers as JSON into
`bench/results/`:

    python bench/speech.py [--runs N] [--browser-runs N]

The test audio is spoken by the bundled Piper voice in this process at the start: about
30 s of narration (seven sentences) and a 5 s request padded with 1 s of silence on each
side. Both sides use the server's inference threads (`Settings.inference_threads`).

* transcription real-time factor: the 30 s WAV through `POST /v1/audio/transcriptions`
  (owner bearer, whisper-1 = the default speech model, the bundled Whisper base int8; wall time
  of the request, upload included) against faster-whisper in this process on the same file (`WhisperModel` with
  the same folder, int8 and `cpu_threads`; `vad_filter=True, beam_size=1,
  condition_on_previous_text=False` and temperature 0, as the app asks), and the same again on
  samples decoded before the clock starts (the model's time alone). One warm-up each, then
  `--runs` (default 5) of each, interleaved, each side taking each place in turn; medians.
  Goals: app over raw <= 1.10, RTF <= 0.1.
* dictation in Chromium: Chromium's fake microphone plays the padded request once; the mic
  button is pressed, the request plays out, the button is pressed again, and Python polls
  the message box every 20 ms until the transcript is in it. `--browser-runs` (default 3),
  the page reloaded and the box cleared between them; the first run is also reported alone
  (the speech worker is loaded by that press, while the request plays). Beside it: raw
  faster-whisper on the same padded WAV. Goal: median <= 1.5 s.
* time to first audio when reading an answer aloud: an answer is written on the chat page
  (the page stores it), the server is restarted on the same data, and the first
  `GET /api/speech/messages/{id}` is timed to its first body byte (cold: the voice worker
  starts), then after `POST /api/speech/warm` `--runs` more (each read to its end, so the
  voice is idle for the next). Baseline: raw Piper in this process, built like the app's
  engine with the same threads, until its first chunk of the first piece the app speaks
  (`speakable()` then `pieces()`); for the cold request, the raw voice's load time plus that.
  In Chromium: the answer's speaker button, its `data-first-audio-ms` (from
  the fetch to the first sound scheduled, which plays 50 ms later), `--browser-runs` times.
  Goal: <= 300 ms for the first sentence.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sqlite3
import statistics
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# The raw engines run in this process: onnxruntime's telemetry off, as in the app's workers
os.environ.update(ORT_DISABLE_TELEMETRY="1", ORT_TELEMETRY_DISABLED="1")

from playwright.sync_api import Browser, Page, Playwright, Request, sync_playwright  # noqa: E402

from backend.core.config import Settings  # noqa: E402
from backend.engines.voice import pieces, speakable  # noqa: E402
from backend.models.local import bundled_chat_model, bundled_multilingual_speech_model, bundled_voice  # noqa: E402
from bench.report import log, median_ms, ms, save  # noqa: E402
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, PHONE  # noqa: E402
from tests.server import ServerProcess, free_port  # noqa: E402

COMPOSER = "textarea[data-testid=composer]"
MIC = "[data-testid=mic]"
SPEAK = "[data-testid=speak]"
STATS = "[data-testid=answer-stats]"
POLL_S = 0.02
PAD_S = 1.0
GAP_S = 0.35
NARRATION = (
    "The lighthouse keeper climbed the narrow stairs every evening just before dusk.",
    "He polished the great brass lens until it caught the last of the light.",
    "Fishing boats passed the rocks at night, guided home by its steady beam.",
    "In winter the storms came from the north and shook the windows for days.",
    "His daughter wrote letters from the city about trains, markets and crowded streets.",
    "On calm mornings he walked along the beach and collected driftwood for the stove.",
    "The supply ship brought flour, coffee, lamp oil and a newspaper once a month.",
)
REQUEST = "Please remind me to buy fresh bread, a dozen eggs and some coffee on the way home tonight."
QUESTION = "Explain in a few sentences why the sky is blue."
CONVERSATION_URL = re.compile(r"/c/([0-9a-f]{32})$")
BOX_AND_MIC_JS = f"""() => [document.querySelector('{COMPOSER}')?.value ?? '',
  document.querySelector('{MIC}')?.dataset.state ?? '',
  document.querySelector('.gl-mic-text')?.textContent ?? '']"""


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_match(heard: str, said: str) -> float:
    """How much of the spoken script the transcript has, word for word (1.0 = all of it)."""
    return round(difflib.SequenceMatcher(None, words(heard), words(said), autojunk=False).ratio(), 3)


# raw engines, in this process ------------------------------------------------------------------

class RawVoice:
    """Piper built as the app's voice engine builds it (one session with our thread counts, the
    phonemizer initialised by a first synthesis), without the worker around it."""

    def __init__(self, model: Path, threads: int) -> None:
        started = time.perf_counter()
        import onnxruntime
        from piper import PiperConfig, PiperVoice
        from piper.voice import ESPEAK_DATA_DIR

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
        config = PiperConfig.from_dict(json.loads(model.with_name(model.name + ".json").read_text(encoding="utf-8")))
        self.voice = PiperVoice(config=config, session=session, espeak_data_dir=Path(ESPEAK_DATA_DIR),
                                download_dir=model.parent)
        for _ in self.voice.synthesize("Ready."):
            pass
        self.load_s = time.perf_counter() - started
        self.rate = int(self.voice.config.sample_rate)

    def pcm(self, text: str) -> np.ndarray:
        return np.concatenate([np.frombuffer(c.audio_int16_bytes, dtype=np.int16) for c in self.voice.synthesize(text)])

    def first_chunk_s(self, text: str) -> float:
        """Time to the first chunk of the first piece the app would speak of `text`."""
        started = time.perf_counter()
        chunks = iter(self.voice.synthesize(pieces(text)[0]))
        next(chunks)
        elapsed = time.perf_counter() - started
        for _ in chunks:  # finish the piece, so nothing is left half done
            pass
        return elapsed


def write_wav(path: Path, samples: np.ndarray, rate: int) -> float:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())
    return samples.size / rate


def make_audio(voice: RawVoice, folder: Path) -> dict[str, Any]:
    gap = np.zeros(int(GAP_S * voice.rate), dtype=np.int16)
    pad = np.zeros(int(PAD_S * voice.rate), dtype=np.int16)
    narration = np.concatenate([part for sentence in NARRATION for part in (voice.pcm(sentence), gap)][:-1])
    request = voice.pcm(REQUEST)
    audio = {"narration": folder / "narration.wav", "request": folder / "request.wav"}
    return {"narration_s": round(write_wav(audio["narration"], narration, voice.rate), 2),
            "request_s": round(request.size / voice.rate, 2),
            "request_padded_s": round(write_wav(audio["request"], np.concatenate([pad, request, pad]), voice.rate), 2),
            "sample_rate": voice.rate, "paths": audio}


class RawWhisper:
    def __init__(self, folder: Path, threads: int) -> None:
        from faster_whisper import WhisperModel

        self.model = WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=threads)

    def transcribe(self, audio: Path | np.ndarray) -> tuple[float, str]:
        """A file's path (faster-whisper decodes it) or 16 kHz samples decoded beforehand."""
        started = time.perf_counter()
        source = str(audio) if isinstance(audio, Path) else audio
        segments, _ = self.model.transcribe(source, vad_filter=True, beam_size=1, temperature=0.0,
                                            condition_on_previous_text=False)
        text = "".join(s.text for s in segments).strip()  # the generator decodes as it is read
        return time.perf_counter() - started, text


# 1. transcription through /v1 ------------------------------------------------------------------

def api_transcribe(client: httpx.Client, audio: bytes) -> tuple[float, str]:
    started = time.perf_counter()
    response = client.post("/v1/audio/transcriptions", data={"model": "whisper-1"},
                           files={"file": ("narration.wav", audio, "audio/wav")})
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"transcription failed: {response.status_code} {response.text[:300]}")
    return elapsed, str(response.json()["text"])


def transcription(client: httpx.Client, raw: RawWhisper, path: Path, duration: float, runs: int) -> dict[str, Any]:
    from faster_whisper import decode_audio

    audio = path.read_bytes()
    samples = decode_audio(str(path), sampling_rate=16_000)
    sides: dict[str, Callable[[], tuple[float, str]]] = {"app": lambda: api_transcribe(client, audio),
                                                         "raw": lambda: raw.transcribe(path),
                                                         "raw_predecoded": lambda: raw.transcribe(samples)}
    warm = {name: ms(run()[0]) for name, run in sides.items()}
    times: dict[str, list[float]] = {name: [] for name in sides}
    texts: dict[str, list[str]] = {name: [] for name in sides}
    order = list(sides)
    for i in range(runs):
        for name in order[i % 3:] + order[:i % 3]:  # each side takes each place in turn
            elapsed, text = sides[name]()
            times[name].append(elapsed)
            texts[name].append(text)
        log(f"transcription {i + 1}/{runs}: app RTF {times['app'][-1] / duration:.3f}, "
            f"raw RTF {times['raw'][-1] / duration:.3f}, predecoded {times['raw_predecoded'][-1] / duration:.3f}")
    app, raw_ = statistics.median(times["app"]), statistics.median(times["raw"])
    predecoded = statistics.median(times["raw_predecoded"])
    return {"audio_s": duration, "runs": runs, "warmup_ms": warm,
            "app_rtf_median": round(app / duration, 4), "raw_rtf_median": round(raw_ / duration, 4),
            "app_over_raw": round(app / raw_, 3), "goal_ratio": "<=1.10", "goal_rtf": "<=0.1",
            "app_ms_median": ms(app), "raw_ms_median": ms(raw_), "overhead_ms": ms(app - raw_),
            "raw_predecoded_rtf_median": round(predecoded / duration, 4), "raw_predecoded_ms_median": ms(predecoded),
            "app_over_raw_predecoded": round(app / predecoded, 3),
            "runs_ms": {name: [ms(t) for t in values] for name, values in times.items()},
            "identical_text": sum(a == b == c for a, b, c in zip(*texts.values(), strict=True)),
            "word_match": {name: word_match(values[0], " ".join(NARRATION)) for name, values in texts.items()},
            "text_app": texts["app"][0]}


# 2. dictation in Chromium ----------------------------------------------------------------------

def open_chat(page: Page, server: ServerProcess, path: str = "/") -> None:
    page.goto(server.owner_link)
    page.wait_for_selector(COMPOSER)
    if path != "/":
        page.goto(server.base + path)
        page.wait_for_selector(COMPOSER)
    page.wait_for_function("window.did_handshake === true")


def box_and_mic(page: Page) -> tuple[str, str, str]:
    value, state, label = page.evaluate(BOX_AND_MIC_JS)
    return str(value), str(state), str(label)


def dictate_once(page: Page, padded_s: float) -> dict[str, Any]:
    page.fill(COMPOSER, "")
    page.locator(MIC).click()
    page.wait_for_function(f"['recording', 'error'].includes(document.querySelector('{MIC}').dataset.state)")
    time.sleep(padded_s + 0.3)  # the fake microphone plays the file once from when it opens
    _, state, label = box_and_mic(page)
    if state != "recording":
        raise RuntimeError(f"the microphone is not recording before the stop press: {state} ({label})")
    box = page.locator(MIC).bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    started = time.perf_counter()
    page.mouse.click(x, y)
    first_text: float | None = None
    deadline = started + 60
    while time.perf_counter() < deadline:
        value, state, label = box_and_mic(page)
        now = time.perf_counter()
        if value.strip() and first_text is None:
            first_text = now - started
        if state == "error":
            raise RuntimeError(f"dictation failed: {label}")
        if state in ("done", "idle") and first_text is not None:
            return {"stop_to_text_s": first_text, "stop_to_done_s": now - started, "text": value}
        time.sleep(POLL_S)
    raise RuntimeError(f"no transcript in the box within 60 s (mic state {state}: {label})")


def dictation(page: Page, server: ServerProcess, client: httpx.Client, raw: RawWhisper, audio: dict[str, Any],
              runs: int) -> dict[str, Any]:
    done: list[dict[str, Any]] = []
    for i in range(runs):
        if i:
            page.reload()
            page.wait_for_selector(COMPOSER)
            page.wait_for_function("window.did_handshake === true")
        run = dictate_once(page, audio["request_padded_s"])
        latest = client.get("/api/transcripts", params={"limit": 1}).json()[0]
        run.update(worker_s=latest.get("seconds"), recorded_s=latest.get("duration"), mime=latest.get("mime"))
        done.append(run)
        log(f"dictation {i + 1}/{runs}: stop -> text {ms(run['stop_to_text_s'])} ms (worker {run['worker_s']} s, "
            f"{run['recorded_s']} s recorded): {run['text']!r}")
    raw_times = []
    for _ in range(3):
        elapsed, raw_text = raw.transcribe(audio["paths"]["request"])
        raw_times.append(elapsed)
    to_text = [r["stop_to_text_s"] for r in done]
    return {"runs": runs, "median_ms": median_ms(to_text), "goal": "<=1500",
            "first_run_ms": ms(to_text[0]),
            "warm_median_ms": median_ms(to_text[1:]) if runs > 1 else None,
            "runs_ms": [ms(t) for t in to_text],
            "stop_to_done_ms": [ms(r["stop_to_done_s"]) for r in done],
            "worker_ms": [ms(r["worker_s"]) if r["worker_s"] is not None else None for r in done],
            "recorded_s": [r["recorded_s"] for r in done], "mime": done[0]["mime"],
            "word_match": [word_match(r["text"], REQUEST) for r in done], "text_first": done[0]["text"],
            "raw_same_wav_ms_median": median_ms(raw_times), "raw_same_wav_ms": [ms(t) for t in raw_times],
            "raw_word_match": word_match(raw_text, REQUEST), "raw_text": raw_text,
            "median_over_raw": round(statistics.median(to_text) / statistics.median(raw_times), 2)}


# 3. reading an answer aloud -------------------------------------------------------------------

def write_answer(page: Page) -> str:
    """Ask on the chat page and wait for the stored answer; returns the conversation's id."""
    page.fill(COMPOSER, QUESTION)
    page.press(COMPOSER, "Enter")
    page.wait_for_function(
        f"() => ([...document.querySelectorAll('{STATS}')].at(-1)?.innerText ?? '').includes('tok/s')"
        f" && document.querySelector('{SPEAK}') !== null", timeout=180_000)
    match = CONVERSATION_URL.search(page.url)
    if match is None:
        raise RuntimeError(f"expected the address to be /c/<id>, it is {page.url}")
    return match.group(1)


def stored_answer(data_dir: Path, conversation_id: str) -> tuple[str, str]:
    db = Settings(data_dir=data_dir).db_path
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT id, content FROM messages WHERE conversation_id = ? AND role = 'assistant' "
                           "AND status = 'done' ORDER BY seq DESC LIMIT 1", (conversation_id,)).fetchone()
    if row is None:
        raise RuntimeError("the chat page stored no finished answer")
    return str(row[0]), str(row[1])


def read_aloud(client: httpx.Client, message_id: str) -> dict[str, float]:
    """GET the answer as WAV: time to the first body byte, and to the end."""
    started = time.perf_counter()
    first: float | None = None
    data = bytearray()
    with client.stream("GET", f"/api/speech/messages/{message_id}") as response:
        if response.status_code != 200:
            response.read()
            raise RuntimeError(f"reading aloud failed: {response.status_code} {response.text[:300]}")
        for chunk in response.iter_raw():
            if first is None:
                first = time.perf_counter() - started
            data += chunk
    total = time.perf_counter() - started
    assert first is not None
    rate = int.from_bytes(data[24:28], "little")
    return {"first_byte_s": first, "total_s": total, "audio_s": (len(data) - 44) / 2 / rate}


def speak_in_browser(page: Page, runs: int) -> list[float]:
    found: list[float] = []
    ended: list[Request] = []

    def end(request: Request) -> None:
        if "/api/speech/messages/" in request.url:
            ended.append(request)

    # Chromium reports a fetch whose body a page reads as a stream to its end as aborted,
    # so the end of the answer is either event
    page.on("requestfinished", end)
    page.on("requestfailed", end)
    for i in range(runs):
        if i:
            page.reload()
            page.wait_for_selector(SPEAK)
            page.wait_for_function("window.did_handshake === true")
        ended.clear()
        speak = page.locator(SPEAK).last
        speak.click()
        page.wait_for_function("el => Number(el.dataset.firstAudioMs ?? 0) > 0", arg=speak.element_handle())
        found.append(float(speak.evaluate("el => el.dataset.firstAudioMs")) / 1000)
        deadline = time.monotonic() + 120
        while not ended:  # the whole answer was spoken: the voice is idle for the next run
            if time.monotonic() > deadline:
                raise RuntimeError("the answer's audio did not end within 120 s")
            page.wait_for_timeout(50)
        log(f"speaker button {i + 1}/{runs}: first audio after {ms(found[-1])} ms")
    page.remove_listener("requestfinished", end)
    page.remove_listener("requestfailed", end)
    return found


def reading(server: ServerProcess, page: Page, voice: RawVoice, conversation_id: str, message_id: str,
            content: str, runs: int, browser_runs: int) -> dict[str, Any]:
    text = speakable(content)
    first_piece = pieces(text)[0]
    with httpx.Client(base_url=server.base, headers=server.headers(), timeout=120) as client:
        cold = read_aloud(client, message_id)  # the first request since the server started
        log(f"read aloud, cold: first byte {ms(cold['first_byte_s'])} ms")
        client.post("/api/speech/warm").raise_for_status()
        app: list[dict[str, float]] = []
        raw: list[float] = []
        for i in range(runs):
            sides: list[Callable[[], None]] = [lambda: app.append(read_aloud(client, message_id)),
                                               lambda: raw.append(voice.first_chunk_s(text))]
            for side in sides if i % 2 == 0 else sides[::-1]:
                side()
            log(f"read aloud {i + 1}/{runs}: app first byte {ms(app[-1]['first_byte_s'])} ms, "
                f"raw first chunk {ms(raw[-1])} ms")
    open_chat(page, server, f"/c/{conversation_id}")
    browser = speak_in_browser(page, browser_runs)
    app_first = [r["first_byte_s"] for r in app]
    raw_median = statistics.median(raw)
    return {"answer_chars": len(content), "speakable_chars": len(text), "first_piece": first_piece,
            "pieces": len(pieces(text)), "audio_s": round(app[0]["audio_s"], 2), "goal": "<=300",
            "server_warm": {"median_ms": median_ms(app_first), "runs_ms": [ms(t) for t in app_first],
                            "over_raw": round(statistics.median(app_first) / raw_median, 2),
                            "overhead_ms": ms(statistics.median(app_first) - raw_median),
                            "whole_answer_ms_median": median_ms([r["total_s"] for r in app])},
            "server_cold": {"first_byte_ms": ms(cold["first_byte_s"]), "whole_answer_ms": ms(cold["total_s"]),
                            "raw_load_plus_first_chunk_ms": ms(voice.load_s + raw_median),
                            "over_raw": round(cold["first_byte_s"] / (voice.load_s + raw_median), 2)},
            "browser": {"median_ms": median_ms(browser), "runs_ms": [ms(t) for t in browser],
                        "over_raw": round(statistics.median(browser) / raw_median, 2)},
            "raw_first_chunk": {"median_ms": ms(raw_median), "runs_ms": [ms(t) for t in raw],
                                "voice_load_ms": ms(voice.load_s)}}


# the run -------------------------------------------------------------------------------------

def launch(playwright: Playwright, wav: Path) -> Browser:
    args = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}%noloop"]
    browser: Browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
    return browser


def summary(result: dict[str, Any]) -> None:
    audio = result["audio"]
    print(f"load average at start: {' '.join(map(str, result['load_avg_start']))}; "
          f"inference threads on both sides: {result['threads']}")
    t = result["transcription"]
    print(f"\ntranscription of {audio['narration_s']} s of Piper narration, Whisper base int8, "
          f"{t['runs']} runs each (interleaved), medians:")
    print(f"{'':<36}{'ms':>9}{'RTF':>8}{'words matched':>15}")
    print(f"{'raw faster-whisper (baseline)':<36}{t['raw_ms_median']:>9.0f}{t['raw_rtf_median']:>8.3f}"
          f"{t['word_match']['raw']:>15.3f}")
    print(f"{'POST /v1/audio/transcriptions':<36}{t['app_ms_median']:>9.0f}{t['app_rtf_median']:>8.3f}"
          f"{t['word_match']['app']:>15.3f}")
    print(f"{'raw, samples decoded beforehand':<36}{t['raw_predecoded_ms_median']:>9.0f}"
          f"{t['raw_predecoded_rtf_median']:>8.3f}{t['word_match']['raw_predecoded']:>15.3f}")
    print(f"  app / raw: {t['app_over_raw']:.3f} (goal <= 1.10; {t['overhead_ms']:+.0f} ms); app / raw on decoded "
          f"samples: {t['app_over_raw_predecoded']:.3f}; RTF goal <= 0.1; identical transcripts "
          f"{t['identical_text']}/{t['runs']}")
    d = result["dictation"]
    print(f"\ndictation in Chromium ({audio['request_s']} s request + {PAD_S:g} s silence each side, "
          f"recorded as {d['mime']}), stop press -> text in the box, {d['runs']} runs:")
    print(f"  median {d['median_ms']:.0f} ms (goal <= 1500): runs {d['runs_ms']}; first run (speech worker "
          f"loaded by its press) {d['first_run_ms']:.0f} ms, later runs median {d['warm_median_ms']} ms")
    print(f"  in the worker {d['worker_ms']} ms; until the dictation says done {d['stop_to_done_ms']} ms; "
          f"words matched {d['word_match']}")
    print(f"  raw faster-whisper on the same padded WAV (baseline): {d['raw_same_wav_ms_median']:.0f} ms; "
          f"median / raw {d['median_over_raw']}; words matched {d['raw_word_match']}")
    print(f"  heard in Chromium: {d['text_first']!r}; raw on the WAV: {d['raw_text']!r}")
    r = result["read_aloud"]
    raw = r["raw_first_chunk"]
    print(f"\nreading an answer aloud ({r['speakable_chars']} characters, {r['audio_s']} s of audio; first piece "
          f"{len(r['first_piece'])} characters: {r['first_piece']!r}):")
    print(f"{'':<52}{'ms':>9}{'/ raw':>8}")
    print(f"{'raw Piper, first chunk (baseline)':<52}{raw['median_ms']:>9.0f}{1:>8.2f}")
    warm, cold, browser = r["server_warm"], r["server_cold"], r["browser"]
    print(f"{'GET /api/speech/messages/{id}, first byte, warm':<52}{warm['median_ms']:>9.0f}{warm['over_raw']:>8.2f}")
    print(f"{'speaker button in Chromium, firstAudioMs':<52}{browser['median_ms']:>9.0f}{browser['over_raw']:>8.2f}")
    print(f"  goal <= 300 ms; warm runs {warm['runs_ms']}, browser runs {browser['runs_ms']}; "
          f"whole answer through the app {warm['whole_answer_ms_median']:.0f} ms")
    print(f"  cold (first request after the server started): first byte {cold['first_byte_ms']:.0f} ms, against "
          f"raw voice load + first chunk {cold['raw_load_plus_first_chunk_ms']:.0f} ms (x{cold['over_raw']})")
    print(f"\nload average at end: {' '.join(map(str, result['load_avg_end']))}; took {result['took_s']} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="transcriptions and read-aloud requests per side")
    parser.add_argument("--browser-runs", type=int, default=3, help="dictations and speaker presses in Chromium")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        sys.exit("this benchmark needs Debian's chromium at /usr/bin/chromium")
    speech_model, voice_model = bundled_multilingual_speech_model(), bundled_voice()  # as the server chooses
    if speech_model is None or voice_model is None or bundled_chat_model() is None:
        sys.exit("this benchmark needs the bundled Whisper model, Piper voice and chat model")
    threads = Settings().inference_threads
    started = time.perf_counter()
    result: dict[str, Any] = {"when": datetime.now().isoformat(timespec="seconds"),
                              "load_avg_start": [round(x, 2) for x in os.getloadavg()], "threads": threads}
    with tempfile.TemporaryDirectory(prefix="gridless-bench-") as tmp, sync_playwright() as playwright:
        folder = Path(tmp)
        data = folder / "data"
        voice = RawVoice(voice_model, threads)
        audio = make_audio(voice, folder)
        result["audio"] = {k: v for k, v in audio.items() if k != "paths"}
        log(f"spoke {audio['narration_s']} s of narration and a {audio['request_padded_s']} s request; "
            f"raw voice loaded in {ms(voice.load_s)} ms")
        raw = RawWhisper(speech_model, threads)
        port = free_port()
        server_args = ["--threads", str(threads)]
        browser = launch(playwright, audio["paths"]["request"])
        try:
            page = browser.new_context(viewport=PHONE).new_page()
            with ServerProcess(data_dir=data, port=port, extra_args=server_args) as server, \
                    httpx.Client(base_url=server.base, headers=server.headers(), timeout=120) as client:
                open_chat(page, server)
                log(f"dictation: {args.browser_runs} runs")
                result["dictation"] = dictation(page, server, client, raw, audio, args.browser_runs)
                log(f"transcription: {args.runs} runs per side")
                result["transcription"] = transcription(client, raw, audio["paths"]["narration"],
                                                        audio["narration_s"], args.runs)
                log("writing an answer on the chat page")
                conversation_id = write_answer(page)
            message_id, content = stored_answer(data, conversation_id)
            log(f"answer {message_id}: {len(content)} characters; restarting the server")
            with ServerProcess(data_dir=data, port=port, extra_args=server_args) as server:
                result["read_aloud"] = reading(server, page, voice, conversation_id, message_id, content,
                                               args.runs, args.browser_runs)
        finally:
            browser.close()
    result["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    result["took_s"] = round(time.perf_counter() - started, 1)
    summary(result)
    save("speech", result)


if __name__ == "__main__":
    main()
