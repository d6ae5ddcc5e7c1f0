"""The date_time tool: today's date and the time, here or in a named time zone.

A model knows only the date its training ended; it asks this. Names are in English whatever
the person's language: the model reads them and answers in the person's language.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from functools import cache
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Field

from .registry import Tool, ToolError

__all__ = ["DateTimeTool", "describe", "local_zone", "zone_named"]

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


def _utc_now() -> datetime:
    return datetime.now(UTC)


@cache
def _zone_names() -> dict[str, str]:
    """Every zone's name by its lower-case form with spaces for underscores (read once: ~600 names)."""
    return {_folded(name): name for name in available_timezones()}


def _folded(name: str) -> str:
    return " ".join(name.replace("_", " ").split()).lower()


def zone_named(name: str) -> ZoneInfo:
    """The IANA zone `name`, forgiving case and spaces ("america/new york"); ToolError if there is none."""
    key = _zone_names().get(_folded(name), name.strip())
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # ValueError: an empty name or a path
        raise ToolError(
            f"unknown time zone '{name}'; use a name such as Europe/Rome or America/New_York"
        ) from None


def local_zone() -> tzinfo:
    """The machine's zone: $TZ, /etc/localtime or /etc/timezone if one names an IANA zone, else the C library's."""
    candidates = [os.environ.get("TZ", "").removeprefix(":")]
    try:
        target = str(Path("/etc/localtime").resolve())
        if "/zoneinfo/" in target:
            candidates.append(target.rsplit("/zoneinfo/", 1)[1])
    except OSError:
        pass
    try:
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    except (OSError, UnicodeDecodeError):
        pass
    for candidate in candidates:
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError, OSError):
                continue  # e.g. a POSIX rule in $TZ such as "CET-1CEST"
    zone = datetime.now(UTC).astimezone().tzinfo  # a fixed offset from the C library (Termux without a zone file)
    return zone if zone is not None else UTC


def describe(instant: datetime, zone: tzinfo) -> str:
    """`Monday 7 December 2026, 14:03:12 in Europe/Rome (UTC+01:00); ISO 2026-12-07T14:03:12+01:00`."""
    local = instant.astimezone(zone).replace(microsecond=0)
    offset = local.utcoffset()
    minutes = round(offset.total_seconds() / 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    label = getattr(zone, "key", None) or local.tzname() or "local time"
    return (
        f"{WEEKDAYS[local.weekday()]} {local.day} {MONTHS[local.month - 1]} {local.year}, {local:%H:%M:%S} "
        f"in {label} (UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}); ISO {local.isoformat()}"
    )


class DateTimeArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: str | None = Field(
        default=None,
        max_length=64,  # the longest IANA name, America/Argentina/ComodRivadavia, has 32 characters
        description="An IANA time zone such as Europe/Rome or America/New_York; leave it out for the time "
        "where the person is.",
    )


class DateTimeTool(Tool):
    name: ClassVar[str] = "date_time"
    title: ClassVar[str] = "Date and time"
    description: ClassVar[str] = (
        "Tells today's date, the weekday and the time, where the person is or in a given time zone. Use it "
        "whenever the answer depends on today's date or the current time."
    )
    Args: ClassVar[type[BaseModel]] = DateTimeArgs

    def __init__(self, now: Callable[[], datetime] = _utc_now) -> None:
        self._now = now

    async def run(self, args: BaseModel) -> str:
        if not isinstance(args, DateTimeArgs):
            raise TypeError(f"expected DateTimeArgs, not {type(args).__name__}")
        zone = local_zone() if args.timezone is None or not args.timezone.strip() else zone_named(args.timezone)
        instant = self._now()
        if instant.tzinfo is None:
            instant = instant.replace(tzinfo=UTC)  # a clock without a zone is taken to tell UTC
        return describe(instant, zone)
