"""llama-cpp-python's OpenAI server (`python -m llama_cpp.server`) as an engine server on "another
machine": on loopback, or inside a `tests/netns.py: SecondHost` bound to its peer address.

It runs in its own process group, so `kill()` is a SIGKILL of all of it (a laptop whose lid is
closed mid-answer) and `restart()` starts it again on the same address and port. Its output,
uvicorn's access log included, is appended to `log_path`: `requests("POST /v1/chat/completions")`
says how many such requests reached it so far.

One thread for the prompt too (`--n_threads 1 --n_threads_batch 1`): on a busy machine two
spinning threads can stall a short prompt for seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.netns import SecondHost
from tests.server import free_port, kill_group, stop_group

__all__ = ["LlamaServer"]


@dataclass(kw_only=True)
class LlamaServer:
    model: Path
    alias: str
    log_path: Path
    address: str = "127.0.0.1"
    """Where it listens; inside a `host`, its `peer_address`."""
    port: int = field(default_factory=free_port)
    embedding: bool = False
    n_ctx: int = 2048
    host: SecondHost | None = None
    """The namespace it runs in (`ip netns exec`); None: this machine's."""
    process: subprocess.Popen[bytes] | None = None

    @property
    def netloc(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def url(self) -> str:
        """Its base URL, without /v1."""
        return f"http://{self.netloc}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model), "--model_alias", self.alias,
                "--host", self.address, "--port", str(self.port), "--n_ctx", str(self.n_ctx),
                "--n_threads", "1", "--n_threads_batch", "1", "--verbose", "False"]
        if self.embedding:
            argv += ["--embedding", "true"]
        return self.host.command(*argv) if self.host is not None else argv

    def start(self, timeout: float = 60.0) -> LlamaServer:
        """Start it and wait until `GET /v1/models` answers; on failure, the log's tail says why."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=2) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"llama_cpp.server exited early:\n{self.log()[-3000:]}")
                try:
                    if http.get(f"{self.url}/v1/models").status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"llama_cpp.server did not answer:\n{self.log()[-3000:]}")

    def restart(self, timeout: float = 60.0) -> LlamaServer:
        """Kill it if it still runs, and start it again on the same address and port."""
        self.kill()
        return self.start(timeout)

    def kill(self) -> None:
        """SIGKILL its process group."""
        kill_group(self.process)

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM its process group, then SIGKILL after `grace_s`."""
        stop_group(self.process, grace_s=grace_s)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def requests(self, line: str) -> int:
        """How many requests such as `POST /v1/chat/completions` reached it (its access log)."""
        return self.log().count(f'"{line} HTTP/1.1"')
