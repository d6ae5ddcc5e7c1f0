"""Start a real `gridless serve` in a subprocess for tests that need the whole server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

TOKEN = "test-owner-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kill_group(process: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL a process started with `start_new_session=True`, and everything it started."""
    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def stop_group(process: subprocess.Popen[bytes] | None, grace_s: float) -> None:
    """SIGTERM the group, then SIGKILL it if it has not exited after `grace_s`."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        kill_group(process)


@dataclass(kw_only=True)
class ServerProcess:
    data_dir: Path
    port: int = field(default_factory=free_port)
    token: str = TOKEN
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    """Variables of ours not to pass on (an installed gridless must run without PYTHONPATH)."""
    command: list[str] = field(default_factory=lambda: [sys.executable, "-m", "backend.cli"])
    """How gridless is started: this checkout's code, or the `gridless` script of another environment."""
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def owner_link(self) -> str:
        return f"{self.base}/?token={self.token}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        # a real server, not NiceGUI's test mode (which it enters when it sees pytest's variables)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PYTEST_", "GRIDLESS_")) and k not in self.unset}
        env.update(self.env)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*self.command, "serve", "--data-dir", str(self.data_dir),
                 "--port", str(self.port), "--token", self.token, *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.cwd, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become healthy:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def kill_hard(self) -> None:
        """kill -9 the server and its engine workers (they share its process group)."""
        kill_group(self.process)

    def stop(self) -> None:
        stop_group(self.process, grace_s=15)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
