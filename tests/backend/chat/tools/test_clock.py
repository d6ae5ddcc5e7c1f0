"""The date_time tool with a fixed clock: the text, time zones by name, the machine's own zone."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.chat.tools.clock import DateTimeArgs, DateTimeTool
from backend.chat.tools.registry import ToolError

NOW = datetime(2026, 12, 7, 13, 3, 12, 654321, tzinfo=UTC)
SHAPE = re.compile(
    r"(?P<weekday>[A-Z][a-z]+day) (?P<day>\d{1,2}) (?P<month>[A-Z][a-z]+) (?P<year>\d{4}), "
    r"(?P<time>\d\d:\d\d:\d\d) in (?P<zone>\S+) \(UTC(?P<offset>[+-]\d\d:\d\d)\); ISO (?P<iso>\S+)"
)


async def told(timezone: str | None, now: datetime = NOW) -> str:
    return await DateTimeTool(now=lambda: now).run(DateTimeArgs(timezone=timezone))


@pytest.mark.parametrize(
    ("zone", "now", "answer"),
    [
        ("Europe/Rome", NOW,
         "Monday 7 December 2026, 14:03:12 in Europe/Rome (UTC+01:00); ISO 2026-12-07T14:03:12+01:00"),
        ("Europe/Rome", datetime(2026, 7, 1, 22, 30, tzinfo=UTC),
         "Thursday 2 July 2026, 00:30:00 in Europe/Rome (UTC+02:00); ISO 2026-07-02T00:30:00+02:00"),
        ("America/New_York", NOW,
         "Monday 7 December 2026, 08:03:12 in America/New_York (UTC-05:00); ISO 2026-12-07T08:03:12-05:00"),
        ("Asia/Kolkata", NOW,
         "Monday 7 December 2026, 18:33:12 in Asia/Kolkata (UTC+05:30); ISO 2026-12-07T18:33:12+05:30"),
        ("America/St_Johns", NOW,
         "Monday 7 December 2026, 09:33:12 in America/St_Johns (UTC-03:30); ISO 2026-12-07T09:33:12-03:30"),
        ("Pacific/Kiritimati", NOW,
         "Tuesday 8 December 2026, 03:03:12 in Pacific/Kiritimati (UTC+14:00); ISO 2026-12-08T03:03:12+14:00"),
        ("UTC", datetime(2028, 2, 29, 0, 0, 0, tzinfo=UTC),
         "Tuesday 29 February 2028, 00:00:00 in UTC (UTC+00:00); ISO 2028-02-29T00:00:00+00:00"),
    ],
)
async def test_answers(zone: str, now: datetime, answer: str) -> None:
    assert await told(zone, now) == answer


@pytest.mark.parametrize(
    ("written", "zone"),
    [("europe/rome", "Europe/Rome"), ("America/New York", "America/New_York"), ("  Asia/Tokyo ", "Asia/Tokyo"),
     ("utc", "UTC")],
)
async def test_names_forgive_case_and_spaces(written: str, zone: str) -> None:
    assert f" in {zone} (" in await told(written)


@pytest.mark.parametrize("zone", ["Europe/Nowhere", "Rome", "../../etc/passwd", "/usr/share/zoneinfo/UTC", "+02:00"])
async def test_unknown_zones(zone: str) -> None:
    with pytest.raises(ToolError) as refused:
        await told(zone)
    assert str(refused.value) == f"unknown time zone '{zone}'; use a name such as Europe/Rome or America/New_York"


async def test_the_machines_zone_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    assert await told(None) == (
        "Monday 7 December 2026, 22:03:12 in Asia/Tokyo (UTC+09:00); ISO 2026-12-07T22:03:12+09:00"
    )
    monkeypatch.setenv("TZ", ":America/Sao_Paulo")  # the C library's form for a zone file
    assert " in America/Sao_Paulo (UTC-03:00)" in await told("  ")


async def test_a_tz_that_names_no_zone_still_gives_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "CET-1CEST")  # a POSIX rule, not a zone name
    found = SHAPE.fullmatch(await told(None))
    assert found is not None
    assert datetime.fromisoformat(found["iso"]) == NOW.replace(microsecond=0)


async def test_a_clock_without_a_zone_tells_utc() -> None:
    assert await told("Europe/Rome", NOW.replace(tzinfo=None)) == await told("Europe/Rome", NOW)


async def test_the_real_clock() -> None:
    found = SHAPE.fullmatch(await DateTimeTool().run(DateTimeArgs(timezone="UTC")))
    assert found is not None
    assert abs(datetime.fromisoformat(found["iso"]) - datetime.now(UTC)) < timedelta(seconds=5)


_ZONES = ["UTC", "Europe/Rome", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham",
          "America/St_Johns", "Africa/Casablanca", "Asia/Kathmandu", "Pacific/Apia"]


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)),
       st.sampled_from(_ZONES))
async def test_the_words_and_numbers_agree_with_the_instant(instant: datetime, zone: str) -> None:
    found = SHAPE.fullmatch(await told(zone, instant))
    assert found is not None
    iso = datetime.fromisoformat(found["iso"])
    assert iso == instant.replace(microsecond=0)
    assert found["zone"] == zone
    assert found["weekday"] == calendar.day_name[iso.weekday()]
    assert found["month"] == calendar.month_name[iso.month]
    assert (int(found["day"]), int(found["year"]), found["time"]) == (iso.day, iso.year, f"{iso:%H:%M:%S}")
    assert iso.isoformat().endswith(found["offset"])


def test_arguments() -> None:
    assert DateTimeArgs().timezone is None
    with pytest.raises(ValueError, match="Extra inputs"):
        DateTimeArgs.model_validate({"timezone": "UTC", "format": "iso"})
