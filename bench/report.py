"""What every benchmark shares: where it writes its figures (`bench/results/<name>-<time>.json`, not
committed), its progress lines on stderr, milliseconds and the machine's load."""

from __future__ import annotations

import json
import os
import statistics
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["ROOT", "load_avg", "log", "median_ms", "ms", "save"]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def save(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"written to {out.relative_to(ROOT)}")
    return out


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def median_ms(values: list[float]) -> float:
    return ms(statistics.median(values))


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]
