"""Figures in words for the pages, in the page's language: sizes as phones show storage ("1.5 GB",
"1,5 GB" in Italian), speeds, durations, how long ago something happened."""

from __future__ import annotations

import time

from backend.core.i18n import _, format_decimal, format_number, ngettext

__all__ = ["ago", "duration", "seconds", "size", "speed"]


def size(n: float) -> str:
    """In 1000-based units, as `backend.core.units.format_bytes`: 512 B, 12 KB, 3.4 MB, 120 MB, 1.5 GB."""
    units = ("B", "KB", "MB", "GB")
    index = 0
    while index < len(units) - 1 and abs(n) >= 1000:
        n /= 1000
        index += 1
    digits = 0 if index < 2 or abs(n) >= 100 else 1
    if index < len(units) - 1 and abs(round(n, digits)) >= 1000:  # 999.96 MB is shown as 1.0 GB
        n, index = n / 1000, index + 1
        digits = 0 if index < 2 else 1
    return f"{format_decimal(n, digits)} {units[index]}"  # the units are the same in the languages spoken


def speed(bytes_per_s: float) -> str:
    return f"{size(bytes_per_s)}/s"


def duration(value: float | None) -> str:
    """A rounded span: "45 s", "12 min", "1.5 h"."""
    if value is None:
        return ""
    if value < 60:
        return _("{n} s", n=format_decimal(value, 0))
    if value < 3600:
        return _("{n} min", n=format_decimal(value / 60, 0))
    return _("{n} h", n=format_decimal(value / 3600, 1))


def seconds(value: float) -> str:
    """A span to a tenth of a second: "2.5 s", "3 min 12 s"."""
    if value < 60:
        return _("{n} s", n=format_decimal(value, 1))
    return _("{minutes} min {seconds} s", minutes=format_number(int(value // 60)), seconds=int(value % 60))


def ago(timestamp: float, now: float | None = None) -> str:
    """"just now", "5 min ago", "2 hours ago", "3 days ago"."""
    elapsed = max(0.0, (now or time.time()) - timestamp)
    if elapsed >= 86400:
        return ngettext("{n} day ago", "{n} days ago", int(elapsed // 86400))
    if elapsed >= 3600:
        return ngettext("{n} hour ago", "{n} hours ago", int(elapsed // 3600))
    if elapsed >= 60:
        return _("{n} min ago", n=format_number(int(elapsed // 60)))
    return _("just now")

