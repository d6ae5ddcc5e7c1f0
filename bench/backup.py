"""Benchmark: `write_backup` against `sqlite3 <db> ".backup x"` followed by `tar cf` of the media folder.

    python bench/backup.py [--db-mb N] [--media-mb N] [--runs N] [--cache DIR]

The data folder holds a database of about `--db-mb` (default 200: conversations with messages of
made-up words, so the full-text index is real too) and `--media-mb` of media files (default 300,
random bytes in files of 200 kB to 2 MB, as photos do not compress). It is built once into
`--cache` (default: the system's temporary folder) and reused.

Each run times, alternating which goes first:

* gridless: `write_backup` into a file (the database copied with SQLite's backup API, every file
  hashed with sha256 on a second thread while it is written, the manifest last);
* baseline: the sqlite3 shell's `.backup` into a file, then `tar cf` of the media folder.

Neither syncs to storage. Prints JSON with the medians in seconds, MB/s, and the throughput ratio
gridless / baseline (goal >= 0.8). `measure(...)` is the function a combined report calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.core.config import Settings  # noqa: E402
from backend.storage.backup import write_backup  # noqa: E402
from backend.storage.db import Database  # noqa: E402
from bench.report import load_avg, log, save  # noqa: E402

__all__ = ["measure"]

WORDS = ["".join(random.Random(n).choice("aeioubcdfglmnprstvz") for _ in range(3 + n % 7)) for n in range(5000)]


def build(folder: Path, db_mb: int, media_mb: int) -> Settings:
    """The data folder, made once (a marker file says it is complete and how big it was asked to be)."""
    marker = folder / f"built-{db_mb}-{media_mb}"
    settings = Settings(data_dir=folder / "data")
    if marker.exists():
        return settings
    shutil.rmtree(folder, ignore_errors=True)
    settings.data_dir.mkdir(parents=True)
    asyncio.run(_migrate(settings))
    rng = random.Random(7)
    conn = sqlite3.connect(settings.db_path)
    conn.execute("PRAGMA journal_mode=WAL")
    n = 0
    while settings.db_path.stat().st_size + _wal(settings) < db_mb * 1_000_000:
        with conn:
            for _ in range(200):
                n += 1
                cid = f"{n:032x}"
                conn.execute("INSERT INTO conversations (id, title, created_at, updated_at) VALUES (?, ?, ?, ?)",
                             (cid, " ".join(rng.choices(WORDS, k=4)), n, n))
                parent = None
                for seq in range(1, 9):
                    mid = f"{n:024x}{seq:08x}"
                    text = " ".join(rng.choices(WORDS, k=rng.randint(20, 400)))
                    conn.execute("INSERT INTO messages (id, conversation_id, parent_id, seq, role, content,"
                                 " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                 (mid, cid, parent, seq, "user" if seq % 2 else "assistant", text, n, n))
                    parent = mid
                conn.execute("UPDATE conversations SET leaf_id = ? WHERE id = ?", (parent, cid))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        log(f"database: {settings.db_path.stat().st_size / 1e6:.0f} MB")
    conn.close()
    media = settings.media_dir / "images"
    media.mkdir(parents=True)
    written = 0
    while written < media_mb * 1_000_000:
        size = rng.randint(200_000, 2_000_000)
        (media / f"{rng.getrandbits(96):024x}.jpg").write_bytes(os.urandom(size))
        written += size
    marker.write_text("")
    return settings


async def _migrate(settings: Settings) -> None:
    db = Database(settings.db_path)
    await db.open()
    await db.close()


def _wal(settings: Settings) -> int:
    wal = Path(f"{settings.db_path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def gridless(settings: Settings, out: Path) -> float:
    started = time.perf_counter()
    with out.open("wb") as fh:
        write_backup(fh, settings)
    return time.perf_counter() - started


def baseline(settings: Settings, out: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["sqlite3", str(settings.db_path), f".backup {out.with_suffix('.db')}"], check=True)
    subprocess.run(["tar", "cf", str(out), "-C", str(settings.data_dir), "media"], check=True)
    return time.perf_counter() - started


def measure(*, db_mb: int = 200, media_mb: int = 300, runs: int = 3, cache: Path | None = None) -> dict[str, Any]:
    if shutil.which("sqlite3") is None or shutil.which("tar") is None:
        raise SystemExit("the baseline needs the sqlite3 shell and tar (apt-get install sqlite3 tar)")
    settings = build((cache or Path(tempfile.gettempdir())) / "gridless-bench-backup", db_mb, media_mb)
    payload = settings.db_path.stat().st_size + sum(p.stat().st_size for p in settings.media_dir.rglob("*")
                                                     if p.is_file())
    times: dict[str, list[float]] = {"gridless": [], "baseline": []}
    with tempfile.TemporaryDirectory(dir=settings.data_dir.parent) as scratch:
        out = Path(scratch) / "backup.tar"
        for run in range(runs + 1):  # the first pair warms the page cache and is not counted
            order = ["gridless", "baseline"] if run % 2 else ["baseline", "gridless"]
            for name in order:
                took = (gridless if name == "gridless" else baseline)(settings, out)
                for leftover in Path(scratch).iterdir():
                    leftover.unlink()
                if run:
                    times[name].append(took)
                log(f"run {run} {name}: {took:.2f} s")
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "data_mb": round(payload / 1e6, 1),
        "db_mb": round(settings.db_path.stat().st_size / 1e6, 1),
        "runs": runs,
        "seconds": {name: round(value, 3) for name, value in medians.items()},
        "all_seconds": {name: [round(v, 3) for v in values] for name, values in times.items()},
        "mb_per_s": {name: round(payload / 1e6 / value, 1) for name, value in medians.items()},
        "throughput_ratio": round(medians["baseline"] / medians["gridless"], 3),
        "goal": ">= 0.8",
        "load_avg": load_avg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db-mb", type=int, default=200)
    parser.add_argument("--media-mb", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cache", type=Path)
    args = parser.parse_args()
    result = measure(db_mb=args.db_mb, media_mb=args.media_mb, runs=args.runs, cache=args.cache)
    print(json.dumps(result, indent=2))
    save("backup", result)


if __name__ == "__main__":
    main()
