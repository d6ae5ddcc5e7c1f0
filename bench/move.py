"""Benchmark: a model file moved to a new device against `curl -o` of the same file from the same server.

    python bench/move.py [--size-mb N] [--runs N] [--veth] [--rate-mbit N]

The old device is a real `gridless serve` (over loopback, or with `--veth` inside a network
namespace reached over a veth pair, when `ip netns` is available) holding one GGUF of `--size-mb`
(default 1024). Each run makes a move offer and exchanges its code for a session, then fetches the
model file three ways, alternating with curl in the same run:

* curl: `curl -s -o FILE -H "Authorization: Bearer …" URL` (the baseline: no checksum, no fsync);
* transfer: `backend.move.source.fetch_file` in this process, as the new device's server runs it
  (httpx, writing, sha256 of every byte while it arrives, fsync at the end);
* whole move: a new `gridless serve` told to pull (`POST /api/move/pull`), timed until its move is
  done: the session, the list of files, the backup archive restored and the model checked and
  installed on its Models list.

Prints JSON with seconds per figure and the ratios to curl (goal: transfer/curl <= 1.1).
`measure(...)` is the function a combined report calls.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.move.files import MoveFile  # noqa: E402
from backend.move.source import MoveSource, fetch_file  # noqa: E402
from bench.report import log, save  # noqa: E402
from tests.ggufs import write_lm_gguf  # noqa: E402
from tests.netns import SecondHost, netns_available  # noqa: E402
from tests.server import ServerProcess  # noqa: E402

__all__ = ["measure"]

T = TypeVar("T")


class OldDevice:
    """The old device's server, in this network or on a second host."""

    def __init__(self, data_dir: Path, host: SecondHost | None) -> None:
        self.host = host
        self.server = ServerProcess(data_dir=data_dir)

    def here(self, fn: Callable[[], T]) -> T:
        return self.host.run(fn, timeout=600) if self.host else fn()

    def start(self) -> None:
        self.here(lambda: self.server.start(timeout=120))

    def offer(self) -> tuple[str, str]:
        """A fresh offer, ready: (address to type, code)."""
        def make() -> dict[str, Any]:
            headers, base = self.server.headers(), self.server.base
            state = httpx.post(base + "/api/move/offer", headers=headers, timeout=60).json()
            while state["state"] == "preparing":
                time.sleep(0.2)
                state = httpx.get(base + "/api/move/offer", headers=headers, timeout=60).json()
            if state["state"] != "ready":
                raise RuntimeError(f"the offer failed: {state}")
            return dict(state)
        state = self.here(make)
        address = state["address"] if self.host else f"127.0.0.1:{self.server.port}"
        return str(address), str(state["code"])


def _session(origin: str, code: str) -> tuple[str, list[MoveFile]]:
    source = MoveSource(origin)
    try:
        source.open_session(code)
        return str(source.token), source.manifest()
    finally:
        source.close()


def _curl(origin: str, token: str, file: MoveFile, out: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["curl", "-s", "-f", "-o", str(out), "-H", f"Authorization: Bearer {token}",
                    f"{origin}/api/move/files/{file.id}"], check=True)
    took = time.perf_counter() - started
    if out.stat().st_size != file.size:
        raise RuntimeError("curl fetched a short file")
    return took


def _transfer(origin: str, token: str, file: MoveFile, out: Path) -> float:
    source = MoveSource(origin, token)
    started = time.perf_counter()
    try:
        fetch_file(source, file, out, progress=lambda n: None, stop=threading.Event())
    finally:
        source.close()
    return time.perf_counter() - started


def _whole_move(new: ServerProcess, address: str, code: str) -> float:
    started = time.perf_counter()
    response = httpx.post(new.base + "/api/move/pull", headers=new.headers(), json={"address": address, "code": code})
    response.raise_for_status()
    while True:
        state = httpx.get(new.base + "/api/move/pull", headers=new.headers()).json()
        if state["finished"]:
            break
        time.sleep(0.05)
    if state["state"] != "done":
        raise RuntimeError(f"the move failed: {state}")
    return time.perf_counter() - started


def _shape(host: SecondHost, rate_mbit: int) -> None:
    """Hold what the old device sends to `rate_mbit`, as a phone's Wi-Fi hotspot would."""
    subprocess.run(["ip", "netns", "exec", host.name, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf",
                    "rate", f"{rate_mbit}mbit", "burst", "256kb", "latency", "50ms"], check=True)


def measure(*, size_mb: int = 1024, runs: int = 1, veth: bool = False,
            rate_mbit: int | None = None) -> dict[str, Any]:
    if shutil.which("curl") is None:
        raise RuntimeError("curl is needed (apt-get install curl)")
    veth = (veth or rate_mbit is not None) and netns_available()
    figures: dict[str, list[float]] = {"curl_s": [], "transfer_s": [], "whole_move_s": []}
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-move-") as tmp:
        folder = Path(tmp)
        (folder / "old" / "models").mkdir(parents=True)
        log(f"writing a {size_mb} MB model file")
        write_lm_gguf(folder / "old" / "models" / "big-Q8_0.gguf", size_mb=size_mb, seed=5)
        host = SecondHost() if veth else None
        if host is not None:
            host.create()
            if rate_mbit is not None:
                _shape(host, rate_mbit)
        old = OldDevice(folder / "old", host)
        try:
            old.start()
            for run in range(runs):
                address, code = old.offer()
                origin = f"http://{address}"
                token, files = _session(origin, code)
                model = next(f for f in files if f.kind == "model")
                out = folder / "fetched"
                out.unlink(missing_ok=True)
                figures["curl_s"].append(_curl(origin, token, model, out))
                out.unlink()
                figures["transfer_s"].append(_transfer(origin, token, model, out))
                out.unlink()
                log(f"run {run + 1}: curl {figures['curl_s'][-1]:.2f} s, transfer {figures['transfer_s'][-1]:.2f} s")
                address, code = old.offer()
                with ServerProcess(data_dir=folder / f"new-{run}") as new:
                    try:
                        figures["whole_move_s"].append(_whole_move(new, address, code))
                        log(f"run {run + 1}: whole move {figures['whole_move_s'][-1]:.2f} s")
                    except RuntimeError as exc:
                        problems.append(str(exc))
                shutil.rmtree(folder / f"new-{run}", ignore_errors=True)
        finally:
            old.server.stop()
            if host is not None:
                host.destroy()
    medians = {k: round(statistics.median(v), 3) for k, v in figures.items() if v}
    whole = medians.get("whole_move_s")
    link = (f"veth at {rate_mbit} Mbit/s" if rate_mbit else "veth") if veth else "loopback"
    return {"size_mb": size_mb, "link": link, "runs": runs, **medians,
            "transfer_vs_curl": round(medians["transfer_s"] / medians["curl_s"], 3),
            "whole_move_vs_curl": round(whole / medians["curl_s"], 3) if whole else None,
            "whole_move_errors": problems,
            "curl_mb_s": round(size_mb / medians["curl_s"], 1),
            "transfer_mb_s": round(size_mb / medians["transfer_s"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--veth", action="store_true", help="the old device on a second host over a veth pair")
    parser.add_argument("--rate-mbit", type=int, help="with a veth pair, hold the link to this rate (a hotspot's "
                                                      "Wi-Fi: 100 to 400)")
    args = parser.parse_args()
    result = measure(size_mb=args.size_mb, runs=args.runs, veth=args.veth, rate_mbit=args.rate_mbit)
    print(json.dumps(result, indent=2))
    save("move", result)


if __name__ == "__main__":
    main()
