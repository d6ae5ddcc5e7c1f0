"""Benchmark: the voice conversation, from the end of a person's question to the first sound of the
answer, through the app and directly on the engines; and an answer read while it is written
against one read once it is finished.

Prints a summary on stdout (progress goes to stderr) and writes the numbers as JSON into
`bench/results/`:

    python bench/voice_mode.py [--turns N] [--repeats N] [--gap S]

The questions are spoken by the bundled Piper voice in this process at the start. Both sides use
the server's inference threads (`Settings.inference_threads`) and the same models: the speech
model the server loads (`POST /api/transcripts/warm` names it), the bundled chat model and voice.
The conversations answer with temperature 0 (the same words each time) and at most
`ANSWER_TOKENS` tokens, so an answer ends before the next question.

* through the app: a real `gridless serve` and Chromium with a fake microphone playing `--turns`
  questions (default 8) from one WAV, `--gap` seconds of silence after each (default 14: on a
  busy machine the answer must be heard, written and spoken by the server before the next
  question starts, or that question cuts it short). The voice view is opened on a conversation
  made through the API; `window.gridlessVoice.turns[*].latencyMs` is the time from the end of
  the person's speech (when the frame holding its last sample was captured) to the first sound
  of the answer (when its first buffer is scheduled to play). The server's `timings` per turn
  (ms from the end of the speech: `vad`, the silence waited for; `heard`, the words known;
  `first_audio`, the first sound sent; `answered`) show where the time goes.
* directly on the engines, in this process (the baseline): each question's audio (the same WAV
  decoded to 16 kHz) is fed to `backend.audio.vad.TurnDetector` frame by frame at the pace it
  would arrive, from the end of the speech to the end decision (the silence waited for); the
  turn's audio, written as the app writes it, through the app's own speech engine class run in
  this process (`backend.engines.speech.SpeechEngine`: faster-whisper on the same folder with
  the same threads, given the request a voice turn makes), without its worker process and pipe;
  then llama-cpp-python with the bundled chat model on the messages the app's model read for
  that turn (the earlier turns as the app stored them, this question as heard here), streamed
  until `SpokenPieces` gives the first piece to speak; then Piper (built as the app's voice
  engine) until the first chunk of that piece. Their sum is the direct end of speech -> first
  audio. The app starts transcribing once the speech has paused (`TurnPaused`), before the end
  is decided, so it may be quicker than the sum; a pause within a question costs it a
  transcription thrown away (counted here).
* time to first audio of an answer, through the HTTP API: a question sent to a new conversation
  (`POST /api/conversations/{id}/messages`), and (a) `GET /api/speech/messages/{id}` as soon as
  the answer exists (its `message` event): read aloud as it is written; (b) the same once the
  answer is finished (`?stream=0`): what reading aloud did before. Time from the send to the
  first byte of sound (after the WAV header); `--repeats` of each (default 4), alternated,
  each read to its end so the voice is idle for the next.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# The raw engines run in this process: onnxruntime's telemetry off, as in the app's workers
os.environ.update(ORT_DISABLE_TELEMETRY="1", ORT_TELEMETRY_DISABLED="1")

from playwright.sync_api import Page, sync_playwright  # noqa: E402

from backend.audio.following import SpokenPieces  # noqa: E402
from backend.audio.intake import wav_bytes  # noqa: E402
from backend.audio.vad import FRAME, RATE, TurnDetector, TurnEnded, TurnPaused  # noqa: E402
from backend.core.config import Settings  # noqa: E402
from backend.engines.speech import SpeechConfig, SpeechEngine, TranscribeRequest, decode_bounded  # noqa: E402
from backend.models.local import bundled_chat_model, bundled_voice  # noqa: E402
from bench.report import load_avg, log, ms, save  # noqa: E402
from bench.speech import RawVoice, write_wav  # noqa: E402
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, PHONE  # noqa: E402
from tests.server import ServerProcess  # noqa: E402

QUESTIONS = (
    "What is the capital of France?",
    "Name a fruit that is yellow.",
    "How many legs does a spider have?",
    "What colour is the sky on a clear day?",
    "Which animal says moo?",
    "What do bees make?",
    "Where does the sun rise?",
    "What is frozen water called?",
    "How many days are in a week?",
    "What do you use to write on paper?",
)
ANSWER_TOKENS = 40
READ_QUESTION = "Explain in a few sentences why the sky is blue."
READ_TOKENS = 120
LEAD_S = 3.0
COMPOSER = "textarea[data-testid=composer]"
VOICE_OPEN = "[data-testid=voice-mode-open]"
VOICE_VIEW = "[data-testid=voice-mode]"


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(values, dtype=float), q)), 1)


def spread(values: list[float]) -> dict[str, Any]:
    """p50, p95, min and max of milliseconds (None when there are none)."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "min": None, "max": None}
    return {"n": len(values), "p50": pct(values, 50), "p95": pct(values, 95), "min": round(min(values), 1),
            "max": round(max(values), 1)}


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


