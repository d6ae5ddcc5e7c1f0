"""The hub stand-in (`tests.hubserver`) as a subprocess, a test catalog for its files, and
the helpers that start both with a real server for the Models page tests."""

from __future__ import annotations

import hashlib
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.server import free_port, kill_group, stop_group

ROOT = Path(__file__).resolve().parents[2]
@dataclass(kw_only=True)
class HubProcess:
    """`python -m tests.hubserver` serving every file of `folder` as repo `repo`; can be SIGKILLed
    and started again on the same port."""

    repo: str
    folder: Path
    port: int = field(default_factory=free_port)
    throttle_bps: int | None = None
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> HubProcess:
        command = [sys.executable, "-m", "tests.hubserver", "--port", str(self.port),
                   "--repo", f"{self.repo}={self.folder}"]
        if self.throttle_bps:
            command += ["--throttle-bps", str(self.throttle_bps)]
        stderr: IO[bytes] | int = subprocess.DEVNULL
        if self.log_path is not None:
            stderr = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr,
                                            start_new_session=True)
        finally:
            if not isinstance(stderr, int):
                stderr.close()
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline and not line.endswith(b"\n"):
            ready, _, _ = select.select([self.process.stdout], [], [], 0.1)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 4096)
                if not chunk:
                    break
                line += chunk
        if not line.startswith(b"READY "):
            self.kill()
            raise RuntimeError(f"the hub stand-in did not start: {line!r}")
        return self

    def kill(self) -> None:
        """SIGKILL, like a server that vanishes."""
        kill_group(self.process)

    def stop(self) -> None:
        stop_group(self.process, grace_s=10)

    def __enter__(self) -> HubProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
