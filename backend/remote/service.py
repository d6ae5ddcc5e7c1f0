"""The engine servers the owner added: adding one (checked first), the regular check of each, their
models as model records beside the local ones, and answers streamed from them.

An answer from a server runs as a task that feeds a queue: Stop cancels the task, which closes
the connection at once (llama-server and the others stop generating when their client leaves),
and whatever was read so far stays with the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import logging
import ssl
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from ..core.config import Settings
from ..core.errors import AppError, ErrorCode
from ..core.jobs import Job
from ..engines.diffusion import GenerateRequest, GenerateResult
from ..engines.llm import ChatRequest, ChatResult
from ..engines.speech import SpeechInfo, SpeechSegment, TranscribeRequest, TranscribeResult
from ..models.registry import ModelRecord
from ..runtime.host import EngineJob
from ..runtime.protocol import Event, JobDone, JobFailed, Result
from ..storage.db import Database
from .client import (
    RemoteClient,
    RemoteLimits,
    fetch_authority,
    fetch_certificate,
    fingerprint_of,
    normalize_fingerprint,
    normalize_url,
)
from .convert import ChunkReader, openai_request, trimmed
from .sse import StreamLimits
from .store import JOBS, EngineStore, RemoteEngine

__all__ = ["MAX_ENGINES", "RemoteEngines", "is_remote", "relay"]

log = logging.getLogger(__name__)

MAX_ENGINES = 16
NAME_MAX = 60
KEY_MAX = 4096
DOWN_FAIL_FAST_S = 10.0
"""A server found down this recently is not tried again for an answer: it fails at once."""
_END = object()
LANGUAGE_CODES = {"english": "en", "italian": "it", "german": "de", "spanish": "es", "french": "fr",
                  "portuguese": "pt", "dutch": "nl", "polish": "pl", "russian": "ru", "ukrainian": "uk",
                  "turkish": "tr", "arabic": "ar", "hindi": "hi", "chinese": "zh", "japanese": "ja", "korean": "ko",
                  "swedish": "sv", "danish": "da", "norwegian": "no", "finnish": "fi", "greek": "el", "czech": "cs",
                  "romanian": "ro", "hungarian": "hu", "catalan": "ca"}
"""Whisper's language names, as OpenAI's `verbose_json` gives them, to the codes this device's model gives."""


def is_remote(model: ModelRecord | None) -> bool:
    return model is not None and model.source == "remote"


def _clean_name(name: str | None, url: str) -> str:
    text = " ".join((name or "").split())
    text = "".join(c for c in text if c.isprintable())[:NAME_MAX]
    return text or (urlsplit(url).hostname or url)


