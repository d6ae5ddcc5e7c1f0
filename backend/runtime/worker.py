"""Server side of one engine worker: a spawned child process behind a pipe.

A reader thread blocks on the pipe and hands every message to the event loop with
`call_soon_threadsafe`; the loop never blocks on the child. If the child dies (crash,
out of memory, hard cancel) every job in flight ends with a clear error and the next
job starts a fresh process. A job that sends nothing for `WorkerSpec.stall_timeout_s`
(an engine stuck in native code or in an endless loop) is ended the same way: the
process is stopped, so the queue behind it moves on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from ..core.errors import AppError, ErrorCode
from .protocol import Cancel, Event, JobDone, JobFailed, Request, Shutdown, Submit, WorkerFailed, WorkerReady

__all__ = ["WorkerProcess", "WorkerSpec"]

log = logging.getLogger(__name__)


def _spawn(factory: str, config: Any) -> tuple[subprocess.Popen[bytes], Connection]:
    """A fresh interpreter running `backend.runtime.child`, joined to us by a socket pair.

    Not multiprocessing's spawn: that re-imports the parent's main module in the child,
    which for a web app means re-running the app's start-up code.
    """
    ours, theirs = socket.socketpair()
    env = {**os.environ, "ORT_DISABLE_TELEMETRY": "1", "ORT_TELEMETRY_DISABLED": "1"}  # docs/security.md, Privacy
    try:
        # -P: the child imports the installed gridless, as the `gridless` command does, and not
        # a `backend` folder that happens to be in the working directory (`-m` would put it first)
        process = subprocess.Popen(
            [sys.executable, "-P", "-m", "backend.runtime.child", str(theirs.fileno())],
            pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL)
    finally:
        theirs.close()
    conn = Connection(ours.detach())
    conn.send((factory, config))
    return process, conn


@dataclass(kw_only=True, slots=True)
class WorkerSpec:
    """What to run in the child: `module:Factory` called with `config` there."""

    name: str
    factory: str
    config: Any
    start_timeout: float = 120.0
    stall_timeout_s: float = 300.0
    """A running job that sends no event for this long is taken to be stuck: the worker is
    stopped and the job fails. Engines send events at least every step (a token, a batch of
    prompt, a sampling step, a segment), which on a phone takes seconds, not minutes."""


class WorkerProcess:
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.info: dict[str, Any] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._jobs: dict[str, asyncio.Queue[Any]] = {}
        self._ready: asyncio.Future[Any] | None = None
        self._start_lock = asyncio.Lock()
        self._killed_jobs: set[str] = set()
        self._stalled_jobs: set[str] = set()
        self._early_cancels: set[str] = set()

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self) -> None:
        """Spawn the child and wait until its engine is loaded (or say why it is not)."""
        async with self._start_lock:
            if self.alive and self._conn is not None:
                return
            loop = asyncio.get_running_loop()
            process, parent = await asyncio.to_thread(_spawn, self.spec.factory, self.spec.config)
            # only now: the exit of a process that failed before may still be reported while this
            # one is spawned, and must not be taken for this one's
            self._process, self._conn = process, parent
            self._ready = loop.create_future()
            threading.Thread(target=self._read, args=(loop, parent, process), daemon=True,
                             name=f"gridless-{self.spec.name}-reader").start()
            try:
                first = await asyncio.wait_for(self._ready, self.spec.start_timeout)
            except TimeoutError:
                await self.stop(force=True)
                raise AppError(ErrorCode.MODEL_LOAD_FAILED,
                               f"the {self.spec.name} engine did not start within "
                               f"{self.spec.start_timeout:.0f} s") from None
            if isinstance(first, WorkerFailed):
                await self.stop(force=True)
                raise AppError(first.code, first.message)
            self.info = first.info

    def _read(self, loop: asyncio.AbstractEventLoop, conn: Connection,
              process: subprocess.Popen[bytes]) -> None:
        try:
            while True:
                message = conn.recv()
                loop.call_soon_threadsafe(self._dispatch, message)
        except (EOFError, OSError):
            pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        try:
            loop.call_soon_threadsafe(self._on_exit, process, conn)
        except RuntimeError:
            pass  # the loop is closed: the server is shutting down

    def _dispatch(self, message: Any) -> None:
        if isinstance(message, WorkerReady | WorkerFailed):
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(message)
            return
        if isinstance(message, Event):
            queue = self._jobs.get(message.job_id)
            if queue is not None:
                queue.put_nowait(message)

    def _on_exit(self, process: subprocess.Popen[bytes], conn: Connection) -> None:
        if self._process is not process:
            return  # an older process; a new one already runs
        code = process.returncode
        self._process, self._conn = None, None
        conn.close()
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(WorkerFailed(
                code=ErrorCode.MODEL_LOAD_FAILED,
                message=f"the {self.spec.name} engine exited while loading (exit code {code})"))
        for job_id, queue in list(self._jobs.items()):
            if job_id in self._killed_jobs:
                queue.put_nowait(JobFailed(job_id=job_id, code=ErrorCode.CANCELLED, message="cancelled"))
            elif job_id in self._stalled_jobs:
                queue.put_nowait(JobFailed(
                    job_id=job_id, code=ErrorCode.ENGINE_STALLED,
                    message=f"the {self.spec.name} engine stopped responding for "
                            f"{self.spec.stall_timeout_s:.0f} s and was stopped; it restarts on the next request"))
            else:
                queue.put_nowait(JobFailed(
                    job_id=job_id, code=ErrorCode.WORKER_CRASHED,
                    message=f"the {self.spec.name} engine stopped unexpectedly (exit code {code}); "
                            "it restarts on the next request"))
        self._killed_jobs.clear()
        self._stalled_jobs.clear()
        if code not in (0, None):
            log.warning("%s worker exited with code %s", self.spec.name, code)

    async def run(self, request: Request, job_id: str | None = None) -> AsyncIterator[Event]:
        """Submit one job and yield its events; the last one is JobDone or JobFailed."""
        job_id = job_id or uuid.uuid4().hex
        queue: asyncio.Queue[Any] = asyncio.Queue()
        ended = False
        try:
            await self.start()
            self._jobs[job_id] = queue
            self._send(Submit(job_id=job_id, request=request))
            if job_id in self._early_cancels:  # cancelled while the engine was starting
                self._send(Cancel(job_id=job_id))
            while True:
                event = await self._next(queue, job_id)
                ended = isinstance(event, JobDone | JobFailed)
                yield event
                if ended:
                    return
        finally:
            if not ended and job_id in self._jobs:
                self.cancel(job_id)  # whoever was reading went away: the engine stops too
            self._jobs.pop(job_id, None)
            self._killed_jobs.discard(job_id)
            self._stalled_jobs.discard(job_id)
            self._early_cancels.discard(job_id)

    async def _next(self, queue: asyncio.Queue[Any], job_id: str) -> Any:
        """The job's next event; a job silent for too long has its worker stopped (the exit
        then ends it as stalled)."""
        if not queue.empty():  # streaming outpaced the reader: no timer needed
            return queue.get_nowait()
        try:
            async with asyncio.timeout(self.spec.stall_timeout_s):  # a timer, not a task per event
                return await queue.get()
        except TimeoutError:
            pass
        log.error("%s job %s sent nothing for %.0f s; stopping its worker", self.spec.name, job_id,
                  self.spec.stall_timeout_s)
        self._stalled_jobs.add(job_id)
        if self._process is not None:
            self._process.kill()
        return await queue.get()

    def _send(self, message: Any) -> None:
        if self._conn is None:
            raise AppError(ErrorCode.WORKER_CRASHED, f"the {self.spec.name} engine is not running")
        self._conn.send(message)

    def cancel(self, job_id: str) -> None:
        """Ask the engine to stop between steps; the job still ends with its own JobDone.

        A job that has not reached the engine yet (it is still starting) is cancelled as
        soon as it is submitted.
        """
        if job_id not in self._jobs:
            self._early_cancels.add(job_id)
            return
        if self._conn is not None:
            try:
                self._conn.send(Cancel(job_id=job_id))
            except OSError:
                pass

    def kill_jobs(self) -> None:
        """Hard cancel: terminate the process; running jobs end as cancelled, not crashed."""
        self._killed_jobs.update(self._jobs)
        if self._process is not None:
            self._process.kill()

    async def stop(self, *, force: bool = False, grace_s: float = 5.0) -> None:
        process, conn = self._process, self._conn
        if process is None:
            return
        if not force and conn is not None:
            try:
                conn.send(Shutdown())
            except OSError:
                pass
            try:
                await asyncio.to_thread(process.wait, grace_s)
            except subprocess.TimeoutExpired:
                pass
        if process.poll() is None:
            process.kill()
            await asyncio.to_thread(process.wait)
