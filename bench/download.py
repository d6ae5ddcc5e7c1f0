"""Benchmark: model downloads through gridless' model manager against plain curl, and resuming.

Prints a results table on stdout (progress goes to stderr) and writes the numbers as JSON into
`bench/results/`. Run from the repo root:

    python bench/download.py [--quick] [--size-mb N] [--runs N]

The hub stand-in (`tests.hubserver`) runs as a subprocess on 127.0.0.1, unthrottled, so it does
not share an interpreter (and its GIL) with the code being measured. Everything is written into
one temporary folder, so curl and the manager write to the same filesystem.

* throughput: a GGUF of `--size-mb` (default 512, `--quick` 64) fetched by `curl -s -o FILE URL`
  and by `ModelManager.pull(repo, file)` in this process with a fresh data folder each time,
  alternating, `--runs` times each. The manager is timed from the call until the download's state
  is "done", which includes the metadata requests, the checksum (computed while bytes arrive),
  fsync, moving the file into place and registering the model. Medians in MB/s (10^6 bytes) and
  manager/curl (goal: >= 0.9). The manager's time is split at its first and last received byte:
  "request" (listing and HEAD, until the first byte), "transfer" and "finish" (after the last byte).
* resume: a manager download is stopped with `await manager.stop()` (which leaves the partial file
  and the table row, as a killed server does) once 90 % is on disk; a new manager on the same data
  folder then finishes it, timed from its creation (database open and start included) until "done".
  Reported: resume time / median full manager time (goal: about the fraction that was left), the
  bytes the second run received, and `hashlib.sha256` over the partial file's bytes timed on its
  own: what a resume would have to read back without the checksum state saved beside the
  partial file (it goes on from the last saved state, at most 64 MB back).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.core.config import Settings  # noqa: E402
from backend.models.downloads import Download  # noqa: E402
from backend.models.manager import ModelManager  # noqa: E402
from backend.runtime.residency import MemoryBudget, ResidencyManager  # noqa: E402
from backend.storage.db import Database  # noqa: E402
from bench.report import log, save  # noqa: E402
from tests.e2e.hub_fixtures import HubProcess  # noqa: E402
from tests.ggufs import write_lm_gguf  # noqa: E402

REPO = "bench/big-GGUF"
FILE = "big-Q8_0.gguf"
MB = 1_000_000
STOP_AT = 0.9


def rate(size: int, seconds: float) -> float:
    return size / MB / seconds if seconds > 0 else 0.0


@dataclass(slots=True)
class Timeline:
    """When one download got its first byte, its last byte, and was done (perf_counter seconds)."""

    started: float
    total: int
    first_byte: float | None = None
    last_byte: float | None = None
    finished: float | None = None
    state: str = ""
    error: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    stop_fraction: float | None = None

    def __call__(self, dl: Download) -> None:
        now = time.perf_counter()
        if dl.fetched > 0 and self.first_byte is None:
            self.first_byte = now
        if dl.bytes_done >= self.total and self.last_byte is None and dl.state == "running":
            self.last_byte = now
        if self.stop_fraction is not None and dl.bytes_done >= self.stop_fraction * self.total:
            self.reached.set()
        if dl.state in ("done", "failed", "cancelled") and self.finished is None:
            self.finished, self.state, self.error = now, dl.state, dl.error
            self.done.set()
            self.reached.set()

    def phases(self) -> dict[str, float]:
        assert self.finished is not None and self.first_byte is not None and self.last_byte is not None
        return {"request_s": round(self.first_byte - self.started, 4),
                "transfer_s": round(self.last_byte - self.first_byte, 4),
                "finish_s": round(self.finished - self.last_byte, 4),
                "total_s": round(self.finished - self.started, 4)}


@dataclass(slots=True)
class Opened:
    db: Database
    manager: ModelManager

    async def close(self) -> None:
        await self.manager.stop()
        await self.db.close()


async def open_manager(data_dir: Path, hub_url: str, timeline: Timeline | None = None) -> Opened:
    settings = Settings(data_dir=data_dir, hf_endpoint=hub_url)
    data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_path)
    await db.open()
    manager = ModelManager(settings, db, ResidencyManager(MemoryBudget()))
    if timeline is not None:
        manager.downloads.subscribe(timeline)
    await manager.start()
    return Opened(db=db, manager=manager)


def curl_once(url: str, target: Path, size: int) -> tuple[float, float]:
    """Seconds curl took, and seconds an fsync of what it wrote takes afterwards (not counted)."""
    started = time.perf_counter()
    subprocess.run(["curl", "-s", "-o", str(target), url], check=True)
    elapsed = time.perf_counter() - started
    got = target.stat().st_size
    fd = os.open(target, os.O_RDONLY)
    try:
        synced = time.perf_counter()
        os.fsync(fd)
        fsync_s = time.perf_counter() - synced
    finally:
        os.close(fd)
    target.unlink()
    if got != size:
        raise RuntimeError(f"curl wrote {got} bytes, expected {size}")
    return elapsed, fsync_s


async def manager_once(data_dir: Path, hub_url: str, size: int) -> dict[str, float]:
    timeline = Timeline(started=0.0, total=size)
    opened = await open_manager(data_dir, hub_url, timeline)
    try:
        timeline.started = time.perf_counter()
        await opened.manager.pull(REPO, FILE)
        await asyncio.wait_for(timeline.done.wait(), 600)
        if timeline.state != "done":
            raise RuntimeError(f"the download ended {timeline.state}: {timeline.error}")
        return timeline.phases()
    finally:
        await opened.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def sha256_prefix(path: Path, length: int) -> float:
    """Seconds to hash the first `length` bytes of a file, as a resume has to."""
    started = time.perf_counter()
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        remaining = length
        while remaining > 0 and (block := fh.read(min(4 * MB, remaining))):
            digest.update(block)
            remaining -= len(block)
    return time.perf_counter() - started


async def resume_once(data_dir: Path, hub_url: str, size: int) -> dict[str, Any]:
    first = Timeline(started=time.perf_counter(), total=size, stop_fraction=STOP_AT)
    opened = await open_manager(data_dir, hub_url, first)
    dl = await opened.manager.pull(REPO, FILE)
    await asyncio.wait_for(first.reached.wait(), 600)
    await opened.close()
    if first.state == "done":
        raise RuntimeError("the download finished before it could be stopped; use a larger --size-mb")
    parts = list((data_dir / "models" / ".partial" / dl.id).glob("*.part"))
    if len(parts) != 1:
        raise RuntimeError(f"expected one partial file, found {parts}")
    partial = parts[0].stat().st_size
    hash_s = sha256_prefix(parts[0], partial)

    second = Timeline(started=time.perf_counter(), total=size)
    reopened = await open_manager(data_dir, hub_url, second)
    start_s = time.perf_counter() - second.started
    try:
        await asyncio.wait_for(second.done.wait(), 600)
        if second.state != "done":
            raise RuntimeError(f"the resumed download ended {second.state}: {second.error}")
        resumed = reopened.manager.downloads.get(dl.id)
        assert resumed is not None
        installed = [r for r in reopened.manager.installed() if r.repo == REPO]
        if len(installed) != 1 or installed[0].size_bytes != size:
            raise RuntimeError(f"the resumed model was not installed: {installed}")
        return {"partial_bytes": partial, "stopped_at_fraction": round(partial / size, 4),
                "fetched_bytes": resumed.fetched, "expected_fetch_bytes": size - partial,
                "rehash_s": round(hash_s, 4), "manager_start_s": round(start_s, 4), **second.phases()}
    finally:
        await reopened.close()
        shutil.rmtree(data_dir, ignore_errors=True)


async def measure(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    size_mb = args.size_mb or (64 if args.quick else 512)
    hub_dir = folder / "hub"
    hub_dir.mkdir()
    log(f"writing a {size_mb} MB GGUF")
    source = write_lm_gguf(hub_dir / FILE, size_mb=size_mb, name="bench model")
    size = source.stat().st_size
    log("starting the hub stand-in")
    hub = HubProcess(repo=REPO, folder=hub_dir, log_path=folder / "hub.log").start(timeout=300)
    url = f"{hub.url}/{REPO}/resolve/main/{FILE}"
    result: dict[str, Any] = {"size_bytes": size, "runs": args.runs}
    try:
        curl: list[float] = []
        fsyncs: list[float] = []
        manager: list[dict[str, float]] = []
        for i in range(args.runs):
            elapsed, fsync_s = curl_once(url, folder / "curl.out", size)
            curl.append(elapsed)
            fsyncs.append(fsync_s)
            log(f"run {i + 1}/{args.runs}: curl {rate(size, curl[-1]):.0f} MB/s")
            manager.append(await manager_once(folder / f"data-{i}", hub.url, size))
            log(f"run {i + 1}/{args.runs}: manager {rate(size, manager[-1]['total_s']):.0f} MB/s {manager[-1]}")
        curl_s = statistics.median(curl)
        hash_full_s = sha256_prefix(source, size)
        manager_s = statistics.median(m["total_s"] for m in manager)
        result["throughput"] = {
            "curl_mb_s": round(rate(size, curl_s), 1), "manager_mb_s": round(rate(size, manager_s), 1),
            "ratio": round(curl_s / manager_s, 3), "goal": ">=0.9",
            "ratio_vs_curl_plus_fsync": round((curl_s + statistics.median(fsyncs)) / manager_s, 3),
            "curl_s": [round(x, 4) for x in curl], "manager_s": [m["total_s"] for m in manager],
            "manager_phases_median": {k: round(statistics.median(m[k] for m in manager), 4)
                                      for k in ("request_s", "transfer_s", "finish_s")},
            "manager_transfer_mb_s": round(rate(size, statistics.median(m["transfer_s"] for m in manager)), 1),
            "sha256_whole_file_s": round(hash_full_s, 4), "fsync_after_curl_s": round(statistics.median(fsyncs), 4)}

        resumes: list[dict[str, Any]] = []
        for i in range(args.runs):
            resumes.append(await resume_once(folder / f"resume-{i}", hub.url, size))
            log(f"resume {i + 1}/{args.runs}: {resumes[-1]}")
        resume_s = statistics.median(r["total_s"] for r in resumes)
        left = statistics.median(1 - r["stopped_at_fraction"] for r in resumes)
        rehash_s = statistics.median(r["rehash_s"] for r in resumes)
        result["resume"] = {
            "resume_s": round(resume_s, 4), "full_s": round(manager_s, 4), "ratio": round(resume_s / manager_s, 3),
            "fraction_left": round(left, 4), "goal": f"about {left:.2f}", "rehash_s": round(rehash_s, 4),
            "rehash_share": round(rehash_s / resume_s, 3), "how": "await manager.stop() in this process",
            "runs": resumes}
    finally:
        hub.stop()
    return result


def table(result: dict[str, Any]) -> str:
    t, r = result["throughput"], result["resume"]
    size_mb = result["size_bytes"] / MB
    phases = t["manager_phases_median"]
    lines = [
        f"file: {size_mb:.0f} MB, {result['runs']} runs each, medians",
        "",
        f"{'throughput':<30}{'MB/s':>10}{'seconds':>10}",
        f"{'curl -s -o':<30}{t['curl_mb_s']:>10.1f}{statistics.median(t['curl_s']):>10.3f}",
        f"{'ModelManager.pull until done':<30}{t['manager_mb_s']:>10.1f}{statistics.median(t['manager_s']):>10.3f}",
        f"{'  request (until first byte)':<30}{'':>10}{phases['request_s']:>10.3f}",
        f"{'  transfer (first to last byte)':<30}{t['manager_transfer_mb_s']:>10.1f}{phases['transfer_s']:>10.3f}",
        f"{'  finish (after last byte)':<30}{'':>10}{phases['finish_s']:>10.3f}",
        f"ratio manager/curl: {t['ratio']:.3f} (goal >= 0.9); "
        f"against curl followed by an fsync of its file: {t['ratio_vs_curl_plus_fsync']:.3f}",
        f"for comparison: sha256 of the whole file alone {t['sha256_whole_file_s']:.3f} s (the manager hashes "
        f"on a second thread beside the transfer); fsync of curl's file afterwards {t['fsync_after_curl_s']:.3f} s "
        "(the manager writes the file to storage before it is registered, curl never does)",
        "",
        f"resume after stopping at {100 * (1 - r['fraction_left']):.1f} % ({r['how']}):",
        f"  resume until done {r['resume_s']:.3f} s vs full download {r['full_s']:.3f} s: ratio {r['ratio']:.3f} "
        f"(goal about {r['fraction_left']:.2f}, the fraction left)",
        f"  second run received {statistics.median(x['fetched_bytes'] for x in r['runs']) / MB:.1f} MB "
        f"(total minus partial: {statistics.median(x['expected_fetch_bytes'] for x in r['runs']) / MB:.1f} MB)",
        f"  of which opening the database and starting the manager: "
        f"{statistics.median(x['manager_start_s'] for x in r['runs']):.3f} s, until the first new byte "
        f"(the checksum goes on from its saved state): "
        f"{statistics.median(x['request_s'] for x in r['runs']):.3f} s",
        f"  sha256 over the whole partial file, which a resume without the saved state would read back: "
        f"{r['rehash_s']:.3f} s ({100 * r['rehash_share']:.0f} % of this resume time)",
        f"load average at end: {' '.join(str(x) for x in result['load_avg']['end'])}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="a 64 MB file instead of 512 MB")
    parser.add_argument("--size-mb", type=int, default=None, help="size of the test file (overrides --quick)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions of each measurement")
    args = parser.parse_args()
    if shutil.which("curl") is None:
        sys.exit("curl is not installed")
    # other work on the machine skews every number here; the load average makes that visible
    load_start = [round(x, 2) for x in os.getloadavg()]
    print(f"load average at start: {' '.join(str(x) for x in load_start)}", flush=True)
    with tempfile.TemporaryDirectory(prefix="gridless-bench-download-") as tmp:
        result = asyncio.run(measure(args, Path(tmp)))
    result["load_avg"] = {"start": load_start, "end": [round(x, 2) for x in os.getloadavg()]}
    result["quick"] = args.quick
    print(table(result))
    save("download", result)


if __name__ == "__main__":
    main()