class RemoteEngines:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.store = EngineStore(db)
        self.settings = settings
        self.limits = RemoteLimits(silence_s=settings.remote_silence_s,
                                   stream=StreamLimits(max_seconds=settings.remote_stream_s))
        self._engines: dict[str, RemoteEngine] = {}
        self._clients: dict[str, RemoteClient] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._checker: asyncio.Task[None] | None = None
        self._checking: dict[str, asyncio.Task[RemoteEngine]] = {}
        self._saves: set[asyncio.Task[None]] = set()
        self._adding = asyncio.Lock()

    # the servers --------------------------------------------------------------------------------

    async def start(self) -> None:
        for engine in await self.store.all():
            engine.state = "unknown"
            self._engines[engine.id] = engine
            self._clients[engine.id] = self._client(engine)
        self._checker = asyncio.create_task(self._check_regularly())

    async def stop(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
            self._checker = None
        for task in [*self._running.values(), *self._checking.values()]:
            task.cancel()
        for task in [*self._running.values(), *self._checking.values()]:
            with contextlib.suppress(BaseException):
                await task
        for client in self._clients.values():
            await client.aclose()
        self._engines.clear()
        self._clients.clear()

    def servers(self) -> list[RemoteEngine]:
        return list(self._engines.values())

    def engine(self, engine_id: str) -> RemoteEngine:
        engine = self._engines.get(engine_id)
        if engine is None:
            raise AppError(ErrorCode.NOT_FOUND, "There is no such engine server (it may have been removed).")
        return engine

    def _client(self, engine: RemoteEngine) -> RemoteClient:
        return RemoteClient(engine.url, engine.api_key, engine.certificate, name=engine.name, limits=self.limits)

    async def add(self, url: str, key: str = "", *, fingerprint: str | None = None, name: str | None = None
                  ) -> RemoteEngine:
        """Add a server after asking it for its models: nothing is kept when that fails."""
        base = normalize_url(url)
        if len(key) > KEY_MAX or not key.isprintable() or any(c.isspace() for c in key.strip()):
            raise AppError(ErrorCode.INVALID_VALUE, "That key cannot be right (spaces, or too long).", param="key")
        self._room_for(base)
        engine = RemoteEngine(id=uuid.uuid4().hex[:12], url=base, name=_clean_name(name, base), api_key=key.strip())
        if fingerprint:
            if not engine.secure:
                raise AppError(ErrorCode.INVALID_VALUE, "A fingerprint is only for https:// addresses.",
                               param="fingerprint")
            wanted = normalize_fingerprint(fingerprint)
            der = await fetch_certificate(base)
            shown = fingerprint_of(der)
            if shown != wanted:
                # another gridless shows its own authority's fingerprint: pinning that authority keeps
                # working when it renews the certificate it serves
                der = await fetch_authority(base) or b""
                if not der or fingerprint_of(der) != wanted:
                    raise AppError(ErrorCode.REMOTE_UNTRUSTED,
                                   f"{engine.name} shows a certificate with the fingerprint {shown}, not {wanted}. "
                                   "Someone may be in between; check the fingerprint on the server.")
            engine.certificate, engine.fingerprint = ssl.DER_cert_to_PEM_cert(der), wanted
        client = self._client(engine)
        try:
            await self._probe(engine, client)
        except AppError as exc:
            await client.aclose()
            if exc.code == ErrorCode.REMOTE_UNTRUSTED and engine.secure and not fingerprint:
                raise await self._untrusted(engine) from None
            raise
        async with self._adding:  # two requests at once may have checked the same server
            try:
                self._room_for(base)
                await self.store.add(engine)
            except BaseException:
                await client.aclose()
                raise
            self._engines[engine.id], self._clients[engine.id] = engine, client
        return engine

    def _room_for(self, base: str) -> None:
        if any(e.url == base for e in self._engines.values()):
            raise AppError(ErrorCode.CONFLICT, f"{base} is already added.")
        if len(self._engines) >= MAX_ENGINES:
            raise AppError(ErrorCode.CONFLICT, f"At most {MAX_ENGINES} engine servers can be added; remove one first.")

    async def _untrusted(self, engine: RemoteEngine) -> AppError:
        """The refusal of a certificate not signed by a known authority, with its fingerprint to pin."""
        try:
            shown = fingerprint_of(await fetch_certificate(engine.url))
        except AppError as exc:
            return exc
        return AppError(ErrorCode.REMOTE_UNTRUSTED,
                        f"The certificate of {engine.name} is not signed by a known authority (self-signed?). Its "
                        f"SHA-256 fingerprint is {shown}. If the server shows the same one, add it again with this "
                        "fingerprint.", param="fingerprint")

    async def remove(self, engine_id: str) -> None:
        self.engine(engine_id)
        for job_id, task in list(self._running.items()):
            if job_id.startswith(engine_id + ":"):
                task.cancel()
        await self.store.remove(engine_id)
        self._engines.pop(engine_id, None)
        client = self._clients.pop(engine_id, None)
        if client is not None:
            await client.aclose()

    async def check(self, engine_id: str) -> RemoteEngine:
        """Ask the server for its models now (one check at a time per server)."""
        engine = self.engine(engine_id)
        running = self._checking.get(engine_id)
        if running is None:
            running = self._checking[engine_id] = asyncio.create_task(self._check(engine))
            running.add_done_callback(lambda _t: self._checking.pop(engine_id, None))
        return await asyncio.shield(running)

    async def _check(self, engine: RemoteEngine) -> RemoteEngine:
        client = self._clients.get(engine.id)
        if client is None:
            return engine
        try:
            await self._probe(engine, client)
        except AppError as exc:
            engine.state, engine.error, engine.checked_at = "down", exc.message, time.time()
        if engine.id in self._engines:
            await self.store.save_state(engine)
        return engine

    async def _probe(self, engine: RemoteEngine, client: RemoteClient) -> None:
        started = time.monotonic()
        models = await client.models()
        engine.latency_ms = round((time.monotonic() - started) * 1000, 1)
        engine.models, engine.state, engine.error, engine.checked_at = models, "up", None, time.time()

    async def _check_regularly(self) -> None:
        while True:
            for engine in list(self._engines.values()):
                if self._answering(engine.id):
                    # an answer streaming from it shows it is up; and llama-cpp-python's server
                    # ends the stream it is sending when any other request reaches it
                    continue
                try:
                    await self.check(engine.id)
                except AppError:
                    pass  # removed meanwhile
                except Exception:
                    log.exception("checking an engine server failed")
            await asyncio.sleep(self.settings.remote_check_s)

    def _answering(self, engine_id: str) -> bool:
        return any(key.startswith(engine_id + ":") for key in self._running)

    def _went_down(self, engine: RemoteEngine, error: AppError) -> None:
        if error.code in (ErrorCode.REMOTE_UNAVAILABLE, ErrorCode.REMOTE_UNTRUSTED) and engine.id in self._engines:
            engine.state, engine.error, engine.checked_at = "down", error.message, time.time()
            self._save_later(engine)

    # their models ---------------------------------------------------------------------------------

    def records(self, job: Job | None = None) -> list[ModelRecord]:
        """Every model of every server (or those used for `job`), as model records (`source` "remote")."""
        return [self._record(engine, model) for engine in self._engines.values() for model in engine.models
                if job is None or engine.job_of(model) == job.value]

    async def set_tools(self, engine_id: str, tools: bool) -> RemoteEngine:
        """Whether conversations may give this server's chat models the tools (its owner knows)."""
        engine = self.engine(engine_id)
        engine.tools = tools
        await self.store.set_tools(engine_id, tools)
        return engine

    async def set_job(self, engine_id: str, model: str, job: str) -> RemoteEngine:
        """What a server's model is used for here (its name may not tell): "chat", "embeddings", "speech" or
        "images"."""
        engine = self.engine(engine_id)
        if model not in engine.models:
            raise AppError(ErrorCode.NOT_FOUND, f"{engine.name} does not offer a model '{model[:100]}'.")
        if job not in JOBS:
            raise AppError(ErrorCode.INVALID_VALUE, f"A server's model is used for {' or '.join(JOBS)}.", param="job")
        engine.jobs[model] = job
        await self.store.save_state(engine)
        return engine

    def get(self, model_id: str) -> ModelRecord | None:
        engine_id, _, model = model_id.partition("/")
        engine = self._engines.get(engine_id)
        if engine is None or model not in engine.models:
            return None
        return self._record(engine, model)

    @staticmethod
    def _record(engine: RemoteEngine, model: str) -> ModelRecord:
        return ModelRecord(id=f"{engine.id}/{model}", job=Job(engine.job_of(model)), name=f"{model} · {engine.name}",
                           format="remote", path=Path(), size_bytes=0, source="remote", added_at=engine.created_at,
                           info={"engine": engine.id, "engine_name": engine.name, "remote_model": model,
                                 "tools": engine.tools,
                                 "state": engine.state, **engine.speed.get(model, {})})

    # answers ----------------------------------------------------------------------------------------

    async def stream(self, model: ModelRecord, request: ChatRequest, job: EngineJob) -> AsyncGenerator[Event, None]:
        """The answer's events, as a local engine sends them (ending in JobDone or JobFailed)."""
        engine = self._engines.get(str(model.info.get("engine")))
        if engine is None:
            yield JobFailed(job_id=job.id, code=ErrorCode.MODEL_NOT_FOUND,
                            message=f"{model.name}: its engine server was removed.")
            return
        if engine.state == "down" and engine.checked_at is not None \
                and time.time() - engine.checked_at < DOWN_FAIL_FAST_S:
            yield JobFailed(job_id=job.id, code=ErrorCode.REMOTE_UNAVAILABLE,
                            message=f"{engine.name} is not answering: {engine.error or 'down'}")
            return
        if job.cancelled:
            yield JobFailed(job_id=job.id, code=ErrorCode.CANCELLED, message="cancelled before it started")
            return
        queue: asyncio.Queue[object] = asyncio.Queue()
        request, left_out = trimmed(request)
        reader = ChunkReader(job.id, model.id, engine.name, trimmed_messages=left_out)
        task = asyncio.create_task(self._read(engine, str(model.info["remote_model"]), request, reader, queue))
        key = f"{engine.id}:{job.id}"
        self._running[key] = task
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    break
                assert isinstance(item, Event)
                yield item
        finally:
            self._running.pop(key, None)
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def _read(self, engine: RemoteEngine, model: str, request: ChatRequest, reader: ChunkReader,
                    queue: asyncio.Queue[object]) -> None:
        client = self._clients[engine.id]
        try:
            async for chunk in client.chat(openai_request(request, model)):
                for event in reader.feed(chunk):
                    queue.put_nowait(event)
            events = reader.finish()
        except asyncio.CancelledError:
            for event in reader.finish(cancelled=True):
                queue.put_nowait(event)
            queue.put_nowait(_END)
            raise
        except AppError as exc:
            self._went_down(engine, exc)
            queue.put_nowait(JobFailed(job_id=reader.job_id, code=exc.code, message=exc.message))
        except Exception:
            log.exception("an answer from an engine server failed")
            queue.put_nowait(JobFailed(job_id=reader.job_id, code=ErrorCode.INTERNAL,
                                       message=f"The answer from {engine.name} failed."))
        else:
            for event in events:
                queue.put_nowait(event)
            self._note_speed(engine, model, events)
        queue.put_nowait(_END)

    def _note_speed(self, engine: RemoteEngine, model: str, events: list[Event]) -> None:
        done = next((e for e in events if isinstance(e, JobDone)), None)
        if done is None or not isinstance(done.result, ChatResult) or done.result.completion_tokens < 2:
            return
        engine.speed[model] = {"tokens_per_s": done.result.tokens_per_s, "ttft_s": done.result.ttft_s}
        if engine.state != "up":
            engine.state, engine.error = "up", None
        self._save_later(engine)

    def _save_later(self, engine: RemoteEngine) -> None:
        """Write a server's state without holding up the answer that found it."""
        task = asyncio.get_running_loop().create_task(self.store.save_state(engine))
        self._saves.add(task)
        task.add_done_callback(self._saves.discard)

    async def embed(self, model: ModelRecord, texts: list[str]) -> tuple[np.ndarray, int]:
        """Vectors for `texts` from a server's embedding model (float32, one normalised row each), and the
        tokens it counted."""
        engine = self._engines.get(str(model.info.get("engine")))
        if engine is None:
            raise AppError(ErrorCode.MODEL_NOT_FOUND, f"{model.name}: its engine server was removed.")
        if engine.state == "down" and engine.checked_at is not None \
                and time.time() - engine.checked_at < DOWN_FAIL_FAST_S:
            raise AppError(ErrorCode.REMOTE_UNAVAILABLE, f"{engine.name} is not answering: {engine.error or 'down'}")
        try:
            rows, tokens = await self._clients[engine.id].embeddings(str(model.info["remote_model"]), texts)
        except AppError as exc:
            self._went_down(engine, exc)
            raise
        vectors = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if not np.all(np.isfinite(vectors)) or np.any(norms == 0):
            raise AppError(ErrorCode.REMOTE_FAILED, f"{engine.name} sent an empty or broken vector.")
        return vectors / norms, tokens

    def first(self, job: Job) -> ModelRecord | None:
        """The first model for `job` of a server that is not known to be down: dictation and pictures go
        there (a large Whisper, a bigger image model on a laptop) while it answers."""
        return next((self._record(e, m) for e in self._engines.values() if e.state != "down"
                     for m in e.models if e.job_of(m) == job.value), None)

    async def pictures(self, model: ModelRecord, request: GenerateRequest, job: EngineJob) -> list[Event]:
        """Pictures made by a server's image model, as the events the local engine sends (checked,
        as PNG)."""
        engine = self._engines.get(str(model.info.get("engine")))
        if engine is None:
            raise AppError(ErrorCode.MODEL_NOT_FOUND, f"{model.name}: its engine server was removed.")
        started = time.monotonic()
        extra = {"negative_prompt": request.negative_prompt, "steps": request.steps, "cfg_scale": request.cfg_scale,
                 "seed": request.seed}
        try:
            received = await self._clients[engine.id].images(
                str(model.info["remote_model"]), request.prompt, width=request.width, height=request.height,
                count=request.batch_count, extra={k: v for k, v in extra.items() if v not in ("", None)})
        except AppError as exc:
            self._went_down(engine, exc)
            raise
        pngs, size = await asyncio.to_thread(_as_pngs, received, engine.name)
        return [JobDone(job_id=job.id, result=GenerateResult(
            images=pngs, seeds=[request.seed + i for i in range(len(pngs))], seconds=time.monotonic() - started,
            width=size[0], height=size[1]))]

    async def transcribe(self, model: ModelRecord, request: TranscribeRequest, job: EngineJob) -> list[Event]:
        """A recording transcribed by a server's speech model, as the events the local engine sends."""
        engine = self._engines.get(str(model.info.get("engine")))
        if engine is None:
            raise AppError(ErrorCode.MODEL_NOT_FOUND, f"{model.name}: its engine server was removed.")
        started = time.monotonic()
        try:
            said = await self._clients[engine.id].transcription(
                str(model.info["remote_model"]), Path(request.audio_path), language=request.language,
                prompt=request.prompt, temperature=request.temperature)
        except AppError as exc:
            self._went_down(engine, exc)
            raise
        text = said["text"].strip()
        language = str(said.get("language") or request.language or "").strip().lower()[:32]
        language = LANGUAGE_CODES.get(language, language)  # OpenAI's answer names it ("english")
        duration = said.get("duration")
        duration = float(duration) if isinstance(duration, int | float) and 0 <= duration < 10 ** 7 else 0.0
        events: list[Event] = [SpeechInfo(job_id=job.id, language=language, language_probability=1.0,
                                          duration=duration, decode_seconds=0.0)]
        parts = said.get("segments")
        segments = [p for p in parts[:100_000] if isinstance(p, dict) and isinstance(p.get("text"), str)] \
            if isinstance(parts, list) else []
        if not segments and text:
            segments = [{"start": 0.0, "end": duration, "text": text}]
        for index, part in enumerate(segments):
            start, end = part.get("start"), part.get("end")
            events.append(SpeechSegment(job_id=job.id, index=index, text=str(part["text"]),
                                        start=float(start) if isinstance(start, int | float) else 0.0,
                                        end=float(end) if isinstance(end, int | float) else 0.0))
        events.append(JobDone(job_id=job.id, result=TranscribeResult(
            text=text, language=language, duration=duration, segments=len(segments),
            seconds=time.monotonic() - started)))
        return events

    def cancel(self, job: EngineJob) -> None:
        """Stop an answer now: its connection is closed; what was read stays."""
        job.cancelled = True
        for key, task in self._running.items():
            if key.endswith(":" + job.id):
                task.cancel()


async def relay(work: Awaitable[list[Event]], job: EngineJob, running: dict[str, asyncio.Future[list[Event]]],
                cancelled: Result) -> AsyncGenerator[Event, None]:
    """The events of a request to a server made in one go (a transcription, pictures), as an engine's:
    `running` lets the caller's cancel end it at once (its connection is closed), and it then ends with
    `cancelled` as its result; a failure is a `JobFailed`."""
    if job.cancelled:
        if inspect.iscoroutine(work):
            work.close()  # never started
        yield JobFailed(job_id=job.id, code=ErrorCode.CANCELLED, message="cancelled before it started")
        return
    task = running[job.id] = asyncio.ensure_future(work)
    try:
        events = await task
    except asyncio.CancelledError:
        if not job.cancelled:
            raise
        yield JobDone(job_id=job.id, result=cancelled)
        return
    except AppError as exc:
        yield JobFailed(job_id=job.id, code=exc.code, message=exc.message)
        return
    finally:
        running.pop(job.id, None)
    for event in events:
        yield event


MAX_PICTURE_SIDE = 4096


def _as_pngs(received: list[bytes], who: str) -> tuple[list[bytes], tuple[int, int]]:
    """Pictures a server sent, checked to be pictures of a sane size, as PNGs."""
    from PIL import Image, UnidentifiedImageError

    pngs, size = [], (0, 0)
    for data in received:
        try:
            with Image.open(io.BytesIO(data)) as picture:
                if max(picture.size) > MAX_PICTURE_SIDE:
                    raise AppError(ErrorCode.REMOTE_FAILED, f"{who} sent a picture larger than "
                                                            f"{MAX_PICTURE_SIDE} pixels a side.")
                picture.load()
                size = picture.size
                if picture.format == "PNG":
                    pngs.append(data)
                else:
                    out = io.BytesIO()
                    picture.convert("RGB").save(out, "PNG")
                    pngs.append(out.getvalue())
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            raise AppError(ErrorCode.REMOTE_FAILED, f"{who} sent something that is not a picture.") from None
    return pngs, size