# the questions, spoken ----------------------------------------------------------------------------

@dataclass
class Spoken:
    text: str
    pcm: np.ndarray
    path: Path
    """The question alone, as a WAV (the direct side decodes it as the app's fake microphone reads it)."""


def speak_questions(voice: RawVoice, folder: Path, turns: int) -> list[Spoken]:
    spoken = []
    for i in range(turns):
        text = QUESTIONS[i % len(QUESTIONS)]
        pcm = voice.pcm(text)
        path = folder / f"question-{i + 1}.wav"
        write_wav(path, pcm, voice.rate)
        spoken.append(Spoken(text=text, pcm=pcm, path=path))
    return spoken


def microphone_file(questions: list[Spoken], rate: int, gap_s: float, path: Path) -> float:
    silence = np.zeros(int(gap_s * rate), dtype=np.int16)
    parts = [np.zeros(int(LEAD_S * rate), dtype=np.int16)]
    for question in questions:
        parts += [question.pcm, silence]
    return write_wav(path, np.concatenate(parts), rate)


# 1. through the app -------------------------------------------------------------------------------

def api(server: ServerProcess, timeout: float = 300) -> httpx.Client:
    return httpx.Client(base_url=server.base, headers=server.headers(), timeout=timeout)


def new_conversation(client: httpx.Client, **settings: Any) -> str:
    response = client.post("/api/conversations", json={"title": "Voice benchmark"})
    response.raise_for_status()
    conversation = str(response.json()["id"])
    if settings:
        client.patch(f"/api/conversations/{conversation}", json={"settings": settings}).raise_for_status()
    return conversation


def through_app(page: Page, server: ServerProcess, conversation: str, turns: int, length_s: float) -> dict[str, Any]:
    page.goto(server.owner_link)
    page.wait_for_selector(COMPOSER)
    page.goto(f"{server.base}/c/{conversation}")
    page.wait_for_selector(COMPOSER)
    page.wait_for_function("window.did_handshake === true")
    page.locator(VOICE_OPEN).click()
    page.wait_for_selector(f"{VOICE_VIEW}[data-state=listening]", timeout=30_000)
    opened = time.monotonic()
    # until every question is answered, or the file has played and no answer came for a minute
    progress_js = """n => { const turns = window.gridlessVoice?.turns || [];
      return { aloud: turns.filter(t => t.latencyMs !== undefined).length,
               settled: turns.length >= n && turns.every(t => t.server || t.status || t.firstSoundAt === undefined
                                                          && t.heard === undefined) }; }"""
    last_seen, last_change = -1, time.monotonic()
    while True:
        progress = page.evaluate(progress_js, turns)
        now = time.monotonic()
        if progress["aloud"] != last_seen:
            log(f"app: {progress['aloud']} of {turns} questions answered aloud after {now - opened:.0f} s")
            last_seen, last_change = progress["aloud"], now
        if progress["aloud"] >= turns and progress["settled"]:
            break
        if now - opened > length_s and now - last_change > 60:
            log("app: no more answers; going on with what was heard")
            break
        page.wait_for_timeout(500)
    found: list[dict[str, Any]] = page.evaluate("window.gridlessVoice.turns")
    page.locator("[data-testid=voice-close]").click()
    answered = [t for t in found if t.get("latencyMs") is not None]
    timings = {key: [float(t["server"][key]) for t in found if t.get("server") and key in t["server"]]
               for key in ("vad", "heard", "first_audio", "answered")}
    return {"turns_played": turns, "turns_seen": len(found), "turns_answered_aloud": len(answered),
            "cut_short": sum(1 for t in answered if not t.get("server")),
            "latency_ms": spread([float(t["latencyMs"]) for t in answered]),
            "server_median_ms": {key: median(values) for key, values in timings.items()},
            "turns": [{"heard": t.get("heard"), "latency_ms": round(t["latencyMs"], 1) if t.get("latencyMs") else None,
                       "status": t.get("status"), "answer": t.get("answer"),
                       "server": {k: v for k, v in (t.get("server") or {}).items() if k not in ("type", "turn")}}
                      for t in found]}


