"""Sizes in words for people: storage as phones show it, and the app's own limits."""

from __future__ import annotations

__all__ = ["MIB", "format_bytes", "format_limit"]

MIB = 1024 * 1024


def format_bytes(n: float) -> str:
    """In 1000-based units, as phones show storage: 512 B, 12 KB, 3.4 MB, 120 MB, 1.5 GB."""
    unit = "B"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            break
        n /= 1000
    return f"{n:.0f} {unit}" if unit in ("B", "KB") or n >= 100 else f"{n:.1f} {unit}"


def format_limit(count: int) -> str:
    """A configured limit, which settings give in MB of 1024 × 1024 bytes: "30 MB", "2.5 MB",
    "1,024 MB", or bytes below one MB."""
    if count < MIB:
        return f"{count:,} bytes"
    mb = count / MIB
    return f"{mb:,.0f} MB" if mb == int(mb) or mb >= 100 else f"{mb:.3g} MB"