# 2. directly on the engines -------------------------------------------------------------------------

def speech_model_folder(server: ServerProcess, data_dir: Path) -> tuple[str, Path]:
    """The speech model the app loads: its id (from the warm-up) and its folder (from the database)."""
    with api(server) as client:
        response = client.post("/api/transcripts/warm")
        response.raise_for_status()
        model_id = response.json()["loaded"]
    db = Settings(data_dir=data_dir).db_path
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT path, name FROM models WHERE id = ?", (model_id,)).fetchone()
    if row is None:
        raise RuntimeError(f"the speech model {model_id} is not in the database")
    log(f"speech model: {row[1]} ({row[0]})")
    return str(row[1]), Path(row[0])


class _Job:
    """What an engine sees of a job: nothing is cancelled, and its events go nowhere."""

    job_id = "bench"

    def emit(self, event: object) -> None:
        pass

    def cancelled(self) -> bool:
        return False


class Direct:
    """The app's steps, one after another, on the raw engines in this process."""

    def __init__(self, speech_folder: Path, voice: RawVoice, threads: int) -> None:
        from llama_cpp import Llama

        chat_model = bundled_chat_model()
        assert chat_model is not None
        self.speech = SpeechEngine(SpeechConfig(model_dir=str(speech_folder), n_threads=threads))
        self.llama: Any = Llama(model_path=str(chat_model), n_ctx=Settings().context_length, n_batch=512,
                                n_threads=threads, n_threads_batch=threads, verbose=False)
        self.voice = voice
        self.folder = Path(tempfile.mkdtemp(prefix="gridless-bench-voice-"))

    def vad(self, path: Path) -> tuple[float, TurnEnded, int]:
        """Feed the question (with silence around it) at the pace a microphone gives it; the time from
        the end of its speech to the decision that the turn ended, and how many quiet moments before
        its end the app would have transcribed ahead for nothing (the speech went on)."""
        samples = decode_bounded(str(path), 60.0)
        pcm = (np.concatenate([np.zeros(RATE // 2, dtype=np.float32), samples, np.zeros(2 * RATE, dtype=np.float32)])
               * 32767).astype("<i2")
        detector = TurnDetector()
        paused: list[int] = []
        started = time.perf_counter()
        for k in range(len(pcm) // FRAME):
            arrives = started + (k + 1) * FRAME / RATE
            wait = arrives - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            for event in detector.feed(pcm[k * FRAME:(k + 1) * FRAME].tobytes()):
                if isinstance(event, TurnPaused):
                    paused.append(event.end)
                if isinstance(event, TurnEnded):
                    decided = time.perf_counter() - (started + event.end / RATE)
                    return decided, event, sum(1 for end in paused if end != event.end)
        raise RuntimeError(f"the detector heard no end of a turn in {path.name}")

    def transcribe(self, audio: np.ndarray) -> tuple[float, str]:
        """As the app's voice turn does: the turn written as WAV, then the app's speech engine class
        (faster-whisper, the same folder, threads and request as a voice turn's) run here, without its
        worker process and pipe."""
        started = time.perf_counter()
        wav = self.folder / "turn.wav"
        wav.write_bytes(wav_bytes((np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes(), RATE))
        request = TranscribeRequest(audio_path=str(wav), language=None, vad=False, max_seconds=120.0, turn=True)
        result = self.speech.run(request, cast(Any, _Job()))
        return time.perf_counter() - started, result.text

    def first_piece(self, messages: list[dict[str, str]]) -> tuple[float, str]:
        """Stream the answer until its first piece to speak is whole."""
        started = time.perf_counter()
        pieces = SpokenPieces()
        text = ""
        stream = self.llama.create_chat_completion(messages=messages, stream=True, max_tokens=ANSWER_TOKENS,
                                                   temperature=0.0)
        found: list[str] = []
        for chunk in stream:
            text += chunk["choices"][0]["delta"].get("content") or ""
            found = pieces.feed(text)
            if found:
                break
        if not found:
            found = pieces.feed(text, final=True)
        stream.close()
        if not found:
            raise RuntimeError(f"the answer had nothing to say: {text!r}")
        return time.perf_counter() - started, found[0]

    def turn(self, question: Spoken, history: list[dict[str, str]]) -> dict[str, Any]:
        vad_s, ended, wasted = self.vad(question.path)
        whisper_s, heard = self.transcribe(ended.audio)
        llm_s, piece = self.first_piece([*history, {"role": "user", "content": heard}])
        piper_s = self.voice.first_chunk_s(piece)
        total = vad_s + whisper_s + llm_s + piper_s
        return {"heard": heard, "first_piece": piece, "pauses_before_end": wasted, "vad_ms": ms(vad_s),
                "whisper_ms": ms(whisper_s), "llm_first_piece_ms": ms(llm_s), "piper_first_chunk_ms": ms(piper_s),
                "total_ms": ms(total)}

    def close(self) -> None:
        self.llama.close()
        self.speech.close()


def app_histories(server: ServerProcess, conversation: str) -> list[list[dict[str, str]]]:
    """For each question the app answered, the messages before it, as the app stored them."""
    with api(server) as client:
        stored = client.get(f"/api/conversations/{conversation}").json()
    system = [{"role": "system", "content": stored["system_prompt"]}] if stored.get("system_prompt") else []
    histories, so_far = [], list(system)
    for message in stored["messages"]:
        if message["role"] == "user":
            histories.append(list(so_far))
        if message["role"] == "user" or (message["content"] and message["status"] != "error"):
            so_far.append({"role": message["role"], "content": message["content"]})
    return histories


def directly(direct: Direct, questions: list[Spoken], histories: list[list[dict[str, str]]]) -> dict[str, Any]:
    done = []
    for i, question in enumerate(questions):
        history = histories[i] if i < len(histories) else (histories[-1] if histories else [])
        result = direct.turn(question, history)
        done.append(result)
        log(f"direct {i + 1}/{len(questions)}: {result['total_ms']:.0f} ms (vad {result['vad_ms']:.0f}, whisper "
            f"{result['whisper_ms']:.0f}, llm {result['llm_first_piece_ms']:.0f}, piper "
            f"{result['piper_first_chunk_ms']:.0f}): {result['heard']!r} -> {result['first_piece']!r}")
    return {"total_ms": spread([r["total_ms"] for r in done]),
            "median_ms": {key: median([r[key] for r in done]) for key in
                          ("vad_ms", "whisper_ms", "llm_first_piece_ms", "piper_first_chunk_ms")},
            "pauses_before_end": sum(r["pauses_before_end"] for r in done),
            "turns": done}


# 3. reading an answer while it is written --------------------------------------------------------------

@dataclass
class Reading:
    first_audio_s: float | None = None
    audio_bytes: int = 0
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


def read_aloud(client: httpx.Client, message_id: str, sent: float, into: Reading) -> None:
    """GET the answer as WAV: the time from `sent` to the first byte of sound, then read to the end."""
    try:
        received = 0
        with client.stream("GET", f"/api/speech/messages/{message_id}") as response:
            if response.status_code != 200:
                response.read()
                into.error = f"{response.status_code} {response.text[:200]}"
                return
            for chunk in response.iter_raw():
                received += len(chunk)
                if into.first_audio_s is None and received > 44:  # past the WAV header
                    into.first_audio_s = time.perf_counter() - sent
        into.audio_bytes = received - 44
    except httpx.HTTPError as exc:
        into.error = str(exc)
    finally:
        into.done.set()


def ask_streamed(client: httpx.Client, conversation: str) -> float:
    """(a) the answer read aloud from the moment it exists."""
    reading = Reading()
    sent = time.perf_counter()
    reader: threading.Thread | None = None
    with client.stream("POST", f"/api/conversations/{conversation}/messages", json={"text": READ_QUESTION}) as events:
        events.raise_for_status()
        kind = ""
        for line in events.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == "message" and reader is None:
                answer = json.loads(line[6:])["answer_id"]
                reader = threading.Thread(target=read_aloud, args=(client, answer, sent, reading), daemon=True)
                reader.start()
    if reader is None:
        raise RuntimeError("the answer's stream named no answer")
    reader.join(300)
    if reading.error or reading.first_audio_s is None:
        raise RuntimeError(f"reading the answer while written failed: {reading.error}")
    return reading.first_audio_s


def ask_finished(client: httpx.Client, conversation: str) -> float:
    """(b) the answer read aloud once it is finished."""
    reading = Reading()
    sent = time.perf_counter()
    response = client.post(f"/api/conversations/{conversation}/messages", params={"stream": 0},
                           json={"text": READ_QUESTION})
    response.raise_for_status()
    read_aloud(client, str(response.json()["id"]), sent, reading)
    if reading.error or reading.first_audio_s is None:
        raise RuntimeError(f"reading the finished answer failed: {reading.error}")
    return reading.first_audio_s


def streamed_vs_finished(server: ServerProcess, repeats: int) -> dict[str, Any]:
    runs: dict[str, list[float]] = {"while_written": [], "after_finished": []}
    with api(server) as client:
        sides = [("while_written", ask_streamed), ("after_finished", ask_finished)]
        for i in range(repeats):
            for name, ask in sides if i % 2 == 0 else sides[::-1]:
                conversation = new_conversation(client, max_tokens=READ_TOKENS, temperature=0)
                runs[name].append(ask(client, conversation) * 1000)
                client.delete(f"/api/conversations/{conversation}")
            log(f"read aloud {i + 1}/{repeats}: while written {runs['while_written'][-1]:.0f} ms, "
                f"after finished {runs['after_finished'][-1]:.0f} ms")
    streamed, finished = spread(runs["while_written"]), spread(runs["after_finished"])
    return {"question": READ_QUESTION, "max_tokens": READ_TOKENS, "repeats": repeats,
            "while_written_ms": streamed, "after_finished_ms": finished,
            "ratio_p50": round(streamed["p50"] / finished["p50"], 3),
            "ratio_p95": round(streamed["p95"] / finished["p95"], 3),
            "runs_ms": {k: [round(v, 1) for v in values] for k, values in runs.items()}}


# the run -------------------------------------------------------------------------------------------

def row(name: str, s: dict[str, Any]) -> str:
    cells = "".join(f"{s[k]:>9.0f}" if s[k] is not None else f"{'-':>9}" for k in ("p50", "p95", "min", "max"))
    return f"  {name:<44}{cells}{s['n']:>6}"


def summary(result: dict[str, Any]) -> None:
    app, direct, read = result["app"], result["direct"], result["read_aloud"]
    print(f"voice conversation benchmark, {result['when']}; inference threads {result['threads']}; "
          f"speech model {result['speech_model']}")
    print(f"load average (1, 5, 15 min): start {result['load_avg_start']}, end {result['load_avg_end']} "
          f"on {os.cpu_count()} cores")
    print(f"\nend of the question's speech -> first sound of the answer, {app['turns_played']} questions "
          f"({result['gap_s']:g} s apart), ms:")
    print(f"  {'':<44}{'p50':>9}{'p95':>9}{'min':>9}{'max':>9}{'n':>6}")
    print(row("through the app (Chromium, latencyMs)", app["latency_ms"]))
    print(row("directly on the engines (sum of the steps)", direct["total_ms"]))
    print(f"  app / direct: p50 x{result['ratio_p50']}, p95 x{result['ratio_p95']}")
    if app["turns_answered_aloud"] < app["turns_played"] or app["cut_short"]:
        print(f"  note: {app['turns_answered_aloud']} of {app['turns_played']} questions answered aloud, "
              f"{app['cut_short']} cut short by the next question (use a longer --gap on a busy machine)")
    s, d = app["server_median_ms"], direct["median_ms"]
    print("\nwhere the time goes (medians, ms):")
    print(f"  app server, from the end of the speech: silence waited {s['vad']}, words known {s['heard']}, "
          f"first sound sent {s['first_audio']}, answer spoken {s['answered']}")
    print(f"  direct, each step: silence waited {d['vad_ms']}, whisper {d['whisper_ms']}, llm to the first piece "
          f"{d['llm_first_piece_ms']}, piper first chunk {d['piper_first_chunk_ms']}")
    print(f"  pauses within the questions (the app transcribes ahead at each, for nothing): "
          f"{direct['pauses_before_end']} in {len(direct['turns'])} questions")
    print(f"\n  {'#':<3}{'app ms':>8}{'heard':>8}{'1st snd':>8}{'direct':>8}{'vad':>6}{'whisp':>7}{'llm':>7}"
          f"{'piper':>7}  heard by the app")
    for i, turn in enumerate(app["turns"]):
        server = turn["server"]
        raw = direct["turns"][i] if i < len(direct["turns"]) else {}

        def cell(value: Any, width: int) -> str:
            return f"{value:>{width}.0f}" if isinstance(value, int | float) else f"{'-':>{width}}"
        print(f"  {i + 1:<3}{cell(turn['latency_ms'], 8)}{cell(server.get('heard'), 8)}"
              f"{cell(server.get('first_audio'), 8)}{cell(raw.get('total_ms'), 8)}{cell(raw.get('vad_ms'), 6)}"
              f"{cell(raw.get('whisper_ms'), 7)}{cell(raw.get('llm_first_piece_ms'), 7)}"
              f"{cell(raw.get('piper_first_chunk_ms'), 7)}  {(turn['heard'] or '')[:48]!r}")
    print(f"\nreading an answer aloud through the HTTP API ({read['question']!r}, at most {read['max_tokens']} tokens, "
          f"{read['repeats']} each, alternated), send -> first byte of sound, ms:")
    print(f"  {'':<44}{'p50':>9}{'p95':>9}{'min':>9}{'max':>9}{'n':>6}")
    print(row("GET as soon as the answer exists (streamed)", read["while_written_ms"]))
    print(row("GET once the answer is finished", read["after_finished_ms"]))
    print(f"  streamed / finished: p50 x{read['ratio_p50']}, p95 x{read['ratio_p95']}")
    print(f"\ntook {result['took_s']} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=8, help="questions spoken to the voice view (default 8)")
    parser.add_argument("--repeats", type=int, default=4, help="answers read aloud each way (default 4)")
    parser.add_argument("--gap", type=float, default=14.0, help="seconds of silence after each question (default 14)")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        sys.exit("this benchmark needs Debian's chromium at /usr/bin/chromium")
    voice_model = bundled_voice()
    if voice_model is None or bundled_chat_model() is None:
        sys.exit("this benchmark needs the bundled Piper voice and chat model")
    threads = Settings().inference_threads
    started = time.perf_counter()
    result: dict[str, Any] = {"when": datetime.now().isoformat(timespec="seconds"), "load_avg_start": load_avg(),
                              "threads": threads, "gap_s": args.gap, "answer_tokens": ANSWER_TOKENS}
    with tempfile.TemporaryDirectory(prefix="gridless-bench-") as tmp, sync_playwright() as playwright:
        folder = Path(tmp)
        data = folder / "data"
        voice = RawVoice(voice_model, threads)
        questions = speak_questions(voice, folder, args.turns)
        mic = folder / "microphone.wav"
        length_s = microphone_file(questions, voice.rate, args.gap, mic)
        log(f"spoke {args.turns} questions: {length_s:.0f} s of microphone")
        with ServerProcess(data_dir=data, extra_args=["--threads", str(threads)]) as server:
            with api(server) as client:  # every model loaded before the first question
                client.post("/api/speech/warm").raise_for_status()
                warm = new_conversation(client, max_tokens=2)
                client.post(f"/api/conversations/{warm}/messages", params={"stream": 0},
                            json={"text": "Hello"}).raise_for_status()
                client.delete(f"/api/conversations/{warm}")
                conversation = new_conversation(client, max_tokens=ANSWER_TOKENS, temperature=0)
            result["speech_model"], speech_folder = speech_model_folder(server, data)
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
                *CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={mic}%noloop"])
            try:
                page = browser.new_context(viewport=PHONE).new_page()
                log(f"through the app: {args.turns} questions, {args.gap:g} s apart")
                result["app"] = through_app(page, server, conversation, args.turns, length_s)
            finally:
                browser.close()
            log(f"reading aloud, while written and after: {args.repeats} each")
            result["read_aloud"] = streamed_vs_finished(server, args.repeats)
            histories = app_histories(server, conversation)
        log("directly on the engines")
        direct = Direct(speech_folder, voice, threads)
        try:
            result["direct"] = directly(direct, questions, histories)
        finally:
            direct.close()
    app_latency, direct_total = result["app"]["latency_ms"], result["direct"]["total_ms"]
    result["ratio_p50"] = round(app_latency["p50"] / direct_total["p50"], 2) if app_latency["p50"] else None
    result["ratio_p95"] = round(app_latency["p95"] / direct_total["p95"], 2) if app_latency["p95"] else None
    result["load_avg_end"] = load_avg()
    result["took_s"] = round(time.perf_counter() - started, 1)
    summary(result)
    save("voice_mode", result)


if __name__ == "__main__":
    main()
